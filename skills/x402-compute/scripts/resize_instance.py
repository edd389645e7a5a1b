#!/usr/bin/env python3
"""Resize an instance to another plan (same provider and region). There is
downtime. The prepaid credit is kept and the expiry recomputed for the new
hourly rate. Vultr allows upgrades only; on DigitalOcean a bigger disk is
permanent and needs --confirm-disk-resize. No payment is made.

--quote is the dry run: it runs every check, shows the old and the estimated new
expiry, the credit carried over and the downtime, and sends no resize.

The command line itself is the confirmation (existing users type
`resize_instance.py <id> <plan>` unattended): every refusal the API would
give is checked locally first, and the one irreversible case, DigitalOcean
disk growth, needs its own flag.
"""

from x402_compute import cli
from x402_compute.commands import manage

p = cli.parser(
    "resize_instance.py",
    __doc__,
    examples=(
        "python scripts/resize_instance.py 3f1c2a9e-0000-4000-8000-000000000001 vc2-2c-4gb --quote\n"
        "python scripts/resize_instance.py 3f1c2a9e-0000-4000-8000-000000000001 vc2-2c-4gb\n"
        "python scripts/resize_instance.py <instance_id> do:s-2vcpu-4gb --confirm-disk-resize"
    ),
)
p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
p.add_argument("plan", help="the target plan id (from browse_plans.py)")
p.add_argument("--quote", action="store_true", help="dry run: checks, old and new expiry, credit carried over, downtime; sends no resize")
p.add_argument("--confirm-disk-resize", action="store_true", help="allow a permanent disk increase (DigitalOcean)")
p.add_argument("--yes", "-y", action="store_true", help="accepted for compatibility; resizing needs no other confirmation")

handler = manage.resize

if __name__ == "__main__":
    cli.run(p, handler)
