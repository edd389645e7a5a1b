"""MPP end to end over loopback HTTP: pympp (an independent client) pays the sandbox.

pympp's own transport (`mpp.client.Mpp`) answers the 402 and reads chain id and gas from the
sandbox's `/rpc/tempo`; the sandbox verifies the 0x76 transaction and settles on its ledger.
"""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import requests

from x402_compute_sandbox import mpp as smpp
from x402_compute_sandbox import tempo

pytest.importorskip("mpp")

from eth_account import Account  # noqa: E402

PLAN = {"plan": "vc2-1c-1gb", "region": "ewr", "os_id": 2284, "label": "mpp", "prepaid_hours": 24}


def raw(body) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def method_for(sb, key: str, **kw):
    from mpp.methods.tempo import TempoAccount
    from mpp.methods.tempo import client as tempo_client
    return tempo_client.charge(account=TempoAccount.from_key(key), chain_id=4217,
                               rpc_url=sb.env["TEMPO_RPC_URL"], currency=tempo.USDC_E, **kw)


def credential(sb, header: str, key: str) -> str:
    from mpp import Challenge
    from mpp.runtime import PaymentRuntime
    runtime = PaymentRuntime([method_for(sb, key)])
    ch, m = runtime.match_challenge([Challenge.from_www_authenticate(header)])
    return asyncio.run(runtime.create_credential(ch, m)).to_authorization()


def probe(sb, path="/compute/provision", body=PLAN, headers=None):
    r = requests.post(sb.base_url + path, data=raw(body),
                      headers={"Content-Type": "application/json", **(headers or {})}, timeout=30)
    assert r.status_code == 402, r.text
    return r


def post(sb, auth, path="/compute/provision", body=PLAN, headers=None):
    h = {"Content-Type": "application/json", "Authorization": auth, **(headers or {})}
    return requests.post(sb.base_url + path, data=raw(body), headers=h, timeout=60)


def fresh_payer(sb, usd=50) -> str:
    key = "0x" + uuid.uuid4().hex * 2
    sb.app.tempo.fund(Account.from_key(key).address, usd * 10**6)
    return key


