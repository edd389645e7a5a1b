#!/usr/bin/env python3
"""List your instances: state, IP, expiry and hours left."""

import sys

from x402_compute import cli
from x402_compute.instances import STATES, summary

p = cli.parser(
    "list_instances.py",
    __doc__,
    examples="python scripts/list_instances.py\npython scripts/list_instances.py --state running --label web\npython scripts/list_instances.py --expiring-within 24",
)
p.add_argument("--all", action="store_true", help="include destroyed and expired instances")
p.add_argument("--state", choices=STATES, help="only instances in this normalised state")
p.add_argument("--label", help="only instances whose label contains this text")
p.add_argument("--expiring-within", type=float, metavar="HOURS", help="only instances that expire within HOURS (extend them with extend_instance.py)")


def handler(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    rows = [summary(o) for o in ctx.client.list_instances() if isinstance(o, dict)]
    if not a.all and a.state not in ("destroyed", "expired"):
        rows = [r for r in rows if r["state"] not in ("destroyed", "expired")]
    if a.state:
        rows = [r for r in rows if r["state"] == a.state]
    if a.label:
        rows = [r for r in rows if a.label.lower() in (r.get("label") or "").lower()]
    if a.expiring_within is not None:
        rows = [r for r in rows if r["hours_left"] is not None and r["hours_left"] <= a.expiring_within]
    text = cli.table(rows, [("id", "ID"), ("label", "LABEL"), ("plan", "PLAN"), ("region", "REGION"), ("state", "STATE"), ("ip", "IP"), ("expires_at", "EXPIRES"), ("hours_left", "HOURS LEFT")])
    return cli.Output({"count": len(rows), "instances": rows}, text)


if __name__ == "__main__":
    cli.run(p, handler)
