#!/usr/bin/env python3
"""Resize an instance to another plan (same provider and region). There is
downtime. The prepaid credit is kept and the expiry recomputed for the new
hourly rate. Vultr allows upgrades only; on DigitalOcean a bigger disk is
permanent and needs --confirm-disk-resize. No payment is made.

The command line itself is the confirmation (existing users type
`resize_instance.py <id> <plan>` unattended): every refusal the API would
give is checked locally first, and the one irreversible case, DigitalOcean
disk growth, needs its own flag.
"""

from x402_compute import cli, plans
from x402_compute.errors import Conflict
from x402_compute.instances import summary
from x402_compute.validate import instance_id, plan_id

p = cli.parser(
    "resize_instance.py",
    __doc__,
    examples="python scripts/resize_instance.py 3f1c2a9e-0000-4000-8000-000000000001 vc2-2c-4gb\npython scripts/resize_instance.py <instance_id> do:s-2vcpu-4gb --confirm-disk-resize",
)
p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
p.add_argument("plan", help="the target plan id (from browse_plans.py)")
p.add_argument("--confirm-disk-resize", action="store_true", help="allow a permanent disk increase (DigitalOcean)")
p.add_argument("--yes", "-y", action="store_true", help="accepted for compatibility; resizing needs no other confirmation")


def handler(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    iid, target_id = instance_id(a.instance_id), plan_id(a.plan)
    inst = summary(ctx.client.get_instance(iid))
    catalog = ctx.client.all_plans()
    by_id = {x.get("id"): x for x in catalog}
    preview = plans.resize_preflight(by_id.get(inst["plan"]), by_id.get(target_id), catalog, inst["region"], confirm_disk_resize=a.confirm_disk_resize)
    ctx.progress(f"resizing {iid} from {inst['plan']} to {target_id}: the instance is unavailable while it resizes")
    try:
        r = ctx.client.resize(iid, target_id, confirm_disk_resize=a.confirm_disk_resize)
    except Conflict as e:
        e.hint = "The instance must be active and not already resizing; check it with instance_details.py and retry later."
        raise
    keys = ("provider", "from_plan", "to_plan", "old_expires_at", "new_expires_at", "remaining_credit", "remaining_hours_before", "remaining_hours_after", "provider_action_id")
    data = {"instance_id": iid, **{k: r.get(k) for k in keys}, "plans": preview, "response": r}
    text = f"resizing {iid}: {data['from_plan'] or inst['plan']} -> {data['to_plan'] or target_id}\nexpiry: {data['old_expires_at']} -> {data['new_expires_at']}\ncredit kept: ${data['remaining_credit']}"
    return cli.Output(data, text)


if __name__ == "__main__":
    cli.run(p, handler)
