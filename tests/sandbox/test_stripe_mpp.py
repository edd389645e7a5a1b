"""MPP `stripe` charges on the sandbox (`--stripe`), paid by pympp's own Stripe client method.

The SPT is created at the local Stripe emulation with the buyer's test key; the sandbox verifies
the credential with pympp's Stripe server method, whose PaymentIntent call the emulation answers.
The emulation's own rules (keys, ownership, currency, amount, single use) are checked directly too.
"""
from __future__ import annotations

import asyncio
import base64
import json
import uuid

import pytest
import requests

pytest.importorskip("mpp")

PLAN = {"plan": "vc2-1c-1gb", "region": "ewr", "os_id": 2284, "label": "stripe", "prepaid_hours": 24}


@pytest.fixture(scope="module")
def sb(make_sandbox_module):
    return make_sandbox_module(stripe=True)


@pytest.fixture(scope="module")
def make_sandbox_module():
    import shutil
    import tempfile

    from tests.conftest import _start
    handles, dirs = [], []

    def factory(**opts):
        d = tempfile.mkdtemp(prefix="x402-sandbox-")
        dirs.append(d)
        h = _start(d, **opts)
        handles.append(h)
        return h
    yield factory
    for h in handles:
        h.stop()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def raw(body) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def stripe_call(env, method, path, form=None, key=None):
    auth = base64.b64encode(f"{key or env['STRIPE_SECRET_KEY']}:".encode()).decode()
    return requests.request(method, env["STRIPE_API_BASE"] + path, data=form,
                            headers={"Authorization": f"Basic {auth}"}, timeout=10)


def issue_spt(env, amount, currency="usd", network_id=None, pm=None, key=None, expires_at=None):
    form = {"payment_method": pm or env["STRIPE_PAYMENT_METHOD"],
            "seller_details[network_business_profile]": network_id,
            "usage_limits[currency]": currency, "usage_limits[max_amount]": str(amount)}
    if expires_at:
        form["usage_limits[expires_at]"] = str(expires_at)
    return stripe_call(env, "POST", "/shared_payment/issued_tokens", form, key)


def stripe_challenge(resp):
    from mpp import Challenge
    from mpp.client.transport import _payment_challenges
    found = [Challenge.from_www_authenticate(c) for c in _payment_challenges(resp.headers["WWW-Authenticate"])]
    return {c.method: c for c in found}


def credential(env, challenge, *, spt_amount=None) -> str:
    """pympp's Stripe client method builds the credential; our callback asks the emulation for the SPT."""
    from mpp.methods.stripe.client import StripeMethod

    async def create_token(p):
        r = issue_spt(env, spt_amount or p.amount, p.currency, p.network_id, p.payment_method, expires_at=p.expires_at)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    m = StripeMethod(create_token=create_token, payment_method=env["STRIPE_PAYMENT_METHOD"])
    return asyncio.run(m.create_credential(challenge)).to_authorization()


