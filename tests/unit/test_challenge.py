"""Challenge parsing: x402 v1 bodies, x402 v2 headers, MPP WWW-Authenticate, and garbage."""

from __future__ import annotations

import base64
import json
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
from x402_compute.payments import challenge as ch
from x402_compute.payments.flow import PaidCall, PaymentFlow
from x402_compute.payments.journal import Journal, new_id
from x402_compute.payments.model import Signed
from x402_compute.payments.options import Signers
from x402_compute.payments.policy import Limits

from tests.helpers import finishes

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"


def b64(obj) -> str:
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def b64url(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def v1_body(**over):
    req = {"scheme": "exact", "network": "base", "maxAmountRequired": "249600", "resource": "https://x/compute/provision",
           "description": "d", "payTo": PAYEE, "asset": BASE_USDC, "maxTimeoutSeconds": 300, "extra": {"name": "USD Coin", "version": "2"}}
    req.update(over)
    return {"x402Version": 1, "error": "X-PAYMENT header is required", "accepts": [req]}


def mpp_request(amount="249600"):
    return {"amount": amount, "currency": "0x20C000000000000000000000b9537d11c60E8b50", "recipient": "0xabc", "methodDetails": {"chainId": 4217}}


def test_v1_body():
    c = ch.parse_challenge(402, {}, v1_body())
    assert c.version == 1 and len(c.offers) == 1 and c.mpp == []
    o = c.offers[0]
    assert (o.key, o.amount, o.asset, o.pay_to, o.max_timeout_seconds) == ("base", 249600, BASE_USDC, PAYEE, 300)
    assert o.resource == "https://x/compute/provision"
    assert isinstance(o.amount, int)


def test_v1_amount_must_be_whole_atomic():
    with pytest.raises(ch.ChallengeError):
        ch.parse_challenge(402, {}, v1_body(maxAmountRequired="0.25"))
    with pytest.raises(ch.ChallengeError):
        ch.parse_challenge(402, {}, v1_body(maxAmountRequired="-5"))


def test_v2_header_wins_and_keeps_raw():
    req = {"scheme": "exact", "network": "eip155:4326", "amount": "249600000000000000", "asset": "0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7",
           "payTo": PAYEE, "maxTimeoutSeconds": 60, "extra": {"name": "MegaUSD", "version": "1"}}
    pr = {"x402Version": 2, "resource": {"url": "https://x/compute/provision"}, "accepts": [req], "extensions": {"e": {"info": {"a": 1}, "schema": {}}}}
    c = ch.parse_challenge(402, {"PAYMENT-REQUIRED": b64(pr)}, {"error": "x"})
    assert c.version == 2
    o = c.offers[0]
    assert o.key == "megaeth" and o.amount == 249600000000000000 and o.raw == req
    assert c.resource == {"url": "https://x/compute/provision"}
    assert c.extensions == {"e": {"info": {"a": 1}, "schema": {}}}


def test_v2_header_garbage_is_a_clear_error():
    with pytest.raises(ch.ChallengeError) as e:
        ch.parse_challenge(402, {"PAYMENT-REQUIRED": "%%%not-base64%%%"}, None)
    assert e.value.code == "bad_challenge"
    with pytest.raises(ch.ChallengeError):
        ch.parse_challenge(402, {"PAYMENT-REQUIRED": b64({"x402Version": 2})}, None)


def test_no_challenge_at_all():
    with pytest.raises(ch.ChallengeError) as e:
        ch.parse_challenge(402, {}, {"error": "nope"})
    assert "no challenge" in e.value.message
    with pytest.raises(ch.ChallengeError):
        ch.parse_challenge(402, {}, None)


def test_mpp_several_params_and_challenges():
    header = (
        f'Payment id="abc", realm="compute.x402layer.cc", method="tempo", intent="charge", '
        f'request="{b64url(mpp_request())}", expires="2026-01-01T00:00:00Z", digest="sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", '
        f'Bearer realm="api", Payment id=def, realm=x, method=stripe, intent=charge, request={b64url(mpp_request("5"))}'
    )
    c = ch.parse_challenge(402, {"WWW-Authenticate": header}, v1_body())
    assert c.version == 1 and len(c.mpp) == 2
    t, s = c.mpp
    assert (t.id, t.method, t.intent, t.amount, t.chain_id, t.expires) == ("abc", "tempo", "charge", 249600, 4217, "2026-01-01T00:00:00Z")
    assert t.params["digest"] == "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
    assert t.params["realm"] == "compute.x402layer.cc"
    assert t.header.startswith('Payment id="abc"') and "Bearer" not in t.header
    assert (s.id, s.method, s.amount) == ("def", "stripe", 5)


def test_mpp_alone_is_a_challenge():
    header = f'Payment id="a", realm="r", method="tempo", intent="charge", request="{b64url(mpp_request())}"'
    c = ch.parse_challenge(402, {"WWW-Authenticate": header}, {"error": "payment required"})
    assert c.version is None and c.offers == [] and len(c.mpp) == 1


def test_mpp_garbage():
    bad = 'Payment id="a", method="tempo", intent="charge", request="!!!"'
    with pytest.raises(ch.ChallengeError):
        ch.parse_challenge(402, {"WWW-Authenticate": bad}, None)
    # x402 offers still usable when the MPP header is broken
    c = ch.parse_challenge(402, {"WWW-Authenticate": bad}, v1_body())
    assert c.offers and c.mpp == []
    with pytest.raises(ch.ChallengeError):
        ch.parse_auth_header('Payment id="unterminated')


def test_payment_header_v1_and_v2_roundtrip():
    c1 = ch.parse_challenge(402, {}, v1_body())
    signed = Signed(payload={"signature": "0x01", "authorization": {"value": "249600"}}, payer="0xme", nonce="0x02")
    name, value = ch.payment_header(c1, c1.offers[0], signed)
    assert name == "X-PAYMENT"
    assert json.loads(base64.b64decode(value)) == {"x402Version": 1, "scheme": "exact", "network": "base", "payload": signed.payload}
    assert value == base64.b64encode(base64.b64decode(value)).decode()  # standard padded base64

    req = {"scheme": "exact", "network": "eip155:8453", "amount": "1", "asset": BASE_USDC, "payTo": PAYEE, "maxTimeoutSeconds": 60, "extra": {"name": "USD₮0", "version": "2"}}
    pr = {"x402Version": 2, "resource": {"url": "u"}, "accepts": [req], "extensions": {"x": {"info": {"a": 1}, "schema": {"type": "object"}}}}
    c2 = ch.parse_challenge(402, {"PAYMENT-REQUIRED": b64(pr)}, {})
    s2 = Signed(payload={"p": 1}, payer="0xme", nonce="n", extensions={"x": {"info": {"b": 2}}})
    name, value = ch.payment_header(c2, c2.offers[0], s2)
    doc = json.loads(base64.b64decode(value).decode("utf-8"))
    assert name == "PAYMENT-SIGNATURE"
    assert doc["accepted"] == req and doc["resource"] == {"url": "u"}
    assert doc["extensions"] == {"x": {"info": {"a": 1, "b": 2}, "schema": {"type": "object"}}}
    assert "USD₮0".encode() in base64.b64decode(value)  # UTF-8, not \u escapes


def test_settlement_and_rejection_reason():
    class R:
        def __init__(self, headers, body):
            self.headers, self._body = headers, body

        def json(self):
            return self._body

    sr = {"success": False, "errorReason": "insufficient_funds", "transaction": "", "network": "base"}
    assert ch.settlement({"X-PAYMENT-RESPONSE": b64(sr)}) == sr
    assert ch.rejection_reason(R({"PAYMENT-RESPONSE": b64(sr)}, {"error": "other"})).startswith("insufficient_funds")
    assert ch.rejection_reason(R({}, {"error": "invalid_exact_evm_payload_signature"})) == "invalid_exact_evm_payload_signature"


# -- the flow's answers to 402s a real server is hard to make produce (fake transport) ----------


class FakeClient:
    """Answers ``send`` from a script of responses and records every request."""

    drive = ComputeClient.drive  # the real loop over the flow; only ``send`` is scripted
    env: dict = {}

    def __init__(self, tmp_path, answers):
        self.settings = load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path), "COMPUTE_BASE_URL": "http://127.0.0.1:9", **self.env})
        self.answers = list(answers)
        self.sent = []

    def send(self, method, path, *, raw_body=None, auth=None, headers=None, **kw):
        self.sent.append({"method": method, "path": path, "body": raw_body, "headers": dict(headers or {})})
        a = self.answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a


