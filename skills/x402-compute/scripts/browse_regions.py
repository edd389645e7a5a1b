#!/usr/bin/env python3
"""Browse regions (data centres). With --provider or --plan, only the regions
where that provider's plans (or that plan) can be placed, from the plans' locations."""

from x402_compute import cli, plans
from x402_compute.errors import UsageError
from x402_compute.validate import plan_id

p = cli.parser(
    "browse_regions.py",
    __doc__,
    examples="python scripts/browse_regions.py\npython scripts/browse_regions.py --provider digitalocean\npython scripts/browse_regions.py --plan vcg-a100-1c-2g-6gb",
)
p.add_argument("--provider", choices=sorted(plans.PROVIDER_ALIASES), help="vultr or digitalocean (do)")
p.add_argument("--plan", help="only regions where this plan is offered")


def handler(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    plan = plan_id(a.plan) if a.plan else None
    regions = [r for r in ctx.client.regions() if isinstance(r, dict)]
    if a.provider or plan:
        # The region record carries no provider on the hosted API; the plans' locations do.
        catalog = [plans.find(ctx.client, plan)] if plan else ctx.client.all_plans()
        if plan and catalog[0] is None:
            raise UsageError(f"Plan {plan!r} is not in the catalog.", hint="See browse_plans.py.")
        want = plans.PROVIDER_ALIASES.get(a.provider or "")
        allowed = {loc for x in catalog if not want or plans.provider(x) == want for loc in (x.get("locations") or [])}
        regions = [r for r in regions if r.get("id") in allowed]
    rows = [{"id": r.get("id"), "city": r.get("city"), "country": r.get("country"), "continent": r.get("continent"), "provider": r.get("provider")} for r in regions]
    text = cli.table(rows, [("id", "REGION"), ("city", "CITY"), ("country", "COUNTRY"), ("continent", "CONTINENT"), ("provider", "PROVIDER")])
    return cli.Output({"count": len(rows), "regions": rows}, text)


if __name__ == "__main__":
    cli.run(p, handler)
