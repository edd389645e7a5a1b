"""payments.rpc.JsonRpc error paths that a healthy server cannot be made to produce: they must surface as
typed errors with a stable code, never a traceback. The RPC endpoint is a programmable server on
127.0.0.1 (tests/hostile/stub.py, one per module): real sockets, whatever HTTP library the client uses."""

from __future__ import annotations

import json

import pytest
from x402_compute.config import Settings
from x402_compute.errors import ComputeError, ConfigError, NetworkError
from x402_compute.payments.rpc import JsonRpc, erc20_nonces

from tests.helpers import closed_port_url
from tests.hostile.stub import Reply, json_reply

PATH = "/megaeth"
OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TOKEN = "0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7"


def rpc(url: str) -> JsonRpc:
    return JsonRpc(Settings(rpc_urls={"megaeth": url, "solana": url}))


def answer(result=None, error=None):
    """A JSON-RPC reply to whatever request arrived (its own id echoed)."""
    def reply(req, honest):
        doc = {"jsonrpc": "2.0", "id": (req.json() or {}).get("id")}
        doc.update({"error": error} if error is not None else {"result": result})
        return json_reply(200, doc)
    return reply


def test_nonces_call_is_encoded_and_decoded(api):
    api.override("POST", PATH, answer("0x" + "00" * 31 + "05"))
    assert erc20_nonces(rpc(api.base_url + PATH), "megaeth", TOKEN, OWNER) == 5
    (req,) = api.received()
    assert (req.method, req.path, req.query) == ("POST", PATH, {})
    assert req.headers["content-type"].split(";")[0].strip() == "application/json"
    body = json.loads(req.body)
    assert body["jsonrpc"] == "2.0" and isinstance(body["id"], int)
    assert body["method"] == "eth_call" and body["params"][1] == "latest"
    assert body["params"][0] == {"to": TOKEN, "data": "0x7ecebe00" + "00" * 12 + OWNER[2:].lower()}


def test_rpc_error_object_is_a_typed_error(api):
    api.override("POST", PATH, answer(error={"code": -32000, "message": "boom"}))
    with pytest.raises(ComputeError) as e:
        rpc(api.base_url + PATH).eth_chain_id("megaeth")
    assert e.value.code == "rpc_error" and "boom" in e.value.message
    assert e.value.details == {"code": -32000, "message": "boom"}
    (req,) = api.received()
    assert json.loads(req.body)["method"] == "eth_chainId"


def test_http_failure_and_empty_result(api):
    url = api.base_url + PATH
    api.override("POST", PATH, Reply(503))
    with pytest.raises(NetworkError) as e:
        rpc(url).sol_latest_blockhash("solana")
    assert e.value.retryable is True and e.value.status == 503
    assert json.loads(api.received()[0].body)["method"] == "getLatestBlockhash"
    api.override("POST", PATH, answer("0x"))  # the later override wins
    with pytest.raises(ComputeError) as e:
        erc20_nonces(rpc(url), "megaeth", TOKEN, OWNER)
    assert e.value.code == "rpc_bad_result"
    assert [r.path for r in api.received()] == [PATH, PATH]


def test_connection_refused_is_network_error():
    url = closed_port_url() + PATH  # nothing listens there
    with pytest.raises(NetworkError) as e:
        rpc(url).sol_account_info("solana", "11111111111111111111111111111111")
    assert e.value.code == "network_error" and e.value.retryable is True and e.value.details["url"] == url


@pytest.mark.parametrize("drop", [Reply(reset=True), Reply(raw=b"")], ids=["reset", "closed"])
def test_connection_dropped_without_answer_is_network_error(api, drop):
    api.override("POST", PATH, drop)
    with pytest.raises(NetworkError) as e:
        rpc(api.base_url + PATH).sol_account_info("solana", "11111111111111111111111111111111")
    assert e.value.code == "network_error" and e.value.retryable is True
    assert json.loads(api.received()[0].body)["method"] == "getAccountInfo"


def test_missing_url_is_config_error():
    with pytest.raises(ConfigError):
        JsonRpc(Settings()).eth_chain_id("megaeth")


def test_a_right_chain_id_is_asked_once_per_endpoint_a_wrong_one_every_time():
    from x402_compute.payments.schemes.evm_permit import check_chain

    class Endpoint:
        def __init__(self, name, chain):
            self.name, self.chain, self.asked = name, chain, 0

        def cache_key(self, network):
            return f"{self.name}/{network}"

        def eth_chain_id(self, network):
            self.asked += 1
            return self.chain

    right, wrong = Endpoint(f"right-{id(object())}", 4326), Endpoint(f"wrong-{id(object())}", 1)
    check_chain(right, "megaeth", 4326)
    check_chain(right, "megaeth", 4326)
    assert right.asked == 1
    for n in (1, 2):
        with pytest.raises(ComputeError) as e:
            check_chain(wrong, "megaeth", 4326)
        assert e.value.code == "rpc_wrong_chain" and wrong.asked == n
    with pytest.raises(ComputeError):  # the same endpoint asked for another chain is asked again
        check_chain(right, "megaeth", 8453)
    assert right.asked == 2
