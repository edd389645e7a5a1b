#!/usr/bin/env python3
"""Show the rolling spend budget: what all payments together may spend in the window
(COMPUTE_BUDGET_USD per COMPUTE_BUDGET_WINDOW), what is spent and reserved, what is left,
the window's payments (time, script, instance, network, amount, outcome) and a per-day total.

--by instance|day|network adds the counted spending summed that way; --csv adds the payments
as CSV (each with its transaction hash and explorer link), and with -o text prints only the CSV.

The budget sees the payments in this agent's ledger: the state folder's SQLite file
(X402_COMPUTE_STATE_DIR), shared by agents on one machine that share the folder, or the
PostgreSQL ledger the human set with COMPUTE_LEDGER_URL, shared by agents on several machines
(fleet then names each agent's host and state folder).

Read-only. There is no command to raise the budget: the human changes the setting."""

from x402_compute import cli
from x402_compute.commands import budget

p = cli.parser(
    "budget.py",
    __doc__,
    examples="python scripts/budget.py\npython scripts/budget.py --window 7d\npython scripts/budget.py --window 30d --by instance\n"
    "python scripts/budget.py --window 30d --csv -o text > spending.csv",
)
p.add_argument("--window", metavar="Nh|Nd", help="list payments this far back (1h to 90d; default: the budget's own window)")
p.add_argument("--by", choices=budget.BY, help="also sum the counted payments per instance, day (UTC) or network (field totals)")
p.add_argument("--csv", action="store_true", help="also give the payments as CSV (field csv); with -o text print only the CSV")

handler = budget.budget_status

if __name__ == "__main__":
    cli.run(p, handler)
