"""Data passed between the payment pieces. Amounts are integer atomic units."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Offer:
    """One x402 payment requirement, as offered by a 402."""

    version: int  # x402Version of the challenge (1 or 2)
    scheme: str  # "exact"
    network: str  # verbatim from the challenge ("base", "eip155:8453", ...)
    key: str | None  # our network key (networks.NETWORKS) or None if unknown
    amount: int  # atomic units (v1 maxAmountRequired, v2 amount)
    asset: str
    pay_to: str
    max_timeout_seconds: int | None
    extra: dict[str, Any]
    raw: dict[str, Any]  # the requirement exactly as received: v2 echoes it in "accepted"
    resource: Any = None  # v1: URL string inside the requirement; v2: the top-level resource object
    extensions: dict[str, Any] | None = None  # v2 top-level extensions advertised by the server
    received_at: float | None = None  # unix time the 402 was read: how old its hints (Solana blockhash) are


@dataclass
class MppOffer:
    """One MPP ``WWW-Authenticate: Payment`` challenge."""

    header: str  # the challenge value exactly as received
    id: str
    method: str
    intent: str
    request: dict[str, Any]  # the decoded request JSON
    amount: int
    currency: str
    recipient: str
    chain_id: int | None
    expires: str | None
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Challenge:
    """Everything one 402 carried."""

    version: int | None  # x402 version, None when there is no x402 challenge
    offers: list[Offer]
    mpp: list[MppOffer]
    error: str | None
    body: Any
    resource: Any = None
    extensions: dict[str, Any] | None = None
    mpp_error: Any = None  # why the WWW-Authenticate header was unreadable (its MPP offers unusable) though x402 ones were fine


@dataclass
class Signed:
    """A signed scheme payload, ready to wrap in a PaymentPayload."""

    payload: dict[str, Any]  # the scheme's "payload" object
    payer: str  # address that pays
    nonce: str  # what makes this payment unique on chain (EIP-3009 nonce, permit nonce, tx signature)
    valid_before: int | None = None  # unix seconds after which it can no longer settle
    extensions: dict[str, Any] | None = None  # v2 extensions the payment adds (e.g. eip2612GasSponsoring)


@dataclass
class Send:
    """One request a payment flow wants sent; the client sends it and hands back the answer (or
    raises the ``NetworkError`` into the flow). ``body`` is the exact bytes (hashed by signed auth);
    ``auth`` is an ``auth.Auth`` or None."""

    method: str
    path: str
    body: bytes | None
    auth: Any
    headers: dict = field(default_factory=dict)
    retry_reads: bool = True
