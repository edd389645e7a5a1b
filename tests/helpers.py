"""Shared test helpers: where the bundle lives and how to run its scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "skills" / "x402-compute"
SCRIPTS = BUNDLE / "scripts"


def import_lib():
    """Make ``x402_compute`` importable the way the scripts see it."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    import x402_compute

    return x402_compute


def clean_env(extra: dict | None = None, *, home: str | os.PathLike | None = None) -> dict:
    """A minimal environment: no wallet or API settings leak in from the caller."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")}
    if home is not None:
        keep["HOME"] = str(home)
        keep["X402_COMPUTE_STATE_DIR"] = str(Path(home) / "state")
    keep.update(extra or {})
    return keep


def run_script(name: str, *args: str, env: dict, input: str | None = None, timeout: float = 60) -> tuple[int, dict, str]:
    """Run a bundle script as a subprocess; stdout must be exactly one JSON document."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        doc = json.loads(proc.stdout)
    except ValueError as e:  # the contract is broken: show what came out
        raise AssertionError(f"{name} stdout is not one JSON document: {proc.stdout!r}\nstderr: {proc.stderr}") from e
    assert isinstance(doc, dict) and "ok" in doc, doc
    return proc.returncode, doc, proc.stderr


def ok(result: tuple[int, dict, str]) -> dict:
    """The document of a ``run_script`` result that must have succeeded (exit 0, ``ok: true``)."""
    code, doc, err = result
    assert code == 0 and doc["ok"] is True, (code, doc, err)
    return doc


def fail(result: tuple[int, dict, str], exit_code: int, error_code: str | None = None) -> dict:
    """The ``error`` of a ``run_script`` result that must have failed with ``exit_code`` (and
    ``error_code``), in the documented error shape."""
    code, doc, err = result
    assert code == exit_code and doc["ok"] is False, (code, doc, err)
    e = doc["error"]
    assert set(e) >= {"code", "message", "status", "details", "retryable"}
    if error_code:
        assert e["code"] == error_code, e
    return e


def closed_port_url() -> str:
    """A loopback URL nothing listens on: a script that sends anything there fails with
    ``network_error`` (exit 1), so an exit 2 proves the check ran before any request."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"