def test_402_carries_both_challenges_and_env_names_the_rpc(sandbox):
    r = probe(sandbox)
    assert r.json()["x402Version"] == 1                        # the x402 body is still there
    www = r.headers["WWW-Authenticate"]
    assert www.startswith("Payment ") and 'method="tempo"' in www and 'intent="charge"' in www
    assert r.headers["Cache-Control"] == "no-store"
    from mpp import Challenge
    ch = Challenge.from_www_authenticate(www)
    base = int(r.json()["accepts"][0]["maxAmountRequired"])
    assert ch.request["amount"] == str(base)                   # same catalog price as x402
    assert ch.request["recipient"] == sandbox.facilitator.payee("base")
    assert sandbox.env["TEMPO_RPC_URL"] == sandbox.base_url + "/rpc/tempo"
    rpc = requests.post(sandbox.env["TEMPO_RPC_URL"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    assert rpc.json()["result"] == "0x1079"


def test_pympp_pays_provision_once_and_gets_a_management_key(sandbox):
    from mpp import Receipt
    from mpp.client import Mpp
    key = sandbox.wallets[0]["evm_private_key"]
    payer = Account.from_key(key).address
    payee = sandbox.facilitator.payee("base")
    led = sandbox.app.tempo
    payer_before, payee_before = led.balance_of(payer), led.balance_of(payee)
    payments_before = len(sandbox.app.store.payments())

    async def go():
        async with Mpp(methods=[method_for(sandbox, key, max_atomic_amount=10**7, expected_recipients=[payee])]) as m:
            return await m.fetch(sandbox.base_url + "/compute/provision", method="POST", json=PLAN,
                                 headers={"Idempotency-Key": str(uuid.uuid4())})

    r = asyncio.run(go())
    assert r.status_code == 201, r.text
    body = r.json()
    receipt = Receipt.from_payment_receipt(r.headers["Payment-Receipt"])
    assert receipt.status == "success" and receipt.method == "tempo" and receipt.reference == body["tx_hash"]
    amount = int(sandbox.app.store.payments()[-1]["amount_atomic"])
    fee = led.receipt(receipt.reference)
    assert led.balance_of(payee) - payee_before == amount                # exactly the price
    assert payer_before - led.balance_of(payer) == amount + int(fee["gasUsed"], 16) * tempo.GAS_PRICE // 10**12
    new = sandbox.app.store.payments()[payments_before:]
    assert len(new) == 1 and new[0]["network"] == "tempo" and new[0]["tx"] == receipt.reference
    # The one-time management key: shown once, stored hashed, manages that instance.
    mk = body["management_api_key"]
    assert mk.startswith("x402c_") and body["management_api_key_last4"] == mk[-4:]
    assert body["management_api_key_id"] and body["management_note"]
    assert not any(mk in str(row) for row in sandbox.app.store._all("SELECT * FROM api_keys"))
    got = requests.get(f"{sandbox.base_url}/compute/instances/{body['order']['id']}",
                       headers={"X-API-Key": mk}, timeout=30)
    assert got.status_code == 200, got.text


def test_replayed_credential_is_refused_and_provisions_nothing(sandbox):
    key = fresh_payer(sandbox)
    auth = credential(sandbox, probe(sandbox).headers["WWW-Authenticate"], key)
    first = post(sandbox, auth)
    assert first.status_code == 201, first.text
    orders = len(sandbox.app.store.all_orders())
    payee_bal = sandbox.app.tempo.balance_of(sandbox.facilitator.payee("base"))
    again = post(sandbox, auth)
    assert again.status_code == 403
    assert again.headers["Content-Type"] == "application/problem+json"
    assert again.json()["type"] == smpp.PROBLEM_BASE + "verification-failed"
    assert "Payment-Receipt" not in again.headers
    assert len(sandbox.app.store.all_orders()) == orders
    assert sandbox.app.tempo.balance_of(sandbox.facilitator.payee("base")) == payee_bal


def test_same_credential_with_same_idempotency_key_replays_the_response(sandbox):
    key = fresh_payer(sandbox)
    auth = credential(sandbox, probe(sandbox).headers["WWW-Authenticate"], key)
    idem = {"Idempotency-Key": str(uuid.uuid4())}
    a, b = post(sandbox, auth, headers=idem), post(sandbox, auth, headers=idem)
    assert a.status_code == b.status_code == 201
    assert a.json()["order"]["id"] == b.json()["order"]["id"]
    assert b.headers.get("Idempotent-Replayed") == "true"


def _edit_request(auth: str, **changes) -> str:
    cred = json.loads(smpp.b64url_decode(auth.split(" ", 1)[1]))
    req = json.loads(smpp.b64url_decode(cred["challenge"]["request"]))
    req.update(changes)
    cred["challenge"]["request"] = smpp.b64url(smpp.jcs(req))
    return "Payment " + smpp.b64url(json.dumps(cred).encode())


@pytest.mark.parametrize("change", [{"amount": "1"}, {"recipient": "0x" + "66" * 20}])
def test_tampered_terms_are_refused_with_a_fresh_challenge(sandbox, change):
    key = fresh_payer(sandbox)
    auth = _edit_request(credential(sandbox, probe(sandbox).headers["WWW-Authenticate"], key), **change)
    r = post(sandbox, auth)
    assert r.status_code == 402
    assert r.json()["type"] == smpp.PROBLEM_BASE + "invalid-challenge"
    assert r.headers["WWW-Authenticate"].startswith("Payment ")


def test_expired_challenge_is_refused(sandbox):
    import time
    key = fresh_payer(sandbox)
    auth = credential(sandbox, probe(sandbox).headers["WWW-Authenticate"], key)
    mpp_server = sandbox.app.mpp
    real = mpp_server.clock
    mpp_server.clock = lambda: time.time() + smpp.CHALLENGE_TTL_SECONDS + 5
    try:
        r = post(sandbox, auth)
    finally:
        mpp_server.clock = real
    assert r.status_code == 402 and r.json()["type"] == smpp.PROBLEM_BASE + "payment-expired"


def test_challenge_for_other_params_is_refused(sandbox):
    key = fresh_payer(sandbox)
    cheap_plan = dict(PLAN, prepaid_hours=48)
    other = credential(sandbox, probe(sandbox, body=cheap_plan).headers["WWW-Authenticate"], key)
    r = post(sandbox, other)                    # a 48 h challenge presented on the 24 h request
    assert r.status_code == 402 and r.json()["type"] == smpp.PROBLEM_BASE + "invalid-challenge"


def test_extend_via_mpp_needs_management_auth(sandbox):
    key = fresh_payer(sandbox)
    auth = credential(sandbox, probe(sandbox).headers["WWW-Authenticate"], key)
    made = post(sandbox, auth).json()
    oid, mk = made["order"]["id"], made["management_api_key"]
    path, body = f"/compute/instances/{oid}/extend", {"extend_hours": 24}
    # Without auth the 402 still offers MPP, but paying it is refused before any money moves.
    ch = probe(sandbox, path=path, body=body).headers["WWW-Authenticate"]
    payee_bal = sandbox.app.tempo.balance_of(sandbox.facilitator.payee("base"))
    assert post(sandbox, credential(sandbox, ch, key), path=path, body=body).status_code == 401
    assert sandbox.app.tempo.balance_of(sandbox.facilitator.payee("base")) == payee_bal
    # With the management key: paid, extended, receipted.
    h = {"X-API-Key": mk}
    ch = probe(sandbox, path=path, body=body, headers=h).headers["WWW-Authenticate"]
    r = post(sandbox, credential(sandbox, ch, key), path=path, body=body, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["new_expires_at"] > r.json()["old_expires_at"]
    assert "Payment-Receipt" in r.headers


def test_mpp_not_offered_where_production_does_not(sandbox, tools):
    # deploy_node needs an x402 Solana payment; top-ups take x402 only (compute-api.md §8.2).
    node = probe(sandbox, body=dict(PLAN, network="solana", deploy_node={"model_id": "m"}))
    assert "WWW-Authenticate" not in node.headers
    w = tools.fresh_wallet(sandbox.facilitator)
    h = tools.evm_auth(w["evm_private_key"], "POST", "/compute/credits/topup", raw({"amount": 5}))
    top = probe(sandbox, path="/compute/credits/topup", body={"amount": 5}, headers=h)
    assert "WWW-Authenticate" not in top.headers
    # An MPP credential sent there anyway is refused without touching the ledger.
    auth = credential(sandbox, probe(sandbox).headers["WWW-Authenticate"], fresh_payer(sandbox))
    r = post(sandbox, auth, path="/compute/credits/topup", body={"amount": 5})
    assert r.status_code == 400 and r.json()["type"] == smpp.PROBLEM_BASE + "method-unsupported"
