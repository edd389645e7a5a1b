"""The three ways of paying, behind one small interface the payment flow drives.

Each option supplies its terms (what a quote shows), its checks (the policy of its kind), its
payee as the pins see it, what it counts against the budget, and its signing. The flow
(``flow.py``) runs the same sequence over every option, so every guard is written once.

==============  ==========================================  ==================================
option          what is paid                                signed by
==============  ==========================================  ==================================
``X402Option``  one ``accepts`` entry of an x402 402         ``schemes.sign_offer``
``MppOption``   a ``WWW-Authenticate: Payment`` tempo charge ``schemes.mpp_tempo.sign_mpp``
``StripeOption`` a ``WWW-Authenticate: Payment`` stripe charge ``schemes.mpp_stripe.sign_stripe``
                (a card, through a Shared Payment Token)  (the user's Stripe account)
``CreditsOption`` prepaid credits (``use_credits``)          nothing: the request spends them
==============  ==========================================  ==================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import ComputeError, PolicyError
from ..money import atomic_to_usd, plain
from ..networks import NETWORKS
from . import challenge as ch
from .budget import atomic_to_micros
from .model import Challenge, MppOffer, Offer, Signed
from .policy import STRIPE_CURRENCY_DECIMALS, Limits, cap_atomic, check_mpp_offer, check_offer, check_stripe_offer, mpp_pin_view, stripe_pin_view


@dataclass
class Payment:
    """A signed payment, ready to journal and send."""

    header_name: str | None  # None: nothing is attached (credits)
    header_value: str | None
    payer: str | None
    nonce: str | None = None  # what makes it unique on chain (reconcile reads it)
    valid_before: int | None = None
    signed: Signed | None = None
    journal: dict[str, Any] = field(default_factory=dict)  # extra fields of the journal entry


def _sign_x402(offer: Offer, settings) -> Signed:
    from .schemes import sign_offer  # heavy crypto imports only when paying

    return sign_offer(offer, settings)


def _svm_recipient(offer: Offer, settings) -> dict | None:
    from .schemes import svm_recipient_account

    return svm_recipient_account(offer, settings)


def _svm_create_recipient(offer: Offer, settings, progress) -> dict | None:
    from .schemes import svm_create_recipient_account

    return svm_create_recipient_account(offer, settings, progress=progress)


def _sign_mpp(offer: MppOffer, settings, **kw):
    from .schemes.mpp_tempo import sign_mpp  # pympp only on the MPP path

    return sign_mpp(offer, settings, **kw)


def _sign_stripe(offer: MppOffer, settings):
    from .schemes.mpp_stripe import sign_stripe  # pympp + httpx only on the card path

    return sign_stripe(offer, settings)


@dataclass
class Signers:
    """The side-effecting parts of paying, injectable for tests."""

    x402: Callable[[Offer, Any], Signed] = _sign_x402
    mpp: Callable[..., Any] = _sign_mpp
    stripe: Callable[..., Any] = _sign_stripe
    svm_recipient: Callable[[Offer, Any], dict | None] = _svm_recipient
    svm_create_recipient: Callable[..., dict | None] = _svm_create_recipient


def _plain(obj: Any) -> Any:
    """The challenge's requirement as the journal can store it: its numbers were parsed as Decimal."""
    return json.loads(json.dumps(obj, default=ch.json_number))


# -- terms ------------------------------------------------------------------------------------------


def offer_terms(offer: Offer) -> dict:
    net = NETWORKS.get(offer.key or "")
    return {
        "method": "x402",
        "network": offer.key or offer.network,
        "network_id": offer.network,
        "x402_version": offer.version,
        "scheme": offer.scheme,
        "asset": offer.asset,
        "asset_symbol": net.symbol if net else None,
        "amount_atomic": str(offer.amount),
        "amount_usd": plain(atomic_to_usd(offer.amount, net.decimals)) if net else None,
        "payee": offer.pay_to,
        "max_timeout_seconds": offer.max_timeout_seconds,
    }


def mpp_offer_terms(m: MppOffer) -> dict:
    net = NETWORKS["tempo"]
    return {
        "method": "mpp",
        "network": "tempo",
        "intent": m.intent,
        "chain_id": m.chain_id,
        "asset": m.currency,
        "asset_symbol": net.symbol,
        "amount_atomic": str(m.amount),
        "amount_usd": plain(atomic_to_usd(m.amount, net.decimals)),
        "payee": m.recipient,
        "expires": m.expires,
    }


def _stripe_network_id(m: MppOffer) -> str | None:
    d = m.request.get("methodDetails") if isinstance(m.request.get("methodDetails"), dict) else {}
    return d.get("networkId") if isinstance(d.get("networkId"), str) else None


def _mpp_usd(m: MppOffer) -> str | None:
    if m.method == "tempo":
        return plain(atomic_to_usd(m.amount, 6))  # TIP-20 tokens have 6 decimals
    if m.method == "stripe" and m.currency in STRIPE_CURRENCY_DECIMALS:
        return plain(atomic_to_usd(m.amount, STRIPE_CURRENCY_DECIMALS[m.currency]))  # minor units (cents)
    return None


