"""Local safety policy, applied to the *selected* offer before anything is signed.

- scheme ``exact`` only (``upto`` and friends could take more than quoted);
- the asset is the canonical stablecoin of its network (a look-alike token is refused);
- the amount is at least the network's minimum for a direct payment (the network table's
  ``min_payment_atomic``: Arc's 5 USD);
- the amount is within the spend cap (``--max-usd``, else ``COMPUTE_MAX_SPEND_USD``, else 25 USD);
- the amount is no more than the catalog price for the plan and hours, plus one cent
  (a server cannot ask for more than what ``/compute/plans`` advertises);
- the payee matches the one pinned for that network on first use (like SSH known_hosts).

All comparisons are in integer atomic units of the offer's asset; Decimal appears only
for catalog prices (the API publishes USD numbers) and for display.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ..errors import PolicyError, UsageError
from ..money import atomic_to_usd, micros_to_atomic, plain
from ..networks import NETWORKS, is_address, is_canonical_asset
from ..validate import close_matches, did_you_mean_hint
from .journal import ledger_of
from .model import MppOffer, Offer

PRICE_TOLERANCE_MICROS = 10_000  # one cent: the service's rounding rule is unpublished


# -- catalog ----------------------------------------------------------------------------------


def unknown_plan(plan_id: str, catalog_ids) -> UsageError:
    """``unknown_plan`` with up to three close catalog ids in ``details.did_you_mean`` and the hint."""
    near = close_matches(plan_id, catalog_ids)
    return UsageError(f"Plan {plan_id!r} is not in the catalog.", code="unknown_plan", details={"did_you_mean": near},
                      hint=did_you_mean_hint(near, "See browse_plans.py for plan ids."))


def check_order(plan: dict | None, plan_id: str, region: str, os_id: int | None, os_options: list[dict], ssh_key: str | None,
                catalog_ids=()) -> None:
    """What can be checked before the 402: the plan exists, is sold in the region, the OS
    belongs to the plan's provider, and DigitalOcean gets an SSH key (it has no password fallback).
    ``catalog_ids``: every plan id, for the suggestions of an unknown one."""
    if plan is None:
        raise unknown_plan(plan_id, catalog_ids)
    locations = plan.get("locations")
    if isinstance(locations, list) and locations and region not in locations:
        near = close_matches(region, locations)
        raise UsageError(
            f"Plan {plan_id} is not available in region {region!r}.",
            code="region_not_offered",
            details={"locations": locations, "did_you_mean": near},
            hint=(f"Did you mean {' or '.join(near)}? " if near else "") + f"Pick one of: {', '.join(map(str, locations))}.",
        )
    provider = provider_of(plan)
    if provider == "digitalocean" and not ssh_key:
        raise UsageError(
            "DigitalOcean plans require an SSH public key (there is no password fallback).",
            code="ssh_key_required",
            hint="Add --ssh-key-file ~/.ssh/id_ed25519.pub (or --ssh-public-key).",
        )
    if os_id is not None and os_options:
        match = next((o for o in os_options if str(o.get("id")) == str(os_id)), None)
        if match is None:
            near = close_matches(str(os_id), [o.get("id") for o in os_options])
            names = {str(o.get("id")): o.get("name") for o in os_options}
            shown = [f"{i} ({names[i]})" if isinstance(names.get(i), str) else i for i in near]
            raise UsageError(f"OS id {os_id} is not in the OS catalog.", code="unknown_os", details={"did_you_mean": [int(i) if i.isdigit() else i for i in near]},
                             hint=did_you_mean_hint(shown, "See browse_os.py for OS ids."))
        osp = str(match.get("provider") or "").lower()
        if osp and provider and osp != provider:
            raise UsageError(
                f"OS id {os_id} ({match.get('name')}) is a {osp} image, but {plan_id} is a {provider} plan.",
                code="os_provider_mismatch",
                hint=f"Pick a {provider} image from browse_os.py.",
            )


def provider_of(plan: dict) -> str:
    p = str(plan.get("provider") or "").lower()
    if p in ("do", "digitalocean") or str(plan.get("id") or "").startswith("do:"):
        return "digitalocean"
    return p or "vultr"


def default_os_id(plan: dict, os_options: list[dict]) -> int | None:
    """Ubuntu 24.04 for the plan's provider: 2284 on Vultr (upstream's default)."""
    provider = provider_of(plan)
    if provider == "vultr":
        return 2284
    for o in os_options:
        if str(o.get("provider") or "").lower() == provider and "24.04" in str(o.get("name") or ""):
            return int(o["id"])
    return None


# -- offers -----------------------------------------------------------------------------------


def offer_decimals(offer: Offer) -> int:
    if offer.key is None:
        raise PolicyError(f"Unknown payment network {offer.network!r}.", code="unknown_network")
    return NETWORKS[offer.key].decimals


def cap_atomic(cap_usd: Decimal, decimals: int) -> int:
    return int((cap_usd * (Decimal(10) ** decimals)).to_integral_value(rounding=ROUND_FLOOR))


@dataclass
class Limits:
    cap_usd: Decimal
    cap_source: str  # "--max-usd" | "COMPUTE_MAX_SPEND_USD" | "default"
    expected_micros: int | None  # catalog price (or the top-up amount asked); None → no price check
    expected_what: str = "the catalog price"


def check_offer(offer: Offer, limits: Limits) -> None:
    """Raise PolicyError (exit 3) unless this offer may be signed."""
    if offer.scheme != "exact":
        raise PolicyError(
            f"Offer uses scheme {offer.scheme!r}; only 'exact' is paid (it cannot take more than quoted).",
            code="unsupported_scheme",
            details={"scheme": offer.scheme, "network": offer.network},
        )
    if offer.key is None or NETWORKS[offer.key].family not in ("evm", "svm"):
        raise PolicyError(f"Unknown payment network {offer.network!r}.", code="unknown_network", details={"network": offer.network})
    net = NETWORKS[offer.key]
    if not is_canonical_asset(offer.key, offer.asset):
        raise PolicyError(
            f"The offer on {offer.key} asks for asset {offer.asset}, which is not {net.symbol} ({net.asset}).",
            code="unknown_asset",
            details={"network": offer.key, "asset": offer.asset, "expected": net.asset},
        )
    if not is_address(offer.key, offer.pay_to):
        raise PolicyError(
            f"The offer on {offer.key} names a payee that is not a {net.family.upper()} address ({offer.pay_to[:80]!r}). Nothing was signed.",
            code="bad_payee",
            details={"network": offer.key, "payee": offer.pay_to[:200]},
        )
    if offer.amount < net.min_payment_atomic:
        minimum_usd = plain(atomic_to_usd(net.min_payment_atomic, net.decimals))
        amount_usd = plain(atomic_to_usd(offer.amount, net.decimals))
        raise PolicyError(
            f"Direct payments on {offer.key} must be at least {minimum_usd} USD; this one is {amount_usd} USD. Nothing was signed.",
            code="below_network_minimum",
            details={"network": offer.key, "amount_usd": amount_usd, "amount_atomic": str(offer.amount),
                     "minimum_usd": minimum_usd, "minimum_atomic": str(net.min_payment_atomic)},
            hint=net.min_payment_hint or f"Pay {minimum_usd} USD or more on {offer.key}, or pick another network with --network.",
        )
    _check_amount(offer, net, limits)


def _check_amount(offer: Offer, net, limits: Limits) -> None:
    """Spend cap and catalog price, in the offer's atomic units (shared by x402 and MPP)."""
    amount_usd = atomic_to_usd(offer.amount, net.decimals)
    if offer.amount > cap_atomic(limits.cap_usd, net.decimals):
        raise PolicyError(
            f"The payment of {plain(amount_usd)} USD is above the spend cap of {limits.cap_usd} USD ({limits.cap_source}). Nothing was signed.",
            code="spend_cap_exceeded",
            details={"amount_usd": plain(amount_usd), "amount_atomic": str(offer.amount), "cap_usd": str(limits.cap_usd), "cap_source": limits.cap_source},
            hint=f"Tell the human the amount ({plain(amount_usd)} USD); the cap is theirs: only they may re-run with --max-usd {plain(amount_usd)} (or set COMPUTE_MAX_SPEND_USD). Never raise it yourself.",
        )
    if limits.expected_micros is not None:
        allowed = micros_to_atomic(limits.expected_micros + PRICE_TOLERANCE_MICROS, net.decimals)
        if offer.amount > allowed:
            expected_usd = Decimal(limits.expected_micros).scaleb(-6)
            raise PolicyError(
                f"The server asks {plain(amount_usd)} USD but {limits.expected_what} is {plain(expected_usd)} USD. Nothing was signed.",
                code="price_mismatch",
                details={
                    "amount_atomic": str(offer.amount),
                    "amount_usd": plain(amount_usd),
                    "expected_usd": plain(expected_usd),
                    "allowed_atomic": str(allowed),
                },
            )