def r402(body, headers=None):
    return Response(402, headers or {}, json.dumps(body).encode())


def run_flow(tmp_path, answers, network="base"):
    client = FakeClient(tmp_path, answers)
    signs = []

    def signer(offer, settings):
        signs.append(offer)
        return Signed(payload={"n": len(signs)}, payer="0xme", nonce=f"0x{len(signs)}")

    flow = PaymentFlow(client.settings, AuthResolver(client.settings), confirm=lambda q, d: None, signers=Signers(x402=signer))
    call = PaidCall(kind="provision", path="/compute/provision", body={"plan": "p", "label": "x"}, network=network,
                    limits=Limits(Decimal(25), "default", 249600), terms={}, journal_id=new_id())
    try:
        return client.drive(flow.steps(call)), client, signs, None
    except Exception as e:  # noqa: BLE001
        return None, client, signs, e


def test_absent_network_reprobes_with_x_accept_networks(tmp_path):
    solana_only = v1_body(network="solana", asset="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", payTo="So1")
    ok = Response(201, {}, json.dumps({"order": {"id": "o"}, "tx_hash": "0xt"}).encode())
    res, client, signs, err = run_flow(tmp_path, [r402(solana_only), r402(v1_body()), ok])
    assert err is None and res.tx_hash == "0xt" and len(signs) == 1
    assert "X-Accept-Networks" not in client.sent[0]["headers"] and client.sent[1]["headers"]["X-Accept-Networks"] == "base"
    assert len({s["body"] for s in client.sent}) == 1  # identical body bytes on every request
    assert client.sent[2]["headers"]["X-PAYMENT"] and client.sent[2]["headers"]["Idempotency-Key"]
    # still absent after the re-probe: a clear error, nothing signed
    res, client, signs, err = run_flow(tmp_path, [r402(solana_only), r402(solana_only)])
    assert isinstance(err, PaymentRequired) and err.code == "network_not_offered" and signs == []


