"""x402 ``exact`` on EVM with EIP-3009 ``transferWithAuthorization`` (Base USDC, Robinhood USDG).

Wire shape (x402.md §4), identical in v1 and v2::

    {"signature": "0x<65 bytes r‖s‖v>",
     "authorization": {"from", "to", "value", "validAfter", "validBefore", "nonce"}}

all values strings: decimal for value and times, ``0x`` + 64 hex for the nonce.

- ``validAfter = 0``: back-dating by a few minutes was the historical fix for "authorization is not
  yet valid" reverts from clock skew (x402.md §4.1); 0 removes the problem instead of shrinking it.
- ``validBefore = now + (maxTimeoutSeconds or 3600)``, taken when signing, never earlier.
- ``value`` is the offer's amount exactly (v2 facilitators reject anything else).
- The nonce is 32 fresh random bytes: the token refuses a reused (from, nonce) pair.
"""

from __future__ import annotations

import os
from typing import Any

from ..model import Offer, Signed
from . import _evm

TWA_TYPE = [
    {"name": "from", "type": "address"},
    {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"},
    {"name": "nonce", "type": "bytes32"},
]


def typed_data(domain: dict, *, payer: str, pay_to: str, value: int, valid_after: int, valid_before: int, nonce: str) -> dict:
    """The full eth_signTypedData_v4 document (``EIP712Domain`` listed, as OWS requires)."""
    return {
        "types": {"EIP712Domain": _evm.EIP712_DOMAIN_TYPE, "TransferWithAuthorization": TWA_TYPE},
        "primaryType": "TransferWithAuthorization",
        "domain": domain,
        "message": {
            "from": payer,
            "to": pay_to,
            "value": _evm.uint_json(value),
            "validAfter": _evm.uint_json(valid_after),
            "validBefore": _evm.uint_json(valid_before),
            "nonce": nonce,
        },
    }


def sign(offer: Offer, signer: Any, *, now: int, nonce: str | None = None) -> Signed:
    net = _evm.network_of(offer)
    domain = _evm.token_domain(offer, net)
    pay_to = _evm.require_address(offer.pay_to, "payTo")
    value = _evm.positive_amount(offer)
    nonce = nonce or "0x" + os.urandom(32).hex()
    valid_after = 0
    valid_before = _evm.expiry(offer, now)
    payer = signer.address
    typed = typed_data(
        domain, payer=payer, pay_to=pay_to, value=value, valid_after=valid_after, valid_before=valid_before, nonce=nonce
    )
    signature = _evm.signature_hex(signer, typed)
    payload = {
        "signature": signature,
        "authorization": {
            "from": payer,
            "to": pay_to,
            "value": str(value),
            "validAfter": str(valid_after),
            "validBefore": str(valid_before),
            "nonce": nonce,
        },
    }
    return Signed(payload=payload, payer=payer, nonce=nonce, valid_before=valid_before)
