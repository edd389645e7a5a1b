"""credits_balance.py: the prepaid credit account (credits_topup.py is a paid command: commands/paid.py)."""

from __future__ import annotations

import argparse

from .. import cli
from ..money import to_decimal, usd

SCOPE_NOTE = (
    "These totals count prepaid credits only: deposits made with credits_topup.py and what was paid "
    "from them with --use-credits. Machines paid directly (x402 or MPP) are not in them; "
    "budget.py shows all spending."
)


def balance(ctx: cli.Context) -> cli.Output:
    r = ctx.client.credits_balance()
    # Strings such as "150.00", or the number 0 for a wallet that never deposited.
    fig = {k: usd(to_decimal(r.get(k)) if r.get(k) is not None else None, 2) for k in ("balance", "total_deposited", "total_spent")}
    data = {
        "wallet": r.get("wallet"),
        "balance_usd": fig["balance"],
        "total_deposited_usd": fig["total_deposited"],
        "total_spent_usd": fig["total_spent"],
        "scope": "prepaid_credits_only",
        "note": SCOPE_NOTE,
        "response": r,
    }
    text = "\n".join([
        f"wallet: {data['wallet']}",
        f"balance: ${fig['balance']}",
        f"deposited: ${fig['total_deposited']}",
        f"spent from credits: ${fig['total_spent']}",
        f"note: {SCOPE_NOTE}",
    ])
    return cli.Output(data, text)


# -- credits_balance.py: its parser (the script and the MCP server both build it here) ------

CREDITS_BALANCE_HELP = """Show your prepaid credit balance in USD (spend it with --use-credits on provision or extend).

The totals count prepaid credits only: what credits_topup.py deposited and what
--use-credits spent. Machines paid directly with x402 or MPP are not in them; for
all spending, run budget.py."""


def credits_balance_parser() -> argparse.ArgumentParser:
    p = cli.parser("credits_balance.py", CREDITS_BALANCE_HELP, examples="python scripts/credits_balance.py\npython scripts/budget.py    # all spending, not only credits")
    return p
