#!/usr/bin/env python3
"""Find out what happened to a payment whose outcome was unknown (exit 4), without paying again.

Looks the order up (by its label and creation time) from the local payment journal, and for an
entry still sent/unknown asks the chain (read-only) whether the payment was used: `onchain.state`
is used, unused (may still settle), expired_unused (entry marked expired; paying again is safe) or unknown.
--resend re-sends the identical stored payment with the same Idempotency-Key; the
server then returns the first result instead of charging twice. Never signs anything."""

from x402_compute import cli
from x402_compute.commands import reconcile

p = cli.parser(
    "reconcile.py",
    __doc__,
    examples="python scripts/reconcile.py --list\npython scripts/reconcile.py 1b4e28ba2fa1451b9b1f4c2d7e8f9a0b\npython scripts/reconcile.py 1b4e28ba2fa1451b9b1f4c2d7e8f9a0b --resend",
)
p.add_argument("journal_id", nargs="?", help="journal id (or a unique prefix) printed by the paid command")
p.add_argument("--list", action="store_true", help="list journal entries (the signed payments are never shown)")
p.add_argument("--resend", action="store_true", help="re-send the same stored payment with the same Idempotency-Key")

handler = reconcile.reconcile

if __name__ == "__main__":
    cli.run(p, handler)
