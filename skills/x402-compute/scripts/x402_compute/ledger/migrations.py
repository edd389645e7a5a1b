"""The ledger's SQL schema, as versioned forward-only migrations (one list for both engines).

Each migration is a list of statements written in the SQL both SQLite and PostgreSQL accept.
``schema_version`` holds one row per applied version; migrations run in one transaction under
the ledger's schema lock, so two processes opening a new ledger at once apply each exactly once.
A ledger whose newest version is above ``CURRENT`` was written by a newer release: it is refused
(``ledger_too_new``) rather than written by code that does not know its rules.

Money never lives in a float column: ``micros`` is an integer (BIGINT). Times used for windows
are unix seconds (``created_ts``); the ISO text stays in the entry's JSON ``body``.
"""

from __future__ import annotations

MIGRATIONS: list[list[str]] = [
    # 1: the journal (one row per paid request, the whole entry as JSON plus the columns the budget
    # and the status rules query), approved quotes, payee pins, keepalive records, imports done.
    [
        """CREATE TABLE journal (
            id TEXT PRIMARY KEY,
            created_ts DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            kind TEXT,
            micros BIGINT NOT NULL DEFAULT 0,
            host TEXT,
            pid INTEGER,
            heartbeat_ts DOUBLE PRECISION,
            agent TEXT,
            method TEXT,
            signed INTEGER NOT NULL DEFAULT 0,
            valid_before DOUBLE PRECISION,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX journal_created ON journal (created_ts)",
        """CREATE TABLE quotes (
            id TEXT PRIMARY KEY,
            expires_ts DOUBLE PRECISION NOT NULL,
            journal_id TEXT,
            body TEXT NOT NULL
        )""",
        "CREATE TABLE payee_pins (network TEXT PRIMARY KEY, body TEXT NOT NULL)",
        "CREATE TABLE keepalive (instance_id TEXT PRIMARY KEY, body TEXT NOT NULL)",
        "CREATE TABLE imports (source TEXT PRIMARY KEY, imported_ts DOUBLE PRECISION NOT NULL, entries INTEGER NOT NULL)",
    ],
    # 2: carrying a state folder's SQLite ledger into a shared one: what was imported (a fingerprint
    # of the source, so a source written again after its import is carried again, adding only what
    # is new), and the payee pins it brought that disagree with the fleet's (refused until a human
    # decides; never silently one or the other).
    [
        "ALTER TABLE imports ADD COLUMN fingerprint TEXT",
        """CREATE TABLE pin_conflicts (
            agent TEXT NOT NULL,
            network TEXT NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (agent, network)
        )""",
    ],
]

CURRENT = len(MIGRATIONS)
