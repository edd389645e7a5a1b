#!/usr/bin/env python3
"""Browse machine plans (VPS, dedicated CPU, GPU) with hourly, daily and monthly prices.

All plan types are listed by default (the API's untyped listing leaves out
dedicated and GPU plans). Prices are the API's own fields, in USD.
"""

from x402_compute import cli, plans
from x402_compute.client import PLAN_TYPES
from x402_compute.config import parse_usd
from x402_compute.errors import UsageError
from x402_compute.validate import region_id

p = cli.parser(
    "browse_plans.py",
    __doc__,
    examples="python scripts/browse_plans.py --max-hourly 0.05\npython scripts/browse_plans.py --gpu --gpu-type a100 --region ewr\npython scripts/browse_plans.py --provider digitalocean --limit 5",
)
p.add_argument("--type", choices=PLAN_TYPES, help="vps (cloud), vhp (high performance), vdc (dedicated CPU), vcg (GPU)")
p.add_argument("--provider", choices=sorted(plans.PROVIDER_ALIASES), help="vultr or digitalocean (do)")
p.add_argument("--region", help="only plans offered in this region id (see browse_regions.py)")
p.add_argument("--gpu", action="store_true", help="only GPU plans")
p.add_argument("--gpu-type", metavar="TEXT", help="only GPU plans whose gpu_type contains TEXT (e.g. a100, l40s)")
p.add_argument("--max-hourly", metavar="USD", help="only plans at or below this hourly price")
p.add_argument("--limit", type=int, metavar="N", help="show at most N plans (cheapest first)")


def handler(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    region = region_id(a.region) if a.region else None
    max_hourly = parse_usd(a.max_hourly, "--max-hourly") if a.max_hourly is not None else None
    if a.limit is not None and a.limit < 1:
        raise UsageError("--limit must be at least 1.")
    catalog = ctx.client.plans(a.type) if a.type else ctx.client.all_plans()
    chosen = plans.select(catalog, provider_name=plans.PROVIDER_ALIASES.get(a.provider or ""), region=region,
                          gpu=a.gpu, gpu_type=a.gpu_type, max_hourly=max_hourly)
    rows = [plans.row(x) for x in chosen][: a.limit]
    text = cli.table(rows, [("id", "PLAN"), ("provider", "PROVIDER"), ("vcpu", "VCPU"), ("ram_mb", "RAM MB"), ("disk_gb", "DISK GB"),
                            ("gpu_type", "GPU"), ("hourly_usd", "$/HOUR"), ("daily_usd", "$/DAY"), ("monthly_usd", "$/MONTH")])
    return cli.Output({"count": len(rows), "matched": len(chosen), "plans": rows}, text)


if __name__ == "__main__":
    cli.run(p, handler)
