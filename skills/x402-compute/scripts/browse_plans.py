#!/usr/bin/env python3
"""Browse machine plans (VPS, dedicated CPU, GPU) with hourly, daily and monthly prices.

The parser and the command live in x402_compute.commands.catalog: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import catalog

p = catalog.browse_plans_parser()
handler = catalog.browse_plans

if __name__ == "__main__":
    cli.run(p, handler)
