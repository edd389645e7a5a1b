"""The budget's arithmetic and its guard, on a real journal with a controllable clock, on both ledger
engines (SQLite in the state folder; a real PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from datetime import datetime, timezone

import pytest
from x402_compute.config import load_settings
from x402_compute.payments.budget import (
    Budget,
    BudgetExceeded,
    atomic_to_micros,
    counts,
    entry_micros,
)
from x402_compute.payments.journal import Journal, new_id

T0 = float(int(time.time()))  # "now"
HOST = socket.gethostname()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def engine(ledger_env):
    """This test's ledger engine (both, by parametrization), seen by the helpers below."""
    ENV.clear()
    ENV.update(ledger_env)
    yield ledger_env
    ENV.clear()


ENV: dict = {}


def settings(tmp_path, **env):
    return load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path), **ENV, **env})


def add(tmp_path, at: float, micros: int, status: str = "settled", **more) -> dict:
    return Journal(settings(tmp_path)).create({"id": new_id(), "kind": "provision", "method": "x402", "status": status,
                                               "created_at": iso(at), "budget_micros": micros, **more})


def budget(tmp_path, now: float = T0, **env) -> Budget:
    return Budget(settings(tmp_path, **env), clock=lambda: now)


def test_what_counts(tmp_path, engine):
    for status in ("settled", "unknown", "sent"):
        add(tmp_path, T0 - 60, 1_000_000, status)
    for status in ("rejected", "not_sent", "expired"):
        add(tmp_path, T0 - 60, 5_000_000, status)
    add(tmp_path, T0 - 60, 2_000_000, "reserved", pid=os.getpid(), host=HOST)  # in flight here: counts
    add(tmp_path, T0 - 25 * 3600, 7_000_000)  # outside the window
    st = budget(tmp_path).status()
    assert st == {"limit_usd": "50", "window": "24h", "spent_usd": "3", "reserved_usd": "2", "remaining_usd": "45"}


def test_a_refused_signed_payment_counts_until_it_can_no_longer_settle(tmp_path, engine):
    # Issue 20.2: the server answered 402 but holds the signature; until valid_before it may settle it.
    signed = {"payment_header_name": "X-PAYMENT", "payment_header_value": "eyJ4In0="}
    live = add(tmp_path, T0 - 60, 1_000_000, "rejected", valid_before=T0 + 240, **signed)
    add(tmp_path, T0 - 600, 2_000_000, "rejected", valid_before=T0 - 300, **signed)  # window closed: never again
    add(tmp_path, T0 - 60, 4_000_000, "rejected", **signed)  # validity unknown: counts until reconcile proves otherwise
    add(tmp_path, T0 - 60, 8_000_000, "rejected", valid_before=T0 + 240)  # nothing was signed
    assert budget(tmp_path).status()["spent_usd"] == "5"
    assert budget(tmp_path, now=T0 + 241).status()["spent_usd"] == "4"  # the first one's window closed
    j = Journal(settings(tmp_path))
    j.update(live["id"], "expired", reason="reconciled")
    assert not counts(j.get(live["id"]), T0)
    assert budget(tmp_path).status()["spent_usd"] == "4"


def test_a_dead_process_reservation_and_an_old_one_do_not_count(tmp_path, engine):
    dead = multiprocessing.Process(target=int)
    dead.start()
    dead.join()
    host = HOST
    add(tmp_path, T0 - 300, 1_000_000, "reserved", pid=dead.pid, host=host)  # gone here, no heartbeat for 5 min: its payment never left
    add(tmp_path, T0 - 2 * 3600, 1_000_000, "reserved", pid=os.getpid(), host=host)  # older than any signing
    add(tmp_path, T0 - 60, 1_000_000, "reserved", pid=dead.pid, host="elsewhere")  # can't tell by pid; its heartbeat is fresh: counts
    add(tmp_path, T0 - 300, 1_000_000, "reserved", pid=dead.pid, host="elsewhere")  # another machine's, no heartbeat for 5 min: dead
    # Red-team pass: no such pid here, but a fresh heartbeat. Two machines may share a host name (two
    # laptops named alike, default images): the other's live reservation counts until its heartbeat is stale.
    add(tmp_path, T0 - 60, 1_000_000, "reserved", pid=dead.pid, host=host)
    assert budget(tmp_path).status()["reserved_usd"] == "2"


