"""Paid flows over loopback HTTP: 402 challenges, settlement on the local chains, refusals, idempotency,
credits, and the ambiguous-outcome fault."""
import json
import math
import os
import sqlite3
import time
from decimal import Decimal

import pytest
import requests

PROVISION = {"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "label": "pay", "prepaid_hours": 24,
             "network": "base"}
# ceil(0.0104 × 24 × 10^6) micro-USD
PRICE_MICROS = 249_600


def _balances(sb, wallet, network):
    f = sb.facilitator
    net = f.network(network)
    owner = wallet["solana_address"] if net.kind == "svm" else wallet["evm_address"]
    return f.balance_of(network, owner), f.balance_of(network, f.payee(network))


def _instances(sb, wallet, tools):
    h = tools.evm_auth(wallet["evm_private_key"], "GET", "/compute/instances")
    return requests.get(sb.base_url + "/compute/instances", headers=h).json()["instances"]


def test_challenge_v1_shape(sandbox):
    r = requests.post(sandbox.base_url + "/compute/provision", json=PROVISION)
    assert r.status_code == 402
    body = r.json()
    assert body["x402Version"] == 1 and body["error"] == "X-PAYMENT header is required"
    nets = [a["network"] for a in body["accepts"]]
    assert nets == ["base", "solana", "megaeth", "robinhood", "arc"]
    for a in body["accepts"]:
        assert a["scheme"] == "exact" and a["resource"] == sandbox.base_url + "/compute/provision"
        assert a["payTo"] == sandbox.facilitator.payee(a["network"])
        decimals = sandbox.facilitator.network(a["network"]).decimals
        assert int(a["maxAmountRequired"]) == PRICE_MICROS * 10 ** (decimals - 6)
    assert "PAYMENT-REQUIRED" not in r.headers


def test_price_rule_is_ceil_of_decimal_product():
    from x402_compute_sandbox import catalog
    for plan, hours in (("vc2-1c-1gb", 24), ("vc2-2c-2gb", 25), ("vcg-a100-1c-2g-6gb", 720), ("do:c-2", 31)):
        exact = Decimal(str(catalog.hourly(plan))) * hours * 10 ** 6
        assert catalog.amount_usd_micros(plan, hours) == math.ceil(exact)


def test_x_accept_networks_filter(sandbox):
    r = requests.post(sandbox.base_url + "/compute/provision", json=PROVISION,
                      headers={"X-Accept-Networks": "solana, robinhood"})
    assert [a["network"] for a in r.json()["accepts"]] == ["solana", "robinhood"]
    r = requests.post(sandbox.base_url + "/compute/provision", json=PROVISION,
                      headers={"X-Accept-Networks": "eip155:4663"})
    assert [a["network"] for a in r.json()["accepts"]] == ["robinhood"]
    r = requests.post(sandbox.base_url + "/compute/provision", json=PROVISION,
                      headers={"X-Accept-Networks": "dogecoin"})
    assert r.status_code == 400


@pytest.mark.parametrize("network", ["base", "robinhood", "megaeth", "solana"])
def test_paid_provision_moves_exact_amount(sandbox, tools, network):
    w = tools.fresh_wallet(sandbox.facilitator, usd=10)
    payer0, payee0 = _balances(sandbox, w, network)
    body = dict(PROVISION, network=network)
    probe, paid, payload = tools.paid_post(sandbox, "/compute/provision", body, w, network=network)
    assert paid.status_code == 201, paid.text
    out = paid.json()
    decimals = sandbox.facilitator.network(network).decimals
    amount = PRICE_MICROS * 10 ** (decimals - 6)
    payer1, payee1 = _balances(sandbox, w, network)
    assert payer0 - payer1 == amount
    assert payee1 - payee0 == amount
    settle = tools.unb64(paid.headers["X-PAYMENT-RESPONSE"])
    assert settle["success"] is True and settle["transaction"] == out["tx_hash"] and out["tx_hash"]
    assert settle["network"] == network
    order = out["order"]
    assert order["status"] in ("pending", "new") and order["ip_address"] == "0.0.0.0"
    assert order["plan"] == "vc2-1c-1gb" and order["prepaid_hours"] == 24
    assert order["payment_amount"] == 0.2496
    # Bound to the payer (no auth was sent): the payer's wallet sees it.
    payer = w["solana_address"] if network == "solana" else w["evm_address"].lower()
    assert order["wallet_address"] == payer
    # Stored as a payment.
    db = sqlite3.connect(os.path.join(sandbox.state_dir, "sandbox.sqlite3"))
    row = db.execute("SELECT network, amount_atomic, amount_usd_micros, order_id, purpose FROM payments "
                     "WHERE tx=?", (out["tx_hash"],)).fetchone()
    assert row == (network, str(amount), PRICE_MICROS, order["id"], "provision")

    # The same payload again: a replay. Refused with the challenge, nothing moves, nothing is created.
    again = requests.post(sandbox.base_url + "/compute/provision", data=json.dumps(body),
                          headers={"Content-Type": "application/json", "X-PAYMENT": tools.b64(payload)})
    assert again.status_code == 402, again.text
    assert again.json()["accepts"] and again.json()["error"] != "X-PAYMENT header is required"
    assert _balances(sandbox, w, network) == (payer1, payee1)


