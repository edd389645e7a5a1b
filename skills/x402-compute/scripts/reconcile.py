#!/usr/bin/env python3
"""Find out what happened to a payment whose outcome was unknown (exit 4), without paying again.

The parser and the command live in x402_compute.commands.reconcile: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import reconcile

p = reconcile.reconcile_parser()
handler = reconcile.reconcile

if __name__ == "__main__":
    cli.run(p, handler)
