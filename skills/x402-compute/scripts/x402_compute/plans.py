"""Catalog views: prices and specs as the API publishes them, filters, and the
resize rules a client can check before calling the API (compute-api.md §2, §5).

Specs come only from the API's fields, never from parsing plan ids: the
upstream docs show ids whose names do not match their specs. Any field may be
missing, so every accessor returns ``None`` rather than raising.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from .money import to_decimal, usd

PROVIDERS = ("vultr", "digitalocean")
# The provider CLIs users know say "do"; accept it as a spelling of digitalocean.
PROVIDER_ALIASES = {"do": "digitalocean", "digitalocean": "digitalocean", "vultr": "vultr"}


def provider(plan: dict) -> str | None:
    """The plan's provider: the API's field; ``do:`` ids are DigitalOcean by
    the API's own rule (compute-api.md §3), which is routing, not a spec."""
    p = plan.get("provider")
    if isinstance(p, str) and p:
        return p.lower()
    pid = str(plan.get("id") or "")
    return "digitalocean" if pid.startswith("do:") else ("vultr" if pid else None)


def hourly(plan: dict) -> Decimal | None:
    return to_decimal(plan.get("our_hourly"))


def daily(plan: dict) -> Decimal | None:
    return to_decimal(plan.get("our_daily"))


def monthly(plan: dict) -> Decimal | None:
    # The upstream display order: our_monthly, else monthly_cost, else vultr_monthly.
    for key in ("our_monthly", "monthly_cost", "vultr_monthly"):
        d = to_decimal(plan.get(key))
        if d is not None:
            return d
    return None


def _int(value: Any) -> int | None:
    d = to_decimal(value)
    return int(d) if d is not None else None


def is_gpu(plan: dict) -> bool:
    return bool(plan.get("gpu_type")) or str(plan.get("type") or "").lower() in ("gpu", "vcg")


def row(plan: dict) -> dict:
    """One plan as scripts show it: the API's own numbers, USD as strings."""
    ram = _int(plan.get("ram"))
    return {
        "id": plan.get("id"),
        "type": plan.get("type"),
        "provider": provider(plan),
        "vcpu": _int(plan.get("vcpu_count")),
        "ram_mb": ram,
        "disk_gb": _int(plan.get("disk")),
        "bandwidth_gb": _int(plan.get("bandwidth")),
        "gpu_type": plan.get("gpu_type"),
        "gpu_vram_gb": _int(plan.get("gpu_vram_gb")),
        "hourly_usd": usd(hourly(plan), 4),
        "daily_usd": usd(daily(plan), 2),
        "monthly_usd": usd(monthly(plan), 2),
        "locations": list(plan.get("locations") or []),
    }


def _sort_key(plan: dict) -> tuple:
    h = hourly(plan)
    return (h is None, h if h is not None else Decimal(0), str(plan.get("id") or ""))


def select(
    plans: Iterable[dict],
    *,
    provider_name: str | None = None,
    region: str | None = None,
    gpu: bool = False,
    gpu_type: str | None = None,
    max_hourly: Decimal | None = None,
) -> list[dict]:
    """Filter, then sort by hourly price (plans without a price last)."""
    out = []
    for p in plans:
        if not isinstance(p, dict):
            continue
        if provider_name and provider(p) != provider_name:
            continue
        if region and region not in (p.get("locations") or []):
            continue
        if (gpu or gpu_type) and not is_gpu(p):
            continue
        if gpu_type and gpu_type.lower() not in str(p.get("gpu_type") or "").lower():
            continue
        if max_hourly is not None:
            h = hourly(p)
            if h is None or h > max_hourly:
                continue
        out.append(p)
    return sorted(out, key=_sort_key)


# -- lookup ------------------------------------------------------------------------

def _likely_type(plan_id: str) -> str | None:
    # Only to choose which typed listing to ask first (one request instead of
    # four); the answer always comes from the API.
    for prefix, t in (("vc2-", "vps"), ("vhp-", "vhp"), ("vdc-", "vdc"), ("vcg-", "vcg"), ("do:", "vps")):
        if plan_id.startswith(prefix):
            return t
    return None


def find(client, plan_id: str) -> dict | None:
    """The catalog entry for ``plan_id``, or None when the API does not list it."""
    t = _likely_type(plan_id)
    if t:
        for p in client.plans(t):
            if isinstance(p, dict) and p.get("id") == plan_id:
                return p
    return client.plan(plan_id)


# -- resize rules ----------------------------------------------------------------------

SPEC_FIELDS = (("vcpu_count", "vcpu"), ("ram", "ram_mb"), ("disk", "disk_gb"))


