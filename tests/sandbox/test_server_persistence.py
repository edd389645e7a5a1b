"""Restart on the same state dir: orders, keys, nonces, credits, payments and idempotency survive;
the chains are rebuilt."""
import json
import os

import requests


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
    import time
    deadline = time.time() + 5
    while requests.get(f"{first.base_url}/compute/instances/{oid}", headers=h).json()["order"]["status"] != "active":
        assert time.time() < deadline
        time.sleep(0.05)
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
    # Chains were rebuilt: the payer is back at its funded balance.
    assert second.facilitator.balance_of("base", w["evm_address"]) == 1000 * 10 ** 6
    import sqlite3
    db = sqlite3.connect(os.path.join(state, "sandbox.sqlite3"))
    purposes = sorted(r[0] for r in db.execute("SELECT purpose FROM payments"))
    assert purposes == ["provision", "topup"]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
