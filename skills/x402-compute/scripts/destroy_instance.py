#!/usr/bin/env python3
"""Destroy an instance. Irreversible: the disk is deleted and the unused
prepaid time is lost (shown before asking). Needs --yes when not at a terminal."""

from x402_compute import cli, plans
from x402_compute.errors import ComputeError
from x402_compute.instances import summary
from x402_compute.validate import instance_id

p = cli.parser(
    "destroy_instance.py",
    __doc__,
    examples="python scripts/destroy_instance.py 3f1c2a9e-0000-4000-8000-000000000001\npython scripts/destroy_instance.py 3f1c2a9e-0000-4000-8000-000000000001 --yes",
)
p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
cli.add_yes(p, "destroy")


def handler(ctx: cli.Context) -> cli.Output:
    iid = instance_id(ctx.args.instance_id)
    inst = summary(ctx.client.get_instance(iid))
    if inst["state"] == "destroyed":
        raise ComputeError(f"Instance {iid} is already destroyed.", code="already_destroyed", details=inst)
    plan = plans.lookup_quietly(ctx.client, inst["plan"])
    lost = {"hours": inst["hours_left"], "usd": plans.prepaid_value_usd(inst["hours_left"], plan), "hourly_usd": plans.hourly_usd(plan)}
    preview = {**inst, "prepaid_time_lost": lost}
    usd = f" (about ${lost['usd']})" if lost["usd"] else ""
    ctx.confirm(f"Destroy {iid} ({inst['label'] or inst['plan']}, {inst['ip'] or 'no IP'})? This deletes its disk and forfeits {lost['hours']} prepaid hours{usd}.", details=preview)
    r = ctx.client.destroy_instance(iid)
    return cli.Output({"destroyed": True, "instance": inst, "prepaid_time_lost": lost, "response": r}, f"destroyed {iid}; {lost['hours']} prepaid hours{usd} forfeited")


if __name__ == "__main__":
    cli.run(p, handler)
