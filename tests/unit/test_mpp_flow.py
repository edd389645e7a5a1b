"""The flow's MPP path against scripted 402s (fake transport; the signer is injected, so no pympp).

What is checked: MPP is chosen automatically only when it is the only offer the wallet can pay;
the same policy, payee pin, journal, Idempotency-Key and single-resend rules as x402 apply; the
Payment-Receipt becomes the output's tx hash.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from x402_compute.api.auth import AuthResolver
from x402_compute.config import load_settings
from x402_compute.errors import (
    NetworkError,
    PaymentOutcomeUnknown,
    PaymentRequired,
    PolicyError,
)
from x402_compute.api.http import Response
from x402_compute.api.client import ComputeClient
from x402_compute.payments.flow import PaidCall, PaymentFlow
from x402_compute.payments.journal import Journal, new_id
from x402_compute.payments.policy import PayeePins
from x402_compute.payments.options import Signers
from x402_compute.payments.policy import Limits
from x402_compute.payments.schemes.mpp_tempo import MppSigned

USDC_E = "0x20C000000000000000000000b9537d11c60E8b50"
PAYEE = "0x" + "5e" * 20
KEY = "0x" + "a1" * 32


def b64url(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def mpp_header(amount="249600", currency=USDC_E, recipient=PAYEE, chain=4217, expires=None, cid="cid1"):
    req = {"amount": amount, "currency": currency, "recipient": recipient, "methodDetails": {"chainId": chain}}
    exp = expires or (datetime.now(timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return (f'Payment id="{cid}", realm="127.0.0.1:9", method="tempo", intent="charge", '
            f'request="{b64url(req)}", expires="{exp}"')


class FakeClient:
    drive = ComputeClient.drive  # the real loop over the flow; only ``send`` is scripted

    def __init__(self, tmp_path, answers, private_key=KEY):
        env = {"X402_COMPUTE_STATE_DIR": str(tmp_path), "COMPUTE_BASE_URL": "http://127.0.0.1:9"}
        if private_key:
            env["PRIVATE_KEY"] = private_key
        self.settings = load_settings(environ=env)
        self.answers = list(answers)
        self.sent = []

    def send(self, method, path, *, raw_body=None, auth=None, headers=None, **kw):
        self.sent.append({"method": method, "path": path, "body": raw_body, "headers": dict(headers or {})})
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a


class NoManagementAuth(AuthResolver):
    """A wallet that pays, but no management credential (the scripted server asks for none)."""

    def default(self):
        from x402_compute.errors import ConfigError
        raise ConfigError("no auth configured")


def make_flow(client, *, x402_signer=None, mpp_signer=None, auths=None, **kw):
    signers = Signers()
    if x402_signer is not None:
        signers.x402 = x402_signer
    if mpp_signer is not None:
        signers.mpp = mpp_signer
    return PaymentFlow(client.settings, auths or NoManagementAuth(client.settings), confirm=lambda q, d: None,
                       signers=signers, **kw)


def r402(headers, body=None):
    return Response(402, headers, json.dumps(body or {"error": "payment required"}).encode())


def receipt(ref="0xabc"):
    return b64url({"method": "tempo", "reference": ref, "status": "success", "timestamp": "2026-01-01T00:00:00.000Z"})


def run(tmp_path, answers, *, pay="auto", private_key=KEY, network="base", expected=249600, network_explicit=False):
    client = FakeClient(tmp_path, answers, private_key)
    signs = []

    def mpp_signer(offer, settings, *, max_atomic, recipient):
        signs.append((offer, max_atomic, recipient))
        return MppSigned(authorization=f"Payment cred{len(signs)}", header="Authorization", payer="0xPayer", tx_hash="0xabc")

    def x402_signer(offer, settings):
        raise AssertionError("x402 must not be signed here")

    flow = make_flow(client, pay=pay, x402_signer=x402_signer, mpp_signer=mpp_signer)
    call = PaidCall(kind="provision", path="/compute/provision", body={"plan": "p", "label": "x"}, network=network,
                    network_explicit=network_explicit, limits=Limits(Decimal(25), "default", expected), terms={},
                    journal_id=new_id())
    try:
        return client.drive(flow.steps(call)), client, signs, None
    except Exception as e:  # noqa: BLE001
        return None, client, signs, e


def ok201(headers=None):
    return Response(201, {"Payment-Receipt": receipt(), **(headers or {})},
                    json.dumps({"order": {"id": "o1"}, "tx_hash": "0xabc"}).encode())


def test_auto_picks_mpp_when_it_is_the_only_payable_offer(tmp_path):
    only_mpp = r402({"WWW-Authenticate": mpp_header()})
    res, client, signs, err = run(tmp_path, [only_mpp, only_mpp, ok201()])
    assert err is None, err
    assert len(signs) == 1 and res.method == "mpp"
    paid = client.sent[-1]["headers"]
    assert paid["Authorization"] == "Payment cred1" and paid["Idempotency-Key"]
    p = res.payment()
    assert p["method"] == "mpp" and p["network"] == "tempo" and p["tx_hash"] == "0xabc"
    assert p["receipt"]["status"] == "success" and p["amount_usd"] == "0.2496" and p["payee"] == PAYEE
    e = Journal(tmp_path).get(res.journal_id)
    assert e["status"] == "settled" and e["method"] == "mpp" and e["payment_header_value"] == "Payment cred1"
    assert PayeePins(tmp_path).load()["tempo"]["pay_to"] == PAYEE


def test_auto_never_trades_a_named_network_for_mpp(tmp_path):
    # --network base was asked for: Tempo is another rail, so say what is offered instead of paying it.
    only_mpp = r402({"WWW-Authenticate": mpp_header()})
    res, client, signs, err = run(tmp_path, [only_mpp, only_mpp], network_explicit=True)
    assert isinstance(err, PaymentRequired) and err.code == "network_not_offered" and signs == []
    assert err.details["mpp"]


def test_auto_without_an_evm_key_does_not_pay_mpp(tmp_path):
    only_mpp = r402({"WWW-Authenticate": mpp_header()})
    res, client, signs, err = run(tmp_path, [only_mpp, only_mpp], private_key=None)
    assert isinstance(err, PaymentRequired) and err.code == "network_not_offered" and signs == []
    assert "--pay mpp" in (err.hint or "")


def test_auto_prefers_x402_when_offered(tmp_path):
    v1 = {"x402Version": 1, "accepts": [{"scheme": "exact", "network": "base", "maxAmountRequired": "249600",
                                         "asset": "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "payTo": PAYEE}]}
    res, client, signs, err = run(tmp_path, [r402({"WWW-Authenticate": mpp_header()}, v1)])
    assert isinstance(err, AssertionError) and "x402 must not be signed" in str(err) and signs == []


def test_ambiguous_outcome_resends_the_same_credential_once(tmp_path):
    boom = NetworkError("reset", details={"sent": True})
    res, client, signs, err = run(tmp_path, [r402({"WWW-Authenticate": mpp_header()}), boom, Response(503, {}, b"")],
                                  pay="mpp")
    assert isinstance(err, PaymentOutcomeUnknown) and len(signs) == 1
    paid = [s for s in client.sent if "Authorization" in s["headers"]]
    assert len(paid) == 2 and paid[0]["headers"] == paid[1]["headers"]
    assert Journal(tmp_path).get(err.details["journal_id"])["status"] == "unknown"


def test_problem_402_is_a_rejection_without_a_second_payment(tmp_path):
    problem = {"type": "https://paymentauth.org/problems/payment-insufficient", "title": "Payment Insufficient",
               "status": 402, "detail": "sender holds 3", "error": "sender holds 3"}
    res, client, signs, err = run(tmp_path, [r402({"WWW-Authenticate": mpp_header()}),
                                             r402({"WWW-Authenticate": mpp_header(cid="cid2")}, problem)], pay="mpp")
    assert isinstance(err, PaymentRequired) and err.code == "payment_rejected" and "sender holds 3" in err.message
    assert len(signs) == 1 and len(client.sent) == 2


# Headers are built inside the test: built at collection time, their 5-minute expiry
# could pass before a long suite reaches them and every case would read challenge_expired.
@pytest.mark.parametrize("header_kw, code", [
    ({"currency": "0x20c0000000000000000000000000000000000000"}, "unknown_asset"),
    ({"chain": 42431}, "unknown_network"),
    ({"amount": "26000000"}, "spend_cap_exceeded"),
    ({"amount": "300000"}, "price_mismatch"),
    ({"expires": "2020-01-01T00:00:00.000Z"}, "challenge_expired"),
])
def test_policy_refuses_before_signing(tmp_path, header_kw, code):
    res, client, signs, err = run(tmp_path, [r402({"WWW-Authenticate": mpp_header(**header_kw)})], pay="mpp")
    assert isinstance(err, PolicyError) and err.code == code and signs == [] and len(client.sent) == 1


def test_changed_tempo_payee_is_refused(tmp_path):
    PayeePins(tmp_path).ledger.set_pin("tempo", {"pay_to": "0x" + "77" * 20})
    res, client, signs, err = run(tmp_path, [r402({"WWW-Authenticate": mpp_header()})], pay="mpp")
    assert isinstance(err, PolicyError) and err.code == "payee_changed" and signs == []
    # Same address in other letter case is the same EVM payee.
    PayeePins(tmp_path).ledger.set_pin("tempo", {"pay_to": PAYEE.upper().replace("0X", "0x")})
    res, client, signs, err = run(tmp_path, [r402({"WWW-Authenticate": mpp_header()}), ok201()], pay="mpp")
    assert err is None and len(signs) == 1


def test_pay_mpp_without_an_mpp_offer(tmp_path):
    res, client, signs, err = run(tmp_path, [r402({}, {"x402Version": 1, "accepts": []})], pay="mpp")
    assert isinstance(err, PaymentRequired) and err.code == "mpp_not_offered" and signs == []


def test_extend_via_mpp_without_management_auth_refuses_before_signing(tmp_path):
    client = FakeClient(tmp_path, [r402({"WWW-Authenticate": mpp_header()})])
    flow = make_flow(client, pay="mpp", mpp_signer=lambda *a, **k: pytest.fail("signed without auth"))
    iid = "3f1c2a9e-0000-4000-8000-000000000001"  # a real id: State refuses anything else as a file name
    call = PaidCall(kind="extend", path=f"/compute/instances/{iid}/extend", body={"extend_hours": 24}, network="base",
                    limits=Limits(Decimal(25), "default", 249600), terms={}, journal_id=new_id(),
                    context={"instance_id": iid}, what="Extend")
    with pytest.raises(Exception) as e:
        client.drive(flow.steps(call))
    assert getattr(e.value, "code", None) == "auth_required"
