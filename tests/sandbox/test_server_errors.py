"""Malformed and unknown input: always a 4xx with a JSON {"error", "details"}, never a 500, never a 402
for a request that would fail anyway."""
import socket

import pytest
import requests

GOOD = {"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "prepaid_hours": 24}


def _err(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert isinstance(body["error"], str) and body["error"] and isinstance(body["details"], dict)
    return body


@pytest.mark.parametrize("patch,field", [
    ({"plan": "vc9-nope"}, "plan"),
    ({"plan": None}, "plan"),
    ({"plan": 42}, "plan"),
    ({"region": "mars"}, "region"),
    ({"region": "nyc3"}, "region"),           # a DigitalOcean region for a Vultr plan
    ({"os_id": 99999}, "os_id"),
    ({"os_id": "2284"}, "os_id"),
    ({"os_id": True}, "os_id"),
    ({"os_id": 160232537}, "os_id"),          # a DigitalOcean image on Vultr
    ({"prepaid_hours": 23}, "prepaid_hours"),
    ({"prepaid_hours": 24.5}, "prepaid_hours"),
    ({"prepaid_hours": "24"}, "prepaid_hours"),
    ({"prepaid_hours": 10 ** 30}, "prepaid_hours"),
    ({"network": "ethereum"}, "network"),
    ({"provider": "digitalocean"}, "provider"),
    ({"use_credits": "yes"}, "use_credits"),
    ({"label": ["x"]}, "label"),
    ({"hostname": "bad host!"}, "hostname"),
    ({"ssh_public_key": "not a key"}, "ssh_public_key"),
    ({"ai_machine": {"model_id": "m", "mode": "public"}}, "ai_machine.mode"),
    ({"ai_machine": "m"}, "ai_machine"),
    ({"ai_machine": {"model_id": "m", "mode": "private"}, "deploy_node": {"model_id": "m"}}, "ai_machine"),
])
def test_provision_field_errors_are_400_before_402(sandbox, patch, field):
    body = dict(GOOD)
    for k, v in patch.items():
        if v is None:
            body.pop(k)
        else:
            body[k] = v
    err = _err(requests.post(sandbox.base_url + "/compute/provision", json=body), 400)
    assert err["details"]["field"] == field


def test_missing_required_fields(sandbox):
    for missing in ("plan", "region", "os_id"):
        body = {k: v for k, v in GOOD.items() if k != missing}
        err = _err(requests.post(sandbox.base_url + "/compute/provision", json=body), 400)
        assert err["details"]["field"] == missing


@pytest.mark.parametrize("raw", [b"{bad json", b"[1,2,3]", b"\"string\"", b"\xff\xfe", b"", b"null"])
def test_malformed_bodies(sandbox, raw):
    _err(requests.post(sandbox.base_url + "/compute/provision", data=raw,
                       headers={"Content-Type": "application/json"}), 400)


def test_resize_and_topup_malformed(sandbox, tools):
    w = sandbox.wallets[0]
    _err(requests.post(sandbox.base_url + "/compute/credits/topup", data=b"{oops"), 400)
    _err(requests.post(sandbox.base_url + "/compute/credits/topup", json={"amount": "ten"}), 400)
    path = "/compute/instances/00000000-0000-4000-8000-000000000000/resize"
    h = tools.evm_auth(w["evm_private_key"], "POST", path, b"[]")
    _err(requests.post(sandbox.base_url + path, data=b"[]", headers=h), 400)


def test_oversized_body_is_413(sandbox):
    big = b'{"label":"' + b"x" * (70 * 1024) + b'"}'
    _err(requests.post(sandbox.base_url + "/compute/provision", data=big,
                       headers={"Content-Type": "application/json"}), 413)


def test_chunked_body_is_refused(sandbox):
    def gen():
        yield b'{"plan":'
        yield b'"vc2-1c-1gb"}'
    r = requests.post(sandbox.base_url + "/compute/provision", data=gen())
    assert r.status_code == 411


def test_garbage_http_does_not_kill_the_server(sandbox):
    host, port = sandbox.base_url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=3) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        s.recv(1024)
    assert requests.get(sandbox.base_url + "/_sandbox/health").status_code == 200


def test_sandbox_balance_and_faults_validation(sandbox):
    _err(requests.get(sandbox.base_url + "/_sandbox/balance?network=doge&address=x"), 400)
    _err(requests.get(sandbox.base_url + "/_sandbox/balance?network=base&address=0x12"), 400)
    w = sandbox.wallets[0]
    r = requests.get(sandbox.base_url + "/_sandbox/balance",
                     params={"network": "solana", "address": w["solana_address"]})
    assert r.status_code == 200 and int(r.json()["balance"]) == sandbox.facilitator.balance_of("solana", w["solana_address"])
    _err(requests.post(sandbox.base_url + "/_sandbox/faults", json={"drop_after_settle": -1}), 400)
    _err(requests.post(sandbox.base_url + "/_sandbox/faults", json={"drop_after_settle": "1"}), 400)


def test_idempotency_key_too_long(sandbox):
    _err(requests.post(sandbox.base_url + "/compute/provision", json=GOOD,
                       headers={"Idempotency-Key": "k" * 300}), 400)


def test_internal_errors_are_json_500(make_sandbox, sandbox):
    sb = make_sandbox(facilitator=sandbox.facilitator)

    def boom(req):
        raise RuntimeError("kaboom")
    sb.app._routes.insert(0, ("GET", __import__("re").compile("^/_sandbox/boom$"), boom))
    err = _err(requests.get(sb.base_url + "/_sandbox/boom"), 500)
    assert err["details"]["type"] == "RuntimeError"
    assert requests.get(sb.base_url + "/_sandbox/health").status_code == 200


def test_keep_alive_and_content_length(sandbox):
    with requests.Session() as s:
        r1 = s.get(sandbox.base_url + "/compute/regions")
        r2 = s.get(sandbox.base_url + "/compute/os")
        assert int(r1.headers["Content-Length"]) == len(r1.content)
        assert r1.status_code == r2.status_code == 200
    with socket.create_connection(("127.0.0.1", int(sandbox.base_url.rsplit(":", 1)[1]))) as sock:
        req = b"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        sock.sendall(req + req)
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
