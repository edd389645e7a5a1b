"""base, robinhood, arc: EIP-3009 `transferWithAuthorization` (x402.md §4), simulated on the token, then sent."""
from __future__ import annotations

import re
import time

from ..networks import Network
from . import VALIDITY_BUFFER_SECONDS, hexbytes, reject, uint
from ._evm import EIP712_DOMAIN, address, authorization, check_domain, domain, recover, revert_to_reason

_NONCE_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
_TWA_TYPE = [
    {"name": "from", "type": "address"}, {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"}, {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"}, {"name": "nonce", "type": "bytes32"},
]


def verify(chain, net: Network, inner: dict, req: dict, amount: int) -> dict:
    from eth_utils import to_checksum_address
    check_domain(net, req)
    auth = authorization(inner, ("from", "to", "value", "validAfter", "validBefore", "nonce"), "EIP-3009")
    payer = address(auth["from"], "authorization.from")
    to = address(auth["to"], "authorization.to")
    value = uint(auth["value"], "authorization.value")
    valid_after = uint(auth["validAfter"], "authorization.validAfter")
    valid_before = uint(auth["validBefore"], "authorization.validBefore")
    if not isinstance(auth["nonce"], str) or not _NONCE_RE.match(auth["nonce"]):
        reject("invalid_payload", "authorization.nonce must be 0x + 64 hex digits", payer)
    nonce = auth["nonce"]
    sig = hexbytes(inner.get("signature"), "signature", "invalid_exact_evm_payload_signature")
    if len(sig) != 65:
        reject("invalid_exact_evm_payload_signature", "signature must be 65 bytes (r, s, v)", payer)

    if to != to_checksum_address(req["payTo"]):
        reject("invalid_exact_evm_payload_recipient_mismatch", "authorization.to is not payTo", payer)
    if value != amount:
        reject("invalid_exact_evm_payload_authorization_value_mismatch",
               f"authorization.value {value} != required {amount}", payer)
    now = int(time.time())
    if valid_before < now + VALIDITY_BUFFER_SECONDS:
        reject("invalid_exact_evm_payload_authorization_valid_before", "authorization expired or about to", payer)
    if valid_after > now:
        reject("invalid_exact_evm_payload_authorization_valid_after", "authorization is not yet valid", payer)
    typed = {"types": {"EIP712Domain": EIP712_DOMAIN, "TransferWithAuthorization": _TWA_TYPE},
             "primaryType": "TransferWithAuthorization", "domain": domain(net),
             "message": {"from": payer, "to": to, "value": value, "validAfter": valid_after,
                         "validBefore": valid_before, "nonce": bytes.fromhex(nonce[2:])}}
    if recover(typed, sig) != payer:
        reject("invalid_exact_evm_payload_signature",
               "signature does not recover to authorization.from on this network's EIP-712 domain", payer)
    if chain.authorization_state(payer, nonce):
        reject("invalid_exact_evm_nonce_already_used", "authorization nonce already used", payer)
    if chain.balance_of(payer) < value:
        reject("invalid_exact_evm_insufficient_balance", "payer balance below the amount", payer)
    chain_auth = {"from": payer, "to": to, "value": value, "validAfter": valid_after,
                  "validBefore": valid_before, "nonce": nonce}
    vrs = (sig[64], sig[:32], sig[32:64])
    from ..chains.evm import ChainRevert
    try:   # the token is the final judge: simulate exactly what settle will send
        chain.simulate_transfer_with_authorization(chain_auth, vrs)
    except ChainRevert as exc:
        reject(revert_to_reason(exc.reason), f"token simulation reverted: {exc.reason}", payer)

    def settle() -> str:
        try:
            return chain.transfer_with_authorization(chain_auth, vrs)
        except ChainRevert as exc:
            reject(revert_to_reason(exc.reason), f"settlement reverted: {exc.reason}", payer)

    return {"payer": payer, "fingerprint": (net.label, "eip3009", payer, nonce.lower()), "settle": settle}