def check_mpp_offer(m: MppOffer, limits: Limits, *, now: datetime | None = None) -> None:
    """The same rules for an MPP challenge: tempo/charge on Tempo mainnet, the canonical USDC.e,
    within the cap and the catalog price. Raise PolicyError (exit 3) unless it may be signed."""
    net = NETWORKS["tempo"]
    if (m.method, m.intent) != ("tempo", "charge"):
        raise PolicyError(
            f"MPP challenge {m.method}/{m.intent} is not a Tempo charge; only tempo/charge is paid.",
            code="unsupported_scheme",
            details={"method": m.method, "intent": m.intent},
        )
    if m.chain_id != net.chain_id:
        raise PolicyError(
            f"The MPP charge is on chain {m.chain_id}, not Tempo mainnet ({net.chain_id}).",
            code="unknown_network",
            details={"chain_id": m.chain_id, "expected": net.chain_id},
        )
    if not is_canonical_asset("tempo", m.currency):
        raise PolicyError(
            f"The MPP charge asks for currency {m.currency}, which is not {net.symbol} ({net.asset}).",
            code="unknown_asset",
            details={"network": "tempo", "asset": m.currency, "expected": net.asset},
        )
    if not is_address("tempo", m.recipient):
        raise PolicyError(f"The MPP charge names no valid recipient ({m.recipient!r}).", code="bad_payee")
    details = m.request.get("methodDetails") if isinstance(m.request.get("methodDetails"), dict) else {}
    if details.get("splits") or details.get("feePayer"):
        raise PolicyError("The MPP charge asks for split payments or fee sponsorship, which this client does not sign.", code="unsupported_scheme")
    _check_expiry(m, now)
    _check_amount(mpp_pin_view(m), net, limits)


