"""Any EVM network: x402 Permit2 payloads (x402.md §5.4), settled through our own Permit2 subset and x402
exact proxy, placed at their canonical addresses (contracts/Permit2Lite.sol, X402ExactPermit2Proxy.sol)."""
from __future__ import annotations

import time

from ..networks import PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY, Network
from . import VALIDITY_BUFFER_SECONDS, hexbytes, reject, uint
from ._evm import address, check_domain, recover, revert_to_reason

_PERMIT2_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"},
                     {"name": "verifyingContract", "type": "address"}],
    "PermitWitnessTransferFrom": [
        {"name": "permitted", "type": "TokenPermissions"}, {"name": "spender", "type": "address"},
        {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"},
        {"name": "witness", "type": "Witness"}],
    "TokenPermissions": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}],
    "Witness": [{"name": "to", "type": "address"}, {"name": "validAfter", "type": "uint256"}],
}

# Revert strings of Permit2Lite / X402ExactPermit2Proxy (named after the real contracts' custom errors)
# and of the token, as met on the Permit2 route -> x402 reason codes (x402 SDK names where it has them).
_PERMIT2_REVERT_REASONS = (
    ("InvalidNonce", "permit2_invalid_nonce"),
    ("SignatureExpired", "permit2_deadline_expired"),
    ("PaymentTooEarly", "permit2_not_yet_valid"),
    ("InvalidSigner", "invalid_permit2_signature"),
    ("InvalidSignature", "invalid_permit2_signature"),
    ("InvalidAmount", "invalid_permit2_amount"),
    ("InvalidDestination", "permit2_invalid_destination"),
    ("InvalidOwner", "permit2_invalid_owner"),
    ("Permit2612AmountMismatch", "permit2_2612_amount_mismatch"),
    ("exceeds allowance", "permit2_allowance_required"),
    ("exceeds balance", "permit2_insufficient_balance"),
)


def permit2_revert_to_reason(revert: str) -> str:
    for needle, code in _PERMIT2_REVERT_REASONS:
        if needle in revert:   # case-sensitive: "InvalidSignature" must not match the token's "invalid signature"
            return code
    return "invalid_exact_evm_transaction_simulation_failed"


