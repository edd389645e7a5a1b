"""One budget for a fleet: agents in two state folders ("two machines") sharing one PostgreSQL ledger,
the real scripts as subprocesses against the sandbox, payments settled on its local chains, paid
requests counted by a proxy in front of it. And the upgrade: a state folder written by the release
before the ledger (the JSON journal) keeps its history and its spend.

The plan costs 0.2496 USD per 24 h, so a budget of 0.7488 fits exactly three provisions."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests import pg
from tests.helpers import PLAN, REGION, ROOT, Proxy, balances, budget_race, fail_doc, ok, run_script, wallet_env

PRICE_ATOMIC = 249_600
ARGS = ("provision.py", PLAN, REGION, "--days", "1")
JSON_RELEASE = "621e4e7"  # the last commit whose journal, pins and quotes were JSON files in the state folder


@pytest.fixture(scope="module")
def private_pg(tmp_path_factory):
    """A PostgreSQL of this module's own: one test stops it."""
    pytest.importorskip("psycopg")
    if pg.bin_dir() is None:
        pytest.skip("no PostgreSQL server here (initdb); CI installs one (.ci/run)")
    server = pg.Server(pg.shared_root(f"fleet-{os.getpid()}-{tmp_path_factory.getbasetemp()}"))
    port = server.acquire("fleet")
    try:
        yield server, port
    finally:
        server.release("fleet")


def test_eight_agents_in_two_state_folders_share_one_budget_pins_and_quotes(make_sandbox, tools, tmp_path, ledger_url):
    sb = make_sandbox()
    proxy = Proxy(sb.base_url)
    try:
        w = tools.fresh_wallet(sb.facilitator, usd=20)  # one wallet handed to every agent
        envs = [wallet_env(sb, w, tmp_path / m, COMPUTE_BASE_URL=proxy.url, COMPUTE_BUDGET_USD="0.7488", COMPUTE_LEDGER_URL=ledger_url)
                for m in ("laptop", "ci")]
        before = balances(sb, w)["base"]
        paid, refused = budget_race(envs, n=8, fits=3)  # two state folders, one shared budget
        assert proxy.paid_requests == 3 and len(set(proxy.payment_headers)) == 3
        assert before - balances(sb, w)["base"] == 3 * PRICE_ATOMIC
        assert len([p for p in sb.app.store.payments() if (p.get("payer") or "").lower() == w["evm_address"].lower()]) == 3
        # budget.py from either folder: the same fleet totals, per host and per agent (a state folder on a
        # host; "instance" is a machine everywhere else in the output, as in --by instance).
        views = [ok(run_script("budget.py", "--by", "instance", env=e)) for e in envs]
        assert views[0]["budget"] == views[1]["budget"] and views[0]["budget"]["spent_usd"] == "0.7488"
        assert views[0]["fleet"]["agents"] == views[1]["fleet"]["agents"] and views[0]["fleet"]["ledger"] == "postgresql"
        assert "instances" not in views[0]["fleet"] and "this_instance" not in views[0]["fleet"]
        assert [v["fleet"]["this_agent"].rsplit("/", 2)[-2] for v in views] == ["laptop", "ci"]
        spent = {i["agent"].rsplit("/", 2)[-2]: i["spent_usd"] for i in views[0]["fleet"]["agents"]}
        assert {t["key"] for t in views[0]["totals"]} == {p["instance"] for p in views[0]["payments"]}  # machines, not agents
        assert set(spent) <= {"laptop", "ci"} and sum(float(v) for v in spent.values()) == pytest.approx(0.7488)
        assert len(views[0]["payments"]) == len(views[1]["payments"]) == 3

        # A quote made and paid from one folder cannot be paid again from the other.
        more = [{**e, "COMPUTE_BUDGET_USD": "5"} for e in envs]
        q = ok(run_script(*ARGS, "--quote", env=more[0]))["quote"]
        ok(run_script(*ARGS, "--confirm-quote", q["quote_id"], env=more[0]))
        fail_doc(run_script(*ARGS, "--confirm-quote", q["quote_id"], env=more[1]), 3, "quote_used")
        assert proxy.paid_requests == 4

        # The payee pinned by one is enforced for the other: a second service with another payee.
        other = make_sandbox(seed=7)  # another deployment: another payee
        w2 = tools.fresh_wallet(other.facilitator, usd=5)
        env_other = wallet_env(other, w2, tmp_path / "ci", COMPUTE_LEDGER_URL=ledger_url)
        assert other.facilitator.payee("base") != sb.facilitator.payee("base")
        doc = fail_doc(run_script(*ARGS, "--yes", env=env_other), 3, "payee_changed")
        assert doc["error"]["details"]["pinned"] == sb.facilitator.payee("base")
        assert balances(other, w2)["base"] == 5 * 10**6
    finally:
        proxy.stop()


