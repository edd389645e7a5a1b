"""The payment journal: one entry per paid request, kept in the ledger (``x402_compute.ledger``:
SQLite in the state folder, or a PostgreSQL shared by several agents).

Written *before* a signed payment leaves this machine and completed after, so that an ambiguous
outcome (timeout, reset connection, 5xx) can be reconciled by looking the order up, or by
resending the *same* signed payload with the same ``Idempotency-Key``, never by signing a second
payment.

The stored payment header is a bearer instrument (whoever holds it can settle it once, to the
payee it names), hence never printed: ``public()`` strips it.

Statuses: ``reserved`` (the budget guard took the amount; nothing is signed yet) → ``sent`` (signed
and about to leave) → ``settled`` | ``rejected`` | ``unknown``; ``not_sent`` when signing failed or the
connection provably failed before any byte left; ``expired`` when reconcile.py read from the chain
that a ``sent``/``unknown``/``rejected`` payment was never used and its validity has passed (it can
never settle).

Signed means spent until proven otherwise: a ``rejected`` entry (the server answered our payment
with a 402) still holds a signature the server may settle later, so until its ``valid_before`` has
passed it counts toward the budget and is unresolved like an ``unknown`` one (a live refusal).

``Entry`` is the typed view of one entry and owns these status rules: whether it counts toward the
budget, whether it is in flight (a live process is paying it), whether it is unresolved (paying the
same order again could charge twice), whether it is a live refusal, and its one projection for
output (``Entry.view``). ``live_refusal`` and ``unresolved`` are the same rules on a plain entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote

from .. import cmdline, redact
from ..errors import ComputeError, ConfigError, UsageError
from ..ledger import Ledger, LedgerUnavailable, open_ledger
from ..ledger.store import SQLITE_NAME
from ..ledger.store import Ledger as _L
from ..money import plain
from ..networks import NETWORKS
from ..state import write_private_json

STATUSES = ("reserved", "sent", "settled", "rejected", "unknown", "not_sent", "expired")
COUNTED = ("settled", "unknown", "sent", "reserved")
SECRET_FIELDS = ("payment_header_value",)
RESERVATION_TTL_S = 3600  # a reservation older than this stops counting (signing takes seconds)
HEARTBEAT_S = 20  # a process holding a reservation refreshes its heartbeat this often...
STALE_S = 120  # ...and one not refreshed for this long is dead, on whatever machine it ran
HOST = socket.gethostname()
_ID = re.compile(r"^[0-9a-f]{32}$")
_SCRIPT_OF = {"provision": "provision.py", "extend": "extend_instance.py", "topup": "credits_topup.py"}


def script_of(kind: str | None, context: Any) -> str | None:
    """The script an entry's payment came from. keepalive.py pays with extend_instance.py's call, so
    its entries are of kind ``extend`` (every rule on kinds holds across the two scripts, above all
    the unresolved-payment stop for the same instance) and only its context's ``keepalive`` mark
    tells them apart."""
    if kind == "extend" and isinstance(context, dict) and isinstance(context.get("keepalive"), dict):
        return "keepalive.py"
    return _SCRIPT_OF.get(kind or "", kind)


def live_refusal(e: Mapping, now: float) -> bool:
    """A payment the server refused after receiving it whose signature may still settle (``Entry.live_refusal``)."""
    return Entry.of(e).live_refusal(now)


def unresolved(e: Mapping, now: float, *, pid_gone=None) -> bool:
    """An entry whose money may have moved or may still move, with no live process behind it
    (``Entry.unresolved``). ``pid_gone`` is accepted for older callers; the entry's rule decides."""
    return Entry.of(e).unresolved(now)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return uuid.uuid4().hex


