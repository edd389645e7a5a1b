"""Payloads built by hand with eth-account and solders, independently of the x402 SDK and of the sandbox.

Used on both sides of the cross-check: our facilitator must accept them, and so must the SDK's
facilitator. Field layouts follow shared/reference/x402.md §4, §5, §6 and §9.
"""
from __future__ import annotations

import base64
import os
import struct
import time
from typing import Optional

from eth_account import Account
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.null_signer import NullSigner
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")

EIP712_DOMAIN = [
    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
]

TRANSFER_WITH_AUTHORIZATION = [  # EIP-3009
    {"name": "from", "type": "address"}, {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"}, {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"}, {"name": "nonce", "type": "bytes32"},
]


def eip3009_inner(key: str, *, to: str, value: int, asset: str, chain_id: int, name: str, version: str,
                  valid_after: int = 0, valid_before: Optional[int] = None, nonce: Optional[str] = None) -> dict:
    """{"signature", "authorization"} for TransferWithAuthorization, all numbers as decimal strings."""
    acct = Account.from_key(key)
    nonce = nonce or "0x" + os.urandom(32).hex()
    valid_before = valid_before if valid_before is not None else int(time.time()) + 300
    message = {"from": acct.address, "to": to, "value": value, "validAfter": valid_after,
               "validBefore": valid_before, "nonce": bytes.fromhex(nonce[2:])}
    typed = {"types": {"EIP712Domain": EIP712_DOMAIN, "TransferWithAuthorization": TRANSFER_WITH_AUTHORIZATION},
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": asset},
        "message": message}
    sig = Account.sign_typed_data(key, full_message=typed).signature
    return {"signature": "0x" + sig.hex(), "authorization": {
        "from": acct.address, "to": to, "value": str(value), "validAfter": str(valid_after),
        "validBefore": str(valid_before), "nonce": nonce}}