def test_no_ledger_no_payment(private_pg, sandbox, tools, tmp_path):
    server, port = private_pg
    url = pg.fresh_schema(port)
    proxy = Proxy(sandbox.base_url)
    try:
        w = tools.fresh_wallet(sandbox.facilitator, usd=5)
        env = wallet_env(sandbox, w, tmp_path, COMPUTE_BASE_URL=proxy.url, COMPUTE_LEDGER_URL=url)
        ok(run_script(*ARGS, "--yes", env=env))
        assert proxy.paid_requests == 1
        server.stop()  # the database goes away between two runs
        before = balances(sandbox, w)
        doc = fail_doc(run_script(*ARGS, "--yes", env=env), 2, "ledger_unavailable")
        assert "Nothing was signed" in doc["error"]["message"] and "COMPUTE_LEDGER_URL" in doc["error"]["hint"]
        assert proxy.paid_requests == 1 and balances(sandbox, w) == before
        # The read-only commands keep working; the ledger's own report says what is wrong.
        ok(run_script("browse_plans.py", env=env))
        fail_doc(run_script("budget.py", env=env), 2, "ledger_unavailable")
        d = run_script("doctor.py", "--offline", env=env)[1]
        (check,) = [c for c in d["checks"] if c["name"] == "ledger"]
        assert check["status"] == "fail" and check["data"]["engine"] == "postgresql"
    finally:
        proxy.stop()
        server.start_again(port)


