"""The facilitator's verifiers, one module per x402 `exact` route, named like the client's
`payments/schemes/` modules that build the payloads they check.

========================  =====================================  ==================
payload                   route                                  module
========================  =====================================  ==================
solana                    partially signed SPL TransferChecked   ``svm_exact``
EVM, permit2Authorization Permit2 + x402 exact proxy (+ the      ``evm_permit2``
                          ``eip2612GasSponsoring`` extension)
megaeth                   direct ERC-2612 permit (x402layer)     ``evm_permit``
base, robinhood, arc      EIP-3009 transferWithAuthorization     ``evm_eip3009``
========================  =====================================  ==================

Each module's `verify(chain, net, …, req, amount)` makes every check and returns a context dict
with `payer`, `fingerprint` (the replay key) and `settle` (a callable sending the transaction);
a failed check raises `PaymentRejected` with the x402 reason code. facilitator.py owns the x402
envelope (version, requirement, `accepted` echo), the choice of route and the replay guard.
This module holds what every route shares: the rejection and the strict field parsers.
"""
from __future__ import annotations

import re
from typing import Any, Optional

# x402 verifiers demand this much remaining validity (Python SDK: validBefore >= now + 6 s).
VALIDITY_BUFFER_SECONDS = 6

_UINT_RE = re.compile(r"^[0-9]+$")
_HEX_RE = re.compile(r"^0x[0-9a-fA-F]*$")


class PaymentRejected(Exception):
    """Internal: a check failed. `reason` is the x402 code, `message` the human explanation."""

    def __init__(self, reason: str, message: str = "", payer: Optional[str] = None):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason
        self.payer = payer


def reject(reason: str, message: str = "", payer: Optional[str] = None):
    raise PaymentRejected(reason, message, payer)


def uint(value: Any, field: str, reason: str = "invalid_payload") -> int:
    """Atomic amounts and times arrive as decimal strings; ints are tolerated, floats never."""
    if isinstance(value, bool):
        reject(reason, f"{field} must be a decimal string")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and _UINT_RE.match(value):
        return int(value)
    reject(reason, f"{field} must be a non-negative integer as a decimal string")


def hexbytes(value: Any, field: str, reason: str = "invalid_payload") -> bytes:
    if not isinstance(value, str) or not _HEX_RE.match(value) or len(value) % 2:
        reject(reason, f"{field} must be 0x-prefixed hex")
    return bytes.fromhex(value[2:])
