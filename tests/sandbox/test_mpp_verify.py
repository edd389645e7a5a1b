"""MPP challenge issue and credential verification (x402_compute_sandbox/mpp.py), by plain calls.

pympp is the independent client: it parses our challenges, verifies their HMAC binding with the
same secret, and builds the credentials (its Tempo charge method signs the 0x76 transaction,
reading chain id and gas from the ledger's JSON-RPC on a loopback port).
"""
from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from x402_compute_sandbox import mpp as smpp
from x402_compute_sandbox import tempo

pytest.importorskip("mpp")

from eth_account import Account  # noqa: E402

PAYER_KEY = "0x" + "a1" * 32
POOR_KEY = "0x" + "a2" * 32
PAYEE = "0x" + "5e" * 20
REALM = "127.0.0.1:8402"
PATH = "/compute/provision"
BODY = json.dumps({"plan": "vc2-1c-1gb", "region": "ewr", "os_id": 2284, "prepaid_hours": 24}).encode()
AMOUNT = 249_600


class Headers(dict):
    def get(self, name, default=None):
        for k, v in self.items():
            if k.lower() == name.lower():
                return v
        return default


class Req:
    def __init__(self, method="POST", path=PATH, body=BODY, headers=None):
        self.method, self.path, self.body, self.headers = method, path, body, Headers(headers or {})


class Offer:
    def __init__(self, amount=AMOUNT, description="Provision vc2-1c-1gb in ewr for 24h"):
        self.amount_usd_micros, self.description = amount, description
        self.resource, self.networks = "http://127.0.0.1:8402" + PATH, ["base"]


@pytest.fixture
def ledger():
    return tempo.TempoLedger(funded=[Account.from_key(PAYER_KEY).address], fund_usd=100)


