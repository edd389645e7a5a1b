"""MPP `method="stripe"` charges on the sandbox (`--stripe`): cards through Shared Payment Tokens.

Challenge (beside the Tempo one, in the same `WWW-Authenticate` value, on the same routes):
    Payment id, realm, method="stripe", intent="charge", request=<b64url JCS {amount: <cents>,
            currency: "usd", methodDetails: {networkId: <the seller's network profile>,
            paymentMethodTypes: ["card"]}}>, description, expires, digest, opaque (route + nonce)
    The id is the same HMAC binding mpp.py uses (with method "stripe"). `amount` is the catalog
    price in US cents (micro-USD / 10,000, rounded up when a price has fractions of a cent).

Credential: checked like the Tempo one (HMAC id, realm, expiry, route, body digest, terms, not
already paid), then handed to pympp's own Stripe server method (`mpp.methods.stripe.server.charge`),
which creates a confirmed PaymentIntent with the SPT. Its HTTP calls go through `LoopbackTransport`:
pympp always addresses `https://api.stripe.com/v1`; the transport sends those requests to the local
emulation (stripe_emulator.py) and refuses every request to any other host, so nothing leaves
127.0.0.0/8. Paid challenge ids are kept in <state-dir>/stripe.sqlite3 (survive restarts).

Settlement: method "mpp", network "stripe", transaction = the PaymentIntent id, payer
"stripe:<payment method id>"; the receipt is `Payment-Receipt: {method: "stripe", reference: pi_…}`.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import sqlite3
import threading
import time
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from .mpp import (CHALLENGE_TTL_SECONDS, TOPUP_ROUTE, Challenge, MppRefusal, b64url, b64url_decode, body_digest, challenge_mac,
                  checked_echo, jcs, load_secret, rfc3339)

METHOD, INTENT = "stripe", "charge"
STRIPE_PUBLIC_BASE = "https://api.stripe.com/v1"   # what pympp addresses; rewritten to the emulator


class StripeChallenge(Challenge):
    def header(self) -> str:
        return super().header().replace('method="tempo"', f'method="{METHOD}"', 1)


class LoopbackTransport:
    """An httpx async transport: pympp's Stripe calls go to the emulator, anything else is refused.

    `sent` lists every URL actually sent (the proof, in tests, that no request left loopback)."""

    def __init__(self, api_base: str):
        from .server import is_loopback
        if not is_loopback(urlsplit(api_base).hostname):
            raise ValueError(f"the Stripe API base {api_base!r} is not on loopback")
        self.api_base = api_base.rstrip("/")
        self.sent: list[str] = []
        self.refused: list[str] = []

    def transport(self):
        """A transport for one event loop (each verification runs its own): pools do not cross loops."""
        import httpx
        outer, inner = self, httpx.AsyncHTTPTransport()

        class _T(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request):
                return await outer.handle(request, inner)

            async def aclose(self):
                await inner.aclose()
        return _T()

    async def handle(self, request, inner):
        import httpx
        from .server import is_loopback
        url = str(request.url)
        if url.startswith(STRIPE_PUBLIC_BASE + "/"):
            url = self.api_base + url[len(STRIPE_PUBLIC_BASE):]
            request.url = httpx.URL(url)
            request.headers["Host"] = request.url.netloc.decode("ascii")
        if not is_loopback(request.url.host):
            self.refused.append(url)
            raise httpx.ConnectError(f"refused: the sandbox sends nothing off loopback ({request.url.host})",
                                     request=request)
        self.sent.append(url)
        return await inner.handle_async_request(request)


class PaidChallenges:
    def __init__(self, state_dir: str):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(os.path.join(state_dir, "stripe.sqlite3"), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS paid (challenge_id TEXT PRIMARY KEY, payment_intent TEXT NOT NULL, "
                         "amount INTEGER NOT NULL, created REAL NOT NULL)")

    def seen(self, cid: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM paid WHERE challenge_id=?", (cid,)).fetchone() is not None

    def add(self, cid: str, pi: str, amount: int) -> None:
        with self._lock:
            self._db.execute("INSERT INTO paid VALUES (?,?,?,?)", (cid, pi, amount, time.time()))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def cents(amount_usd_micros: int) -> int:
    return -(-amount_usd_micros // 10_000)


class StripeMpp:
    """A PaymentHook wrapping the Tempo `Mpp` hook: both challenges on one 402, each credential to
    the method it names."""

    def __init__(self, tempo_hook, emulator, *, state_dir: str, clock: Callable[[], float] = time.time):
        self.tempo = tempo_hook
        self.emulator = emulator
        self.clock = clock
        self.ttl = CHALLENGE_TTL_SECONDS
        self._secret = load_secret(state_dir).encode("utf-8")
        self.paid = PaidChallenges(state_dir)
        self.transport = LoopbackTransport(emulator.api_base)
        self._lock = threading.Lock()

    @classmethod
    def enable(cls, app, state_dir: str) -> "StripeMpp":
        """Start the emulation and put this hook in place of the app's Tempo hook (which it wraps)."""
        from .stripe_emulator import StripeEmulator
        emulator = StripeEmulator(state_dir)
        hook = cls(app.mpp, emulator, state_dir=state_dir)
        hooks = app.payments.hooks
        hooks[hooks.index(app.mpp)] = hook
        return hook

    def env(self) -> dict:
        return self.emulator.env()

    def close(self) -> None:
        self.emulator.close()
        self.paid.close()

    def offered(self, request: Any, offer: Any) -> bool:
        """Where the Tempo charge is offered, and on the credits top-up too (cards buy credits)."""
        return self.tempo.offered(request, offer) or (
            getattr(offer, "mpp", True) and bool(TOPUP_ROUTE.match(request.path.rstrip("/"))))

    @property
    def realm(self) -> str:
        return self.tempo.realm

    # --- challenge --------------------------------------------------------------------------------
    def _id(self, realm: str, request_b64: str, expires: str, digest: str, opaque_b64: str) -> str:
        return challenge_mac(self._secret, realm, METHOD, INTENT, request_b64, expires, digest, opaque_b64)

    def request_for(self, amount_usd_micros: int) -> dict:
        return {"amount": str(cents(amount_usd_micros)), "currency": "usd",
                "methodDetails": {"networkId": self.emulator.network_id, "paymentMethodTypes": ["card"]}}

    def challenge_for(self, request: Any, offer: Any) -> StripeChallenge:
        req = self.request_for(offer.amount_usd_micros)
        request_b64 = b64url(jcs(req))
        expires = rfc3339(self.clock() + self.ttl)
        digest = body_digest(request.body)
        opaque_b64 = b64url(jcs({"nonce": secrets.token_hex(8),
                                 "route": f"{request.method.upper()} {request.path.rstrip('/')}"}))
        cid = self._id(self.realm, request_b64, expires, digest, opaque_b64)
        return StripeChallenge(cid, self.realm, request_b64, expires, digest, opaque_b64, offer.description, req)

    def challenge_headers(self, request: Any, offer: Any) -> dict:
        headers = dict(self.tempo.challenge_headers(request, offer) or {})
        if self.offered(request, offer):
            ours = self.challenge_for(request, offer).header()
            headers["WWW-Authenticate"] = f"{headers['WWW-Authenticate']}, {ours}" if headers.get("WWW-Authenticate") else ours
        return headers

    # --- credential -------------------------------------------------------------------------------
    def _stripe_credential(self, request: Any) -> Optional[dict]:
        raw = self.tempo.credential_of(request)
        if raw is None:
            return None
        try:
            cred = json.loads(b64url_decode(raw).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None   # the Tempo hook answers malformed credentials
        ch = cred.get("challenge") if isinstance(cred, dict) else None
        return cred if isinstance(ch, dict) and ch.get("method") == METHOD else None

    def try_pay(self, request: Any, offer: Any):
        cred = self._stripe_credential(request)
        if cred is None:
            return self.tempo.try_pay(request, offer)
        from .payments import PaymentRefused, Settlement
        if not self.offered(request, offer):
            raise PaymentRefused(self.refusal(request, offer, MppRefusal(
                400, "method-unsupported", "MPP is not accepted on this endpoint; pay with x402", fresh=False)))
        try:
            pi, amount = self.verify(request, cred, offer.amount_usd_micros)
        except MppRefusal as refusal:
            raise PaymentRefused(self.refusal(request, offer, refusal))
        receipt = {"method": METHOD, "reference": pi["id"], "status": "success", "timestamp": rfc3339(self.clock())}
        return Settlement(method="mpp", network="stripe", payer=f"stripe:{pi['payment_method']}",
                          transaction=pi["id"], amount_atomic=amount,
                          response_headers={"Payment-Receipt": b64url(jcs(receipt))})

    def refusal(self, request: Any, offer: Any, refusal: MppRefusal):
        from .server import Response
        headers = {"Content-Type": "application/problem+json", "Cache-Control": "no-store"}
        if refusal.fresh:
            headers.update(self.challenge_headers(request, offer))
            headers["Content-Type"] = "application/problem+json"
        return Response(refusal.status, refusal.problem(), headers)

    def verify(self, request: Any, cred: dict, amount_usd_micros: int) -> tuple[dict, int]:
        ch, payload = cred.get("challenge"), cred.get("payload")
        if not isinstance(payload, dict):
            raise MppRefusal(402, "malformed-credential", "credential needs a `payload` object")
        fields, req, opaque = checked_echo(ch, request, method=METHOD, intent=INTENT, realm=self.realm,
                                           challenge_id=self._id, already_paid=self.paid.seen, clock=self.clock)
        cid = fields["id"]
        if req != self.request_for(amount_usd_micros):
            raise MppRefusal(402, "invalid-challenge", f"challenge was issued for other payment terms; this request "
                                                      f"costs {cents(amount_usd_micros)} US cents")
        with self._lock:   # one settlement per challenge, even for concurrent retries
            if self.paid.seen(cid):
                raise MppRefusal(403, "verification-failed", "this challenge was already paid: credential replayed",
                                 fresh=False)
            receipt = self._settle(fields, req, opaque, payload)
            pi = self.emulator.state.intents.get(receipt.reference)
            if pi is None or pi["status"] != "succeeded" or pi["amount"] != int(req["amount"]):
                raise MppRefusal(402, "verification-failed", "the PaymentIntent did not capture the challenge's amount")
            self.paid.add(cid, pi["id"], pi["amount"])
        return pi, pi["amount"]

    def _settle(self, fields: dict, req: dict, opaque: dict, payload: dict):
        """pympp's Stripe server method verifies the credential: it creates and confirms the PaymentIntent."""
        import mpp
        from mpp.errors import CredentialReplayedError, PaymentError
        from mpp.methods.stripe import server as stripe_server
        from mpp.methods.stripe.schemas import StripeCredentialPayload
        from mpp.server.method import VerifyContext
        try:
            parsed = StripeCredentialPayload.model_validate(payload)
        except Exception:
            raise MppRefusal(402, "malformed-credential", "payload must be {spt: <shared payment token>}")
        echo = mpp.ChallengeEcho(id=fields["id"], realm=fields["realm"], method=METHOD, intent=INTENT,
                                 request=fields["request"], expires=fields["expires"], digest=fields["digest"] or None,
                                 opaque=fields["opaque"] or None)
        challenge = mpp.Challenge(id=fields["id"], method=METHOD, intent=INTENT, request=req, realm=fields["realm"],
                                  request_b64=fields["request"], digest=fields["digest"] or None,
                                  expires=fields["expires"], opaque=opaque or None)
        context = VerifyContext(credential=mpp.Credential(challenge=echo, payload=parsed), request={}, challenge=challenge)

        async def run():
            import httpx
            async with httpx.AsyncClient(transport=self.transport.transport(), timeout=10.0) as http:
                method = stripe_server.charge(network_id=self.emulator.network_id, secret_key=self.emulator.seller_key,
                                              http_client=http, currency="usd")
                return await method.verify(context)
        try:
            return asyncio.run(run())
        except CredentialReplayedError as err:
            raise MppRefusal(403, "verification-failed", f"credential replayed: {err}", fresh=False)
        except PaymentError as err:
            raise MppRefusal(402, "verification-failed", f"Stripe refused the payment: {err}")