def test_refusal_names_the_figures_and_when_enough_frees(tmp_path, engine):
    add(tmp_path, T0 - 20 * 3600, 30_000_000)
    add(tmp_path, T0 - 10 * 3600, 15_000_000)
    b = budget(tmp_path)
    assert b.check(5_000_000)["remaining_usd"] == "0"  # exactly fits
    with pytest.raises(BudgetExceeded) as e:
        b.check(5_000_001)
    d = e.value.details
    assert e.value.exit_code == 3 and e.value.code == "budget_exceeded"
    assert d == {"limit_usd": "50", "window": "24h", "spent_usd": "45", "reserved_usd": "0", "remaining_usd": "5",
                 "requested_usd": "5.000001", "frees_at": datetime.fromtimestamp(T0 + 4 * 3600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    with pytest.raises(BudgetExceeded) as e:
        b.check(60_000_000)  # above the whole budget: nothing ever frees it
    assert e.value.details["frees_at"] is None and "above the whole budget" in e.value.hint
    # Four hours later the first payment has rolled off.
    assert budget(tmp_path, T0 + 4 * 3600 + 1).check(30_000_000)["remaining_usd"] == "5"


def test_off_never_refuses_but_still_reports(tmp_path, engine):
    add(tmp_path, T0 - 60, 10**9)
    b = budget(tmp_path, COMPUTE_BUDGET_USD="off")
    assert b.check(10**9) == {"limit_usd": "off", "window": "24h", "spent_usd": "1000", "reserved_usd": "0", "remaining_usd": None}


def test_warning_from_80_percent(tmp_path, engine):
    add(tmp_path, T0 - 60, 39_000_000)
    assert "warning" not in budget(tmp_path).status()
    assert "80%" in budget(tmp_path).check(1_000_000)["warning"]  # a quote: 40 of 50 after it


def test_amounts_round_up_to_a_micro_dollar():
    assert atomic_to_micros(249_600, 6) == 249_600
    assert atomic_to_micros(1, 18) == 1 and atomic_to_micros(10**12, 18) == 1 and atomic_to_micros(10**12 + 1, 18) == 2
    assert entry_micros({"offer": {"network": "megaeth", "amount_atomic": str(249_600 * 10**12)}}) == 249_600
    assert entry_micros({"method": "credits"}) == 0
    assert not counts({"status": "reserved", "created_at": "garbage"}, T0)


def _reserve_one(state_dir: str, env: dict, barrier, results) -> None:
    s = load_settings(environ={"X402_COMPUTE_STATE_DIR": state_dir, "COMPUTE_BUDGET_USD": "3", **env})
    barrier.wait()
    try:
        Budget(s).reserve(1_000_000, {"id": new_id(), "kind": "provision", "method": "x402", "terms": {}})
        results.put("ok")
    except BudgetExceeded:
        results.put("refused")
    except BaseException as e:  # anything else is a failure the parent must see, not a missing answer
        results.put(f"error: {type(e).__name__}: {e}")


def test_the_guard_holds_across_processes(tmp_path, engine):
    """Eight processes reserve 1 USD each at the same instant against a 3 USD budget: three pass.
    On PostgreSQL they use four state folders (as on four machines) sharing the one ledger."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    dirs = [tmp_path / f"agent{i % (4 if engine else 1)}" for i in range(8)]
    procs = [ctx.Process(target=_reserve_one, args=(str(d), engine, barrier, results)) for d in dirs]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=300) for _ in procs)  # generous: a loaded machine is slow, not wrong
    for p in procs:
        p.join(60)
    assert got == ["ok"] * 3 + ["refused"] * 5
    assert len(Journal(settings(dirs[0])).list()) == 3  # the refused ones wrote nothing


def test_fleet_totals_per_host_and_instance(tmp_path, engine):
    if not engine:
        pytest.skip("one state folder per SQLite ledger")
    add(tmp_path / "a", T0 - 60, 1_000_000)
    add(tmp_path / "b", T0 - 60, 2_000_000)
    add(tmp_path / "b", T0 - 30, 500_000, "reserved", pid=os.getpid(), host=HOST)
    fa, fb = budget(tmp_path / "a").fleet(), budget(tmp_path / "b").fleet()
    assert fa["instances"] == fb["instances"] == [
        {"instance": f"{HOST}:{tmp_path / 'a'}", "host": HOST, "spent_usd": "1", "reserved_usd": "0"},
        {"instance": f"{HOST}:{tmp_path / 'b'}", "host": HOST, "spent_usd": "2", "reserved_usd": "0.5"},
    ]
    assert fa["hosts"] == [{"host": HOST, "spent_usd": "3", "reserved_usd": "0.5"}] and fa["ledger"] == "postgresql"
    assert budget(tmp_path / "a").status() == budget(tmp_path / "b").status()


def test_a_reservation_names_host_and_pid_and_its_heartbeat_keeps_it_alive(tmp_path, engine):
    b = budget(tmp_path, COMPUTE_BUDGET_USD="3")
    e, _ = b.reserve(1_000_000, {"id": new_id(), "kind": "provision", "method": "x402", "terms": {}})
    assert (e["host"], e["pid"], e["status"]) == (HOST, os.getpid(), "reserved")
    b.ledger.heartbeat(e["id"], now=T0 + 1000)
    row = next(r for r in b.ledger.rows(T0 - 10) if r["id"] == e["id"])
    assert row["heartbeat_ts"] == T0 + 1000 and row["micros"] == 1_000_000


def test_the_ledger_sums_equal_the_rule_entry_by_entry(tmp_path, engine):
    """The paid path's sums (always-counted statuses summed by the database, only reservations and
    refusals judged in Python) must equal applying Entry.counts to every entry of the window."""
    import random

    from x402_compute.payments.journal import STATUSES, Entry

    rng = random.Random(7)
    for i in range(60):
        status = rng.choice(STATUSES)
        more = rng.choice([{}, {"pid": os.getpid(), "host": HOST}, {"pid": 2**22 + 7, "host": "elsewhere", "heartbeat_ts": T0 - 500},
                           {"payment_header_value": "eyJ4In0=", "valid_before": T0 + rng.choice([-60, 60])}])
        add(tmp_path, T0 - rng.randint(0, 30 * 3600), rng.randint(0, 3_000_000), status, **more)
    add(tmp_path, T0 - 30, 1_500_000, "reserved", pid=os.getpid(), host=HOST)  # a live reservation here
    add(tmp_path, T0 - 30, 900_000, "rejected", payment_header_value="eyJ4In0=", valid_before=T0 + 200)  # a live refusal
    b = budget(tmp_path)
    spent, reserved, counted = b.tally()
    assert b.sums() == (spent, reserved)
    assert spent > 0 and reserved > 0 and len(counted) > 5  # the mix exercised both sides
    # The three sets are the rule: an entry outside them never counts, one in ALWAYS_COUNTED always does.
    shapes = [{}, {"payment_header_value": "x", "valid_before": T0 + 600}, {"pid": os.getpid(), "host": HOST}]
    for status in STATUSES:
        hits = {Entry.of({"id": new_id(), "status": status, "created_at": iso(T0 - 5), **extra}).counts(T0) for extra in shapes}
        if status in Entry.ALWAYS_COUNTED:
            assert hits == {True}, status
        elif status not in Entry.SOMETIMES_COUNTED:
            assert hits == {False}, status


def test_one_thread_beats_every_reservation_being_signed(tmp_path, engine):
    """While a payment is being signed its reservation's heartbeat is refreshed (by one thread per
    process, for every reservation held), and no longer once the signing ended."""
    import threading

    from tests.helpers import wait_until

    b = Budget(settings(tmp_path, COMPUTE_BUDGET_USD="9"))  # the real clock: beats are stamped by it
    e1, _ = b.reserve(1_000_000, {"id": new_id(), "kind": "provision", "method": "x402", "terms": {}})
    e2, _ = b.reserve(1_000_000, {"id": new_id(), "kind": "extend", "method": "x402", "terms": {}})

    def beat_of(e):
        return next(r for r in b.ledger.rows(0) if r["id"] == e["id"])["heartbeat_ts"]

    first = {e["id"]: beat_of(e) for e in (e1, e2)}
    with b.heartbeat(e1["id"], every_s=0.05), b.heartbeat(e2["id"], every_s=0.05):
        wait_until(lambda: beat_of(e1) > first[e1["id"]] and beat_of(e2) > first[e2["id"]], "both heartbeats refreshed")
        beaters = [t for t in threading.enumerate() if t.name == "x402-reservation-heartbeat"]
        assert len(beaters) == 1
    with b.heartbeat(e2["id"], every_s=0.05):  # another hold: the released one is not beaten any more
        for _ in range(2):  # two rounds: a round already under way when e1 was released has ended
            after = beat_of(e2)
            wait_until(lambda: beat_of(e2) > after, "the held reservation beaten again")
        stopped = beat_of(e1)
        after = beat_of(e2)
        wait_until(lambda: beat_of(e2) > after, "the held reservation beaten again")
        assert beat_of(e1) == stopped
