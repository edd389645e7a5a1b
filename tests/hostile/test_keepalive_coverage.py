"""Issue 20.3: keepalive counts coverage, not instants. A server that takes an extension's payment
and never applies it, moving ``expires_at`` by a millisecond between reads, used to get one payment
per keepalive run (the same-window check compared exact instants)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from tests.helpers import run_script
from tests.hostile.stub import iso, json_reply


def ms(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def keepalive(order, env, *more):
    return run_script("keepalive.py", order["id"], "--for", "3d", "--min-hours-left", "6", "--yes", "--max-usd", "1", *more, env=env)


def test_a_shifting_expiry_over_three_runs_gets_one_payment(hostile, hostile_env, tmp_path):
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)  # under the 6 h threshold
    order = hostile.add_order(expires_at=iso(start))
    reads = {"n": 0}

    def shifting(req, honest):  # every read: the old expiry plus one more millisecond
        reads["n"] += 1
        body = json.loads(honest().body_bytes())
        body["order"]["expires_at"] = ms(start + timedelta(milliseconds=reads["n"]))
        return json_reply(200, body)

    def taken_not_applied(req, honest):  # the paid answer claims the 24 h; the instance never shows them
        body = json.loads(honest().body_bytes())
        order["expires_at"] = iso(start)
        body["order"]["expires_at"] = iso(start + timedelta(hours=24))
        return json_reply(200, body)

    hostile.override("GET", f"/compute/instances/{order['id']}", shifting)
    hostile.override("POST", f"/compute/instances/{order['id']}/extend", taken_not_applied, when="paid")
    env = hostile_env()

    code, doc, err = keepalive(order, env)
    assert code == 0 and doc["action"] == "extended" and "warning" not in doc, (doc, err)
    paid_journal = doc["payment"]["journal_id"]

    code, doc, _ = keepalive(order, env)
    assert code == 3 and doc["error"]["code"] == "extension_not_applied", doc
    assert doc["error"]["details"]["journal_id"] == paid_journal and paid_journal in doc["error"]["message"]
    assert doc["error"]["details"]["covered_until"] == iso(start + timedelta(hours=24))

    code, doc, _ = keepalive(order, env)
    assert code == 3 and doc["error"]["code"] == "keepalive_stopped", doc
    assert doc["error"]["details"]["stopped"]["journal_id"] == paid_journal
    assert len(hostile.signatures()) == 1 and len(hostile.paid_requests()) == 1  # one payment in three runs


def test_a_paid_answer_short_of_the_hours_bought_warns_and_stops_keepalive(hostile, hostile_env):
    order = hostile.add_order(expires_at=iso(datetime.now(timezone.utc) + timedelta(hours=2)))

    def short(req, honest):  # settles, and says the instance got one hour of the 24 paid for
        good = honest()
        body = json.loads(good.body_bytes())
        old = datetime.fromisoformat(body["order"]["expires_at"].replace("Z", "+00:00")) - timedelta(hours=24)
        body["order"]["expires_at"] = order["expires_at"] = iso(old + timedelta(hours=1))
        return json_reply(200, body)

    hostile.override("POST", f"/compute/instances/{order['id']}/extend", short, when="paid")
    env = hostile_env()
    code, doc, _ = run_script("extend_instance.py", order["id"], "--hours", "24", "--yes", "--max-usd", "1", env=env)
    assert code == 0 and "earlier than the old one plus the 24 h paid for" in doc["warning"], doc

    code, doc, _ = keepalive(order, env)
    assert code == 3 and doc["error"]["code"] == "extension_not_applied", doc  # the journal shows what extend_instance paid for
    code, doc, _ = keepalive(order, env, "--resume")  # the human looked: that payment no longer blocks; this one is short too
    assert code == 0 and doc["action"] == "extended" and doc["keepalive"] == "stopped" and "warning" in doc, doc
    code, doc, _ = keepalive(order, env)
    assert code == 3 and doc["error"]["code"] == "keepalive_stopped", doc
    assert len(hostile.signatures()) == 2


def test_a_paid_answer_claiming_far_more_than_was_bought_does_not_end_keepalive(hostile, hostile_env):
    """Red-team pass: the extend answer claims the instance now lives until 9999. Believed, keepalive
    said 'done: stop scheduling keepalive.py' while the instance really had 26 h left: the machine
    (and its data) would expire. What was paid for (old expiry + hours) is what keepalive counts on."""
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=2)
    order = hostile.add_order(expires_at=iso(start))

    def boast(req, honest):
        body = json.loads(honest().body_bytes())
        body["order"]["expires_at"] = "9999-12-31T23:59:59Z"
        return json_reply(200, body)

    hostile.override("POST", f"/compute/instances/{order['id']}/extend", boast, when="paid")
    code, doc, err = keepalive(order, hostile_env())
    assert code == 0 and doc["action"] == "extended", (doc, err)
    assert doc["done"] is False and doc["next_action_at"], doc
