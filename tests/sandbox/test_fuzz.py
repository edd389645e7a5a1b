"""Property-based fuzzing of every route: never a 5xx, always a JSON error, nothing provisioned.

Every method+path of compute-openapi.json plus /rpc/<network> and /_sandbox/*, hit over raw sockets
(so malformed request lines, headers and Content-Lengths get through) with adversarial JSON bodies
(wrong types, NaN/Infinity/huge numbers as raw text, deep nesting, unicode, missing and extra
fields), garbage auth and payment headers, and odd path parameters. Hypothesis runs derandomized
with a fixed example budget, so a run is deterministic and bounded (a few seconds).

No generated request carries a valid signature or payment, so none may succeed on a paid or
authenticated route, and the server's store must hold no order and no payment afterwards.
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import time
import uuid
from urllib.parse import quote

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NETWORKS = ["base", "solana", "megaeth", "robinhood", "tempo", "eip155:8453", "doge", ""]
# (method, path template, fields a good body has or may have)
ROUTES = [
    ("GET", "/compute/plans", {}),
    ("GET", "/compute/regions", {}),
    ("GET", "/compute/os", {}),
    ("POST", "/compute/provision", {"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "prepaid_hours": 24,
                                    "label": "t", "hostname": "h", "ssh_public_key": None, "network": "base",
                                    "use_credits": False, "user_data": "", "ai_machine": None,
                                    "deploy_node": None, "provider": "vultr"}),
    ("GET", "/compute/api-keys", {}),
    ("POST", "/compute/api-keys", {"label": "k"}),
    ("DELETE", "/compute/api-keys/{id}", {}),
    ("GET", "/compute/instances", {}),
    ("GET", "/compute/instances/{id}", {}),
    ("DELETE", "/compute/instances/{id}", {}),
    ("POST", "/compute/instances/{id}/password", {}),
    ("POST", "/compute/instances/{id}/extend", {"extend_hours": 24, "network": "base", "use_credits": False}),
    ("POST", "/compute/instances/{id}/resize", {"plan": "vc2-2c-4gb", "confirm_disk_resize": True}),
    ("GET", "/compute/credits/balance", {}),
    ("POST", "/compute/credits/topup", {"amount": 5, "network": "base"}),
    ("GET", "/_sandbox/health", {}),
    ("GET", "/_sandbox/balance", {}),
    ("GET", "/_sandbox/faults", {}),
    ("POST", "/_sandbox/faults", {"drop_after_settle": 0}),
    ("POST", "/rpc/{net}", {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}),
]
RPC_METHODS = ["eth_chainId", "net_version", "eth_blockNumber", "eth_getCode", "eth_getBalance", "eth_call",
               "getLatestBlockhash", "getAccountInfo", "getBalance", "getMinimumBalanceForRentExemption",
               "getSlot", "sendTransaction", "getSignatureStatuses", "eth_sendRawTransaction",
               "eth_getTransactionCount", "eth_estimateGas", "eth_gasPrice", "eth_getTransactionReceipt",
               "nope", ""]
# Numbers and literals JSON libraries disagree on: sent as raw text in place of a value.
RAW_LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-400", "-0", "0.0000001", "1E2",
                "9" * 400, "1" + "0" * 5000, "-" + "9" * 30, "24.0", "2.4e1", "true", "null", '"\\ud800"',
                '"\\u0000"', "[" * 50 + "]" * 50, '{"a":' * 40 + "1" + "}" * 40]
PATH_IDS = ["..", "../..", "%2e%2e", "..%2f..%2fetc%2fpasswd", "%00", "%ff", "%C3%A9", "%", "%%", "%zz",
            "x" * 300, "00000000-0000-0000-0000-00000000000g", "00000000-0000-0000-0000-000000000000",
            "00000000-0000-4000-8000-000000000000%0A", "00000000-0000-4000-8000-000000000000/extra",
            "' OR 1=1 --", "null", "-1", "1e9", "%E2%80%AE", "a;b", "a?b=c"]
GARBAGE_ALPHABET = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")
garbage = st.text(GARBAGE_ALPHABET, max_size=60)

json_leaf = (st.none() | st.booleans() | st.integers(min_value=-(2 ** 80), max_value=2 ** 80)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
             | st.sampled_from(["base", "solana", "vc2-1c-1gb", "lax", "private", 2284, 24, -24, 10 ** 30]))
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=4)
                          | st.dictionaries(st.text(max_size=12), c, max_size=4), max_leaves=12)


def _b64(obj) -> str:
    return base64.b64encode(json.dumps(obj).encode()).decode()


def _b64url(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@st.composite
def bodies(draw, fields: dict) -> bytes:
    kind = draw(st.sampled_from(["mutated", "mutated", "mutated", "json", "raw", "deep", "empty"]))
    if kind == "json":
        return json.dumps(draw(json_value)).encode()
    if kind == "raw":
        return draw(st.binary(max_size=120))
    if kind == "deep":
        depth = draw(st.sampled_from([100, 1000, 5000, 20000]))
        return (b"[" * depth + b"]" * depth) if draw(st.booleans()) else (b'{"a":' * depth + b"1" + b"}" * depth)
    if kind == "empty":
        return draw(st.sampled_from([b"", b" ", b"\n", b"{}", b"[]", b"null", b"0"]))
    body = {k: v for k, v in fields.items() if v is not None}
    raws = {}
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["set", "set", "raw", "drop", "extra"]))
        names = sorted(fields) or ["x"]
        name = draw(st.sampled_from(names))
        if op == "set":
            body[name] = draw(json_value)
        elif op == "raw":
            token = f"__RAW{len(raws)}__"
            raws[token] = draw(st.sampled_from(RAW_LITERALS))
            body[name] = token
        elif op == "drop":
            body.pop(name, None)
        else:
            body[draw(st.text(max_size=15))] = draw(json_value)
    if "method" in fields and draw(st.booleans()):
        body["method"] = draw(st.sampled_from(RPC_METHODS))
        body["params"] = draw(st.lists(json_value, max_size=3))
    text = json.dumps(body)
    for token, literal in raws.items():
        text = text.replace(f'"{token}"', literal)
    out = text.encode()
    if "method" in fields and draw(st.integers(0, 4)) == 0:
        out = b"[" + out + b"," + out + b"]"   # a JSON-RPC batch
    return out


@st.composite
def header_sets(draw) -> list:
    h = []
    if draw(st.integers(0, 3)) == 0:
        addr = draw(st.sampled_from(["0x" + "ab" * 20, "0x" + "AB" * 20, "11111111111111111111111111111111",
                                     "0x12", ""]) | garbage)
        for name, value in [("X-Auth-Address", st.just(addr)),
                            ("X-Auth-Chain", st.sampled_from(["base", "solana", "megaeth", "robinhood", "eth",
                                                              "BASE"]) | garbage),
                            ("X-Auth-Signature", st.sampled_from(["0x" + "11" * 65, "11" * 65, "0x" + "ff" * 65,
                                                                  base64.b64encode(b"\x01" * 64).decode(),
                                                                  "0x" + "1" * 129]) | garbage),
                            ("X-Auth-Timestamp", st.sampled_from([str(int(time.time() * 1000)), "0", "-1",
                                                                  "9" * 17, "1e12", "\u00b2", "\u00b9\u00b2\u00b3",
                                                                  " 1", ""]) | garbage),
                            ("X-Auth-Nonce", st.sampled_from([uuid.uuid4().hex, "short", "x" * 200,
                                                              "bad nonce!"]) | garbage),
                            ("X-Auth-Sig-Encoding", st.sampled_from(["hex", "base64", "BASE58", "utf-8"]) | garbage)]:
            if draw(st.integers(0, 5)):
                h.append((name, draw(value)))
    if draw(st.integers(0, 5)) == 0:
        h.append(("X-API-Key", draw(garbage | st.builds(lambda s: "x402c_" + s, garbage))))
    if draw(st.integers(0, 2)) == 0:
        payload = st.fixed_dictionaries({"x402Version": st.sampled_from([1, 2, 3, "1", None]),
                                         "scheme": st.sampled_from(["exact", "upto", None]),
                                         "network": st.sampled_from(NETWORKS),
                                         "payload": json_value,
                                         "accepted": json_value})
        value = draw(garbage
                     | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode())
                     | json_value.map(_b64)
                     | payload.map(_b64)
                     | st.sampled_from([base64.b64encode(b"[" * 6000 + b"]" * 6000).decode(), "A" * 17000, "===",
                                        _b64({"x402Version": 1, "network": "base", "payload": {}}),
                                        _b64({"x402Version": 2, "accepted": {"network": "solana"},
                                              "payload": {"transaction": "AAAA"}}),
                                        _b64({"x402Version": 1, "network": "base", "payload": {
                                            "signature": "0x" + "11" * 65, "authorization": {
                                                "from": "0x" + "ab" * 20, "to": "0x" + "cd" * 20,
                                                "value": "-1", "validAfter": "x", "validBefore": 1e400,
                                                "nonce": "0x00"}}})]))
        h.append((draw(st.sampled_from(["X-PAYMENT", "PAYMENT-SIGNATURE"])), value))
    if draw(st.integers(0, 3)) == 0:
        cred = st.fixed_dictionaries({"challenge": json_value | st.fixed_dictionaries({
            "id": garbage, "realm": garbage, "method": st.sampled_from(["tempo", "x"]),
            "intent": st.sampled_from(["charge", "x"]), "request": garbage, "expires": garbage}),
            "payload": json_value, "source": json_value})
        value = draw(garbage | json_value.map(_b64url) | cred.map(_b64url)
                     | st.sampled_from(["", "=", "A" * 70000, _b64url([1] * 3)]))
        h.append(("Authorization", draw(st.sampled_from(["Payment ", "Payment", "payment ", "Bearer "])) + value))
    if draw(st.integers(0, 3)) == 0:
        h.append(("Idempotency-Key", draw(garbage | st.sampled_from(["k" * 255, "k" * 256, " "]))))
    if draw(st.integers(0, 4)) == 0:
        h.append(("X-Accept-Networks", draw(garbage | st.sampled_from([",".join(NETWORKS), "solana", ",,,"]))))
    h.append(("Content-Type", draw(st.sampled_from(["application/json", "text/plain", "multipart/form-data; b=x",
                                                    "application/x-www-form-urlencoded", "\u00e9/\u00e9"]))))
    if draw(st.integers(0, 9)) == 0:
        h.append(("X-Huge", "h" * draw(st.sampled_from([8000, 60000, 70000]))))
    return h


@st.composite
def requests_(draw):
    method, template, fields = draw(st.sampled_from(ROUTES))
    if draw(st.integers(0, 7)) == 0:
        method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "FOO", "get",
                                       "TRACE"]))
    ident = draw(st.sampled_from(PATH_IDS) | st.uuids().map(str)
                 | st.text(max_size=40).map(lambda s: quote(s, safe="/%")))
    net = draw(st.sampled_from(NETWORKS[:-1]) | st.text(max_size=20).map(lambda s: quote(s, safe="%")))
    path = template.replace("{id}", ident).replace("{net}", net)
    if draw(st.integers(0, 9)) == 0:
        path = draw(st.sampled_from(["/", "//compute//plans", "/compute/plans/", "/compute/../compute/plans",
                                     "/compute/instances/", "/rpc/", "/rpc", "/_sandbox", "*", "/%",
                                     "http://127.0.0.1/compute/plans"]))
    if template in ("/_sandbox/balance", "/compute/plans") or draw(st.integers(0, 9)) == 0:
        query = draw(st.lists(st.tuples(st.sampled_from(["network", "address", "type", "x"]),
                                        st.sampled_from(NETWORKS + ["vps", "0x" + "00" * 20, "0x12",
                                                                    "11111111111111111111111111111111"])
                                        | st.text(max_size=20)), max_size=3))
        if query:
            path += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
    body = draw(bodies(fields))
    headers = draw(header_sets())
    length = str(len(body))
    if draw(st.integers(0, 9)) == 0:
        length = draw(st.sampled_from(["abc", "-1", "", " ", "1e3", "99999999999999999999", "0x10", str(len(body) // 2)]))
    chunked = draw(st.integers(0, 19)) == 0
    return method, path, headers, body, length, chunked


def _exchange(base_url: str, method: str, path: str, headers: list, body: bytes, length, chunked=False):
    host, port = base_url.rsplit("/", 1)[1].rsplit(":", 1)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(raw)
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data


def _strict_json(data: bytes):
    def no_constant(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(data.decode("utf-8"), parse_constant=no_constant)


def _check(method: str, path: str, status: int, data: bytes) -> None:
    where = f"{method} {path[:120]} -> {status}: {data[:300]!r}"
    assert status < 500, where
    if method == "HEAD":
        return
    assert data, where
    body = _strict_json(data)
    route = path.split("?", 1)[0]
    if "://" in route:  # absolute-form target (RFC 9112 §3.2.2): the route is what follows the authority
        route = "/" + route.split("://", 1)[1].partition("/")[2]
    rpc = route.startswith("/rpc/") and route.count("/") == 2
    if rpc and status == 200:
        for item in (body if isinstance(body, list) else [body]):
            assert isinstance(item, dict) and item.get("jsonrpc") == "2.0", where
            assert ("result" in item) != ("error" in item), where
            if "error" in item:
                assert isinstance(item["error"].get("code"), int) and isinstance(item["error"].get("message"), str), where
    elif status >= 400:
        assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], where
    # No generated request holds a valid signature or payment: nothing authenticated or paid succeeds.
    if 200 <= status < 300:
        assert route.startswith(("/compute/plans", "/compute/regions", "/compute/os", "/_sandbox/", "/rpc/")) \
            or route.rstrip("/") in ("/compute/plans", "/compute/regions", "/compute/os"), where


def test_fuzz_every_route(make_sandbox):
    sb = make_sandbox()
    seen = {"n": 0}

    @settings(max_examples=700, derandomize=True, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(requests_())
    def fuzz(r):
        method, path, headers, body, length, chunked = r
        seen["n"] += 1
        status, _, data = _exchange(sb.base_url, method, path, headers, body, length, chunked)
        _check(method, path, status, data)

    fuzz()
    assert seen["n"] >= 500
    status, _, data = _exchange(sb.base_url, "GET", "/_sandbox/health", [], b"", "0")
    assert status == 200 and _strict_json(data) == {"ok": True}
    # Nothing was provisioned, paid or credited by any of it.
    assert sb.app.store.payments() == []
    assert sb.app.store.all_orders() == []


@pytest.mark.parametrize("request_line,headers", [
    (b"FOO /compute/plans HTTP/1.1", b""),                 # unknown method
    (b"get /compute/plans HTTP/1.1", b""),                 # methods are case-sensitive
    (b"TRACE /compute/plans HTTP/1.1", b""),
    (b"GET /compute/plans", b""),                          # HTTP/0.9 (not served: a JSON 400)
    (b"GET /compute/plans HTTP/2.0", b""),                 # unsupported version
    (b"GET /compute/plans HTTP/x", b""),
    (b"NONSENSE", b""),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.1", b""),         # request line too long
    (b"GET /compute/plans HTTP/1.1", b"X-Big: " + b"a" * 70000 + b"\r\n"),   # header line too long
    (b"GET /compute/plans HTTP/1.1", b"X-A: a\r\n" * 150),                   # too many headers
])
def test_protocol_errors_are_json(sandbox, request_line, headers):
    """Even what http.server refuses before routing is answered with a JSON error (not HTML, not 501,
    not a dropped connection), and the server keeps serving."""
    host, port = sandbox.base_url.rsplit("/", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_line + b"\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert 400 <= status < 500 or status == 505, head      # 505: the HTTP version itself is unsupported
    assert b"Content-Type: application/json" in head, head
    err = _strict_json(body)
    assert isinstance(err["error"], str) and err["error"] and isinstance(err["details"], dict)
    assert _exchange(sandbox.base_url, "GET", "/_sandbox/health", [], b"", "0")[0] == 200


@pytest.mark.parametrize("ts", ["\u00b2", "\u00b9\u00b2\u00b3" * 4, "1\u00b3"])
def test_non_ascii_digit_timestamp_is_401(sandbox, ts):
    """str.isdigit() accepts superscripts that int() refuses: that was a 500."""
    headers = [("X-Auth-Address", "0x" + "ab" * 20), ("X-Auth-Chain", "base"),
               ("X-Auth-Signature", "0x" + "11" * 65), ("X-Auth-Timestamp", ts), ("X-Auth-Nonce", "abcdefgh12")]
    try:
        headers[3] = ("X-Auth-Timestamp", ts.encode("latin-1").decode("latin-1"))
    except UnicodeEncodeError:
        pytest.skip("not sendable as a latin-1 header")
    status, _, data = _exchange(sandbox.base_url, "GET", "/compute/instances", headers, b"", "0")
    assert status == 401, data
    assert "X-Auth-Timestamp" in _strict_json(data)["error"]


@pytest.mark.parametrize("net", ["base", "solana", "tempo"])
@pytest.mark.parametrize("rid", [b"NaN", b"Infinity", b"-Infinity", b"{}", b"[1]", b"true"])
def test_rpc_invalid_id_answers_valid_json(sandbox, net, rid):
    """A JSON-RPC id must be a string, number or null; echoing NaN made the answer invalid JSON."""
    body = b'{"jsonrpc":"2.0","method":"eth_chainId","params":[],"id":' + rid + b"}"
    status, _, data = _exchange(sandbox.base_url, "POST", f"/rpc/{net}", [("Content-Type", "application/json")],
                                body, str(len(body)))
    assert status == 200
    out = _strict_json(data)
    assert out["error"]["code"] == -32600 and out["id"] is None


def test_too_deeply_nested_json_is_a_4xx(sandbox):
    """json.loads raises RecursionError (not ValueError) past the recursion limit: that was a 500 (or
    a JSON-RPC answer never sent). The process limit depends on what was imported (py_ecc raises it
    to 100000), so the test pins a low one while it runs."""
    import sys
    deep = b"[" * 3000 + b"]" * 3000
    cases = [("/compute/provision", [], deep, 400),
             ("/compute/credits/topup", [("X-PAYMENT", base64.b64encode(deep).decode())], b'{"amount":5}', 400),
             ("/compute/provision", [("Authorization", "Payment " + base64.urlsafe_b64encode(deep).decode())],
              b'{"plan":"vc2-1c-1gb","region":"lax","os_id":2284}', 402),
             ("/rpc/base", [], deep, 200), ("/rpc/tempo", [], deep, 200)]
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        got = [_exchange(sandbox.base_url, "POST", path, [("Content-Type", "application/json"), *h], body,
                         str(len(body))) for path, h, body, _ in cases]
    finally:
        sys.setrecursionlimit(old)
    for (path, _, _, want), (status, _, data) in zip(cases, got):
        assert status == want, (path, status, data[:300])
        out = _strict_json(data)
        if path.startswith("/rpc/"):
            assert out["error"]["code"] == -32700
        else:
            assert isinstance(out["error"], str)
