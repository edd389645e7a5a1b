#!/usr/bin/env python3
"""Revoke a management API key, signed by your wallet. Anything using the key
stops working at once. Needs --yes when not at a terminal.

The parser and the command live in x402_compute.commands.keys: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import keys

p = keys.revoke_api_key_parser()
handler = keys.revoke_api_key

if __name__ == "__main__":
    cli.run(p, handler)