def permit_signature(key: str, *, spender: str, value: int, nonce: int, deadline: int, asset: str,
                     chain_id: int, name: str, version: str) -> bytes:
    acct = Account.from_key(key)
    typed = {"types": {"EIP712Domain": EIP712_DOMAIN, "Permit": [
        {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"}]},
        "primaryType": "Permit",
        "domain": {"name": name, "version": version, "chainId": chain_id, "verifyingContract": asset},
        "message": {"owner": acct.address, "spender": spender, "value": value, "nonce": nonce,
                    "deadline": deadline}}
    return bytes(Account.sign_typed_data(key, full_message=typed).signature)


def permit_inner(key: str, *, spender: str, value: int, nonce: int, asset: str, chain_id: int, name: str,
                 version: str, deadline: Optional[int] = None, split: bool = False) -> dict:
    """The MegaETH direct-permit payload: 65-byte `signature`, or split `v`, `r`, `s` when split=True."""
    deadline = deadline if deadline is not None else int(time.time()) + 3600
    sig = permit_signature(key, spender=spender, value=value, nonce=nonce, deadline=deadline, asset=asset,
                           chain_id=chain_id, name=name, version=version)
    auth = {"owner": Account.from_key(key).address, "spender": spender, "value": str(value),
            "nonce": str(nonce), "deadline": str(deadline)}
    if split:
        return {"v": sig[64], "r": "0x" + sig[:32].hex(), "s": "0x" + sig[32:64].hex(), "authorization": auth}
    return {"signature": "0x" + sig.hex(), "authorization": auth}


# Canonical CREATE2 addresses (x402.md §5.1), repeated here so the builders stay independent of the sandbox.
PERMIT2 = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
EXACT_PERMIT2_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
PERMIT2_DOMAIN = [
    {"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
PERMIT2_WITNESS = [{"name": "to", "type": "address"}, {"name": "validAfter", "type": "uint256"}]


def permit2_inner(key: str, *, asset: str, amount: int, pay_to: str, chain_id: int, nonce: Optional[int] = None,
                  deadline: Optional[int] = None, valid_after: int = 0, spender: str = EXACT_PERMIT2_PROXY,
                  witness_fields: Optional[list] = None, extra_witness: Optional[dict] = None) -> dict:
    """{"signature", "permit2Authorization"} for Permit2 `PermitWitnessTransferFrom` (x402.md §5.2/§5.3).

    `witness_fields`/`extra_witness` sign a *different* Witness type (e.g. the pre-audit one with `extra`)
    while the payload still shows {to, validAfter}: what an outdated client would send.
    """
    acct = Account.from_key(key)
    nonce = nonce if nonce is not None else int.from_bytes(os.urandom(32), "big")
    deadline = deadline if deadline is not None else int(time.time()) + 300
    witness = {"to": pay_to, "validAfter": valid_after, **(extra_witness or {})}
    typed = {"types": {
        "EIP712Domain": PERMIT2_DOMAIN,
        "PermitWitnessTransferFrom": [
            {"name": "permitted", "type": "TokenPermissions"}, {"name": "spender", "type": "address"},
            {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"},
            {"name": "witness", "type": "Witness"}],
        "TokenPermissions": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "Witness": witness_fields or PERMIT2_WITNESS},
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": chain_id, "verifyingContract": PERMIT2},
        "message": {"permitted": {"token": asset, "amount": amount}, "spender": spender, "nonce": nonce,
                    "deadline": deadline, "witness": witness}}
    sig = Account.sign_typed_data(key, full_message=typed).signature
    return {"signature": "0x" + sig.hex(), "permit2Authorization": {
        "from": acct.address, "permitted": {"token": asset, "amount": str(amount)}, "spender": spender,
        "nonce": str(nonce), "deadline": str(deadline),
        "witness": {"to": pay_to, "validAfter": str(valid_after)}}}


def eip2612_extension(key: str, *, asset: str, amount: int, nonce: int, deadline: int, chain_id: int,
                      name: str, version: str) -> dict:
    """`extensions` with eip2612GasSponsoring info: an ERC-2612 permit with spender = Permit2 (x402.md §5.5)."""
    sig = permit_signature(key, spender=PERMIT2, value=amount, nonce=nonce, deadline=deadline, asset=asset,
                           chain_id=chain_id, name=name, version=version)
    return {"eip2612GasSponsoring": {"info": {
        "from": Account.from_key(key).address, "asset": asset, "spender": PERMIT2, "amount": str(amount),
        "nonce": str(nonce), "deadline": str(deadline), "signature": "0x" + sig.hex(), "version": "1"},
        "schema": {}}}


def svm_transaction(payer: Keypair, *, fee_payer: Pubkey, mint: Pubkey, pay_to: Pubkey, amount: int,
                    blockhash: Hash, decimals: int = 6, layout: str = "spec", memo: Optional[bytes] = None,
                    cu_limit: Optional[int] = None, cu_price: Optional[int] = None,
                    destination: Optional[Pubkey] = None, extra_ixs: tuple = ()) -> VersionedTransaction:
    """A partially signed x402 SVM transfer: slot 0 (fee payer) left empty, the payer signs slot 1.

    layout "spec": CU 20000, price 1 µlamport, TransferChecked, Memo (x402 reference clients);
    layout "upstream": CU 200000, price 1000 µlamports, TransferChecked, no memo (compute skill).
    """
    if layout == "spec":
        cu_limit = 20_000 if cu_limit is None else cu_limit
        cu_price = 1 if cu_price is None else cu_price
        memo = os.urandom(16).hex().encode() if memo is None else memo
    else:
        cu_limit = 200_000 if cu_limit is None else cu_limit
        cu_price = 1_000 if cu_price is None else cu_price
    source = get_associated_token_address(payer.pubkey(), mint)
    dest = destination or get_associated_token_address(pay_to, mint)
    ixs = [
        Instruction(COMPUTE_BUDGET, bytes([2]) + struct.pack("<I", cu_limit), []),
        Instruction(COMPUTE_BUDGET, bytes([3]) + struct.pack("<Q", cu_price), []),
        Instruction(TOKEN_PROGRAM, bytes([12]) + struct.pack("<Q", amount) + bytes([decimals]), [
            AccountMeta(source, False, True), AccountMeta(mint, False, False),
            AccountMeta(dest, False, True), AccountMeta(payer.pubkey(), True, False)]),
    ]
    if layout == "spec" and memo is not False:
        ixs.append(Instruction(MEMO_PROGRAM, memo, []))
    ixs.extend(extra_ixs)
    msg = MessageV0.try_compile(fee_payer, ixs, [], blockhash)
    return VersionedTransaction(msg, [NullSigner(fee_payer), payer])


def svm_inner(tx: VersionedTransaction) -> dict:
    return {"transaction": base64.b64encode(bytes(tx)).decode()}


def resign(tx: VersionedTransaction, payer: Keypair) -> VersionedTransaction:
    """Re-sign a message (e.g. after tampering) so only the intended defect remains."""
    sig = payer.sign_message(to_bytes_versioned(tx.message))
    return VersionedTransaction.populate(tx.message, [tx.signatures[0], sig])


def v1(req: dict, inner: dict) -> dict:
    return {"x402Version": 1, "scheme": req["scheme"], "network": req["network"], "payload": inner}


def v2(req: dict, inner: dict, **extra) -> dict:
    return {"x402Version": 2, "accepted": dict(req), "payload": inner,
            "resource": {"url": "http://127.0.0.1/compute/provision"}, **extra}
