"""Catalog views: prices and specs as the API publishes them, filters, and the
resize rules a client can check before calling the API (compute-api.md §2, §5).

Specs come only from the API's fields, never from parsing plan ids: the
upstream docs show ids whose names do not match their specs. Any field may be
missing, so every accessor returns ``None`` rather than raising.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable

from . import cmdline
from .errors import ComputeError, PolicyError, UsageError
from .gpus import describe
from .instances import iso, parse_time
from .money import price_usd_micros, to_decimal, usd
from .validate import close_matches, did_you_mean_hint

PROVIDERS = ("vultr", "digitalocean")
# The API's plan types (`GET /compute/plans?type=`): cloud VPS, high performance, dedicated CPU, GPU.
PLAN_TYPES = ("vps", "vhp", "vdc", "vcg")
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


HOURS_PER_DAY = 24
HOURS_PER_MONTH = 720


def hourly(plan: dict) -> Decimal | None:
    """The plan's hourly rate, the one every price shown or checked comes from: ``our_hourly``,
    else ``our_daily``/24, else ``our_monthly``/720 (positive figures only)."""
    for key, per in (("our_hourly", 1), ("our_daily", HOURS_PER_DAY), ("our_monthly", HOURS_PER_MONTH)):
        d = to_decimal(plan.get(key))
        if d is not None and d > 0:
            return d / per if per != 1 else d
    return None


def expected_micros(plan: dict, hours: int) -> int | None:
    """Catalog price of ``hours`` of ``plan`` in micro-USD (rounded up), or None if unpriced."""
    h = hourly(plan)
    return None if h is None else price_usd_micros(h, hours)


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


def gpu_fields(plan: dict | None) -> dict:
    """What a plan's GPU is: ``gpu_model``, ``gpu_count``, ``gpu_vram_gb``, ``gpu_fraction`` (share
    of one physical GPU; 1 for whole GPUs) and ``gpu_summary`` ("1/40 of an A100 (2 GB VRAM)"),
    each None when unknown or when the plan has no GPU. For plan listings and quotes alike."""
    plan = plan or {}
    if not is_gpu(plan):
        return describe(None, None)
    return describe(plan.get("gpu_type"), plan.get("gpu_vram_gb"))


def row(plan: dict) -> dict:
    """One plan as scripts show it: the API's own numbers, USD as strings, the GPU named."""
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
        **gpu_fields(plan),
        "hourly_usd": usd(hourly(plan), 4),
        "daily_usd": usd(daily(plan), 2),
        "monthly_usd": usd(monthly(plan), 2),
        "locations": list(plan.get("locations") or []),
    }


SORTS = ("price", "ram", "vcpu")
_SPEC_OF_SORT = {"ram": "ram", "vcpu": "vcpu_count"}


def _sort_key(plan: dict, by: str = "price") -> tuple:
    h = hourly(plan)
    price = (h is None, h if h is not None else Decimal(0))
    if by in _SPEC_OF_SORT:  # ascending, plans without the figure last, then the cheaper first
        spec = to_decimal(plan.get(_SPEC_OF_SORT[by]))
        return (spec is None, spec if spec is not None else Decimal(0), *price, str(plan.get("id") or ""))
    return (*price, str(plan.get("id") or ""))


def _at_least(plan: dict, key: str, minimum: Decimal | None, scale: int = 1) -> bool:
    """A plan without the figure never passes a minimum on it."""
    if minimum is None:
        return True
    have = to_decimal(plan.get(key))
    return have is not None and have >= minimum * scale