def parse_ts(ts: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def usd(micros: int) -> str:
    """Micro-dollars as an exact dollar string: 2500000 -> "2.5"."""
    return plain(Decimal(micros).scaleb(-6))


def atomic_to_micros(amount: int, decimals: int) -> int:
    """Atomic token units to micro-dollars, rounded up (every supported token is a 1:1 USD stablecoin)."""
    if decimals <= 6:
        return amount * 10 ** (6 - decimals)
    q, r = divmod(amount, 10 ** (decimals - 6))
    return q + (1 if r else 0)


def entry_micros(e: Mapping) -> int:
    """What a journal entry counts against the budget, in micro-dollars."""
    m = e.get("budget_micros")
    if isinstance(m, int) and not isinstance(m, bool) and m >= 0:
        return m
    if e.get("method") == "credits":  # spending credits already bought (and counted) is free
        return 0
    offer = e.get("offer") or {}  # entries written before the budget existed
    net = NETWORKS.get(str(offer.get("network") or ""))
    try:
        return atomic_to_micros(int(offer.get("amount_atomic")), net.decimals) if net else 0
    except (TypeError, ValueError):
        return 0


def pid_gone(host: Any, pid: Any) -> bool:
    """The process ``pid`` on this machine provably no longer exists (another machine's: can't tell)."""
    if host != HOST or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists but belongs to someone else
        return False
    return False


@dataclass(frozen=True)
class Entry:
    """One journal entry, typed. ``data`` is the whole record (what the flow and reconcile read)."""

    id: str
    status: str | None
    kind: str | None
    method: str | None
    created: float | None  # unix seconds
    micros: int  # what it counts against the budget when it counts
    host: str | None
    pid: int | None
    heartbeat: float | None  # last sign of life of the process holding a reservation
    agent: str | None  # which state folder on which machine wrote it
    signed: bool = False  # holds a signed payment (not credits): the server may settle it
    valid_before: float | None = None  # unix seconds after which the signed payment can no longer settle
    data: Mapping = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, e: Mapping) -> "Entry":
        pid = e.get("pid")
        hb = e.get("heartbeat_ts")
        vb = e.get("valid_before")
        return cls(id=str(e.get("id") or ""), status=e.get("status"), kind=e.get("kind"), method=e.get("method"),
                   created=parse_ts(e.get("created_at")), micros=entry_micros(e), host=e.get("host"),
                   pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
                   heartbeat=float(hb) if isinstance(hb, (int, float)) and not isinstance(hb, bool) else None,
                   agent=e.get("agent"), signed=e.get("method") != "credits" and bool(e.get("payment_header_value")),
                   valid_before=float(vb) if isinstance(vb, (int, float)) and not isinstance(vb, bool) else None, data=e)

    @classmethod
    def of_row(cls, r: Mapping) -> "Entry":
        """From the ledger's indexed columns alone (the budget's fast path)."""
        return cls(id=r["id"], status=r["status"], kind=r["kind"], method=r["method"], created=r["created_ts"], micros=int(r["micros"] or 0),
                   host=r["host"], pid=r["pid"], heartbeat=r["heartbeat_ts"], agent=r["agent"], signed=bool(r["signed"]),
                   valid_before=r["valid_before"], data=r)

    def columns(self) -> dict:
        """What the ledger indexes: the facts these rules query."""
        return {"created_ts": self.created if self.created is not None else 0.0, "status": self.status or "", "kind": self.kind,
                "micros": self.micros, "host": self.host, "pid": self.pid, "heartbeat_ts": self.heartbeat, "agent": self.agent,
                "method": self.method, "signed": 1 if self.signed else 0, "valid_before": self.valid_before}

    # -- the status rules ----------------------------------------------------------------------
    # The budget sums these in the ledger (SQL) and reads only the rows in SOMETIMES_COUNTED to judge
    # them here: every other status never counts (a test holds the three sets to ``counts``).
    ALWAYS_COUNTED = ("settled", "unknown", "sent")
    SOMETIMES_COUNTED = ("reserved", "rejected")

    def counts(self, now: float) -> bool:
        """Counts toward the budget: the money left or may have left (``settled``, ``unknown``,
        ``sent``: until reconcile.py proves it unused, which marks it ``expired``), or a live
        reservation (a process about to sign; it stops counting once its heartbeat is stale, or it is older than any signing takes), or a live refusal (the server
        refused the signed payment but may still settle it until its ``valid_before``)."""
        if self.status in self.ALWAYS_COUNTED:
            return True
        if self.status == "rejected":
            return self.live_refusal(now)
        if self.status not in COUNTED:
            return False
        if self.status == "reserved":
            if self.created is None or now - self.created > RESERVATION_TTL_S:
                return False
            return self._alive_reservation(now)
        return True

    def _alive_reservation(self, now: float) -> bool:
        if self.host == HOST and self.pid is not None and not pid_gone(self.host, self.pid):
            return True  # here the pid says it: alive (a heartbeat is for other machines to read)
        # Another machine's, or no such process here: by its heartbeat. A pid gone here is not proof
        # enough: two machines sharing one ledger may share a host name (two laptops named alike,
        # default images), and the other's live reservation must keep counting. A run that died here
        # holds its amount until its heartbeat is stale (STALE_S), then releases it.
        last = max(x for x in (self.heartbeat, self.created) if x is not None)
        return now - last <= STALE_S

    def in_flight(self, now: float) -> bool:
        """A live process is paying it now (reserved or sent, not yet answered)."""
        if self.status == "reserved":
            return self.counts(now)
        if self.status == "sent" and self.pid is not None:
            return not pid_gone(self.host, self.pid) and (self.host == HOST or now - max(self.heartbeat or 0, self.created or 0) <= STALE_S)
        return False

    def live_refusal(self, now: float) -> bool:
        """Refused by the server after it received the payment, but signed and its validity window
        not provably closed (``valid_before`` in the future, or unknown): the server may still settle
        it. It stops being live when ``valid_before`` passes or reconcile.py proves it can no longer
        settle (the entry becomes ``expired``)."""
        if self.status != "rejected" or not self.signed:
            return False
        return not (self.valid_before is not None and self.valid_before <= now)

    # The only statuses ``unresolved`` can be true for (a paid run reads just these, not the whole history).
    UNRESOLVED_STATUSES = ("unknown", "sent", "rejected")

    def unresolved(self, now: float) -> bool:
        """Its money may have moved or may still move, and nobody is waiting for it: paying the same
        order again could charge twice (``unknown``: exit 4; ``sent`` with no live process behind it:
        a run killed after the payment left; a live refusal)."""
        if self.status == "unknown":
            return True
        if self.status == "sent":
            return not self.in_flight(now)
        return self.live_refusal(now)

    # -- the one projection for output --------------------------------------------------------
    def view(self, now: float) -> dict:
        """Every fact the scripts print about an entry (reconcile.py --list and budget.py each
        pick theirs from it, under their documented names)."""
        d = self.data
        offer = d.get("offer") or {}
        return {
            "id": self.id,
            "created_at": d.get("created_at"),
            "kind": self.kind,
            "script": script_of(self.kind, d.get("context")),
            "method": self.method,
            "status": self.status,
            "label": d.get("label"),
            "network": offer.get("network") or ("credits" if self.method == "credits" else None),
            "offer_network": offer.get("network"),
            "amount_usd": offer.get("amount_usd") or (d.get("terms") or {}).get("total_usd"),
            "counted_usd": usd(self.micros),
            "counts": self.counts(now),
            "order_id": d.get("order_id"),
            "instance": d.get("order_id") or (d.get("context") or {}).get("instance_id"),
            "tx_hash": d.get("tx_hash"),
            "valid_until": datetime.fromtimestamp(self.valid_before, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if self.valid_before is not None else None,
            "unresolved": self.unresolved(now),
            "host": self.host,
            "agent": self.agent,
        }


def _durable(status: str | None, fields: dict) -> bool:
    """Whether a journal write must reach the disk before the caller goes on. Exactly the writes a
    power cut must not lose: ``sent``, written before the signed payment leaves this machine, and
    field notes made while signing (a Solana account created, money spent). Every other write is
    still atomic and seen at once by other processes (the budget reads it in its transaction),
    just not forced to disk: a lost reservation had sent nothing, and a lost
    ``settled``/``rejected``/``unknown`` leaves the entry ``sent``, which reconcile.py resolves."""
    return status == "sent" or (status is None and bool(fields))


def ledger_of(target: Any) -> Ledger:
    """The ledger for ``target``: a Settings (its state folder and COMPUTE_LEDGER_URL), a Ledger,
    or a state folder path (its SQLite ledger). The first use of a state folder imports what the
    JSON journal of earlier releases left there (see ``legacy_import``)."""
    if isinstance(target, Ledger):
        return target
    if hasattr(target, "state_dir"):
        led = open_ledger(Path(target.state_dir), getattr(target, "ledger_url", None))
    else:
        led = open_ledger(Path(target))
    key = (led.state_dir, led.where)
    if key not in _IMPORTED:
        sqlite_import(led)  # a folder switching to a shared ledger brings its own history along
        legacy_import(led)
        _IMPORTED.add(key)
    return led


_IMPORTED: set[tuple[Path, str]] = set()


class Journal:
    def __init__(self, target: Any) -> None:
        self.ledger = ledger_of(target)

    @staticmethod
    def _check(entry_id: str) -> str:
        if not _ID.match(entry_id or ""):
            raise UsageError(f"Journal id must be 32 hex characters, got {entry_id!r}.", hint=f"See {cmdline.command('reconcile.py', '--list')}.")
        return entry_id

    @staticmethod
    def _loaded(e: dict) -> dict:
        if e.get("payment_header_value"):
            # A journalled payment is a secret this process now holds: a server may have echoed it
            # into the entry's reason or body, and whatever prints the entry must not show it.

            redact.register_header(str(e.get("payment_header_name") or "X-PAYMENT"), e["payment_header_value"])
        return e

    def _prepare(self, entry: dict) -> dict:
        e = dict(entry)
        e.setdefault("id", new_id())
        e.setdefault("created_at", _now())
        e["status"] = e.get("status") or "sent"
        e["updated_at"] = e["created_at"]
        e.setdefault("agent", self.ledger.agent)
        e["history"] = list(e.get("history") or []) + [{"at": e["created_at"], "status": e["status"]}]
        self._check(e["id"])
        return e

    def create(self, entry: dict) -> dict:
        """Record a request about to be paid. ``entry`` may carry ``id``; status starts at ``sent``."""
        e = self._prepare(entry)
        try:
            self.ledger.insert_entry(e, Entry.of(e).columns(), durable=_durable(e["status"], {}))
        except ComputeError as err:
            if err.code == "journal_conflict":
                raise ComputeError(f"Journal entry {e['id']} already exists.", code="journal_conflict") from None
            raise
        return e

    def get(self, entry_id: str) -> dict:
        data = self.ledger.get_entry(self._check(entry_id))
        if not isinstance(data, dict):
            raise UsageError(f"No journal entry {entry_id}.", code="journal_not_found",
                             hint=f"The journal is in the {self.ledger.engine} ledger {self.ledger.where}; see {cmdline.command('reconcile.py', '--list')}.")
        return self._loaded(data)

    def get_or_none(self, entry_id: str) -> dict | None:
        data = self.ledger.get_entry(self._check(entry_id))
        return self._loaded(data) if isinstance(data, dict) else None

    def find(self, prefix: str) -> dict:
        """An entry by full id or unique prefix (what the label carries)."""
        if _ID.match(prefix or ""):
            return self.get(prefix)
        if not re.match(r"^[0-9a-f]{4,32}$", prefix or ""):
            raise UsageError(f"Journal id must be hex, got {prefix!r}.")
        hits = self.ledger.ids_with_prefix(prefix)
        if len(hits) != 1:
            raise UsageError(f"{'No' if not hits else 'More than one'} journal entry matches {prefix!r}.", code="journal_not_found")
        return self.get(hits[0])

    def update(self, entry_id: str, status: str | None = None, **fields: Any) -> dict:
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown journal status {status!r}")

        def change(e: dict) -> tuple[dict, dict]:
            e.update(fields)
            e["updated_at"] = _now()
            if status is not None:
                e["status"] = status
                note = {"at": e["updated_at"], "status": status}
                for k in ("reason", "order_id", "tx_hash", "http_status"):
                    if fields.get(k) is not None:
                        note[k] = fields[k]
                e.setdefault("history", []).append(note)
            return e, Entry.of(e).columns()

        e = self.ledger.update_entry(self._check(entry_id), change, durable=_durable(status, fields))
        if e is None:
            raise UsageError(f"No journal entry {entry_id}.", code="journal_not_found")
        return self._loaded(e)

    def discard(self, entry_id: str) -> None:
        """Remove a reservation that never became a payment (nothing was signed or spent)."""
        e = self.get(entry_id)
        if e.get("status") != "reserved" or e.get("payment_header_value") or e.get("recipient_account_created"):
            raise ComputeError(f"Journal entry {entry_id} is a payment, not a bare reservation; it is kept.", code="journal_conflict")
        self.ledger.delete_reservation(entry_id)

    def list(self, *, modified_since: float | None = None, statuses: tuple[str, ...] | None = None) -> list[dict]:
        """Every entry, oldest first (``modified_since``, unix time: created at or after it;
        ``statuses``: only entries in one of these)."""
        return [self._loaded(e) for e in self.ledger.entries(modified_since, statuses)]

    def entries(self, since: float | None = None, statuses: tuple[str, ...] | None = None) -> list[Entry]:
        """Typed entries, oldest first (``since``: created at or after it; ``statuses``: only these)."""
        return [Entry.of(e) for e in self.list(modified_since=since, statuses=statuses)]


def public(entry: dict) -> dict:
    """The entry without the signed payment (a bearer instrument)."""
    e = {k: v for k, v in entry.items() if k not in SECRET_FIELDS}
    if entry.get("payment_header_value"):
        e["payment_header_value"] = "<stored, not shown>"
    return e


# -- the upgrade from the JSON journal of earlier releases -------------------------------------------

LEGACY = ("journal", "payees.json", "quotes", "keepalive")


def legacy_import(led: Ledger) -> int | None:
    """Import, once, the JSON files an earlier release kept in this state folder (``journal/*.json``,
    ``payees.json``, ``quotes/*.json``, ``keepalive/*.json``) into the ledger, then rename each to
    ``<name>.imported`` (kept, so a downgrade loses nothing). Entries keep their statuses and keep
    counting toward the budget; rows already in the ledger win. Returns the entries imported, or
    None when there was nothing to import."""
    root = led.state_dir
    present = [n for n in LEGACY if (root / n).exists() and (n != "keepalive" or any((root / n).glob("*.json")))]
    if not present:
        return None
    source = f"{led.agent}:json"

    def load():
        entries, quotes, keepalive = [], [], {}
        for p in sorted((root / "journal").glob("*.json")) if (root / "journal").is_dir() else []:
            e = _read(p)
            problem = _legacy_problem(e, p)
            if problem:  # an entry we can't read exactly may hold a payment: refuse, import nothing
                raise ConfigError(
                    f"Cannot import the old JSON journal: {root / 'journal' / p.name} {problem}. Nothing was imported and nothing "
                    "was signed; the old files are untouched.",
                    code="legacy_journal_invalid",
                    details={"file": str(p), "problem": problem},
                    hint="Tell the human: they check that file (it may record a payment; see its tx_hash and order_id), then move it "
                    "out of the journal folder (keep it), and run the command again.",
                )
            e.setdefault("agent", led.agent)
            e.setdefault("imported_from", f"journal/{p.name}")
            entries.append((e, Entry.of(e).columns()))
        pins = _read(root / "payees.json")
        pins = {k: v for k, v in pins.items() if isinstance(v, dict)} if isinstance(pins, dict) else {}
        for p in sorted((root / "quotes").glob("*.json")) if (root / "quotes").is_dir() else []:
            q = _read(p)
            if isinstance(q, dict) and isinstance(q.get("quote_id"), str) and isinstance(q.get("fields"), dict):
                quotes.append(q)
        for p in sorted((root / "keepalive").glob("*.json")) if (root / "keepalive").is_dir() else []:
            k = _read(p)
            if isinstance(k, dict):
                keepalive[p.stem] = k
        return entries, pins, quotes, keepalive

    n = led.import_once(source, load, same=_same_payee)
    for name in present:  # done (now or by an earlier run): the files step aside, kept as they were
        p = root / name
        if name == "keepalive":  # its lock files stay in use: only the records step aside
            for k in p.glob("*.json"):
                try:
                    os.rename(k, k.with_name(k.name + ".imported"))
                except OSError:
                    pass
            continue
        dest = root / f"{name}.imported"
        if p.exists() and not dest.exists():
            try:
                os.rename(p, dest)
            except OSError:
                pass
    return n


_LEGACY_MAX_BYTES = 1 << 20  # an entry is a few KiB; a bigger file was not written by the journal


def _read(p: Path) -> Any:
    try:
        if p.stat().st_size > _LEGACY_MAX_BYTES:
            return None
        return json.loads(p.read_text())
    except (OSError, ValueError, RecursionError):
        return None


def _legacy_problem(e: Any, p: Path) -> str | None:
    """Why an old journal file can't be imported as it is (None: it can). Every fact the budget
    and the status rules read must be exactly what the old release wrote, or the import stops."""
    def num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) < 1e15

    if not isinstance(e, dict):
        return "is not a JSON object (unreadable, too big or damaged)"
    if not _ID.match(str(e.get("id") or "")) or e["id"] != p.stem:
        return "has an id that is not its file name's 32 hex characters"
    if e.get("status") not in STATUSES:
        return f"has status {str(e.get('status'))[:40]!r}, not one of {', '.join(STATUSES)}"
    if parse_ts(e.get("created_at")) is None:
        return "has no readable created_at time"
    for k in ("kind", "method", "host", "agent"):
        if e.get(k) is not None and not isinstance(e[k], str):
            return f"has a {k} that is not a string"
    for k in ("offer", "terms", "context"):
        if e.get(k) is not None and not isinstance(e[k], dict):
            return f"has an {k} that is not an object"
    if e.get("history") is not None and not isinstance(e["history"], list):
        return "has a history that is not a list"
    m, pid = e.get("budget_micros"), e.get("pid")
    if m is not None and not (isinstance(m, int) and not isinstance(m, bool) and 0 <= m < 2**63):
        return "has a budget_micros that is not a whole number of micro-dollars"
    if pid is not None and not (isinstance(pid, int) and not isinstance(pid, bool) and 0 <= pid < 2**31):
        return "has a pid that is not a process id"
    for k in ("valid_before", "heartbeat_ts"):
        if e.get(k) is not None and not num(e[k]):
            return f"has a {k} that is not a time"
    try:
        entry_micros(e)
    except (ValueError, TypeError, OverflowError, AttributeError):
        return "has an offer whose amount cannot be read"
    if entry_micros(e) >= 2**63:
        return "has an offer amount far beyond any payment"
    return None