def test_a_state_folder_of_the_json_release_keeps_its_history_and_spend(sandbox, tools, tmp_path):
    """Pay with the release before the ledger, then use this one on the same state folder."""
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", JSON_RELEASE, "skills/x402-compute/scripts"],
                                 capture_output=True, check=True, timeout=60).stdout
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip(f"the JSON-journal release ({JSON_RELEASE}) is not in this checkout's history")
    old = tmp_path / "old"
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(old)
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path / "home", COMPUTE_BUDGET_USD="0.5")
    proc = subprocess.run([sys.executable, str(old / "skills/x402-compute/scripts/provision.py"), *ARGS[1:], "--yes"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout)
    state = Path(env["X402_COMPUTE_STATE_DIR"])
    jid = first["payment"]["journal_id"]
    assert (state / "journal" / f"{jid}.json").exists() and (state / "payees.json").exists()

    b = ok(run_script("budget.py", env=env))  # the first use imports
    assert b["budget"]["spent_usd"] == "0.2496" and [r["journal_id"] for r in b["payments"]] == [jid]
    assert (state / "journal.imported" / f"{jid}.json").exists() and not (state / "journal").exists()
    rec = ok(run_script("reconcile.py", jid, env=env))  # reconcile works on the imported entry
    assert rec["found"] is True and rec["journal"]["status"] == "settled"
    # The imported spend still counts: with 0.2496 of 0.5 spent, one more fits, a third does not.
    ok(run_script(*ARGS, "--yes", env=env))
    fail_doc(run_script(*ARGS, "--yes", env=env), 3, "budget_exceeded")
    # The pin came along: the journal and pins now live in the ledger, the old files are kept.
    assert json.loads((state / "payees.json.imported").read_text())["base"]["pay_to"] == sandbox.facilitator.payee("base")


def test_a_folder_switching_from_sqlite_to_postgresql_keeps_its_spend_pins_quotes_and_unresolved(sandbox, tools, tmp_path, ledger_url):
    """Pay on the SQLite ledger (two settled, one outcome unknown, one quote used), then point the
    same folder at a fresh PostgreSQL ledger: its history comes along, the SQLite file untouched."""
    proxy = Proxy(sandbox.base_url)
    try:
        w = tools.fresh_wallet(sandbox.facilitator, usd=5)
        env = wallet_env(sandbox, w, tmp_path, COMPUTE_BASE_URL=proxy.url, COMPUTE_BUDGET_USD="0.75")  # three fit
        ok(run_script(*ARGS, "--yes", env=env))
        q = ok(run_script(*ARGS, "--quote", env=env))["quote"]
        ok(run_script(*ARGS, "--confirm-quote", q["quote_id"], env=env))
        proxy.swallow_paid = True  # the third payment's outcome is unknown (exit 4): it counts and blocks a re-run
        fail_doc(run_script(*ARGS, "--yes", env=env), 4, "payment_outcome_unknown")
        proxy.swallow_paid = False
        state = Path(env["X402_COMPUTE_STATE_DIR"])
        sqlite_before = (state / "ledger.sqlite3").read_bytes()
        paid, spent = proxy.paid_requests, balances(sandbox, w)

        pg_env = {**env, "COMPUTE_LEDGER_URL": ledger_url}
        b = ok(run_script("budget.py", env=pg_env))  # the first use of the shared ledger carries the folder's ledger into it
        assert b["fleet"]["ledger"] == "postgresql" and b["budget"]["spent_usd"] == "0.7488" and len(b["payments"]) == 3
        # The pin came along (a new quote finds the payee pinned, not new); the unknown payment still blocks a re-run;
        # a payment past the budget is refused; the used quote stays used.
        assert ok(run_script(*ARGS, "--quote", env={**pg_env, "COMPUTE_BUDGET_USD": "5"}))["quote"]["payee_status"] == "pinned"
        fail_doc(run_script(*ARGS, "--yes", env=pg_env), 3, "unresolved_payment")
        fail_doc(run_script(*ARGS, "--yes", "--ignore-unresolved", env=pg_env), 3, "budget_exceeded")
        fail_doc(run_script(*ARGS, "--confirm-quote", q["quote_id"], env={**pg_env, "COMPUTE_BUDGET_USD": "5"}), 3, "quote_used")
        assert proxy.paid_requests == paid and balances(sandbox, w) == spent  # nothing more was signed or paid
        assert (state / "ledger.sqlite3").read_bytes() == sqlite_before  # the SQLite ledger stays as it was
        checks = {c["name"]: c for c in run_script("doctor.py", "--offline", env=pg_env)[1]["checks"]}
        assert checks["ledger_import"]["status"] == "ok" and checks["ledger_import"]["data"]["entries"] == 3
        assert "not carried automatically" in checks["ledger_import"]["detail"]
        back = {c["name"]: c for c in run_script("doctor.py", "--offline", env=env)[1]["checks"]}  # back on SQLite: what that means
        assert back["ledger_import"]["status"] == "warn" and "nothing is copied back" in back["ledger_import"]["detail"]

        # Another folder whose own ledger pinned another payee on base joins: refused, naming both, until the human decides.
        from x402_compute.ledger import open_ledger

        other_state = tmp_path / "laptop" / "state"
        mine = "0x" + "77" * 20
        open_ledger(other_state).set_pin("base", {"pay_to": mine, "pinned_at": "2026-01-01T00:00:00Z"})
        other = {**wallet_env(sandbox, w, tmp_path / "laptop", COMPUTE_BASE_URL=proxy.url, COMPUTE_BUDGET_USD="5"), "COMPUTE_LEDGER_URL": ledger_url}
        doc = fail_doc(run_script(*ARGS, "--yes", "--ignore-unresolved", env=other), 3, "payee_conflict")  # (the fleet's unknown one)
        fleet = sandbox.facilitator.payee("base")
        assert (doc["error"]["details"]["local_pinned"], doc["error"]["details"]["fleet_pinned"]) == (mine, fleet)
        assert mine in doc["error"]["message"] and fleet in doc["error"]["message"] and "--accept-payee-change" in doc["error"]["hint"]
        assert proxy.paid_requests == paid and balances(sandbox, w) == spent
        assert [c["name"] for c in run_script("doctor.py", "--offline", env=other)[1]["checks"]].count("ledger_pin_conflict") == 1
        ok(run_script(*ARGS, "--yes", "--ignore-unresolved", "--accept-payee-change", env=other))  # the human's decision: settles, and the conflict is gone
        assert spent["base"] - balances(sandbox, w)["base"] == PRICE_ATOMIC
        assert ok(run_script(*ARGS, "--quote", env=other))["quote"]["payee_status"] == "pinned"
    finally:
        proxy.stop()
