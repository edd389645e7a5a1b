"""402 challenges, payment headers and settlement for paid requests (x402.md §1–2, compute-api.md §8).

The flow for a paid POST (provision, extend, credits topup):
  1. no payment credential -> 402: x402 v1 body (default) or x402 v2 `PAYMENT-REQUIRED` header
     (`--x402-version 2`), one `accepts` entry per offered network (`X-Accept-Networks` filters);
     every registered PaymentHook (MPP goes here) adds its own challenge headers to the same 402;
  2. `X-PAYMENT` or `PAYMENT-SIGNATURE` (standard base64 of JSON; either header in either mode):
     decode (400 if impossible) -> pick the requirement the payload is for (v1 by `network`,
     v2 by `accepted`) -> facilitator verify -> settle -> only then the caller acts;
  3. a refused payload gets the challenge again with `error` = the facilitator's reason code.

Idempotency (`Idempotency-Key` on paid POSTs) is kept here too: see `Idempotency`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sys
import threading
from dataclasses import dataclass, field
from typing import Optional, Protocol

from . import networks as nets
from .server import ApiError, Request, Response

PAYMENT_HEADERS = ("X-PAYMENT", "PAYMENT-SIGNATURE")
MAX_PAYMENT_HEADER_CHARS = 16 * 1024


def b64json(obj) -> str:
    """Standard padded base64 of compact UTF-8 JSON (the x402 header encoding)."""
    return base64.b64encode(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()).decode()


@dataclass
class Offer:
    """What a paid request costs and where it may be paid."""
    amount_usd_micros: int
    resource: str
    description: str
    networks: list = field(default_factory=lambda: list(nets.LABELS))
    mpp: bool = True              # also offer MPP (tempo charge) where the route takes it (mpp.py)


@dataclass
class Settlement:
    method: str                   # "x402" (an MPP hook would report "mpp")
    network: str                  # network label
    payer: Optional[str]
    transaction: str
    amount_atomic: int
    response_headers: dict        # X-PAYMENT-RESPONSE / PAYMENT-RESPONSE (or a hook's receipt header)


class PaymentHook(Protocol):
    """Extension point for other payment methods on the same 402.

    MPP (`WWW-Authenticate: Payment` / `Authorization: Payment`) is meant to plug in here:
    `challenge_headers` adds its header to every 402 this module builds, and `try_pay` claims the
    request when it carries that method's credential (return None when it does not).
    """

    def challenge_headers(self, request: Request, offer: Offer) -> dict: ...

    def try_pay(self, request: Request, offer: Offer) -> Optional[Settlement]: ...


class PaymentRefused(Exception):
    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


# x402 `eip2612GasSponsoring` extension (v2 only): what the server advertises, and the shape of the
# `info` a client returns in its payload's extensions (verified by the facilitator, then used on chain).
EIP2612_GAS_SPONSORING = {
    "info": {"description": "Sign an EIP-2612 permit granting Permit2 the allowance; the facilitator "
                            "submits it with the payment, so no approve transaction is needed.",
             "version": "1"},
    "schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {k: {"type": "string"} for k in
                       ("from", "asset", "spender", "amount", "nonce", "deadline", "signature", "version")},
        "required": ["from", "asset", "spender", "amount", "nonce", "deadline", "signature", "version"],
    },
}


class Payments:
    def __init__(self, facilitator, *, x402_version: int = 1, max_timeout_seconds: int = 300):
        if x402_version not in (1, 2):
            raise ValueError("x402_version must be 1 or 2")
        self.f = facilitator
        self.version = x402_version
        self.max_timeout = max_timeout_seconds
        self.hooks: list[PaymentHook] = []     # e.g. an MPP hook, added by its own module

    # --- challenges -----------------------------------------------------------------------------
    def _requirements(self, version: int, offer: Offer, networks) -> list[dict]:
        return [self.f.requirement(n, amount_usd_micros=offer.amount_usd_micros, resource=offer.resource,
                                   description=offer.description, version=version,
                                   max_timeout_seconds=self.max_timeout) for n in networks]

    def advertised(self, request: Request, offer: Offer) -> list[str]:
        """Offered networks, narrowed by `X-Accept-Networks: a,b` (labels or CAIP-2 ids)."""
        raw = request.headers.get("X-Accept-Networks")
        if not raw:
            return list(offer.networks)
        wanted = set()
        for item in raw.split(","):
            try:
                wanted.add(nets.get(item.strip()).label)
            except KeyError:
                continue
        chosen = [n for n in offer.networks if n in wanted]
        if not chosen:
            raise ApiError(400, "None of the networks in X-Accept-Networks is offered for this request",
                           {"offered": list(offer.networks), "x_accept_networks": raw})
        return chosen

    def challenge(self, request: Request, offer: Offer, error: Optional[str] = None,
                  details: Optional[dict] = None, extra_headers: Optional[dict] = None) -> Response:
        networks = self.advertised(request, offer)
        headers = {}
        for hook in self.hooks:
            headers.update(hook.challenge_headers(request, offer) or {})
        headers.update(extra_headers or {})
        if self.version == 1:
            body = {"x402Version": 1, "error": error or "X-PAYMENT header is required",
                    "accepts": self._requirements(1, offer, networks)}
            if details:
                body["details"] = details
            return Response(402, body, headers)
        required = {"x402Version": 2, "error": error or "PAYMENT-SIGNATURE header is required",
                    "resource": {"url": offer.resource, "description": offer.description,
                                 "mimeType": "application/json"},
                    "accepts": self._requirements(2, offer, networks)}
        if getattr(self.f, "permit2", False) and "megaeth" in networks:
            # The Permit2 route needs the payer's allowance to Permit2; advertising the gas-sponsoring
            # extension lets a payer without one send an ERC-2612 permit with the payment instead.
            required["extensions"] = {"eip2612GasSponsoring": EIP2612_GAS_SPONSORING}
        headers["PAYMENT-REQUIRED"] = b64json(required)
        headers["Access-Control-Expose-Headers"] = "PAYMENT-REQUIRED, PAYMENT-RESPONSE"
        return Response(402, {"error": required["error"], "details": details or {}}, headers)

    # --- payment credentials --------------------------------------------------------------------
    @staticmethod
    def has_credential(request: Request) -> bool:
        return any(request.headers.get(h) for h in PAYMENT_HEADERS) or \
            (request.headers.get("Authorization") or "").startswith("Payment ")

    @staticmethod
    def decode(request: Request) -> tuple[str, dict]:
        """(header name, payload). 400 when the header cannot be decoded into a payload object."""
        name = next(h for h in PAYMENT_HEADERS if request.headers.get(h))
        raw = request.headers.get(name).strip()
        if len(raw) > MAX_PAYMENT_HEADER_CHARS:
            raise ApiError(400, "invalid_payload: payment header too large", {"header": name})
        try:
            payload = json.loads(base64.b64decode(raw, validate=True).decode("utf-8"))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError(400, "invalid_payload: the payment header is not base64-encoded JSON",
                           {"header": name})
        if not isinstance(payload, dict) or payload.get("x402Version") not in (1, 2) \
                or not isinstance(payload.get("payload"), dict):
            raise ApiError(400, "invalid_payload: expected an x402 PaymentPayload object "
                                "(x402Version 1 or 2, with a `payload` object)", {"header": name})
        return name, payload

    def _select(self, payload: dict, offer: Offer) -> tuple[Optional[dict], dict, Optional[str]]:
        """(requirement, payload to hand the facilitator, network label) — requirement None if unmatched."""
        version = payload["x402Version"]
        if version == 1:
            claimed = payload.get("network")
        else:
            accepted = payload.get("accepted")
            claimed = accepted.get("network") if isinstance(accepted, dict) else None
        try:
            label = nets.get(claimed).label if isinstance(claimed, str) else None
        except KeyError:
            label = None
        if label is None or label not in offer.networks:
            return None, payload, None
        req = self._requirements(version, offer, [label])[0]
        if version == 1 and claimed != req["network"]:
            # A v1 payload may name the network by CAIP-2 (compute-api.md §13 #15): same network.
            payload = dict(payload, network=req["network"])
        return req, payload, label

    def collect(self, request: Request, offer: Offer) -> Settlement:
        """Verify and settle the request's payment; raise PaymentRefused with the answer otherwise."""
        for hook in self.hooks:
            settled = hook.try_pay(request, offer)
            if settled is not None:
                return settled
        if not any(request.headers.get(h) for h in PAYMENT_HEADERS):
            raise PaymentRefused(self.challenge(request, offer))
        header, payload = self.decode(request)
        version = payload["x402Version"]
        resp_header = "X-PAYMENT-RESPONSE" if version == 1 else "PAYMENT-RESPONSE"
        req, fpayload, label = self._select(payload, offer)
        if req is None:
            raise PaymentRefused(self.challenge(
                request, offer, error="invalid_network: the payment is not for any offered network",
                details={"offered": list(offer.networks)}))
        try:
            verdict = self.f.verify(fpayload, req)
        except Exception as exc:  # a facilitator crash on odd input is still a refused payment
            print(f"sandbox: facilitator.verify raised {exc!r}", file=sys.stderr)
            verdict = {"isValid": False, "invalidReason": "invalid_payload", "invalidMessage": str(exc)}
        if not verdict.get("isValid"):
            reason = verdict.get("invalidReason") or "invalid_payload"
            raise PaymentRefused(self.challenge(
                request, offer, error=reason,
                details={"reason": reason, "message": verdict.get("invalidMessage"), "network": label}))
        try:
            settled = self.f.settle(fpayload, req)
        except Exception as exc:
            print(f"sandbox: facilitator.settle raised {exc!r}", file=sys.stderr)
            settled = {"success": False, "errorReason": "unexpected_settle_error", "errorMessage": str(exc),
                       "transaction": "", "network": req["network"], "payer": verdict.get("payer")}
        sr = {k: v for k, v in settled.items() if v is not None}
        if not settled.get("success"):
            reason = settled.get("errorReason") or "settle_failed"
            raise PaymentRefused(self.challenge(
                request, offer, error=reason,
                details={"reason": reason, "message": settled.get("errorMessage"), "network": label},
                extra_headers={resp_header: b64json(sr)}))
        amount = int(req["maxAmountRequired"] if version == 1 else req["amount"])
        return Settlement(method="x402", network=label, payer=settled.get("payer"),
                          transaction=settled["transaction"], amount_atomic=amount,
                          response_headers={resp_header: b64json(sr)})


