#!/usr/bin/env python3
"""Show your prepaid credit balance in USD (spend it with --use-credits on provision or extend).

The parser and the command live in x402_compute.commands.credits: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import credits

p = credits.credits_balance_parser()
handler = credits.balance

if __name__ == "__main__":
    cli.run(p, handler)
