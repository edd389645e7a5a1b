"""The payment journal: ``<state_dir>/journal/<id>.json``, one file per paid request.

Written (0600) *before* a signed payment leaves this machine and completed after, so
that an ambiguous outcome (timeout, reset connection, 5xx) can be reconciled by
looking the order up, or by resending the *same* signed payload with the same
``Idempotency-Key``, never by signing a second payment.

The stored payment header is a bearer instrument (whoever holds it can settle it
once), hence 0600 and never printed: ``public()`` strips it.

Statuses: ``reserved`` (the budget guard took the amount; nothing is signed yet) → ``sent`` (signed
and about to leave) → ``settled`` | ``rejected`` | ``unknown``; ``not_sent`` when signing failed or the
connection provably failed before any byte left; ``expired`` when reconcile.py read from the chain
that a ``sent``/``unknown``/``rejected`` payment was never used and its validity has passed (it can
never settle).

Signed means spent until proven otherwise: a ``rejected`` entry (the server answered our payment
with a 402) still holds a signature the server may settle later, so until its ``valid_before`` has
passed it counts toward the budget and is unresolved like an ``unknown`` one (``live_refusal``).
The status rules live here, in ``live_refusal`` and ``unresolved``; the budget's ``counts`` uses them.
"""

from __future__ import annotations

import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ComputeError, UsageError
from ..state import read_json, write_private_json

STATUSES = ("reserved", "sent", "settled", "rejected", "unknown", "not_sent", "expired")
SECRET_FIELDS = ("payment_header_value",)
_ID = re.compile(r"^[0-9a-f]{32}$")


def live_refusal(e: dict, now: float) -> bool:
    """A payment the server refused after receiving it whose signature may still settle: ``rejected``,
    signed (not credits), and its validity window not provably closed (``valid_before`` in the
    future, or unknown). It stops being live when ``valid_before`` passes or reconcile.py proves
    it can no longer settle (the entry becomes ``expired``)."""
    if e.get("status") != "rejected" or e.get("method") == "credits" or not e.get("payment_header_value"):
        return False
    vb = e.get("valid_before")
    return not (isinstance(vb, (int, float)) and not isinstance(vb, bool) and vb <= now)


def unresolved(e: dict, now: float, *, pid_gone) -> bool:
    """An entry whose money may have moved or may still move, with no live process behind it: a
    re-run paying for the same order must stop (``unresolved_payment``). ``unknown``; ``sent`` whose
    process is gone (``pid_gone(e)``); a refused payment still live (``live_refusal``)."""
    status = e.get("status")
    if status == "unknown":
        return True
    if status == "sent":
        return e.get("pid") is None or pid_gone(e)
    return live_refusal(e, now)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return uuid.uuid4().hex


def _durable(status: str | None, fields: dict) -> bool:
    """Whether a journal write must reach the disk before the caller goes on (fsync of the file and
    its folder). Exactly the writes a power cut must not lose: ``sent``, written before the signed
    payment leaves this machine, and field notes made while signing (a Solana account created,
    money spent). Every other write is still atomic and seen at once by other processes (the
    budget reads it under its lock), just not forced to disk: a lost reservation had sent nothing,
    and a lost ``settled``/``rejected``/``unknown`` leaves the entry ``sent``, which reconcile.py
    resolves. One fsync pair per payment instead of four fsyncs (see bench_paid_provision.py)."""
    return status == "sent" or (status is None and bool(fields))


