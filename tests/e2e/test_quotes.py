"""An approved quote is what gets paid (issue 15): quote → --confirm-quote pays exactly the quote
on the sandbox; expired, unknown and reused quotes; COMPUTE_REQUIRE_QUOTE; a quote the policy
would refuse exits 3. (A price or payee changed in between: tests/hostile/test_quote_changed.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import (
    PLAN,
    REGION,
    SCRIPTS,
    balances,
    fail_doc,
    journal_entries,
    ledger,
    ok,
    run_script,
    wallet_env,
)

ARGS = ("provision.py", PLAN, REGION, "--days", "1")


def test_confirm_quote_pays_exactly_the_quote(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path)
    q = ok(run_script(*ARGS, "--quote", env=env))["quote"]
    qid = q["quote_id"]
    assert len(qid) == 16 and q["quote_expires_at"] and q["signed"] is False and q["label"].startswith("x402-")
    before = balances(sandbox, w)["base"]
    doc = ok(run_script(*ARGS, "--confirm-quote", qid, env=env, input=""))  # no --yes, not a terminal: the quote is the approval
    assert doc["order"]["label"] == q["label"]  # the quoted label is the order's label
    assert doc["payment"]["amount_atomic"] == q["amount_atomic"] and doc["payment"]["payee"] == q["payee"]
    assert before - balances(sandbox, w)["base"] == int(q["amount_atomic"])
    (entry,) = journal_entries(tmp_path)
    assert entry["label"] == q["label"] and q["label"] == f"x402-{entry['id'][:8]}"
    # A quote pays once.
    fail_doc(run_script(*ARGS, "--confirm-quote", qid, env=env), 3, "quote_used")
    assert balances(sandbox, w)["base"] == before - int(q["amount_atomic"])


def test_an_explicit_label_and_hostname_are_part_of_the_quote(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path)
    q = ok(run_script(*ARGS, "--label", "web", "--hostname", "web1", "--quote", env=env))["quote"]
    assert q["label"] == "web" and q["hostname"] == "web1"
    # The same command with another label is another order: refused, the difference named.
    doc = fail_doc(run_script(*ARGS, "--label", "db", "--hostname", "web1", "--confirm-quote", q["quote_id"], env=env), 3, "quote_changed")
    assert doc["error"]["details"]["differences"] == {"label": {"quoted": "web", "now": "db"}}
    assert journal_entries(tmp_path) == []
    doc = ok(run_script(*ARGS, "--label", "web", "--hostname", "web1", "--confirm-quote", q["quote_id"], env=env))
    assert doc["order"]["label"] == "web"


def test_expired_and_unknown_quotes(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path)
    q = ok(run_script(*ARGS, "--quote", env=env))["quote"]
    led = ledger(tmp_path / "state")
    assert oct((tmp_path / "state" / "ledger.sqlite3").stat().st_mode & 0o777) == "0o600"
    rec = led.get_quote(q["quote_id"])
    rec["expires_at"] -= 601
    led.put_quote(q["quote_id"], rec)
    fail_doc(run_script(*ARGS, "--confirm-quote", q["quote_id"], env=env), 3, "quote_expired")
    fail_doc(run_script(*ARGS, "--confirm-quote", "0123456789abcdef", env=env), 2, "unknown_quote")
    fail_doc(run_script(*ARGS, "--confirm-quote", "../../etc", env=env), 2, "unknown_quote")
    assert journal_entries(tmp_path) == []


def test_require_quote_makes_yes_alone_insufficient(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path, COMPUTE_REQUIRE_QUOTE="1")
    doc = fail_doc(run_script(*ARGS, "--yes", env=env), 3, "quote_required")
    assert "--confirm-quote" in doc["error"]["hint"] and journal_entries(tmp_path) == []
    q = ok(run_script(*ARGS, "--quote", env=env))["quote"]
    ok(run_script(*ARGS, "--confirm-quote", q["quote_id"], env=env))
    fail_doc(run_script(*ARGS, "--yes", env={**env, "COMPUTE_REQUIRE_QUOTE": "maybe"}), 2, "config_error")


def test_a_quote_the_policy_would_refuse_exits_3_with_the_same_code(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path)
    doc = fail_doc(run_script(*ARGS, "--quote", "--max-usd", "0.1", env=env), 3, "spend_cap_exceeded")
    quote = doc["error"]["details"]["quote"]
    assert quote["amount_usd"] == "0.2496" and quote["signed"] is False and "quote_id" not in quote
    paying = fail_doc(run_script(*ARGS, "--yes", "--max-usd", "0.1", env=env), 3, "spend_cap_exceeded")
    assert paying["error"]["message"] == doc["error"]["message"]
    assert ledger(tmp_path / "state") is None or not ledger(tmp_path / "state")._read("SELECT id FROM quotes")


def test_a_paid_extension_quote_never_pays_again(sandbox, tools, tmp_path):
    """Issue 19.1: an extension's terms repeat, so its quote id used to repeat too and a paid id
    paid again. Now the id carries a random part and the expiry it priced; once used it answers
    quote_used forever (also once expired, also after a re-quote of the same terms)."""
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path)
    iid = tools.provision(sandbox, w)["order"]["id"]
    ext = ("extend_instance.py", iid, "--days", "1")
    q1 = ok(run_script(*ext, "--quote", env=env))["quote"]
    q2 = ok(run_script(*ext, "--quote", env=env))["quote"]
    assert q1["quote_id"] != q2["quote_id"] and q1["price_checked"] is True
    assert q1["old_expires_at"] == q2["old_expires_at"] and q1["amount_atomic"] == q2["amount_atomic"]
    before = balances(sandbox, w)["base"]
    paid = ok(run_script(*ext, "--confirm-quote", q1["quote_id"], env=env))
    assert before - balances(sandbox, w)["base"] == int(q1["amount_atomic"]) and paid["payment"]["tx_hash"]
    fail_doc(run_script(*ext, "--confirm-quote", q1["quote_id"], env=env), 3, "quote_used")
    # The other quote priced an expiry that has moved since: not what paying now would buy.
    doc = fail_doc(run_script(*ext, "--confirm-quote", q2["quote_id"], env=env), 3, "quote_changed")
    assert set(doc["error"]["details"]["differences"]) == {"old_expires_at"}
    # A re-quote of the same terms is a new id; the used one stays used, also once expired.
    q3 = ok(run_script(*ext, "--quote", env=env))["quote"]
    assert q3["quote_id"] not in (q1["quote_id"], q2["quote_id"])
    led = ledger(tmp_path / "state")
    rec = led.get_quote(q1["quote_id"])
    rec["expires_at"] -= 3600
    led.update_quote(q1["quote_id"], lambda _: rec)
    fail_doc(run_script(*ext, "--confirm-quote", q1["quote_id"], env=env), 3, "quote_used")
    assert balances(sandbox, w)["base"] == before - int(q1["amount_atomic"])
    assert [e["status"] for e in journal_entries(tmp_path)] == ["settled"]


def test_one_quote_confirmed_by_two_processes_at_once_pays_once(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path)
    q = ok(run_script("credits_topup.py", "--amount", "1", "--quote", env=env))["quote"]
    before = balances(sandbox, w)["base"]
    argv = [sys.executable, str(SCRIPTS / "credits_topup.py"), "--amount", "1", "--confirm-quote", q["quote_id"]]
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    docs = [(json.loads(p.communicate(timeout=60)[0]), p.returncode) for p in procs]
    outcomes = sorted((rc, d["ok"] or d["error"]["code"]) for d, rc in docs)
    assert outcomes == [(0, True), (3, "quote_used")], docs
    assert before - balances(sandbox, w)["base"] == 1_000_000
