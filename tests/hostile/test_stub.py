"""The stub is honest until told otherwise: the real scripts run a paid provision end to end
against it, and it records what it received (one signed payment, carried on one paid request)."""

from __future__ import annotations

import json
import uuid

from tests.helpers import run_script, state_entries
from tests.hostile.stub import Reply, unb64json


def test_paid_provision_end_to_end(hostile, hostile_env, tmp_path):
    env = hostile_env()
    code, doc, err = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", env=env)
    assert code == 0, (doc, err)
    order = doc["order"]
    assert uuid.UUID(order["id"]) and order["id"] in hostile.orders
    assert doc["payment"]["amount_atomic"] == "240000" and doc["payment"]["network"] == "base"
    paid = hostile.paid_requests()
    assert len(paid) == 1 and len(hostile.signatures()) == 1
    name, value = paid[0].payment
    assert name == "x-payment"
    payload = unb64json(value)
    assert payload["x402Version"] == 1 and payload["payload"]["authorization"]["value"] == "240000"
    journal = state_entries(tmp_path / "home" / "state")
    assert len(journal) == 1 and journal[0]["status"] == "settled"


def test_v2_challenge_and_overrides(hostile, hostile_env):
    hostile.x402_versions = (2,)
    hostile.override("POST", "/compute/provision", Reply(409, {"error": "busy"}), when="paid", times=1)
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", env=hostile_env())
    # A 409 to the paid request is no answer: the same bytes once more, and that one succeeds.
    assert code == 0 and doc["payment"]["resent"] is True
    paid = hostile.paid_requests()
    assert paid and all(r.payment[0] == "payment-signature" for r in paid)
    assert len(hostile.signatures()) == 1  # whatever the client did next, it signed once
