"""What the EVM routes share: the EIP-712 domain, signature recovery, revert strings -> reason codes."""
from __future__ import annotations

from typing import Any, Optional

from ..networks import Network
from . import reject

EIP712_DOMAIN = [
    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
]

# Revert strings of the token (FiatToken wording) -> x402 reason codes.
_REVERT_REASONS = (
    ("authorization is expired", "invalid_exact_evm_payload_authorization_valid_before"),
    ("authorization is not yet valid", "invalid_exact_evm_payload_authorization_valid_after"),
    ("authorization is used or canceled", "invalid_exact_evm_nonce_already_used"),
    ("permit is expired", "invalid_exact_evm_payload_authorization_valid_before"),
    ("exceeds balance", "invalid_exact_evm_insufficient_balance"),
    ("invalid signature", "invalid_exact_evm_payload_signature"),
)


def revert_to_reason(revert: str) -> str:
    low = revert.lower()
    for needle, code in _REVERT_REASONS:
        if needle in low:
            return code
    return "invalid_exact_evm_transaction_simulation_failed"


def address(value: Any, field: str) -> str:
    from eth_utils import is_address, to_checksum_address
    if not isinstance(value, str) or not is_address(value):
        reject("invalid_payload", f"{field} is not an EVM address")
    return to_checksum_address(value)


def authorization(inner: dict, keys: tuple, what: str) -> dict:
    """`payload.authorization`, an object with every one of `keys`."""
    auth = inner.get("authorization")
    if not isinstance(auth, dict):
        reject("invalid_payload", f"{what} payload needs `authorization`")
    for key in keys:
        if key not in auth:
            reject("invalid_payload", f"authorization.{key} is missing")
    return auth


def check_domain(net: Network, req: dict) -> None:
    extra = req.get("extra") or {}
    if not extra.get("name") or not extra.get("version"):
        reject("missing_eip712_domain", "requirement extra lacks the EIP-712 name/version")
    if extra["name"] != net.eip712_name:
        reject("invalid_exact_evm_token_name_mismatch", "extra.name is not the token's EIP-712 name")
    if extra["version"] != net.eip712_version:
        reject("invalid_exact_evm_token_version_mismatch", "extra.version is not the token's EIP-712 version")


def domain(net: Network) -> dict:
    return {"name": net.eip712_name, "version": net.eip712_version, "chainId": net.chain_id,
            "verifyingContract": net.asset}


def recover(typed: dict, signature: bytes) -> Optional[str]:
    from eth_account import Account
    from eth_account.messages import encode_typed_data
    try:
        return Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    except Exception:
        return None
