"""The sandbox's provider catalog: plans, regions and OS images (compute-api.md §2).

Prices are kept as decimal *strings* and all price arithmetic uses Decimal, so a quote never picks
up binary floating-point error; they leave the API as JSON numbers, like production.

Price rule (documented, since production's rounding is unpublished — compute-api.md §9):
    amount_usd_micros = ceil(our_hourly × hours × 10^6)
computed with Decimal from the catalog string; the facilitator scales micro-USD to the token's
decimals (×10^12 on 18-decimal MegaUSD). Ceil, because a rate of $0.0104/h for 24 h is an exact
$0.2496 and nothing is rounded; when a future rate has more than six decimals the service must not
undercharge by a fraction of a micro-dollar.
"""
from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Optional

_HOURS_PER_DAY = Decimal(24)
_HOURS_PER_MONTH = Decimal(720)  # upstream's "month" (compute-api.md §9)

VULTR_LOCATIONS = ["ewr", "lax", "ord", "dfw", "sea", "atl", "fra", "ams", "lhr", "sgp", "nrt", "syd"]
DO_LOCATIONS = ["nyc3", "sfo3", "ams3", "fra1", "lon1", "sgp1"]

REGIONS = [
    # Vultr
    {"id": "ewr", "city": "New Jersey", "country": "US", "continent": "North America", "provider": "vultr"},
    {"id": "lax", "city": "Los Angeles", "country": "US", "continent": "North America", "provider": "vultr"},
    {"id": "ord", "city": "Chicago", "country": "US", "continent": "North America", "provider": "vultr"},
    {"id": "dfw", "city": "Dallas", "country": "US", "continent": "North America", "provider": "vultr"},
    {"id": "sea", "city": "Seattle", "country": "US", "continent": "North America", "provider": "vultr"},
    {"id": "atl", "city": "Atlanta", "country": "US", "continent": "North America", "provider": "vultr"},
    {"id": "fra", "city": "Frankfurt", "country": "DE", "continent": "Europe", "provider": "vultr"},
    {"id": "ams", "city": "Amsterdam", "country": "NL", "continent": "Europe", "provider": "vultr"},
    {"id": "lhr", "city": "London", "country": "GB", "continent": "Europe", "provider": "vultr"},
    {"id": "sgp", "city": "Singapore", "country": "SG", "continent": "Asia", "provider": "vultr"},
    {"id": "nrt", "city": "Tokyo", "country": "JP", "continent": "Asia", "provider": "vultr"},
    {"id": "syd", "city": "Sydney", "country": "AU", "continent": "Australia", "provider": "vultr"},
    # DigitalOcean
    {"id": "nyc3", "city": "New York", "country": "US", "continent": "North America", "provider": "digitalocean"},
    {"id": "sfo3", "city": "San Francisco", "country": "US", "continent": "North America", "provider": "digitalocean"},
    {"id": "ams3", "city": "Amsterdam", "country": "NL", "continent": "Europe", "provider": "digitalocean"},
    {"id": "fra1", "city": "Frankfurt", "country": "DE", "continent": "Europe", "provider": "digitalocean"},
    {"id": "lon1", "city": "London", "country": "GB", "continent": "Europe", "provider": "digitalocean"},
    {"id": "sgp1", "city": "Singapore", "country": "SG", "continent": "Asia", "provider": "digitalocean"},
]

OS_OPTIONS = [
    # Vultr: small numeric ids (2284 is upstream's default).
    {"id": 2284, "name": "Ubuntu 24.04 LTS x64", "arch": "x64", "family": "ubuntu", "provider": "vultr"},
    {"id": 1743, "name": "Ubuntu 22.04 LTS x64", "arch": "x64", "family": "ubuntu", "provider": "vultr"},
    {"id": 2136, "name": "Debian 12 x64 (bookworm)", "arch": "x64", "family": "debian", "provider": "vultr"},
    {"id": 1869, "name": "Rocky Linux 9 x64", "arch": "x64", "family": "rockylinux", "provider": "vultr"},
    {"id": 2076, "name": "Alpine Linux x64", "arch": "x64", "family": "alpine", "provider": "vultr"},
    # DigitalOcean: large provider image ids.
    {"id": 160232537, "name": "Ubuntu 24.04 (LTS) x64", "arch": "x64", "family": "ubuntu", "provider": "digitalocean"},
    {"id": 129211873, "name": "Ubuntu 22.04 (LTS) x64", "arch": "x64", "family": "ubuntu", "provider": "digitalocean"},
    {"id": 149862459, "name": "Debian 12 x64", "arch": "x64", "family": "debian", "provider": "digitalocean"},
]


