#!/usr/bin/env python3
"""Destroy an instance, or several: every live machine of this wallet (--all) or those whose
label matches a pattern (--label). Irreversible: the disk is deleted and the unused prepaid
time is lost (one summary of it is shown before asking). Needs --yes when not at a terminal.
Prints the instance as it is afterwards (state destroyed, ip null).

--forget-local also drops what this machine keeps about the destroyed instances (host key
pins, keepalive state, saved management keys, passwords and AI Machine keys, owner and key records); alone,
--forget-destroyed does that for every instance the API lists as destroyed."""

from x402_compute import cli
from x402_compute.commands import manage

p = cli.parser(
    "destroy_instance.py",
    __doc__,
    examples="python scripts/destroy_instance.py 3f1c2a9e-0000-4000-8000-000000000001\n"
    "python scripts/destroy_instance.py 3f1c2a9e-0000-4000-8000-000000000001 --yes\n"
    "python scripts/destroy_instance.py --label 'ci-*' --yes --forget-local\n"
    "python scripts/destroy_instance.py --all          # shows what would be lost, then asks\n"
    "python scripts/destroy_instance.py --forget-destroyed",
)
p.add_argument("instance_id", nargs="?", help="the instance UUID (from list_instances.py)")
p.add_argument("--all", action="store_true", help="every live (not destroyed, not expired) instance of this wallet")
p.add_argument("--label", metavar="PATTERN", help="the live instances whose label matches PATTERN (a shell pattern such as 'ci-*'; without wildcards the exact label)")
p.add_argument("--forget-local", action="store_true", help="also delete the local leftovers of the instances destroyed (pins, keepalive state, saved keys and passwords)")
p.add_argument("--forget-destroyed", action="store_true", help="destroy nothing: delete the local leftovers of every instance the API lists as destroyed")
cli.add_yes(p, "destroy")

handler = manage.destroy

if __name__ == "__main__":
    cli.run(p, handler)