_PAY_WITH = {("tempo", "charge"): "--pay mpp", ("stripe", "charge"): "--pay stripe"}


def mpp_terms(challenge: Challenge) -> list[dict]:
    """Every MPP challenge of a 402, for quotes and errors."""
    return [
        {
            "method": m.method,
            "intent": m.intent,
            "chain_id": m.chain_id,
            "currency": m.currency,
            "amount_atomic": str(m.amount),
            "amount_usd": _mpp_usd(m),
            "recipient": m.recipient or (_stripe_network_id(m) if m.method == "stripe" else None),
            "expires": m.expires,
            "pay_with": _PAY_WITH.get((m.method, m.intent), "not supported by this client"),
        }
        for m in challenge.mpp
    ]


def stripe_offer_terms(m: MppOffer) -> dict:
    """A card charge's terms: amounts in the currency's minor units (cents), payee = the seller's
    Stripe network profile."""
    return {
        "method": "stripe",
        "network": "stripe",
        "intent": m.intent,
        "asset": m.currency,
        "asset_symbol": m.currency.upper()[:8],
        "amount_atomic": str(m.amount),
        "amount_usd": _mpp_usd(m),
        "payee": _stripe_network_id(m),
        "expires": m.expires,
    }


# -- the options --------------------------------------------------------------------------------------


class X402Option:
    method = "x402"

    def __init__(self, challenge: Challenge, offer: Offer, signers: Signers, settings, *, create_recipient_account: bool) -> None:
        self.challenge, self.offer, self.signers, self.settings = challenge, offer, signers, settings
        self.create_recipient_account = create_recipient_account
        self.need: dict | None = None  # the Solana recipient account to create, once checked
        self.created: dict | None = None
        self.signed: Signed | None = None

    @property
    def network(self) -> str:
        return self.offer.key or self.offer.network

    def terms(self) -> dict:
        return offer_terms(self.offer)

    def budget_micros(self) -> int:
        net = NETWORKS.get(self.offer.key or "")
        return atomic_to_micros(self.offer.amount, net.decimals) if net else 0

    def check(self, limits: Limits) -> None:
        check_offer(self.offer, limits)

    def pin_view(self) -> Offer:
        return self.offer

    def preflight(self, terms: dict, *, quote: bool) -> None:
        """Solana only: does the payee's token account exist? If not, its creation cost joins the
        terms, and without --create-recipient-account (or SOL to pay for it) the payment is refused."""
        net = NETWORKS.get(self.offer.key or "")
        if net is None or net.family != "svm":
            return
        try:
            need = self.signers.svm_recipient(self.offer, self.settings)
        except ComputeError as e:
            if not quote:
                raise
            # A quote still shows the price when the chain cannot be read (or no Solana wallet is set).
            terms["recipient_account"] = {"checked": False, "error": e.message}
            return
        if need is None:
            terms["recipient_account"] = {"exists": True}
            return
        from .schemes.svm_exact import insufficient_sol_error, missing_recipient_error

        terms["recipient_account"] = {"exists": False, "create": self.create_recipient_account, **need}
        if not self.create_recipient_account:
            raise missing_recipient_error(need)
        if not need["payer_can_afford"]:
            raise insufficient_sol_error(need)
        self.need = need

    def question(self, what: str, terms: dict) -> str:
        q = f"Pay {terms['amount_usd']} {terms['asset_symbol']} on {self.offer.key} to {self.offer.pay_to} for {what}?"
        n = self.need
        if n:
            q = (
                f"First create the recipient's token account {n['token_account']}, costing your wallet "
                f"{n['create_total_sol']} SOL ({n['create_cost_lamports']} lamports rent + "
                f"{n['create_fee_lamports']} lamports fee), then: {q}"
            )
        return q

    def sign(self, progress, journal_note: Callable[[dict], None]) -> Payment:
        if self.need:
            # Opt-in side transaction: it spends the user's SOL, so the journal records it at once,
            # whatever happens to the payment after it.
            self.created = self.signers.svm_create_recipient(self.offer, self.settings, progress)
            if self.created:
                journal_note({"recipient_account_created": self.created})
        signed = self.signers.x402(self.offer, self.settings)
        self.signed = signed
        name, value = ch.payment_header(self.challenge, self.offer, signed)
        return Payment(
            name,
            value,
            signed.payer,
            nonce=signed.nonce,
            valid_before=signed.valid_before,
            signed=signed,
        )

    def journal_offer(self) -> dict:
        return {**offer_terms(self.offer), "raw": _plain(self.offer.raw)}


