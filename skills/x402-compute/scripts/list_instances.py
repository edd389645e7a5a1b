#!/usr/bin/env python3
"""List your instances: state, IP, expiry, hours left and how to SSH in (the ssh block,
with -i when the instance was given the skill's own key by provision.py --ssh-key auto)."""

from x402_compute import cli
from x402_compute.commands import manage
from x402_compute.instances import STATES

p = cli.parser(
    "list_instances.py",
    __doc__,
    examples="python scripts/list_instances.py\npython scripts/list_instances.py --state running --label web\npython scripts/list_instances.py --expiring-within 24",
)
p.add_argument("--all", action="store_true", help="include destroyed and expired instances")
p.add_argument("--state", choices=STATES, help="only instances in this normalised state")
p.add_argument("--label", help="only instances whose label contains this text")
p.add_argument("--expiring-within", type=float, metavar="HOURS", help="only instances that expire within HOURS (extend them with extend_instance.py)")

handler = manage.list_instances

if __name__ == "__main__":
    cli.run(p, handler)