def select(
    plans: Iterable[dict],
    *,
    provider_name: str | None = None,
    region: str | None = None,
    regions: set[str] | None = None,
    gpu: bool = False,
    gpu_type: str | None = None,
    whole_gpu: bool = False,
    min_gpu_vram_gb: Decimal | None = None,
    max_hourly: Decimal | None = None,
    min_ram_gb: Decimal | None = None,
    min_vcpu: int | None = None,
    min_disk_gb: Decimal | None = None,
    sort: str = "price",
) -> list[dict]:
    """Filter, then sort ascending by hourly price (default), RAM or vCPUs; plans without the
    sort figure last. ``regions``: keep plans offered in at least one of these region ids."""
    gpu_only = gpu or bool(gpu_type) or whole_gpu or min_gpu_vram_gb is not None
    out = []
    for p in plans:
        if not isinstance(p, dict):
            continue
        if provider_name and provider(p) != provider_name:
            continue
        if region and region not in (p.get("locations") or []):
            continue
        if regions is not None and not regions.intersection(p.get("locations") or []):
            continue
        if gpu_only and not is_gpu(p):
            continue
        if gpu_type and gpu_type.lower() not in str(p.get("gpu_type") or "").lower():
            continue
        if whole_gpu and gpu_fields(p)["gpu_fraction"] != 1:
            continue
        if not _at_least(p, "gpu_vram_gb", min_gpu_vram_gb):
            continue
        if max_hourly is not None:
            h = hourly(p)
            if h is None or h > max_hourly:
                continue
        if not (_at_least(p, "ram", min_ram_gb, 1024) and _at_least(p, "vcpu_count", Decimal(min_vcpu) if min_vcpu is not None else None)
                and _at_least(p, "disk", min_disk_gb)):
            continue
        out.append(p)
    return sorted(out, key=lambda p: _sort_key(p, sort))


# -- regions -----------------------------------------------------------------------------

def _place_key(text: Any) -> str:
    # "North America", "north-america" and "NORTH_AMERICA" name the same continent.
    return "".join(ch for ch in str(text or "").lower() if ch.isalpha())


def regions_in(regions: Iterable[dict], *, country: str | None = None, continent: str | None = None) -> list[dict]:
    """The region records in ``country`` (ISO 3166 alpha-2) and/or ``continent``. A value that
    no region carries is a usage error listing the values that exist, so a spelling the API does
    not use ("Oceania" where it says "Australia") is never mistaken for "nothing there"."""
    rows = [r for r in regions if isinstance(r, dict)]
    for flag, field, want in (("--country", "country", country), ("--continent", "continent", continent)):
        if want is None:
            continue
        matched = [r for r in rows if _place_key(r.get(field)) == _place_key(want)]
        if not matched:
            known = sorted({str(r.get(field)) for r in regions if isinstance(r, dict) and r.get(field)})
            raise UsageError(
                f"No region is in {field} {want!r}.",
                code=f"unknown_{field}",
                details={"known_countries" if field == "country" else "known_continents": known},
                hint=f"{flag} takes one of: {', '.join(known)}." if known else "The API lists no regions.",
            )
        rows = matched
    return rows


def locations_of(catalog: Iterable[dict], provider_name: str | None = None) -> set[str]:
    """Every region id where the catalog's plans (of ``provider_name``) can be placed: the region
    records of the hosted API carry no provider, the plans' ``locations`` do."""
    return {loc for p in catalog if isinstance(p, dict) and (not provider_name or provider(p) == provider_name) for loc in (p.get("locations") or [])}


def region_row(r: dict) -> dict:
    return {"id": r.get("id"), "city": r.get("city"), "country": r.get("country"), "continent": r.get("continent"), "provider": r.get("provider")}


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


def forfeited(hours_left: float | None, plan: dict | None) -> dict:
    """What destroying an instance gives up: its prepaid hours, their value at the plan's rate."""
    return {"hours": hours_left, "usd": prepaid_value_usd(hours_left, plan), "hourly_usd": hourly_usd(plan)}


