"""The ways of paying, behind one named interface the payment flow drives: ``PaymentOption``.

Each option supplies its terms (what a quote shows), its checks (the policy of its kind), its
payee as the pins see it, what it counts against the budget, who signs the paid request (its
auth-on-retry rule), its signing, and what the run's result and output carry about it (its result
fields and ``payment`` block). The flow (``flow.py``) runs the same sequence over every option, so
every guard is written once, and names no option but credits (the one that needs no 402).

Options are registered by (network family, scheme) in ``REGISTRY``, with wildcards the way x402's
own clients register theirs (``"eip155:*"`` matches every EVM chain); ``choose`` picks the one a
402 is paid with. Adding a way of paying is a class here and one ``REGISTRY.register`` line.

==================  ====================  ==========================================  ==================================
registered as       option                what is paid                                signed by
==================  ====================  ==========================================  ==================================
eip155:* exact      ``X402Option``        one ``accepts`` entry of an x402 402        ``schemes.sign_offer``
solana:* exact      ``SvmX402Option``     the same, once the payee's token account     ``schemes.sign_offer``
                                          is known to exist (or created, opt-in)
tempo charge        ``MppOption``         a ``WWW-Authenticate: Payment`` tempo charge ``schemes.mpp_tempo.sign_mpp``
stripe charge       ``StripeOption``      a ``WWW-Authenticate: Payment`` stripe charge ``schemes.mpp_stripe.sign_stripe``
                                          (a card, through a Shared Payment Token)    (the user's Stripe account)
(``use_credits``)   ``CreditsOption``     prepaid credits                             nothing: the request spends them
==================  ====================  ==========================================  ==================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generator, Generic, Protocol, TypeVar

from ..errors import ComputeError, ConfigError, PaymentRequired, PolicyError
from ..money import atomic_to_usd, plain
from ..networks import NETWORKS, is_canonical_asset
from ..wallets import evm_uses_ows
from . import challenge as ch
from .budget import atomic_to_micros
from .model import Challenge, MppOffer, Offer, Send, Signed
from .policy import (
    STRIPE_CURRENCY_DECIMALS,
    Limits,
    cap_atomic,
    check_mpp_offer,
    check_offer,
    check_stripe_offer,
    mpp_pin_view,
    stripe_pin_view,
)
from .schemes import sign_offer, svm_create_recipient_account, svm_recipient_account

if TYPE_CHECKING:
    from ..api.auth import Auth, AuthResolver
    from ..api.http import Response


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
    return sign_offer(offer, settings)


def _svm_recipient(offer: Offer, settings) -> dict | None:
    return svm_recipient_account(offer, settings)


def _svm_create_recipient(offer: Offer, settings, progress) -> dict | None:
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


# -- the interface --------------------------------------------------------------------------------------


class PaymentOption(Protocol):
    """One way of paying one request: everything the flow needs of it, in the order it asks."""

    method: str  # "x402" | "mpp" | "stripe" | "credits": the journal's and the output's method
    network: str | None  # where the money moves (checked against COMPUTE_ALLOWED_NETWORKS); None: nothing moves now

    def terms(self) -> dict:
        """What a quote and the confirmation show about this payment."""

    def check(self, limits: Limits) -> None:
        """The policy of this kind of payment (scheme, asset, spend cap, catalog price): PolicyError if not."""

    def pin_view(self) -> Offer | None:
        """The payee as the payee pins see it (None: nobody to pin)."""

    def preflight(self, terms: dict, *, quote: bool) -> None:
        """Facts to know before confirming (Solana: the payee's token account); may refuse."""

    def paid_auth(self, auths: AuthResolver, probe_auth: Auth | None, *, instance_id: str | None, needs_identity: bool) -> Auth:
        """Who signs the request that carries the payment."""

    def auth_on_retry(self, paid_auth: Auth) -> bool:
        """Whether a resend of the paid request must carry management auth again (kept in the journal)."""

    def budget_micros(self) -> int:
        """What it counts against the rolling budget, in micro-USD."""

    def question(self, what: str, terms: dict) -> str:
        """The confirmation question."""

    def sign(self, progress: Callable[[str], None], journal_note: Callable[[dict], None]) -> Payment:
        """The one signature of the run (``journal_note`` records anything spent on the way)."""

    def journal_offer(self) -> dict | None:
        """The offer as the journal keeps it."""

    def result_fields(self, payment: Payment | None) -> dict:
        """What the run's result carries about this option (``PaidResult`` fields; ``payment`` is
        None for a quote)."""

    def payment_block(self, result: Any, common: dict) -> dict:
        """The ``payment`` block of the output, from the settled ``result`` and the fields
        ``common`` to every method (tx_hash, idempotency_key, journal_id)."""


T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by (network, scheme), where a network is registered exactly (``"tempo"``,
    ``"eip155:8453"``) or as a family wildcard (``"eip155:*"``); the exact entry wins, as in x402's
    clients. For MPP the "network" is the payment method and the scheme its intent."""

    def __init__(self) -> None:
        self._by_network: dict[str, dict[str, T]] = {}

    def register(self, network: str, scheme: str, entry: T) -> T:
        self._by_network.setdefault(network, {})[scheme] = entry
        return entry

    def find(self, network: str, scheme: str) -> T | None:
        exact = self._by_network.get(network, {})
        if scheme in exact:
            return exact[scheme]
        family = network.split(":", 1)[0] + ":*" if ":" in network else None
        return self._by_network.get(family, {}).get(scheme) if family else None

    def entries(self) -> list[tuple[str, str, T]]:
        return [(n, sc, e) for n, by in self._by_network.items() for sc, e in by.items()]


def _none_auth(auth: Auth | None) -> bool:
    return auth is None or getattr(auth, "identity", "none") == "none"


# -- the options --------------------------------------------------------------------------------------


class X402Option:
    """An x402 offer on an EVM chain (and the base of the Solana one)."""

    method = "x402"

    def __init__(self, challenge: Challenge, offer: Offer, signers: Signers, settings, *, create_recipient_account: bool) -> None:
        self.challenge, self.offer, self.signers, self.settings = challenge, offer, signers, settings
        self.create_recipient_account = create_recipient_account
        self.need: dict | None = None  # the Solana recipient account to create, once checked
        self.created: dict | None = None
        self.signed: Signed | None = None

    @classmethod
    def offered(cls, challenge: Challenge, offer: Offer, c: Choice) -> X402Option:
        return cls(challenge, offer, c.signers, c.settings, create_recipient_account=c.create_recipient_account)

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
        return None

    def paid_auth(self, auths: AuthResolver, probe_auth: Auth | None, *, instance_id: str | None, needs_identity: bool) -> Auth:
        return auths.paid(probe_auth, needs_identity=needs_identity)

    def auth_on_retry(self, paid_auth: Auth) -> bool:
        return False

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

    def result_fields(self, payment: Payment | None) -> dict:
        if payment is None:
            return {"offer": self.offer}
        return {"offer": self.offer, "signed": payment.signed, "recipient_account_created": self.created}

    def payment_block(self, result: Any, common: dict) -> dict:
        t = offer_terms(self.offer)
        return {
            "method": "x402",
            "network": t["network"],
            "asset": t["asset"],
            "asset_symbol": t["asset_symbol"],
            "amount_atomic": t["amount_atomic"],
            "amount_usd": t["amount_usd"],
            "payer": (result.signed.payer if result.signed else None) or (result.settlement or {}).get("payer"),
            "payee": t["payee"],
            **common,
            "x402_version": self.offer.version,
            "resent": result.resent,
            **({"recipient_account_created": result.recipient_account_created} if result.recipient_account_created else {}),
        }


class SvmX402Option(X402Option):
    """An x402 offer on Solana: the payee's token account must exist before the payment can land."""

    def preflight(self, terms: dict, *, quote: bool) -> None:
        """Does the payee's token account exist? If not, its creation cost joins the terms, and
        without --create-recipient-account (or SOL to pay for it) the payment is refused."""
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


class _MppCharge:
    """What every MPP method shares (Tempo, card): the credential does not say whose instance it
    pays for, so management auth goes along and is sent again on the retry; results carry the charge."""

    charge: MppOffer

    def paid_auth(self, auths: AuthResolver, probe_auth: Auth | None, *, instance_id: str | None, needs_identity: bool) -> Auth:
        return _mpp_paid_auth(auths, probe_auth, instance_id=instance_id, needs_identity=needs_identity)

    def auth_on_retry(self, paid_auth: Auth) -> bool:
        return not _none_auth(paid_auth)

    def result_fields(self, payment: Payment | None) -> dict:
        return {"mpp_offer": self.charge, **({"signed": payment.signed} if payment is not None else {})}

    NOT_OFFERED: tuple[str, str, str, str]  # (code, what is missing, its method, hint)

    @classmethod
    def not_offered(cls, challenge: Challenge) -> ComputeError:
        code, what, method, hint = cls.NOT_OFFERED
        return PaymentRequired(
            f"The server's 402 carries no {what} (WWW-Authenticate: Payment method={method} intent=charge).",
            code=code,
            status=402,
            details={"mpp": mpp_terms(challenge) or None, "offered_networks": sorted({o.key or o.network for o in challenge.offers})},
            hint=hint,
        )


class MppOption(_MppCharge):
    method = "mpp"
    network = "tempo"

    def __init__(self, challenge: Challenge, charge: MppOffer, signers: Signers, settings, limits: Limits) -> None:
        self.challenge, self.charge, self.signers, self.settings, self.limits = challenge, charge, signers, settings, limits

    @classmethod
    def offered(cls, challenge: Challenge, charge: MppOffer, c: Choice) -> MppOption:
        return cls(challenge, charge, c.signers, c.settings, c.limits)

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

    def payment_block(self, result: Any, common: dict) -> dict:
        t = mpp_offer_terms(self.charge)
        return {
            "method": "mpp",
            "intent": t["intent"],
            "network": "tempo",
            "chain_id": t["chain_id"],
            "asset": t["asset"],
            "asset_symbol": t["asset_symbol"],
            "amount_atomic": t["amount_atomic"],
            "amount_usd": t["amount_usd"],
            "payer": result.signed.payer if result.signed else None,
            "payee": t["payee"],
            **common,
            "receipt": result.receipt,
            "resent": result.resent,
        }

    NOT_OFFERED = ("mpp_not_offered", "MPP Tempo charge", "tempo", "Pay with x402 instead (--pay x402).")


class StripeOption(_MppCharge):
    """An MPP ``stripe`` charge paid by card: the SPT is created (with the user's Stripe key) only
    in ``sign``, after every guard and the budget reservation, so a refusal calls Stripe never."""

    method = "stripe"
    network = "stripe"

    def __init__(self, challenge: Challenge, charge: MppOffer, signers: Signers, settings) -> None:
        self.challenge, self.charge, self.signers, self.settings = challenge, charge, signers, settings
        self.spt: str | None = None

    @classmethod
    def offered(cls, challenge: Challenge, charge: MppOffer, c: Choice) -> StripeOption:
        return cls(challenge, charge, c.signers, c.settings)

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

    def payment_block(self, result: Any, common: dict) -> dict:
        t = stripe_offer_terms(self.charge)
        return {
            "method": "stripe",
            "intent": t["intent"],
            "network": "stripe",
            "currency": t["asset"],
            "amount_atomic": t["amount_atomic"],  # minor units (cents)
            "amount_usd": t["amount_usd"],
            "payer": result.signed.payer if result.signed else None,  # stripe:<payment method id>
            "payee": t["payee"],  # the seller's Stripe network profile
            "payment_intent": result.tx_hash,
            **common,
            "receipt": result.receipt,
            "resent": result.resent,
        }

    NOT_OFFERED = ("stripe_not_offered", "MPP card charge", "stripe",
                   "This service does not take cards here: pay with x402 (--pay x402) or MPP on Tempo (--pay mpp).")


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
                hint=f"Tell the human the amount ({plain(exp)} USD); the cap is theirs: only they may re-run with --max-usd {plain(exp)}. Never raise it yourself.",
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

    def paid_auth(self, auths: AuthResolver, probe_auth: Auth | None, *, instance_id: str | None, needs_identity: bool) -> Auth:
        # The request itself spends the account's credits, so it needs the account.
        return auths.probe(instance_id, required=True)

    def auth_on_retry(self, paid_auth: Auth) -> bool:
        return True

    def result_fields(self, payment: Payment | None) -> dict:
        if payment is None:
            return {}
        return {"note": "Paid from prepaid credits (use_credits): the server answered the first request with success, so no on-chain payment was needed."}

    def payment_block(self, result: Any, common: dict) -> dict:
        return {"method": self.method, "note": result.note, **common}


def _mpp_paid_auth(auths: AuthResolver, probe_auth: Auth | None, *, instance_id: str | None, needs_identity: bool) -> Auth:
    """MPP on an existing instance, or on anything needing an identity: the MPP credential does not
    say whose instance this is, so management auth goes along (ConfigError without one)."""
    if needs_identity or instance_id:
        try:
            return auths.for_instance(instance_id)
        except ConfigError:
            raise ConfigError(
                "Paying through MPP here needs management auth: the MPP payment does not identify the owner.",
                code="auth_required",
                hint="Set COMPUTE_API_KEY (or keep the saved per-instance key from an MPP provision), or PRIVATE_KEY for signed auth.",
            ) from None
    return auths.paid(probe_auth, needs_identity=needs_identity)



# -- the registry, and the choice of one option -------------------------------------------------------

class OptionFactory(Protocol):
    """What ``REGISTRY`` holds: an option class, built from the offer (or charge) it pays."""

    def offered(self, challenge: Challenge, offer: Any, c: Choice) -> PaymentOption: ...


REGISTRY: Registry[OptionFactory] = Registry()
REGISTRY.register("eip155:*", "exact", X402Option)
REGISTRY.register("solana:*", "exact", SvmX402Option)
REGISTRY.register("tempo", "charge", MppOption)
REGISTRY.register("stripe", "charge", StripeOption)

# --pay: which MPP method a value names ("auto" and "x402" pay an x402 offer, "auto" falling back to
# the Tempo charge when the wallets can pay nothing else).
PAY_MPP = {"mpp": "tempo", "stripe": "stripe"}
PAY_CHOICES = ("auto", "x402", *PAY_MPP)


@dataclass
class Choice:
    """What choosing and building an option needs from the run."""

    settings: Any
    signers: Signers
    limits: Limits
    pay: str = "auto"
    network: str = "base"  # the wanted x402 network
    network_explicit: bool = False  # the user named --network: never pay on another rail instead
    create_recipient_account: bool = False
    progress: Callable[[str], None] = lambda m: None


def x402_option(challenge: Challenge, offer: Offer, c: Choice) -> PaymentOption:
    net = NETWORKS.get(offer.key or "")
    # An offer no entry takes (another scheme) still becomes an option: its policy check refuses it.
    cls = REGISTRY.find(net.caip2 if net else offer.network, offer.scheme) or X402Option
    return cls.offered(challenge, offer, c)


def mpp_option(challenge: Challenge, charge: MppOffer, c: Choice) -> PaymentOption:
    return REGISTRY.find(charge.method, charge.intent).offered(challenge, charge, c)


def choose(c: Choice, challenge: Challenge, ask_again: Callable[[dict], Send], terms: dict) -> Generator[Send, Response, Any]:
    """The one option to pay this 402 with (a generator: it may ask once more with
    X-Accept-Networks, yielding the request ``ask_again`` builds)."""
    method = PAY_MPP.get(c.pay)
    if method is not None:
        m = _mpp_charge(challenge, method)
        if m is None and challenge.mpp_error is not None:
            raise challenge.mpp_error  # a header that reads two ways is refused, not taken for "not offered"
        if m is None:
            raise REGISTRY.find(method, "charge").not_offered(challenge)
        return mpp_option(challenge, m, c)
    offer = _pick(challenge, c.network)
    if offer is None:
        c.progress(f"No {c.network} offer in the 402; asking again with X-Accept-Networks: {c.network}")
        again = yield ask_again({"X-Accept-Networks": c.network})
        if again.status == 402:
            challenge2 = ch.from_response(again)
            offer = _pick(challenge2, c.network)
            if offer is not None or not challenge.mpp:
                challenge = challenge2
    charge = _mpp_charge(challenge, "tempo")
    if (
        offer is None
        and c.pay == "auto"
        and not c.network_explicit
        and charge is not None
        and "tempo" in c.settings.allowed_networks
        and _has_evm_wallet(c.settings)
    ):
        # MPP is the only offer these wallets can pay: take it, under the same rules. Not when
        # the user named a network: paying on Tempo instead would be a rail they did not choose.
        c.progress(f"No x402 offer on {c.network}; paying the MPP (Tempo USDC.e) challenge instead")
        return mpp_option(challenge, charge, c)
    if offer is None:
        offered = sorted({o.key or o.network for o in challenge.offers})
        mpp = mpp_terms(challenge)
        terms["offered_networks"] = offered
        raise PaymentRequired(
            f"The server offers no x402 payment on {c.network}.",
            code="network_not_offered",
            status=402,
            details={"offered_networks": offered, "mpp": mpp or None},
            hint=f"Pick one of --network {' | '.join(offered)}." if offered else ("Pay the MPP offer with --pay mpp (needs PRIVATE_KEY or an OWS wallet)." if mpp else None),
        )
    return x402_option(challenge, offer, c)


def _pick(challenge: Challenge, network: str) -> Offer | None:
    """The offer on ``network``; among several, prefer exact with the canonical asset
    (the policy then refuses anything else rather than silently picking it)."""
    cands = [o for o in challenge.offers if o.key == network]
    if not cands:
        return None
    cands.sort(key=lambda o: (o.scheme != "exact", not is_canonical_asset(network, o.asset)))
    return cands[0]


def _has_evm_wallet(settings) -> bool:
    """A raw EVM key or an OWS vault (which signs Tempo transactions too): a wallet that can pay MPP."""
    return bool(settings.private_key) or evm_uses_ows(settings)


def _mpp_charge(challenge: Challenge, method: str) -> MppOffer | None:
    return next((m for m in challenge.mpp if (m.method, m.intent) == (method, "charge")), None)
