#!/usr/bin/env python3
"""Show one instance: normalised state beside the raw provider fields, IP (null
until assigned), expiry, hours left, the prepaid value left, and how to SSH in."""

from x402_compute import cli, plans
from x402_compute.instances import detail
from x402_compute.validate import instance_id

p = cli.parser(
    "instance_details.py",
    __doc__,
    examples="python scripts/instance_details.py 3f1c2a9e-0000-4000-8000-000000000001",
)
p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")


def handler(ctx: cli.Context) -> cli.Output:
    iid = instance_id(ctx.args.instance_id)
    d = detail(ctx.client.get_instance(iid))
    plan = plans.lookup_quietly(ctx.client, d["plan"]) if d["state"] not in ("destroyed", "expired") else None
    d["hourly_usd"] = plans.hourly_usd(plan)
    d["prepaid_value_remaining_usd"] = plans.prepaid_value_usd(d["hours_left"], plan)
    ssh = d["ssh"]
    lines = [f"{k}: {'' if d.get(k) is None else d.get(k)}" for k in ("id", "label", "plan", "region", "state", "ip", "expires_at", "hours_left", "hourly_usd", "prepaid_value_remaining_usd")]
    lines.append(f"ssh: {ssh['command']}" if ssh else "ssh: (no IP yet)" if d["state"] == "provisioning" else "ssh: -")
    if ssh and ssh.get("note"):
        lines.append(f"note: {ssh['note']}")
    return cli.Output({"instance": d}, "\n".join(lines))


if __name__ == "__main__":
    cli.run(p, handler)
