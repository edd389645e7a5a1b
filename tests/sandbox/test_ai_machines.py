"""AI Machines in the sandbox: a GPU order with `ai_machine` comes up with an OpenAI-compatible model
server on the instance's own loopback address (bearer key, /v1/models, /v1/chat/completions, SSE
streaming), closed on destroy and on expiry; the key is shown once; `deploy_node`, both objects
together and credits for `ai_machine` are refused before any payment."""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests

GPU = {"plan": "vcg-a100-1c-2g-6gb", "region": "ewr", "os_id": 2284}
MODEL = "llama-3.2-3b"


def _call(sb, tools, w, method, path, body=None):
    raw = b"" if body is None else json.dumps(body).encode()
    h = tools.evm_auth(w["evm_private_key"], method, path, raw)
    return requests.request(method, sb.base_url + path, data=raw, timeout=30, headers={**h, "Content-Type": "application/json"})


def _active(sb, tools, w, iid, timeout=15) -> dict:
    deadline = time.time() + timeout
    while True:
        r = _call(sb, tools, w, "GET", f"/compute/instances/{iid}")
        assert r.status_code == 200, r.text
        o = r.json()["order"]
        if o["status"] == "active":
            return o
        assert time.time() < deadline, o
        time.sleep(0.05)


def _refused(ip: str, port: int) -> bool:
    try:
        socket.create_connection((ip, port), timeout=2).close()
    except OSError:
        return True
    return False


