"""Sandbox hardening (issue 9, item 12): an Idempotency-Key replays only to the credential that made
the first request; the state folder is 0700 and its SQLite files 0600; only loopback Host names are
answered (DNS rebinding); a request must arrive in full within a deadline (slow-loris); handler
threads are bounded."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from tests.helpers import wait_until

PROVISION = {"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "label": "h", "prepaid_hours": 24,
             "network": "base"}
RAW = json.dumps(PROVISION, separators=(",", ":")).encode()


def _post(sb, headers, body=RAW):
    return requests.post(sb.base_url + "/compute/provision", data=body, timeout=60,
                         headers={"Content-Type": "application/json", **headers})


def _signed(tools, w, body=RAW):
    return tools.evm_auth(w["evm_private_key"], "POST", "/compute/provision", body)


def _x402(sb, tools, w):
    """A fresh signed payment for PROVISION from wallet w (not sent)."""
    probe = _post(sb, {})
    req = next(a for a in tools.challenge(probe) if a["network"] == "base")
    return tools.b64(tools.payload_for(req, w, sb.facilitator))


def _host_port(sb):
    host, port = sb.base_url.rsplit("/", 1)[1].rsplit(":", 1)
    return host.strip("[]"), int(port)


def _raw_exchange(sb, data: bytes, timeout=10) -> bytes:
    with socket.create_connection(_host_port(sb), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


# --- Idempotency-Key replays -------------------------------------------------------------------
def test_replay_of_an_unauthenticated_x402_payment(sandbox, tools):
    payer, other = tools.fresh_wallet(sandbox.facilitator, usd=5), tools.fresh_wallet(sandbox.facilitator, usd=5)
    key = {"Idempotency-Key": "h-" + uuid.uuid4().hex}
    payment = _x402(sandbox, tools, payer)
    first = _post(sandbox, {**key, "X-PAYMENT": payment})
    assert first.status_code == 201, first.text
    # The identical payment credential (a client's resend after a lost answer) gets the answer.
    again = _post(sandbox, {**key, "X-PAYMENT": payment})
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # No credential: 401, nothing of the stored answer.
    bare = _post(sandbox, key)
    assert bare.status_code == 401 and first.json()["order"]["id"] not in bare.text
    # Another payer's valid payment: 409, and it is not settled either.
    before = sandbox.facilitator.balance_of("base", other["evm_address"])
    stranger = _post(sandbox, {**key, "X-PAYMENT": _x402(sandbox, tools, other)})
    assert stranger.status_code == 409 and first.json()["order"]["id"] not in stranger.text
    assert sandbox.facilitator.balance_of("base", other["evm_address"]) == before
    # The payer proves itself with a signature: the answer; another wallet's signature or API key: 409.
    signed = _post(sandbox, {**key, **_signed(tools, payer)})
    assert signed.status_code == 201 and signed.json() == first.json()
    assert _post(sandbox, {**key, **_signed(tools, other)}).status_code == 409
    assert _post(sandbox, {**key, "X-API-Key": tools.api_key(sandbox, other)}).status_code == 409
    # An API key of the payer is not the credential that paid either.
    assert _post(sandbox, {**key, "X-API-Key": tools.api_key(sandbox, payer)}).status_code == 409


def test_replay_of_an_api_key_or_signed_request_needs_that_credential(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=10)
    api_key, second_key = tools.api_key(sandbox, w, "first"), tools.api_key(sandbox, w, "second")
    key = {"Idempotency-Key": "h-" + uuid.uuid4().hex}
    first = _post(sandbox, {**key, "X-API-Key": api_key, "X-PAYMENT": _x402(sandbox, tools, w)})
    assert first.status_code == 201, first.text
    assert _post(sandbox, {**key, "X-API-Key": api_key}).json() == first.json()
    assert _post(sandbox, {**key, "X-API-Key": second_key}).status_code == 409       # another key
    assert _post(sandbox, {**key, **_signed(tools, w)}).status_code == 409          # another credential
    assert _post(sandbox, key).status_code == 401
    # Signed first: any fresh signature by that wallet replays; its API key does not.
    key = {"Idempotency-Key": "h-" + uuid.uuid4().hex}
    first = _post(sandbox, {**key, **_signed(tools, w), "X-PAYMENT": _x402(sandbox, tools, w)})
    assert first.status_code == 201, first.text
    assert _post(sandbox, {**key, **_signed(tools, w)}).json() == first.json()
    assert _post(sandbox, {**key, "X-API-Key": api_key}).status_code == 409
    # A bad signature is a 401 before any replay.
    bad = _signed(tools, w)
    bad["X-Auth-Signature"] = "0x" + "11" * 65
    assert _post(sandbox, {**key, **bad}).status_code == 401


def test_mpp_management_key_is_replayed_only_to_the_credential_that_paid(sandbox):
    pytest.importorskip("mpp")
    from tests.sandbox.test_mpp_http import credential, fresh_payer, post, probe

    key = {"Idempotency-Key": str(uuid.uuid4())}
    auth = credential(sandbox, probe(sandbox).headers["WWW-Authenticate"], fresh_payer(sandbox))
    first = post(sandbox, auth, headers=key)
    assert first.status_code == 201, first.text
    mk = first.json()["management_api_key"]
    bare = requests.post(sandbox.base_url + "/compute/provision", json=json.loads(RAW), headers=key, timeout=30)
    assert bare.status_code == 401 and mk not in bare.text
    other = credential(sandbox, probe(sandbox).headers["WWW-Authenticate"], fresh_payer(sandbox))
    stranger = post(sandbox, other, headers=key)
    assert stranger.status_code == 409 and mk not in stranger.text
    # The payer that lost the answer resends the same credential and gets its key, once more only to it.
    again = post(sandbox, auth, headers=key)
    assert again.status_code == 201 and again.json()["management_api_key"] == mk


def test_records_without_a_principal_are_replayed_to_nobody(sandbox, tools):
    from x402_compute_sandbox.payments import Idempotency
    from x402_compute_sandbox.server import Request

    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    k = "legacy-" + uuid.uuid4().hex
    fp = Idempotency.fingerprint(Request("POST", "/compute/provision", {}, {}, RAW))
    sandbox.app.store.idem_put(k, fp, 201, {}, b'{"secret":"stored"}', None)
    for headers in ({}, {"X-API-Key": tools.api_key(sandbox, w)}, {"X-PAYMENT": _x402(sandbox, tools, w)}):
        r = _post(sandbox, {"Idempotency-Key": k, **headers})
        assert r.status_code in (401, 409) and "stored" not in r.text


# --- state folder permissions ------------------------------------------------------------------
def test_state_folder_0700_and_sqlite_files_0600(make_sandbox, sandbox, tmp_path):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    (state / "sandbox.sqlite3").touch(mode=0o644)          # left by an older sandbox
    os.chmod(state / "sandbox.sqlite3", 0o644)
    sb = make_sandbox(facilitator=sandbox.facilitator, state_dir=str(state))
    assert requests.get(sb.base_url + "/compute/plans", timeout=30).status_code == 200
    sb.app.store.next_counter("probe")                      # a write: the WAL files exist
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    files = [p for p in state.iterdir() if p.name.startswith("sandbox.sqlite3")]
    assert {p.name for p in files} >= {"sandbox.sqlite3", "sandbox.sqlite3-wal", "sandbox.sqlite3-shm"}
    for p in files + [state / "mpp-secret"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_a_shared_state_folder_is_refused_not_chmodded(tmp_path):
    from x402_compute_sandbox.store import StateDirError, Store

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    (shared / "notes.txt").write_text("someone else's")
    with pytest.raises(StateDirError, match="open to other users"):
        Store(str(shared))
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755 and not (shared / "sandbox.sqlite3").exists()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    r = subprocess.run([sys.executable, "-m", "x402_compute_sandbox", "--port", "0", "--state-dir", str(shared)],
                       cwd=root, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--state-dir" in r.stderr and "Traceback" not in r.stderr
    assert sorted(os.listdir(shared)) == ["notes.txt"]      # not even the chains were written there


# --- Host header (DNS rebinding) ---------------------------------------------------------------
@pytest.mark.parametrize("host,status", [
    ("127.0.0.1", 200), ("127.0.0.1:{port}", 200), ("localhost", 200), ("LOCALHOST:{port}", 200),
    ("localhost:8402", 200),
    ("evil.example", 421), ("evil.example:{port}", 421), ("127.0.0.1.evil.example", 421), ("127.0.0.2", 421),
    ("[::1]:{port}", 421), ("localhost:x", 421), ("127.0.0.1:{port}@evil", 421), ("", 421),
])
def test_only_loopback_host_names_are_answered(sandbox, host, status):
    _, port = _host_port(sandbox)
    data = _raw_exchange(sandbox, f"GET /compute/plans HTTP/1.1\r\nHost: {host.format(port=port)}\r\n"
                                  "Connection: close\r\n\r\n".encode())
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    if status != 200:
        assert json.loads(body)["details"]["accepted"] == ["127.0.0.1", "localhost"]


@pytest.mark.parametrize("request_text", [
    "GET /compute/plans HTTP/1.1\r\nConnection: close\r\n\r\n",                               # no Host
    "GET /compute/plans HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
])
def test_missing_or_repeated_host_is_a_400(sandbox, request_text):
    assert _raw_exchange(sandbox, request_text.encode()).startswith(b"HTTP/1.1 400 ")


def test_absolute_form_target_authority_is_checked_and_the_body_is_not_read(sandbox):
    _, port = _host_port(sandbox)
    data = _raw_exchange(sandbox, f"POST http://evil.example/rpc/base HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                  "Content-Length: 5\r\nConnection: close\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 421 ")


def test_the_address_it_is_bound_to_is_accepted(make_sandbox, sandbox):
    sb = make_sandbox(facilitator=sandbox.facilitator, host="127.0.0.2")
    host, port = _host_port(sb)
    assert host == "127.0.0.2"
    ok = _raw_exchange(sb, f"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.2:{port}\r\nConnection: close\r\n\r\n"
                       .encode())
    assert ok.startswith(b"HTTP/1.1 200 ")
    assert requests.get(sb.base_url + "/_sandbox/health", timeout=10).json() == {"ok": True}


# --- deadlines and the thread bound --------------------------------------------------------------
def test_slow_loris_request_gets_408_at_the_deadline(make_sandbox, sandbox):
    sb = make_sandbox(facilitator=sandbox.facilitator, request_timeout=1.0, idle_timeout=5.0)
    _, port = _host_port(sb)
    request = f"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Pad: {'a' * 40}\r\n\r\n".encode()
    with socket.create_connection(_host_port(sb), timeout=10) as s:
        answer = b""
        try:
            for i in range(len(request)):      # one byte every 0.1 s: each read is quick, the whole is not
                s.sendall(request[i:i + 1])
                time.sleep(0.1)
                s.setblocking(False)
                try:
                    answer += s.recv(65536)
                except BlockingIOError:
                    pass
                s.setblocking(True)
                if answer:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(30)  # the answer, then the close, are the events waited for
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    # Answered by the whole-request deadline (its 408 names it), not by a per-read timeout, and
    # before the slow client finished: the request never completed.
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "The request was not complete within 1 s of its first byte"
    assert i < len(request) - 1


def test_slow_body_gets_408_and_idle_connections_close(make_sandbox, sandbox):
    sb = make_sandbox(facilitator=sandbox.facilitator, request_timeout=1.0, idle_timeout=1.0)
    _, port = _host_port(sb)
    with socket.create_connection(_host_port(sb), timeout=10) as s:
        s.sendall(f"POST /rpc/base HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100\r\n\r\n{{".encode())
        data = s.recv(65536)  # waits for the answer (the socket's timeout is the hang guard)
        assert data.startswith(b"HTTP/1.1 408 "), data[:100]
    # A keep-alive connection serves requests within the idle time, then is closed without an answer.
    with socket.create_connection(_host_port(sb), timeout=10) as s:
        req = f"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for _ in range(2):
            s.sendall(req)
            assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        assert s.recv(65536) == b""  # then, idle, it is closed without an answer (waited for, not timed)


def test_connections_beyond_the_bound_wait_then_get_503(make_sandbox, sandbox):
    sb = make_sandbox(facilitator=sandbox.facilitator, max_connections=3, idle_timeout=20.0)
    holders = [socket.create_connection(_host_port(sb), timeout=10) for _ in range(3)]
    try:
        httpd = sb.sandbox.httpd

        def handlers() -> list:
            return [t for t in threading.enumerate() if getattr(t, "_target", None) == httpd.process_request_thread]

        wait_until(lambda: len(handlers()) == 3, "a handler thread for each held connection")
        assert len(handlers()) == 3, [t.name for t in threading.enumerate()]
        r = requests.get(sb.base_url + "/_sandbox/health", timeout=30)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert "3 connections" in r.json()["error"]
    finally:
        for h in holders:
            h.close()
    def serves() -> bool:
        try:
            return requests.get(sb.base_url + "/_sandbox/health", timeout=15).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(serves, "the freed threads to serve again")
