#!/usr/bin/env python3
"""Add prepaid time to an instance and pay over HTTP 402 (x402); prints old and new expiry.

The parser and the command live in x402_compute.commands.paid: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import paid

p = paid.extend_instance_parser()
handler = paid.extend

if __name__ == "__main__":
    cli.run(p, handler)
