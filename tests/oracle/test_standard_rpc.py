"""A `tx_hash` from a paid answer, checked against the sandbox's chains by clients nobody here wrote:
web3.py for the EVM networks and solana-py for Solana, talking standard JSON-RPC to /rpc/<network>.

What a user (or reconcile) checks on a real chain: the receipt and its token Transfer log, the
transaction itself, the Transfer found by eth_getLogs, nonces, a signed transaction of one's own;
on Solana the transaction, its token balance changes, and the payer's token-account history."""
from __future__ import annotations

import pytest
from eth_abi import decode
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound, Web3RPCError
from web3.logs import DISCARD

TRANSFER = Web3.keccak(text="Transfer(address,address,uint256)")
ERC20_ABI = [
    {"type": "event", "name": "Transfer", "anonymous": False,
     "inputs": [{"name": "from", "type": "address", "indexed": True},
                {"name": "to", "type": "address", "indexed": True},
                {"name": "value", "type": "uint256", "indexed": False}]},
    {"type": "function", "name": "transfer", "stateMutability": "nonpayable",
     "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "view",
     "inputs": [{"name": "owner", "type": "address"}], "outputs": [{"name": "", "type": "uint256"}]},
]


def w3_for(sb, network: str) -> Web3:
    w3 = Web3(HTTPProvider(f"{sb.base_url}/rpc/{network}", request_kwargs={"timeout": 30}))
    assert w3.eth.chain_id == sb.facilitator.network(network).chain_id
    return w3


@pytest.mark.parametrize("network", ["base", "robinhood", "megaeth"])
def test_paid_tx_hash_checks_out_with_web3py(sandbox, tools, network):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    paid = tools.provision(sandbox, w, network=network)
    net = sandbox.facilitator.network(network)
    payer, payee = w["evm_address"], sandbox.facilitator.payee(network)
    amount = net.atomic_from_usd_micros(249_600)
    w3 = w3_for(sandbox, network)
    token = w3.eth.contract(address=Web3.to_checksum_address(net.asset), abi=ERC20_ABI)

    receipt = w3.eth.get_transaction_receipt(paid["tx_hash"])
    assert receipt.status == 1 and receipt.transactionHash.to_0x_hex() == paid["tx_hash"]
    (moved,) = [e for e in token.events.Transfer().process_receipt(receipt, errors=DISCARD) if e.args["from"] == payer]
    assert (moved.args["to"], moved.args["value"]) == (payee, amount)
    assert moved.address == token.address and moved.blockNumber == receipt.blockNumber
    tx = w3.eth.get_transaction(paid["tx_hash"])
    assert tx.blockNumber == receipt.blockNumber and tx.to == token.address and tx["from"] == receipt["from"]
    if network == "megaeth":   # the x402layer route: the payee redeems the permit, then pulls with transferFrom
        assert tx.input[:4] == Web3.keccak(text="transferFrom(address,address,uint256)")[:4] and tx["from"] == payee
        assert decode(["address", "address", "uint256"], bytes(tx.input[4:])) == (payer.lower(), payee.lower(), amount)
    else:                      # EIP-3009 transferWithAuthorization, sent by the facilitator's own account
        assert tx.input[:4] in (Web3.keccak(text="transferWithAuthorization(address,address,uint256,uint256,uint256,"
                                                "bytes32,uint8,bytes32,bytes32)")[:4],
                                Web3.keccak(text="transferWithAuthorization(address,address,uint256,uint256,uint256,"
                                                "bytes32,bytes)")[:4])
    block = w3.eth.get_block(receipt.blockNumber)
    assert receipt.transactionHash in block.transactions

    logs = w3.eth.get_logs({"fromBlock": receipt.blockNumber, "toBlock": receipt.blockNumber, "address": token.address,
                            "topics": [TRANSFER, "0x" + payer[2:].lower().rjust(64, "0")]})
    assert [lg.transactionHash for lg in logs] == [receipt.transactionHash]
    assert w3.eth.get_logs({"fromBlock": receipt.blockNumber, "toBlock": receipt.blockNumber,
                            "address": token.address, "topics": [TRANSFER, None, "0x" + "00" * 32]}) == []
    # The receipt's bloom has the token contract's bits set, as a node's does.
    from eth_bloom import BloomFilter
    assert bytes.fromhex(token.address[2:]) in BloomFilter(int.from_bytes(receipt.logsBloom, "big"))
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt("0x" + "ab" * 32)


