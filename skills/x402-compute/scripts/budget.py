#!/usr/bin/env python3
"""Show the rolling spend budget: what all payments together may spend in the window
(COMPUTE_BUDGET_USD per COMPUTE_BUDGET_WINDOW), what is spent and reserved, what is left,
the window's payments (time, script, instance, network, amount, outcome) and a per-day total.

The parser and the command live in x402_compute.commands.budget: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import budget

p = budget.budget_parser()
handler = budget.budget_status

if __name__ == "__main__":
    cli.run(p, handler)
