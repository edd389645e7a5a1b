"""The ledger itself, on both engines: versioned forward-only migrations applied once under a lock,
a newer schema refused, no ledger no payment (nothing signed, nothing sent), doctor's checks."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time

import pytest
from x402_compute.config import load_settings
from x402_compute.ledger import LedgerUnavailable, open_ledger
from x402_compute.ledger.migrations import CURRENT
from x402_compute.payments.budget import Budget
from x402_compute.payments.journal import Journal, new_id

from tests.unit.test_mpp_flow import mpp_header, ok201, r402, run


def settings(state, env):
    return load_settings(environ={"X402_COMPUTE_STATE_DIR": str(state), **env})


def _open_one(state: str, env: dict, barrier, results) -> None:
    try:
        barrier.wait()
        led = open_ledger(state, env.get("COMPUTE_LEDGER_URL"))
        led.ready()
        results.put(led.schema_version())
    except BaseException as e:  # the parent must see it, not a missing answer
        results.put(f"error: {type(e).__name__}: {e}")


def test_migrations_apply_once_under_a_lock_when_many_open_a_new_ledger(tmp_path, ledger_env):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open_one, args=(str(tmp_path / f"a{i}" if ledger_env else tmp_path), ledger_env, barrier, results))
             for i in range(4)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert got == [CURRENT] * 4
    led = open_ledger(tmp_path, ledger_env.get("COMPUTE_LEDGER_URL"))
    assert led._read("SELECT version FROM schema_version ORDER BY version") == [(v,) for v in range(1, CURRENT + 1)]


def test_a_newer_schema_is_refused_and_nothing_is_written(tmp_path, ledger_env):
    s = settings(tmp_path, ledger_env)
    led = Journal(s).ledger
    with led.tx():
        led._q("INSERT INTO schema_version (version, applied_ts) VALUES (?, ?)", (CURRENT + 1, time.time()))
    fresh = open_ledger(tmp_path, ledger_env.get("COMPUTE_LEDGER_URL"))
    fresh._ready = False  # as a process started after the newer release migrated it
    with pytest.raises(LedgerUnavailable) as e:
        fresh.ready()
    assert e.value.code == "ledger_too_new" and e.value.exit_code == 2 and "upgrade" in e.value.hint
    assert e.value.details["schema_version"] == CURRENT + 1 and e.value.details["supported"] == CURRENT


def test_an_unreachable_ledger_refuses_before_anything_is_signed(tmp_path):
    s = settings(tmp_path, {"COMPUTE_LEDGER_URL": "postgresql://agent@127.0.0.1:9/none?connect_timeout=2"})
    pytest.importorskip("psycopg")
    with pytest.raises(LedgerUnavailable) as e:
        Budget(s).reserve(1, {"id": new_id(), "kind": "provision", "method": "x402", "terms": {}})
    assert e.value.code == "ledger_unavailable" and e.value.exit_code == 2
    assert "Nothing was signed" in e.value.message and "COMPUTE_LEDGER_URL" in e.value.hint


def test_a_failed_write_before_the_payment_sends_nothing(tmp_path, monkeypatch):
    """The reservation is written, the payment signed, then the ``sent`` write fails: the signed
    payment never leaves (only the unpaid probe went out) and the error says so."""
    real = Journal.update

    def failing(self, entry_id, status=None, **fields):
        if status == "sent":
            raise LedgerUnavailable("Cannot write to the SQLite ledger (disk full). Nothing was signed.")
        return real(self, entry_id, status, **fields)

    monkeypatch.setattr(Journal, "update", failing)
    only_mpp = r402({"WWW-Authenticate": mpp_header()})
    res, client, signs, err = run(tmp_path, [only_mpp, only_mpp, ok201()])
    assert isinstance(err, LedgerUnavailable) and err.exit_code == 2
    assert "signed but never sent" in err.message and len(signs) == 1
    assert all("Authorization" not in r["headers"] for r in client.sent)  # no payment header ever left


def test_the_sqlite_ledger_is_0600_in_wal_mode(tmp_path):
    led = Journal(tmp_path).ledger
    led.ready()
    for name in ("ledger.sqlite3", "ledger.sqlite3-wal", "ledger.sqlite3-shm"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    assert led._conn().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_doctor_checks_the_ledger(tmp_path, ledger_env):
    from x402_compute.commands.doctor import check_ledger

    s = settings(tmp_path, ledger_env)
    assert [c.status for c in check_ledger(s)] == ["ok"]  # SQLite not made yet / PostgreSQL: nothing created
    Journal(s).create({"id": new_id(), "kind": "provision", "status": "settled"})
    (check,) = check_ledger(s)
    assert check.status == "ok" and check.data["schema_version"] == CURRENT and check.data["engine"] == ("postgresql" if ledger_env else "sqlite")
    if not ledger_env:
        os.chmod(tmp_path / "ledger.sqlite3", 0o644)
        assert {c.name: c.status for c in check_ledger(s)} == {"ledger_permissions": "fail", "ledger": "ok"}
    else:  # a password in clear in the environment: warn, and name the file form; never print it
        url = ledger_env["COMPUTE_LEDGER_URL"].replace("postgres@", "postgres:s3cret-pw@")
        checks = {c.name: c for c in check_ledger(settings(tmp_path, {"COMPUTE_LEDGER_URL": url}))}
        assert checks["ledger_secret"].status == "warn" and "COMPUTE_LEDGER_URL_FILE" in checks["ledger_secret"].detail
        assert "s3cret-pw" not in str([c.to_dict() for c in checks.values()])
        f = tmp_path / "url"
        f.write_text(url)
        checks = {c.name: c for c in check_ledger(settings(tmp_path, {"COMPUTE_LEDGER_URL_FILE": str(f)}))}
        assert "ledger_secret" not in checks and checks["ledger"].status == "ok"
    bad = settings(tmp_path, {"COMPUTE_LEDGER_URL": "postgresql://agent@127.0.0.1:9/none?connect_timeout=2"})
    if ledger_env:
        (check,) = check_ledger(bad)
        assert check.status == "fail" and "ledger" in check.detail


def _carry_one(state: str, url: str, barrier, results) -> None:
    from x402_compute.payments.journal import sqlite_import

    try:
        barrier.wait()
        results.put(sqlite_import(open_ledger(state, url)))
    except BaseException as e:  # the parent must see it, not a missing answer
        results.put(f"error: {type(e).__name__}: {e}")


def test_a_folder_switching_to_postgresql_carries_its_sqlite_ledger_once(tmp_path, ledger_url):
    """Three processes of one folder switch at once: one carries the SQLite ledger, under the
    import lock; the others (and any later run) find it done. Written again on SQLite later (the
    folder went back for a while): the next switch adds only what is new."""
    from x402_compute.payments.journal import sqlite_import, sqlite_source

    j = Journal(tmp_path)  # the folder's SQLite ledger
    ids = [j.create({"id": new_id(), "kind": "provision", "method": "x402", "status": "settled", "budget_micros": 249_600})["id"]
           for _ in range(2)]
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_carry_one, args=(str(tmp_path), ledger_url, barrier, results)) for _ in range(3)]
    for p in procs:
        p.start()
    got = sorted((results.get(timeout=120) for _ in procs), key=str)
    for p in procs:
        p.join(30)
    assert got == [2, None, None], got
    pg = open_ledger(tmp_path, ledger_url)
    assert sqlite_import(pg) is None and sorted(e["id"] for e in pg.entries()) == sorted(ids)
    assert pg.import_record(sqlite_source(pg))["entries"] == 2 and sqlite_source(pg) == f"sqlite:{pg.agent}"
    assert Budget(settings(tmp_path, {"COMPUTE_LEDGER_URL": ledger_url})).status()["spent_usd"] == "0.4992"

    late = j.create({"id": new_id(), "kind": "provision", "method": "x402", "status": "unknown", "budget_micros": 249_600})["id"]
    j.update(ids[0], "expired")  # changed on SQLite after the switch: the shared ledger's copy is left as it is
    assert sqlite_import(pg) == 1 and pg.get_entry(late)["status"] == "unknown" and pg.get_entry(ids[0])["status"] == "settled"
    assert pg.import_record(sqlite_source(pg))["entries"] == 3 and sqlite_import(pg) is None


def test_a_busy_answer_while_opening_the_sqlite_ledger_is_waited_for(tmp_path, monkeypatch):
    """SQLite can answer SQLITE_BUSY at once (no busy handler) while another process checkpoints
    the WAL or rebuilds its index; under load three keepalive runs starting together hit it. The
    open waits for it like for any lock instead of failing with ledger_unavailable."""
    import sqlite3

    first = open_ledger(tmp_path)
    first.keepalive("x")  # an existing WAL ledger, as in that run
    first.close()  # the next use opens the file again
    real = sqlite3.connect
    busy = {"left": 3}

    class Flaky:
        def __init__(self, conn):
            self.conn = conn

        def execute(self, sql, *args):
            if sql.startswith("PRAGMA journal_mode") and busy["left"]:
                busy["left"] -= 1
                raise sqlite3.OperationalError("database is locked")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.conn, name)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: Flaky(real(*a, **k)))
    led = open_ledger(tmp_path)
    assert led.keepalive("x") == {} and busy["left"] == 0
    # Anything else is still an error at once (a busy wait must not hide a broken file).
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error")))
    led.close()
    with pytest.raises(LedgerUnavailable, match="disk I/O error"):
        open_ledger(tmp_path).keepalive("x")


def test_calls_after_a_payment_keep_one_connection_and_a_stuck_one_is_left_behind(tmp_path, ledger_url):
    """PostgreSQL: the calls made after a payment left run on the ledger's one worker thread, on one
    connection kept between them (not a connection set up per call); a call that overruns its
    bound is reported (False, None) at once and the next call gets a new worker."""
    import threading

    led = open_ledger(tmp_path, ledger_url)
    led.ready()
    backend = "SELECT pg_backend_pid()"
    first = led.bounded(lambda: (threading.current_thread().name, led._read(backend)[0][0]), 10)
    second = led.bounded(lambda: (threading.current_thread().name, led._read(backend)[0][0]), 10)
    assert first[0] and first == second and first[1][0] == "x402-ledger-after-payment"
    assert first[1][1] != led._read(backend)[0][0]  # its own connection, not the caller's

    release = threading.Event()
    assert led.bounded(lambda: release.wait(30), 0.2) == (False, None)  # a hung database: not waited for
    third = led.bounded(lambda: led._read(backend)[0][0], 10)
    release.set()
    assert third[0] and third[1] != first[1][1]  # a new worker, on a new connection
    err = led.bounded(lambda: led._read("SELECT * FROM no_such_table"), 10)
    assert err[0] is False and isinstance(err[1], LedgerUnavailable)
