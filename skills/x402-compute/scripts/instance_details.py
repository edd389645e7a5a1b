#!/usr/bin/env python3
"""Show one instance: normalised state beside the raw provider fields, IP (null
until assigned), expiry, hours left, the prepaid value left, and how to SSH in."""

from x402_compute import cli
from x402_compute.commands import manage

p = cli.parser(
    "instance_details.py",
    __doc__,
    examples="python scripts/instance_details.py 3f1c2a9e-0000-4000-8000-000000000001",
)
p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")

handler = manage.instance_details

if __name__ == "__main__":
    cli.run(p, handler)
