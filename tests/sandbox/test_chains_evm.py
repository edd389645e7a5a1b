"""The local EVM chains and the test token: real chain ids, real addresses, FiatToken behaviour."""
from __future__ import annotations

import time

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from tests.oracle import builders as b
from x402_compute_sandbox import networks as nets
from x402_compute_sandbox.chains.evm import ChainRevert, EvmChain

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module")
def chains():
    return {label: EvmChain(net) for label, net in nets.NETWORKS.items() if net.kind == "evm"}


@pytest.fixture()
def payer(chains):
    acct = Account.create()
    for c in chains.values():
        c.mint(acct.address, 10 * 10**c.network.decimals)
    return acct


def auth_for(chain, acct, to, value, **kw):
    net = chain.network
    inner = b.eip3009_inner(acct.key.hex(), to=to, value=value, asset=net.asset, chain_id=net.chain_id,
                            name=net.eip712_name, version=net.eip712_version, **kw)
    sig = bytes.fromhex(inner["signature"][2:])
    return inner["authorization"], sig


def test_chain_ids_addresses_and_identity(chains):
    expect = {"base": (8453, "USD Coin", "2", "USDC", 6), "megaeth": (4326, "MegaUSD", "1", "MegaUSD", 18),
              "robinhood": (4663, "Global Dollar", "1", "USDG", 6)}
    for label, (cid, name, version, symbol, decimals) in expect.items():
        c = chains[label]
        assert c.w3.eth.chain_id == cid
        assert c.backend.chain.chain_id == cid
        assert len(c.w3.eth.get_code(nets.NETWORKS[label].asset)) > 1000   # runtime at the real address
        assert c.token_info() == {"name": name, "version": version, "symbol": symbol, "decimals": decimals}


def test_domain_separator_uses_block_chainid_and_real_address(chains):
    for c in chains.values():
        net = c.network
        expected = keccak(
            keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
            + keccak(text=net.eip712_name) + keccak(text=net.eip712_version)
            + net.chain_id.to_bytes(32, "big") + bytes(12) + bytes.fromhex(net.asset[2:]))
        assert c.domain_separator() == expected


def test_initialize_is_once_only(chains):
    c = chains["base"]
    with pytest.raises(ChainRevert, match="already initialized"):
        c._transact(c.token.functions.initialize("X", "9", "X", 0, 0, "0x" + "00" * 20))
    assert c.token_info()["name"] == "USD Coin"


@pytest.mark.parametrize("overload", ["bytes", "vrs"])
def test_transfer_with_authorization_both_overloads(chains, payer, overload):
    c = chains["base"]
    to = Account.create().address
    auth, sig = auth_for(c, payer, to, 1_500_000)
    signature = sig if overload == "bytes" else (sig[64], sig[:32], sig[32:64])
    assert c.authorization_state(payer.address, auth["nonce"]) is False
    c.transfer_with_authorization(auth, signature)
    assert c.balance_of(payer.address) == 8_500_000 and c.balance_of(to) == 1_500_000
    assert c.authorization_state(payer.address, auth["nonce"]) is True
    with pytest.raises(ChainRevert, match="authorization is used or canceled"):
        c.transfer_with_authorization(auth, signature)
    assert c.balance_of(to) == 1_500_000


def test_transfer_with_authorization_refusals(chains, payer):
    c = chains["robinhood"]
    to = Account.create().address
    auth, sig = auth_for(c, payer, to, 1_000)
    with pytest.raises(ChainRevert, match="invalid signature"):
        c.transfer_with_authorization(dict(auth, value="1001"), sig)
    # high-s twin of a valid signature: same signer under plain ecrecover, refused as malleable
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])
    with pytest.raises(ChainRevert, match="invalid signature"):
        c.transfer_with_authorization(auth, high_s)
    with pytest.raises(ChainRevert, match="invalid signature"):
        c.transfer_with_authorization(auth, sig[:64] + bytes([v - 27]))   # v in {0,1}
    with pytest.raises(ChainRevert, match="invalid signature"):
        c.transfer_with_authorization(auth, sig[:64])                      # short
    now = c.refresh_time()
    expired, esig = auth_for(c, payer, to, 1_000, valid_before=now - 1)
    with pytest.raises(ChainRevert, match="authorization is expired"):
        c.transfer_with_authorization(expired, esig)
    future, fsig = auth_for(c, payer, to, 1_000, valid_after=now + 3600)
    with pytest.raises(ChainRevert, match="authorization is not yet valid"):
        c.transfer_with_authorization(future, fsig)
    big, bsig = auth_for(c, payer, to, 10**12)
    with pytest.raises(ChainRevert, match="exceeds balance"):
        c.transfer_with_authorization(big, bsig)
    assert c.balance_of(to) == 0 and c.balance_of(payer.address) == 10_000_000
    c.transfer_with_authorization(auth, sig)      # the untampered original still works
    assert c.balance_of(to) == 1_000


def test_wrong_chain_signature_is_refused_on_chain(chains, payer):
    base, rh = chains["base"], chains["robinhood"]
    to = Account.create().address
    auth, sig = auth_for(base, payer, to, 5)    # signed on USD Coin / 8453
    with pytest.raises(ChainRevert, match="invalid signature"):
        rh.transfer_with_authorization(auth, sig)


