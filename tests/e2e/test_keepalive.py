"""keepalive.py against the sandbox: extensions settle on the local chain (the payer's balance is
the proof), one when under the threshold and none above it; the budget stops it, for good until
--resume; two runs at once pay for one window once."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import timedelta

import pytest
from x402_compute.instances import parse_time

from tests.helpers import SCRIPTS, fail_doc, journal_entries, ok, run_script, wallet_env

HOURLY = 10_400  # vc2-1c-1gb: 0.0104 USD per hour, in USDC atomic units (6 decimals)
PRICE_24H = 24 * HOURLY


def near(a, b) -> bool:  # next_action_at is printed to the second
    return abs((a - b).total_seconds()) < 1


class Rented:
    """A machine provisioned for 24 h (directly, as any client would), managed by the scripts."""

    def __init__(self, sandbox, tools, home, **env) -> None:
        self.sandbox, self.home = sandbox, home
        self.w = tools.fresh_wallet(sandbox.facilitator, usd=5)
        self.id = tools.provision(sandbox, self.w, hours=24)["order"]["id"]
        self.env = wallet_env(sandbox, self.w, home, **env)

    def balance(self) -> int:
        return self.sandbox.facilitator.balance_of("base", self.w["evm_address"])

    def expires(self):
        return parse_time(ok(run_script("instance_details.py", self.id, env=self.env))["instance"]["expires_at"])

    def keepalive(self, *args: str, env: dict | None = None):
        return run_script("keepalive.py", self.id, "--for", "3d", *args, env=env or self.env, timeout=120)

    def extends(self) -> list[dict]:
        return [e for e in journal_entries(self.home) if e["kind"] == "extend"]


def test_extends_once_under_the_threshold_and_not_above(sandbox, tools, tmp_path):
    m = Rented(sandbox, tools, tmp_path)
    start_balance, start_expiry = m.balance(), m.expires()
    # 24 h left, threshold 6 h: nothing to do, and it says when that changes.
    doc = ok(m.keepalive("--yes"))
    assert doc["action"] == "none" and doc["done"] is False
    assert near(parse_time(doc["next_action_at"]), start_expiry - timedelta(hours=6))
    # A threshold of 30 h: the dry run says what it would pay, from the catalog, and pays nothing.
    doc = ok(m.keepalive("--min-hours-left", "30", "--dry-run"))
    assert doc["action"] == "would_extend" and doc["extension"]["hours"] == 24 and doc["extension"]["estimated_usd"] == "0.2496"
    assert m.balance() == start_balance and m.extends() == []
    # The real run: one 24 h block, settled on chain for exactly its price, expiry 24 h later.
    doc = ok(m.keepalive("--min-hours-left", "30", "--yes"))
    assert doc["action"] == "extended" and doc["extension"]["hours"] == 24
    assert doc["payment"]["amount_atomic"] == str(PRICE_24H) and doc["payment"]["tx_hash"]
    assert m.balance() == start_balance - PRICE_24H
    assert m.expires() == start_expiry + timedelta(hours=24) == parse_time(doc["expires_at"])
    assert near(parse_time(doc["next_action_at"]), start_expiry + timedelta(hours=24 - 30))
    # 48 h left now, above 30: no second payment.
    doc = ok(m.keepalive("--min-hours-left", "30", "--yes"))
    assert doc["action"] == "none" and m.balance() == start_balance - PRICE_24H and len(m.extends()) == 1
    # The target (3 days from the first run) is 24 h and however long the first run came after the
    # expiry was set away (a second or so; within the same second when the machine is quick): the
    # whole hours that reach it, then done.
    doc = ok(m.keepalive("--min-hours-left", "60", "--yes"))
    target, old = parse_time(doc["target"]["until"]), parse_time(doc["extension"]["old_expires_at"])
    hours = max(24, math.ceil((target - old).total_seconds() / 3600 - 1e-9))
    assert doc["action"] == "extended" and doc["extension"]["hours"] == hours and hours in (24, 25)
    assert doc["payment"]["amount_atomic"] == str(hours * HOURLY)
    assert doc["done"] is True and doc["next_action_at"] is None
    assert ok(m.keepalive("--min-hours-left", "60", "--yes"))["action"] == "done"
    assert len(m.extends()) == 2


def test_the_budget_stops_it_until_resumed(sandbox, tools, tmp_path):
    m = Rented(sandbox, tools, tmp_path, COMPUTE_BUDGET_USD="0.4")  # room for one extension, not two
    before = m.balance()
    assert ok(m.keepalive("--min-hours-left", "30", "--yes"))["action"] == "extended"
    err = fail_doc(m.keepalive("--min-hours-left", "50", "--yes"), 3, "budget_exceeded")["error"]
    assert err["details"]["keepalive"] == "stopped" and "--resume" in err["hint"]
    # Stopped: even with the budget raised, later runs refuse until the human resumes it.
    raised = {**m.env, "COMPUTE_BUDGET_USD": "1"}
    err = fail_doc(m.keepalive("--min-hours-left", "50", "--yes", env=raised), 3, "keepalive_stopped")["error"]
    assert err["details"]["stopped"]["code"] == "budget_exceeded"
    assert m.balance() == before - PRICE_24H and len(m.extends()) == 1
    doc = ok(m.keepalive("--min-hours-left", "50", "--yes", "--resume", env=raised))
    # The last extension before the target pays the whole hours that reach it: 24 h plus however
    # long the first run came after the instance's expiry was set (a second on a quiet machine).
    target, old = parse_time(doc["target"]["until"]), parse_time(doc["extension"]["old_expires_at"])
    hours = max(24, math.ceil((target - old).total_seconds() / 3600 - 1e-9))
    assert doc["action"] == "extended" and doc["extension"]["hours"] == hours and hours in (24, 25)
    assert m.balance() == before - PRICE_24H - hours * HOURLY


def test_two_runs_at_once_pay_for_one_window_once(sandbox, tools, tmp_path):
    m = Rented(sandbox, tools, tmp_path)
    before, expiry = m.balance(), m.expires()
    argv = [sys.executable, str(SCRIPTS / "keepalive.py"), m.id, "--for", "3d", "--min-hours-left", "30", "--yes"]
    procs = [subprocess.Popen(argv, env=m.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    docs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, (out, err)
        docs.append(json.loads(out))
    actions = sorted(d["action"] for d in docs)
    assert actions == ["extended", "none", "none"], docs
    assert m.balance() == before - PRICE_24H and len(m.extends()) == 1
    assert m.expires() == expiry + timedelta(hours=24)


def test_the_total_stops_a_payment_across_two_runs_before_signing(sandbox, tools, tmp_path):
    """--max-total-usd bounds all one target may pay, summed from the journal across runs: the
    first extension fits, the second would go over and is refused before anything is signed."""
    m = Rented(sandbox, tools, tmp_path)
    before = m.balance()
    # The dry run: the schedule to the target (3 days), each payment and the total, against the limits.
    doc = ok(m.keepalive("--dry-run", "--max-total-usd", "0.40"))
    sched = doc["schedule"]
    assert doc["action"] == "none" and sched["count"] == len(sched["payments"]) >= 2
    assert [p["hours"] for p in sched["payments"]][0] == 24 and sched["payments"][0]["amount_usd"] == "0.2496"
    assert sum(float(p["amount_usd"]) for p in sched["payments"]) == pytest.approx(float(sched["total_usd"]))
    assert parse_time(sched["payments"][-1]["expires_at_after"]) >= parse_time(doc["target"]["until"])
    lim = sched["limits"]
    assert lim["max_total_usd"] == "0.4" and lim["paid_for_target_usd"] == "0" and lim["within_total"] is False
    assert lim["per_payment_cap_usd"] == "25" and lim["over_cap"] == [] and lim["within_budget"] is True
    assert "payment(s)" in doc["message"] and m.balance() == before

    # Run 1 pays one block (0.2496 of 0.40).
    doc = ok(m.keepalive("--min-hours-left", "30", "--yes", "--max-total-usd", "0.40"))
    assert doc["action"] == "extended" and m.balance() == before - PRICE_24H
    assert m.extends()[0]["context"]["keepalive"]["until"] == doc["target"]["until"]
    assert doc["total"] == {"max_total_usd": "0.4", "paid_for_target_usd": "0.2496", "remaining_usd": "0.1504"}
    # Run 2 (another process, later): 0.2496 more would make 0.4992 > 0.40: refused, nothing signed.
    err = fail_doc(m.keepalive("--min-hours-left", "50", "--yes", "--max-total-usd", "0.40"), 3, "keepalive_total_exceeded")["error"]
    assert err["details"]["paid_for_target_usd"] == "0.2496" and err["details"]["remaining_usd"] == "0.1504"
    assert m.balance() == before - PRICE_24H and len(m.extends()) == 1  # no second entry: nothing reserved or signed
    # Not a stop: the human raising the total lets the next run pay.
    doc = ok(m.keepalive("--min-hours-left", "50", "--yes", "--max-total-usd", "0.60"))
    assert doc["action"] == "extended" and m.balance() == before - PRICE_24H - int(doc["payment"]["amount_atomic"])
    assert len(m.extends()) == 2
    fail_doc(m.keepalive("--yes", "--max-total-usd", "abc"), 2, "config_error")


def test_keepalive_payments_say_keepalive_and_an_unknown_one_stops_either_script(sandbox, tools, tmp_path):
    """keepalive.py pays an extend like extend_instance.py (kind extend, marked keepalive in its context):
    budget.py names the script that paid, and an unknown outcome from either script stops the other
    from paying for the same instance again before anything is signed (the journal's unresolved rule
    matches by kind and instance, not by script)."""
    from tests.helpers import Proxy

    m = Rented(sandbox, tools, tmp_path / "a")
    ok(m.keepalive("--min-hours-left", "30", "--yes"))
    ok(run_script("extend_instance.py", m.id, "--hours", "24", "--yes", env=m.env, timeout=120))
    rows = ok(run_script("budget.py", env=m.env))["payments"]
    assert [(r["script"], r["instance"], r["outcome"]) for r in rows] == [("keepalive.py", m.id, "settled"), ("extend_instance.py", m.id, "settled")]
    assert [e["kind"] for e in m.extends()] == ["extend", "extend"]
    listed = ok(run_script("reconcile.py", "--list", env=m.env))
    assert {e["kind"] for e in listed["entries"]} == {"extend"}

    for first, then in (("keepalive", "extend_instance"), ("extend_instance", "keepalive")):
        proxy = Proxy(sandbox.base_url, drop_paid=2)  # both paid answers lost: exit 4, the money moved
        try:
            r = Rented(sandbox, tools, tmp_path / first)
            env = {**r.env, "COMPUTE_BASE_URL": proxy.url}
            # keepalive's threshold is above what is left even once the lost extension applied (48 h).
            run = {"keepalive": lambda: r.keepalive("--min-hours-left", "60", "--yes", env=env),
                   "extend_instance": lambda: run_script("extend_instance.py", r.id, "--hours", "24", "--yes", env=env, timeout=120)}
            fail_doc(run[first](), 4, "payment_outcome_unknown")
            paid_once, headers = r.balance(), list(proxy.payment_headers)
            err = fail_doc(run[then](), 3, "unresolved_payment")["error"]
            assert "Nothing was signed" in err["message"] and err["details"]["journal_id"] == r.extends()[0]["id"]
            assert r.balance() == paid_once and proxy.payment_headers == headers and len(r.extends()) == 1
        finally:
            proxy.stop()