def probe(sb, path="/compute/provision", body=PLAN):
    r = requests.post(sb.base_url + path, data=raw(body), headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 402, r.text
    return r


def post(sb, auth, path="/compute/provision", body=PLAN, headers=None):
    h = {"Content-Type": "application/json", "Authorization": auth, "Idempotency-Key": str(uuid.uuid4()), **(headers or {})}
    return requests.post(sb.base_url + path, data=raw(body), headers=h, timeout=60)


def intents(sb):
    return sb.sandbox.stripe.emulator.state.intents


def test_402_offers_tempo_and_stripe_and_env_names_the_emulator(sb):
    r = probe(sb)
    ch = stripe_challenge(r)
    assert set(ch) == {"tempo", "stripe"}
    price = int(r.json()["accepts"][0]["maxAmountRequired"])            # micro-USD (USDC, 6 decimals)
    s = ch["stripe"]
    assert s.intent == "charge" and s.request["currency"] == "usd"
    assert int(s.request["amount"]) == -(-price // 10_000)               # the catalog price in cents, rounded up
    assert s.request["methodDetails"] == {"networkId": sb.sandbox.stripe.emulator.network_id, "paymentMethodTypes": ["card"]}
    env = sb.env
    assert env["STRIPE_API_BASE"].startswith("http://127.0.0.1:") and env["STRIPE_SECRET_KEY"].startswith("sk_test_")
    assert env["STRIPE_PAYMENT_METHOD"].startswith("pm_")
    # top-up takes cards too (the Tempo charge is not offered there)
    t = requests.post(sb.base_url + "/compute/credits/topup", data=raw({"amount": 5}),
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert t.status_code == 402 and set(stripe_challenge(t)) == {"stripe"}


def test_pympp_pays_provision_once_then_replay_is_refused(sb):
    r = probe(sb)
    ch = stripe_challenge(r)["stripe"]
    auth = credential(sb.env, ch)
    before = len(intents(sb))
    sent_before = len(sb.sandbox.stripe.transport.sent)
    first = post(sb, auth)
    assert first.status_code == 201, first.text
    body = first.json()
    from mpp import Receipt
    receipt = Receipt.from_payment_receipt(first.headers["Payment-Receipt"])
    assert receipt.method == "stripe" and receipt.reference == body["tx_hash"] and receipt.reference.startswith("pi_")
    pi = intents(sb)[receipt.reference]
    assert pi["status"] == "succeeded" and pi["amount"] == pi["amount_received"] == int(ch.request["amount"])
    assert len(intents(sb)) == before + 1
    assert body["payment"]["method"] == "mpp" and body["payment"]["network"] == "stripe"
    assert body["management_api_key"].startswith("x402c_")              # the payment names no owner
    # pympp's calls went to the emulation, over loopback, and nowhere else
    sent = sb.sandbox.stripe.transport.sent[sent_before:]
    assert sent and all(u.startswith(sb.env["STRIPE_API_BASE"]) for u in sent)
    assert sb.sandbox.stripe.transport.refused == []
    # the same credential again (new Idempotency-Key): refused, nothing charged, nothing provisioned
    orders = len(sb.app.store.all_orders())
    again = post(sb, auth)
    assert again.status_code == 403 and again.json()["type"].endswith("verification-failed")
    assert len(intents(sb)) == before + 1 and len(sb.app.store.all_orders()) == orders


def test_a_consumed_spt_cannot_pay_a_second_challenge(sb):
    """The emulation's single-use rule, through pympp's server method: a fresh challenge, an old SPT."""
    from mpp import Credential
    first = credential(sb.env, stripe_challenge(probe(sb))["stripe"])
    assert post(sb, first).status_code == 201
    spt = Credential.from_authorization(first).payload["spt"]
    ch2 = stripe_challenge(probe(sb))["stripe"]
    from mpp.methods.stripe.client import StripeMethod

    async def reuse(_):
        return spt
    forged = asyncio.run(StripeMethod(create_token=reuse, payment_method="pm_x").create_credential(ch2)).to_authorization()
    n = len(intents(sb))
    r = post(sb, forged)
    assert r.status_code == 402 and "consumed" in r.json()["detail"], r.text
    assert len(intents(sb)) == n


def test_an_spt_for_less_than_the_price_is_refused(sb):
    ch = stripe_challenge(probe(sb))["stripe"]
    auth = credential(sb.env, ch, spt_amount=int(ch.request["amount"]) - 1)
    n = len(intents(sb))
    r = post(sb, auth)
    assert r.status_code == 402 and "max_amount" in r.json()["detail"], r.text
    assert len(intents(sb)) == n


def test_tampered_terms_are_refused_before_stripe_is_called(sb):
    from mpp import Challenge
    ch = stripe_challenge(probe(sb))["stripe"]
    cheap = dict(ch.request, amount="1")
    forged = Challenge(id=ch.id, method=ch.method, intent=ch.intent, request=cheap, realm=ch.realm,
                       request_b64=base64.urlsafe_b64encode(json.dumps(cheap).encode()).decode().rstrip("="),
                       digest=ch.digest, expires=ch.expires, opaque=ch.opaque)
    calls = len(sb.sandbox.stripe.emulator.state.requests)
    r = post(sb, credential(sb.env, forged))
    assert r.status_code == 402 and r.json()["type"].endswith("invalid-challenge")
    # only the SPT creation reached the emulation; no PaymentIntent was attempted
    new = sb.sandbox.stripe.emulator.state.requests[calls:]
    assert [q["path"] for q in new] == ["/v1/shared_payment/issued_tokens"]


def test_emulator_checks_keys_ownership_currency_and_limits(sb):
    env = sb.env
    net = sb.sandbox.stripe.emulator.network_id
    seller = sb.sandbox.stripe.emulator.seller_key
    bad = issue_spt(env, 100, network_id=net, key="sk_test_" + "x" * 40)
    assert bad.status_code == 401 and "x" * 20 not in bad.text              # the key is never echoed
    assert issue_spt(env, 100, network_id=net, key=seller).status_code == 400   # not the seller's card
    assert issue_spt(env, 100, network_id="profile_test_nobody").status_code == 400
    assert issue_spt(env, 100, network_id=net, currency="eur").status_code == 400
    assert issue_spt(env, 0, network_id=net).status_code == 400
    spt = issue_spt(env, 500, network_id=net).json()["id"]

    def pi(amount, currency="usd", key=seller, idem=None, token=spt):
        h = {"Authorization": "Bearer " + key}
        if idem:
            h["Idempotency-Key"] = idem
        return requests.post(env["STRIPE_API_BASE"] + "/payment_intents", timeout=10, headers=h, data={
            "amount": str(amount), "currency": currency, "confirm": "true", "shared_payment_granted_token": token,
            "payment_method_types[0]": "card"})
    assert pi(500, key=env["STRIPE_SECRET_KEY"]).status_code == 400          # the buyer cannot spend its own grant
    assert pi(501).json()["error"]["code"] == "shared_payment_token_amount_exceeded"
    assert pi(500, currency="eur").status_code == 400
    ok = pi(400, idem="k1")
    assert ok.status_code == 200 and ok.json()["status"] == "succeeded"
    replay = pi(400, idem="k1")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json()["id"] == ok.json()["id"]
    assert pi(300, idem="k1").json()["error"]["type"] == "idempotency_error"
    assert pi(100).json()["error"]["code"] == "shared_payment_token_consumed"
    got = stripe_call(env, "GET", "/payment_intents/" + ok.json()["id"], key=seller).json()
    assert got["amount_received"] == 400
    assert stripe_call(env, "GET", "/payment_intents/" + ok.json()["id"]).status_code == 404   # not the buyer's


def test_loopback_transport_refuses_other_hosts(sb):
    import httpx
    t = sb.sandbox.stripe.transport

    async def go(url):
        async with httpx.AsyncClient(transport=t.transport()) as c:
            return await c.get(url)
    with pytest.raises(httpx.ConnectError):
        asyncio.run(go("https://example.com/v1/payment_intents"))
    assert t.refused[-1] == "https://example.com/v1/payment_intents"
    r = asyncio.run(go("https://api.stripe.com/v1/payment_intents/pi_nothing"))   # rewritten, never sent out
    assert r.status_code == 401 and t.sent[-1].startswith(sb.env["STRIPE_API_BASE"])


def test_env_file_holds_the_stripe_test_values_0600(sb, tmp_path):
    import os
    import stat
    path = sb.sandbox.write_env_file(str(tmp_path / "sandbox.env"))
    text = open(path).read()
    for k in ("STRIPE_SECRET_KEY", "STRIPE_PAYMENT_METHOD", "STRIPE_API_BASE"):
        assert f"{k}={sb.env[k]}" in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_whole_card_payment_connects_to_loopback_only(sb, monkeypatch):
    """Every socket the process opens while a card payment is made and verified (the test's own
    requests, the SPT call, pympp's PaymentIntent call) goes to 127.0.0.0/8."""
    import ipaddress
    import socket
    seen = []
    real = socket.socket.connect

    def connect(self, address):
        seen.append(address)
        return real(self, address)
    monkeypatch.setattr(socket.socket, "connect", connect)
    ch = stripe_challenge(probe(sb))["stripe"]
    r = post(sb, credential(sb.env, ch))
    assert r.status_code == 201, r.text
    monkeypatch.undo()
    hosts = {a[0] for a in seen if isinstance(a, tuple)}
    assert hosts and all(ipaddress.ip_address(h).is_loopback for h in hosts), hosts
    ports = {a[1] for a in seen if isinstance(a, tuple)}
    assert int(sb.env["STRIPE_API_BASE"].split(":")[2].split("/")[0]) in ports   # the emulator was reached