STRIPE_CURRENCY_DECIMALS = {"usd": 2}  # the currencies a card charge is paid in: amounts are minor units (cents)


@dataclass(frozen=True)
class _MinorUnits:
    decimals: int


def check_stripe_offer(m: MppOffer, limits: Limits, *, now: datetime | None = None) -> None:
    """An MPP stripe/charge: a USD amount in cents, a seller network profile, card payments,
    within the cap and the catalog price. Raise PolicyError (exit 3) unless it may be paid."""
    if (m.method, m.intent) != ("stripe", "charge"):
        raise PolicyError(f"MPP challenge {m.method}/{m.intent} is not a Stripe charge.", code="unsupported_scheme",
                          details={"method": m.method, "intent": m.intent})
    if m.currency not in STRIPE_CURRENCY_DECIMALS:
        raise PolicyError(
            f"The card charge is in {m.currency[:16]!r}; only US dollars (usd) are paid, so the spend cap means what it says.",
            code="unknown_asset",
            details={"network": "stripe", "currency": m.currency[:16], "expected": "usd"},
        )
    details = m.request.get("methodDetails") if isinstance(m.request.get("methodDetails"), dict) else {}
    net_id, types = details.get("networkId"), details.get("paymentMethodTypes")
    if not isinstance(net_id, str) or not re.fullmatch(r"[A-Za-z0-9_]{1,128}", net_id):
        raise PolicyError("The card charge names no valid Stripe network profile (methodDetails.networkId).", code="bad_payee")
    if not isinstance(types, list) or "card" not in types:
        raise PolicyError("The card charge does not accept cards (methodDetails.paymentMethodTypes).", code="unsupported_scheme",
                          details={"payment_method_types": types if isinstance(types, list) else None})
    if m.amount < 1:
        raise PolicyError("The card charge asks for nothing (amount 0).", code="bad_challenge")
    _check_expiry(m, now)
    _check_amount(stripe_pin_view(m), _MinorUnits(STRIPE_CURRENCY_DECIMALS[m.currency]), limits)


def stripe_pin_view(m: MppOffer) -> Offer:
    """A card charge as the payee pins see it: network "stripe", payee = the seller's network profile."""
    details = m.request.get("methodDetails") if isinstance(m.request.get("methodDetails"), dict) else {}
    net_id = details.get("networkId") if isinstance(details.get("networkId"), str) else ""
    return Offer(version=0, scheme="exact", network="stripe", key="stripe", amount=m.amount, asset=m.currency,
                 pay_to=net_id, max_timeout_seconds=None, extra={}, raw={})


def _check_expiry(m: MppOffer, now: datetime | None) -> None:
    if m.expires:
        try:
            exp = datetime.fromisoformat(m.expires.replace("Z", "+00:00"))
        except ValueError:
            exp = None
        if exp is not None and exp.tzinfo is not None and exp <= (now or datetime.now(timezone.utc)):
            raise PolicyError(f"The MPP challenge expired at {m.expires}. Nothing was signed.", code="challenge_expired", hint="Run the command again for a fresh challenge.")