def test_signed_transaction_of_ones_own_and_its_refusals(sandbox):
    """eth_sendRawTransaction: a test wallet (it holds gas) moves its own USDC with web3.py; a
    transaction signed for another chain, a replay and garbage are refused as a node refuses them."""
    w = sandbox.wallets[2]
    acct = Account.from_key(w["evm_private_key"])
    w3 = w3_for(sandbox, "base")
    token = w3.eth.contract(address=Web3.to_checksum_address(sandbox.facilitator.network("base").asset), abi=ERC20_ABI)
    to = Account.create().address
    nonce = w3.eth.get_transaction_count(acct.address)
    tx = token.functions.transfer(to, 1234).build_transaction({
        "from": acct.address, "nonce": nonce, "chainId": 8453, "gas": 100_000,
        "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9})
    signed = acct.sign_transaction(tx)
    h = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(h, timeout=10)
    assert receipt.status == 1 and token.functions.balanceOf(to).call() == 1234
    assert w3.eth.get_transaction_count(acct.address) == nonce + 1
    with pytest.raises(Web3RPCError, match="nonce"):
        w3.eth.send_raw_transaction(signed.raw_transaction)                       # a replay
    other = acct.sign_transaction({**tx, "nonce": nonce + 1, "chainId": 1})
    with pytest.raises(Web3RPCError, match="chain id 1"):
        w3.eth.send_raw_transaction(other.raw_transaction)                        # another chain's
    legacy = acct.sign_transaction({"to": to, "value": 0, "gas": 21_000, "gasPrice": 10**9, "nonce": nonce + 1})
    with pytest.raises(Web3RPCError, match="replay-protected"):
        w3.eth.send_raw_transaction(legacy.raw_transaction)                       # pre-EIP-155
    with pytest.raises(Web3RPCError, match="invalid transaction"):
        w3.eth.send_raw_transaction(b"\x02\xc0garbage")
    assert token.functions.balanceOf(to).call() == 1234


def test_solana_payment_checks_out_with_solana_py(sandbox, tools):
    from solana.rpc.api import Client
    from solana.rpc.types import TokenAccountOpts
    from solders.pubkey import Pubkey
    from solders.signature import Signature
    from solders.token.associated import get_associated_token_address

    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    paid = tools.provision(sandbox, w, network="solana")
    client = Client(sandbox.base_url + "/rpc/solana", timeout=30)
    mint = Pubkey.from_string(sandbox.facilitator.network("solana").asset)
    payer = Pubkey.from_string(w["solana_address"])
    payee = Pubkey.from_string(sandbox.facilitator.payee("solana"))
    source, dest = get_associated_token_address(payer, mint), get_associated_token_address(payee, mint)
    sig = Signature.from_string(paid["tx_hash"])

    got = client.get_transaction(sig, max_supported_transaction_version=0).value
    assert got is not None and got.transaction.meta.err is None
    ui_tx = got.transaction.transaction
    assert ui_tx.signatures[0] == sig and Signature.from_string(str(ui_tx.signatures[1])) is not None
    keys = [str(k) for k in ui_tx.message.account_keys]
    meta = got.transaction.meta
    change = {}
    for pre, post in zip(sorted(meta.pre_token_balances, key=lambda b: b.account_index),
                         sorted(meta.post_token_balances, key=lambda b: b.account_index)):
        change[keys[pre.account_index]] = int(post.ui_token_amount.amount) - int(pre.ui_token_amount.amount)
    assert change == {str(source): -249_600, str(dest): 249_600}
    assert meta.fee > 0 and meta.post_balances[0] == meta.pre_balances[0] - meta.fee   # the facilitator paid the fee

    history = client.get_signatures_for_address(source, limit=10).value
    assert history[0].signature == sig and history[0].err is None       # newest first
    bal = client.get_token_account_balance(source).value
    assert int(bal.amount) == sandbox.facilitator.balance_of("solana", w["solana_address"]) and bal.decimals == 6
    accounts = client.get_token_accounts_by_owner_json_parsed(payer, TokenAccountOpts(mint=mint)).value
    assert [str(a.pubkey) for a in accounts] == [str(source)]
    assert accounts[0].account.data.parsed["info"]["tokenAmount"]["amount"] == bal.amount
    # A version-0 transaction needs the client's opt-in, as on a real node.
    import requests
    err = requests.post(sandbox.base_url + "/rpc/solana", json={"jsonrpc": "2.0", "id": 1, "method": "getTransaction",
                                                               "params": [str(sig), {"encoding": "json"}]}).json()
    assert err["error"]["code"] == -32015 and "maxSupportedTransactionVersion" in err["error"]["message"]
