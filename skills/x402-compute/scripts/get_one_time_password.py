#!/usr/bin/env python3
"""Reveal an instance's one-time root password (Vultr instances created without
an SSH key). The API reveals it exactly once: it is written to a 0600 file in
your state directory and only the file's path is printed (--show to print it).
"""

from x402_compute import cli
from x402_compute.commands import manage

p = cli.parser(
    "get_one_time_password.py",
    __doc__,
    examples="python scripts/get_one_time_password.py 3f1c2a9e-0000-4000-8000-000000000001\npython scripts/get_one_time_password.py 3f1c2a9e-0000-4000-8000-000000000001 --show",
)
p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
p.add_argument("--show", action="store_true", help="also print the password on stdout")


handler = manage.get_one_time_password


if __name__ == "__main__":
    cli.run(p, handler)
