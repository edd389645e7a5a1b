#!/usr/bin/env python3
"""Show your prepaid credit balance in USD (spend it with --use-credits on provision or extend)."""

from x402_compute import cli
from x402_compute.money import to_decimal, usd

p = cli.parser("credits_balance.py", __doc__, examples="python scripts/credits_balance.py")


def handler(ctx: cli.Context) -> cli.Output:
    r = ctx.client.credits_balance()
    # Strings such as "150.00", or the number 0 for a wallet that never deposited.
    fig = {k: usd(to_decimal(r.get(k)) if r.get(k) is not None else None, 2) for k in ("balance", "total_deposited", "total_spent")}
    data = {"wallet": r.get("wallet"), "balance_usd": fig["balance"], "total_deposited_usd": fig["total_deposited"], "total_spent_usd": fig["total_spent"], "response": r}
    text = f"wallet: {data['wallet']}\nbalance: ${fig['balance']}\ndeposited: ${fig['total_deposited']}\nspent: ${fig['total_spent']}"
    return cli.Output(data, text)


if __name__ == "__main__":
    cli.run(p, handler)
