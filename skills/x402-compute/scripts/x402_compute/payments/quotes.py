"""Approved quotes: what a human saw is what gets paid.

``--quote`` records what would be paid (the command, the order: plan or instance, region, hours,
label, OS, hostname; the payment: method, network, asset, atomic amount, payee) under a short id
in the ledger (shared by every agent on it), valid for ``TTL_S``. ``--confirm-quote ID`` pays only when the
fresh 402 gives exactly those terms; any difference is refused before anything is signed, with
the differences listed. A quote is paid at most once: its journal id is reserved with it (the journal's primary key, so
two agents sharing a ledger cannot both pay it).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime, timezone
from typing import Any

from ..errors import PolicyError, UsageError
from .journal import ledger_of

TTL_S = 600
_ID = re.compile(r"^[0-9a-f]{16}$")
ORDER_FIELDS = ("action", "plan", "region", "os_id", "label", "hostname", "hours", "instance_id", "total_usd")
PAYMENT_FIELDS = ("method", "network", "asset", "amount_atomic", "payee")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fields_of(terms: dict) -> dict:
    """The terms a quote pins: the order and the payment (nothing that varies between two asks,
    like a challenge id or an expiry)."""
    out = {k: terms.get(k) for k in ORDER_FIELDS if terms.get(k) is not None}
    out.update({k: terms.get(k) for k in PAYMENT_FIELDS})
    if isinstance(out.get("network"), str) and out["network"] != "solana" and isinstance(out.get("payee"), str):
        out["payee"] = out["payee"].lower()  # EVM addresses: checksum casing is not a difference
    if isinstance(out.get("asset"), str) and out.get("network") != "solana":
        out["asset"] = out["asset"].lower()
    return out


def quote_id(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


class Quotes:
    def __init__(self, target: Any, *, clock=time.time) -> None:
        self.ledger = ledger_of(target)  # Settings, or a state folder (its SQLite ledger)
        self.clock = clock

    def record(self, terms: dict, journal_id: str) -> dict:
        """Store the quote; returns {"quote_id", "quote_expires_at"} for the output."""
        fields = fields_of(terms)
        qid = quote_id(fields)
        now = self.clock()
        self.ledger.put_quote(qid, {"quote_id": qid, "fields": fields, "journal_id": journal_id,
                                    "created_at": _iso(now), "expires_at": now + TTL_S})
        return {"quote_id": qid, "quote_expires_at": _iso(now + TTL_S)}

    def load(self, qid: str) -> dict:
        """The recorded quote; UsageError (exit 2) for an unknown id, PolicyError for an expired one."""
        qid = (qid or "").strip().lower()
        if not _ID.match(qid):
            raise UsageError(f"A quote id is 16 hex characters (the quote_id of a --quote), got {qid[:40]!r}.", code="unknown_quote")
        rec = self.ledger.get_quote(qid)
        if not isinstance(rec, dict) or not isinstance(rec.get("fields"), dict):
            raise UsageError(f"No quote {qid} was made here.", code="unknown_quote", hint="Quote again with --quote, show it to the human, then pay with its quote_id.")
        if not isinstance(rec.get("expires_at"), (int, float)) or rec["expires_at"] < self.clock():
            raise PolicyError(
                f"Quote {qid} expired at {_iso(float(rec.get('expires_at') or 0))} (quotes last {TTL_S // 60} minutes). Nothing was signed.",
                code="quote_expired",
                hint="Quote again with --quote and have the human approve the new quote.",
            )
        return rec

    def check(self, rec: dict, terms: dict) -> None:
        """Refuse (quote_changed) unless ``terms`` are exactly the approved ones."""
        now = fields_of(terms)
        quoted = rec["fields"]
        diff = {k: {"quoted": quoted.get(k), "now": now.get(k)} for k in sorted(set(quoted) | set(now)) if quoted.get(k) != now.get(k)}
        if diff:
            raise PolicyError(
                f"The terms changed since quote {rec['quote_id']} ({', '.join(diff)}). Nothing was signed.",
                code="quote_changed",
                details={"quote_id": rec["quote_id"], "differences": diff},
                hint="Show the human the new terms (quote again with --quote) and pay only with the quote they approve.",
            )
