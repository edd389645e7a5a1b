"""Journal: on both ledger engines (SQLite 0600 in the state folder, PostgreSQL), state transitions,
secrets never in the public view, the typed entry's status rules, the import of the JSON journal."""

from __future__ import annotations

import os
import stat

import json
import time

import pytest
from x402_compute.config import load_settings
from x402_compute.errors import UsageError
from x402_compute.payments.journal import HOST, Entry, Journal, new_id, public


def journal(tmp_path, env) -> Journal:
    return Journal(load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path), **env}))


def entry(**over):
    e = {"id": new_id(), "kind": "provision", "request": {"method": "POST", "path": "/compute/provision", "body": "{}"},
         "idempotency_key": "k", "payment_header_name": "X-PAYMENT", "payment_header_value": "SECRET-BEARER"}
    e.update(over)
    return e


def test_create_is_0600_and_sent(tmp_path):
    j = Journal(tmp_path)
    e = j.create(entry())
    p = tmp_path / "ledger.sqlite3"
    for f in (p, p.with_name(p.name + "-wal")):
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == 0o700
    assert e["status"] == "sent" and e["history"][0]["status"] == "sent"
    with pytest.raises(Exception):
        j.create(entry(id=e["id"]))  # never overwrite a payment record


def test_transitions_and_history(tmp_path, ledger_env):
    j = journal(tmp_path, ledger_env)
    e = j.create(entry())
    j.update(e["id"], "unknown", reason="timeout")
    got = j.update(e["id"], "settled", order_id="o1", tx_hash="0xt")
    assert got["status"] == "settled" and got["order_id"] == "o1"
    assert [h["status"] for h in got["history"]] == ["sent", "unknown", "settled"]
    assert j.get(e["id"]) == got
    with pytest.raises(ValueError):
        j.update(e["id"], "paid-twice")
    e2 = j.create(entry())
    j.update(e2["id"], "rejected", reason="insufficient_funds")
    assert {x["status"] for x in j.list()} == {"settled", "rejected"}
    with pytest.raises(Exception) as err:
        j.create(entry(id=e["id"]))  # never overwrite a payment record
    assert err.value.code == "journal_conflict"
    assert j.get(e["id"])["status"] == "settled"


def test_public_view_hides_the_signed_payment(tmp_path, ledger_env):
    j = journal(tmp_path, ledger_env)
    e = j.create(entry())
    assert j.get(e["id"])["payment_header_value"] == "SECRET-BEARER"  # kept, to resend the same payload
    assert "SECRET-BEARER" not in str(public(j.get(e["id"])))


def test_find_by_prefix_and_bad_ids(tmp_path, ledger_env):
    j = journal(tmp_path, ledger_env)
    e = j.create(entry())
    assert j.find(e["id"][:8])["id"] == e["id"]
    for bad in ("../../etc/passwd", "zz", ""):
        with pytest.raises(UsageError):
            j.find(bad)
    with pytest.raises(UsageError):
        j.get("0" * 32)


