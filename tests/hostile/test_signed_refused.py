"""Issue 20.2: signed means spent until proven otherwise. A server that answers every paid request
with 402 collects a valid, independently settleable authorization each time; each must keep
counting toward the budget while it can still settle, and block a re-run for the same order."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from tests.helpers import run_script, state_entries
from tests.hostile.stub import Reply

ARGS = ("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes")  # 0.24 USD


def journal(tmp_path: Path) -> list[dict]:
    return state_entries(tmp_path / "home" / "state")


def test_refused_after_receipt_four_times_with_a_budget_for_two(hostile, hostile_env, tmp_path):
    hostile.override("POST", "/compute/provision", Reply(402, {"error": "insufficient_funds"}), when="paid")
    env = hostile_env(COMPUTE_BUDGET_USD="0.50")

    code, doc, _ = run_script(*ARGS, env=env)
    assert code == 1 and doc["error"]["code"] == "payment_rejected", doc
    until = doc["error"]["details"]["valid_until"]
    left = datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp() - time.time()
    assert 0 < left <= 300 and f"stays valid until {until}" in doc["error"]["message"]  # maxTimeoutSeconds 300
    assert doc["error"]["details"]["counts_toward_budget"] is True

    # The same order again: the refused signature may still settle, so nothing new is signed.
    code, doc, _ = run_script(*ARGS, env=env)
    assert code == 3 and doc["error"]["code"] == "unresolved_payment", doc
    assert doc["error"]["details"]["valid_until"] == until and "--ignore-unresolved" in doc["error"]["hint"]
    assert len(hostile.signatures()) == 1

    # The human overrides that, three more times: the budget still counts every live signature.
    codes = [run_script(*ARGS, "--ignore-unresolved", env=env)[:2] for _ in range(3)]
    assert [c for c, _ in codes] == [1, 3, 3], codes
    assert codes[0][1]["error"]["code"] == "payment_rejected"
    assert [d["error"]["code"] for _, d in codes[1:]] == ["budget_exceeded"] * 2
    assert codes[1][1]["error"]["details"]["spent_usd"] == "0.48"
    assert len(hostile.signatures()) == 2 and len(hostile.paid_requests()) == 2  # two signatures ever left

    code, doc, _ = run_script("budget.py", env=env)
    assert code == 0 and doc["budget"]["spent_usd"] == "0.48" and doc["budget"]["remaining_usd"] == "0.02", doc
    assert [(p["outcome"], p["counts"]) for p in doc["payments"]] == [("rejected", True)] * 2

    code, doc, _ = run_script("reconcile.py", "--list", env=env)
    assert code == 0 and doc["count"] == 2
    assert all(e["status"] == "rejected" and e["unresolved"] is True and e["valid_until"] for e in doc["entries"])
    assert {e["id"] for e in doc["entries"]} == {e["id"] for e in journal(tmp_path)}
