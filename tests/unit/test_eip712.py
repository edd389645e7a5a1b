"""x402_compute.eip712 hashes the typed data the client signs; eth-account (an independent
implementation) must agree on every digest, for the three message kinds the EVM schemes sign
and for random field values; anything the fast encoder does not handle is left to eth-account."""

from __future__ import annotations

from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st
from x402_compute.eip712 import digest
from x402_compute.payments.schemes._evm import EIP712_DOMAIN_TYPE, uint_json
from x402_compute.payments.schemes.evm_permit2 import PERMIT2_TYPES
from x402_compute.wallets.evm import EvmSigner

KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uints = st.integers(min_value=0, max_value=(1 << 256) - 1)


def reference(typed: dict) -> bytes:
    return _hash_eip191_message(encode_typed_data(full_message=typed))


def eip3009(frm, to, value, after, before, nonce, chain, token, name="USD Coin", version="2") -> dict:
    return {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "TransferWithAuthorization": [
            {"name": n, "type": t} for n, t in (("from", "address"), ("to", "address"), ("value", "uint256"),
                                                 ("validAfter", "uint256"), ("validBefore", "uint256"), ("nonce", "bytes32"))]},
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": name, "version": version, "chainId": chain, "verifyingContract": token},
        "message": {"from": frm, "to": to, "value": uint_json(value), "validAfter": uint_json(after),
                    "validBefore": uint_json(before), "nonce": "0x" + nonce.hex()},
    }


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(addresses, addresses, uints, uints, uints, st.binary(min_size=32, max_size=32), st.integers(1, 10**9), addresses,
       st.text(max_size=20))
def test_transfer_with_authorization(frm, to, value, after, before, nonce, chain, token, name):
    typed = eip3009(frm, to, value, after, before, nonce, chain, token, name=name)
    assert digest(typed) == reference(typed)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(addresses, addresses, uints, uints, uints, st.integers(1, 10**9), addresses)
def test_permit(owner, spender, value, nonce, deadline, chain, token):
    typed = {
        "types": {"EIP712Domain": EIP712_DOMAIN_TYPE, "Permit": [
            {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"},
            {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}]},
        "primaryType": "Permit",
        "domain": {"name": "MegaUSD", "version": "1", "chainId": chain, "verifyingContract": token},
        "message": {"owner": owner, "spender": spender, "value": uint_json(value), "nonce": uint_json(nonce), "deadline": uint_json(deadline)},
    }
    assert digest(typed) == reference(typed)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(addresses, uints, addresses, uints, uints, addresses, uints, st.integers(1, 10**9), addresses)
def test_permit2_witness_with_nested_structs(token, amount, spender, nonce, deadline, to, after, chain, permit2):
    typed = {
        "types": PERMIT2_TYPES,
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": chain, "verifyingContract": permit2},
        "message": {"permitted": {"token": token, "amount": uint_json(amount)}, "spender": spender, "nonce": uint_json(nonce),
                    "deadline": uint_json(deadline), "witness": {"to": to, "validAfter": uint_json(after)}},
    }
    assert digest(typed) == reference(typed)


def test_what_it_does_not_handle_goes_to_eth_account():
    base = eip3009("0x" + "11" * 20, "0x" + "22" * 20, 5, 0, 9, b"\1" * 32, 8453, "0x" + "33" * 20)
    arrays = {**base, "types": {**base["types"], "TransferWithAuthorization": [*base["types"]["TransferWithAuthorization"],
                                                                                {"name": "extra", "type": "uint256[]"}]},
              "message": {**base["message"], "extra": [1, 2]}}
    assert digest(arrays) is None
    assert digest({**base, "message": {**base["message"], "value": -1}}) is None  # out of range for uint256
    assert digest({**base, "message": {**base["message"], "to": "not an address"}}) is None
    # The signer still signs those through eth-account, and the signature recovers to its address.
    from eth_account import Account

    signer = EvmSigner(KEY)
    sig = signer.sign_typed_data(arrays)
    assert Account._recover_hash(reference(arrays), signature=sig) == signer.address
    sig = signer.sign_typed_data(base)
    assert Account._recover_hash(reference(base), signature=sig) == signer.address