def test_only_the_write_before_the_payment_leaves_is_forced_to_disk(tmp_path):
    # SQLite commits in WAL mode with synchronous=NORMAL; the one write that must precede a payment
    # (and a note of money spent while signing) is committed with synchronous=FULL.
    j = Journal(tmp_path)
    seen: list[str] = []
    conn = j.ledger._conn()
    conn.set_trace_callback(lambda sql: seen.append(sql) if "synchronous" in sql else None)
    try:
        e = j.create(entry(status="reserved", payment_header_value=None))
        assert seen == []  # a reservation: nothing signed, nothing to lose
        j.update(e["id"], note_spent="a Solana account")  # money spent while signing: forced
        assert seen == ["PRAGMA synchronous=FULL", "PRAGMA synchronous=NORMAL"]
        seen.clear()
        j.update(e["id"], "sent", payment_header_value="SECRET-BEARER")
        assert seen == ["PRAGMA synchronous=FULL", "PRAGMA synchronous=NORMAL"]  # on disk before the payment leaves
        seen.clear()
        j.update(e["id"], "settled", order_id="o")
        assert seen == [] and j.get(e["id"])["status"] == "settled"  # atomic, seen at once, not forced
    finally:
        conn.set_trace_callback(None)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_typed_entry_owns_the_status_rules():
    now = time.time()
    gone = 2**22 + 12345  # no such pid here (above the default pid_max)
    sent_here = Entry.of({"id": "a" * 32, "status": "sent", "created_at": "2026-01-01T00:00:00Z", "host": HOST, "pid": os.getpid()})
    assert sent_here.in_flight(now) and not sent_here.unresolved(now) and sent_here.counts(now)
    sent_dead = Entry.of({"id": "b" * 32, "status": "sent", "created_at": "2026-01-01T00:00:00Z", "host": HOST, "pid": gone})
    assert not sent_dead.in_flight(now) and sent_dead.unresolved(now) and sent_dead.counts(now)
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    # Another machine's: its pid cannot be checked here; its heartbeat says whether it lives.
    fresh = Entry.of({"id": "c" * 32, "status": "reserved", "created_at": iso(now - 30), "host": "elsewhere", "pid": 7, "budget_micros": 5})
    stale = Entry.of({"id": "d" * 32, "status": "reserved", "created_at": iso(now - 600), "host": "elsewhere", "pid": 7, "budget_micros": 5})
    beating = Entry.of({"id": "e" * 32, "status": "reserved", "created_at": iso(now - 600), "host": "elsewhere", "pid": 7,
                        "heartbeat_ts": now - 10, "budget_micros": 5})
    assert fresh.counts(now) and fresh.in_flight(now)
    assert not stale.counts(now) and not stale.in_flight(now)
    assert beating.counts(now)
    assert Entry.of({"id": "f" * 32, "status": "unknown", "created_at": iso(now)}).unresolved(now)
    for status in ("rejected", "not_sent", "expired", "settled"):
        e = Entry.of({"id": "f" * 32, "status": status, "created_at": iso(now), "budget_micros": 9})
        assert not e.unresolved(now) and not e.in_flight(now) and e.counts(now) == (status == "settled")
    v = Entry.of({"id": "a" * 32, "status": "settled", "kind": "extend", "method": "x402", "created_at": iso(now),
                  "offer": {"network": "base", "amount_usd": "0.2496"}, "budget_micros": 249_600,
                  "context": {"instance_id": "i-1"}}).view(now)
    assert (v["script"], v["network"], v["amount_usd"], v["counted_usd"], v["counts"], v["instance"]) == \
        ("extend_instance.py", "base", "0.2496", "0.2496", True, "i-1")
    # keepalive.py pays an extend (the same kind: the same rules) marked in its context; only the script name differs.
    kept = Entry.of({"id": "b" * 32, "status": "unknown", "kind": "extend", "method": "x402", "created_at": iso(now),
                     "context": {"instance_id": "i-1", "keepalive": {"until": "2030-01-01T00:00:00Z", "set_by": "run"}}})
    assert (kept.view(now)["script"], kept.view(now)["kind"], kept.unresolved(now)) == ("keepalive.py", "extend", True)
    for kind, context, script in (("extend", {"keepalive": "not a mark"}, "extend_instance.py"), ("provision", {"keepalive": {}}, "provision.py"),
                                  ("topup", None, "credits_topup.py"), ("future", None, "future")):
        assert Entry.of({"id": "c" * 32, "status": "settled", "kind": kind, "context": context}).view(now)["script"] == script


def _legacy_state(root) -> dict:
    """A state folder as the JSON-journal release left it: a settled payment, a pin, a quote."""
    (root / "journal").mkdir(parents=True)
    e = {"id": new_id(), "kind": "provision", "method": "x402", "status": "settled", "budget_micros": 249_600,
         "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() - 600)),
         "offer": {"network": "base", "amount_atomic": "249600"}, "history": [{"status": "sent"}, {"status": "settled"}],
         "payment_header_name": "X-PAYMENT", "payment_header_value": "SECRET-BEARER", "order_id": None}
    (root / "journal" / f"{e['id']}.json").write_text(json.dumps(e))
    (root / "payees.json").write_text(json.dumps({"base": {"pay_to": "0x" + "ab" * 20, "pinned_at": "2026-01-01T00:00:00Z"}}))
    (root / "quotes").mkdir()
    q = {"quote_id": "0123456789abcdef", "fields": {"network": "base"}, "journal_id": new_id(), "created_at": "x", "expires_at": time.time() + 300}
    (root / "quotes" / "0123456789abcdef.json").write_text(json.dumps(q))
    return e