class Journal:
    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "journal"

    def path(self, entry_id: str) -> Path:
        if not _ID.match(entry_id or ""):
            raise UsageError(f"Journal id must be 32 hex characters, got {entry_id!r}.", hint="See reconcile.py --list.")
        return self.dir / f"{entry_id}.json"

    def create(self, entry: dict) -> dict:
        """Record a request about to be paid. ``entry`` must carry ``id``; status starts at ``sent``."""
        e = dict(entry)
        e.setdefault("id", new_id())
        e.setdefault("created_at", _now())
        e["status"] = e.get("status") or "sent"
        e["updated_at"] = e["created_at"]
        e.setdefault("history", []).append({"at": e["created_at"], "status": e["status"]})
        p = self.path(e["id"])
        if p.exists():
            raise ComputeError(f"Journal entry {e['id']} already exists.", code="journal_conflict")
        write_private_json(p, e, durable=_durable(e["status"], {}))
        return e

    def get(self, entry_id: str) -> dict:
        data = read_json(self.path(entry_id))
        if not isinstance(data, dict):
            raise UsageError(f"No journal entry {entry_id}.", code="journal_not_found", hint=f"Entries live in {self.dir}; see reconcile.py --list.")
        return data

    def find(self, prefix: str) -> dict:
        """An entry by full id or unique prefix (what the label carries)."""
        if _ID.match(prefix or ""):
            return self.get(prefix)
        if not re.match(r"^[0-9a-f]{4,32}$", prefix or ""):
            raise UsageError(f"Journal id must be hex, got {prefix!r}.")
        hits = [p for p in self.dir.glob(f"{prefix}*.json")] if self.dir.is_dir() else []
        if len(hits) != 1:
            raise UsageError(f"{'No' if not hits else 'More than one'} journal entry matches {prefix!r}.", code="journal_not_found")
        return self.get(hits[0].stem)

    def update(self, entry_id: str, status: str | None = None, **fields: Any) -> dict:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown journal status {status!r}")
        e = self.get(entry_id)
        e.update(fields)
        e["updated_at"] = _now()
        if status is not None:
            e["status"] = status
            note = {"at": e["updated_at"], "status": status}
            for k in ("reason", "order_id", "tx_hash", "http_status"):
                if fields.get(k) is not None:
                    note[k] = fields[k]
            e.setdefault("history", []).append(note)
        write_private_json(self.path(entry_id), e, durable=_durable(status, fields))
        return e

    def discard(self, entry_id: str) -> None:
        """Remove a reservation that never became a payment (nothing was signed or spent)."""
        e = self.get(entry_id)
        if e.get("status") != "reserved" or e.get("payment_header_value") or e.get("recipient_account_created"):
            raise ComputeError(f"Journal entry {entry_id} is a payment, not a bare reservation; it is kept.", code="journal_conflict")
        self.path(entry_id).unlink(missing_ok=True)

    def list(self, *, modified_since: float | None = None) -> list[dict]:
        """Every entry, oldest first. ``modified_since`` (unix time) skips files untouched since
        then: an entry is never created after its file was last written. A file unchanged since
        this process last read it (same size and nanosecond mtime) is not parsed again: one paid
        run lists the journal several times (unresolved payments, the budget twice)."""
        if not self.dir.is_dir():
            return []
        out = []
        with os.scandir(self.dir) as it:
            for d in it:
                if not d.name.endswith(".json") or not _ID.match(d.name[:-5]):
                    continue
                try:
                    st = d.stat()
                except OSError:
                    continue
                if modified_since is not None and st.st_mtime < modified_since:
                    continue
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                hit = _PARSED.get(d.path)
                if hit is not None and hit[0] == key:
                    e = hit[1]
                else:
                    try:
                        e = read_json(Path(d.path))
                    except ComputeError:
                        continue
                    if not isinstance(e, dict):
                        continue
                    _PARSED[d.path] = (key, e)
                out.append(dict(e))
        return sorted(out, key=lambda e: e.get("created_at") or "")


# path -> ((mtime_ns, size, inode), parsed entry): files this process already read
_PARSED: dict[str, tuple[tuple[int, int, int], dict]] = {}


def public(entry: dict) -> dict:
    """The entry without the signed payment (a bearer instrument)."""
    e = {k: v for k, v in entry.items() if k not in SECRET_FIELDS}
    if entry.get("payment_header_value"):
        e["payment_header_value"] = "<stored, not shown>"
    return e
