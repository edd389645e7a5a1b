"""Property-based fuzzing of the client's parsers of server input: whatever arrives, they answer
with a value or one of their documented error types, never anything else.

- 402 challenges (``payments.challenge``: x402 v1 body, v2 ``PAYMENT-REQUIRED`` header, MPP
  ``WWW-Authenticate``; settlement headers, receipts, rejection reasons): ``ComputeError``
  (``ChallengeError``) only;
- orders and instances (``instances``: unwrap_order, summary, detail, ssh_fields; the client's
  id check): never raise, except ``bad_response`` from the id check; an ssh block, when there
  is one, is a safe argv;
- JSON-RPC answers (``payments.rpc.JsonRpc``, every method): ``ComputeError`` only;
- the JSON reader (``http.loads``, ``json_depth``): ``ValueError`` only, and the depth it
  measures is the real nesting.

Hypothesis runs derandomized with a fixed example budget: deterministic and bounded.
"""

from __future__ import annotations

import base64
import json
import shlex
from decimal import Decimal
from unittest import mock

import pytest
from x402_compute.api import http as xhttp
from x402_compute import instances
from x402_compute.config import Settings
from x402_compute.errors import ComputeError
from x402_compute.api.http import Response, json_depth, json_depth_stepwise, loads
from x402_compute.payments import challenge as ch
from x402_compute.payments.rpc import JsonRpc
from x402_compute.validate import server_instance_id

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

# -- building blocks ---------------------------------------------------------------------------------
NASTY_TEXT = st.sampled_from(["", "0", "-1", "1e999999", "NaN", "Infinity", "0x", "0x" + "f" * 64, "../../x", "$(id)",
                              "\x1b]52;c;x\x07", "\u202e", "base", "eip155:8453", "solana", "exact", "upto", " ", "=", ",", '"',
                              "9" * 100, "2001:db8::1", "1.2.3.4", "-oProxyCommand=x", "3f1c2a9e-0000-4000-8000-000000000001"])
SCALAR = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**80), max_value=10**80),
                   st.floats(allow_nan=True, allow_infinity=True), st.decimals(allow_nan=True, allow_infinity=True),
                   st.text(max_size=40), NASTY_TEXT)
JSONISH = st.recursive(SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                       st.dictionaries(st.one_of(st.text(max_size=12), NASTY_TEXT), inner, max_size=6)),
                       max_leaves=15)

REQ_KEYS = ["scheme", "network", "maxAmountRequired", "amount", "asset", "payTo", "maxTimeoutSeconds", "extra", "resource"]
requirement = st.dictionaries(st.sampled_from(REQ_KEYS), st.one_of(SCALAR, JSONISH), max_size=len(REQ_KEYS))
accepts = st.one_of(st.lists(st.one_of(requirement, JSONISH), max_size=4), JSONISH)
v1_body = st.one_of(st.fixed_dictionaries({"x402Version": st.one_of(st.just(1), SCALAR), "accepts": accepts},
                                          optional={"error": SCALAR}), JSONISH)
v2_doc = st.fixed_dictionaries({"x402Version": st.one_of(st.just(2), SCALAR), "accepts": accepts},
                               optional={"resource": JSONISH, "extensions": JSONISH, "error": SCALAR})


def b64(obj) -> str:
    return base64.b64encode(json.dumps(obj, default=str).encode()).decode()


header_value = st.one_of(st.builds(b64, st.one_of(v2_doc, JSONISH)), st.text(max_size=80), NASTY_TEXT)
auth_param = st.tuples(st.sampled_from(["id", "method", "intent", "request", "expires", "realm", "header", "x"]),
                       st.one_of(st.builds(lambda d: base64.urlsafe_b64encode(json.dumps(d, default=str).encode()).decode().rstrip("="), JSONISH),
                                 st.text(max_size=20), NASTY_TEXT),
                       st.booleans())
mpp_header = st.one_of(
    st.lists(st.tuples(st.sampled_from(["Payment", "Basic", "Bearer", "payment", "x"]), st.lists(auth_param, max_size=6)), max_size=3).map(
        lambda chs: ", ".join(scheme + " " + ", ".join(f'{k}="{v}"' if q else f"{k}={v}" for k, v, q in params) for scheme, params in chs)),
    st.text(max_size=120))


