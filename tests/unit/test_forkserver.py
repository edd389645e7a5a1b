"""The helper that starts bundle scripts for the tests (tests/forkserver.py) keeps what a fresh
`python script.py` gives: exit status (a signal too), stdout/stderr, stdin, environment, working
directory, argv, a kill at the timeout, and no module of the bundle imported in advance."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests import forkserver

PROBE = r'''
import json, os, sys
what = sys.argv[1]
if what == "signal":
    os.kill(os.getpid(), 15)
if what == "sleep":
    import time
    time.sleep(120)
if what == "raise":
    raise ValueError("boom")
import atexit
atexit.register(lambda: sys.stderr.write("atexit ran\n"))
json.dump({"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd(), "stdin": sys.stdin.read(),
           "path0": sys.path[0], "main": __name__, "file": __file__, "pid": os.getpid(),
           "bundle_loaded": sorted(m for m in sys.modules if m.split(".")[0] == "x402_compute")}, sys.stdout)
sys.stderr.write("to stderr\n")
sys.exit(int(sys.argv[2]))
'''


@pytest.fixture
def probe(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(PROBE)
    yield str(path)
    server = forkserver._servers.pop(str(tmp_path), None)   # the helper for this folder
    if server is not None:
        server.close()


def both(probe, *args, env, input=None, timeout=60):
    """(forked, fresh) results of the same run."""
    forked = forkserver.run(probe, list(args), env=env, input=input, timeout=timeout)
    fresh = subprocess.run([sys.executable, probe, *args], env=env, input=input, capture_output=True, text=True,
                           timeout=timeout)
    return forked, fresh


def test_a_forked_run_is_what_a_fresh_interpreter_gives(probe, tmp_path):
    import json

    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "ONLY_HERE": "1"}
    for k in ("LANG", "LC_ALL", "LC_CTYPE"):
        if k in os.environ:
            env[k] = os.environ[k]
    forked, fresh = both(probe, "print", "3", env=env, input="line one\nline two\n")
    assert forked.returncode == fresh.returncode == 3
    a, b = json.loads(forked.stdout), json.loads(fresh.stdout)
    assert a["pid"] != os.getpid() and a["pid"] != b["pid"]
    a.pop("pid"), b.pop("pid")
    # a fresh interpreter may add what Python itself sets (e.g. LC_CTYPE under locale coercion)
    assert a["env"] == {k: v for k, v in b["env"].items() if k in env} == env
    a.pop("env"), b.pop("env")
    assert a == b and a["stdin"] == "line one\nline two\n" and a["bundle_loaded"] == [] and a["main"] == "__main__"
    assert forked.stderr == fresh.stderr == "to stderr\natexit ran\n"
    # the helper is reused, and still forks a fresh process each time
    again = forkserver.run(probe, ["print", "0"], env=env, input=None, timeout=60)
    assert again.returncode == 0 and json.loads(again.stdout)["argv"] == ["print", "0"]


def test_exceptions_signals_and_timeouts(probe, tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    for k in ("LANG", "LC_ALL", "LC_CTYPE"):
        if k in os.environ:
            env[k] = os.environ[k]
    forked, fresh = both(probe, "raise", env=env)
    assert forked.returncode == fresh.returncode == 1 and forked.stdout == fresh.stdout == ""
    assert "ValueError: boom" in forked.stderr and forked.stderr.startswith("Traceback")
    forked, fresh = both(probe, "signal", env=env)
    assert forked.returncode == fresh.returncode == -signal.SIGTERM
    with pytest.raises(subprocess.TimeoutExpired):
        forkserver.run(probe, ["sleep"], env=env, input=None, timeout=1)


def test_what_a_preloaded_child_cannot_mimic_starts_from_scratch(probe, tmp_path, monkeypatch):
    import json

    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONHASHSEED": "7"}
    server = forkserver._get(os.path.dirname(probe))
    assert server is not None and not server.usable_for(env)
    doc = json.loads(forkserver.run(probe, ["print", "0"], env=env, input=None, timeout=60).stdout)
    assert doc["env"]["PYTHONHASHSEED"] == "7"
    monkeypatch.setenv("X402_TEST_SUBPROCESS", "1")
    assert forkserver._get(os.path.dirname(probe)) is None