# -- a state folder's SQLite ledger carried into a shared PostgreSQL one ----------------------------

MOVED_NAME = "ledger.moved.json"  # in the state folder: where its SQLite ledger was carried, and when


def _same_payee(network: str, a: str, b: str) -> bool:
    from .policy import PayeePins

    return PayeePins._same(network, a, b)


def sqlite_source(led: Ledger) -> str:
    """The imports table's name for this state folder's SQLite ledger: ``sqlite:<host>:<state path>``."""
    return f"sqlite:{led.agent}"


def _sqlite_ro(path: Path):
    """A read-only connection to a SQLite ledger (the file is never changed through it)."""
    import sqlite3

    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30)


def _no_table(e: BaseException) -> bool:
    return "no such table" in str(e)


def sqlite_fingerprint(path: Path) -> str | None:
    """What a SQLite ledger holds, in one digest, cheaply (no entry is parsed): its entries' ids and
    statuses, and its pins, quotes and keepalive records as stored (a change to any is something new
    to carry). None when the file holds no ledger or an empty one."""
    import sqlite3

    conn = _sqlite_ro(path)
    try:
        try:
            parts = [conn.execute(q).fetchall() for q in ("SELECT id, status FROM journal ORDER BY id",
                                                             "SELECT network, body FROM payee_pins ORDER BY network",
                                                             "SELECT id, body FROM quotes ORDER BY id",
                                                             "SELECT instance_id, body FROM keepalive ORDER BY instance_id")]
        except sqlite3.OperationalError as e:
            if _no_table(e):
                return None
            raise
    finally:
        conn.close()
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest() if any(parts) else None