def headers_from(v2, mpp, extra) -> dict:
    h = {}
    if v2 is not None:
        h["PAYMENT-REQUIRED"] = v2
    if mpp is not None:
        h["WWW-Authenticate"] = mpp
    h.update(extra)
    return h


# -- challenges ----------------------------------------------------------------------------------------
@FUZZ
@given(v2=st.one_of(st.none(), header_value), mpp=st.one_of(st.none(), mpp_header), body=st.one_of(v1_body, st.binary(max_size=200)),
       status=st.sampled_from([402, 200, 500]),
       extra=st.dictionaries(st.sampled_from(["PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE", "Payment-Receipt"]), header_value, max_size=3))
def test_challenges_parse_or_raise_a_compute_error(v2, mpp, body, status, extra):
    raw = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
    resp = Response(status, headers_from(v2, mpp, extra), raw)
    try:
        c = ch.from_response(resp)
    except ComputeError:
        pass
    else:
        for o in c.offers:
            assert isinstance(o.amount, int) and o.amount >= 0 and isinstance(o.pay_to, str)
        for m in c.mpp:
            assert isinstance(m.amount, int) and m.amount >= 0
    # the helpers that read a 2xx or a refusal never raise at all
    ch.settlement(resp.headers)
    ch.mpp_receipt(resp.headers)
    assert isinstance(ch.rejection_reason(resp), str)


@FUZZ
@given(st.text(max_size=300))
def test_www_authenticate_splitting_raises_only_challenge_errors(value):
    try:
        for scheme, params, raw in ch.parse_auth_header(value):
            assert isinstance(scheme, str) and isinstance(params, dict) and isinstance(raw, str)
    except ch.ChallengeError:
        pass


# -- orders and instances ---------------------------------------------------------------------------------
ORDER_KEYS = ["id", "label", "plan", "vultr_plan", "region", "status", "vultr_status", "power_status", "server_status", "ip_address",
              "main_ip", "ssh_port", "expires_at", "created_at", "destroyed_at", "access_method", "locked", "resizing"]
TIMES = st.one_of(st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()), st.sampled_from(
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-01-01T00:00:00Z", "2026-13-01", "yesterday"]))
order_value = st.one_of(SCALAR, JSONISH, TIMES, st.sampled_from(["0.0.0.0", "203.0.113.5", "::1", "a.example", "one_time_password_fallback",
                                                                 "active", "running", "off", "ok", "locked", "installingbooting"]))
order = st.dictionaries(st.sampled_from(ORDER_KEYS), order_value, max_size=len(ORDER_KEYS))
body = st.one_of(order, st.fixed_dictionaries({"order": st.one_of(order, JSONISH)}), st.fixed_dictionaries({"instance": order}), JSONISH)


@FUZZ
@given(body=body, user=st.one_of(st.just("root"), SCALAR))
def test_orders_never_raise_and_an_ssh_block_is_a_safe_argv(body, user):
    o = instances.unwrap_order(body)
    assert isinstance(o, dict)
    s = instances.summary(o)
    assert s["state"] in instances.STATES
    d = instances.detail(o)
    f = instances.ssh_fields(o, user=user)
    for block in (d["ssh"], f["ssh"]):
        if block is None:
            continue
        argv = block["argv"]
        assert argv[0] == "ssh" and shlex.split(block["command"]) == argv
        assert all(not a.startswith("-") or a == "-p" for a in argv[1:])
        assert 1 <= block["port"] <= 65535
    assert (f["ssh"] is None) != (f["ssh_unavailable"] is None)
    try:
        server_instance_id(o.get("id"))
    except ComputeError as e:
        assert e.code == "bad_response"


# -- JSON-RPC answers ---------------------------------------------------------------------------------
B64 = st.sampled_from(["", "AAAA", "AQID", "@@@", 5])
NUMBERS = st.one_of(st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e300, -1, 0, "5", True, 2**70]), SCALAR)
HEXISH = st.one_of(st.sampled_from(["0x", "0x2105", "0xzz", "0x" + "00" * 32, "2105", "0x-1"]), SCALAR)
ACCOUNT = st.fixed_dictionaries({"owner": SCALAR, "data": st.one_of(B64, st.lists(B64, max_size=2), JSONISH), "lamports": NUMBERS})


