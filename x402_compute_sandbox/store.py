"""SQLite persistence for the sandbox: orders, API keys, auth nonces, payments, credits, idempotency.

Everything here survives a restart (the database lives under --state-dir, in WAL mode); the local
chains do not (they are rebuilt, and balances reset, at every start).

One connection guarded by one lock: the sandbox's write rate is tiny, and a single writer makes
"check then write" sequences (nonce reuse, credit spending, idempotency) atomic without relying on
SQLite's busy handling across threads.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, created REAL NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS orders_owner ON orders(owner, created);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, last4 TEXT NOT NULL,
    label TEXT, created_at TEXT NOT NULL, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, seen REAL NOT NULL);
CREATE INDEX IF NOT EXISTS nonces_seen ON nonces(seen);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT, tx TEXT NOT NULL, network TEXT NOT NULL, payer TEXT,
    amount_atomic TEXT NOT NULL, amount_usd_micros INTEGER NOT NULL, purpose TEXT NOT NULL,
    order_id TEXT, identity TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS credits (
    wallet TEXT PRIMARY KEY, balance INTEGER NOT NULL DEFAULT 0,
    deposited INTEGER NOT NULL DEFAULT 0, spent INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL,
    headers TEXT NOT NULL, body BLOB NOT NULL, created REAL NOT NULL, principal TEXT);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


class InsufficientCredits(Exception):
    def __init__(self, balance: int, required: int):
        super().__init__("insufficient credits")
        self.balance, self.required = balance, required


_OWN_FILES = ("sandbox.sqlite3", "sandbox.env", "mpp-secret")


class StateDirError(ValueError):
    """The state folder cannot be made private; the message says why and what to do."""


def private_state_dir(state_dir: str) -> str:
    """Create the state folder with mode 0700, or tighten an existing one that is the sandbox's (empty,
    or already holding its files). A shared folder (e.g. the working directory or /tmp) is refused
    rather than chmod-ed: it holds test keys, API key hashes and the MPP secret."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    st = os.stat(state_dir)
    if st.st_mode & 0o077:
        entries = os.listdir(state_dir)
        if st.st_uid != os.getuid() or (entries and not any(f in entries for f in _OWN_FILES)):
            raise StateDirError(f"the state folder {state_dir} is open to other users (mode "
                                f"{st.st_mode & 0o777:04o}) and is not the sandbox's own; pass --state-dir "
                                "a folder of its own (it is created with mode 0700)")
        os.chmod(state_dir, 0o700)
    return state_dir


def _private_file(path: str) -> None:
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