def _plan(pid, ptype, provider, vcpu, ram_mb, disk_gb, bandwidth_gb, hourly, provider_monthly,
          locations, gpu_type=None, gpu_vram_gb=None, disk_count=1):
    return {
        "id": pid, "type": ptype, "provider": provider, "vcpu_count": vcpu, "ram": ram_mb,
        "disk": disk_gb, "disk_count": disk_count, "bandwidth": bandwidth_gb,
        "gpu_type": gpu_type, "gpu_vram_gb": gpu_vram_gb,
        "_hourly": hourly, "_provider_monthly": provider_monthly, "locations": list(locations),
    }


_US_EU = ["ewr", "lax", "ord", "fra", "ams"]
_GPU = ["ewr", "lax", "fra"]
_PLANS = [
    # Vultr cloud compute
    _plan("vc2-1c-1gb", "vps", "vultr", 1, 1024, 25, 1024, "0.0104", "5.00", VULTR_LOCATIONS),
    _plan("vc2-1c-2gb", "vps", "vultr", 1, 2048, 55, 2048, "0.0208", "10.00", VULTR_LOCATIONS),
    _plan("vc2-2c-2gb", "vps", "vultr", 2, 2048, 65, 3072, "0.0313", "15.00", VULTR_LOCATIONS),
    _plan("vc2-2c-4gb", "vps", "vultr", 2, 4096, 80, 3072, "0.0417", "20.00", VULTR_LOCATIONS),
    _plan("vc2-4c-8gb", "vps", "vultr", 4, 8192, 160, 4096, "0.0834", "40.00", VULTR_LOCATIONS),
    _plan("vc2-6c-16gb", "vps", "vultr", 6, 16384, 320, 5120, "0.1667", "80.00", VULTR_LOCATIONS),
    # Vultr high performance
    _plan("vhp-1c-1gb-amd", "vhp", "vultr", 1, 1024, 25, 2048, "0.0125", "6.00", VULTR_LOCATIONS),
    _plan("vhp-1c-2gb-amd", "vhp", "vultr", 1, 2048, 50, 3072, "0.0250", "12.00", VULTR_LOCATIONS),
    _plan("vhp-2c-4gb-amd", "vhp", "vultr", 2, 4096, 100, 4096, "0.0500", "24.00", VULTR_LOCATIONS),
    _plan("vhp-4c-8gb-amd", "vhp", "vultr", 4, 8192, 180, 5120, "0.1000", "48.00", VULTR_LOCATIONS),
    # Vultr dedicated CPU (optimized cloud, not bare metal)
    _plan("vdc-2c-8gb", "vdc", "vultr", 2, 8192, 50, 4096, "0.1250", "60.00", _US_EU),
    _plan("vdc-4c-16gb", "vdc", "vultr", 4, 16384, 100, 5120, "0.2500", "120.00", _US_EU),
    # Vultr cloud GPU
    _plan("vcg-a100-1c-2g-6gb", "vcg", "vultr", 1, 6144, 70, 1024, "0.1250", "60.00", _GPU,
          gpu_type="NVIDIA_A100", gpu_vram_gb=2),
    _plan("vcg-a100-3c-30g-20vram", "vcg", "vultr", 3, 30720, 350, 5120, "0.6250", "300.00", _GPU,
          gpu_type="NVIDIA_A100", gpu_vram_gb=20),
    _plan("vcg-l40s-16c-180g-48vram", "vcg", "vultr", 16, 184320, 1200, 10240, "2.2500", "1080.00", _GPU,
          gpu_type="NVIDIA_L40S", gpu_vram_gb=48),
    # DigitalOcean droplets
    _plan("do:s-1vcpu-1gb", "vps", "digitalocean", 1, 1024, 25, 1000, "0.0104", "6.00", DO_LOCATIONS),
    _plan("do:s-1vcpu-2gb", "vps", "digitalocean", 1, 2048, 50, 2000, "0.0208", "12.00", DO_LOCATIONS),
    _plan("do:s-2vcpu-2gb", "vps", "digitalocean", 2, 2048, 60, 3000, "0.0313", "18.00", DO_LOCATIONS),
    _plan("do:s-2vcpu-4gb", "vps", "digitalocean", 2, 4096, 80, 4000, "0.0417", "24.00", DO_LOCATIONS),
    # Same disk as s-2vcpu-4gb: a CPU/RAM-only (reversible) DigitalOcean resize target.
    _plan("do:c-2", "vps", "digitalocean", 2, 4096, 80, 4000, "0.0625", "42.00", DO_LOCATIONS),
    _plan("do:s-4vcpu-8gb", "vps", "digitalocean", 4, 8192, 160, 5000, "0.0833", "48.00", DO_LOCATIONS),
]
_BY_ID = {p["id"]: p for p in _PLANS}

