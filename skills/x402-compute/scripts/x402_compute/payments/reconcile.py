"""What became of a journalled payment: the order looked up, the chain asked, and the advice that
follows (never "pay again" while the money may have moved). Read-only except for the journal
entry's status, which it settles or expires when the evidence is conclusive. Never signs."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from .. import cmdline
from ..api.auth import ApiKeyAuth, NoAuth
from ..errors import ConfigError, UsageError
from ..instances import iso, parse_time, summary
from . import onchain
from .journal import Entry, Journal, live_refusal

# A provision's order is looked for among instances created from this long before its journal entry.
CLOCK_SLACK = timedelta(minutes=10)


def entry_row(e: dict, now: float | None = None) -> dict:
    """One journal entry as ``reconcile.py --list`` shows it, picked from the entry's one view:
    ``unresolved`` when its money may have moved or may still move (``Entry.unresolved``: a re-run
    for its order stops), and until when a signed payment stays valid (``valid_until``)."""
    v = Entry.of(e).view(time.time() if now is None else now)
    return {"id": v["id"], "created_at": v["created_at"], "kind": v["kind"], "method": v["method"], "status": v["status"],
            "label": v["label"], "network": v["offer_network"], "amount_usd": v["amount_usd"], "order_id": v["order_id"],
            "tx_hash": v["tx_hash"], "valid_until": v["valid_until"], "unresolved": v["unresolved"]}


def check_resendable(entry: dict, base_url: str) -> None:
    """Refuse (``UsageError``) to re-send an entry that cannot or must not be sent again."""
    status = entry.get("status")
    if status == "settled":
        raise UsageError("That payment already settled; nothing to resend.", code="already_settled", details={"order_id": entry.get("order_id")})
    if status == "expired":
        raise UsageError("That payment expired unused on chain; it can never settle, so resending it is pointless.", code="already_expired")
    if status == "rejected":
        raise UsageError("The server refused that payment; resending the same payload would be refused again.", code="already_rejected", details={"reason": entry.get("reason")})
    if entry.get("method") != "credits" and not entry.get("payment_header_value"):
        # E.g. the recipient account was created but the payment itself was never signed.
        raise UsageError("No payment was signed for that entry; there is nothing to resend.", code="nothing_to_resend", details={"reason": entry.get("reason")})
    if entry.get("base_url") and entry["base_url"] != base_url:
        raise UsageError(
            f"That payment was made to {entry['base_url']}, not {base_url}; refusing to send it elsewhere.",
            code="base_url_mismatch",
            hint=f"Re-run with --base-url {entry['base_url']}.",
        )


def resend_auth(auths, entry: dict):
    """The credential a re-send carries: what the first send carried (see ``AuthResolver``)."""
    if entry.get("auth_on_retry") or entry.get("method") == "credits":
        # An MPP extend may be authorised only by the instance's saved management key.
        return auths.for_instance((entry.get("context") or {}).get("instance_id"))
    auth = auths.probe(None, required=False)
    return auth if isinstance(auth, ApiKeyAuth) else NoAuth()


def look_up(client, journal: Journal, entry: dict) -> tuple[bool | None, dict, dict | None]:
    """``(found, fields, order)``: whether the entry's order is visible (None when the API cannot
    tell, e.g. a top-up), the fields reconcile prints about it, and the one matching order of a
    provision. A conclusive find settles a ``sent``/``unknown`` entry."""
    kind = entry.get("kind")
    ctx = entry.get("context") or {}
    fields: dict = {}
    if kind == "provision":
        since = parse_time(entry.get("created_at"))
        since = since - CLOCK_SLACK if since else None
        matches: list = []
        try:
            listing = client.list_instances()
        except ConfigError as e:
            # No credential that lists instances (paid by card or MPP alone): the order's own saved
            # key still reads it; without an order id the API cannot tell, the payment check still can.
            if not entry.get("order_id"):
                return None, {"lookup": {"error": e.message, "hint": e.hint}}, None
            listing = [client.get_instance(entry["order_id"])]
        for o in listing:
            if not isinstance(o, dict) or o.get("label") != entry.get("label"):
                continue
            created = parse_time(o.get("created_at"))
            if since and created and created < since:
                continue
            matches.append(o)
        if entry.get("order_id"):
            matches = [o for o in matches if o.get("id") == entry["order_id"]] or matches
        fields["matches"] = [summary(o) for o in matches]
        if len(matches) != 1:
            return bool(matches), fields, None
        fields["order"] = summary(matches[0])
        if entry.get("status") in ("sent", "unknown"):
            journal.update(entry["id"], "settled", order_id=matches[0].get("id"), reason="reconciled: order found by label")
        return True, fields, matches[0]
    if kind == "extend":
        iid = ctx.get("instance_id")
        order = client.get_instance(iid) if iid else {}
        old, new = parse_time(ctx.get("old_expires_at")), parse_time(order.get("expires_at"))
        fields["order"] = {"id": iid, "old_expires_at": ctx.get("old_expires_at"), "expires_at": order.get("expires_at"),
                           "new_expires_at": order.get("expires_at")}  # extend_instance.py's name for it
        found = bool(old and new and new > old)
        if found and entry.get("status") in ("sent", "unknown"):
            journal.update(entry["id"], "settled", order_id=iid, reason="reconciled: expiry moved later")
        return found, fields, None
    if kind == "topup":
        fields["credits"] = client.credits_balance()
    return None, fields, None  # a balance cannot prove which deposit landed


def _open(entry: dict) -> bool:
    """Whether reconcile asks the chain (or Stripe) about ``entry``: its outcome is open, or the
    server refused it while its signature may still settle (``journal.live_refusal``)."""
    return entry.get("status") in ("sent", "unknown") or live_refusal(entry, time.time())


def _conclude(journal: Journal, entry: dict, state: str, found: bool | None, where: str) -> None:
    """What the evidence makes of an open entry: never used and no longer valid → ``expired``
    (it stops counting); a refused payment that was used after all → ``unknown`` (the money
    moved: it counts, and a re-run for its order stops, until the order is found)."""
    status = journal.get(entry["id"]).get("status")
    if state == "expired_unused" and not found and (status in ("sent", "unknown") or status == "rejected"):
        journal.update(entry["id"], "expired", reason=f"reconciled: never used ({where}) and no longer valid")
    elif state == "used" and status == "rejected":
        journal.update(entry["id"], "unknown", reason=f"reconciled: refused by the server, but used ({where})")


def ask_chain(journal: Journal, entry: dict, rpc, found: bool | None) -> dict | None:
    """The chain's view of a payment still ``sent``/``unknown``, or refused but still live
    (read-only queries); a payment the chain shows unused and no longer valid, with no order
    found, becomes ``expired``; a refused one the chain shows used becomes ``unknown``."""
    if not _open(entry) or entry.get("method") == "credits":
        return None

    chain = onchain.check(entry, rpc)
    _conclude(journal, entry, chain["state"], found, f"on chain, {chain.get('query')}")
    return chain


def ask_stripe(journal: Journal, entry: dict, settings, found: bool | None) -> dict:
    """A card payment is on no chain: its PaymentIntent when known and, for an entry still
    ``sent``/``unknown``, what Stripe says about its Shared Payment Token (read-only, the user's key);
    a token never spent and no longer usable, with no order found, makes the entry ``expired``."""
    if not _open(entry):
        return {"payment_intent": entry.get("tx_hash"), "spt": entry.get("spt")}
    from .schemes.mpp_stripe import token_state

    state = token_state(entry, settings)
    _conclude(journal, entry, state["state"], found, f"at Stripe, {state.get('query')}")
    return state


def advice(entry_id: str, found: bool | None, chain: dict | None, *, card: bool = False, refused: bool = False) -> str:
    """One paragraph an agent can act on; it never says to pay again while the money may have moved."""
    resend = f"`{cmdline.command('reconcile.py', entry_id, '--resend')}` re-sends the same signed payment (the server returns the first result, never a second charge)"
    state = (chain or {}).get("state")
    if found:
        text = "The order exists: the payment went through. Do not pay again."
    elif state == "used":
        text = f"The chain shows the payment was used (the money moved), but the order is not visible yet. Do not pay again; {resend}."
    elif state == "expired_unused":
        text = "The chain shows the payment was never used and can no longer settle; the journal entry is now expired. Paying again is safe."
    elif state == "unused" and refused:
        text = (f"The server refused this payment, but the chain shows it unused and still valid until {_when(chain.get('valid_before'))}: "
                "the server could still settle it, so it counts toward the budget. Do not pay again for this order; check again after that time.")
    elif state == "unused":
        text = f"The chain shows the payment unused but still valid until {_when(chain.get('valid_before'))}: it may still settle. Do not pay again; {resend}."
    elif found is False:
        text = f"No matching order yet. Check again in a minute; if it stays missing, {resend}."
    else:
        text = "Compare the balance with the journal entry; --resend re-sends the same signed payment if needed."
    if state == "unknown":
        text += f" The chain could not tell whether the payment settled ({chain.get('reason')}); do not pay again until it can."
    if card:  # the same evidence, from Stripe about the card's token instead of from a chain
        text = text.replace("The chain shows", "Stripe shows").replace("(the money moved)", "(the card was charged)").replace(
            "The chain could not tell", "Stripe could not tell").replace("on chain", "at Stripe")
    return text


def _when(ts) -> str:
    if not isinstance(ts, (int, float)):
        return "an unknown time"
    return iso(datetime.fromtimestamp(ts, timezone.utc))