def test_ambiguous_twice_is_unknown_with_one_signature(tmp_path):
    boom = NetworkError("reset", details={"sent": True})
    res, client, signs, err = run_flow(tmp_path, [r402(v1_body()), boom, Response(503, {}, b"")])
    assert isinstance(err, PaymentOutcomeUnknown) and err.exit_code == 4 and len(signs) == 1
    paid = [s for s in client.sent if "X-PAYMENT" in s["headers"]]
    assert len(paid) == 2 and paid[0]["headers"] == paid[1]["headers"]  # the same payload and key, resent once
    assert Journal(tmp_path).get(err.details["journal_id"])["status"] == "unknown"


def test_402_answering_our_payment_is_a_rejection(tmp_path):
    sr = {"success": False, "errorReason": "insufficient_funds", "transaction": "", "network": "base"}
    res, client, signs, err = run_flow(tmp_path, [r402(v1_body()), r402(v1_body(), {"X-PAYMENT-RESPONSE": b64(sr)})])
    assert isinstance(err, PaymentRequired) and err.code == "payment_rejected" and "insufficient_funds" in err.message
    assert len(signs) == 1 and len(client.sent) == 2


def test_not_sent_is_not_ambiguous(tmp_path):
    res, client, signs, err = run_flow(tmp_path, [r402(v1_body()), NetworkError("refused", details={"sent": False})])
    assert isinstance(err, NetworkError) and err.exit_code == 1 and len(client.sent) == 2
    assert Journal(tmp_path).list()[0]["status"] == "not_sent"


# -- the audit: hostile numbers, floats in the requirement, credits without a price --------------


def _v1_raw(amount_json: bytes, extra_json: bytes = b"") -> Response:
    req = (b'{"scheme":"exact","network":"base","maxAmountRequired":' + amount_json +
           b',"payTo":"' + PAYEE.encode() + b'","asset":"' + BASE_USDC.encode() + b'"' + extra_json + b"}")
    return Response(402, {}, b'{"x402Version":1,"accepts":[' + req + b"]}")


@pytest.mark.parametrize("amount", [b"1e999999999", b"1e400", b"9" * 79, b"Infinity", b"-Infinity", b"NaN"])
def test_huge_or_non_finite_amounts_are_refused_at_once(amount):
    with pytest.raises(ch.ChallengeError):  # 1e999999999 used to build a billion-digit int (a hang)
        finishes(lambda: ch.from_response(_v1_raw(amount)), "parsing the amount")


@pytest.mark.parametrize("mts", [b"Infinity", b"NaN", b"1e999999999", b"\"soon\"", b"true", b"12.5"])
def test_an_unreadable_max_timeout_is_ignored_not_a_crash(mts):
    o = finishes(lambda: ch.from_response(_v1_raw(b'"249600"', b',"maxTimeoutSeconds":' + mts)), "parsing maxTimeoutSeconds").offers[0]
    assert o.max_timeout_seconds is None and o.amount == 249600


@pytest.mark.parametrize("chain", [b"Infinity", b"1e999999999", b"4217.5"])
def test_an_unreadable_mpp_chain_id_is_none(chain):
    raw = b'{"amount":"1","currency":"0x20C000000000000000000000b9537d11c60E8b50","recipient":"0xabc","methodDetails":{"chainId":' + chain + b"}}"
    enc = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    c = ch.parse_challenge(402, {"WWW-Authenticate": f'Payment id="a", realm="r", method="tempo", intent="charge", request="{enc}"'}, None)
    assert c.mpp[0].chain_id is None      # the policy then refuses it as not Tempo mainnet


