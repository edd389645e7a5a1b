"""Red-team pass on the SQL ledger (issue 24) with the real scripts against the hostile stub."""

from __future__ import annotations

import sqlite3

import pytest

from tests.helpers import run_script
from tests.hostile.stub import Reply

PROVISION = ("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes")  # 0.24 USD


@pytest.mark.parametrize("answer", ["settled", "refused"])
def test_a_ledger_lost_after_the_payment_left_never_hides_the_answer(hostile, hostile_env, tmp_path, answer):
    """The ledger breaks while the paid request is on the wire. The server's answer is still what the
    run reports (the order on exit 0; the refusal with its valid_until), never 'ledger_unavailable ...
    Nothing was signed'; the entry stays ``sent`` (durable before sending), so it keeps counting and
    reconcile.py resolves it."""
    db = tmp_path / "home" / "state" / "ledger.sqlite3"

    def break_ledger(req, honest):
        with sqlite3.connect(db) as c:  # another process takes the journal table away mid-payment
            c.execute("ALTER TABLE journal RENAME TO journal_gone")
        return honest() if answer == "settled" else Reply(402, {"error": "insufficient_funds"})

    hostile.override("POST", "/compute/provision", break_ledger, when="paid")
    code, doc, err = run_script(*PROVISION, env=hostile_env())
    assert len(hostile.paid_requests()) == 1
    assert "Nothing was signed" not in str(doc) + err, doc
    if answer == "settled":
        assert code == 0 and doc["order"]["id"] and doc["payment"]["tx_hash"], doc
    else:
        assert code == 1 and doc["error"]["code"] == "payment_rejected" and doc["error"]["details"]["valid_until"], doc
    assert f"could not record its outcome ({'settled' if answer == 'settled' else 'rejected'})" in err
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT status FROM journal_gone").fetchall() == [("sent",)]  # still counts


def test_a_ledger_password_is_never_printed(hostile_env):
    """libpq also reads a password from the URL's query string (and a key=value string): doctor, the
    errors and --verbose must not print it (they printed the query string whole)."""
    from x402_compute.ledger import redact_url

    url = "postgresql://agent@127.0.0.1:9/db?connect_timeout=1&password=Hunter2pw"
    env = hostile_env(COMPUTE_LEDGER_URL=url)
    for script in (("budget.py", "--verbose"), ("doctor.py", "--offline")):
        code, doc, err = run_script(*script, env=env)
        assert "ledger" in str(doc) and "hunter2pw" not in (str(doc) + err).lower(), (script, doc, err)
    assert redact_url(url) == "postgresql://agent@127.0.0.1:9/db?connect_timeout=1&password=***"
    assert redact_url("postgresql://agent:Hunter2pw@[::1]:9/db") == "postgresql://agent:***@[::1]:9/db"
    assert redact_url("host=127.0.0.1 password='Hunter 2pw' port=9") == "host=127.0.0.1 password=*** port=9"