def resize_estimate(current: dict | None, target: dict | None, expires_at: Any, now: Any = None) -> dict:
    """The published resize credit rule (compute-api.md §5), computed locally: the unused prepaid
    dollars carry over and the expiry moves to where they run out at the new rate.

        remaining_hours_before = (expires_at - now) in hours
        remaining_credit       = remaining_hours_before × old hourly, rounded half-up to cents
        remaining_hours_after  = remaining_credit / new hourly
        new_expires_at         = now + remaining_hours_after

    The service's exact rounding is unpublished (the sandbox rounds the credit to cents), so
    these are estimates; None where a price or the expiry is unknown."""
    now = now or datetime.now(timezone.utc)
    out: dict[str, Any] = {"remaining_hours_before": None, "remaining_credit_usd": None, "remaining_hours_after": None, "new_expires_at": None}
    expires = parse_time(expires_at)
    h0, h1 = (hourly(current) if current else None), (hourly(target) if target else None)
    if expires is None:
        return out
    before = max(Decimal(0), Decimal(str((expires - now).total_seconds())) / 3600)
    out["remaining_hours_before"] = float(before.quantize(Decimal("0.01")))
    if h0 is None:
        return out
    credit = (before * h0).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    out["remaining_credit_usd"] = str(credit)
    if not h1:
        return out
    after = credit / h1
    out["remaining_hours_after"] = float(after.quantize(Decimal("0.01")))
    out["new_expires_at"] = iso(now + timedelta(seconds=float(after * 3600)))
    return out


def lookup_quietly(client, plan_id: str | None) -> dict | None:
    """``find`` for display-only figures: a catalog that cannot be read must not fail the
    command, but one that answers with absurd numbers (``bad_response``) does: a figure the
    user decides on (destroy's forfeited value) never silently goes missing."""
    if not plan_id:
        return None
    try:
        return find(client, plan_id)
    except ComputeError as e:
        if e.code == "bad_response":
            raise
        return None


def hourly_usd(plan: dict | None) -> str | None:
    """``hourly`` as the scripts print it (a USD string, 4 places), None without a plan or price."""
    return usd(hourly(plan), 4) if plan else None


def shrink_path(instance_id: str | None, target_id: str, region: str | None, hours_left: float | None) -> dict:
    """What to do instead of shrinking a machine in place (a Vultr downgrade, a DigitalOcean disk): quote the smaller plan as a new
    machine (the exact command), move what matters over SSH, destroy the old one."""
    hours = max(1, math.ceil(hours_left)) if isinstance(hours_left, (int, float)) and hours_left > 0 else 24
    old = instance_id or "<instance id>"
    return {
        "in_place": False,
        "steps": [
            {"step": "quote_new_machine",
             "command": cmdline.command("provision.py", target_id, region or "<region>", "--hours", str(hours), "--ssh-key", "auto", "--quote"),
             "note": "quotes the smaller plan as a new machine in the same region for the hours the old one has left; pay it like any provision"},
            {"step": "move_data", "command": cmdline.command("ssh_exec.py", old) + " -- tar -C / -czf - <paths>",
             "note": "copy what matters off the old machine (ssh_exec.py on each; e.g. stream a tar of the paths you need into the new machine)"},
            {"step": "destroy_old", "command": cmdline.command("destroy_instance.py", old),
             "note": "only once the new machine has what matters: destroying forfeits the old one's prepaid hours"},
        ],
    }