def test_a_body_nested_thousands_deep_is_a_clear_error():
    with pytest.raises(ch.ChallengeError):
        ch.from_response(Response(402, {}, b"[" * 100_000))


def test_deep_nesting_cannot_crash_the_process_even_with_a_raised_recursion_limit():
    # py_ecc (imported by eth-account's keyfile code) raises the limit to 100000; the C JSON
    # decoder then overflowed the C stack on a deep body: a segfault, not an exception.
    import subprocess
    import sys

    from tests.helpers import SCRIPTS

    code = (
        "import sys; sys.setrecursionlimit(100000); sys.path.insert(0, sys.argv[1])\n"
        "from x402_compute.api.http import Response, loads, json_depth\n"
        "assert Response(402, {}, b'[' * 1_000_000 + b']' * 1_000_000).json() is None\n"
        "assert Response(402, {}, b'{\"a\":\"[[[[[[\"}').json() == {'a': '[[[[[['}  # brackets in strings don't count\n"
        "assert json_depth('[' * 100 + ']' * 100) == 100 and loads('[' * 100 + ']' * 100)\n"
        "assert Response(402, {}, b'[' * 101 + b']' * 101).json() is None  # one over: refused\n"
        "wide = '[' + ','.join(['{\"a\":[1]}'] * 200) + ']'  # 401 brackets, 3 deep: the count is over, the scan passes it\n"
        "assert len(loads(wide)) == 200\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(SCRIPTS)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_v2_requirement_with_json_floats_is_echoed_and_journalled(tmp_path):
    req_text = ('{"scheme":"exact","network":"eip155:8453","amount":"249600","asset":"%s","payTo":"%s",'
                '"maxTimeoutSeconds":300.0,"extra":{"name":"USD Coin","version":"2","feeRate":0.25}}' % (BASE_USDC, PAYEE))
    doc = '{"x402Version":2,"resource":{"url":"https://x/compute/provision"},"accepts":[%s],"extensions":{"e":{"w":1.5}}}' % req_text
    hdr = {"PAYMENT-REQUIRED": base64.b64encode(doc.encode()).decode()}
    ok = Response(201, {}, json.dumps({"order": {"id": "o"}, "tx_hash": "0xt"}).encode())
    res, client, signs, err = run_flow(tmp_path, [Response(402, hdr, b"{}"), ok])
    assert err is None, err
    sent = json.loads(base64.b64decode(client.sent[1]["headers"]["PAYMENT-SIGNATURE"]))
    assert sent["accepted"] == json.loads(req_text)                   # value-equal to what the server sent
    assert sent["extensions"] == {"e": {"w": 1.5}}
    entry = Journal(tmp_path).get(res.journal_id)
    assert entry["status"] == "settled" and entry["offer"]["raw"]["extra"]["feeRate"] == 0.25


def test_v1_requirement_with_a_json_float_is_journalled_and_paid(tmp_path):
    body = v1_body(maxTimeoutSeconds=Decimal("300.0"))
    raw = json.dumps(body, default=float).encode()
    ok = Response(201, {}, json.dumps({"order": {"id": "o"}, "tx_hash": "0xt"}).encode())
    res, client, signs, err = run_flow(tmp_path, [Response(402, {}, raw), ok])
    assert err is None, err
    assert len(signs) == 1 and Journal(tmp_path).get(res.journal_id)["status"] == "settled"


class _AuthedClient(FakeClient):
    env = {"COMPUTE_API_KEY": "x402c_test"}


def test_credits_without_a_catalog_price_are_refused_before_sending(tmp_path):
    # No 402 states the amount on the credits path: without a price the cap could not hold.
    client = _AuthedClient(tmp_path, [])
    flow = PaymentFlow(client.settings, AuthResolver(client.settings), confirm=lambda q, d: None, signers=Signers(x402=lambda o, s: None))
    call = PaidCall(kind="extend", path="/compute/instances/i/extend", body={"extend_hours": 24, "use_credits": True},
                    network="base", limits=Limits(Decimal(25), "default", None), terms={}, journal_id=new_id(),
                    use_credits=True)
    with pytest.raises(PolicyError) as e:
        client.drive(flow.steps(call))
    assert e.value.code == "price_unknown" and client.sent == [] and Journal(tmp_path).list() == []


# -- RFC 9110 auth-param grammar (issue 20.1): token or quoted-string, nothing else -----------------

GOOD_AUTH = {
    'Payment id="a", method=tempo': [("Payment", {"id": "a", "method": "tempo"})],
    'Payment id = "a" ,method="t\\"q"': [("Payment", {"id": "a", "method": 't"q'})],
    'Basic abc==, Payment id="b"': [("Basic", {}), ("Payment", {"id": "b"})],
    'Bearer, Payment ID="c", Newauth realm="x"': [("Bearer", {}), ("Payment", {"id": "c"}), ("Newauth", {"realm": "x"})],
    "Payment": [("Payment", {})],
}
BAD_AUTH = [
    'Payment id="a", request=abc/def==',        # '/' and '=' are no token characters: quote the value
    'Payment d=foo request=EVIL, id="a"',        # more after a value than a comma
    'Payment id="a", id="b"',                    # the same parameter twice
    'Payment id="a\x01"',                        # a control character in a quoted string
    'Payment id="a\\\x7f"',                     # a backslash escaping a control character
    'Payment id="a',                             # unterminated
    'Payment id="a" "b"',                        # a second string after the value
    'Payment=x',                                 # no scheme
    'Payment id=é',                              # not a token
    'Payment, =x',
    'Payment id=, method="stripe"',              # an empty value: read as a token68 "id=", then parameters joined it
    'Payment abc==, method="stripe"',            # a token68 is all a challenge holds: no parameters after it
]


@pytest.mark.parametrize("header", sorted(GOOD_AUTH))
def test_auth_header_grammar_accepts(header):
    assert [(s, p) for s, p, _ in ch.parse_auth_header(header)] == GOOD_AUTH[header]


@pytest.mark.parametrize("header", BAD_AUTH)
def test_auth_header_grammar_refuses_as_unusable_offer(header):
    with pytest.raises(ch.ChallengeError) as e:
        ch.parse_auth_header(header)
    assert e.value.code == "unusable_offer" and "Malformed WWW-Authenticate" in e.value.message


def test_a_malformed_mpp_header_beside_x402_offers_is_kept_as_the_reason():
    c = ch.parse_challenge(402, {"WWW-Authenticate": 'Payment d=foo request=EVIL, id="a"'}, v1_body())
    assert c.offers and c.mpp == [] and c.mpp_error.code == "unusable_offer"


def test_the_quoted_string_fast_path_reads_exactly_what_the_character_scan_reads(monkeypatch):
    """_quoted matches a well-formed quoted-string with one regex and leaves everything else to the
    character scan (for its precise error): both paths must give the same text, end and refusals."""
    import random
    import re

    from x402_compute.payments import challenge as c

    def both(v: str):
        out = []
        for fast in (True, False):
            if not fast:
                monkeypatch.setattr(c, "_QSTRING", re.compile(r"(?!)"))  # never matches: the scan alone
            try:
                out.append(c._quoted(v, 0))
            except c.AuthHeaderError:
                out.append("refused")
            monkeypatch.undo()
        return out

    rnd = random.Random(7)
    alphabet = ['a', '"', '\\', ' ', '\t', '\x01', '\x7f', 'é', ',', '=', '\n', '\U0001F600']
    for _ in range(5000):
        v = '"' + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8)))
        fast, scan = both(v)
        assert fast == scan, v
    assert both('"a\\"b\\\\c", x')[0] == ('a"b\\c', 9)


def test_the_quoted_string_classes_are_rfc_9110s_on_every_code_point():
    """qdtext and quoted-pair's second character are written as what they exclude (the spelled-out
    ranges to U+10FFFF cost ~5 ms each to compile at every script start): the same sets as RFC 9110's
    spelling, on every code point."""
    import re

    from x402_compute.payments import challenge as ch

    qdtext = re.compile(r"[\t \x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]")  # RFC 9110: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
    qpair = re.compile(r"[\t \x21-\x7e\x80-\U0010ffff]")  # HTAB / SP / VCHAR / obs-text
    whole = re.compile(r'"((?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\U0010ffff]|\\[\t \x21-\x7e\x80-\U0010ffff])*)"')
    for cp in range(0x110000):
        c = chr(cp)
        assert bool(ch._QDTEXT.fullmatch(c)) == bool(qdtext.fullmatch(c)), hex(cp)
        assert bool(ch._QPAIR.fullmatch(c)) == bool(qpair.fullmatch(c)), hex(cp)
        if cp < 0x300 or cp % 997 == 0:
            for text in (f'"{c}"', f'"\\{c}"'):
                assert bool(ch._QSTRING.fullmatch(text)) == bool(whole.fullmatch(text)), (hex(cp), text)