def test_receive_and_cancel_authorization(chains, payer):
    c = chains["base"]
    auth, sig = auth_for(c, payer, Account.create().address, 7)
    fn = c.token.get_function_by_signature(
        "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)")
    call = fn(payer.address, auth["to"], 7, 0, int(auth["validBefore"]), bytes.fromhex(auth["nonce"][2:]), sig)
    with pytest.raises(ChainRevert, match="caller must be the payee"):
        c._transact(call)
    # cancel the nonce with a CancelAuthorization signature, then the transfer is dead
    typed = {"types": {"EIP712Domain": b.EIP712_DOMAIN, "CancelAuthorization": [
        {"name": "authorizer", "type": "address"}, {"name": "nonce", "type": "bytes32"}]},
        "primaryType": "CancelAuthorization",
        "domain": {"name": "USD Coin", "version": "2", "chainId": 8453, "verifyingContract": c.asset},
        "message": {"authorizer": payer.address, "nonce": bytes.fromhex(auth["nonce"][2:])}}
    csig = bytes(Account.sign_typed_data(payer.key, full_message=typed).signature)
    cancel = c.token.get_function_by_signature("cancelAuthorization(address,bytes32,bytes)")
    c._transact(cancel(payer.address, bytes.fromhex(auth["nonce"][2:]), csig))
    assert c.authorization_state(payer.address, auth["nonce"]) is True
    with pytest.raises(ChainRevert, match="authorization is used or canceled"):
        c.transfer_with_authorization(auth, sig)


def test_permit_then_transfer_from_on_megaeth(chains, payer):
    c = chains["megaeth"]
    spender = Account.create()
    c.register_key(spender.key.hex())
    value = 3 * 10**18                      # 18 decimals
    deadline = int(time.time()) + 600
    sig = b.permit_signature(payer.key.hex(), spender=spender.address, value=value, nonce=0, deadline=deadline,
                             asset=c.asset, chain_id=4326, name="MegaUSD", version="1")
    assert c.nonces(payer.address) == 0
    c.permit(payer.address, spender.address, value, deadline, sig[64], sig[:32], sig[32:64])
    assert c.nonces(payer.address) == 1 and c.allowance(payer.address, spender.address) == value
    with pytest.raises(ChainRevert, match="invalid signature"):     # replay: the nonce moved on
        c.permit(payer.address, spender.address, value, deadline, sig[64], sig[:32], sig[32:64])
    c.transfer_from(spender.address, payer.address, spender.address, value)
    assert c.balance_of(spender.address) == value
    assert c.balance_of(payer.address) == 7 * 10**18
    assert c.allowance(payer.address, spender.address) == 0
    with pytest.raises(ChainRevert, match="exceeds allowance"):
        c.transfer_from(spender.address, payer.address, spender.address, 1)


def test_permit_refusals(chains, payer):
    c = chains["megaeth"]
    spender = Account.create().address
    now = int(time.time())
    old = b.permit_signature(payer.key.hex(), spender=spender, value=1, nonce=0, deadline=now - 10,
                             asset=c.asset, chain_id=4326, name="MegaUSD", version="1")
    with pytest.raises(ChainRevert, match="permit is expired"):
        c.permit(payer.address, spender, 1, now - 10, old[64], old[:32], old[32:64])
    other_chain = b.permit_signature(payer.key.hex(), spender=spender, value=1, nonce=0, deadline=now + 600,
                                     asset=c.asset, chain_id=8453, name="MegaUSD", version="1")
    with pytest.raises(ChainRevert, match="invalid signature"):
        c.permit(payer.address, spender, 1, now + 600, other_chain[64], other_chain[:32], other_chain[32:64])
    assert c.nonces(payer.address) == 0 and c.allowance(payer.address, spender) == 0


def test_block_time_tracks_wall_clock(chains):
    c = chains["base"]
    ts = c.refresh_time()
    assert abs(ts - time.time()) <= 5
    assert c.pending_timestamp() == ts
    # a transaction's block uses that time: an authorization valid only from `now - 2` passes
    acct = Account.create()
    c.mint(acct.address, 10)
    auth, sig = auth_for(c, acct, Account.create().address, 10, valid_after=int(time.time()) - 2,
                         valid_before=int(time.time()) + 30)
    c.transfer_with_authorization(auth, sig)
    assert c.balance_of(acct.address) == 0
    # a burst of transactions (one block each) must not push chain time ahead of the wall clock
    for _ in range(25):
        c.mint(acct.address, 1)
    assert c.refresh_time() <= int(time.time()) + 1
    assert c.w3.eth.get_block("latest")["timestamp"] <= int(time.time()) + 1


def test_spec_vector_recovers_with_eth_account():
    """x402.md §14 vector 1: guards our EIP-712 layout against the published example."""
    typed = {"types": {"EIP712Domain": b.EIP712_DOMAIN, "TransferWithAuthorization": [
        {"name": "from", "type": "address"}, {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"}, {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"}, {"name": "nonce", "type": "bytes32"}]},
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": "USDC", "version": "2", "chainId": 84532,
                   "verifyingContract": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"},
        "message": {"from": "0x857b06519E91e3A54538791bDbb0E22373e36b66",
                    "to": "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "value": 10000,
                    "validAfter": 1740672089, "validBefore": 1740672154,
                    "nonce": bytes.fromhex("f3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480")}}
    sig = ("0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9"
           "bd15092f9ecab05ded3d6293af148b571c")
    assert Account.recover_message(encode_typed_data(full_message=typed), signature=sig) == \
        "0x857b06519E91e3A54538791bDbb0E22373e36b66"
