#!/usr/bin/env python3
"""Show the rolling spend budget: what all payments together may spend in the window
(COMPUTE_BUDGET_USD per COMPUTE_BUDGET_WINDOW), what is spent and reserved, what is left,
the window's payments (time, script, instance, network, amount, outcome) and a per-day total.

Read-only. There is no command to raise the budget: the human changes the setting."""

from x402_compute import cli
from x402_compute.commands import budget

p = cli.parser(
    "budget.py",
    __doc__,
    examples="python scripts/budget.py\npython scripts/budget.py --window 7d",
)
p.add_argument("--window", metavar="Nh|Nd", help="list payments this far back (1h to 90d; default: the budget's own window)")

handler = budget.budget_status

if __name__ == "__main__":
    cli.run(p, handler)