def smaller_in(current: dict, target: dict) -> list[str]:
    """What the target has less of (price or a spec). Unknown fields are not compared."""
    out = []
    h0, h1 = hourly(current), hourly(target)
    if h0 is not None and h1 is not None and h1 < h0:
        out.append("hourly_usd")
    for key, name in SPEC_FIELDS:
        a, b = to_decimal(current.get(key)), to_decimal(target.get(key))
        if a is not None and b is not None and b < a:
            out.append(name)
    return out


def grows_disk(current: dict, target: dict) -> bool:
    a, b = to_decimal(current.get("disk")), to_decimal(target.get("disk"))
    return a is not None and b is not None and b > a


def upgrade_targets(current: dict, catalog: Iterable[dict], region: str | None) -> list[dict]:
    """Plans an instance on ``current`` may be resized to: same provider (and
    Vultr plan family), offered in its region, not smaller in price or any spec."""
    prov = provider(current)
    # Vultr upgrades stay within a plan family (Vultr's own upgrade list does);
    # compared only when both records carry a type.
    family = current.get("type") if prov == "vultr" else None
    out = [
        p
        for p in catalog
        if isinstance(p, dict)
        and p.get("id") != current.get("id")
        and provider(p) == prov
        and (not family or not p.get("type") or p.get("type") == family)
        and (region is None or region in (p.get("locations") or []))
        and not smaller_in(current, p)
    ]
    return sorted(out, key=_sort_key)


def prepaid_value_usd(hours_left: float | None, plan: dict | None) -> str | None:
    """What the unused prepaid time is worth at the plan's catalog rate (an
    estimate: the service's own rounding is unpublished)."""
    h = hourly(plan) if plan else None
    if h is None or hours_left is None:
        return None
    return usd(h * Decimal(str(hours_left)), 2)


def lookup_quietly(client, plan_id: str | None) -> dict | None:
    """``find`` for display-only figures: a catalog that cannot be read must not fail the
    command, but one that answers with absurd numbers (``bad_response``) does: a figure the
    user decides on (destroy's forfeited value) never silently goes missing."""
    from .errors import ComputeError

    if not plan_id:
        return None
    try:
        return find(client, plan_id)
    except ComputeError as e:
        if e.code == "bad_response":
            raise
        return None


def hourly_usd(plan: dict | None) -> str | None:
    return usd(hourly(plan), 4) if plan else None


def resize_preflight(current: dict | None, target: dict | None, catalog: list[dict], region: str | None, *, confirm_disk_resize: bool) -> dict:
    """Check the documented resize rules before calling the API; return what
    the change means. Raises ``PolicyError`` (exit 3) for a Vultr downgrade
    and for DigitalOcean disk growth without ``confirm_disk_resize``."""
    from .errors import PolicyError, UsageError

    if target is None:
        raise UsageError("The target plan is not in the catalog.", code="unknown_plan", hint="See browse_plans.py.")
    preview: dict[str, Any] = {"to": row(target), "from": row(current) if current else None}
    if current is None:  # unknown current plan: the server will judge
        return preview
    if current.get("id") == target.get("id"):
        raise UsageError(f"The instance is already on {target.get('id')}.", code="same_plan")
    prov = provider(current)
    targets = [p.get("id") for p in upgrade_targets(current, catalog, region)]
    if provider(target) != prov:
        raise PolicyError(f"Cannot resize across providers ({prov} → {provider(target)}).", code="provider_mismatch", details={"allowed_targets": targets})
    if region and region not in (target.get("locations") or []):
        raise PolicyError(f"{target.get('id')} is not offered in {region}.", code="region_unavailable", details={"allowed_targets": targets})
    less = smaller_in(current, target)
    if less and prov == "vultr":
        raise PolicyError(
            f"Vultr supports upgrades only: {target.get('id')} has less {', '.join(less)} than {current.get('id')}.",
            code="downgrade_not_supported",
            details={"smaller_in": less, "allowed_targets": targets},
            hint="Pick one of details.allowed_targets, or provision a new, smaller instance.",
        )
    preview["grows_disk"] = grows_disk(current, target)
    if preview["grows_disk"] and prov == "digitalocean" and not confirm_disk_resize:
        raise PolicyError(
            f"{target.get('id')} grows the disk from {current.get('disk')} to {target.get('disk')} GB. On DigitalOcean this is irreversible: the instance can never be resized back down.",
            code="disk_resize_confirmation_required",
            details={"from_disk_gb": _int(current.get("disk")), "to_disk_gb": _int(target.get("disk"))},
            hint="Re-run with --confirm-disk-resize if that is what you want, or pick a plan with the same disk.",
        )
    return preview
