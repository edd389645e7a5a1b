#!/usr/bin/env python3
"""Revoke a management API key, signed by your wallet. Anything using the key
stops working at once. Needs --yes when not at a terminal."""

from x402_compute import cli
from x402_compute.commands import keys

p = cli.parser("revoke_api_key.py", __doc__, examples="python scripts/revoke_api_key.py 7b0e9c1d --yes")
p.add_argument("key_id", help="the key's id (from list_api_keys.py), not the key itself")
cli.add_yes(p, "revoke")


handler = keys.revoke_api_key


if __name__ == "__main__":
    cli.run(p, handler)
