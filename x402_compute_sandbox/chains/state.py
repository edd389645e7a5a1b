"""Where a local chain keeps its state between runs: one SQLite file per chain.

A real chain does not forget what it settled when a node restarts, so neither do the sandbox's:
py-evm's trie database, LiteSVM's accounts and transaction history, and the Tempo ledger are
written here after every change (in one SQLite transaction per change, so a process killed at any
point restarts from the last complete one). Without a state folder (unit tests) the same code runs
on an in-memory database and nothing outlives the process.

`meta` holds `seed` (the genesis the state was built from) and `initialized` (set once genesis and
the test wallets' funding are complete). A file whose genesis never completed is wiped and built
again; a file built from another seed is refused, because its test wallets and payees are others.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from typing import Iterator, Optional

_META = "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"


class StateMismatch(Exception):
    """The state folder holds chains built from another seed."""


class StateFile:
    """One chain's SQLite state. Not locked: each chain calls it under its own lock."""

    def __init__(self, path: Optional[str], *, seed: int, schema: str, tables: tuple[str, ...]):
        self.path = path
        if path is None:
            target = ":memory:"
        else:
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            if not os.path.exists(path):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            target = path
        self.db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        if path is not None:
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: every committed transaction survives the process being killed.
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_META + schema)
        self._depth = 0
        self.restored = self.meta("initialized") == "1"
        if self.restored:
            built_from = self.meta("seed")
            if built_from != str(seed):
                self.db.close()
                raise StateMismatch(
                    f"{path} holds chains built from --seed {built_from}, not --seed {seed}: start with that seed, "
                    f"or use another --state-dir (or delete {os.path.dirname(path)} to rebuild the chains)")
        else:
            with self.tx():   # a genesis that never finished (or a new file): start from nothing
                for t in tables:
                    self.db.execute(f"DELETE FROM {t}")
                self.db.execute("DELETE FROM meta")
                self.db.execute("INSERT INTO meta(k, v) VALUES ('seed', ?)", (str(seed),))

    def meta(self, key: str) -> Optional[str]:
        row = self.db.execute("SELECT v FROM meta WHERE k=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta(k, v) VALUES (?,?)", (key, str(value)))

    def mark_initialized(self) -> None:
        with self.tx():
            self.set_meta("initialized", 1)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested calls join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield self.db
            finally:
                self._depth -= 1
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self.db
        except BaseException:
            self._depth = 0
            self.db.execute("ROLLBACK")
            raise
        self._depth = 0
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


class PersistentChain:
    """What every local chain with a StateFile (`self.state`) and a lock (`self._lock`) offers its owner."""

    state: StateFile
    restored: bool

    def mark_initialized(self) -> None:
        """Genesis and the test wallets' funding are complete: a restart resumes this chain."""
        with self._lock:
            self.state.mark_initialized()

    def close(self) -> None:
        with self._lock:
            self.state.close()
