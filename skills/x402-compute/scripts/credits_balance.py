#!/usr/bin/env python3
"""Show your prepaid credit balance in USD (spend it with --use-credits on provision or extend).

The totals count prepaid credits only: what credits_topup.py deposited and what
--use-credits spent. Machines paid directly with x402 or MPP are not in them; for
all spending, run budget.py."""

from x402_compute import cli
from x402_compute.commands import credits

p = cli.parser("credits_balance.py", __doc__, examples="python scripts/credits_balance.py\npython scripts/budget.py    # all spending, not only credits")

handler = credits.balance

if __name__ == "__main__":
    cli.run(p, handler)
