#!/usr/bin/env python3
"""Browse operating system images; the os_id goes to provision.py --os-id.

The parser and the command live in x402_compute.commands.catalog: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import catalog

p = catalog.browse_os_parser()
handler = catalog.browse_os

if __name__ == "__main__":
    cli.run(p, handler)