def test_evm_payer_sees_instance(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    out = tools.provision(sandbox, w)
    assert [i["id"] for i in _instances(sandbox, w, tools)] == [out["order"]["id"]]
    # Another wallet does not see it, and gets 404 for its id.
    other = sandbox.wallets[1]
    assert out["order"]["id"] not in [i["id"] for i in _instances(sandbox, other, tools)]
    path = f"/compute/instances/{out['order']['id']}"
    h = tools.evm_auth(other["evm_private_key"], "GET", path)
    assert requests.get(sandbox.base_url + path, headers=h).status_code == 404


def test_order_binds_to_authenticated_identity(sandbox, tools):
    owner = tools.fresh_wallet(sandbox.facilitator, usd=0)
    payer = tools.fresh_wallet(sandbox.facilitator, usd=5)
    key = tools.api_key(sandbox, owner)
    _, paid, _ = tools.paid_post(sandbox, "/compute/provision", PROVISION, payer, headers={"X-API-Key": key})
    assert paid.status_code == 201, paid.text
    assert paid.json()["order"]["wallet_address"] == owner["evm_address"].lower()
    assert len(_instances(sandbox, owner, tools)) == 1
    assert _instances(sandbox, payer, tools) == []

    # Fresh X-Auth-* headers on the paid retry are accepted too (a new nonce).
    raw = json.dumps(PROVISION, separators=(",", ":")).encode()
    probe_h = tools.evm_auth(owner["evm_private_key"], "POST", "/compute/provision", raw)
    retry_h = tools.evm_auth(owner["evm_private_key"], "POST", "/compute/provision", raw)
    _, paid, _ = tools.paid_post(sandbox, "/compute/provision", raw, payer, headers=probe_h, retry_headers=retry_h)
    assert paid.status_code == 201, paid.text
    assert paid.json()["order"]["wallet_address"] == owner["evm_address"].lower()
    # Re-sending the probe's headers (nonce already consumed by the 402) is a 401.
    _, paid, _ = tools.paid_post(sandbox, "/compute/provision", raw, payer,
                                 headers=tools.evm_auth(owner["evm_private_key"], "POST", "/compute/provision", raw),
                                 retry_headers=probe_h)
    assert paid.status_code == 401


def _probe(sb, body=PROVISION, version=1):
    r = requests.post(sb.base_url + "/compute/provision", json=body)
    from tests.conftest import Tools
    return Tools.challenge(r, version)


def _post_paid(sb, tools, payload, body=PROVISION, header="X-PAYMENT"):
    return requests.post(sb.base_url + "/compute/provision", data=json.dumps(body),
                         headers={"Content-Type": "application/json", header: tools.b64(payload)})


def test_refused_payloads(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    start = _balances(sandbox, w, "base")
    req = next(a for a in _probe(sandbox) if a["network"] == "base")
    cases = {}
    # short: signs less than asked
    cases["short"] = tools.payload_for(req, w, sandbox.facilitator, value=int(req["maxAmountRequired"]) - 1)
    # wrong recipient
    cases["recipient"] = tools.payload_for(req, w, sandbox.facilitator, to=sandbox.wallets[2]["evm_address"])
    # expired
    cases["expired"] = tools.payload_for(req, w, sandbox.facilitator, valid_before=int(time.time()) - 10)
    # tampered after signing: value raised in the authorization
    t = tools.payload_for(req, w, sandbox.facilitator)
    t["payload"]["authorization"]["validBefore"] = str(int(t["payload"]["authorization"]["validBefore"]) + 1)
    cases["tampered"] = t
    # wrong chain: signed for Base, presented as Robinhood (same address format, other domain)
    wc = tools.payload_for(req, w, sandbox.facilitator)
    wc["network"] = "robinhood"
    cases["chain"] = wc
    # wrong asset domain: Base payload signed with Robinhood's domain name
    bad = dict(req, extra={"name": "Global Dollar", "version": "1"})
    cases["asset"] = tools.payload_for(bad, w, sandbox.facilitator)
    # unknown network
    un = tools.payload_for(req, w, sandbox.facilitator)
    un["network"] = "polygon"
    cases["unknown-network"] = un
    expected = {
        "short": "invalid_exact_evm_payload_authorization_value_mismatch",
        "recipient": "invalid_exact_evm_payload_recipient_mismatch",
        "expired": "invalid_exact_evm_payload_authorization_valid_before",
        "tampered": "invalid_exact_evm_payload_signature",
        "chain": "invalid_exact_evm_payload_signature",
        "asset": "invalid_exact_evm_payload_signature",
        "unknown-network": "invalid_network: the payment is not for any offered network",
    }
    for name, payload in cases.items():
        r = _post_paid(sandbox, tools, payload)
        assert r.status_code == 402, (name, r.text)
        body = r.json()
        assert body["accepts"], name
        assert body["error"] != "X-PAYMENT header is required", name
        assert body["error"] == expected[name], (name, body["error"])
    assert _balances(sandbox, w, "base") == start
    assert _instances(sandbox, w, tools) == []


def test_undecodable_payment_headers_are_400(sandbox, tools):
    for value in ("%%%not-base64%%%", tools.b64("just a string")[:-2] + "!!",
                  tools.b64([1, 2]), tools.b64({"x402Version": 3, "payload": {}})):
        r = requests.post(sandbox.base_url + "/compute/provision", json=PROVISION, headers={"X-PAYMENT": value})
        assert r.status_code == 400, value
        assert r.json()["error"].startswith("invalid_payload")


def test_v2_mode(make_sandbox, sandbox, tools):
    sb2 = make_sandbox(x402_version=2, facilitator=sandbox.facilitator)
    r = requests.post(sb2.base_url + "/compute/provision", json=PROVISION)
    assert r.status_code == 402
    required = tools.unb64(r.headers["PAYMENT-REQUIRED"])
    assert required["x402Version"] == 2 and required["resource"]["url"] == sb2.base_url + "/compute/provision"
    assert required["error"] and r.json()["error"]
    assert [a["network"] for a in required["accepts"]] == [
        "eip155:8453", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "eip155:4326", "eip155:4663", "eip155:5042"]
    assert all("amount" in a and "maxAmountRequired" not in a for a in required["accepts"])
    # Standard padded base64 of compact JSON.
    import base64
    assert base64.b64encode(base64.b64decode(r.headers["PAYMENT-REQUIRED"])).decode() == r.headers["PAYMENT-REQUIRED"]
    for network in ("base", "solana"):
        w = tools.fresh_wallet(sandbox.facilitator, usd=5)
        before = _balances(sb2, w, network)
        _, paid, payload = tools.paid_post(sb2, "/compute/provision", dict(PROVISION, network=network), w,
                                           network=network, version=2)
        assert paid.status_code == 201, paid.text
        settle = tools.unb64(paid.headers["PAYMENT-RESPONSE"])
        assert settle["success"] and settle["transaction"] == paid.json()["tx_hash"]
        assert before[0] - _balances(sb2, w, network)[0] == PRICE_MICROS
        # replay in v2: refused, PAYMENT-REQUIRED carries the reason
        r = _post_paid(sb2, tools, payload, header="PAYMENT-SIGNATURE")
        assert r.status_code == 402 and "PAYMENT-REQUIRED" in r.headers
        assert tools.unb64(r.headers["PAYMENT-REQUIRED"])["error"] != "PAYMENT-SIGNATURE header is required"
    # A v2 payload whose `accepted` does not echo the offer is refused.
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    req = next(a for a in required["accepts"] if a["network"] == "eip155:8453")
    p = tools.payload_for(req, w, sandbox.facilitator, version=2)
    p["accepted"]["amount"] = "1"
    r = _post_paid(sb2, tools, p, header="PAYMENT-SIGNATURE")
    assert r.status_code == 402
    # The v1 header is accepted by a v2-mode server too (both are).
    v1req = next(a for a in _probe(sandbox) if a["network"] == "base")
    p = tools.payload_for(dict(v1req, resource=sb2.base_url + "/compute/provision"), w, sandbox.facilitator)
    r = _post_paid(sb2, tools, p)
    assert r.status_code == 201, r.text
    assert "X-PAYMENT-RESPONSE" in r.headers


def test_payment_signature_header_on_v1_server(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    _, paid, _ = tools.paid_post(sandbox, "/compute/provision", PROVISION, w, header_name="PAYMENT-SIGNATURE")
    assert paid.status_code == 201, paid.text


def test_idempotency(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    key = "idem-" + os.urandom(8).hex()
    _, first, payload = tools.paid_post(sandbox, "/compute/provision", PROVISION, w, idempotency_key=key)
    assert first.status_code == 201
    after_first = _balances(sandbox, w, "base")
    raw = json.dumps(PROVISION, separators=(",", ":"))
    again = requests.post(sandbox.base_url + "/compute/provision", data=raw,
                          headers={"Content-Type": "application/json", "X-PAYMENT": tools.b64(payload),
                                   "Idempotency-Key": key})
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["X-PAYMENT-RESPONSE"] == first.headers["X-PAYMENT-RESPONSE"]
    # Without the credential that paid, the key replays nothing (tests/sandbox/test_hardening.py has the rest).
    bare = requests.post(sandbox.base_url + "/compute/provision", data=raw,
                         headers={"Content-Type": "application/json", "Idempotency-Key": key})
    assert bare.status_code == 401 and "order" not in bare.json()
    assert _balances(sandbox, w, "base") == after_first
    assert len(_instances(sandbox, w, tools)) == 1
    # Same key and credential, different body -> 409.
    other = requests.post(sandbox.base_url + "/compute/provision", json=dict(PROVISION, label="other"),
                          headers={"Idempotency-Key": key, "X-PAYMENT": tools.b64(payload)})
    assert other.status_code == 409 and "different request" in other.json()["error"]


def test_drop_after_settle_then_retry_with_same_key(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    raw = json.dumps(PROVISION, separators=(",", ":"))
    req = next(a for a in _probe(sandbox) if a["network"] == "base")
    payload = tools.payload_for(req, w, sandbox.facilitator)
    assert requests.post(sandbox.base_url + "/_sandbox/faults", json={"drop_after_settle": 1}).json() == {
        "drop_after_settle": 1}
    key = "amb-" + os.urandom(8).hex()
    headers = {"Content-Type": "application/json", "X-PAYMENT": tools.b64(payload), "Idempotency-Key": key}
    with pytest.raises(requests.ConnectionError):
        requests.post(sandbox.base_url + "/compute/provision", data=raw, headers=headers)
    # The payment did settle and the instance exists.
    paid_once = _balances(sandbox, w, "base")
    assert paid_once[0] == 5 * 10 ** 6 - PRICE_MICROS
    assert requests.get(sandbox.base_url + "/_sandbox/faults").json() == {"drop_after_settle": 0}
    # Resending the same signed payload with the same key gets the stored outcome, no second charge.
    r = requests.post(sandbox.base_url + "/compute/provision", data=raw, headers=headers)
    assert r.status_code == 201, r.text
    assert _balances(sandbox, w, "base") == paid_once
    assert [i["id"] for i in _instances(sandbox, w, tools)] == [r.json()["order"]["id"]]


def test_credits_topup_and_spend(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=20)
    key = tools.api_key(sandbox, w)
    h = {"X-API-Key": key}
    bal = requests.get(sandbox.base_url + "/compute/credits/balance", headers=h).json()
    assert bal["balance"] == "0.00" and bal["total_deposited"] == "0.00"

    # use_credits with no credits: 402 with the shortfall, nothing created.
    r = requests.post(sandbox.base_url + "/compute/provision", json=dict(PROVISION, use_credits=True), headers=h)
    assert r.status_code == 402 and r.json()["details"]["shortfall"] == "0.2496"

    before = _balances(sandbox, w, "base")
    _, paid, _ = tools.paid_post(sandbox, "/compute/credits/topup", {"amount": 2.5, "network": "base"}, w,
                                 headers=h)
    assert paid.status_code == 200, paid.text
    assert paid.json()["deposited"] == 2.5 and paid.json()["new_balance"] == "2.50" and paid.json()["tx_hash"]
    assert before[0] - _balances(sandbox, w, "base")[0] == 2_500_000

    r = requests.post(sandbox.base_url + "/compute/provision", json=dict(PROVISION, use_credits=True), headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["tx_hash"] is None and r.json()["order"]["payment_method"] == "credits"
    bal = requests.get(sandbox.base_url + "/compute/credits/balance", headers=h).json()
    assert bal == {"wallet": w["evm_address"].lower(), "balance": "2.2504", "total_deposited": "2.50",
                   "total_spent": "0.2496"}
    # Extend from credits too: +24 h at the same price.
    oid = r.json()["order"]["id"]
    r = requests.post(f"{sandbox.base_url}/compute/instances/{oid}/extend",
                      json={"extend_hours": 24, "use_credits": True}, headers=h)
    assert r.status_code == 200, r.text
    assert requests.get(sandbox.base_url + "/compute/credits/balance", headers=h).json()["balance"] == "2.0008"


def test_credits_rules(sandbox, tools):
    r = requests.post(sandbox.base_url + "/compute/provision", json=dict(PROVISION, use_credits=True))
    assert r.status_code == 401
    key = tools.api_key(sandbox, sandbox.wallets[0])
    r = requests.post(sandbox.base_url + "/compute/provision",
                      json=dict(PROVISION, use_credits=True, ai_machine={"model_id": "m", "mode": "private"}),
                      headers={"X-API-Key": key})
    assert r.status_code == 400 and "ai_machine" in r.json()["error"]
    for amount in (0.5, "5", True, 10 ** 9, 1.0000001):
        r = requests.post(sandbox.base_url + "/compute/credits/topup", json={"amount": amount})
        assert r.status_code == 400, amount
    r = requests.post(sandbox.base_url + "/compute/credits/topup", json={"amount": 3})
    assert r.status_code == 402
    assert all(int(a["maxAmountRequired"]) == 3 * 10 ** (sandbox.facilitator.network(a["network"]).decimals)
               for a in r.json()["accepts"])


def test_paid_extend(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    order = tools.provision(sandbox, w)["order"]
    path = f"/compute/instances/{order['id']}/extend"
    before = _balances(sandbox, w, "robinhood")
    _, paid, _ = tools.paid_post(sandbox, path, {"extend_hours": 48, "network": "robinhood"}, w, network="robinhood")
    assert paid.status_code == 200, paid.text
    out = paid.json()
    assert before[0] - _balances(sandbox, w, "robinhood")[0] == 2 * PRICE_MICROS
    from datetime import datetime
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
    assert (parse(out["new_expires_at"]) - parse(order["expires_at"])).total_seconds() == pytest.approx(48 * 3600, abs=0.002)
    assert out["order"]["prepaid_hours"] == 72 and out["tx_hash"]
    # Missing extend_hours means 24; below 24 is a 400 before any payment.
    r = requests.post(sandbox.base_url + path, json={})
    assert r.status_code == 402
    assert int(r.json()["accepts"][0]["maxAmountRequired"]) == PRICE_MICROS
    assert requests.post(sandbox.base_url + path, json={"extend_hours": 12}).status_code == 400
    # Unknown instance: 404 before payment; with auth, someone else's: 404.
    import uuid
    assert requests.post(f"{sandbox.base_url}/compute/instances/{uuid.uuid4()}/extend", json={}).status_code == 404
    h = tools.evm_auth(sandbox.wallets[1]["evm_private_key"], "POST", path, b"{}")
    assert requests.post(sandbox.base_url + path, data=b"{}", headers=h).status_code == 404


def test_x402_sdk_client_pays(sandbox, tools):
    """The official x402 SDK client (v1 and v2 EVM exact) pays the sandbox's challenge."""
    pytest.importorskip("x402")
    from eth_account import Account
    from x402 import x402ClientSync
    from x402.mechanisms.evm import EthAccountSigner
    from x402.mechanisms.evm.exact import register_exact_evm_client

    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    client = register_exact_evm_client(x402ClientSync(), EthAccountSigner(Account.from_key(w["evm_private_key"])))
    raw = json.dumps(PROVISION, separators=(",", ":"))
    r = requests.post(sandbox.base_url + "/compute/provision", data=raw, headers={"Content-Type": "application/json"})
    from x402.schemas.v1 import PaymentRequiredV1
    pr = PaymentRequiredV1.model_validate(r.json())
    pr.accepts = [a for a in pr.accepts if a.network == "base"]
    payload = client.create_payment_payload(pr)
    header = __import__("base64").b64encode(payload.model_dump_json(by_alias=True, exclude_none=True).encode()).decode()
    paid = requests.post(sandbox.base_url + "/compute/provision", data=raw,
                         headers={"Content-Type": "application/json", "X-PAYMENT": header})
    assert paid.status_code == 201, paid.text


def test_solana_payment_refused_without_recipient_ata(make_sandbox, tools):
    sb = make_sandbox(recipient_atas=False)
    w = sb.wallets[0]
    before = _balances(sb, w, "solana")
    _, paid, _ = tools.paid_post(sb, "/compute/provision", dict(PROVISION, network="solana"), w, network="solana")
    assert paid.status_code == 402
    assert paid.json()["error"] == "invalid_exact_svm_payload_receiver_ata_not_found"
    assert _balances(sb, w, "solana") == before
    assert _instances(sb, w, tools) == []
    # EVM networks are unaffected by the switch.
    _, paid, _ = tools.paid_post(sb, "/compute/provision", PROVISION, w)
    assert paid.status_code == 201


def test_deploy_node_offers_solana_only(sandbox):
    r = requests.post(sandbox.base_url + "/compute/provision",
                      json=dict(PROVISION, deploy_node={"model_id": "llama"}))
    assert [a["network"] for a in r.json()["accepts"]] == ["solana"]


def test_topup_without_auth_credits_the_payer(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    _, paid, _ = tools.paid_post(sandbox, "/compute/credits/topup", {"amount": 1}, w, network="solana")
    assert paid.status_code == 200, paid.text
    assert paid.json()["wallet"] == w["solana_address"]
    h = tools.solana_auth(w["solana_secret_key"], "GET", "/compute/credits/balance")
    assert requests.get(sandbox.base_url + "/compute/credits/balance", headers=h).json()["balance"] == "1.00"


def _parallel(n, fn):
    import threading
    results, threads = [None] * n, []
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        results[i] = fn()
    for i in range(n):
        threads.append(threading.Thread(target=run, args=(i,)))
        threads[-1].start()
    for t in threads:
        t.join()
    return results


def test_concurrent_replays_settle_once(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    req = next(a for a in _probe(sandbox) if a["network"] == "base")
    payload = tools.payload_for(req, w, sandbox.facilitator)
    results = _parallel(4, lambda: _post_paid(sandbox, tools, payload))
    assert sorted(r.status_code for r in results) == [201, 402, 402, 402]
    assert _balances(sandbox, w, "base")[0] == 5 * 10 ** 6 - PRICE_MICROS
    assert len(_instances(sandbox, w, tools)) == 1


def test_concurrent_same_idempotency_key(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    req = next(a for a in _probe(sandbox) if a["network"] == "solana")
    payload = tools.payload_for(req, w, sandbox.facilitator)
    key = "par-" + os.urandom(6).hex()
    body = json.dumps(dict(PROVISION, network="solana"))

    def send():
        return requests.post(sandbox.base_url + "/compute/provision", data=body,
                             headers={"Content-Type": "application/json", "X-PAYMENT": tools.b64(payload),
                                      "Idempotency-Key": key})
    results = _parallel(4, send)
    assert [r.status_code for r in results] == [201] * 4
    assert len({r.json()["order"]["id"] for r in results}) == 1
    assert _balances(sandbox, w, "solana")[0] == 5 * 10 ** 6 - PRICE_MICROS


def test_permit2_mode_advertises_permit2_for_megaeth(make_sandbox):
    sb = make_sandbox(permit2=True)
    r = requests.post(sb.base_url + "/compute/provision", json=PROVISION)
    mega = next(a for a in r.json()["accepts"] if a["network"] == "megaeth")
    assert mega["extra"].get("assetTransferMethod") == "permit2"
    base = next(a for a in r.json()["accepts"] if a["network"] == "base")
    assert "assetTransferMethod" not in base["extra"]