class MppOption:
    method = "mpp"
    network = "tempo"

    def __init__(self, challenge: Challenge, charge: MppOffer, signers: Signers, settings, limits: Limits) -> None:
        self.challenge, self.charge, self.signers, self.settings, self.limits = challenge, charge, signers, settings, limits

    def terms(self) -> dict:
        return mpp_offer_terms(self.charge)

    def budget_micros(self) -> int:
        return atomic_to_micros(self.charge.amount, NETWORKS["tempo"].decimals)

    def check(self, limits: Limits) -> None:
        check_mpp_offer(self.charge, limits)

    def pin_view(self) -> Offer:
        return mpp_pin_view(self.charge)

    def preflight(self, terms: dict, *, quote: bool) -> None:
        return None

    def question(self, what: str, terms: dict) -> str:
        return f"Pay {terms['amount_usd']} USDC.e on Tempo (MPP) to {self.charge.recipient} for {what}?"

    def sign(self, progress, journal_note) -> Payment:
        m = self.charge
        s = self.signers.mpp(m, self.settings, max_atomic=cap_atomic(self.limits.cap_usd, 6), recipient=m.recipient)
        return Payment(
            s.header,
            s.authorization,
            s.payer,
            nonce=s.tx_hash,
            signed=Signed(payload={}, payer=s.payer, nonce=s.tx_hash or ""),
            journal={"expected_tx_hash": s.tx_hash},
        )

    def journal_offer(self) -> dict:
        return {**mpp_offer_terms(self.charge), "challenge_id": self.charge.id}


class StripeOption:
    """An MPP ``stripe`` charge paid by card: the SPT is created (with the user's Stripe key) only
    in ``sign``, after every guard and the budget reservation, so a refusal calls Stripe never."""

    method = "stripe"
    network = "stripe"

    def __init__(self, challenge: Challenge, charge: MppOffer, signers: Signers, settings) -> None:
        self.challenge, self.charge, self.signers, self.settings = challenge, charge, signers, settings
        self.spt: str | None = None

    def terms(self) -> dict:
        return stripe_offer_terms(self.charge)

    def budget_micros(self) -> int:
        d = STRIPE_CURRENCY_DECIMALS.get(self.charge.currency)
        return atomic_to_micros(self.charge.amount, d) if d is not None else 0

    def check(self, limits: Limits) -> None:
        check_stripe_offer(self.charge, limits)

    def pin_view(self) -> Offer:
        return stripe_pin_view(self.charge)

    def preflight(self, terms: dict, *, quote: bool) -> None:
        if quote:  # a quote shows the price without the card being configured
            return
        from .schemes.mpp_stripe import require_stripe

        require_stripe(self.settings)

    def question(self, what: str, terms: dict) -> str:
        return f"Pay {terms['amount_usd']} USD by card (Stripe, {self.settings.stripe_payment_method}) to {terms['payee']} for {what}?"

    def sign(self, progress, journal_note) -> Payment:
        s = self.signers.stripe(self.charge, self.settings)
        self.spt = s.spt
        return Payment(
            s.header,
            s.authorization,
            f"stripe:{s.payment_method}",
            nonce=s.spt,
            valid_before=getattr(s, "valid_before", None),
            signed=Signed(payload={}, payer=f"stripe:{s.payment_method}", nonce=s.spt),
            journal={"spt": s.spt},
        )

    def journal_offer(self) -> dict:
        return {**stripe_offer_terms(self.charge), "challenge_id": self.charge.id}


class CreditsOption:
    """Prepaid credits: no 402 states the amount, so the catalog price is what the cap is held
    against, and without one nothing is sent. The credits were counted against the budget when
    bought, so spending them counts zero."""

    method = "credits"
    network = None

    def __init__(self, limits: Limits, call_terms: dict) -> None:
        self.limits = limits
        self.call_terms = call_terms

    def terms(self) -> dict:
        return {"method": "credits", "amount_usd": self.call_terms.get("total_usd")}

    def budget_micros(self) -> int:
        return 0

    def check(self, limits: Limits) -> None:
        if limits.expected_micros is None:
            raise PolicyError(
                "Paying from prepaid credits needs a catalog price to check against the spend cap, and there is none"
                f"{' (' + self.call_terms['price_check'] + ')' if self.call_terms.get('price_check') else ''}. Nothing was sent.",
                code="price_unknown",
                details={"cap_usd": str(limits.cap_usd), "cap_source": limits.cap_source},
                hint="Pay with x402 instead (drop --use-credits): its 402 states the amount and the cap is checked against it.",
            )
        exp = atomic_to_usd(limits.expected_micros, 6)
        if exp > limits.cap_usd:
            raise PolicyError(
                f"The catalog price {plain(exp)} USD is above the spend cap of {limits.cap_usd} USD ({limits.cap_source}). Nothing was sent.",
                code="spend_cap_exceeded",
                details={"expected_usd": plain(exp), "cap_usd": str(limits.cap_usd), "cap_source": limits.cap_source},
                hint=f"Tell the human the amount ({plain(exp)} USD); only if they agree, re-run with --max-usd {plain(exp)}.",
            )

    def pin_view(self) -> None:
        return None

    def preflight(self, terms: dict, *, quote: bool) -> None:
        return None

    def question(self, what: str, terms: dict) -> str:
        return f"Spend prepaid credits ({terms.get('total_usd') or '?'} USD) for {what}?"

    def sign(self, progress, journal_note) -> Payment:
        return Payment(None, None, None)

    def journal_offer(self) -> dict | None:
        return None