def _digest(value: str) -> str:
    return hashlib.sha256(value.strip().encode("utf-8", "surrogateescape")).hexdigest()


def payment_credentials(request: Request) -> list[str]:
    """Digests of every payment credential the request carries (x402 headers, MPP Authorization)."""
    found = [f"x402:{_digest(request.headers.get(h))}" for h in PAYMENT_HEADERS if request.headers.get(h)]
    auth = (request.headers.get("Authorization") or "").strip()
    scheme, _, cred = auth.partition(" ")
    if scheme.lower() == "payment" and cred.strip():
        found.append(f"mpp:{_digest(cred)}")
    return found


def settled_credential(request: Request, method: str) -> Optional[str]:
    """The digest of the credential that paid: the MPP one for `mpp`, else the x402 header used."""
    want = "mpp:" if method == "mpp" else "x402:"
    return next((c for c in payment_credentials(request) if c.startswith(want)), None)


@dataclass(frozen=True)
class Principal:
    """Who made a request, for Idempotency-Key replays (see `Idempotency`).

    auth     "api_key:<key id>" or "wallet:<address>" (a signature) when management auth was sent
    payment  digest of the payment credential that settled ("x402:<sha256>" / "mpp:<sha256>")
    payer    the payer the settlement proved (normalised address)
    """
    auth: Optional[str] = None
    payment: Optional[str] = None
    payer: Optional[str] = None

    @staticmethod
    def auth_of(ident) -> Optional[str]:
        if ident is None:
            return None
        return f"api_key:{ident.api_key_id}" if ident.method == "api_key" else f"wallet:{ident.wallet}"

    def to_json(self) -> str:
        return json.dumps({"auth": self.auth, "payment": self.payment, "payer": self.payer}, sort_keys=True)


