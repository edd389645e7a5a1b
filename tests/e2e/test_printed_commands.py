"""The commands the scripts print (hints, ``details.reconcile``, --help examples) work as printed
from any folder and with no ``python`` of the right kind on PATH: the running interpreter and the
bundle script's absolute path, each part quoted for a POSIX shell."""

from __future__ import annotations

import json
import runpy
import shlex
import shutil
import subprocess
import sys

import pytest
import requests

from tests.helpers import PLAN, REGION, SCRIPTS, clean_env, fail_doc, journal_entries, run_script, wallet_env
from x402_compute import cmdline

BARE_PATH = "/usr/bin:/bin"  # no venv here, and on many systems no `python` at all


def _sh(command: str, *, cwd, env: dict) -> dict:
    """``command`` as a person pastes it into a shell, in another folder; its one JSON document."""
    proc = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, (command, proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def test_the_reconcile_command_of_an_exit_4_payment_runs_from_another_folder(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path)
    # The paid answer and the client's one automatic resend are both lost: exit 4.
    assert requests.post(sandbox.base_url + "/_sandbox/faults", json={"drop_after_settle": 2}, timeout=5).status_code == 200
    err = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env), 4, "payment_outcome_unknown")["error"]
    jid, command = err["details"]["journal_id"], err["details"]["reconcile"]
    assert shlex.split(command) == [sys.executable, str(SCRIPTS / "reconcile.py"), jid]
    assert command in err["hint"]
    elsewhere = tmp_path / "another folder"
    elsewhere.mkdir()
    bare = {**env, "PATH": BARE_PATH}
    doc = _sh(command, cwd=elsewhere, env=bare)
    assert doc["ok"] is True and doc["found"] is True, doc
    assert [e["status"] for e in journal_entries(tmp_path)] == ["settled"]
    assert not list(elsewhere.iterdir())  # nothing was written into the folder it ran in


def test_help_examples_run_from_a_bundle_copy_in_a_folder_with_spaces(tmp_path):
    copy = tmp_path / "my skills" / "x402 compute" / "scripts"
    shutil.copytree(SCRIPTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    help_text = subprocess.run([sys.executable, str(copy / "reconcile.py"), "--help"], capture_output=True, text=True,
                               env=clean_env(home=tmp_path), timeout=60).stdout
    line = next(x for x in help_text.splitlines() if x.rstrip().endswith("reconcile.py' --list"))
    assert shlex.split(line) == [sys.executable, str(copy / "reconcile.py"), "--list"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    doc = _sh(line, cwd=elsewhere, env=clean_env({"PATH": BARE_PATH}, home=tmp_path))
    assert doc["ok"] is True and doc["entries"] == []


def test_no_script_prints_a_relative_python_command():
    for path in sorted(SCRIPTS.glob("*.py")):
        p = runpy.run_path(str(path), run_name="help_probe").get("p")
        if p is None:
            continue
        text = p.format_help()
        assert "python scripts/" not in text, path.name
        if "examples:" in text:
            assert cmdline.command(path.name) in text, path.name


def test_a_printed_command_quotes_each_part_and_refuses_control_characters(monkeypatch, tmp_path):
    monkeypatch.setattr(cmdline, "SCRIPTS_DIR", tmp_path / "a b")
    monkeypatch.setattr(sys, "executable", "/opt/py 3/bin/python")
    line = cmdline.command("ssh_exec.py", "3f1c2a9e-0000-4000-8000-000000000001", "--", "echo $HOME; rm -rf /")
    assert shlex.split(line) == ["/opt/py 3/bin/python", str(tmp_path / "a b" / "ssh_exec.py"),
                                 "3f1c2a9e-0000-4000-8000-000000000001", "--", "echo $HOME; rm -rf /"]
    for bad in ("id\nrm -rf /", "id\x1b]0;x\x07"):
        with pytest.raises(ValueError):
            cmdline.command("reconcile.py", bad)
    with pytest.raises(ValueError):
        cmdline.command("../reconcile.py")
