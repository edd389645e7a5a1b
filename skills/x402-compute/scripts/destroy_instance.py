#!/usr/bin/env python3
"""Destroy an instance. Irreversible: the disk is deleted and the unused
prepaid time is lost (shown before asking). Needs --yes when not at a terminal.
Prints the instance as it is afterwards (state destroyed, ip null)."""

from x402_compute import cli
from x402_compute.commands import manage

p = cli.parser(
    "destroy_instance.py",
    __doc__,
    examples="python scripts/destroy_instance.py 3f1c2a9e-0000-4000-8000-000000000001\npython scripts/destroy_instance.py 3f1c2a9e-0000-4000-8000-000000000001 --yes",
)
p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
cli.add_yes(p, "destroy")

handler = manage.destroy

if __name__ == "__main__":
    cli.run(p, handler)