def read_sqlite(path: Path) -> tuple[list[tuple[dict, dict]], dict, list[dict], dict] | None:
    """Everything a state folder's SQLite ledger holds (entries with their columns, pins, quotes,
    keepalive records), read only (the file stays as it was); None if it holds no ledger."""
    import sqlite3

    conn = _sqlite_ro(path)
    try:
        try:
            rows = conn.execute(f"SELECT id, {', '.join(_L._COLS)}, body FROM journal ORDER BY created_ts, id").fetchall()
        except sqlite3.OperationalError as e:
            if _no_table(e):
                return None
            raise
        entries = [(json.loads(r[-1]), dict(zip(_L._COLS, r[1:-1]))) for r in rows]
        pins = {n: json.loads(b) for n, b in conn.execute("SELECT network, body FROM payee_pins ORDER BY network")}
        quotes = [json.loads(b) for (b,) in conn.execute("SELECT body FROM quotes ORDER BY id")]
        keepalive = {i: json.loads(b) for i, b in conn.execute("SELECT instance_id, body FROM keepalive ORDER BY instance_id")}
    finally:
        conn.close()
    return entries, {k: v for k, v in pins.items() if isinstance(v, dict)}, [q for q in quotes if isinstance(q, dict) and q.get("quote_id")], keepalive


