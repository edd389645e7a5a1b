"""No prefix matching on any script (issue 19.5): argparse's default would read ``--accept`` as
``--accept-payee-change`` and ``--ign`` as ``--ignore-unresolved``, so a word merely starting a
human-only flag would reach it. Every script's parser (and every ows_cli.py subcommand) is built
without abbreviations, and an abbreviated flag is a usage error (exit 2) naming the full flags.
Scripts are discovered, not listed: a new script is covered without editing this file."""

from __future__ import annotations

import argparse
import runpy

import pytest
from x402_compute import cli

from tests.helpers import SCRIPTS, fail, run_script

SCRIPT_NAMES = sorted(p.name for p in SCRIPTS.glob("*.py") if not p.name.startswith("_"))


def _parsers(name: str) -> list[tuple[argparse.ArgumentParser, list[str]]]:
    """The script's parser ``p`` and each subcommand's, with the argv words leading to it."""
    g = runpy.run_path(str(SCRIPTS / name), run_name="abbrev_probe")
    p = g.get("p")
    if name == "mcp_server.py":  # the server builds its parser in the library
        from x402_compute.mcp import parser

        p = parser()
    assert isinstance(p, argparse.ArgumentParser), f"{name} has no parser p"
    out = [(p, [])]
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            out += [(sp, [cmd]) for cmd, sp in a.choices.items()]
    return out


def _abbreviation(flag: str, known: set[str]) -> str | None:
    """The longest proper prefix of ``flag`` (at least ``--`` and one letter) that is no flag itself."""
    for n in range(len(flag) - 1, 2, -1):
        if flag[:n] not in known and not flag[:n].endswith("-"):
            return flag[:n]
    return None


def test_scripts_were_discovered():
    assert len(SCRIPT_NAMES) >= 20 and {"provision.py", "mcp_server.py", "ows_cli.py"} <= set(SCRIPT_NAMES)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_flag_abbreviated_is_a_usage_error_naming_the_flag(name):
    checked = 0
    for p, lead in _parsers(name):
        assert p.allow_abbrev is False, (name, lead)
        known = set(p._option_string_actions)
        for flag in sorted(f for f in known if f.startswith("--") and f not in ("--help", "--version")):
            short = _abbreviation(flag, known)
            if short is None:
                continue
            out = cli.execute(p, lambda ctx: pytest.fail(f"{name} ran with {short}"), [*lead, short, "x"])
            err = out.doc["error"]
            assert out.exit_code == 2 and err["code"] == "usage_error", (name, short, out.doc)
            assert flag in err["details"]["did_you_mean"] and all(f.startswith(short) for f in err["details"]["did_you_mean"]), err
            assert flag in err["message"], err
            checked += 1
    assert checked, f"{name}: no flag was checked"


def test_an_abbreviated_human_only_flag_never_reaches_the_script(tmp_path):
    """The real script, as the issue found it: --accept was --accept-payee-change, --day was --days."""
    from tests.helpers import clean_env

    env = clean_env(home=tmp_path)
    iid = "3f2c9a1e-0000-4000-8000-000000000000"
    err = fail(run_script("extend_instance.py", iid, "--day", "1", "--accept", "--quote", env=env), 2, "usage_error")
    assert err["details"]["did_you_mean"] == ["--days"]
    err = fail(run_script("extend_instance.py", iid, "--days", "1", "--ign", "--quote", env=env), 2, "usage_error")
    assert err["details"]["did_you_mean"] == ["--ignore-unresolved"]
    assert "ask the human" in err["hint"]  # a human-only flag: the hint does not hand it to the agent
    # After "--" a word is a value (ssh_exec's remote command), never a flag to expand.
    err = fail(run_script("ssh_exec.py", "x", "--", "--acc", env=env), 2, "usage_error")
    assert "did_you_mean" not in (err.get("details") or {})
    # The MCP server's own command line too (its errors before serving keep the script contract).
    err = fail(run_script("mcp_server.py", "--htt", "0", env=env), 2, "usage_error")
    assert err["details"]["did_you_mean"] == ["--http"]
