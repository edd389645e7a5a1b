"""Races: one payload settles once on every network, one Idempotency-Key acts once, one auth nonce
authenticates once, whatever the interleaving of simultaneous requests."""
import json
import os
import threading

import pytest
import requests

N = 6


def _parallel(n, fn):
    results, threads = [None] * n, []
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        try:
            results[i] = fn()
        except Exception as exc:   # a dropped connection is a failure to report, not a hang
            results[i] = exc
    for i in range(n):
        threads.append(threading.Thread(target=run, args=(i,)))
        threads[-1].start()
    for t in threads:
        t.join(timeout=120)
    return results


def _topup_requirement(sb, network, amount=2):
    r = requests.post(sb.base_url + "/compute/credits/topup", json={"amount": amount}, timeout=30)
    assert r.status_code == 402, r.text
    return next(a for a in r.json()["accepts"] if sb.facilitator.network(a["network"]).label == network)


def _payer(sb, wallet, network):
    return wallet["solana_address"] if sb.facilitator.network(network).kind == "svm" else wallet["evm_address"]


def _payments_for(sb, payer):
    return [p for p in sb.app.store.payments() if p["payer"] and p["payer"].lower() == payer.lower()]


@pytest.mark.parametrize("network", ["base", "solana", "megaeth", "robinhood"])
def test_same_payload_at_once_settles_once(sandbox, tools, network):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    req = _topup_requirement(sandbox, network)
    payload = tools.payload_for(req, w, sandbox.facilitator)
    payer = _payer(sandbox, w, network)
    before = sandbox.facilitator.balance_of(network, payer)

    def send():
        return requests.post(sandbox.base_url + "/compute/credits/topup", data=json.dumps({"amount": 2}),
                             headers={"Content-Type": "application/json", "X-PAYMENT": tools.b64(payload)},
                             timeout=60)
    results = _parallel(N, send)
    statuses = sorted(getattr(r, "status_code", repr(r)) for r in results)
    assert statuses == [200] + [402] * (N - 1), statuses
    paid = int(req["maxAmountRequired"])
    assert sandbox.facilitator.balance_of(network, payer) == before - paid
    assert len(_payments_for(sandbox, payer)) == 1
    owner = payer.lower() if payer.startswith("0x") else payer
    assert sandbox.app.store.credits(owner)["balance"] == 2_000_000


def test_same_idempotency_key_at_once_acts_once(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    req = _topup_requirement(sandbox, "base")
    payload = tools.payload_for(req, w, sandbox.facilitator)
    key = "race-" + os.urandom(6).hex()

    def send():
        return requests.post(sandbox.base_url + "/compute/credits/topup", data=json.dumps({"amount": 2}),
                             headers={"Content-Type": "application/json", "X-PAYMENT": tools.b64(payload),
                                      "Idempotency-Key": key}, timeout=60)
    results = _parallel(N, send)
    assert [getattr(r, "status_code", repr(r)) for r in results] == [200] * N
    assert len({r.json()["tx_hash"] for r in results}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in results) == N - 1
    assert sandbox.app.store.credits(w["evm_address"].lower())["balance"] == 2_000_000
    assert len(_payments_for(sandbox, w["evm_address"])) == 1


@pytest.mark.parametrize("chain", ["base", "solana"])
def test_one_auth_nonce_at_once_authenticates_once(sandbox, tools, chain):
    w = tools.fresh_wallet(sandbox.facilitator, usd=1)
    if chain == "solana":
        h = tools.solana_auth(w["solana_secret_key"], "GET", "/compute/instances")
    else:
        h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")

    results = _parallel(N, lambda: requests.get(sandbox.base_url + "/compute/instances", headers=h, timeout=30))
    statuses = sorted(getattr(r, "status_code", repr(r)) for r in results)
    assert statuses == [200] + [401] * (N - 1), statuses
    for r in results:
        if r.status_code == 401:
            assert "Nonce already used" in r.json()["error"]