PLAN_TYPES = ("vps", "vhp", "vdc", "vcg")
# Like production, the untyped listing leaves out dedicated and GPU plans (compute-api.md §2).
_UNTYPED_EXCLUDES = ("vdc", "vcg")


def _num(d: Decimal) -> float | int:
    """A Decimal as a JSON number (prices leave the API as numbers, like production)."""
    d = d.normalize()
    return int(d) if d == d.to_integral_value() else float(d)


def hourly(plan_id: str) -> Decimal:
    return Decimal(_BY_ID[plan_id]["_hourly"])


def public_plan(p: dict) -> dict:
    h = Decimal(p["_hourly"])
    monthly = (h * _HOURS_PER_MONTH).quantize(Decimal("0.01"))
    out = {k: v for k, v in p.items() if not k.startswith("_")}
    if out["gpu_type"] is None:
        del out["gpu_type"], out["gpu_vram_gb"]
    out.update(
        our_hourly=_num(h),
        our_daily=_num(h * _HOURS_PER_DAY),
        our_monthly=_num(monthly),
        monthly_cost=_num(monthly),
        vultr_monthly=_num(Decimal(p["_provider_monthly"])),
        locations=list(p["locations"]),
    )
    return out


def list_plans(ptype: Optional[str] = None) -> list[dict]:
    if ptype is None:
        chosen = [p for p in _PLANS if p["type"] not in _UNTYPED_EXCLUDES]
    else:
        chosen = [p for p in _PLANS if p["type"] == ptype]
    return [public_plan(p) for p in chosen]


def get_plan(plan_id) -> Optional[dict]:
    return _BY_ID.get(plan_id) if isinstance(plan_id, str) else None


def region(region_id) -> Optional[dict]:
    if not isinstance(region_id, str):
        return None
    return next((r for r in REGIONS if r["id"] == region_id), None)


def os_image(os_id) -> Optional[dict]:
    return next((o for o in OS_OPTIONS if o["id"] == os_id), None)


def public_regions() -> list[dict]:
    return [{k: v for k, v in r.items()} for r in REGIONS]


def public_os() -> list[dict]:
    return [dict(o) for o in OS_OPTIONS]


def amount_usd_micros(plan_id: str, hours: int) -> int:
    """ceil(our_hourly × hours × 10^6) in Decimal: the micro-USD price of `hours` on `plan_id`."""
    return int((hourly(plan_id) * Decimal(hours) * 1_000_000).to_integral_value(ROUND_CEILING))


def usd(micros: int) -> float | int:
    """Micro-USD as a JSON number for display fields (`payment_amount`, `deposited`)."""
    return _num(Decimal(micros) / 1_000_000)


def usd_str(micros: int) -> str:
    """Micro-USD as a decimal string with at least two decimals ("150.00", "0.2496")."""
    d = (Decimal(micros) / 1_000_000).normalize()
    if d.as_tuple().exponent > -2:
        d = d.quantize(Decimal("0.01"))
    return format(d, "f")
