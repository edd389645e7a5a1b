"""Restart on the same state dir: orders, keys, nonces, credits, payments and idempotency survive,
and so do the chains (balances, the spent authorization); see test_chain_persistence.py for a kill -9."""
import json
import os

import requests

from tests.helpers import wait_until


def test_restart_keeps_state(make_sandbox, tools):
    first = make_sandbox()
    state = first.state_dir
    w = first.wallets[0]
    key = tools.api_key(first, w)
    h = {"X-API-Key": key}
    idem = "restart-" + os.urandom(6).hex()
    body = {"plan": "vc2-1c-1gb", "region": "ewr", "os_id": 2284, "prepaid_hours": 24, "network": "base"}
    _, paid, payload = tools.paid_post(first, "/compute/provision", body, w, headers=h, idempotency_key=idem)
    assert paid.status_code == 201
    oid = paid.json()["order"]["id"]
    _, topup, _ = tools.paid_post(first, "/compute/credits/topup", {"amount": 3}, w, headers=h)
    assert topup.status_code == 200
    wait_until(lambda: requests.get(f"{first.base_url}/compute/instances/{oid}", headers=h, timeout=30).json()["order"]["status"] == "active",
               "the instance to become active")
    spent_nonce = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")
    assert requests.get(first.base_url + "/compute/instances", headers=spent_nonce).status_code == 200
    first.stop()

    second = make_sandbox(state_dir=state)
    listed = requests.get(second.base_url + "/compute/instances", headers=h)
    assert listed.status_code == 200
    orders = listed.json()["instances"]
    assert [o["id"] for o in orders] == [oid]
    # The instance answers SSH again after the restart.
    import socket
    o = orders[0]
    assert o["status"] == "active"
    with socket.create_connection((o["ip_address"], o["ssh_port"]), timeout=3) as s:
        assert s.recv(64).startswith(b"SSH-2.0-x402sandbox\r\n")
    assert requests.get(second.base_url + "/compute/credits/balance", headers=h).json()["balance"] == "3.00"
    # A nonce spent before the restart is still spent.
    r = requests.get(second.base_url + "/compute/instances", headers=spent_nonce)
    assert r.status_code == 401
    # The idempotency record replays the first answer.
    r = requests.post(second.base_url + "/compute/provision", data=json.dumps(body, separators=(",", ":")),
                      headers={"Content-Type": "application/json", "Idempotency-Key": idem, **h})
    assert r.status_code == 201 and r.json()["order"]["id"] == oid
    # The chains were resumed: the payer's balance still shows both payments, and the first payment's
    # authorization is still spent, so sending it again without the Idempotency-Key pays for nothing.
    assert first.facilitator is not second.facilitator and second.facilitator.restored
    assert second.facilitator.balance_of("base", w["evm_address"]) == 1000 * 10 ** 6 - 249_600 - 3 * 10 ** 6
    again = requests.post(second.base_url + "/compute/provision", data=json.dumps(body, separators=(",", ":")),
                          headers={"Content-Type": "application/json", "X-PAYMENT": tools.b64(payload), **h})
    assert again.status_code == 402 and again.json()["error"] == "invalid_exact_evm_nonce_already_used"
    import sqlite3
    db = sqlite3.connect(os.path.join(state, "sandbox.sqlite3"))
    purposes = sorted(r[0] for r in db.execute("SELECT purpose FROM payments"))
    assert purposes == ["provision", "topup"]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The chains' files are as private as the rest of the state folder.
    import stat
    chains = os.path.join(state, "chains")
    assert stat.S_IMODE(os.stat(chains).st_mode) == 0o700
    files = os.listdir(chains)
    assert {"base.sqlite3", "solana.sqlite3", "tempo.sqlite3", "base.sqlite3-wal"} <= set(files)
    for f in files:
        assert stat.S_IMODE(os.stat(os.path.join(chains, f)).st_mode) == 0o600, f
