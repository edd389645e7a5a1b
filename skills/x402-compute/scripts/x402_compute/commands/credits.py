"""credits_balance.py: the prepaid credit account (credits_topup.py is a paid command: commands/paid.py)."""

from __future__ import annotations

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
