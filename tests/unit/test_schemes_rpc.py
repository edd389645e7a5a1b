"""payments.rpc.JsonRpc error paths that a healthy server cannot be made to produce: they must surface as
typed errors with a stable code, never a traceback."""

from __future__ import annotations

import pytest
import requests
import responses
from x402_compute.config import Settings
from x402_compute.errors import ComputeError, ConfigError, NetworkError
from x402_compute.payments.rpc import JsonRpc, erc20_nonces

URL = "https://rpc.invalid/megaeth"
OWNER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
TOKEN = "0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7"


def rpc():
    return JsonRpc(Settings(rpc_urls={"megaeth": URL, "solana": URL}))


@responses.activate
def test_nonces_call_is_encoded_and_decoded():
    def reply(request):
        import json
        body = json.loads(request.body)
        assert body["method"] == "eth_call" and body["params"][1] == "latest"
        assert body["params"][0] == {"to": TOKEN, "data": "0x7ecebe00" + "00" * 12 + OWNER[2:].lower()}
        return 200, {}, json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": "0x" + "00" * 31 + "05"})
    responses.add_callback(responses.POST, URL, callback=reply)
    assert erc20_nonces(rpc(), "megaeth", TOKEN, OWNER) == 5


@responses.activate
def test_rpc_error_object_is_a_typed_error():
    responses.add(responses.POST, URL, json={"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "boom"}})
    with pytest.raises(ComputeError) as e:
        rpc().eth_chain_id("megaeth")
    assert e.value.code == "rpc_error" and "boom" in e.value.message


@responses.activate
def test_http_failure_and_empty_result():
    responses.add(responses.POST, URL, status=503)
    with pytest.raises(NetworkError) as e:
        rpc().sol_latest_blockhash("solana")
    assert e.value.retryable is True
    responses.replace(responses.POST, URL, json={"jsonrpc": "2.0", "id": 1, "result": "0x"})
    with pytest.raises(ComputeError) as e:
        erc20_nonces(rpc(), "megaeth", TOKEN, OWNER)
    assert e.value.code == "rpc_bad_result"


@responses.activate
def test_connection_error_is_network_error():
    responses.add(responses.POST, URL, body=requests.ConnectionError("refused"))
    with pytest.raises(NetworkError):
        rpc().sol_account_info("solana", "11111111111111111111111111111111")


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