def resize_preflight(current: dict | None, target: dict | None, catalog: list[dict], region: str | None, *, confirm_disk_resize: bool,
                     target_id: str | None = None, instance_id: str | None = None,
                     hours_left: float | None = None) -> dict:
    """Check the documented resize rules before calling the API; return what the change means,
    with ``checks``: the rules checked and passed, in order. Raises ``UsageError`` (exit 2) for an
    unknown or identical plan and ``PolicyError`` (exit 3) for another provider, a region the plan
    is not offered in, a Vultr downgrade, a smaller DigitalOcean disk and DigitalOcean disk growth without
    ``confirm_disk_resize``."""
    if target is None:
        near = close_matches(target_id or "", [p.get("id") for p in catalog if isinstance(p, dict)])
        raise UsageError(f"The target plan {target_id!r} is not in the catalog." if target_id else "The target plan is not in the catalog.",
                         code="unknown_plan", details={"did_you_mean": near}, hint=did_you_mean_hint(near, "See browse_plans.py."))
    checks = ["target_plan_in_catalog"]
    preview: dict[str, Any] = {"to": row(target), "from": row(current) if current else None, "checks": checks}
    if current is None:  # unknown current plan: the server will judge
        return preview
    if current.get("id") == target.get("id"):
        raise UsageError(f"The instance is already on {target.get('id')}.", code="same_plan")
    checks.append("different_plan")
    prov = provider(current)
    targets = [p.get("id") for p in upgrade_targets(current, catalog, region)]
    if provider(target) != prov:
        raise PolicyError(f"Cannot resize across providers ({prov} → {provider(target)}).", code="provider_mismatch", details={"upgrade_targets": targets})
    checks.append("same_provider")
    if region and region not in (target.get("locations") or []):
        raise PolicyError(f"{target.get('id')} is not offered in {region}.", code="region_unavailable", details={"upgrade_targets": targets})
    if region:
        checks.append("offered_in_region")
    less = smaller_in(current, target)
    if less and prov == "vultr":
        path = shrink_path(instance_id, str(target.get("id")), region, hours_left)
        raise PolicyError(
            f"A Vultr machine cannot shrink in place: {target.get('id')} has less {', '.join(less)} than {current.get('id')}, "
            "and Vultr resizes only upwards. To run on the smaller plan, move to a new machine.",
            code="downgrade_not_supported",
            details={"smaller_in": less, "upgrade_targets": targets, "shrink_path": path},
            hint=f"Quote the smaller plan as a new machine ({path['steps'][0]['command']}), move what matters with ssh_exec.py, "
                 "then destroy the old one (details.shrink_path). details.upgrade_targets lists the plans it can grow to in place.",
        )
    if prov == "vultr":
        checks.append("vultr_upgrade_only")
    if prov == "digitalocean" and "disk_gb" in less:
        # DigitalOcean resizes CPU and RAM both ways but never shrinks a disk: the API's 400 says
        # only that, so refuse here with the way to a smaller machine.
        path = shrink_path(instance_id, str(target.get("id")), region, hours_left)
        raise PolicyError(
            f"A DigitalOcean disk cannot shrink: {target.get('id')} has a {target.get('disk')} GB disk, {current.get('id')} "
            f"{current.get('disk')} GB. To run on the smaller plan, move to a new machine.",
            code="downgrade_not_supported",
            details={"smaller_in": less, "from_disk_gb": _int(current.get("disk")), "to_disk_gb": _int(target.get("disk")),
                     "upgrade_targets": targets, "shrink_path": path},
            hint=f"Quote the smaller plan as a new machine ({path['steps'][0]['command']}), move what matters with ssh_exec.py, "
                 "then destroy the old one (details.shrink_path); or pick a plan with the same disk "
                 f"({current.get('disk')} GB) to change only CPU and RAM in place.",
        )
    preview["grows_disk"] = grows_disk(current, target)
    if preview["grows_disk"] and prov == "digitalocean" and not confirm_disk_resize:
        raise PolicyError(
            f"{target.get('id')} grows the disk from {current.get('disk')} to {target.get('disk')} GB. On DigitalOcean this is irreversible: the instance can never be resized back down.",
            code="disk_resize_confirmation_required",
            details={"from_disk_gb": _int(current.get("disk")), "to_disk_gb": _int(target.get("disk"))},
            hint="Tell the human: the disk grows for good, so only they may re-run with --confirm-disk-resize; or pick a plan with the same disk.",
        )
    if prov == "digitalocean":
        checks.append("disk_growth_confirmed" if preview["grows_disk"] else "disk_not_grown")
    return preview