class Idempotency:
    """`Idempotency-Key` on paid POSTs: one outcome per key.

    Same key + same request (method, path, SHA-256 of the body) -> the first stored response
    (status, headers, body), and never a second charge; same key + different request -> 409.
    Only successful outcomes are stored: a 402 challenge or a refused payment leaves the key
    free, so the probe and the paid retry may share it. A per-key lock serialises concurrent
    retries, so two of them cannot both pay.

    A stored answer is replayed only to the credential that made the first request:
      - it sent management auth: the same API key (by id), or a signature by the same wallet;
      - it paid without management auth: the identical payment credential again (what a client
        resends after a lost answer), or a signature by the wallet the settlement proved paid.
    A replay with no credential at all is a 401, with another credential a 409: neither gets the
    stored body (which may hold the one-time management key of an MPP provision). Records from
    before this rule (no principal stored) are replayed to nobody.
    """

    HEADER = "Idempotency-Key"

    def __init__(self, store):
        self.store = store
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @staticmethod
    def fingerprint(request: Request) -> str:
        return hashlib.sha256(b"%s %s\n" % (request.method.encode(), request.path.encode())
                              + hashlib.sha256(request.body).digest()).hexdigest()

    def key_of(self, request: Request) -> Optional[str]:
        key = request.headers.get(self.HEADER)
        if key is None:
            return None
        key = key.strip()
        if not 1 <= len(key) <= 255:
            raise ApiError(400, "Idempotency-Key must be 1 to 255 characters")
        return key

    def lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def replay(self, key: str, request: Request, auth: Optional[str]) -> Optional[Response]:
        """The stored answer for `key`, if the request may have it; `auth` is Principal.auth_of."""
        rec = self.store.idem_get(key)
        if rec is None:
            return None
        owner = rec.get("principal")
        payments = payment_credentials(request)
        same = owner is not None and (
            auth == owner.auth if owner.auth else
            (owner.payment is not None and owner.payment in payments)
            or (owner.payer is not None and auth == f"wallet:{owner.payer}"))
        if not same:
            if auth is None and not payments:
                raise ApiError(401, "This Idempotency-Key belongs to an earlier request made with credentials: "
                                    "resend it with the same API key, wallet signature or payment",
                               {"idempotency_key": key})
            raise ApiError(409, "Idempotency-Key was already used by another credential",
                           {"idempotency_key": key})
        if rec["fingerprint"] != self.fingerprint(request):
            raise ApiError(409, "Idempotency-Key was already used for a different request",
                           {"idempotency_key": key})
        headers = dict(rec["headers"])
        headers["Idempotent-Replayed"] = "true"
        return Response(rec["status"], rec["body"], headers)

    def remember(self, key: str, request: Request, response: Response, principal: Principal) -> None:
        if 200 <= response.status < 300:
            self.store.idem_put(key, self.fingerprint(request), response.status, response.headers,
                                response.encoded(), principal.to_json())
