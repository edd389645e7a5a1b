"""`--pay stripe`: the scripts pay the sandbox's MPP card charge as subprocesses.

One `--stripe` sandbox for the module. The client creates the Shared Payment Token at the sandbox's
Stripe emulation with the test key its env file names; the sandbox verifies the credential with
pympp's Stripe server method, whose PaymentIntent the emulation creates. The emulation's request
log is how the tests see which Stripe calls were (not) made.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import clean_env, fail, journal_entries, ok, run_script

pytest.importorskip("mpp")

PLAN, REGION = "vc2-1c-1gb", "lax"


@pytest.fixture(scope="module")
def sb():
    from tests.conftest import _start

    d = tempfile.mkdtemp(prefix="x402-sandbox-")
    h = _start(d, stripe=True)
    yield h
    h.stop()
    shutil.rmtree(d, ignore_errors=True)


def env_for(sb, home: Path, **extra) -> dict:
    keys = ("COMPUTE_BASE_URL", "STRIPE_SECRET_KEY", "STRIPE_PAYMENT_METHOD", "STRIPE_API_BASE")
    env = {k: sb.env[k] for k in keys}
    env.update(extra)
    return clean_env({k: v for k, v in env.items() if v is not None}, home=home)


def provision(sb, home, *more, **env):
    return run_script("provision.py", PLAN, REGION, "--days", "1", "--label", f"card-{home.name[-8:]}", "--pay", "stripe",
                      *more, env=env_for(sb, home, **env), timeout=120)


def emulator(sb):
    return sb.sandbox.stripe.emulator.state


def stripe_calls(sb) -> int:
    return len(emulator(sb).requests)


def journal_texts(home: Path) -> str:
    return json.dumps(journal_entries(home))


def test_provision_by_card_settles_once_for_the_quoted_amount(sb, tmp_path):
    before = len(emulator(sb).intents)
    res = provision(sb, tmp_path, "--yes")
    doc = ok(res)
    pay = doc["data"]["payment"] if "data" in doc else doc["payment"]
    data = doc.get("data", doc)
    assert pay["method"] == "stripe" and pay["network"] == "stripe" and pay["currency"] == "usd"
    assert pay["receipt"]["method"] == "stripe" and pay["payment_intent"] == pay["tx_hash"] == pay["receipt"]["reference"]
    pi = emulator(sb).intents[pay["payment_intent"]]
    assert pi["status"] == "succeeded" and pi["amount_received"] == int(pay["amount_atomic"])
    assert len(emulator(sb).intents) == before + 1
    assert pay["payer"] == "stripe:" + sb.env["STRIPE_PAYMENT_METHOD"]
    assert pay["payee"] == sb.sandbox.stripe.emulator.network_id
    # the card payment names no owner: the one-time management key is saved like after MPP
    assert data["management_api_key"]["saved"] is True
    # the secret key is nowhere in what the run printed or kept
    key = sb.env["STRIPE_SECRET_KEY"]
    assert key not in res[2] and key not in json.dumps(doc) and key not in journal_texts(tmp_path)
    (entry,) = journal_entries(tmp_path)
    assert entry["method"] == "stripe" and entry["status"] == "settled" and entry["tx_hash"] == pi["id"]
    assert entry["spt"] == pi["shared_payment_granted_token"]
    # reconcile says what it can for a card entry
    rec = ok(run_script("reconcile.py", entry["id"], env=env_for(sb, tmp_path)))
    rdata = rec.get("data", rec)
    assert rdata["stripe"]["payment_intent"] == pi["id"]
    # the journalled credential, resent under a new Idempotency-Key, is refused by the sandbox
    import requests
    r = requests.post(sb.base_url + entry["request"]["path"], data=entry["request"]["body"].encode(),
                      headers={"Content-Type": "application/json", entry["payment_header_name"]: entry["payment_header_value"],
                               "Idempotency-Key": "another"}, timeout=30)
    assert r.status_code == 403 and len(emulator(sb).intents) == before + 1


def test_cap_and_budget_refuse_before_any_stripe_call(sb, tmp_path):
    n = stripe_calls(sb)
    e = fail(provision(sb, tmp_path, "--yes", "--max-usd", "0.10"), 3, "spend_cap_exceeded")
    assert "0.10" in e["message"]
    e = fail(provision(sb, tmp_path / "b", "--yes", COMPUTE_BUDGET_USD="0.05"), 3)
    assert e["code"].startswith("budget")
    e = fail(provision(sb, tmp_path / "c", "--yes", COMPUTE_ALLOWED_NETWORKS="base,tempo"), 3, "network_not_allowed")
    assert stripe_calls(sb) == n                                     # Stripe was never asked for anything
    # naming stripe allows it
    ok(provision(sb, tmp_path / "d", "--yes", COMPUTE_ALLOWED_NETWORKS="base,stripe"))
    assert stripe_calls(sb) > n


def test_quote_then_confirm_quote_pays_exactly_the_quote(sb, tmp_path):
    n = stripe_calls(sb)
    q = ok(provision(sb, tmp_path, "--quote", STRIPE_SECRET_KEY=None))   # a quote needs no card configured
    quote = q.get("data", q)["quote"]
    assert quote["method"] == "stripe" and quote["network"] == "stripe" and quote["asset"] == "usd"
    assert quote["signed"] is False and stripe_calls(sb) == n
    doc = ok(provision(sb, tmp_path, "--confirm-quote", quote["quote_id"]))
    pay = doc.get("data", doc)["payment"]
    assert pay["amount_atomic"] == quote["amount_atomic"] and pay["method"] == "stripe"
    assert emulator(sb).intents[pay["payment_intent"]]["amount"] == int(quote["amount_atomic"])
    # the quote pays once
    fail(provision(sb, tmp_path, "--confirm-quote", quote["quote_id"]), 3, "quote_used")


def test_wrong_secret_key_is_a_clear_error_and_nothing_is_paid(sb, tmp_path):
    before = len(emulator(sb).intents)
    wrong = "sk_test_" + "Q" * 40
    res = provision(sb, tmp_path, "--yes", STRIPE_SECRET_KEY=wrong)
    e = fail(res, 2, "stripe_auth_failed")
    assert "STRIPE_SECRET_KEY" in e["message"]
    assert len(emulator(sb).intents) == before
    assert wrong not in res[2] and wrong not in json.dumps(res[1])
    # the reservation was released: nothing in the journal
    assert journal_entries(tmp_path) == []
    e = fail(provision(sb, tmp_path, "--yes", STRIPE_SECRET_KEY=None), 2, "stripe_not_configured")
    assert "STRIPE_SECRET_KEY" in e["message"]
    e = fail(provision(sb, tmp_path, "--yes", STRIPE_SECRET_KEY="pk_test_abcdefghijkl"), 2, "config_error")
    assert "STRIPE_SECRET_KEY" in e["message"]


def test_plain_http_stripe_api_base_off_this_machine_is_refused(sb, tmp_path):
    n = stripe_calls(sb)
    e = fail(provision(sb, tmp_path, "--yes", STRIPE_API_BASE="http://stripe.example.com/v1"), 2, "insecure_transport")
    assert "STRIPE_API_BASE" in e["message"] and stripe_calls(sb) == n


def test_secret_key_file_works_and_pay_stripe_contradicts_network(sb, tmp_path):
    f = tmp_path / "sk"
    f.write_text(sb.env["STRIPE_SECRET_KEY"] + "\n")
    f.chmod(0o600)
    ok(provision(sb, tmp_path, "--yes", STRIPE_SECRET_KEY=None, STRIPE_SECRET_KEY_FILE=str(f)))
    fail(provision(sb, tmp_path / "n", "--yes", "--network", "base"), 2)


def test_unknown_outcome_exits_4_and_reconcile_asks_stripe(sb, tmp_path):
    import requests
    assert requests.post(sb.base_url + "/_sandbox/faults", json={"drop_after_settle": 2}, timeout=5).status_code == 200
    before = len(emulator(sb).intents)
    e = fail(provision(sb, tmp_path, "--yes"), 4, "payment_outcome_unknown")
    assert len(emulator(sb).intents) == before + 1                  # charged once, never twice
    jid = e["details"]["journal_id"]
    # paying again for the same order is refused until reconciled: no second token is created
    calls = stripe_calls(sb)
    fail(provision(sb, tmp_path, "--yes"), 3, "unresolved_payment")
    assert stripe_calls(sb) == calls
    rec = ok(run_script("reconcile.py", jid, env=env_for(sb, tmp_path)))
    data = rec.get("data", rec)
    assert data["stripe"]["state"] == "used" and data["stripe"]["query"].startswith("GET /shared_payment/issued_tokens/")
    assert "Stripe shows" in data["advice"] and "Do not pay again" in data["advice"]
    # --resend replays the stored answer (same credential, same Idempotency-Key): settled, no new charge
    res = ok(run_script("reconcile.py", jid, "--resend", env=env_for(sb, tmp_path)))
    assert res.get("data", res)["resend"]["replayed"] is True
    assert len(emulator(sb).intents) == before + 1


def test_extend_by_card_uses_the_saved_management_key(sb, tmp_path):
    doc = ok(provision(sb, tmp_path, "--yes"))
    iid = doc.get("data", doc)["order"]["id"]
    before = len(emulator(sb).intents)
    ext = ok(run_script("extend_instance.py", iid, "--hours", "24", "--pay", "stripe", "--yes", env=env_for(sb, tmp_path), timeout=120))
    pay = ext.get("data", ext)["payment"]
    assert pay["method"] == "stripe" and len(emulator(sb).intents) == before + 1
    assert emulator(sb).intents[pay["payment_intent"]]["amount"] == int(pay["amount_atomic"])


def test_a_server_without_card_charges_is_refused_before_any_stripe_call(sandbox, sb, tmp_path):
    """The session sandbox runs without --stripe (like the hosted service today)."""
    n = stripe_calls(sb)
    env = env_for(sb, tmp_path, COMPUTE_BASE_URL=sandbox.base_url)
    res = run_script("provision.py", PLAN, REGION, "--days", "1", "--pay", "stripe", "--yes", env=env, timeout=120)
    e = fail(res, 1, "stripe_not_offered")
    assert e["details"]["mpp"][0]["method"] == "tempo" and stripe_calls(sb) == n
