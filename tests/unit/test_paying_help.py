"""The safe path first (issue 19.6): every paying script's --help shows quote → the human approves
→ --confirm-quote before anything else, and --yes only as the human's own shortcut at a terminal;
SKILL.md says the same."""

from __future__ import annotations

import argparse
import runpy

import pytest

from tests.helpers import BUNDLE, SCRIPTS
from x402_compute import cmdline

PAYING = sorted(p.name for p in SCRIPTS.glob("*.py")
                if any(a.dest == "confirm_quote" for a in runpy.run_path(str(p), run_name="help_probe").get("p", argparse.ArgumentParser())._actions))


def test_the_paying_scripts_were_found():
    assert {"provision.py", "extend_instance.py", "credits_topup.py", "keepalive.py"} <= set(PAYING)


@pytest.mark.parametrize("name", PAYING)
def test_help_examples_show_the_quote_the_human_approves_first(name):
    p = runpy.run_path(str(SCRIPTS / name), run_name="help_probe")["p"]
    lines = p.epilog.split("exit codes:")[0].splitlines()
    commands = [x for x in lines if x.startswith(cmdline.command(name)) or x.startswith("0 ")]
    first_pay = next((i for i, x in enumerate(commands) if "--yes" in x or "--confirm-quote" in x), None)
    if name != "keepalive.py":  # keepalive's own path is --dry-run, then the human's schedule
        assert "--quote" in commands[0] and first_pay is not None and "--confirm-quote" in commands[first_pay], commands
    for i, line in enumerate(lines):
        if "--yes" in line and not line.startswith("#"):
            said = " ".join(lines[:i])
            assert "human" in said, (name, line)  # introduced as the human's own shortcut
    yes = next(a for a in p._actions if a.dest == "yes")
    assert "human" in yes.help and "terminal" in yes.help


def test_skill_md_shows_quote_approval_confirm_and_yes_as_the_humans_shortcut():
    text = (BUNDLE / "SKILL.md").read_text()
    quote, show, pay = text.index("--quote"), text.index("Show the quote to the human"), text.index("--confirm-quote <quote_id>")
    assert quote < show < pay
    assert "`--yes`" in text and "human's own shortcut" in text
