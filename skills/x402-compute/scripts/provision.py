#!/usr/bin/env python3
"""Rent a VPS or GPU machine and pay for a prepaid period over HTTP 402 (x402).

The parser and the command live in x402_compute.commands.paid: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import paid

p = paid.provision_parser()
handler = paid.provision

if __name__ == "__main__":
    cli.run(p, handler)