@pytest.fixture
def rpc_url(ledger):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            out = json.dumps(ledger.handle_http(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/rpc/tempo"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(ledger, tmp_path):
    s = smpp.Mpp(ledger, state_dir=str(tmp_path), recipient=PAYEE, realm=REALM)
    yield s
    s.consumed.close()


def pay(challenge_header: str, rpc_url: str, key: str = PAYER_KEY, **method_kw) -> str:
    """pympp builds the credential for a challenge header; returns the Authorization value."""
    from mpp import Challenge
    from mpp.methods.tempo import TempoAccount
    from mpp.methods.tempo import client as tempo_client
    from mpp.runtime import PaymentRuntime

    method = tempo_client.charge(account=TempoAccount.from_key(key), chain_id=4217, rpc_url=rpc_url,
                                 currency=tempo.USDC_E, **method_kw)
    runtime = PaymentRuntime([method])
    ch, m = runtime.match_challenge([Challenge.from_www_authenticate(challenge_header)])
    return asyncio.run(runtime.create_credential(ch, m)).to_authorization()


def challenge(server, req=None, offer=None) -> str:
    return server.challenge_headers(req or Req(), offer or Offer())["WWW-Authenticate"]


def refused(server, auth, *, req=None, amount=AMOUNT):
    req = req or Req(headers={"Authorization": auth})
    with pytest.raises(smpp.MppRefusal) as e:
        server.verify(req, amount)
    return e.value


def test_challenge_is_pympp_compatible_and_hmac_bound(server, tmp_path):
    from mpp import Challenge
    ch = Challenge.from_www_authenticate(challenge(server))
    assert (ch.method, ch.intent, ch.realm) == ("tempo", "charge", REALM)
    assert ch.request == {"amount": str(AMOUNT), "currency": tempo.USDC_E, "recipient": tempo.checksum(
        bytes.fromhex(PAYEE[2:])), "methodDetails": {"chainId": 4217}}
    assert ch.digest == smpp.body_digest(BODY)
    # pympp recomputes the id with our secret: the binding is exactly pympp's.
    secret = open(tmp_path / "mpp-secret").read().strip()
    assert ch.verify(secret, REALM)
    assert not ch.verify("0" * 64, REALM)
    assert stat.S_IMODE(os.stat(tmp_path / "mpp-secret").st_mode) == 0o600
    # Two identical requests get distinct challenges (random opaque nonce).
    assert Challenge.from_www_authenticate(challenge(server)).id != ch.id


def test_secret_persists_per_state_dir(ledger, tmp_path):
    a = smpp.Mpp(ledger, state_dir=str(tmp_path), recipient=PAYEE, realm=REALM)
    header = challenge(a)
    b = smpp.Mpp(ledger, state_dir=str(tmp_path), recipient=PAYEE, realm=REALM)   # a "restart"
    from mpp import Challenge
    assert Challenge.from_www_authenticate(header).verify(b._secret.decode(), REALM)


def test_pympp_credential_settles_once(server, ledger, rpc_url):
    from mpp import Receipt
    payer = Account.from_key(PAYER_KEY).address
    before = ledger.balance_of(payer)
    auth = pay(challenge(server), rpc_url, max_atomic_amount=AMOUNT, expected_recipients=[PAYEE])
    paid = server.verify(Req(headers={"Authorization": auth}), AMOUNT)
    assert paid.payer == payer and paid.amount_atomic == AMOUNT
    assert ledger.balance_of(PAYEE) == AMOUNT
    assert ledger.balance_of(payer) == before - AMOUNT - tempo.decode_tx(
        bytes.fromhex(json.loads(smpp.b64url_decode(auth.split()[1]))["payload"]["signature"][2:])).fee_micros
    r = Receipt.from_payment_receipt(paid.receipt_header)
    assert (r.status, r.method, r.reference) == ("success", "tempo", paid.tx_hash)
    assert server.consumed.count() == 1
    # The same credential again: 403 verification-failed, no second settlement.
    again = refused(server, auth)
    assert (again.status, again.slug, again.fresh) == (403, "verification-failed", False)
    assert ledger.balance_of(PAYEE) == AMOUNT and server.consumed.count() == 1


def test_replay_refused_after_restart(server, ledger, rpc_url, tmp_path):
    auth = pay(challenge(server), rpc_url)
    server.verify(Req(headers={"Authorization": auth}), AMOUNT)
    fresh = smpp.Mpp(ledger, state_dir=str(tmp_path), recipient=PAYEE, realm=REALM)
    assert refused(fresh, auth).status == 403


def _mutate(auth: str, fn) -> str:
    cred = json.loads(smpp.b64url_decode(auth.split(" ", 1)[1]))
    fn(cred)
    return "Payment " + smpp.b64url(json.dumps(cred).encode())


def test_tampered_request_amount_or_recipient_breaks_the_hmac(server, rpc_url):
    auth = pay(challenge(server), rpc_url)
    for field, value in (("amount", "1"), ("recipient", "0x" + "66" * 20)):
        def edit(c):
            req = json.loads(smpp.b64url_decode(c["challenge"]["request"]))
            req[field] = value
            c["challenge"]["request"] = smpp.b64url(smpp.jcs(req))
        r = refused(server, _mutate(auth, edit))
        assert (r.status, r.slug) == (402, "invalid-challenge")


def _resign(auth: str, *, amount=None, recipient=None, memo="keep", key=PAYER_KEY) -> str:
    """Re-sign the credential's transaction with one field changed (the payer cheating)."""
    from pytempo import Call, TempoTransaction
    cred = json.loads(smpp.b64url_decode(auth.split(" ", 1)[1]))
    d = tempo.decode_tx(bytes.fromhex(cred["payload"]["signature"][2:]))
    t = tempo.decode_transfer(d.calls[0])
    m = t.memo if memo == "keep" else memo
    sel = tempo.SEL_TRANSFER_WITH_MEMO if m is not None else tempo.SEL_TRANSFER
    data = (sel + bytes(12) + bytes.fromhex((recipient or t.recipient)[2:])
            + (amount if amount is not None else t.amount).to_bytes(32, "big") + (m or b""))
    tx = TempoTransaction.create(chain_id=d.chain_id, gas_limit=d.gas_limit, max_fee_per_gas=d.max_fee_per_gas,
                                 max_priority_fee_per_gas=d.max_priority_fee_per_gas, nonce=0,
                                 nonce_key=d.nonce_key, fee_token=d.fee_token, valid_before=d.valid_before,
                                 calls=(Call.create(to=tempo.USDC_E, value=0, data=data),))
    cred["payload"]["signature"] = "0x" + tx.sign(key).encode().hex()
    if key != PAYER_KEY:
        cred.pop("source", None)
    return "Payment " + smpp.b64url(json.dumps(cred).encode())


@pytest.mark.parametrize("change, detail", [
    ({"amount": AMOUNT - 1}, "amount"),
    ({"recipient": "0x" + "66" * 20}, "recipient"),
    ({"memo": b"\xef\x1e\xd7\x12\x01" + b"\x00" * 27}, "memo"),
])
def test_tampered_transaction_is_refused(server, ledger, rpc_url, change, detail):
    auth = _resign(pay(challenge(server), rpc_url), **change)
    r = refused(server, auth)
    assert (r.status, r.slug) == (402, "verification-failed") and detail in r.detail
    assert ledger.balance_of(PAYEE) == 0


def test_plain_transfer_without_memo_is_accepted(server, ledger, rpc_url):
    auth = _resign(pay(challenge(server), rpc_url), memo=None)
    server.verify(Req(headers={"Authorization": auth}), AMOUNT)
    assert ledger.balance_of(PAYEE) == AMOUNT


def test_source_must_name_the_signer(server, rpc_url):
    auth = _mutate(pay(challenge(server), rpc_url), lambda c: c.update(source="did:pkh:eip155:4217:0x" + "77" * 20))
    assert "source" in refused(server, auth).detail


def test_memo_bound_to_another_challenge_is_refused(server, rpc_url):
    # A transaction signed for challenge A, presented with challenge B's (valid) echo.
    a = pay(challenge(server), rpc_url)
    b = pay(challenge(server), rpc_url)
    tx_a = json.loads(smpp.b64url_decode(a.split()[1]))["payload"]["signature"]
    r = refused(server, _mutate(b, lambda c: c["payload"].update(signature=tx_a)))
    assert r.slug == "verification-failed" and "memo" in r.detail


def test_expired_challenge(server, rpc_url):
    auth = pay(challenge(server), rpc_url)
    server.clock = lambda: __import__("time").time() + smpp.CHALLENGE_TTL_SECONDS + 1
    r = refused(server, auth)
    assert (r.status, r.slug) == (402, "payment-expired")


def test_challenge_for_other_params_is_refused(server, rpc_url):
    # A genuine challenge for a cheaper request cannot pay this one...
    cheap = pay(challenge(server, offer=Offer(amount=1000)), rpc_url)
    assert "other payment terms" in refused(server, cheap).detail
    # ...nor one for another body, nor another endpoint.
    auth = pay(challenge(server), rpc_url)
    assert "body differs" in refused(server, auth, req=Req(body=BODY + b" ", headers={"Authorization": auth})).detail
    other = Req(path="/compute/instances/x/extend", headers={"Authorization": auth})
    assert "another endpoint" in refused(server, auth, req=other).detail


def test_foreign_secret_or_realm(server, ledger, rpc_url, tmp_path):
    other = smpp.Mpp(ledger, state_dir=str(tmp_path / "other"), recipient=PAYEE, realm=REALM)
    auth = pay(challenge(other), rpc_url)
    assert refused(server, auth).slug == "invalid-challenge"
    moved = smpp.Mpp(ledger, state_dir=str(tmp_path), recipient=PAYEE, realm="127.0.0.1:9999")
    assert "realm" in refused(moved, pay(challenge(server), rpc_url)).detail


def test_insufficient_balance(server, ledger, rpc_url):
    auth = pay(challenge(server), rpc_url, key=POOR_KEY)
    r = refused(server, auth)
    assert (r.status, r.slug) == (402, "payment-insufficient")
    assert server.consumed.count() == 0


@pytest.mark.parametrize("value, slug", [
    ("Payment !!!", "malformed-credential"),
    ("Payment " + smpp.b64url(b"[1]"), "malformed-credential"),
    ("Payment " + smpp.b64url(json.dumps({"challenge": {"method": "stripe", "intent": "charge"},
                                          "payload": {}}).encode()), "method-unsupported"),
])
def test_malformed_credentials(server, value, slug):
    assert refused(server, value).slug == slug


def test_problem_body_shape():
    p = smpp.MppRefusal(402, "payment-expired", "late").problem()
    assert p == {"type": "https://paymentauth.org/problems/payment-expired", "title": "Payment Expired",
                 "status": 402, "detail": "late", "error": "late"}


def test_jcs_and_memo_helpers_match_pympp():
    from mpp._canonical import (
        canonical_b64url,  # the reference implementation (rfc8785)
    )
    from mpp.methods.tempo._attribution import encode
    obj = {"b": [1, "x"], "a": {"z": True, "é": None, "A": "ü"}, "methodDetails": {"chainId": 4217}}
    assert smpp.b64url(smpp.jcs(obj)) == canonical_b64url(obj)
    assert "0x" + smpp.attribution_memo(REALM, "cid").hex() == encode(challenge_id="cid", server_id=REALM)
    assert smpp.memo_bound(smpp.attribution_memo(REALM, "cid", "someone"), REALM, "cid")
    assert not smpp.memo_bound(smpp.attribution_memo(REALM, "cid"), REALM, "cid2")