def test_an_ai_machine_serves_its_model_with_its_key_until_destroyed(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=10)
    paid = tools.provision(sandbox, w, **GPU, ai_machine={"model_id": MODEL, "mode": "private"})
    ai = paid["order"]["metadata"]["ai"]
    key = ai["api_key"]
    assert key.startswith("sk-") and ai["model_id"] == MODEL and ai["endpoint"] is None  # no address yet
    o = _active(sandbox, tools, w, paid["order"]["id"])
    shown = o["metadata"]["ai"]
    assert "api_key" not in shown and key not in json.dumps(o)  # shown once: only in the paid answer
    base = f"http://{o['ip_address']}:{shown['port']}/v1"
    assert shown["endpoint"] == base and o["ip_address"].startswith("127.0.") and o["ip_address"] != "127.0.0.1"
    auth = {"Authorization": f"Bearer {key}"}

    assert requests.get(base + "/models", timeout=10).status_code == 401
    bad = requests.get(base + "/models", headers={"Authorization": "Bearer sk-wrong"}, timeout=10)
    assert bad.status_code == 401 and bad.json()["error"]["type"] == "authentication_error"
    models = requests.get(base + "/models", headers=auth, timeout=10).json()
    assert [m["id"] for m in models["data"]] == [MODEL]

    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hello there, machine"}]
    r = requests.post(base + "/chat/completions", json={"model": MODEL, "messages": msgs}, headers=auth, timeout=10)
    c = r.json()
    assert r.status_code == 200 and c["object"] == "chat.completion"
    assert c["choices"][0]["message"] == {"role": "assistant", "content": f"{MODEL} (sandbox) heard: Hello there, machine"}
    assert c["choices"][0]["finish_reason"] == "stop" and c["usage"]["completion_tokens"] == 6
    short = requests.post(base + "/chat/completions", json={"messages": msgs, "max_tokens": 2}, headers=auth, timeout=10).json()
    assert short["choices"][0] == {"index": 0, "message": {"role": "assistant", "content": f"{MODEL} (sandbox)"}, "finish_reason": "length"}

    with requests.post(base + "/chat/completions", json={"messages": msgs, "stream": True}, headers=auth, timeout=10, stream=True) as s:
        assert s.headers["Content-Type"] == "text/event-stream"
        events = [line[6:] for line in s.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(ch["object"] == "chat.completion.chunk" for ch in chunks)
    assert "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks) == c["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"

    bad = requests.post(base + "/chat/completions", json={"messages": []}, headers=auth, timeout=10)
    assert bad.status_code == 400
    huge = requests.post(base + "/chat/completions", data=b"x" * (64 * 1024 + 1), headers={**auth, "Content-Type": "application/json"}, timeout=10)
    assert huge.status_code == 413

    assert _call(sandbox, tools, w, "DELETE", f"/compute/instances/{o['id']}").status_code == 200
    assert _refused(o["ip_address"], shown["port"])
    after = _call(sandbox, tools, w, "GET", f"/compute/instances/{o['id']}").json()["order"]
    assert after["status"] == "destroyed"


def test_expiry_closes_the_model_server(make_sandbox, sandbox, tools):
    sb = make_sandbox(facilitator=sandbox.facilitator)
    w = tools.fresh_wallet(sb.facilitator, usd=10)
    iid = tools.provision(sb, w, **GPU, ai_machine={"model_id": MODEL, "mode": "private"})["order"]["id"]
    o = _active(sb, tools, w, iid)
    port = o["metadata"]["ai"]["port"]
    assert not _refused(o["ip_address"], port)
    real = sb.app.provider.clock
    sb.app.provider.clock = lambda: real() + 24 * 3600 + 5
    deadline = time.time() + 10
    while _call(sb, tools, w, "GET", f"/compute/instances/{iid}").json()["order"]["status"] != "expired":
        assert time.time() < deadline
        time.sleep(0.05)
    assert _refused(o["ip_address"], port) and not sb.app.provider.llm.is_open(iid)


@pytest.mark.parametrize("extra, status, field", [
    ({"deploy_node": {"model_id": MODEL}}, 403, "deploy_node"),  # no wallet has SGL staked here
    ({"ai_machine": {"model_id": MODEL, "mode": "private"}, "deploy_node": {"model_id": MODEL}}, 400, "ai_machine"),
    ({"ai_machine": {"model_id": MODEL, "mode": "private"}, "use_credits": True}, 400, "use_credits"),
    ({"ai_machine": {"model_id": MODEL, "mode": "grid"}}, 400, "ai_machine.mode"),
])
def test_refused_before_any_payment(sandbox, tools, extra, status, field):
    w = tools.fresh_wallet(sandbox.facilitator, usd=10)
    body = {**GPU, "label": "t", "prepaid_hours": 24, "network": "base", **extra}
    r = _call(sandbox, tools, w, "POST", "/compute/provision", body)  # signed: the wallet is known
    assert r.status_code == status, r.text
    assert r.json()["details"]["field"] == field
    assert sandbox.facilitator.balance_of("base", w["evm_address"]) == 10 * 10**6


def test_deploy_node_paid_without_auth_is_refused_after_settlement_and_credited(sandbox, tools):
    """Without management auth the paying wallet is known only from the payment: the stake check then
    comes after settlement, and the amount is credited to the payer (the sandbox's paid-but-failed rule)."""
    w = tools.fresh_wallet(sandbox.facilitator, usd=10)
    body = {**GPU, "label": "t", "prepaid_hours": 24, "network": "solana", "deploy_node": {"model_id": MODEL}}
    _, paid, _ = tools.paid_post(sandbox, "/compute/provision", body, w, network="solana")
    assert paid.status_code == 403 and "50,000 SGL" in paid.json()["error"], paid.text
    assert paid.json()["details"]["credited"] > 0 and paid.json()["tx_hash"]
    h = tools.solana_auth(w["solana_secret_key"], "GET", "/compute/credits/balance")
    assert requests.get(sandbox.base_url + "/compute/credits/balance", headers=h, timeout=10).json()["balance"] != "0.00"


def test_listeners_bind_the_first_free_loopback_address_and_nothing_else():
    """The one helper the SSH and model servers listen with: the first (ip, port) that binds, a busy
    port skipped; loopback IP literals only, checked before any socket; a port left in TIME_WAIT by an
    instance's last connection is its again (SO_REUSEADDR)."""
    from x402_compute_sandbox.server import listen_loopback

    busy = listen_loopback(("127.0.9.9", 0))
    port = busy.getsockname()[1]
    try:
        moved = listen_loopback(("127.0.9.9", port), ("127.0.9.9", 0))
        assert moved.getsockname()[0] == "127.0.9.9" and moved.getsockname()[1] != port
        moved.close()
        with pytest.raises(OSError) as e:
            listen_loopback(("127.0.9.9", port))
        assert f"127.0.9.9:{port}" in str(e.value)
        for bad in ("0.0.0.0", "10.0.0.1", "localhost", "::", "", "127.0.0.1 "):
            with pytest.raises(ValueError):
                listen_loopback(("127.0.0.1", 0), (bad, 0))  # refused even after an address that would bind
        c = socket.create_connection(("127.0.9.9", port))
        a, _ = busy.accept()
        a.close()  # the server side closes first: its end of the connection lingers on the port
        assert c.recv(1) == b""
        c.close()
    finally:
        busy.close()
    again = listen_loopback(("127.0.9.9", port))
    assert again.getsockname() == ("127.0.9.9", port)
    again.close()


def test_the_model_server_moves_to_another_port_when_its_own_is_taken():
    from x402_compute_sandbox.llm import LlmServers
    from x402_compute_sandbox.server import listen_loopback

    busy = listen_loopback(("127.0.9.10", 0))
    servers = LlmServers()
    try:
        port = servers.open("i-1", "127.0.9.10", busy.getsockname()[1], api_key="k" * 16, model_id=MODEL)
        assert port != busy.getsockname()[1]
        r = requests.get(f"http://127.0.9.10:{port}/v1/models", headers={"Authorization": "Bearer " + "k" * 16}, timeout=10)
        assert r.status_code == 200 and r.json()["data"][0]["id"] == MODEL
        with pytest.raises(ValueError):
            servers.open("i-2", "192.0.2.1", 8080, api_key="k" * 16, model_id=MODEL)
        assert not servers.is_open("i-2")
    finally:
        servers.shutdown()
        busy.close()
    assert _refused("127.0.9.10", port)
