"""One ledger over a DB-API connection: SQLite in the state folder, or a shared PostgreSQL.

Every write runs in one transaction. ``tx(lock=...)`` takes the engine's write lock first
(SQLite: ``BEGIN IMMEDIATE``, one writer per file; PostgreSQL: ``pg_advisory_xact_lock`` on the
lock's name), so a read-check-write inside it (the budget's sum then its reservation) is atomic
against every other process sharing the ledger, on this machine or another.

Connections are per process and per thread (a forked child or the heartbeat thread opens its
own). Any database failure is ``LedgerUnavailable`` (exit 2): no ledger, no payment.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import queue
import re
import shlex
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from ..deadline import Deadline
from ..errors import ComputeError, ConfigError
from ..state import ensure_dir
from .migrations import CURRENT, MIGRATIONS

HOST = socket.gethostname()
SQLITE_NAME = "ledger.sqlite3"
CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_S = 30
# PostgreSQL: the most one statement may take, judged here (the server's own timeouts answer first;
# this ends the wait for a server that stopped answering with the connection still open).
STATEMENT_DEADLINE_S = LOCK_TIMEOUT_S + 10


class LedgerUnavailable(ConfigError):
    """The configured ledger cannot be read or written: nothing is signed without it."""

    code = "ledger_unavailable"


class LedgerTooNew(LedgerUnavailable):
    code = "ledger_too_new"


_SECRET_PARAMS = ("password", "sslpassword")  # libpq takes a password from the query string too
_CONNINFO_SECRET = re.compile(r"\b((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'?|\S*)", re.IGNORECASE)


def url_passwords(url: str) -> list[str]:
    """Every password a database URL (or a libpq key=value string) carries: in the userinfo, in
    the query string (``?password=``), or as a ``password=`` pair; for the output scrubber."""
    out = [m.group(2).strip("'") for m in _CONNINFO_SECRET.finditer(url)]
    try:
        u = urlsplit(url)
        if u.password:
            out += [u.password, unquote(u.password)]
        out += [v for k, v in parse_qsl(u.query, keep_blank_values=True) if k.lower() in _SECRET_PARAMS]
    except ValueError:
        pass
    return [p for p in dict.fromkeys(out) if p]


def redact_url(url: str) -> str:
    """A database URL fit to print: every password (userinfo, ``?password=``, ``password=``) replaced."""
    try:
        u = urlsplit(url)
        host = u.hostname or ""
        port = u.port
    except ValueError:
        return "<unparsable URL>"
    if "://" not in url:  # not a URL (a libpq key=value string): its password pairs go
        return _CONNINFO_SECRET.sub(lambda m: f"{m.group(1)}=***", url)
    netloc = u.netloc
    if u.password is not None:
        host = f"[{host}]" if ":" in host else host
        netloc = f"{u.username or ''}:***@{host}" + (f":{port}" if port else "")
    query = u.query
    if any(k.lower() in _SECRET_PARAMS for k, _ in parse_qsl(query, keep_blank_values=True)):
        query = "&".join(f"{k}=***" if k.lower() in _SECRET_PARAMS else (f"{k}={v}" if v or "=" in part else k)
                         for part in query.split("&") for k, _, v in [part.partition("=")] if part)
    return urlunsplit((u.scheme, netloc, u.path, query, u.fragment))


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(b"x402-compute:" + name.encode()).digest()[:8], "big", signed=True)


class _SQLite:
    name = "sqlite"
    param = "?"

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / SQLITE_NAME
        self.where = str(self.path)

    def errors(self) -> tuple[type[BaseException], ...]:
        import sqlite3

        return (sqlite3.Error,)

    def integrity(self) -> tuple[type[BaseException], ...]:
        import sqlite3

        return (sqlite3.IntegrityError,)

    def missing_table(self, e: BaseException) -> bool:
        return "no such table" in str(e)

    def connect(self):
        import sqlite3

        ensure_dir(self.path.parent)
        # The file exists 0600 before SQLite opens it (its -wal and -shm files take the same mode).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(str(self.path), timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        # Opening a WAL database while another process checkpoints it or rebuilds its index can
        # answer SQLITE_BUSY at once, without the busy handler (seen under load with three keepalive
        # runs starting together): wait for it like for any other lock, within the same limit.
        end = time.monotonic() + LOCK_TIMEOUT_S
        pause = 0.005
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                return conn
            except sqlite3.OperationalError as e:
                text = str(e).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() + pause > end:
                    conn.close()
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.2)

    def begin(self, conn, lock: str | None, durable: bool) -> None:
        if durable:
            conn.execute("PRAGMA synchronous=FULL")  # this commit reaches the disk before it returns
        conn.execute("BEGIN IMMEDIATE")  # the one writer: the whole file is the lock

    def end(self, conn, durable: bool) -> None:
        if durable:
            conn.execute("PRAGMA synchronous=NORMAL")


class _Postgres:
    name = "postgresql"
    param = "%s"

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = redact_url(url)

    def _psycopg(self):
        try:
            import psycopg
        except ImportError:
            # Into the Python that runs the scripts (install.sh's .venv): a bare pip is often another one.
            raise LedgerUnavailable(
                "COMPUTE_LEDGER_URL names a PostgreSQL ledger, but the psycopg package is not installed. Nothing was signed.",
                hint=f"Install it into the Python that runs the scripts ({shlex.quote(sys.executable)} -m pip install 'psycopg[binary]>=3.2,<4'), "
                     "or unset COMPUTE_LEDGER_URL to use the local SQLite ledger.",
            ) from None
        return psycopg

    def errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg().Error,)

    def integrity(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg().errors.UniqueViolation,)

    def missing_table(self, e: BaseException) -> bool:
        return isinstance(e, self._psycopg().errors.UndefinedTable)

    def connect(self):
        psycopg = self._psycopg()
        conn = _Timed(psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="x402-compute"),
                      psycopg.OperationalError)
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")  # a held budget lock: wait this long, then ledger_unavailable
        conn.execute(f"SET statement_timeout = '{LOCK_TIMEOUT_S}s'")  # a stalled server, likewise
        return conn

    def begin(self, conn, lock: str | None, durable: bool) -> None:
        conn.execute("BEGIN")
        if not durable:  # atomic and visible at once, just not waited for on the server's disk
            conn.execute("SET LOCAL synchronous_commit TO OFF")
        if lock:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(lock),))

    def end(self, conn, durable: bool) -> None:
        pass


class _Timed:
    """A psycopg connection each of whose statements ends within ``STATEMENT_DEADLINE_S`` on this
    side too. A live server answers first (its lock_timeout and statement_timeout are shorter); one
    that stopped answering with the connection still open (a hung host, a stalled proxy) would hold
    the call forever: the deadline watchdog shuts the socket down and the statement fails like a
    dropped connection (ledger_unavailable: before a payment nothing is signed; after one the
    answer is still shown)."""

    def __init__(self, conn, error: type[Exception]) -> None:
        self._conn = conn
        self._error = error

    def execute(self, *args, **kwargs):
        dup: list = []

        def sock():  # made only if the deadline fires: the same socket, its own descriptor
            if not dup:
                try:
                    dup.append(socket.socket(fileno=os.dup(self._conn.pgconn.socket)))
                except Exception:
                    dup.append(None)
            return dup[0]

        try:
            with Deadline(STATEMENT_DEADLINE_S) as dl:
                dl.add(sock)
                try:
                    return self._conn.execute(*args, **kwargs)
                except Exception:
                    if dl.expired:
                        raise self._error(f"no answer within {STATEMENT_DEADLINE_S:g} s") from None
                    raise
        finally:
            if dup and dup[0] is not None:
                dup[0].close()  # our descriptor only

    def close(self) -> None:
        self._conn.close()


class Ledger:
    """The store behind ``payments.journal``, ``budget``, ``quotes``, the payee pins and keepalive."""

    def __init__(self, engine, state_dir: Path) -> None:
        self._engine = engine
        self.engine = engine.name
        self.where = engine.where
        self.state_dir = Path(state_dir)
        self.agent = f"{HOST}:{self.state_dir}"  # this state folder on this machine: one "instance" of the fleet
        self._local = threading.local()
        self._ready = False
        self._newer: int | None = None  # a newer release's schema version: read only
        self._ready_lock = threading.Lock()
        self._worker: _Worker | None = None  # runs ``bounded`` calls (PostgreSQL)
        self._worker_lock = threading.Lock()

    # -- connection and transactions -------------------------------------------------------------
    def _fail(self, e: BaseException, doing: str) -> LedgerUnavailable:
        what = "the SQLite ledger" if self.engine == "sqlite" else "the PostgreSQL ledger"
        check = (f"check that {self.where} is writable and the disk not full" if self.engine == "sqlite"
                 else "check that the server is up and reachable, and the URL, user and password in COMPUTE_LEDGER_URL(_FILE)")
        return LedgerUnavailable(
            f"Cannot {doing} {what} ({self.where}): {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}. Nothing was signed.",
            details={"engine": self.engine, "ledger": self.where},
            hint=f"No ledger, no payment: {check}, then run the command again. doctor.py checks the ledger.",
        )

    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = self._engine.connect()
            except LedgerUnavailable:
                raise
            except Exception as e:  # driver errors, OSError on the file
                raise self._fail(e, "open") from None
            self._local.conn = conn
            self._local.depth = 0
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def close(self) -> None:
        self._drop()

    def bounded(self, fn: Callable[[], Any], seconds: float) -> tuple[bool, Any]:
        """``fn()`` (ledger calls after a payment left this machine), waited for at most ``seconds``:
        (True, its value), or (False, a LedgerUnavailable, or None when the ledger did not answer in
        time). A database that stops answering raises no error, and its wait must not hold the
        server's answer; a write that lands later lands whole.

        SQLite runs ``fn`` here: a local file cannot hang, its waits are bounded by the busy
        timeout. PostgreSQL runs it on this ledger's one worker thread, which keeps its connection
        from call to call (a thread and a connection per call cost a connection setup every time);
        a worker that did not answer in time is left to finish or hang alone, and the next call
        gets a new one."""
        if self.engine == "sqlite":
            try:
                return True, fn()
            except LedgerUnavailable as e:
                return False, e
        with self._worker_lock:
            worker = self._worker
            if worker is None or not worker.alive():
                worker = self._worker = _Worker(self)
        done, value, error = worker.run(fn, seconds)
        if not done:
            with self._worker_lock:
                if self._worker is worker:
                    self._worker = None  # stuck: never handed another call
            return False, None
        if error is not None:
            if isinstance(error, LedgerUnavailable):
                return False, error
            raise error
        return True, value

    @contextmanager
    def tx(self, *, lock: str | None = None, durable: bool = False) -> Iterator[None]:
        """One write transaction (nested calls join the outer one)."""
        self.ready()
        conn = self._conn()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        errors = self._engine.errors()
        try:
            self._engine.begin(conn, lock, durable)
        except errors as e:
            self._drop()  # a dropped server connection: the next call opens a fresh one
            raise self._fail(e, "write to") from None
        self._local.depth = 1
        try:
            yield
            conn.execute("COMMIT")
        except BaseException as e:
            try:
                conn.execute("ROLLBACK")
            except Exception:
                self._drop()
            if isinstance(e, errors):
                if isinstance(e, self._engine.integrity()):
                    raise ComputeError(f"Ledger conflict: {str(e).splitlines()[0]}", code="journal_conflict") from None
                self._drop()
                raise self._fail(e, "write to") from None
            raise
        finally:
            self._local.depth = 0
            try:
                self._engine.end(conn, durable)
            except Exception:
                pass

    def _q(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Run one statement (inside the current transaction, or on its own) and return its rows."""
        if self._engine.param != "?":
            sql = sql.replace("?", self._engine.param)
        conn = self._conn()
        try:
            cur = conn.execute(sql, args)
            return list(cur.fetchall()) if cur.description else []
        except self._engine.errors() as e:
            if self._local.depth:
                raise  # tx() maps it (and rolls back)
            if isinstance(e, self._engine.integrity()):
                raise ComputeError(f"Ledger conflict: {str(e).splitlines()[0]}", code="journal_conflict") from None
            self._drop()
            raise self._fail(e, "read") from None

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        self.ready(write=False)
        return self._q(sql, args)

    # -- schema ----------------------------------------------------------------------------------
    def ready(self, *, write: bool = True) -> None:
        """Apply missing migrations (once per process). A schema newer than this code is refused for
        writing (every payment writes first: nothing is signed), but may still be read (budget.py,
        reconcile.py --list: migrations only ever add, so what this release reads is still there)."""
        if self._ready or (not write and self._newer):
            return
        with self._ready_lock:
            if self._ready:
                return
            have = self._version_or_none()
            if have is None or have < CURRENT:
                self._migrate()
            elif have > CURRENT:
                if write:
                    raise self._too_new(have)
                self._newer = have
                return
            self._ready = True

    def _version_or_none(self) -> int | None:
        """The newest applied version, or None when the ledger has no schema yet."""
        conn = self._conn()
        try:
            rows = conn.execute("SELECT max(version) FROM schema_version").fetchall()
        except self._engine.errors() as e:
            if not self._engine.missing_table(e):
                self._drop()
                raise self._fail(e, "read") from None
            if self.engine == "postgresql":
                self._drop()
            return None
        return rows[0][0] if rows and rows[0][0] is not None else 0

    def schema_version(self) -> int:
        v = self._version_or_none()
        return v or 0

    def _too_new(self, have: int) -> LedgerTooNew:
        return LedgerTooNew(
            f"The ledger at {self.where} has schema version {have}, newer than this release knows ({CURRENT}). Nothing was signed.",
            details={"engine": self.engine, "ledger": self.where, "schema_version": have, "supported": CURRENT},
            hint="Another agent runs a newer x402-compute on this ledger: upgrade this skill too (a ledger is never downgraded).",
        )

    def _migrate(self) -> None:
        conn = self._conn()
        errors = self._engine.errors()
        try:
            self._engine.begin(conn, "schema", False)
            self._local.depth = 1
            self._q("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_ts DOUBLE PRECISION NOT NULL)")
            have = self._q("SELECT max(version) FROM schema_version")[0][0] or 0
            if have > CURRENT:
                raise self._too_new(have)
            for version in range(have + 1, CURRENT + 1):
                for stmt in MIGRATIONS[version - 1]:
                    self._q(stmt)
                self._q("INSERT INTO schema_version (version, applied_ts) VALUES (?, ?)", (version, time.time()))
            conn.execute("COMMIT")
        except BaseException as e:
            try:
                conn.execute("ROLLBACK")
            except Exception:
                pass
            self._drop()
            if isinstance(e, errors):
                raise self._fail(e, "set up") from None
            raise
        finally:
            self._local.depth = 0

    # -- journal ---------------------------------------------------------------------------------
    _COLS = ("created_ts", "status", "kind", "micros", "host", "pid", "heartbeat_ts", "agent", "method", "signed", "valid_before")

    def insert_entry(self, entry: dict, cols: dict, *, durable: bool = False) -> None:
        """A new journal row; ``journal_conflict`` if the id exists (a payment record is never overwritten)."""
        values = tuple(cols.get(c) for c in self._COLS)
        with self.tx(durable=durable):
            self._q(f"INSERT INTO journal (id, {', '.join(self._COLS)}, body) VALUES (?, {', '.join('?' * len(self._COLS))}, ?)",
                    (entry["id"], *values, json.dumps(entry, sort_keys=True)))

    def get_entry(self, entry_id: str) -> dict | None:
        rows = self._read("SELECT body FROM journal WHERE id = ?", (entry_id,))
        return json.loads(rows[0][0]) if rows else None

    def update_entry(self, entry_id: str, change: Callable[[dict], tuple[dict, dict]], *, durable: bool = False) -> dict | None:
        """Read, change and write one entry in one transaction: ``change(entry) -> (entry, cols)``."""
        with self.tx(durable=durable, lock=None):
            rows = self._q("SELECT body FROM journal WHERE id = ?" + (" FOR UPDATE" if self.engine == "postgresql" else ""), (entry_id,))
            if not rows:
                return None
            entry, cols = change(json.loads(rows[0][0]))
            sets = ", ".join(f"{c} = ?" for c in self._COLS)
            self._q(f"UPDATE journal SET {sets}, body = ? WHERE id = ?",
                    (*(cols.get(c) for c in self._COLS), json.dumps(entry, sort_keys=True), entry_id))
            return entry

    def delete_reservation(self, entry_id: str) -> bool:
        with self.tx():
            n = self._q("SELECT id FROM journal WHERE id = ? AND status = 'reserved'", (entry_id,))
            if n:
                self._q("DELETE FROM journal WHERE id = ?", (entry_id,))
            return bool(n)

    def now(self) -> float:
        """The ledger's clock, in unix seconds: PostgreSQL's own (one clock for every machine sharing
        it: a reservation's age and heartbeat, written on one machine and judged on another, are not
        skewed by their clocks), or this machine's for SQLite."""
        if self.engine != "postgresql":
            return time.time()
        return float(self._read("SELECT extract(epoch FROM clock_timestamp())")[0][0])

    def heartbeat(self, entry_id: str, now: float | None = None) -> None:
        """A live process still holds this reservation (its expiry across machines is by heartbeat)."""
        with self.tx():
            self._q("UPDATE journal SET heartbeat_ts = ? WHERE id = ? AND status = 'reserved'", (self.now() if now is None else now, entry_id))

    def entries(self, since_ts: float | None = None, statuses: tuple[str, ...] | None = None) -> list[dict]:
        """Whole entries, oldest first (``since_ts``: created at or after it; ``statuses``: only these)."""
        where, args = [], []
        if since_ts is not None:
            where.append("created_ts >= ?")
            args.append(since_ts)
        if statuses is not None:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            args.extend(statuses)
        sql = "SELECT body, heartbeat_ts FROM journal" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY created_ts, id"
        rows = self._read(sql, tuple(args))
        out = []
        for body, beat in rows:
            e = json.loads(body)
            if beat is not None:  # heartbeats touch the column only (cheap); the reader sees them too
                e["heartbeat_ts"] = beat
            out.append(e)
        return out

    def rows(self, since_ts: float) -> list[dict]:
        """The budget's view: the indexed columns only (no JSON parsing), oldest first."""
        rows = self._q(f"SELECT id, {', '.join(self._COLS)} FROM journal WHERE created_ts >= ? ORDER BY created_ts, id", (since_ts,)) \
            if getattr(self._local, "depth", 0) else \
            self._read(f"SELECT id, {', '.join(self._COLS)} FROM journal WHERE created_ts >= ? ORDER BY created_ts, id", (since_ts,))
        return [dict(zip(("id", *self._COLS), r)) for r in rows]

    def budget_rows(self, since_ts: float, summed: tuple[str, ...], judged: tuple[str, ...]) -> tuple[int, list[dict]]:
        """The budget's hot path: (the sum of ``micros`` over entries created at or after ``since_ts``
        whose status is in ``summed``, summed by the database; the indexed columns of those in
        ``judged``, whose rules the caller applies). Every other status is not read at all."""
        q = self._q if getattr(self._local, "depth", 0) else self._read
        total = q(f"SELECT coalesce(sum(micros), 0) FROM journal WHERE created_ts >= ? AND status IN ({', '.join('?' * len(summed))})",
                  (since_ts, *summed))[0][0]
        rows = q(f"SELECT id, {', '.join(self._COLS)} FROM journal WHERE created_ts >= ? AND status IN ({', '.join('?' * len(judged))})"
                 " ORDER BY created_ts, id", (since_ts, *judged))
        return int(total), [dict(zip(("id", *self._COLS), r)) for r in rows]

    def ids_with_prefix(self, prefix: str) -> list[str]:
        return [r[0] for r in self._read("SELECT id FROM journal WHERE id LIKE ? ORDER BY id", (prefix + "%",))]

    # -- quotes ----------------------------------------------------------------------------------
    def put_quote(self, qid: str, rec: dict) -> None:
        with self.tx():
            self._q("INSERT INTO quotes (id, expires_ts, journal_id, body) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET expires_ts = excluded.expires_ts, journal_id = excluded.journal_id, body = excluded.body",
                    (qid, float(rec.get("expires_at") or 0), rec.get("journal_id"), json.dumps(rec, sort_keys=True)))

    def insert_quote(self, qid: str, rec: dict) -> None:
        """A new quote; ``journal_conflict`` if the id exists (an id is never given twice)."""
        with self.tx():
            self._q("INSERT INTO quotes (id, expires_ts, journal_id, body) VALUES (?, ?, ?, ?)",
                    (qid, float(rec.get("expires_at") or 0), rec.get("journal_id"), json.dumps(rec, sort_keys=True)))

    def update_quote(self, qid: str, change: Callable[[dict], dict]) -> dict | None:
        """Read, change and write one quote in one transaction (``change`` may raise: nothing is written)."""
        with self.tx():
            rows = self._q("SELECT body FROM quotes WHERE id = ?" + (" FOR UPDATE" if self.engine == "postgresql" else ""), (qid,))
            if not rows:
                return None
            rec = change(json.loads(rows[0][0]))
            self._q("UPDATE quotes SET body = ? WHERE id = ?", (json.dumps(rec, sort_keys=True), qid))
            return rec

    def get_quote(self, qid: str) -> dict | None:
        rows = self._read("SELECT body FROM quotes WHERE id = ?", (qid,))
        return json.loads(rows[0][0]) if rows else None

    # -- payee pins ------------------------------------------------------------------------------
    def pins(self) -> dict:
        return {r[0]: json.loads(r[1]) for r in self._read("SELECT network, body FROM payee_pins")}

    def set_pin(self, network: str, rec: dict) -> None:
        with self.tx():
            self._q("INSERT INTO payee_pins (network, body) VALUES (?, ?) ON CONFLICT (network) DO UPDATE SET body = excluded.body",
                    (network, json.dumps(rec, sort_keys=True)))

    def add_pin(self, network: str, rec: dict) -> dict:
        """Pin ``rec`` unless the network already has a pin; returns the pin in force."""
        with self.tx():
            self._q("INSERT INTO payee_pins (network, body) VALUES (?, ?) ON CONFLICT (network) DO NOTHING",
                    (network, json.dumps(rec, sort_keys=True)))
            return json.loads(self._q("SELECT body FROM payee_pins WHERE network = ?", (network,))[0][0])

    # -- keepalive records -----------------------------------------------------------------------
    def keepalive(self, instance_id: str) -> dict:
        rows = self._read("SELECT body FROM keepalive WHERE instance_id = ?", (instance_id,))
        return json.loads(rows[0][0]) if rows else {}

    def set_keepalive(self, instance_id: str, rec: dict) -> None:
        with self.tx():
            self._q("INSERT INTO keepalive (instance_id, body) VALUES (?, ?) ON CONFLICT (instance_id) DO UPDATE SET body = excluded.body",
                    (instance_id, json.dumps(rec, sort_keys=True)))

    def drop_keepalive(self, instance_id: str) -> bool:
        """Forget keepalive's record of one instance (a destroyed machine's leftovers); the journal,
        which its total is summed from, is never touched. True when there was one."""
        with self.tx():
            had = bool(self._q("SELECT 1 FROM keepalive WHERE instance_id = ?", (instance_id,)))
            self._q("DELETE FROM keepalive WHERE instance_id = ?", (instance_id,))
        return had

    # -- one-time imports ------------------------------------------------------------------------
    def imported(self, source: str) -> bool:
        return bool(self._read("SELECT 1 FROM imports WHERE source = ?", (source,)))

    def import_record(self, source: str) -> dict | None:
        """What ``source``'s import left: when, how many entries, the source's fingerprint then."""
        rows = self._read("SELECT imported_ts, entries, fingerprint FROM imports WHERE source = ?", (source,))
        return dict(zip(("imported_ts", "entries", "fingerprint"), rows[0])) if rows else None

    def imports(self) -> list[dict]:
        return [dict(zip(("source", "imported_ts", "entries", "fingerprint"), r))
                for r in self._read("SELECT source, imported_ts, entries, fingerprint FROM imports ORDER BY imported_ts, source")]

    def import_once(self, source: str, load: Callable[[], tuple[list[tuple[dict, dict]], dict, list[dict], dict]], *,
                    fingerprint: str | None = None, same: Callable[[str, str, str], bool] | None = None) -> int | None:
        """Import what ``load()`` returns (journal (entry, cols) pairs, pins, quotes, keepalive
        records) once per ``source``, in one transaction under the import lock (two processes
        switching at once: one imports, the other finds it done). Rows already present are kept as
        they are (idempotent: a crash between this and renaming the files imports nothing twice).

        ``fingerprint``: what the source holds now. A source recorded under another fingerprint was
        written again since its import (a folder that went back to its SQLite ledger for a while):
        it is imported again, adding only what is not there yet. ``same(network, a, b)``: whether two
        payees are one; a pin of the source that disagrees with the ledger's is then recorded in
        ``pin_conflicts`` for this agent (paying there is refused until a human decides), never
        silently dropped. Returns the journal entries added, or None if ``source`` was done before."""
        with self.tx(lock="import"):
            done = self._q("SELECT fingerprint FROM imports WHERE source = ?", (source,))
            if done and (fingerprint is None or done[0][0] == fingerprint):
                return None
            entries, pins, quotes, keepalive = load()
            added = 0
            for entry, cols in entries:
                if self._q("SELECT 1 FROM journal WHERE id = ?", (entry["id"],)):
                    continue  # already in this ledger: left as it is
                self._q(f"INSERT INTO journal (id, {', '.join(self._COLS)}, body) VALUES (?, {', '.join('?' * len(self._COLS))}, ?)",
                        (entry["id"], *(cols.get(c) for c in self._COLS), json.dumps(entry, sort_keys=True)))
                added += 1
            for network, rec in pins.items():
                have = self._q("SELECT body FROM payee_pins WHERE network = ?", (network,))
                if not have:
                    self._q("INSERT INTO payee_pins (network, body) VALUES (?, ?)", (network, json.dumps(rec, sort_keys=True)))
                    continue
                theirs = json.loads(have[0][0])
                a, b = rec.get("pay_to"), theirs.get("pay_to") if isinstance(theirs, dict) else theirs
                if same is not None and not (isinstance(a, str) and isinstance(b, str) and same(network, a, b)):
                    body = {"network": network, "local": rec, "ledger": theirs, "source": source, "found_ts": time.time()}
                    self._q("INSERT INTO pin_conflicts (agent, network, body) VALUES (?, ?, ?) "
                            "ON CONFLICT (agent, network) DO UPDATE SET body = excluded.body", (self.agent, network, json.dumps(body, sort_keys=True)))
            for rec in quotes:
                self._q("INSERT INTO quotes (id, expires_ts, journal_id, body) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                        (rec["quote_id"], float(rec.get("expires_at") or 0), rec.get("journal_id"), json.dumps(rec, sort_keys=True)))
            for iid, rec in keepalive.items():
                self._q("INSERT INTO keepalive (instance_id, body) VALUES (?, ?) ON CONFLICT (instance_id) DO NOTHING", (iid, json.dumps(rec, sort_keys=True)))
            if done:
                self._q("UPDATE imports SET imported_ts = ?, entries = entries + ?, fingerprint = ? WHERE source = ?",
                        (time.time(), added, fingerprint, source))
            else:
                self._q("INSERT INTO imports (source, imported_ts, entries, fingerprint) VALUES (?, ?, ?, ?)",
                        (source, time.time(), added, fingerprint))
            return added

    # -- payee pins an import brought that disagree with the ledger's ------------------------------
    def pin_conflict(self, network: str) -> dict | None:
        """This agent's unresolved disagreement on ``network``'s payee (see ``import_once``)."""
        rows = self._read("SELECT body FROM pin_conflicts WHERE agent = ? AND network = ?", (self.agent, network))
        return json.loads(rows[0][0]) if rows else None

    def pin_conflicts(self) -> list[dict]:
        """Every agent's unresolved disagreements (doctor shows them all)."""
        return [{"agent": a, **json.loads(b)} for a, b in self._read("SELECT agent, body FROM pin_conflicts ORDER BY agent, network")]

    def resolve_pin(self, network: str, rec: dict) -> None:
        """A human accepted ``rec``'s payee for ``network``: it is the pin, this agent's conflict is gone."""
        with self.tx():
            self._q("INSERT INTO payee_pins (network, body) VALUES (?, ?) ON CONFLICT (network) DO UPDATE SET body = excluded.body",
                    (network, json.dumps(rec, sort_keys=True)))
            self._q("DELETE FROM pin_conflicts WHERE agent = ? AND network = ?", (self.agent, network))


class _Worker:
    """A daemon thread running one ledger's ``bounded`` calls in turn, on its own connection (kept
    from call to call), each in the caller's context (the output scrubber's per-command secrets)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="x402-ledger-after-payment", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def run(self, fn: Callable[[], Any], seconds: float) -> tuple[bool, Any, BaseException | None]:
        box: dict = {}
        done = threading.Event()
        self._jobs.put((contextvars.copy_context(), fn, box, done))
        if not done.wait(seconds):
            return False, None, None
        return True, box.get("value"), box.get("error")

    def _loop(self) -> None:
        while True:
            ctx, fn, box, done = self._jobs.get()
            try:
                box["value"] = ctx.run(fn)
            except BaseException as e:  # handed to the caller's thread
                box["error"] = e
                self._ledger.close()  # this thread's connection: the next call opens a fresh one
            finally:
                done.set()


_OPEN: dict[tuple, Ledger] = {}
_OPEN_LOCK = threading.Lock()


def open_ledger(state_dir: Path, url: str | None = None) -> Ledger:
    """The ledger for this state folder: PostgreSQL at ``url`` if given, else SQLite in the folder.
    One object per process (connections are per thread inside it); opening connects lazily."""
    key = (os.getpid(), str(Path(state_dir)), url or "")
    with _OPEN_LOCK:
        led = _OPEN.get(key)
        if led is None:
            if url:
                scheme = urlsplit(url).scheme.lower()
                if scheme not in ("postgresql", "postgres"):
                    raise ConfigError(
                        f"COMPUTE_LEDGER_URL must be a postgresql:// URL, got one starting {scheme + '://' if scheme else 'with no scheme'}.",
                        code="config_error",
                        hint="E.g. COMPUTE_LEDGER_URL_FILE=~/.config/x402-compute/ledger-url holding postgresql://agent@db.example/compute; "
                        "unset it to use the local SQLite ledger.",
                    )
                engine: Any = _Postgres(url)
            else:
                engine = _SQLite(Path(state_dir))
            led = _OPEN[key] = Ledger(engine, Path(state_dir))
        return led
