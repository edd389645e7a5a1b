#!/usr/bin/env python3
"""List your management API keys (last four characters only; the API never returns full keys)."""

from x402_compute import cli
from x402_compute.commands import keys

p = cli.parser("list_api_keys.py", __doc__, examples="python scripts/list_api_keys.py\npython scripts/list_api_keys.py --active")
p.add_argument("--active", action="store_true", help="hide revoked keys")


handler = keys.list_api_keys


if __name__ == "__main__":
    cli.run(p, handler)
