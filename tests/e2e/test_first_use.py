"""What a first-time user meets: the mistakes agents make after an unknown outcome, and the text a
human reads at a terminal. The real scripts as subprocesses against the sandbox."""

from __future__ import annotations

import subprocess
import sys

import requests

from tests.helpers import (
    PLAN,
    REGION,
    SCRIPTS,
    balances,
    fail_doc,
    journal_entries,
    ok,
    wallet_env,
)


def _text(name: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPTS / name), *args, "-o", "text"], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)


def test_rerun_after_exit_4_is_refused_until_reconciled(make_sandbox, tools, tmp_path):
    sb = make_sandbox()
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    env = wallet_env(sb, w, tmp_path)
    before = balances(sb, w)["base"]
    # Two drops: the paid answer and the client's one automatic resend (a replay) are both lost.
    assert requests.post(sb.base_url + "/_sandbox/faults", json={"drop_after_settle": 2}, timeout=5).status_code == 200
    e = fail_doc(subprocess_run("provision.py", env), 4, "payment_outcome_unknown")
    jid = e["error"]["details"]["journal_id"]
    paid_once = balances(sb, w)["base"]
    assert before - paid_once == 249600

    # The agent's mistake: running the paid command again. Refused before anything is signed.
    e = fail_doc(subprocess_run("provision.py", env), 3, "unresolved_payment")
    assert e["error"]["details"]["journal_id"] == jid and f"reconcile.py {jid}" in e["error"]["hint"]
    assert balances(sb, w)["base"] == paid_once
    # A quote signs nothing, so it is not blocked.
    assert ok(run(["provision.py", PLAN, REGION, "--days", "1", "--quote"], env))["quote"]["signed"] is False

    found = ok(run(["reconcile.py", jid], env))
    assert found["found"] is True
    (entry,) = journal_entries(tmp_path)
    assert entry["status"] == "settled"
    ok(subprocess_run("provision.py", env))  # reconciled: a new order may be paid
    assert paid_once - balances(sb, w)["base"] == 249600


def test_text_a_human_reads(make_sandbox, tools, tmp_path):
    sb = make_sandbox(boot_seconds=30)
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    env = wallet_env(sb, w, tmp_path)
    q = _text("provision.py", PLAN, REGION, "--days", "1", "--quote", env=env)
    assert q.returncode == 0 and "signed: false" in q.stdout and "policy: ok=true" in q.stdout
    assert "False" not in q.stdout and "{'" not in q.stdout  # no Python reprs

    p = _text("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env)
    assert p.returncode == 0, p.stderr
    iid = p.stdout.split()[1].rstrip(":")
    # No IP yet: point at the read-only check, never at re-running the paid command.
    assert f"instance_details.py {iid}" in p.stdout and "use --wait" not in p.stdout

    x = _text("extend_instance.py", iid, "--days", "1", "--yes", env=env)
    assert x.returncode == 0 and "paid 0.2496 USDC on base" in x.stdout, x

    r = _text("reconcile.py", "--list", env=env)
    head, *rows = r.stdout.splitlines()
    assert head.startswith("JOURNAL ID") and len(rows) == 2 and all(line == line.rstrip() for line in r.stdout.splitlines())


def test_one_time_password_ssh_command_has_the_port(make_sandbox, tools, tmp_path):
    sb = make_sandbox(boot_seconds=0)
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    env = wallet_env(sb, w, tmp_path)
    doc = ok(run(["provision.py", PLAN, REGION, "--days", "1", "--yes", "--wait"], env))
    iid, port = doc["order"]["id"], doc["ssh"]["port"]
    assert port != 22  # the sandbox's machines answer on their own port
    pw = ok(run(["get_one_time_password.py", iid], env))
    assert pw["ssh"]["command"] == doc["ssh"]["command"] and pw["ssh"]["auth"] == "password"
    assert "get_one_time_password" not in pw["ssh"].get("note", "")  # the note says how to pin, not to run this script again


def run(argv: list[str], env: dict):
    from tests.helpers import run_script

    return run_script(argv[0], *argv[1:], env=env)


def subprocess_run(name: str, env: dict):
    return run([name, PLAN, REGION, "--days", "1", "--yes"], env)


def test_contradictory_network_and_mpp_are_usage_errors(make_sandbox, tools, tmp_path):
    sb = make_sandbox()
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    env = wallet_env(sb, w, tmp_path)
    before = balances(sb, w)
    # --pay mpp used to pay on Tempo although --network base was named.
    e = fail_doc(run(["provision.py", PLAN, REGION, "--days", "1", "--yes", "--pay", "mpp", "--network", "base"], env), 2, "usage_error")
    assert "--pay mpp" in e["error"]["hint"]
    e = fail_doc(run(["provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "tempo"], env), 2, "usage_error")
    assert "--pay mpp" in e["error"]["hint"]
    assert balances(sb, w) == before and journal_entries(tmp_path) == []


def test_topup_uses_the_balance_scripts_key_names(make_sandbox, tools, tmp_path):
    sb = make_sandbox()
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    env = wallet_env(sb, w, tmp_path)
    top = ok(run(["credits_topup.py", "--amount", "1.5", "--yes"], env))["credits"]
    bal = ok(run(["credits_balance.py"], env))
    assert top["deposited_usd"] == "1.50" and top["balance_usd"] == bal["balance_usd"] == "1.50"
