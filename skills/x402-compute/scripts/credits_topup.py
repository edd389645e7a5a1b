#!/usr/bin/env python3
"""Buy prepaid credits (USD) with an x402 payment; spend them with --use-credits."""

from x402_compute import cli
from x402_compute.commands import paid

p = cli.parser(
    "credits_topup.py",
    __doc__,
    examples=(
        "python scripts/credits_topup.py --amount 20 --quote\n"
        "# show the quote to the human; once they approve, pay exactly that quote:\n"
        "python scripts/credits_topup.py --amount 20 --confirm-quote <quote_id>\n"
        "# the human at a terminal may skip the quote (--yes is their shortcut):\n"
        "python scripts/credits_topup.py --amount 20 --network solana --yes"
    ),
)
p.add_argument("--amount", required=True, metavar="USD", help="dollars to deposit (at least 1, whole cents)")
paid.add_payment_options(p, credits=False)

handler = paid.topup

if __name__ == "__main__":
    cli.run(p, handler)
