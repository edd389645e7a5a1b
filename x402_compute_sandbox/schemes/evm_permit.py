"""megaeth: the x402layer direct ERC-2612 permit (spender = payTo), settled by `permit` + `transferFrom`
sent by the payee, whose key the facilitator holds (x402.md §6)."""
from __future__ import annotations

import time

from ..networks import Network
from . import VALIDITY_BUFFER_SECONDS, hexbytes, reject, uint
from ._evm import EIP712_DOMAIN, address, authorization, check_domain, domain, recover, revert_to_reason

_PERMIT_TYPE = [
    {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def verify(chain, net: Network, inner: dict, req: dict, amount: int) -> dict:
    """Payload: {"signature": 65-byte hex} or {"v","r","s"}, plus
    {"authorization": {"owner","spender","value","nonce","deadline"}}; spender must be payTo."""
    from eth_utils import to_checksum_address
    check_domain(net, req)
    auth = authorization(inner, ("owner", "spender", "value", "nonce", "deadline"), "permit")
    payer = address(auth["owner"], "authorization.owner")
    spender = address(auth["spender"], "authorization.spender")
    value = uint(auth["value"], "authorization.value")
    nonce = uint(auth["nonce"], "authorization.nonce")
    deadline = uint(auth["deadline"], "authorization.deadline")
    if "signature" in inner:
        sig = hexbytes(inner["signature"], "signature", "invalid_exact_evm_payload_signature")
        if len(sig) != 65:
            reject("invalid_exact_evm_payload_signature", "signature must be 65 bytes (r, s, v)", payer)
        v, r, s = sig[64], sig[:32], sig[32:64]
    elif all(k in inner for k in ("v", "r", "s")):
        v = uint(inner["v"], "v", "invalid_exact_evm_payload_signature")
        r = hexbytes(inner["r"], "r", "invalid_exact_evm_payload_signature")
        s = hexbytes(inner["s"], "s", "invalid_exact_evm_payload_signature")
        if len(r) != 32 or len(s) != 32 or v > 255:
            reject("invalid_exact_evm_payload_signature", "r and s must be 32 bytes, v one byte", payer)
        sig = r + s + bytes([v])
    else:
        reject("invalid_payload", "permit payload needs `signature` or `v`, `r`, `s`", payer)

    pay_to = to_checksum_address(req["payTo"])
    if spender != pay_to:
        reject("invalid_exact_evm_payload_recipient_mismatch", "permit spender is not payTo", payer)
    if value != amount:
        reject("invalid_exact_evm_payload_authorization_value_mismatch",
               f"permit value {value} != required {amount}", payer)
    if deadline < int(time.time()) + VALIDITY_BUFFER_SECONDS:
        reject("invalid_exact_evm_payload_authorization_valid_before", "permit deadline passed or too close", payer)
    onchain_nonce = chain.nonces(payer)
    typed = {"types": {"EIP712Domain": EIP712_DOMAIN, "Permit": _PERMIT_TYPE},
             "primaryType": "Permit", "domain": domain(net),
             "message": {"owner": payer, "spender": spender, "value": value, "nonce": nonce,
                         "deadline": deadline}}
    if recover(typed, sig) != payer:
        reject("invalid_exact_evm_payload_signature",
               "permit signature does not recover to the owner on this network's EIP-712 domain", payer)
    if nonce < onchain_nonce:
        reject("invalid_exact_evm_nonce_already_used", f"permit nonce {nonce} already used", payer)
    if nonce > onchain_nonce:
        reject("invalid_exact_evm_payload_signature",
               f"permit nonce {nonce} is not the owner's next nonce ({onchain_nonce})", payer)
    if chain.balance_of(payer) < value:
        reject("invalid_exact_evm_insufficient_balance", "payer balance below the amount", payer)
    from ..chains.evm import ChainRevert
    try:
        chain.simulate_permit(payer, spender, value, deadline, v, r, s)
    except ChainRevert as exc:
        reject(revert_to_reason(exc.reason), f"permit simulation reverted: {exc.reason}", payer)

    def settle() -> str:
        try:
            _permit_tx, transfer_tx = chain.permit_and_transfer_from(payer, spender, value, deadline, v, r, s)
        except ChainRevert as exc:
            reject(revert_to_reason(exc.reason), f"settlement reverted: {exc.reason}", payer)
        return transfer_tx   # the transaction that moved the funds

    return {"payer": payer, "fingerprint": (net.label, "permit", payer, nonce), "settle": settle}

