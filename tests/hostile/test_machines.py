"""ssh_exec.py and keepalive.py against a server that lies: addresses, ports and host keys that
must never reach ssh, a published key the machine does not present, an expiry that does not move
after a paid extension, and a paid extension whose answer never arrives."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from tests.helpers import ledger, run_script, ssh_keypair, state_entries, wait_until
from tests.hostile.stub import Reply, json_reply


def _fail(res, exit_code: int, code: str) -> dict:
    rc, doc, err = res
    assert rc == exit_code and doc["ok"] is False and doc["error"]["code"] == code, (rc, doc, err)
    return doc["error"]


@pytest.mark.parametrize("fields, what", [
    ({"ip_address": "-oProxyCommand=touch /tmp/x402-pwned"}, "address"),
    ({"ip_address": "127.0.0.1 -p 1"}, "address"),
    ({"ip_address": "127.0.0.1\n"}, "address"),
    ({"ssh_port": "22 -oProxyCommand=x"}, "port"),
    ({"ssh_port": 0}, "port"),
    ({"ssh_port": True}, "port"),
    ({"ssh_host_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n@cert-authority * ssh-rsa AAAA"}, "ssh_host_public_key"),
    ({"ssh_host_key_fingerprint": "SHA256:x; rm -rf ~"}, "ssh_host_key_fingerprint"),
])
def test_server_values_never_reach_ssh(hostile, hostile_env, tmp_path, fields, what):
    order = hostile.add_order(**fields)
    key, _ = ssh_keypair(tmp_path)
    err = _fail(run_script("ssh_exec.py", order["id"], "--identity", str(key), "--", "true", env=hostile_env()), 1, "bad_response")
    assert what in err["message"]
    assert not Path("/tmp/x402-pwned").exists()
    assert not (tmp_path / "home" / "state" / "known_hosts").exists()


def test_first_contact_must_match_the_published_key(sandbox, tools, hostile, hostile_env, tmp_path):
    # A real SSH server (a sandbox instance) behind an API record that publishes another key.
    key, pub = ssh_keypair(tmp_path)
    _, other = ssh_keypair(tmp_path, "other")
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    iid = tools.provision(sandbox, w, ssh_public_key=pub)["order"]["id"]
    def active() -> dict | None:
        h = tools.evm_auth(w["evm_private_key"], "GET", f"/compute/instances/{iid}")
        o = requests.get(f"{sandbox.base_url}/compute/instances/{iid}", headers=h, timeout=30).json()["order"]
        return o if o["status"] == "active" else None

    real = wait_until(active, "the instance to become active")
    order = hostile.add_order(ip_address=real["ip_address"], ssh_port=real["ssh_port"], ssh_host_public_key=other)
    home = Path(sandbox.state_dir) / "instances" / iid / "home"
    err = _fail(run_script("ssh_exec.py", order["id"], "--identity", str(key), "--", "touch ran", env=hostile_env()), 3, "host_key_mismatch")
    assert err["details"]["presented_fingerprints"] == [real["ssh_host_key_fingerprint"]]
    assert not (home / "ran").exists() and not (tmp_path / "home" / "state" / "known_hosts" / order["id"]).exists()
    # With the honest record, the same machine is pinned and the command runs.
    hostile.orders[order["id"]]["ssh_host_public_key"] = real["ssh_host_public_key"]
    code, doc, err_text = run_script("ssh_exec.py", order["id"], "--identity", str(key), "--", "touch ran", env=hostile_env())
    assert code == 0 and doc["host_key"]["status"] == "pinned_now", (doc, err_text)
    assert (home / "ran").exists()


def _keepalive(order_id: str, env: dict, *extra: str):
    return run_script("keepalive.py", order_id, "--for", "3d", "--min-hours-left", "30", "--yes", *extra, env=env)


def _expiring(hostile, hours: float) -> dict:
    order = hostile.add_order()
    order["expires_at"] = (datetime.now(timezone.utc) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return order


def test_an_expiry_that_does_not_move_is_not_paid_twice(hostile, hostile_env):
    order = _expiring(hostile, 20)
    # The server settles the extension but keeps showing the old expiry.
    hostile.override("GET", f"/compute/instances/{order['id']}", json_reply(200, {"order": dict(order)}))
    env = hostile_env()
    code, doc, err = _keepalive(order["id"], env)
    assert code == 0 and doc["action"] == "extended", (doc, err)
    # Coverage, not instants (issue 20.3): the expiry is below what the settled payment covers, so the
    # server did not apply it; no second payment for that window, and keepalive stops naming it.
    err = _fail(_keepalive(order["id"], env), 3, "extension_not_applied")
    assert err["details"]["journal_id"] == doc_journal(env) and err["details"]["keepalive"] == "stopped"
    assert len(hostile.signatures()) == 1


def doc_journal(env: dict) -> str:
    entries = state_entries(Path(env["X402_COMPUTE_STATE_DIR"]))
    assert len(entries) == 1 and entries[0]["status"] == "settled"
    return entries[0]["id"]


def test_an_unknown_outcome_stops_keepalive(hostile, hostile_env):
    order = _expiring(hostile, 20)
    hostile.override("POST", r"/compute/instances/[^/]+/extend", Reply(reset=True), when="paid")
    env = hostile_env()
    err = _fail(_keepalive(order["id"], env), 4, "payment_outcome_unknown")
    assert err["details"]["keepalive"] == "stopped"
    err = _fail(_keepalive(order["id"], env), 3, "keepalive_stopped")
    assert err["details"]["stopped"]["code"] == "payment_outcome_unknown"
    # Resuming does not pay again while that payment is unresolved: the pipeline refuses it.
    _fail(_keepalive(order["id"], env, "--resume"), 3, "unresolved_payment")
    assert len(hostile.signatures()) == 1
    state = ledger(Path(env["X402_COMPUTE_STATE_DIR"])).keepalive(order["id"])
    assert state["stopped"]["code"] == "unresolved_payment"
