"""Approved quotes: what a human saw is what gets paid, once.

``--quote`` records what would be paid (the command, the order: plan or instance, region, hours,
label, OS, hostname, the fingerprint of the SSH key that gets root and the digest of the user data,
an AI Machine's model and mode, and for an extension the instance's current
``expires_at``; the payment: method, network, asset, atomic amount, payee) under a short id in the
ledger (shared by every agent on it), valid for ``TTL_S``. ``--confirm-quote ID`` pays only when the fresh 402 gives exactly
those terms; any difference is refused before anything is signed, with the differences listed.

The rules a quote id obeys (issue 19), all kept here whatever store holds the records:

- The id digests the terms, the state they priced (an extension's current expiry) and a fresh
  random part: two quotes never share an id, even for the same terms asked twice.
- A quote pays at most once, from any process on any machine sharing the ledger: ``claim`` marks
  it used in one ledger transaction just before its payment is signed; from then on the id
  answers ``quote_used`` forever (also after it expired), and the record stays.
- A quote recorded without a catalog price check (``price_checked: false``) is not an approval
  of its amount by itself: paying it still needs an explicit ``--max-usd`` (``price_unknown``).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from datetime import datetime, timezone
from typing import Any

from ..errors import ComputeError, PolicyError, UsageError
from ..networks import NETWORKS
from .journal import ledger_of

TTL_S = 600
_ID = re.compile(r"^[0-9a-f]{16}$")
# old_expires_at: the state an extension was priced against; once it moved (the extension was
# paid, by this quote or another), the quote no longer describes what would be bought.
# login_key and user_data_sha256: who gets root on a new machine and what runs at its first boot.
ORDER_FIELDS = ("action", "plan", "region", "os_id", "label", "hostname", "hours", "instance_id", "total_usd", "old_expires_at",
                "model_id", "mode", "login_key", "user_data_sha256")
PAYMENT_FIELDS = ("method", "network", "asset", "amount_atomic", "payee")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fields_of(terms: dict) -> dict:
    """The terms a quote pins: the order and the payment (nothing that varies between two asks,
    like a challenge id or an expiry)."""
    out = {k: terms.get(k) for k in ORDER_FIELDS if terms.get(k) is not None}
    out.update({k: terms.get(k) for k in PAYMENT_FIELDS})
    net = NETWORKS.get(out["network"]) if isinstance(out.get("network"), str) else None
    base58 = net is not None and net.family == "svm"  # Solana addresses are case-sensitive
    if isinstance(out.get("network"), str) and not base58 and isinstance(out.get("payee"), str):
        out["payee"] = out["payee"].lower()  # EVM addresses: checksum casing is not a difference
    if isinstance(out.get("asset"), str) and not base58:
        out["asset"] = out["asset"].lower()
    return out


def quote_id(fields: dict, nonce: str) -> str:
    """The terms (with the state they priced) and a fresh random part: never the id of another quote."""
    return hashlib.sha256(json.dumps([fields, nonce], sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def price_checked(terms: dict) -> bool:
    """Whether the amount was held against the catalog: a total from the catalog and no note
    saying the price could not be checked."""
    return terms.get("total_usd") is not None and not terms.get("price_check")


def _used_error(rec: dict) -> PolicyError:
    return PolicyError(
        f"Quote {rec['quote_id']} was already used (at {rec.get('used_at')}, journal {rec.get('journal_id')}). Nothing was signed.",
        code="quote_used",
        details={"quote_id": rec["quote_id"], "journal_id": rec.get("journal_id"), "used_at": rec.get("used_at")},
        hint="A quote pays once. Quote again if the human wants another one, and show them the new quote.",
    )


class Quotes:
    def __init__(self, target: Any, *, clock=time.time) -> None:
        self.ledger = ledger_of(target)  # Settings, or a state folder (its SQLite ledger)
        self.clock = clock

    def record(self, terms: dict, journal_id: str) -> dict:
        """Store the quote; returns {"quote_id", "quote_expires_at", "price_checked"} for the output."""
        fields = fields_of(terms)
        nonce = secrets.token_hex(16)
        qid = quote_id(fields, nonce)
        now = self.clock()
        checked = price_checked(terms)
        try:
            self.ledger.insert_quote(qid, {"quote_id": qid, "fields": fields, "nonce": nonce, "journal_id": journal_id,
                                           "price_checked": checked, "created_at": _iso(now), "expires_at": now + TTL_S})
        except ComputeError as e:
            if e.code != "journal_conflict":
                raise
            raise PolicyError("Quote id collision; quote again.", code="quote_collision") from None  # 2**-64 odds
        return {"quote_id": qid, "quote_expires_at": _iso(now + TTL_S), "price_checked": checked}

    def load(self, qid: str) -> dict:
        """The recorded quote; UsageError (exit 2) for an unknown id, PolicyError for an expired one."""
        qid = (qid or "").strip().lower()
        if not _ID.match(qid):
            raise UsageError(f"A quote id is 16 hex characters (the quote_id of a --quote), got {qid[:40]!r}.", code="unknown_quote")
        rec = self.ledger.get_quote(qid)
        if not isinstance(rec, dict) or not isinstance(rec.get("fields"), dict):
            raise UsageError(f"No quote {qid} was made here.", code="unknown_quote", hint="Quote again with --quote, show it to the human, then pay with its quote_id.")
        if rec.get("used_at"):
            raise _used_error(rec)
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

    def require_cap(self, rec: dict, settings) -> None:
        """A quote whose price was not checked against the catalog approves no amount by itself:
        the cap must be one the human gave for this payment (--max-usd)."""
        if rec.get("price_checked", True) is False and settings.max_spend_source != "--max-usd":
            raise PolicyError(
                f"Quote {rec['quote_id']} was made without a catalog price check, so its amount is bounded only by the spend cap; "
                "paying it needs an explicit --max-usd. Nothing was sent.",
                code="price_unknown",
                details={"quote_id": rec["quote_id"], "cap_usd": str(settings.max_spend_usd), "cap_source": settings.max_spend_source},
                hint="Show the human the quoted amount; only if they accept it, they re-run with --confirm-quote and --max-usd <that amount>.",
            )

    def claim(self, rec: dict) -> dict:
        """Mark the quote used, just before its payment is signed; quote_used if it already was
        (by this process or any other). The record stays: the id never pays again."""
        def use(now: dict) -> dict:
            if now.get("nonce") != rec.get("nonce"):
                raise UsageError(f"Quote {rec['quote_id']} is no longer on record.", code="unknown_quote",
                                 hint="Quote again with --quote and have the human approve the new quote.")
            if now.get("used_at"):
                raise _used_error(now)
            now["used_at"] = _iso(self.clock())
            return now

        now = self.ledger.update_quote(rec["quote_id"], use)
        if now is None:
            raise UsageError(f"Quote {rec['quote_id']} is no longer on record.", code="unknown_quote",
                             hint="Quote again with --quote and have the human approve the new quote.")
        return now