def sqlite_import(led: Ledger) -> int | None:
    """On a PostgreSQL ledger, carry this state folder's SQLite ledger (``ledger.sqlite3``: its
    journal, payee pins, quotes and keepalive records) into it, once, under the import lock: past
    spending keeps counting toward the fleet's budget, an unresolved payment keeps blocking a re-run,
    a used quote stays used, and a pin the fleet has not got comes along. An entry id already in the
    ledger is left as it is. A pin that disagrees with the fleet's is recorded as a conflict: this
    folder's payments on that network are refused (``payee_conflict``) until a human decides.

    The SQLite file stays as it was (read only). If it is written again later (the folder went back
    to SQLite for a while), the next use of the PostgreSQL ledger adds what is new. Nothing goes the
    other way: the shared ledger's payments are never copied into the SQLite file. Returns the
    entries added, or None when there was nothing (new) to carry."""
    if led.engine != "postgresql":
        return None
    path = led.state_dir / SQLITE_NAME
    if not path.is_file():
        return None
    try:
        digest = sqlite_fingerprint(path)
        if digest is None:
            return None
        done = led.import_record(sqlite_source(led))
        if done is not None and done.get("fingerprint") == digest:
            return None
        data = read_sqlite(path)
    except LedgerUnavailable:
        raise
    except Exception as e:  # sqlite3.Error, OSError, damaged JSON: never pay without this folder's history
        raise LedgerUnavailable(
            f"Cannot read this state folder's SQLite ledger {path} to carry it into the shared ledger ({led.where}): "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. Nothing was signed.",
            details={"file": str(path), "ledger": led.where},
            hint="Tell the human: its payments must count toward the fleet's budget before this folder pays again. They check "
                 "the file (permissions, disk) and run the command again, or unset COMPUTE_LEDGER_URL to keep using it.",
        ) from None
    if data is None:
        return None
    n = led.import_once(sqlite_source(led), lambda: data, fingerprint=digest, same=_same_payee)
    if n is not None:
        _note_moved(led, n)
    return n


def _note_moved(led: Ledger, n: int) -> None:
    """Leave a note in the state folder: doctor, back on SQLite, says the shared ledger's payments
    since are not in the SQLite file."""
    try:
        write_private_json(led.state_dir / MOVED_NAME, {"to": led.where, "engine": led.engine,
                                                   "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "entries": n})
    except Exception:
        pass  # a note only: the import itself is recorded in the ledger
