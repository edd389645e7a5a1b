#!/usr/bin/env python3
"""Add prepaid time to an instance and pay over HTTP 402 (x402); prints old and new expiry."""

from x402_compute import cli
from x402_compute.commands import paid

p = cli.parser(
    "extend_instance.py",
    __doc__,
    examples=(
        "python scripts/extend_instance.py 3f2c9a1e-0000-4000-8000-000000000000 --days 7 --quote\n"
        "# show the quote to the human; once they approve, pay exactly that quote:\n"
        "python scripts/extend_instance.py 3f2c9a1e-0000-4000-8000-000000000000 --days 7 --confirm-quote <quote_id>\n"
        "# the human at a terminal may skip the quote (--yes is their shortcut):\n"
        "python scripts/extend_instance.py 3f2c9a1e-0000-4000-8000-000000000000 --hours 720 --yes"
    ),
)
p.add_argument("instance_id", help="instance (order) id from list_instances.py")
paid.add_duration_options(p, what="extension")
paid.add_payment_options(p)

handler = paid.extend

if __name__ == "__main__":
    cli.run(p, handler)