def mpp_pin_view(m: MppOffer) -> Offer:
    """An MPP charge as the payee pins see it: network "tempo", payee = recipient."""
    return Offer(version=0, scheme="exact", network="tempo", key="tempo", amount=m.amount, asset=m.currency,
                 pay_to=m.recipient, max_timeout_seconds=None, extra={}, raw={})


# -- payee pins -------------------------------------------------------------------------------


class PayeePins:
    """The payee per network, pinned on first payment, in the ledger (one set of pins for every
    agent sharing it: a payee pinned by one is enforced for all).

    A changed payee is how a hijacked endpoint or a mistyped base URL would take the
    money, so it is refused until the user accepts it explicitly."""

    def __init__(self, target: Any) -> None:
        self.ledger = ledger_of(target)  # Settings, or a state folder (its SQLite ledger)
        self.path = self.ledger.where

    def load(self) -> dict:
        return self.ledger.pins()

    @staticmethod
    def _same(network: str, a: str, b: str) -> bool:
        if NETWORKS.get(network) and NETWORKS[network].family in ("evm", "tempo"):
            return a.lower() == b.lower()  # EVM addresses are case-insensitive (checksum casing)
        return a == b

    def check(self, offer: Offer, *, accept_change: bool = False) -> dict:
        """{"status": "new" | "pinned" | "changed-accepted", "pinned": <old or None>}; raises on a change."""
        conflict = self.ledger.pin_conflict(offer.key or offer.network)
        if conflict is not None:
            return self._conflict(offer, conflict, accept_change)
        pins = self.load()
        rec = pins.get(offer.key or offer.network)
        if not rec:
            return {"status": "new", "pinned": None}
        old = rec.get("pay_to") if isinstance(rec, dict) else str(rec)
        if self._same(offer.key or "", old, offer.pay_to):
            return {"status": "pinned", "pinned": old}
        if accept_change:
            return {"status": "changed-accepted", "pinned": old}
        raise PolicyError(
            f"The payee for {offer.key} changed from {old} to {offer.pay_to}. Nothing was signed.",
            code="payee_changed",
            details={"network": offer.key, "pinned": old, "offered": offer.pay_to, "pinned_at": rec.get("pinned_at") if isinstance(rec, dict) else None,
                     "ledger": str(self.path)},
            hint="Tell the human: only they may accept a new payee, after checking the service's announcements (then they run the same command with --accept-payee-change). Never accept it yourself.",
        )

    def _conflict(self, offer: Offer, conflict: dict, accept_change: bool) -> dict:
        """This state folder paid one payee on this network before it joined the shared ledger, and
        the ledger (the fleet) pins another: one of them is not the service's. Refused, whichever
        the offer names, until a human decides (never silently one or the other)."""
        lo, fl = (r if isinstance(r, dict) else {"pay_to": r} for r in (conflict.get("local"), conflict.get("ledger")))
        local, fleet = lo.get("pay_to"), fl.get("pay_to")
        if accept_change:  # the human checked and accepts the offered payee: pin() settles it for this folder
            return {"status": "changed-accepted", "pinned": fleet}
        key = offer.key or offer.network
        raise PolicyError(
            f"This state folder's own ledger pinned {local} as the payee for {key}, but the shared ledger ({self.ledger.where}) pins "
            f"{fleet}; this payment offers {offer.pay_to}. One of them is not the service's payee. Nothing was signed.",
            code="payee_conflict",
            details={"network": key, "local_pinned": local, "fleet_pinned": fleet, "offered": offer.pay_to,
                     "local_pinned_at": lo.get("pinned_at"), "fleet_pinned_at": fl.get("pinned_at"),
                     "local_base_url": lo.get("base_url"), "fleet_base_url": fl.get("base_url"),
                     "source": conflict.get("source"), "ledger": str(self.path)},
            hint="Tell the human: they check which address is the service's payee on this network (its announcements; the base "
                 "URL each pin was made with: a folder once pointed at another deployment disagrees this way), and only they may "
                 "accept the offered one by running the same command with --accept-payee-change. Never accept it yourself.",
        )

    def pin(self, offer: Offer, base_url: str) -> None:
        key = offer.key or offer.network
        rec = {"pay_to": offer.pay_to, "pinned_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "base_url": base_url}
        if self.ledger.pin_conflict(key) is not None:  # only reached with the human's --accept-payee-change
            self.ledger.resolve_pin(key, rec)
            return
        old = self.load().get(key)
        if isinstance(old, dict) and self._same(key, old.get("pay_to", ""), offer.pay_to):
            return
        self.ledger.set_pin(key, rec)
