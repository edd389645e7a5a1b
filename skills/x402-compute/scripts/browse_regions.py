#!/usr/bin/env python3
"""Browse regions (data centres) with their city, country and continent. With
--provider or --plan, only the regions where that provider's plans (or that plan)
can be placed, from the plans' locations."""

from x402_compute import cli, plans
from x402_compute.commands import catalog

p = cli.parser(
    "browse_regions.py",
    __doc__,
    examples=(
        "python scripts/browse_regions.py\n"
        "python scripts/browse_regions.py --continent Europe\n"
        "python scripts/browse_regions.py --provider digitalocean --country US\n"
        "python scripts/browse_regions.py --plan vcg-a100-1c-2g-6gb"
    ),
)
p.add_argument("--provider", choices=sorted(plans.PROVIDER_ALIASES), help="vultr or digitalocean (do)")
p.add_argument("--plan", help="only regions where this plan is offered")
catalog.add_place_filters(p)

handler = catalog.browse_regions

if __name__ == "__main__":
    cli.run(p, handler)