def test_a_json_journal_is_imported_once_and_kept(tmp_path, ledger_env):
    from x402_compute.payments import journal as jmod
    from x402_compute.payments.budget import Budget
    from x402_compute.payments.policy import PayeePins
    from x402_compute.payments.quotes import Quotes

    old = _legacy_state(tmp_path)
    s = load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path), **ledger_env})
    assert Journal(s).get(old["id"]) == {**old, "agent": f"{HOST}:{tmp_path}", "imported_from": f"journal/{old['id']}.json"}
    assert Budget(s).status()["spent_usd"] == "0.2496"  # its spend still counts
    assert PayeePins(s).load()["base"]["pay_to"] == "0x" + "ab" * 20
    assert Quotes(s).load("0123456789abcdef")["fields"] == {"network": "base"}
    # Renamed, not deleted: a downgrade finds its files as they were.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".imported")) == ["journal.imported", "payees.json.imported", "quotes.imported"]
    assert json.loads((tmp_path / "journal.imported" / f"{old['id']}.json").read_text()) == old
    # Once: a second process (or the files put back by a downgrade-upgrade) imports nothing twice.
    jmod._IMPORTED.clear()
    (tmp_path / "journal.imported").rename(tmp_path / "journal")
    assert jmod.legacy_import(Journal(s).ledger) is None
    assert len(Journal(s).list()) == 1 and Budget(s).status()["spent_usd"] == "0.2496"


def test_reconcile_checks_a_refused_payment_still_live(tmp_path, monkeypatch):
    """Issue 20.2: a refused signature still valid is asked about like an unknown one: never used and
    no longer valid → expired (stops counting); used after all → unknown (the money moved)."""
    import time as _time

    from x402_compute.payments import onchain
    from x402_compute.payments import reconcile as rec
    from x402_compute.payments.journal import unresolved

    j = Journal(tmp_path)
    signed = {"kind": "provision", "method": "x402", "payment_header_name": "X-PAYMENT", "payment_header_value": "eyJ4In0="}
    a = j.create({"id": new_id(), "status": "rejected", "valid_before": _time.time() + 200, **signed})
    b = j.create({"id": new_id(), "status": "rejected", "valid_before": _time.time() + 200, **signed})
    dead = j.create({"id": new_id(), "status": "rejected", "valid_before": _time.time() - 1, **signed})
    gone = lambda e: True  # noqa: E731
    assert unresolved(a, _time.time(), pid_gone=gone) and not unresolved(dead, _time.time(), pid_gone=gone)
    assert rec.entry_row(a)["unresolved"] is True and rec.entry_row(dead)["unresolved"] is False

    monkeypatch.setattr(onchain, "check", lambda entry, rpc: {"state": "expired_unused", "query": "authorizationState"})
    assert rec.ask_chain(j, a, None, False)["state"] == "expired_unused" and j.get(a["id"])["status"] == "expired"
    monkeypatch.setattr(onchain, "check", lambda entry, rpc: {"state": "used", "query": "authorizationState"})
    rec.ask_chain(j, b, None, False)
    assert j.get(b["id"])["status"] == "unknown" and "refused by the server, but used" in j.get(b["id"])["reason"]
    assert rec.ask_chain(j, dead, None, False) is None  # past its window: nothing left to ask


def test_only_the_unresolved_statuses_can_be_unresolved():
    """A paid run reads only Entry.UNRESOLVED_STATUSES from the ledger before signing: every status
    outside it must never be unresolved, whatever else the entry holds (else a filtered read would
    miss an entry the rule would have stopped on)."""
    from x402_compute.payments.journal import STATUSES

    now = time.time()
    shapes = [{}, {"payment_header_value": "x", "payer": "p"}, {"pid": 999999, "host": "elsewhere", "heartbeat_ts": 0},
              {"payment_header_value": "x", "valid_before": now + 600}, {"payment_header_value": "x", "valid_before": now - 600}]
    for status in STATUSES:
        hits = [Entry.of({"id": new_id(), "status": status, "created_at": "2026-01-01T00:00:00Z", **extra}).unresolved(now) for extra in shapes]
        if status not in Entry.UNRESOLVED_STATUSES:
            assert not any(hits), status
    assert Entry.of({"id": new_id(), "status": "unknown"}).unresolved(now)
    assert Entry.of({"id": new_id(), "status": "rejected", "payment_header_value": "x", "valid_before": now + 600}).unresolved(now)
