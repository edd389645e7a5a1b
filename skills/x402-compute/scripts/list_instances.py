#!/usr/bin/env python3
"""List your instances: state, IP, expiry, hours left and how to SSH in (the ssh block,
with -i when the instance was given the skill's own key by provision.py --ssh-key auto).

The parser and the command live in x402_compute.commands.manage: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import manage

p = manage.list_instances_parser()
handler = manage.list_instances

if __name__ == "__main__":
    cli.run(p, handler)
