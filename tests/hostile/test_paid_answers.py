"""What a hostile or broken server answers to a request that carried a payment (issue 9, classes
3, 4 and 9), driven through the real scripts against the hostile stub.

- Class 3: after a payment left, only a 2xx with a JSON object or a 402 is an answer. Anything
  else is an unknown outcome: the same signed bytes are resent once, then exit 4, journal
  ``unknown``, never retryable, and a re-run refuses to sign again.
- Class 4: once a payment settled, every later failure of the run still shows it.
- Class 9: a payee is pinned only after the offer passed every check and the payment is signed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.helpers import payee_pins, run_script, state_entries
from tests.hostile.stub import Reply, json_reply

ARGS = ("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes")


def journal(tmp_path: Path) -> list[dict]:
    return state_entries(tmp_path / "home" / "state")


def pins(tmp_path: Path) -> dict:
    return payee_pins(tmp_path / "home" / "state")


# -- class 3 --------------------------------------------------------------------------------------

NOT_AN_ANSWER = {
    "301": Reply(301, b"", {"Location": "https://elsewhere.example/compute/provision"}),
    "302": Reply(302, {"error": "moved"}, {"Location": "/compute/provision2"}),
    "400": Reply(400, {"error": "bad request"}),
    "409": Reply(409, {"error": "conflict"}),
    "429": Reply(429, {"error": "slow down"}, {"Retry-After": "1"}),
    "500": Reply(500, {"error": "oops"}),
    "503": Reply(503, b"<html>unavailable</html>"),
    "reset": Reply(reset=True),
    "garbled-2xx": Reply(201, b"<html>created, probably</html>"),
    "2xx-not-an-object": Reply(201, b"[1, 2, 3]"),
    "timeout": Reply(delay=6),
}


@pytest.mark.parametrize("case", sorted(NOT_AN_ANSWER))
def test_only_2xx_or_402_is_an_answer_after_a_payment(hostile, hostile_env, tmp_path, case):
    hostile.override("POST", "/compute/provision", NOT_AN_ANSWER[case], when="paid")
    env = hostile_env(COMPUTE_TIMEOUT="3")
    code, doc, err = run_script(*ARGS, env=env)
    assert code == 4 and doc["error"]["code"] == "payment_outcome_unknown", (case, doc, err)
    e = doc["error"]
    assert e["retryable"] is False and e["details"]["payment"]["journal_id"] == e["details"]["journal_id"]
    assert e["details"]["payment"]["amount_usd"] == "0.24" and e["details"]["payment"]["network"] == "base"
    # The same signed bytes went out exactly twice: one signature, one resend.
    paid = hostile.paid_requests()
    assert len(paid) == 2 and len(hostile.signatures()) == 1 and paid[0].payment == paid[1].payment
    assert paid[0].headers["idempotency-key"] == paid[1].headers["idempotency-key"]
    (entry,) = journal(tmp_path)
    assert entry["status"] == "unknown"
    # Nothing lets a re-run sign a new payment for the same order.
    code, doc, _ = run_script(*ARGS, env=env)
    assert code == 3 and doc["error"]["code"] == "unresolved_payment"
    assert len(hostile.paid_requests()) == 2 and len(hostile.signatures()) == 1


def test_an_unknown_first_answer_then_a_2xx_is_settled(hostile, hostile_env, tmp_path):
    hostile.override("POST", "/compute/provision", Reply(502, {"error": "bad gateway"}), when="paid", times=1)
    code, doc, _ = run_script(*ARGS, env=hostile_env())
    assert code == 0 and doc["payment"]["resent"] is True
    assert len(hostile.paid_requests()) == 2 and len(hostile.signatures()) == 1
    assert journal(tmp_path)[0]["status"] == "settled"


def test_a_402_refusing_the_payment_is_the_only_rejection(hostile, hostile_env, tmp_path):
    hostile.override("POST", "/compute/provision", Reply(402, {"error": "insufficient_funds"}), when="paid")
    code, doc, _ = run_script(*ARGS, env=hostile_env())
    assert code == 1 and doc["error"]["code"] == "payment_rejected" and "insufficient_funds" in doc["error"]["message"]
    assert len(hostile.paid_requests()) == 1 and journal(tmp_path)[0]["status"] == "rejected"


# -- class 4 --------------------------------------------------------------------------------------

def _with_order(**changes):
    def reply(req, honest):
        good = honest()
        body = json.loads(good.body_bytes())
        body["order"] = {**body["order"], **changes}
        for k in [k for k, v in changes.items() if v is None]:
            body["order"].pop(k)
        return json_reply(good.status, body)
    return reply


@pytest.mark.parametrize("bad_id", ["../../../../tmp/owned", "/etc/passwd", "x" * 300, 42, None])
def test_a_settled_payment_with_a_bad_order_id_is_shown_and_exits_4(hostile, hostile_env, tmp_path, bad_id):
    hostile.mpp = False
    hostile.override("POST", "/compute/provision", _with_order(id=bad_id), when="paid")
    code, doc, _ = run_script(*ARGS, env=hostile_env())
    assert code == 4 and doc["error"]["code"] == "bad_response", doc
    pay = doc["error"]["details"]["payment"]
    assert pay["journal_id"] and pay["network"] == "base" and pay["amount_usd"] == "0.24" and pay["tx_hash"]
    assert "do not pay again" in doc["error"]["hint"] and doc["error"]["retryable"] is False
    assert journal(tmp_path)[0]["status"] == "settled" and journal(tmp_path)[0]["order_id"] is None
    state = tmp_path / "home" / "state"
    assert not (state / "instance-owners.json").exists()  # nothing saved under a server-chosen name
    assert not Path("/tmp/owned").exists()


def test_a_management_key_in_an_x402_answer_is_not_saved(hostile, hostile_env, tmp_path):
    def reply(req, honest):
        good = honest()
        body = json.loads(good.body_bytes())
        body["management_api_key"] = "x402c_" + "k" * 40
        return json_reply(good.status, body)

    hostile.override("POST", "/compute/provision", reply, when="paid")
    code, doc, _ = run_script(*ARGS, env=hostile_env())
    assert code == 0 and "management_api_key" not in doc
    assert not (tmp_path / "home" / "state" / "instance-keys").exists()


def test_a_wait_that_fails_after_payment_still_shows_it(hostile, hostile_env, tmp_path):
    # The order is paid; then every read of it says it was destroyed: --wait fails, the payment stays visible.
    hostile.override("GET", "/compute/instances/[0-9a-f-]+$", _with_order(status="destroyed", destroyed_at="2026-01-01T00:00:00Z"))
    code, doc, _ = run_script(*ARGS, "--wait", env=hostile_env())
    assert code == 1 and doc["error"]["code"] == "instance_unusable", doc
    pay = doc["error"]["details"]["payment"]
    assert pay["journal_id"] == journal(tmp_path)[0]["id"] and pay["tx_hash"]
    assert "do not pay again" in doc["error"]["hint"]


def test_a_garbled_instance_while_waiting_is_never_a_bare_internal_error(hostile, hostile_env, tmp_path):
    hostile.override("GET", "/compute/instances/[0-9a-f-]+$", Reply(200, b'{"order": {"id": 5, "ip_address": ["x"], "expires_at": 7}}'))
    code, doc, _ = run_script(*ARGS, "--wait", "--wait-timeout", "3", "--poll-interval", "0.2", env=hostile_env())
    assert doc["ok"] is False and doc["error"]["code"] != "internal_error", doc
    assert code in (1, 4, 5) and doc["error"]["details"]["payment"]["journal_id"]


# -- class 9 --------------------------------------------------------------------------------------

@pytest.mark.parametrize("pay_to", ["not-an-address", "0x1234", "0x" + "zz" * 20, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"])
def test_an_invalid_payee_is_refused_and_never_pinned(hostile, hostile_env, tmp_path, pay_to):
    hostile.pay_to = pay_to
    code, doc, _ = run_script(*ARGS, env=hostile_env())
    assert code == 3 and doc["error"]["code"] == "bad_payee", doc
    assert hostile.paid_requests() == [] and pins(tmp_path) == {} and journal(tmp_path) == []


def test_a_refused_offer_pins_nothing(hostile, hostile_env, tmp_path):
    # The 402 asks ten times what the catalog says.
    hostile.override("POST", "/compute/provision", lambda req, honest: hostile.challenge(req, 2_400_000, "t"), when="unpaid")
    code, doc, _ = run_script(*ARGS, env=hostile_env())
    assert code == 3 and doc["error"]["code"] == "price_mismatch"
    assert pins(tmp_path) == {}


def test_the_payee_is_pinned_only_once_signed(hostile, hostile_env, tmp_path):
    env = hostile_env()
    # Confirmation refused (no --yes, not at a terminal): offer valid, nothing signed, nothing pinned.
    code, doc, _ = run_script(*ARGS[:-1], env=env, input="")
    assert code == 3 and doc["error"]["code"] == "confirmation_required" and pins(tmp_path) == {}
    code, doc, _ = run_script(*ARGS, env=env)
    assert code == 0
    assert pins(tmp_path)["base"]["pay_to"] == hostile.pay_to
    assert uuid.UUID(doc["order"]["id"])


@pytest.mark.parametrize("bad_id", ["../../../../tmp/owned-resend", 42])
def test_a_resend_that_settles_with_a_bad_order_id_still_shows_the_payment(hostile, hostile_env, tmp_path, bad_id):
    # First run: no answer to the paid request, twice → exit 4, journal unknown.
    hostile.mpp = False
    hostile.override("POST", "/compute/provision", Reply(500, {"error": "oops"}), when="paid", times=2)
    env = hostile_env()
    code, doc, _ = run_script(*ARGS, env=env)
    assert code == 4
    jid = doc["error"]["details"]["journal_id"]
    # reconcile --resend: the server now settles it but names the order with a hostile id.
    hostile.override("POST", "/compute/provision", _with_order(id=bad_id), when="paid")
    code, doc, _ = run_script("reconcile.py", jid, "--resend", env=env)
    assert code == 4 and doc["error"]["code"] == "bad_response", doc
    assert doc["error"]["details"]["payment"]["journal_id"] == jid and "do not pay again" in doc["error"]["hint"]
    assert len(hostile.signatures()) == 1  # the stored bytes, never a new signature
    assert journal(tmp_path)[0]["status"] == "settled"
    assert not Path("/tmp/owned-resend").exists()
