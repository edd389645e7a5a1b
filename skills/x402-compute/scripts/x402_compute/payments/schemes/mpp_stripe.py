"""MPP ``stripe`` ``charge``: pay one card challenge with a Shared Payment Token (SPT).

The SPT is created with the user's own Stripe account (``STRIPE_SECRET_KEY``) from their saved
card (``STRIPE_PAYMENT_METHOD``), granted to the seller's network profile the challenge names
(``methodDetails.networkId``) and limited to exactly the challenge's amount and currency, expiring
with the challenge: ``POST {STRIPE_API_BASE}/shared_payment/issued_tokens``. pympp's Stripe client
method (``mpp.methods.stripe.client.StripeMethod``) checks the challenge and wraps the SPT in the
credential; the seller then creates the PaymentIntent that spends it (the SPT pays once).

The secret key only ever goes in the ``Authorization`` header of that one request to the Stripe
API (https, or http to this machine only); it is never logged, journalled or printed. A 401 from
Stripe is a ConfigError naming STRIPE_SECRET_KEY, raised before anything was paid.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from ... import redact
from ...errors import ComputeError, ConfigError, NetworkError
from ..model import MppOffer

ISSUE_PATH = "/shared_payment/issued_tokens"
MAX_SPT_LIFETIME_S = 3600


@dataclass
class StripeSigned:
    authorization: str  # "Payment <b64url credential>": a bearer secret (the SPT), journalled 0600 only
    header: str
    spt: str  # the Shared Payment Token id: what makes this payment unique (reconcile shows it)
    payment_method: str
    valid_before: int | None = None  # the token's usage_limits[expires_at]: after it, it can no longer pay


def require_stripe(settings) -> None:
    """Everything --pay stripe needs, checked before the budget is reserved and before any request."""
    if not settings.stripe_secret_key:
        raise ConfigError(
            "Paying by card (--pay stripe) needs your Stripe secret key in STRIPE_SECRET_KEY (or a file named by STRIPE_SECRET_KEY_FILE).",
            code="stripe_not_configured",
            hint="Set STRIPE_SECRET_KEY and STRIPE_PAYMENT_METHOD (the sandbox started with --stripe writes test values into its env file).",
        )
    if not settings.stripe_payment_method:
        raise ConfigError(
            "Paying by card (--pay stripe) needs the card to charge in STRIPE_PAYMENT_METHOD (a pm_… id of your Stripe account).",
            code="stripe_not_configured",
            hint="Set STRIPE_PAYMENT_METHOD to the PaymentMethod id of the saved card.",
        )
    settings.require_secure(settings.stripe_api_base, "your Stripe secret key (STRIPE_API_BASE)")
    try:
        import mpp  # noqa: F401
        from mpp.methods.stripe.client import StripeMethod  # noqa: F401
    except ImportError:
        raise ConfigError(
            "Paying by card needs the pympp library (Python 3.11+).",
            code="mpp_unavailable",
            hint="pip install 'pympp>=0.16,<0.17', or pay with x402 (--pay x402).",
        ) from None


def _stripe_error(resp) -> tuple[str, str | None]:
    try:
        err = resp.json().get("error") or {}
    except ValueError:
        err = {}
    msg = err.get("message") if isinstance(err, dict) and isinstance(err.get("message"), str) else f"HTTP {resp.status_code}"
    code = err.get("code") if isinstance(err, dict) and isinstance(err.get("code"), str) else None
    return msg[:300], code


def create_spt(settings, *, amount: str, currency: str, network_id: str, payment_method: str, expires_at: int, timeout: float) -> str:
    """One SPT from the user's Stripe account, limited to this charge. Raises ConfigError/ComputeError."""
    import httpx

    url = settings.stripe_api_base.rstrip("/") + ISSUE_PATH
    auth = base64.b64encode(f"{settings.stripe_secret_key}:".encode()).decode()
    form = {
        "payment_method": payment_method,
        "seller_details[network_business_profile]": network_id,
        "usage_limits[currency]": currency,
        "usage_limits[max_amount]": amount,
        "usage_limits[expires_at]": str(expires_at),
    }
    try:
        resp = httpx.post(url, data=form, headers={"Authorization": f"Basic {auth}"}, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as e:
        raise NetworkError(
            f"Could not reach the Stripe API at {urlsplit(url).netloc} to create the card payment token ({type(e).__name__}). Nothing was paid.",
            details={"sent": False},
            retryable=True,
            hint="Check the connection (and STRIPE_API_BASE if you set it), then run the command again.",
        ) from None
    if resp.status_code == 401:
        msg, _ = _stripe_error(resp)
        raise ConfigError(
            f"Stripe refused STRIPE_SECRET_KEY ({msg}). Nothing was paid.",
            code="stripe_auth_failed",
            hint="Check STRIPE_SECRET_KEY (the secret key of the Stripe account that owns the card); never paste it into a chat.",
        )
    if resp.status_code != 200:
        msg, code = _stripe_error(resp)
        raise ComputeError(
            f"Stripe did not create the card payment token: {msg} Nothing was paid.",
            code="stripe_token_refused",
            details={"stripe_code": code, "http_status": resp.status_code},
            hint="Check STRIPE_PAYMENT_METHOD (a card saved in the same Stripe account as STRIPE_SECRET_KEY).",
        )
    try:
        spt = resp.json().get("id")
    except ValueError:
        spt = None
    if not isinstance(spt, str) or not spt.startswith("spt_") or len(spt) > 255:
        raise ComputeError("Stripe's answer carried no shared payment token id. Nothing was paid.", code="stripe_token_refused")
    return spt


def checked_terms(offer: MppOffer, *, now: float | None = None) -> dict:
    """What the card token is limited to, from the challenge the policy checked and nothing else:
    its amount (minor units), currency, seller profile (``methodDetails.networkId``) and an expiry no
    later than the challenge's own and never more than an hour away."""
    now = time.time() if now is None else now
    details = offer.request.get("methodDetails") if isinstance(offer.request.get("methodDetails"), dict) else {}
    expires_at = int(now) + MAX_SPT_LIFETIME_S
    if offer.expires:
        try:
            exp = datetime.fromisoformat(offer.expires.replace("Z", "+00:00"))
        except ValueError:
            exp = None
        if exp is None or exp.tzinfo is None:
            raise ComputeError("The stripe MPP challenge's expires is not a timestamp. Nothing was paid.", code="unusable_offer",
                               details={"expires": offer.expires[:40]})
        expires_at = min(expires_at, int(exp.timestamp()))
    return {"amount": str(offer.amount), "currency": offer.currency, "network_id": details.get("networkId"), "expires_at": expires_at}


def sign_stripe(offer: MppOffer, settings) -> StripeSigned:
    """The credential answering ``offer``: pympp's Stripe client method over the challenge the policy
    checked (``_mpp.checked_challenge``), our SPT callback limited to the checked terms."""
    require_stripe(settings)
    from mpp.methods.stripe.client import StripeMethod

    from ._mpp import checked_challenge

    challenge = checked_challenge(offer)
    terms = checked_terms(offer)
    made: dict = {}

    async def create_token(p) -> str:
        # pympp read the same challenge; should it still hand over other terms, the token is not made.
        if (p.amount, p.currency, p.network_id) != (terms["amount"], terms["currency"], terms["network_id"]):
            raise ComputeError("pympp's card terms differ from the checked challenge. Nothing was paid.", code="unusable_offer")
        made["spt"] = create_spt(settings, amount=terms["amount"], currency=terms["currency"], network_id=terms["network_id"],
                                 payment_method=settings.stripe_payment_method, expires_at=terms["expires_at"], timeout=settings.timeout)
        return made["spt"]

    method = StripeMethod(create_token=create_token, payment_method=settings.stripe_payment_method)
    try:
        cred = asyncio.run(method.create_credential(challenge))
    except ValueError as e:  # pympp: the challenge lacks networkId / paymentMethodTypes
        raise ComputeError(f"The stripe MPP challenge cannot be paid: {e}. Nothing was paid.", code="bad_challenge") from None

    value = cred.to_authorization()
    redact.register(value)
    redact.register(made["spt"])
    return StripeSigned(authorization=value, header=challenge.credential_header, spt=made["spt"], payment_method=settings.stripe_payment_method,
                        valid_before=terms["expires_at"])


def token_state(entry: dict, settings, *, now: float | None = None) -> dict:
    """reconcile.py for a card payment: what Stripe says about its SPT (read-only, with the user's key).

    ``used`` (the SPT was consumed: a PaymentIntent captured it), ``unused`` (still active until
    ``valid_before``: it may still be spent), ``expired_unused`` (expired or revoked, never spent)
    or ``unknown`` (with a reason). The PaymentIntent id is known when the answer arrived
    (``payment_intent``); Stripe shows the SPT's PaymentIntent only to the seller."""
    import httpx

    now = time.time() if now is None else now
    spt = entry.get("spt") or entry.get("nonce")
    out: dict = {"state": "unknown", "scheme": "mpp_stripe", "network": "stripe", "spt": spt,
                 "payment_intent": entry.get("tx_hash"), "checked_at": int(now)}
    if not isinstance(spt, str) or not spt.startswith("spt_"):
        out["reason"] = "the journal entry names no shared payment token (nothing was sent)"
        return out
    if not settings.stripe_secret_key:
        out["reason"] = "STRIPE_SECRET_KEY is not set, so Stripe cannot be asked about the token"
        return out
    try:
        settings.require_secure(settings.stripe_api_base, "your Stripe secret key (STRIPE_API_BASE)")
        auth = base64.b64encode(f"{settings.stripe_secret_key}:".encode()).decode()
        resp = httpx.get(f"{settings.stripe_api_base.rstrip('/')}{ISSUE_PATH}/{spt}", headers={"Authorization": f"Basic {auth}"},
                         timeout=settings.timeout, follow_redirects=False)
    except ComputeError as e:
        out["reason"] = e.message
        return out
    except httpx.HTTPError as e:
        out["reason"] = f"could not reach the Stripe API ({type(e).__name__})"
        return out
    out["query"] = f"GET {ISSUE_PATH}/{spt}"
    try:
        tok = resp.json()
    except ValueError:
        tok = None
    if resp.status_code != 200 or not isinstance(tok, dict):
        msg, _ = _stripe_error(resp)
        out["reason"] = f"Stripe answered HTTP {resp.status_code}: {msg}"
        return out
    limits = tok.get("usage_limits") if isinstance(tok.get("usage_limits"), dict) else {}
    vb = limits.get("expires_at") if isinstance(limits.get("expires_at"), int) else None
    out["valid_before"] = vb
    out["token_status"] = str(tok.get("status"))[:40]
    reason = tok.get("deactivated_reason")
    if reason == "consumed":
        out["state"] = "used"
    elif reason in ("expired", "revoked") or (tok.get("status") == "active" and vb is not None and vb <= now):
        out["state"] = "expired_unused"
    elif tok.get("status") == "active":
        out["state"] = "unused"
    else:
        out["reason"] = f"the token is {out['token_status']} ({str(reason)[:40]})"
    return out
