#!/usr/bin/env python3
"""Browse machine plans (VPS, dedicated CPU, GPU) with hourly, daily and monthly prices.

All plan types are listed by default (the API's untyped listing leaves out
dedicated and GPU plans), cheapest first. Prices are the API's own fields, in USD.
GPU plans name their GPU: model, count, VRAM and the share of one physical GPU
(gpu_fraction; Vultr sells slices such as 1/20 of an A100). Every filter value is
checked before any request.
"""

from x402_compute import cli, plans
from x402_compute.commands import catalog

p = cli.parser(
    "browse_plans.py",
    __doc__,
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
catalog.add_place_filters(p)
p.add_argument("--min-ram", type=catalog.gigabytes, metavar="GB", help="only plans with at least this much RAM (GB, 1 GB = 1024 MB)")
p.add_argument("--min-vcpu", type=catalog.count, metavar="N", help="only plans with at least N vCPUs")
p.add_argument("--min-disk", type=catalog.gigabytes, metavar="GB", help="only plans with at least this much disk (GB)")
p.add_argument("--gpu", action="store_true", help="only GPU plans (whole GPUs and slices)")
p.add_argument("--gpu-type", metavar="TEXT", help="only GPU plans whose gpu_type contains TEXT (e.g. a100, l40s)")
p.add_argument("--whole-gpu", action="store_true", help="only plans with one or more whole GPUs (gpu_fraction 1), no slices")
p.add_argument("--min-gpu-vram", type=catalog.gigabytes, metavar="GB", help="only GPU plans with at least this much VRAM in total (GB)")
p.add_argument("--max-hourly", metavar="USD", help="only plans at or below this hourly price")
p.add_argument("--sort", choices=plans.SORTS, default="price", help="ascending order: price (default), ram or vcpu (ties: cheaper first)")
p.add_argument("--limit", type=int, metavar="N", help="show at most N plans (the first N in --sort order)")

handler = catalog.browse_plans

if __name__ == "__main__":
    cli.run(p, handler)
