"""Helpers shared by the EVM schemes: EIP-712 JSON that every signer accepts, domains, expiries."""

from __future__ import annotations

import re
from typing import Any

from ...errors import PaymentRequired
from ...networks import NETWORKS, Network
from ..model import Offer

DEFAULT_VALIDITY_SECONDS = 3600  # compute-api.md §13 #12: when the challenge has no maxTimeoutSeconds
# Never sign further ahead than that either (x402.md §4.1): a server asking maxTimeoutSeconds = 10^9 would
# otherwise hold a bearer authorization for decades, settleable after it has answered "rejected".
MAX_VALIDITY_SECONDS = 3600

EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_U128 = 1 << 128


def unusable(message: str, *, code: str = "unusable_offer", details: Any = None, hint: str | None = None) -> PaymentRequired:
    """The 402 offered something we cannot sign; nothing was signed or sent."""
    return PaymentRequired(message, code=code, details=details, hint=hint)


def uint_json(n: int) -> str:
    """A uint for eth_signTypedData_v4 JSON that both eth-account and OWS accept.

    OWS parses decimal strings only up to u128 and wants even-length 0x hex above that
    (mpp-ows.md §B.5); JSON numbers lose precision in other signers. eth-account takes both."""
    if n < 0:
        raise ValueError("uint must be non-negative")
    return str(n) if n < _U128 else "0x%064x" % n


def require_address(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise unusable(f"The offer's {what} is not an EVM address: {value!r}.")
    return value


def network_of(offer: Offer) -> Network:
    net = NETWORKS.get(offer.key or "")
    if net is None or net.family != "evm" or net.chain_id is None:
        raise unusable(f"Network {offer.network!r} is not an EVM network this client knows.", code="unsupported_network")
    return net


def token_domain(offer: Offer, net: Network) -> dict:
    """The token's EIP-712 domain. Name/version come from the challenge: the wrong name yields a valid-looking
    signature for another address (x402.md §3.2, x402#3102); the table is only the fallback."""
    extra = offer.extra or {}
    name = extra.get("name") or net.eip712_name
    version = extra.get("version") or net.eip712_version
    if not name or not version:
        raise unusable(f"The {net.key} offer names no EIP-712 domain (extra.name / extra.version).", code="missing_eip712_domain")
    return {
        "name": domain_text(name, "extra.name"),
        "version": domain_text(version, "extra.version"),
        "chainId": net.chain_id,
        "verifyingContract": require_address(offer.asset, "asset"),
    }


def domain_text(value: Any, what: str) -> str:
    """A domain string from the challenge, as EIP-712 hashes it (UTF-8): a lone surrogate or a
    control character (valid JSON escapes) is refused here, before anything is signed, instead of
    failing inside the hashing."""
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise unusable(f"The offer's {what} is not valid text: {text.encode('utf-8', 'backslashreplace')[:80]!r}.") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise unusable(f"The offer's {what} holds control characters: {text[:80]!r}.")
    return text


def expiry(offer: Offer, now: int) -> int:
    """``now + maxTimeoutSeconds`` (3600 when absent, at most 3600): computed at signing time, after any confirmation."""
    t = offer.max_timeout_seconds
    if not isinstance(t, int) or isinstance(t, bool) or t <= 0:
        t = DEFAULT_VALIDITY_SECONDS
    return now + min(t, MAX_VALIDITY_SECONDS)


def signature_hex(signer: Any, typed: dict) -> str:
    sig = bytes(signer.sign_typed_data(typed))
    if len(sig) != 65 or sig[64] not in (27, 28):
        # Our payloads promise r‖s‖v with v = 27/28; a signer that breaks that must not reach a facilitator.
        raise PaymentRequired("The wallet returned a malformed EIP-712 signature.", code="signer_error")
    return "0x" + sig.hex()


def positive_amount(offer: Offer) -> int:
    if not isinstance(offer.amount, int) or isinstance(offer.amount, bool) or offer.amount <= 0:
        raise unusable(f"The offer's amount is not a positive integer: {offer.amount!r}.")
    if offer.amount >= 1 << 256:
        raise unusable("The offer's amount does not fit in uint256.")
    return offer.amount


def uint_extra(value: Any, what: str) -> int:
    """An integer the challenge supplies in ``extra`` (decimal string or JSON integer)."""
    if isinstance(value, bool):
        raise unusable(f"extra.{what} must be an integer.")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,78}", value):
        return int(value)
    raise unusable(f"extra.{what} must be a non-negative integer, got {value!r}.")
