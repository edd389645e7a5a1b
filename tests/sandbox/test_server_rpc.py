"""POST /rpc/<network>: JSON-RPC reads of the local chains, and Solana sendTransaction."""
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
    # The standard reads refuse what a node refuses, with the parameter named.
    for network, method, params in [
            ("base", "eth_getTransactionReceipt", ["0x12"]), ("base", "eth_getLogs", [{"topics": ["0x12"]}]),
            ("base", "eth_getLogs", [{"address": "nope"}]), ("base", "eth_getLogs", [{"fromBlock": "soon"}]),
            ("base", "eth_getLogs", ["not an object"]), ("base", "eth_sendRawTransaction", ["0xzz"]),
            ("base", "eth_getBlockByNumber", ["latest", "yes"]),
            ("solana", "getTransaction", ["short"]), ("solana", "getSignaturesForAddress", [sandbox.facilitator.fee_payer(), {"limit": 0}]),
            ("solana", "getTokenAccountBalance", [sandbox.facilitator.fee_payer()]),
            ("solana", "getTokenAccountsByOwner", [sandbox.facilitator.fee_payer(), {}])]:
        assert rpc(sandbox, network, method, params)["error"]["code"] == -32602, (method, params)
    assert rpc(sandbox, "base", "eth_getTransactionReceipt", ["0x" + "ab" * 32])["result"] is None
    head = int(rpc(sandbox, "base", "eth_blockNumber")["result"], 16)
    assert rpc(sandbox, "base", "eth_getLogs", [{"fromBlock": hex(head + 5)}])["result"] == []


def test_solana_send_transaction_and_statuses(make_sandbox):
    """The one write: a signed transaction (here the client's create-ATA side transaction) runs on
    LiteSVM with signature checks; errors come back as a node's preflight would report them."""
    from solders.hash import Hash
    from solders.instruction import AccountMeta, Instruction
    from solders.keypair import Keypair
    from solders.message import MessageV0, to_bytes_versioned
    from solders.pubkey import Pubkey
    from solders.signature import Signature
    from solders.transaction import VersionedTransaction
    sb = make_sandbox(recipient_atas=False)
    chain = sb.facilitator.chain("solana")
    payer = Keypair.from_base58_string(sb.wallets[0]["solana_secret_key"])
    payee = Pubkey.from_string(sb.facilitator.payee("solana"))
    token = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
    ix = Instruction(Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"), bytes([1]), [
        AccountMeta(payer.pubkey(), True, True), AccountMeta(chain.ata(payee), False, True),
        AccountMeta(payee, False, False), AccountMeta(chain.mint, False, False),
        AccountMeta(Pubkey.from_string("11111111111111111111111111111111"), False, False), AccountMeta(token, False, False)])

    def tx_b64(signer):
        bh = rpc(sb, "solana", "getLatestBlockhash", [])["result"]["value"]["blockhash"]
        msg = MessageV0.try_compile(payer.pubkey(), [ix], [], Hash.from_string(bh))
        sig = Signature.from_bytes(bytes(signer.sign_message(to_bytes_versioned(msg))))
        return base64.b64encode(bytes(VersionedTransaction.populate(msg, [sig]))).decode()

    before = rpc(sb, "solana", "getBalance", [str(payer.pubkey())])["result"]["value"]
    bad = rpc(sb, "solana", "sendTransaction", [tx_b64(Keypair()), {"encoding": "base64"}])["error"]
    assert bad["code"] == -32002 and "SignatureFailure" in bad["message"]
    assert rpc(sb, "solana", "sendTransaction", [tx_b64(payer)])["error"]["code"] == -32602   # base58 default
    assert not chain.has_ata(payee)
    sig = rpc(sb, "solana", "sendTransaction", [tx_b64(payer), {"encoding": "base64"}])["result"]
    assert chain.has_ata(payee)
    rent = rpc(sb, "solana", "getMinimumBalanceForRentExemption", [165])["result"]
    assert before - rpc(sb, "solana", "getBalance", [str(payer.pubkey())])["result"]["value"] == rent + 5_000
    unknown = str(Signature.from_bytes(bytes([1]) * 64))
    st = rpc(sb, "solana", "getSignatureStatuses", [[sig, unknown]])["result"]["value"]
    assert st[0]["err"] is None and st[0]["confirmationStatus"] == "finalized" and st[1] is None
    assert rpc(sb, "solana", "getSignatureStatuses", [["nope"]])["error"]["code"] == -32602