class Store:
    def __init__(self, state_dir: str):
        private_state_dir(state_dir)
        self.path = os.path.join(state_dir, "sandbox.sqlite3")
        # 0600 before SQLite opens it; SQLite gives the -wal and -shm files the database's mode.
        _private_file(self.path)
        for extra in ("-wal", "-shm", "-journal"):
            if os.path.exists(self.path + extra):
                os.chmod(self.path + extra, 0o600)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        if "principal" not in {r[1] for r in self._db.execute("PRAGMA table_info(idempotency)")}:
            self._db.execute("ALTER TABLE idempotency ADD COLUMN principal TEXT")   # state from before it

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction under the store lock (re-entrant: nested calls join the outer one)."""
        with self._lock:
            if self._db.in_transaction:
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args=()) -> Optional[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchone()

    def _all(self, sql: str, args=()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # --- orders ---------------------------------------------------------------------------------
    def put_order(self, order: dict) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO orders(id, owner, created, data) VALUES (?,?,?,?)",
                       (order["id"], order["owner"], order["_created"], json.dumps(order)))

    def get_order(self, order_id: str) -> Optional[dict]:
        row = self._one("SELECT data FROM orders WHERE id=?", (order_id,))
        return json.loads(row[0]) if row else None

    def orders_of(self, owner: str) -> list[dict]:
        return [json.loads(r[0]) for r in
                self._all("SELECT data FROM orders WHERE owner=? ORDER BY created", (owner,))]

    def all_orders(self) -> list[dict]:
        return [json.loads(r[0]) for r in self._all("SELECT data FROM orders ORDER BY created")]

    def next_counter(self, name: str) -> int:
        with self.tx() as db:
            row = db.execute("SELECT v FROM meta WHERE k=?", (name,)).fetchone()
            n = int(row[0]) + 1 if row else 1
            db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES (?,?)", (name, str(n)))
            return n

    # --- API keys -------------------------------------------------------------------------------
    def add_api_key(self, key_id: str, owner: str, key_hash: str, last4: str, label, created_at: str):
        with self.tx() as db:
            db.execute("INSERT INTO api_keys(id, owner, key_hash, last4, label, created_at) "
                       "VALUES (?,?,?,?,?,?)", (key_id, owner, key_hash, last4, label, created_at))

    def api_key_by_hash(self, key_hash: str) -> Optional[dict]:
        row = self._one("SELECT id, owner, revoked_at FROM api_keys WHERE key_hash=?", (key_hash,))
        return {"id": row[0], "owner": row[1], "revoked_at": row[2]} if row else None

    def api_keys_of(self, owner: str) -> list[dict]:
        rows = self._all("SELECT id, label, last4, created_at, revoked_at FROM api_keys "
                         "WHERE owner=? ORDER BY created_at, rowid", (owner,))
        return [{"id": r[0], "label": r[1], "key_last4": r[2], "created_at": r[3], "revoked_at": r[4]}
                for r in rows]

    def revoke_api_key(self, key_id: str, owner: str, when: str) -> Optional[dict]:
        with self.tx() as db:
            row = db.execute("SELECT revoked_at FROM api_keys WHERE id=? AND owner=?",
                             (key_id, owner)).fetchone()
            if row is None:
                return None
            if row[0] is None:
                db.execute("UPDATE api_keys SET revoked_at=? WHERE id=?", (when, key_id))
            return {"id": key_id, "revoked_at": row[0] or when}

    # --- nonces ---------------------------------------------------------------------------------
    def use_nonce(self, nonce: str, now: float, keep_seconds: float) -> bool:
        """Record a nonce; False if it was already used. Old ones are pruned past `keep_seconds`."""
        with self.tx() as db:
            try:
                db.execute("INSERT INTO nonces(nonce, seen) VALUES (?,?)", (nonce, now))
            except sqlite3.IntegrityError:
                return False
            # Prune lazily, about once per 256 inserts, to keep the common path one INSERT.
            if (hash(nonce) & 0xFF) == 0:
                db.execute("DELETE FROM nonces WHERE seen < ?", (now - keep_seconds,))
            return True

    # --- payments -------------------------------------------------------------------------------
    def add_payment(self, *, tx: str, network: str, payer, amount_atomic: int, amount_usd_micros: int,
                    purpose: str, order_id, identity) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO payments(tx, network, payer, amount_atomic, amount_usd_micros, "
                       "purpose, order_id, identity, created) VALUES (?,?,?,?,?,?,?,?,?)",
                       (tx, network, payer, str(amount_atomic), amount_usd_micros, purpose, order_id,
                        identity, time.time()))

    def payments(self) -> list[dict]:
        cols = ("tx", "network", "payer", "amount_atomic", "amount_usd_micros", "purpose", "order_id",
                "identity", "created")
        return [dict(zip(cols, r)) for r in
                self._all(f"SELECT {', '.join(cols)} FROM payments ORDER BY id")]

    # --- credits --------------------------------------------------------------------------------
    def credits(self, wallet: str) -> dict:
        row = self._one("SELECT balance, deposited, spent FROM credits WHERE wallet=?", (wallet,))
        b, d, s = row or (0, 0, 0)
        return {"balance": b, "deposited": d, "spent": s}

    def deposit(self, wallet: str, micros: int) -> int:
        with self.tx() as db:
            db.execute("INSERT INTO credits(wallet) VALUES (?) ON CONFLICT(wallet) DO NOTHING", (wallet,))
            db.execute("UPDATE credits SET balance=balance+?, deposited=deposited+? WHERE wallet=?",
                       (micros, micros, wallet))
            return db.execute("SELECT balance FROM credits WHERE wallet=?", (wallet,)).fetchone()[0]

    def refund(self, wallet: str, micros: int) -> None:
        """Undo a spend (the provider step failed after credits were taken)."""
        with self.tx() as db:
            db.execute("UPDATE credits SET balance=balance+?, spent=spent-? WHERE wallet=?",
                       (micros, micros, wallet))

    def spend(self, wallet: str, micros: int) -> int:
        with self.tx() as db:
            row = db.execute("SELECT balance FROM credits WHERE wallet=?", (wallet,)).fetchone()
            balance = row[0] if row else 0
            if balance < micros:
                raise InsufficientCredits(balance, micros)
            db.execute("UPDATE credits SET balance=balance-?, spent=spent+? WHERE wallet=?",
                       (micros, micros, wallet))
            return balance - micros

    # --- idempotency ----------------------------------------------------------------------------
    def idem_get(self, key: str) -> Optional[dict]:
        """The stored answer; `principal` is who may have it replayed (payments.Principal, None for
        records written before principals were kept)."""
        row = self._one("SELECT fingerprint, status, headers, body, principal FROM idempotency WHERE key=?", (key,))
        if not row:
            return None
        from .payments import Principal
        return {"fingerprint": row[0], "status": row[1], "headers": json.loads(row[2]), "body": row[3],
                "principal": Principal(**json.loads(row[4])) if row[4] else None}

    def idem_put(self, key: str, fingerprint: str, status: int, headers: dict, body: bytes, principal: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO idempotency(key, fingerprint, status, headers, body, created, principal) "
                       "VALUES (?,?,?,?,?,?,?)",
                       (key, fingerprint, status, json.dumps(headers), body, time.time(), principal))
