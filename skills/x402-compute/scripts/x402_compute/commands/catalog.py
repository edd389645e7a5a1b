"""The catalog commands: browse_plans.py, browse_regions.py (public, no credentials)."""

from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation

from .. import cli, plans
from ..config import parse_usd
from ..errors import UsageError
from ..payments.policy import unknown_plan
from ..validate import close_matches, did_you_mean_hint, plan_id, region_id

# -- argument types: checked by argparse before any request; a bad value names the flag and the form

_MAX_SPEC = Decimal(10**7)  # far above any machine; keeps the comparison arithmetic sane


def gigabytes(text: str) -> Decimal:
    try:
        d = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        d = None
    if d is None or not d.is_finite() or d < 0 or d > _MAX_SPEC:
        raise argparse.ArgumentTypeError(f"takes a number of GB, e.g. 2 or 0.5 (got {text!r})")
    return d


def count(text: str) -> int:
    if not re.fullmatch(r"\s*\d{1,6}\s*", text or ""):
        raise argparse.ArgumentTypeError(f"takes a whole number, e.g. 2 (got {text!r})")
    return int(text)


def country(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", (text or "").strip()):
        raise argparse.ArgumentTypeError(f"takes a two-letter ISO 3166 country code, e.g. US or DE (got {text!r})")
    return text.strip().upper()


def continent(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z _-]{1,39}", (text or "").strip()):
        raise argparse.ArgumentTypeError(f"takes a continent name as browse_regions.py shows it, e.g. Europe or 'North America' (got {text!r})")
    return text.strip()


# JSON Schemas for the MCP server's tool inputs (mcp_server._property): what each parser takes.
gigabytes.json_schema = {"type": "number", "minimum": 0, "maximum": int(_MAX_SPEC)}
count.json_schema = {"type": "integer", "minimum": 0, "maximum": 999_999}
country.json_schema = {"type": "string", "pattern": "^[A-Za-z]{2}$"}
continent.json_schema = {"type": "string", "pattern": "^[A-Za-z][A-Za-z _-]{1,39}$"}


def add_place_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--country", type=country, metavar="CC", help="only regions in this country (two-letter ISO code, e.g. US, DE)")
    p.add_argument("--continent", type=continent, metavar="NAME", help="only regions on this continent (e.g. Europe, 'North America'; case and spaces ignored)")


# -- browse_plans -------------------------------------------------------------------------------

PLAN_COLUMNS = [("id", "PLAN"), ("provider", "PROVIDER"), ("vcpu", "VCPU"), ("ram_mb", "RAM MB"), ("disk_gb", "DISK GB"),
                ("gpu_summary", "GPU"), ("hourly_usd", "$/HOUR"), ("daily_usd", "$/DAY"), ("monthly_usd", "$/MONTH")]


def browse_plans(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    region = region_id(a.region) if a.region else None
    max_hourly = parse_usd(a.max_hourly, "--max-hourly") if a.max_hourly is not None else None
    if a.limit is not None and a.limit < 1:
        raise UsageError("--limit must be at least 1.")
    client = ctx.client
    places = None
    if a.country or a.continent:
        places = {r.get("id") for r in plans.regions_in(client.regions(), country=a.country, continent=a.continent)}
    catalog = client.plans(a.type) if a.type else client.all_plans()
    if region:
        _known_region(region, client.regions(), catalog)
    if a.gpu_type:
        _known_gpu_type(a.gpu_type, catalog)
    chosen = plans.select(
        catalog,
        provider_name=plans.PROVIDER_ALIASES.get(a.provider or ""),
        region=region,
        regions=places,
        gpu=a.gpu,
        gpu_type=a.gpu_type,
        whole_gpu=a.whole_gpu,
        min_gpu_vram_gb=a.min_gpu_vram,
        max_hourly=max_hourly,
        min_ram_gb=a.min_ram,
        min_vcpu=a.min_vcpu,
        min_disk_gb=a.min_disk,
        sort=a.sort,
    )
    rows = []
    for x in chosen[: a.limit]:
        r = plans.row(x)
        if places is not None or region:
            # Where this plan can go among the places asked for: the region ids provision.py takes.
            r["matching_locations"] = [loc for loc in r["locations"] if (places is None or loc in places) and (not region or loc == region)]
        rows.append(r)
    return cli.Output({"count": len(rows), "matched": len(chosen), "plans": rows}, cli.table(rows, PLAN_COLUMNS))


def _known_region(region: str, regions: list, catalog: list) -> None:
    """A --region no region record or plan names is a typo, not "nothing there": exit 2 with the
    close ids (an empty list of plans would read as "no plan fits")."""
    known = {r.get("id") for r in regions if isinstance(r, dict)} | plans.locations_of(catalog)
    if region not in known:
        near = close_matches(region, known)
        raise UsageError(f"No region has the id {region!r}.", code="unknown_region", details={"did_you_mean": near},
                         hint=did_you_mean_hint(near, "See browse_regions.py for region ids (--country or --continent filter by place)."))


def _known_gpu_type(text: str, catalog: list) -> None:
    """A --gpu-type that no plan's gpu_type contains: exit 2 listing the GPU types there are."""
    types = sorted({str(p.get("gpu_type")) for p in catalog if isinstance(p, dict) and p.get("gpu_type")})
    if not any(text.lower() in t.lower() for t in types):
        raise UsageError(f"No plan has a GPU type containing {text!r}.", code="unknown_gpu_type", details={"known_gpu_types": types},
                         hint=f"--gpu-type takes part of one of: {', '.join(types)}." if types else "The catalog lists no GPU plans.")


# -- browse_regions ------------------------------------------------------------------------------

def browse_regions(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    plan = plan_id(a.plan) if a.plan else None
    client = ctx.client
    regions = [r for r in client.regions() if isinstance(r, dict)]
    if a.country or a.continent:
        regions = plans.regions_in(regions, country=a.country, continent=a.continent)
    if a.provider or plan:
        catalog = [plans.find(client, plan)] if plan else client.all_plans()
        if plan and catalog[0] is None:
            raise unknown_plan(plan, [p.get("id") for p in client.all_plans() if isinstance(p, dict)])
        allowed = plans.locations_of(catalog, plans.PROVIDER_ALIASES.get(a.provider or ""))
        regions = [r for r in regions if r.get("id") in allowed]
    rows = [plans.region_row(r) for r in regions]
    text = cli.table(rows, [("id", "REGION"), ("city", "CITY"), ("country", "COUNTRY"), ("continent", "CONTINENT"), ("provider", "PROVIDER")])
    return cli.Output({"count": len(rows), "regions": rows}, text)


# -- browse_os ---------------------------------------------------------------------------

# DigitalOcean image ids are 9-digit numbers, Vultr's a few thousand: used only
# when the API's record carries no provider field.
_DO_ID_FLOOR = 1_000_000


def _os_provider(o: dict) -> str | None:
    if isinstance(o.get("provider"), str) and o["provider"]:
        return o["provider"].lower()
    oid = o.get("id")
    return None if not isinstance(oid, int) else ("digitalocean" if oid >= _DO_ID_FLOOR else "vultr")


def browse_os(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    want = plans.PROVIDER_ALIASES.get(a.provider or "")
    rows = [
        {"id": o.get("id"), "name": o.get("name"), "family": o.get("family"), "arch": o.get("arch"), "provider": _os_provider(o)}
        for o in ctx.client.os_options()
        if isinstance(o, dict)
    ]
    if want:
        rows = [r for r in rows if r["provider"] == want]
    if a.family:
        rows = [r for r in rows if a.family.lower() in str(r["family"] or "").lower()]
    text = cli.table(rows, [("id", "OS ID"), ("name", "NAME"), ("family", "FAMILY"), ("arch", "ARCH"), ("provider", "PROVIDER")])
    return cli.Output({"count": len(rows), "os_options": rows}, text)


# -- browse_os.py: its parser (the script and the MCP server both build it here) ------

BROWSE_OS_HELP = """Browse operating system images; the os_id goes to provision.py --os-id.

Images differ by provider: Vultr ids are small numbers (2284 = Ubuntu 24.04),
DigitalOcean ids are large provider image ids."""


def browse_os_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "browse_os.py",
        BROWSE_OS_HELP,
        examples="python scripts/browse_os.py\npython scripts/browse_os.py --provider vultr --family ubuntu",
    )
    p.add_argument("--provider", choices=sorted(plans.PROVIDER_ALIASES), help="vultr or digitalocean (do)")
    p.add_argument("--family", help="only images of this family (e.g. ubuntu, debian)")
    return p


# -- browse_plans.py: its parser (the script and the MCP server both build it here) ------

BROWSE_PLANS_HELP = """Browse machine plans (VPS, dedicated CPU, GPU) with hourly, daily and monthly prices.

All plan types are listed by default (the API's untyped listing leaves out
dedicated and GPU plans), cheapest first. Prices are the API's own fields, in USD.
GPU plans name their GPU: model, count, VRAM and the share of one physical GPU
(gpu_fraction; Vultr sells slices such as 1/20 of an A100). Every filter value is
checked before any request.
"""


def browse_plans_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "browse_plans.py",
        BROWSE_PLANS_HELP,
        examples=(
            "python scripts/browse_plans.py --min-ram 2 --limit 5\n"
            "python scripts/browse_plans.py --country DE --min-vcpu 2 --sort ram\n"
            "python scripts/browse_plans.py --gpu-type a100 --whole-gpu\n"
            "python scripts/browse_plans.py --min-gpu-vram 40 --continent Europe\n"
            "python scripts/browse_plans.py --provider digitalocean --max-hourly 0.05"
        ),
    )
    p.add_argument("--type", choices=plans.PLAN_TYPES, help="vps (cloud), vhp (high performance), vdc (dedicated CPU), vcg (GPU)")
    p.add_argument("--provider", choices=sorted(plans.PROVIDER_ALIASES), help="vultr or digitalocean (do)")
    p.add_argument("--region", help="only plans offered in this region id (see browse_regions.py)")
    add_place_filters(p)
    p.add_argument("--min-ram", type=gigabytes, metavar="GB", help="only plans with at least this much RAM (GB, 1 GB = 1024 MB)")
    p.add_argument("--min-vcpu", type=count, metavar="N", help="only plans with at least N vCPUs")
    p.add_argument("--min-disk", type=gigabytes, metavar="GB", help="only plans with at least this much disk (GB)")
    p.add_argument("--gpu", action="store_true", help="only GPU plans (whole GPUs and slices)")
    p.add_argument("--gpu-type", metavar="TEXT", help="only GPU plans whose gpu_type contains TEXT (e.g. a100, l40s)")
    p.add_argument("--whole-gpu", action="store_true", help="only plans with one or more whole GPUs (gpu_fraction 1), no slices")
    p.add_argument("--min-gpu-vram", type=gigabytes, metavar="GB", help="only GPU plans with at least this much VRAM in total (GB)")
    p.add_argument("--max-hourly", metavar="USD", help="only plans at or below this hourly price")
    p.add_argument("--sort", choices=plans.SORTS, default="price", help="ascending order: price (default), ram or vcpu (ties: cheaper first)")
    p.add_argument("--limit", type=int, metavar="N", help="show at most N plans (the first N in --sort order)")
    return p


# -- browse_regions.py: its parser (the script and the MCP server both build it here) ------

BROWSE_REGIONS_HELP = """Browse regions (data centres) with their city, country and continent. With
--provider or --plan, only the regions where that provider's plans (or that plan)
can be placed, from the plans' locations."""


def browse_regions_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "browse_regions.py",
        BROWSE_REGIONS_HELP,
        examples=(
            "python scripts/browse_regions.py\n"
            "python scripts/browse_regions.py --continent Europe\n"
            "python scripts/browse_regions.py --provider digitalocean --country US\n"
            "python scripts/browse_regions.py --plan vcg-a100-1c-2g-6gb"
        ),
    )
    p.add_argument("--provider", choices=sorted(plans.PROVIDER_ALIASES), help="vultr or digitalocean (do)")
    p.add_argument("--plan", help="only regions where this plan is offered")
    add_place_filters(p)
    return p