def value_of(inner):
    return st.one_of(st.fixed_dictionaries({"value": inner}), JSONISH)


# (the call, what its result may look like): each method's own shapes, and garbage
CALLS = [
    (lambda r: r.eth_chain_id("megaeth"), HEXISH),
    (lambda r: r.eth_call("megaeth", "0x" + "11" * 20, b"\x7e\xce\xbe\x00"), HEXISH),
    (lambda r: r.eth_receipt("tempo", "0x" + "22" * 32), JSONISH),
    (lambda r: r.sol_latest_blockhash("solana"), value_of(st.one_of(st.fixed_dictionaries({"blockhash": SCALAR}), JSONISH))),
    (lambda r: r.sol_account_info("solana", "11111111111111111111111111111111"), value_of(st.one_of(ACCOUNT, st.none(), JSONISH))),
    (lambda r: r.sol_rent_exempt_lamports("solana", 165), NUMBERS),
    (lambda r: r.sol_balance("solana", "11111111111111111111111111111111"), value_of(NUMBERS)),
    (lambda r: r.sol_send_transaction("solana", "AAAA"), SCALAR),
    (lambda r: r.sol_signature_statuses("solana", ["s1", "s2"]), value_of(st.lists(st.one_of(st.none(), JSONISH), max_size=3))),
]


def rpc_body(result):
    doc = st.one_of(st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": st.integers(), "result": result}),
                    st.fixed_dictionaries({"jsonrpc": st.just("2.0"), "id": SCALAR}, optional={"result": result, "error": JSONISH}),
                    JSONISH)
    return st.one_of(doc.map(lambda d: json.dumps(d, default=str).encode()), st.binary(max_size=60))


@pytest.mark.parametrize("call", range(len(CALLS)))
def test_rpc_answers_give_a_value_or_a_compute_error(call):
    fn, result = CALLS[call]
    rpc = JsonRpc(Settings(rpc_urls={n: "http://127.0.0.1:9/rpc" for n in ("megaeth", "solana", "tempo")}))

    @settings(FUZZ, max_examples=120)
    @given(raw=rpc_body(result), status=st.sampled_from([200, 200, 200, 429, 500]))
    def check(raw, status):
        with mock.patch.object(xhttp, "bounded_request", lambda *a, **k: Response(status, {}, raw)):
            try:
                fn(rpc)
            except ComputeError:
                pass

    check()


# -- the JSON reader ------------------------------------------------------------------------------
@FUZZ
@given(st.one_of(st.text(alphabet='[]{}"\\:,ab 01', max_size=300), st.text(max_size=100)))
def test_loads_raises_only_value_error(text):
    try:
        loads(text, parse_float=Decimal)
    except ValueError:
        pass


def _nesting(obj) -> int:
    if isinstance(obj, dict):
        return 1 + max((_nesting(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((_nesting(v) for v in obj), default=0)
    return 0


@FUZZ
@given(st.recursive(st.one_of(st.none(), st.text(alphabet='[]{}"\\ab', max_size=8), st.integers()),
                    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(alphabet='[]{}"\\', max_size=4), inner, max_size=3)),
                    max_leaves=30))
def test_json_depth_is_the_real_nesting(obj):
    assert json_depth(json.dumps(obj)) == json_depth_stepwise(json.dumps(obj)) == _nesting(obj)


@FUZZ
@given(st.text(alphabet='[]{}"\\ab,', max_size=200), st.one_of(st.none(), st.integers(min_value=0, max_value=5)))
def test_both_depth_scans_agree_on_any_text(text, limit):
    """The Python 3.10 path (no possessive regexes) measures what the 3.11+ path does, on any
    text, closed strings or not."""
    a, b = json_depth(text, limit), json_depth_stepwise(text, limit)
    assert a == b or (limit is not None and a > limit and b > limit)
