"""reconcile.py asks the chain whether an unknown payment was used: against the sandbox's RPC, with a
payment that really was signed by the flow but never reached the server (a proxy swallows it).

The validity window (the sandbox asks maxTimeoutSeconds 300) is passed by running reconcile.py
in-process with the on-chain check's clock moved forward; everything else is the real script."""

from __future__ import annotations

import requests

from tests.helpers import (
    PLAN,
    REGION,
    balances,
    fail_doc,
    journal_entries,
    ok,
    reconcile_at,
    run_script,
    swallowed_payment,
    wallet_env,
)


def test_eip3009_never_sent_is_unused_then_expired_and_unblocks(make_sandbox, tools, tmp_path, monkeypatch, capsys):
    sb = make_sandbox()
    proxy, w, env, jid = swallowed_payment(sb, tools, tmp_path, "base")
    try:
        (entry,) = journal_entries(tmp_path)
        assert entry["status"] == "unknown"
        rec = ok(run_script("reconcile.py", jid, env=env))
        assert rec["found"] is False and rec["onchain"]["state"] == "unused" and rec["onchain"]["valid_before"] == entry["valid_before"]
        assert rec["journal"]["status"] == "unknown" and "Do not pay again" in rec["advice"] and "--resend" in rec["advice"]
        # still blocked: it may settle until valid_before
        e = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env), 3, "unresolved_payment")
        assert "asks the chain" in e["error"]["hint"]

        rec = reconcile_at(monkeypatch, capsys, env, entry["valid_before"] + 1, jid)
        assert rec["onchain"]["state"] == "expired_unused" and rec["journal"]["status"] == "expired"
        assert "Paying again is safe" in rec["advice"]
        (entry,) = journal_entries(tmp_path)
        assert entry["status"] == "expired" and entry["history"][-1]["status"] == "expired"
        fail_doc(run_script("reconcile.py", jid, "--resend", env=env), 2, "already_expired")
    finally:
        proxy.stop()
    # no longer refused: paying (directly, not through the swallowing proxy) goes through once
    direct = wallet_env(sb, w, tmp_path)
    before = balances(sb, w)["base"]
    ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=direct))
    assert before - balances(sb, w)["base"] == 249600


def test_solana_exit_4_settled_and_never_sent(make_sandbox, tools, tmp_path, monkeypatch, capsys):
    """The sandbox's facilitator pays the Solana fee, so the transaction id is its signature, not the
    payer's: reconcile looks for the payer's signature in the history of the payer's token account
    (getSignaturesForAddress + getTransaction), after asking whether the blockhash can still land."""
    sb = make_sandbox()
    proxy, w, env, jid = swallowed_payment(sb, tools, tmp_path, "solana")
    try:
        (entry,) = journal_entries(tmp_path)
        rec = ok(run_script("reconcile.py", jid, env=env))
        chain = rec["onchain"]
        assert chain["scheme"] == "svm_exact" and chain["state"] == "unused" and chain["blockhash_valid"] is True
        assert "getSignaturesForAddress" in chain["query"] and "Do not pay again" in rec["advice"]
        # Past the client's own estimate, but the chain still takes that blockhash: still unused, still blocking.
        rec = reconcile_at(monkeypatch, capsys, env, entry["valid_before"] + 1, jid)
        assert rec["onchain"]["state"] == "unused" and rec["journal"]["status"] == "unknown"
        fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "solana", env=env), 3, "unresolved_payment")
        # The chain moves on (another payment makes a new block) and the old blockhash ages out.
        tools.provision(sb, tools.fresh_wallet(sb.facilitator, usd=1), network="solana")
        chain_obj = sb.facilitator.chain("solana")
        with chain_obj._lock:   # white-box: pretend BLOCKHASH_TTL_SECONDS have passed for every issued blockhash
            for h in chain_obj._issued:
                chain_obj._issued[h] -= 10_000
        rec = ok(run_script("reconcile.py", jid, env=env))
        assert rec["onchain"]["state"] == "expired_unused" and rec["onchain"]["blockhash_valid"] is False
        assert rec["journal"]["status"] == "expired" and "Paying again is safe" in rec["advice"]
    finally:
        proxy.stop()
    direct = wallet_env(sb, w, tmp_path)
    before = balances(sb, w)["solana"]
    ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "solana", env=direct))
    assert before - balances(sb, w)["solana"] == 249600


def test_solana_exit_4_that_settled(make_sandbox, tools, tmp_path):
    sb = make_sandbox()
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    env = wallet_env(sb, w, tmp_path)
    before = balances(sb, w)["solana"]
    assert requests.post(sb.base_url + "/_sandbox/faults", json={"drop_after_settle": 2}, timeout=5).status_code == 200
    jid = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "solana", env=env), 4,
               "payment_outcome_unknown")["error"]["details"]["journal_id"]
    assert before - balances(sb, w)["solana"] == 249600  # it did settle
    rec = ok(run_script("reconcile.py", jid, env=env))
    # Found in the payer's token account history: the transaction the facilitator sent, with the payer's signature.
    (order,) = sb.app.provider.list(w["solana_address"])
    assert rec["onchain"]["state"] == "used" and rec["onchain"]["transaction"] == order["tx_hash"]
    assert rec["journal"]["status"] == "settled"
