"""The rolling budget end to end: the real scripts as subprocesses against the sandbox, payments
settled on its local chains, payment headers counted by a proxy in front of it.

The plan costs 0.2496 USD per 24 h (vc2-1c-1gb at 0.0104 USD/h), so a budget of 0.7488 fits
exactly three provisions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.helpers import (
    PLAN,
    REGION,
    Proxy,
    balances,
    budget_race,
    fail_doc,
    journal_entries,
    ok,
    run_script,
    wallet_env,
)

PRICE_ATOMIC = 249_600  # 0.2496 USDC
ARGS = ("provision.py", PLAN, REGION, "--days", "1")


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_eight_processes_at_once_with_a_budget_for_three(make_sandbox, tools, tmp_path):
    sb = make_sandbox()
    proxy = Proxy(sb.base_url)
    try:
        w = tools.fresh_wallet(sb.facilitator, usd=20)
        env = wallet_env(sb, w, tmp_path, COMPUTE_BASE_URL=proxy.url, COMPUTE_BUDGET_USD="0.7488")
        before = balances(sb, w)["base"]
        paid, refused = budget_race([env], n=8, fits=3)
        # Exactly three signatures ever reached the server, and exactly three moved money on chain.
        assert proxy.paid_requests == 3 and len(set(proxy.payment_headers)) == 3
        assert before - balances(sb, w)["base"] == 3 * PRICE_ATOMIC
        mine = [p for p in sb.app.store.payments() if (p.get("payer") or "").lower() == w["evm_address"].lower()]
        assert len(mine) == 3
        det = refused[0]["error"]["details"]
        assert det["limit_usd"] == "0.7488" and det["requested_usd"] == "0.2496" and det["window"] == "24h"
        assert det["remaining_usd"] == "0" and det["frees_at"]  # the first payment rolls off in 24 h
        assert {e["status"] for e in journal_entries(tmp_path)} == {"settled"} and len(journal_entries(tmp_path)) == 3
        # The last payment used the whole budget: its result says so, and warned on stderr.
        last = max(paid, key=lambda d: d["budget"]["spent_usd"])
        assert last["budget"]["remaining_usd"] == "0" and "warning" in last["budget"]
    finally:
        proxy.stop()


def test_quote_and_result_carry_the_budget_and_a_warning_at_80_percent(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path, COMPUTE_BUDGET_USD="0.6", COMPUTE_BUDGET_WINDOW="2d")
    q = ok(run_script(*ARGS, "--quote", env=env))["quote"]
    assert q["budget"] == {"limit_usd": "0.6", "window": "2d", "spent_usd": "0", "reserved_usd": "0", "remaining_usd": "0.3504"}
    code, doc, err = run_script(*ARGS, "--yes", env=env)
    assert code == 0 and doc["budget"]["spent_usd"] == "0.2496" and "warning" not in doc["budget"]
    assert "warning" not in err
    code, doc, err = run_script(*ARGS, "--yes", env=env)  # 0.4992 of 0.6 = 83 %
    assert code == 0 and doc["budget"]["remaining_usd"] == "0.1008"
    assert "83%" in doc["budget"]["warning"] and "warning: 83%" in err
    # A third does not fit: the quote already says so, exit 3 with the same code and the figures.
    q = fail_doc(run_script(*ARGS, "--quote", env=env), 3, "budget_exceeded")
    assert q["error"]["details"]["remaining_usd"] == "0.1008" and q["error"]["details"]["quote"]["amount_usd"] == "0.2496"
    b = ok(run_script("budget.py", env=env))
    assert b["budget"]["spent_usd"] == "0.4992" and len(b["payments"]) == 2
    assert {r["script"] for r in b["payments"]} == {"provision.py"} and all(r["counts"] for r in b["payments"])
    assert b["per_day"] == [{"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "usd": "0.4992"}]


def _settled_entry(home, created: datetime, micros: int) -> str:
    """A past payment in the journal, as the flow writes it (what counts is read from the journal)."""
    from x402_compute.payments.journal import Journal, new_id

    jid = new_id()
    Journal(home / "state").create({"id": jid, "kind": "provision", "method": "x402", "status": "settled",
                                    "created_at": _iso(created), "budget_micros": micros, "terms": {},
                                    "offer": {"network": "base", "amount_atomic": str(micros)}})
    return jid


def test_the_window_rolls(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path, COMPUTE_BUDGET_USD="1")
    now = datetime.now(timezone.utc)
    _settled_entry(tmp_path, now - timedelta(hours=25), 900_000)  # out of the 24 h window: does not count
    recent = now - timedelta(hours=23, minutes=50)
    _settled_entry(tmp_path, recent, 800_000)  # in it: 0.8 of 1
    doc = fail_doc(run_script(*ARGS, "--yes", env=env), 3, "budget_exceeded")
    det = doc["error"]["details"]
    assert det["spent_usd"] == "0.8" and det["remaining_usd"] == "0.2"
    frees = datetime.fromisoformat(det["frees_at"].replace("Z", "+00:00"))
    assert abs((frees - (recent + timedelta(hours=24))).total_seconds()) < 2
    # A longer window counts the old payment too; budget.py --window looks further back.
    b = ok(run_script("budget.py", "--window", "2d", env=env))
    assert b["budget"]["spent_usd"] == "0.8" and len(b["payments"]) == 2 and b["lookback"] == "2d"
    # With a 1 h window neither counts: the provision goes through.
    doc = ok(run_script(*ARGS, "--yes", env={**env, "COMPUTE_BUDGET_WINDOW": "1h"}))
    assert doc["budget"]["window"] == "1h" and doc["budget"]["spent_usd"] == "0.2496"


def test_off_disables_it(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path, COMPUTE_BUDGET_USD="off")
    _settled_entry(tmp_path, datetime.now(timezone.utc), 10**9)  # 1000 USD already spent
    doc = ok(run_script(*ARGS, "--yes", env=env))
    assert doc["budget"]["limit_usd"] == "off" and doc["budget"]["remaining_usd"] is None
    # ...but an empty value is the default (50 USD), not off.
    fail_doc(run_script(*ARGS, "--yes", env={**env, "COMPUTE_BUDGET_USD": ""}), 3, "budget_exceeded")


@pytest.mark.parametrize("var, value", [
    ("COMPUTE_BUDGET_USD", "abc"), ("COMPUTE_BUDGET_USD", "-1"), ("COMPUTE_BUDGET_USD", "NaN"),
    ("COMPUTE_BUDGET_WINDOW", "5x"), ("COMPUTE_BUDGET_WINDOW", "0h"), ("COMPUTE_BUDGET_WINDOW", "91d"),
    ("COMPUTE_ALLOWED_NETWORKS", "base,ethereum"), ("COMPUTE_ALLOWED_NETWORKS", ","),
    ("COMPUTE_MAX_INSTANCES", "-1"), ("COMPUTE_MAX_INSTANCES", "two"),
])
def test_a_malformed_setting_is_a_configuration_error_before_anything_is_sent(tmp_path, var, value):
    from tests.helpers import clean_env

    # An unreachable base URL: had anything been sent, the error would be a network error.
    env = clean_env({"COMPUTE_BASE_URL": "http://127.0.0.1:9", "PRIVATE_KEY": "0x" + "11" * 32, var: value}, home=tmp_path)
    code, doc, _ = run_script(*ARGS, "--yes", env=env)
    assert code == 2 and doc["error"]["code"] == "config_error", doc
    assert var in doc["error"]["message"] and repr(value) in doc["error"]["message"]


def test_allowed_networks_and_instance_limit_refuse_before_signing(sandbox, tools, tmp_path):
    proxy = Proxy(sandbox.base_url)
    try:
        w = tools.fresh_wallet(sandbox.facilitator, usd=5)
        env = wallet_env(sandbox, w, tmp_path, COMPUTE_BASE_URL=proxy.url, COMPUTE_ALLOWED_NETWORKS="solana,tempo")
        doc = fail_doc(run_script(*ARGS, "--network", "base", "--yes", env=env), 3, "network_not_allowed")
        assert doc["error"]["details"]["allowed"] == ["solana", "tempo"] and proxy.paid_requests == 0
        # With no --network, the default is the first allowed network the wallets can pay on.
        doc = ok(run_script(*ARGS, "--yes", env=env))
        assert doc["payment"]["network"] == "solana" and proxy.paid_requests == 1
        # One live instance and a limit of one: the next provision is refused before anything is signed.
        doc = fail_doc(run_script(*ARGS, "--yes", env={**env, "COMPUTE_MAX_INSTANCES": "1"}), 3, "instance_limit")
        assert doc["error"]["details"]["live"] == 1 and proxy.paid_requests == 1
        ok(run_script(*ARGS, "--yes", env={**env, "COMPUTE_MAX_INSTANCES": "2"}))
        assert proxy.paid_requests == 2
    finally:
        proxy.stop()


def test_an_unknown_outcome_counts_until_reconciled_unused(make_sandbox, tools, tmp_path, monkeypatch, capsys):
    from tests.helpers import reconcile_at, swallowed_payment

    sb = make_sandbox()
    proxy, w, env, jid = swallowed_payment(sb, tools, tmp_path, "base")
    try:
        b = ok(run_script("budget.py", env=env))
        row = next(r for r in b["payments"] if r["journal_id"] == jid)
        assert row["outcome"] == "unknown" and row["counts"] is True and b["budget"]["spent_usd"] == "0.2496"
        entry = journal_entries(tmp_path)[0]
        reconcile_at(monkeypatch, capsys, env, entry["valid_before"] + 1, jid)  # proven unused and expired
        b = ok(run_script("budget.py", env=env))
        assert b["payments"][0]["outcome"] == "expired" and b["payments"][0]["counts"] is False
        assert b["budget"]["spent_usd"] == "0"
    finally:
        proxy.stop()


def test_topups_count_when_bought_and_credits_spent_do_not_count_again(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = wallet_env(sandbox, w, tmp_path, COMPUTE_BUDGET_USD="1.3")
    doc = ok(run_script("credits_topup.py", "--amount", "1", "--yes", env=env))
    assert doc["budget"]["spent_usd"] == "1"
    doc = ok(run_script(*ARGS, "--use-credits", "--yes", env=env))
    assert doc["payment"]["method"] == "credits" and doc["budget"]["spent_usd"] == "1"
    b = ok(run_script("budget.py", env=env))
    credits_row = next(r for r in b["payments"] if r["method"] == "credits")
    assert credits_row["amount_usd"] == "0" and credits_row["outcome"] == "settled"
    # 1 + 0 + 0.2496 fits 1.3; one more x402 provision would not, and leaves no journal entry.
    ok(run_script(*ARGS, "--yes", env=env))
    fail_doc(run_script(*ARGS, "--yes", env=env), 3, "budget_exceeded")
    assert len(journal_entries(tmp_path)) == 3


def test_mpp_payments_count(sandbox, tmp_path):
    pytest.importorskip("mpp")
    from tests.helpers import fresh_tempo_key, tempo_env

    key = fresh_tempo_key(sandbox)
    env = tempo_env(sandbox, tmp_path, key, COMPUTE_BUDGET_USD="0.3")
    doc = ok(run_script(*ARGS, "--pay", "mpp", "--yes", env=env, timeout=120))
    assert doc["payment"]["method"] == "mpp" and doc["budget"]["spent_usd"] == "0.2496"
    fail_doc(run_script(*ARGS, "--pay", "mpp", "--yes", env=env, timeout=120), 3, "budget_exceeded")
    # Tempo can be excluded like any network.
    fail_doc(run_script(*ARGS, "--pay", "mpp", "--yes", env={**env, "COMPUTE_ALLOWED_NETWORKS": "base"}, timeout=120), 3, "network_not_allowed")
