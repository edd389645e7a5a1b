"""POST /rpc/<network>: JSON-RPC reads of the local chains."""
import base64

import pytest
import requests


def rpc(sb, network, method, params=None):
    r = requests.post(f"{sb.base_url}/rpc/{network}",
                      json={"jsonrpc": "2.0", "id": 7, "method": method, "params": params or []})
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == 7
    return body


@pytest.mark.parametrize("network,chain_id", [("base", 8453), ("megaeth", 4326), ("robinhood", 4663)])
def test_evm_reads(sandbox, network, chain_id):
    assert int(rpc(sandbox, network, "eth_chainId")["result"], 16) == chain_id
    assert int(rpc(sandbox, network, "eth_blockNumber")["result"], 16) >= 1
    net = sandbox.facilitator.network(network)
    code = rpc(sandbox, network, "eth_getCode", [net.asset, "latest"])["result"]
    assert len(code) > 100
    payee = sandbox.facilitator.payee(network)
    assert int(rpc(sandbox, network, "eth_getBalance", [payee, "latest"])["result"], 16) > 0
    # balanceOf(wallet 0) via eth_call agrees with the facilitator.
    w = sandbox.wallets[0]["evm_address"]
    data = "0x70a08231" + w[2:].lower().rjust(64, "0")
    out = rpc(sandbox, network, "eth_call", [{"to": net.asset, "data": data}, "latest"])["result"]
    assert int(out, 16) == sandbox.facilitator.balance_of(network, w)


def test_megausd_nonces_via_eth_call(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    data = "0x7ecebe00" + w["evm_address"][2:].lower().rjust(64, "0")   # nonces(address)
    asset = sandbox.facilitator.network("megaeth").asset
    before = int(rpc(sandbox, "megaeth", "eth_call", [{"to": asset, "data": data}, "latest"])["result"], 16)
    tools.provision(sandbox, w, network="megaeth")
    after = int(rpc(sandbox, "megaeth", "eth_call", [{"to": asset, "data": data}, "latest"])["result"], 16)
    assert after == before + 1


def test_solana_reads(sandbox):
    from solders.pubkey import Pubkey
    from solders.token.associated import get_associated_token_address
    net = sandbox.facilitator.network("solana")
    bh = rpc(sandbox, "solana", "getLatestBlockhash")["result"]["value"]
    assert bh["blockhash"] == str(sandbox.facilitator.chain("solana").latest_blockhash())
    mint = rpc(sandbox, "solana", "getAccountInfo", [net.asset, {"encoding": "base64"}])["result"]["value"]
    data = base64.b64decode(mint["data"][0])
    assert mint["owner"] == "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA" and data[44] == 6
    payee_ata = get_associated_token_address(Pubkey.from_string(sandbox.facilitator.payee("solana")),
                                             Pubkey.from_string(net.asset))
    acct = rpc(sandbox, "solana", "getAccountInfo", [str(payee_ata), {"encoding": "base64"}])["result"]["value"]
    assert acct is not None and acct["space"] == 165
    missing = rpc(sandbox, "solana", "getAccountInfo", [str(Pubkey.new_unique())])["result"]["value"]
    assert missing is None
    fee_payer = sandbox.facilitator.fee_payer()
    assert rpc(sandbox, "solana", "getBalance", [fee_payer])["result"]["value"] > 0
    assert rpc(sandbox, "solana", "getMinimumBalanceForRentExemption", [165])["result"] > 0


def test_solana_missing_recipient_ata(make_sandbox):
    sb = make_sandbox(recipient_atas=False)
    from solders.pubkey import Pubkey
    from solders.token.associated import get_associated_token_address
    net = sb.facilitator.network("solana")
    ata = get_associated_token_address(Pubkey.from_string(sb.facilitator.payee("solana")),
                                       Pubkey.from_string(net.asset))
    assert rpc(sb, "solana", "getAccountInfo", [str(ata), {"encoding": "base64"}])["result"]["value"] is None


def test_rpc_errors(sandbox):
    assert "error" in rpc(sandbox, "base", "eth_sendTransaction", [{}])
    assert rpc(sandbox, "base", "eth_getCode", ["0x12"])["error"]["code"] == -32602
    assert rpc(sandbox, "solana", "getAccountInfo", ["not-base58!"])["error"]["code"] == -32602
    assert rpc(sandbox, "solana", "getAccountInfo", [sandbox.facilitator.payee("solana"),
                                                     {"encoding": "jsonParsed"}])["error"]["code"] == -32602
    r = requests.post(f"{sandbox.base_url}/rpc/dogecoin", json={"jsonrpc": "2.0", "id": 1, "method": "x"})
    assert r.status_code == 404
    r = requests.post(f"{sandbox.base_url}/rpc/base", data=b"{nope")
    assert r.json()["error"]["code"] == -32700
    batch = requests.post(f"{sandbox.base_url}/rpc/base", json=[
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, {"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber"}])
    assert [x["id"] for x in batch.json()] == [1, 2]