def verify(chain, net: Network, payload: dict, inner: dict, req: dict, amount: int) -> dict:
    """Checks an x402 Permit2 payload (x402.md §5.4) and settles it through the proxy on our chain.

    Off-chain: the Permit2 signature (domain without version), spender = the exact proxy, deadline and
    validAfter, token/amount/recipient, balance. On-chain (eth_call): the Permit2 nonce is unused, the
    eip2612GasSponsoring permit (when the Permit2 allowance is missing) really verifies on the token
    (the x402 SDK checks only its fields), and the exact proxy call settle will send succeeds.
    Settlement is sent from the facilitator's own funded account: `proxy.settle(...)` when the owner
    has already approved Permit2, otherwise `proxy.settleWithPermit(...)` with the extension's permit.
    The proxy and Permit2 are our own minimal contracts (contracts/Permit2Lite.sol,
    contracts/X402ExactPermit2Proxy.sol) at the canonical addresses; they implement only the
    SignatureTransfer witness path (no AllowanceTransfer, batch transfers or EIP-1271 signers), and the
    erc20ApprovalGasSponsoring extension is not supported.
    """
    from eth_utils import to_checksum_address
    check_domain(net, req)
    p2 = inner.get("permit2Authorization")
    if not isinstance(p2, dict) or not isinstance(p2.get("permitted"), dict) or not isinstance(p2.get("witness"), dict):
        reject("invalid_payload", "permit2Authorization is malformed")
    payer = address(p2.get("from"), "permit2Authorization.from")
    sig = hexbytes(inner.get("signature"), "signature", "invalid_permit2_signature")
    token = address(p2["permitted"].get("token"), "permitted.token")
    value = uint(p2["permitted"].get("amount"), "permitted.amount")
    spender = address(p2.get("spender"), "spender")
    nonce = uint(p2.get("nonce"), "nonce")
    deadline = uint(p2.get("deadline"), "deadline")
    to = address(p2["witness"].get("to"), "witness.to")
    valid_after = uint(p2["witness"].get("validAfter"), "witness.validAfter")
    typed = {"types": _PERMIT2_TYPES, "primaryType": "PermitWitnessTransferFrom",
             "domain": {"name": "Permit2", "chainId": net.chain_id, "verifyingContract": PERMIT2_ADDRESS},
             "message": {"permitted": {"token": token, "amount": value}, "spender": spender,
                         "nonce": nonce, "deadline": deadline,
                         "witness": {"to": to, "validAfter": valid_after}}}
    if len(sig) != 65 or recover(typed, sig) != payer:
        reject("invalid_permit2_signature", "Permit2 signature does not recover to `from`", payer)
    if spender != to_checksum_address(X402_EXACT_PERMIT2_PROXY):
        reject("invalid_permit2_spender", "spender is not the x402 exact Permit2 proxy", payer)
    now = int(time.time())
    if deadline < now + VALIDITY_BUFFER_SECONDS:
        reject("permit2_deadline_expired", "Permit2 deadline passed or too close", payer)
    if valid_after > now:
        reject("permit2_not_yet_valid", "witness.validAfter is in the future", payer)
    if token != to_checksum_address(net.asset):
        reject("permit2_token_mismatch", "permitted.token is not the asset", payer)
    if value != amount:
        reject("permit2_amount_mismatch", f"permitted.amount {value} != required {amount}", payer)
    if to != to_checksum_address(req["payTo"]):
        reject("invalid_permit2_recipient_mismatch", "witness.to is not payTo", payer)
    from ..chains.evm import ChainRevert
    # First on-chain check, so a replay is named as such even after its permit and balance are spent.
    if chain.permit2_nonce_used(payer, nonce):
        reject("permit2_invalid_nonce", f"Permit2 nonce {nonce} already used or invalidated", payer)
    if chain.balance_of(payer) < value:
        reject("permit2_insufficient_balance", "payer balance below the amount", payer)
    ext = ((payload.get("extensions") or {}).get("eip2612GasSponsoring") or {}).get("info")
    permit_args = None
    if chain.allowance(payer, PERMIT2_ADDRESS) < value:
        if not isinstance(ext, dict):
            reject("permit2_allowance_required", "no Permit2 allowance and no eip2612GasSponsoring permit", payer)
        if (address(ext.get("from"), "eip2612.from") != payer
                or address(ext.get("asset"), "eip2612.asset") != to_checksum_address(net.asset)
                or address(ext.get("spender"), "eip2612.spender") != to_checksum_address(PERMIT2_ADDRESS)):
            reject("invalid_payload", "eip2612GasSponsoring from/asset/spender do not match", payer)
        e_value = uint(ext.get("amount"), "eip2612.amount")
        e_deadline = uint(ext.get("deadline"), "eip2612.deadline")
        e_sig = hexbytes(ext.get("signature"), "eip2612.signature", "invalid_exact_evm_payload_signature")
        if len(e_sig) != 65 or e_value < value:
            reject("invalid_payload", "eip2612GasSponsoring permit is malformed or too small", payer)
        permit_args = (payer, PERMIT2_ADDRESS, e_value, e_deadline, e_sig[64], e_sig[:32], e_sig[32:64])
        try:   # unlike the x402 SDK, check the extension's permit signature for real
            chain.simulate_permit(*permit_args)
        except ChainRevert as exc:
            reject(revert_to_reason(exc.reason), f"eip2612 permit simulation reverted: {exc.reason}", payer)

    # Normalised fields (checksummed, ints), so the chain call sends exactly what was checked above.
    checked = {"from": payer, "permitted": {"token": token, "amount": value}, "nonce": nonce,
               "deadline": deadline, "witness": {"to": to, "validAfter": valid_after}}
    # (value, deadline, v, r, s) for settleWithPermit; None = the allowance is in place, plain settle.
    permit2612 = None if permit_args is None else (permit_args[2], permit_args[3], *permit_args[4:])
    try:   # the contracts are the final judge: simulate exactly what settle will send
        chain.simulate_permit2_settle(checked, sig, permit2612)
    except ChainRevert as exc:
        reject(permit2_revert_to_reason(exc.reason), f"proxy simulation reverted: {exc.reason}", payer)

    def settle() -> str:
        try:
            return chain.permit2_settle(checked, sig, permit2612)
        except ChainRevert as exc:
            reject(permit2_revert_to_reason(exc.reason), f"settlement reverted: {exc.reason}", payer)

    return {"payer": payer, "fingerprint": (net.label, "permit2", payer, nonce), "settle": settle}

