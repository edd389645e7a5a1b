#!/usr/bin/env python3
"""Show one instance: normalised state beside the raw provider fields, IP (null
until assigned), expiry, hours left, the prepaid value left, and how to SSH in.

The parser and the command live in x402_compute.commands.manage: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import manage

p = manage.instance_details_parser()
handler = manage.instance_details

if __name__ == "__main__":
    cli.run(p, handler)
