"""reconcile.py: look a journalled payment's order up instead of paying again (the logic is in
``payments.reconcile``); ``--resend`` re-sends the identical stored payload. Never signs."""

from __future__ import annotations

import argparse
import json

from .. import cli, validate
from ..cli import Output, table
from ..instances import summary, unwrap_order
from ..payments import reconcile as rec
from ..payments.journal import Journal, public
from ..payments.rpc import JsonRpc
from .paid import after_payment, save_ai_key, save_management_key, ssh_out

LIST_COLUMNS = [("id", "JOURNAL ID"), ("created_at", "CREATED"), ("kind", "KIND"), ("status", "STATUS"), ("label", "LABEL"),
                ("amount_usd", "USD"), ("network", "NETWORK"), ("order_id", "ORDER")]


def reconcile(ctx) -> Output:
    a = ctx.args
    s = ctx.settings
    journal = Journal(s)
    if a.list or not a.journal_id:
        rows = [rec.entry_row(e) for e in journal.list()]  # a refused payment still valid is listed unresolved
        return Output({"count": len(rows), "entries": rows}, table(rows, LIST_COLUMNS) if rows else "(no journal entries)")

    entry = journal.find(a.journal_id)
    if a.resend:
        return _resend(ctx, journal, entry)
    found, out, order = rec.look_up(ctx.client, journal, entry)
    out = {"journal": public(entry), **out}
    if order is not None:
        out.update(ssh_out(ctx, order))
    out["found"] = found
    card = entry.get("method") == "stripe"
    if card:
        out["stripe"] = chain = rec.ask_stripe(journal, entry, s, found)  # read-only, never a payment
    else:
        chain = rec.ask_chain(journal, entry, JsonRpc(s), found)  # read-only chain queries, never a signature
        if chain is not None:
            out["onchain"] = chain
    out["journal"] = public(journal.get(entry["id"]))
    out["advice"] = rec.advice(entry["id"], found, chain, card=card, refused=journal.get(entry["id"]).get("status") == "rejected")
    return Output(out, out["advice"])


def _resend(ctx, journal: Journal, entry: dict) -> Output:
    from ..payments.flow import resend

    rec.check_resendable(entry, ctx.settings.base_url)
    auth = rec.resend_auth(ctx.client.auths, entry)
    ctx.progress(f"Resending the stored payment of journal {entry['id']} with Idempotency-Key {entry['idempotency_key']}")
    result = ctx.client.drive(resend(journal, entry, auth, f"Resend {entry.get('kind')}", progress=ctx.progress))
    out: dict = {"journal": public(entry), "resend": {"status": result.status, "tx_hash": result.tx_hash, "replayed": (result.headers or {}).get("Idempotent-Replayed") == "true"}}
    with after_payment(result):  # the re-sent payment settled: a malformed answer must not hide it
        order = unwrap_order(result.body)
        if order.get("id"):
            order["id"] = validate.server_instance_id(order["id"], "the re-sent answer's order id")
            out["order"] = summary(order)
            if entry.get("kind") == "provision" and entry.get("method") in ("mpp", "stripe"):
                saved = save_management_key(ctx, order["id"], result.body)  # the replayed answer carries it again
                if saved:
                    out["management_api_key"] = saved
            ai_request = _ai_request(entry)
            if entry.get("kind") == "provision" and ai_request:
                _key, block = save_ai_key(ctx, order, ai_request)  # shown once: the replayed answer is the only copy
                if block:
                    out["ai"] = block
    out["journal"] = public(journal.get(entry["id"]))
    out["found"] = True
    return Output(out, f"resent: HTTP {result.status}; order {order.get('id')}; tx {result.tx_hash}")


def _ai_request(entry: dict) -> tuple[str, str] | None:
    """The (model_id, mode) of an AI Machine provision, from the journalled request body this run
    re-sent byte for byte (our own write, so its shape is known; anything else is no AI request)."""
    try:
        body = json.loads((entry.get("request") or {}).get("body") or "{}")
    except ValueError:
        return None
    ai = body.get("ai_machine") if isinstance(body, dict) else None
    if isinstance(ai, dict) and isinstance(ai.get("model_id"), str) and ai.get("mode") == "private":
        return ai["model_id"], "private"
    return None


# -- reconcile.py: its parser (the script and the MCP server both build it here) ------

RECONCILE_HELP = """Find out what happened to a payment whose outcome was unknown (exit 4), without paying again.

Looks the order up (by its label and creation time) from the local payment journal, and for an
entry still sent/unknown asks the chain (read-only) whether the payment was used: `onchain.state`
is used, unused (may still settle), expired_unused (entry marked expired; paying again is safe) or unknown.
--resend re-sends the identical stored payment with the same Idempotency-Key; the
server then returns the first result instead of charging twice. Never signs anything."""


def reconcile_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "reconcile.py",
        RECONCILE_HELP,
        examples="python scripts/reconcile.py --list\npython scripts/reconcile.py 1b4e28ba2fa1451b9b1f4c2d7e8f9a0b\npython scripts/reconcile.py 1b4e28ba2fa1451b9b1f4c2d7e8f9a0b --resend",
    )
    p.add_argument("journal_id", nargs="?", help="journal id (or a unique prefix) printed by the paid command")
    p.add_argument("--list", action="store_true", help="list journal entries (the signed payments are never shown)")
    p.add_argument("--resend", action="store_true", help="re-send the same stored payment with the same Idempotency-Key")
    return p