def test_a_hostile_old_json_journal_is_refused_whole_then_imported_once_by_two_racing_processes(hostile_env, tmp_path):
    """An old journal file with a value the ledger can't hold exactly (here a budget_micros beyond
    BIGINT; an OverflowError traceback before) stops the import with the file named: nothing imported,
    the files untouched. Once the human moves it away, two processes starting at once import once."""
    import json
    import subprocess
    import sys
    import uuid

    from tests.helpers import SCRIPTS

    state = tmp_path / "home" / "state"
    (state / "journal").mkdir(parents=True)
    good, bad = uuid.uuid4().hex, uuid.uuid4().hex
    base = {"status": "settled", "created_at": "2099-01-01T00:00:00Z", "kind": "provision", "method": "x402",
            "offer": {"network": "base", "amount_atomic": "240000"}}
    (state / "journal" / f"{good}.json").write_text(json.dumps({**base, "id": good}))
    (state / "journal" / f"{bad}.json").write_text(json.dumps({**base, "id": bad, "budget_micros": 10**30}))
    env = hostile_env()

    code, doc, err = run_script("budget.py", env=env)
    assert code == 2 and doc["error"]["code"] == "legacy_journal_invalid" and bad in doc["error"]["message"], (doc, err)
    assert "budget_micros" in doc["error"]["message"] and "Traceback" not in err
    assert sorted(p.name for p in (state / "journal").iterdir()) == sorted([f"{good}.json", f"{bad}.json"])

    (state / "journal" / f"{bad}.json").rename(tmp_path / f"{bad}.json")  # the human sets it aside
    procs = [subprocess.Popen([sys.executable, str(SCRIPTS / "budget.py")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    docs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], docs
    assert [[r["journal_id"] for r in d["payments"]] for d in docs] == [[good], [good]]
    assert [d["budget"]["spent_usd"] for d in docs] == ["0.24", "0.24"]
    assert (state / "journal.imported" / f"{good}.json").exists() and not (state / "journal").exists()


def test_a_newer_ledger_schema_refuses_paying_before_any_request_while_reading_still_works(hostile, hostile_env, tmp_path):
    env = hostile_env()
    code, doc, _ = run_script("budget.py", env=env)  # makes the ledger at this release's schema
    assert code == 0, doc
    with sqlite3.connect(tmp_path / "home" / "state" / "ledger.sqlite3") as c:  # a newer release migrated it
        c.execute("INSERT INTO schema_version (version, applied_ts) VALUES (999, 0)")

    code, doc, _ = run_script(*PROVISION, env=env)
    assert code == 2 and doc["error"]["code"] == "ledger_too_new" and "upgrade" in doc["error"]["hint"], doc
    assert hostile.received("POST") == []  # refused before the first request: no prompt, no probe, no signature
    for script in (("budget.py",), ("reconcile.py", "--list")):
        code, doc, err = run_script(*script, env=env)
        assert code == 0, (script, doc, err)


def test_a_machine_whose_clock_is_behind_still_has_its_reservation_counted_by_the_fleet(tmp_path, ledger_url, monkeypatch):
    """Two machines share a PostgreSQL ledger; B's clock is 10 minutes behind. B's reservation (a
    payment being signed) was judged by A's clock: 600 s old, no heartbeat, 'dead', so A reserved
    too and the fleet went over its budget. One clock for the fleet (the database's) closes it."""
    import time

    from x402_compute.config import load_settings
    from x402_compute.payments import budget as budget_mod
    from x402_compute.payments import journal as journal_mod
    from x402_compute.payments.budget import Budget, BudgetExceeded
    from x402_compute.payments.journal import new_id

    def settings(name):
        return load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path / name), "COMPUTE_LEDGER_URL": ledger_url,
                                      "COMPUTE_BUDGET_USD": "1"})

    real = time.time
    with monkeypatch.context() as m:  # machine B: another host name, a clock 600 s behind
        m.setattr(journal_mod, "HOST", "machine-b")
        m.setattr(budget_mod, "_HOST", "machine-b")
        m.setattr(time, "time", lambda: real() - 600)
        m.setattr(journal_mod, "_now", lambda: journal_mod.datetime.fromtimestamp(real() - 600, journal_mod.timezone.utc)
                  .strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        Budget(settings("b")).reserve(600_000, {"id": new_id(), "kind": "provision", "method": "x402"})
    a = Budget(settings("a"))
    assert a.status()["reserved_usd"] == "0.6"
    with pytest.raises(BudgetExceeded):
        a.reserve(600_000, {"id": new_id(), "kind": "provision", "method": "x402"})


class _Stallable:
    """A loopback TCP forwarder to the test PostgreSQL that can stop relaying (a database that hangs:
    the connection stays open, no answer ever comes)."""

    def __init__(self, port: int) -> None:
        import socket
        import threading

        self.target, self.stall = port, threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b) -> None:
        try:
            while data := a.recv(65536):
                if self.stall.is_set():
                    return  # swallowed: the database never answers again (the sockets stay open)
                b.sendall(data)
        except OSError:
            pass


def test_a_database_hanging_after_the_payment_left_does_not_hang_the_answer(hostile, hostile_env, pg_port):
    """PostgreSQL stops answering (no error, no close) while the paid request is on the wire: the
    outcome write used to wait forever, so the settled answer (a one-time management key with it)
    was lost when the run was killed. It is bounded: the answer is reported, the entry stays sent."""
    from tests import pg

    fwd = _Stallable(pg_port)
    url = pg.fresh_schema(pg_port).replace(f":{pg_port}/", f":{fwd.port}/")

    def stall_then_settle(req, honest):
        fwd.stall.set()
        return honest()

    hostile.override("POST", "/compute/provision", stall_then_settle, when="paid")
    code, doc, err = run_script(*PROVISION, env=hostile_env(COMPUTE_LEDGER_URL=url), timeout=45)
    assert code == 0 and doc["order"]["id"] and len(hostile.paid_requests()) == 1, (doc, err)
    assert "could not record its outcome (settled)" in err


def test_a_database_hanging_before_the_payment_stops_the_run_and_nothing_is_signed(pg_port, tmp_path, monkeypatch):
    """PostgreSQL stops answering (the connection stays open, no reply ever comes) when the budget's
    reservation is taken: the statement used to wait forever. The deadline ends it on this side:
    ledger_unavailable, nothing reserved, nothing signed. (The bound is shortened here; it is the
    server's lock timeout plus a margin, ledger.store.STATEMENT_DEADLINE_S.)"""
    from tests import pg
    from tests.helpers import finishes
    from x402_compute.config import load_settings
    from x402_compute.ledger import LedgerUnavailable, store
    from x402_compute.payments.budget import Budget
    from x402_compute.payments.journal import new_id

    monkeypatch.setattr(store, "STATEMENT_DEADLINE_S", 1.0)
    fwd = _Stallable(pg_port)
    url = pg.fresh_schema(pg_port).replace(f":{pg_port}/", f":{fwd.port}/")
    budget = Budget(load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path), "COMPUTE_LEDGER_URL": url}))

    def run():  # one thread, one connection: opened and migrated while the database answers, then it hangs
        assert budget.status()["spent_usd"] == "0"
        fwd.stall.set()
        return budget.reserve(240_000, {"id": new_id(), "kind": "provision", "method": "x402", "terms": {}})

    with pytest.raises(LedgerUnavailable) as e:
        finishes(run, "a reservation on a hung database", timeout=30)
    assert "no answer within 1 s" in e.value.message and "Nothing was signed" in e.value.message
    fwd.stall.clear()  # answering again: the run's reservation never happened
    direct = Budget(load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path / "b"), "COMPUTE_LEDGER_URL": url.replace(f":{fwd.port}/", f":{pg_port}/")}))
    assert direct.status()["reserved_usd"] == "0"
