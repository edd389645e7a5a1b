#!/usr/bin/env python3
"""List your management API keys (last four characters only; the API never returns full keys).

The parser and the command live in x402_compute.commands.keys: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import keys

p = keys.list_api_keys_parser()
handler = keys.list_api_keys

if __name__ == "__main__":
    cli.run(p, handler)
