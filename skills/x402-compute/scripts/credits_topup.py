#!/usr/bin/env python3
"""Buy prepaid credits (USD) with an x402 payment; spend them with --use-credits.

The parser and the command live in x402_compute.commands.paid: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import paid

p = paid.credits_topup_parser()
handler = paid.topup

if __name__ == "__main__":
    cli.run(p, handler)
