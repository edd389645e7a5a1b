"""Secrets stay out of stdout, stderr and error details on the paths where they could leak:
a server that echoes our credential headers back, an invalid key value, ``--verbose`` runs,
and the state directory's own mode."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import SCRIPTS, clean_env

API_KEY = "x402c_" + "s3cr3tK3y" * 4
EVM_KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


class _Echo(BaseHTTPRequestHandler):
    """A hostile or buggy server: every answer is a 400 quoting the request's headers."""

    def _answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        hdrs = dict(self.headers)
        body = json.dumps({"error": {"message": "rejected " + " ".join(hdrs.values())}, "echo": hdrs}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *a):
        pass


@pytest.fixture
def echo_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _run(name, *args, env):
    return subprocess.run([sys.executable, str(SCRIPTS / name), *args], env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("mode", ["json", "text"])
def test_api_key_echoed_by_the_server_is_redacted(echo_server, tmp_path, mode):
    env = clean_env({"COMPUTE_BASE_URL": echo_server, "COMPUTE_API_KEY": API_KEY}, home=tmp_path)
    proc = _run("list_instances.py", "-o", mode, "-v", env=env)
    assert proc.returncode == 1
    assert API_KEY not in proc.stdout and API_KEY not in proc.stderr, (proc.stdout, proc.stderr)
    assert API_KEY[-4:] in proc.stdout + proc.stderr or "redacted" in proc.stdout + proc.stderr
    if mode == "json":
        doc = json.loads(proc.stdout)
        assert doc["error"]["status"] == 400 and doc["error"]["details"]["echo"]  # the body is still there, scrubbed


def test_auth_signature_echoed_by_the_server_is_redacted(echo_server, tmp_path):
    env = clean_env({"COMPUTE_BASE_URL": echo_server, "PRIVATE_KEY": EVM_KEY}, home=tmp_path)
    proc = _run("list_instances.py", env=env)
    doc = json.loads(proc.stdout)
    sent = doc["error"]["details"]["echo"]
    assert sent.get("X-Auth-Address")  # an address is not a secret
    assert "redacted" in sent["X-Auth-Signature"], sent
    assert EVM_KEY[2:] not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "bad",
    [
        "0" * 64,  # zero is not a valid secp256k1 scalar
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",  # = the curve order n
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    ],
)
def test_out_of_range_private_key_is_a_config_error_that_never_shows_the_key(bad, tmp_path):
    env = clean_env({"COMPUTE_BASE_URL": "http://127.0.0.1:9", "PRIVATE_KEY": bad}, home=tmp_path)
    proc = _run("list_instances.py", "--verbose", env=env)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 2 and doc["error"]["code"] == "config_error", (proc.returncode, doc, proc.stderr)
    both = proc.stdout + proc.stderr
    assert bad not in both.lower() and str(int(bad, 16)) not in both, both
    assert "Traceback" not in proc.stderr


def test_internal_error_message_never_carries_a_configured_secret(tmp_path, monkeypatch, capsys):
    """An unexpected exception whose text embeds a key (a library's ValueError) is reported scrubbed."""
    from x402_compute import cli

    p = cli.parser("probe.py", "probe")

    def handler(ctx):
        ctx.settings  # loads (and so learns) the configured secrets
        raise ValueError(f"bad key {EVM_KEY} / {EVM_KEY[2:]} / {API_KEY}")

    monkeypatch.setenv("PRIVATE_KEY", EVM_KEY)
    monkeypatch.setenv("COMPUTE_API_KEY", API_KEY)
    monkeypatch.setenv("X402_COMPUTE_STATE_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as e:
        cli.run(p, handler, ["--verbose", "-o", "json"])
    out, err = capsys.readouterr()
    assert e.value.code == 1
    doc = json.loads(out)
    assert doc["error"]["code"] == "internal_error"
    for s in (EVM_KEY, EVM_KEY[2:], API_KEY):
        assert s not in out and s not in err, (out, err)


def test_state_root_is_0700_even_when_first_made_for_a_subfolder(tmp_path):
    from x402_compute.state import State

    root = tmp_path / "fresh" / "state"
    iid = "3f1c2a9e-0000-4000-8000-000000000001"
    State(root).save_credentials(iid, "password=hunter22\n")
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "credentials").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "credentials" / f"{iid}.txt").st_mode) == 0o600
