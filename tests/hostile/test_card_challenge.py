"""Issue 20, points 1 and 5: one parse of a card (MPP stripe) challenge, and a one-time management
key never overwritten. Driven through provision.py against the hostile stub, which is also the
Stripe API (``STRIPE_API_BASE``) and records every Shared Payment Token request."""

from __future__ import annotations

import base64
import json

import pytest

from tests.helpers import run_script, state_entries
from tests.hostile.stub import json_reply

pytest.importorskip("mpp")

ARGS = ("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", "--pay", "stripe")


def card_env(hostile, hostile_env, **extra):
    hostile.stripe = True
    return hostile_env(STRIPE_SECRET_KEY="sk_test_" + "s" * 24, STRIPE_PAYMENT_METHOD="pm_card_visa",
                       STRIPE_API_BASE=hostile.base_url, **extra)


def b64url(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def test_an_honest_card_charge_creates_one_token_limited_to_the_checked_terms(hostile, hostile_env):
    # The control: the same setup pays, so "no token request" below means the refusal, not a broken emulation.
    code, doc, err = run_script(*ARGS, env=card_env(hostile, hostile_env))
    assert code == 0, (doc, err)
    (form,) = hostile.spt_requests
    assert form["usage_limits[max_amount]"] == "24" and form["usage_limits[currency]"] == "usd"
    assert form["seller_details[network_business_profile]"] == "profile_stub"
    assert doc["payment"]["amount_usd"] == "0.24" and len(hostile.signatures()) == 1


def split_parse(card: str) -> str:
    """The card challenge with a second ``request`` only a whitespace-splitting reader sees: the old
    parser read ``d`` up to the next comma (keeping the cheap request after it), pympp read
    ``request=<25,000 USD to profile_ATTACKER>`` and lost the cheap one inside ``x``'s quotes."""
    evil = b64url({"amount": "2500000", "currency": "usd",
                   "methodDetails": {"networkId": "profile_ATTACKER", "paymentMethodTypes": ["card"]}})
    head, cheap = card.split(', request="', 1)
    cheap_request, rest = cheap.split('"', 1)
    return f'{head}, d=foo request={evil} x=", request="{cheap_request}"{rest}, y="z"'


def test_a_header_two_parsers_read_differently_creates_no_token(hostile, hostile_env, tmp_path):
    hostile.stripe_header = split_parse
    code, doc, err = run_script(*ARGS, env=card_env(hostile, hostile_env))
    assert code == 1 and doc["error"]["code"] == "unusable_offer", (doc, err)
    assert "WWW-Authenticate" in doc["error"]["message"]
    assert hostile.spt_requests == [] and hostile.paid_requests() == []
    assert state_entries(tmp_path / "home" / "state") == []


@pytest.mark.parametrize("bad", [
    'request=abc/def==',                    # base64 with '/' '=' is no token: quote it
    'description=two words',                # text after a token value
    'description="a\x01b"',                 # a control character in a quoted string
    'expires="2099-01-01T00:00:00Z"',        # a parameter given twice
])
def test_values_outside_the_rfc_9110_grammar_are_unusable(hostile, hostile_env, bad):
    hostile.stripe_header = lambda card: f"{card}, {bad}"
    code, doc, _ = run_script(*ARGS, env=card_env(hostile, hostile_env))
    assert code == 1 and doc["error"]["code"] == "unusable_offer", doc
    assert hostile.spt_requests == [] and hostile.paid_requests() == []


def test_a_second_management_key_for_the_same_instance_never_replaces_the_first(hostile, hostile_env, tmp_path):
    env = card_env(hostile, hostile_env)
    code, doc, err = run_script(*ARGS, env=env)
    assert code == 0, (doc, err)
    oid = doc["order"]["id"]
    keyfile = tmp_path / "home" / "state" / "instance-keys" / f"{oid}.key"
    first = keyfile.read_text()
    assert doc["management_api_key"]["file"] == str(keyfile) and first.strip()[-4:] == doc["management_api_key"]["last4"]

    def same_order(req, honest):  # a new payment, answered with the order already paid for
        body = json.loads(honest().body_bytes())
        hostile.orders.pop(body["order"]["id"])
        body["order"]["id"] = oid
        return json_reply(201, body)

    hostile.override("POST", "/compute/provision", same_order, when="paid")
    code, doc, _ = run_script(*ARGS, env=env)
    assert code == 4 and doc["error"]["code"] == "bad_response", doc
    e = doc["error"]
    assert e["details"]["payment"]["journal_id"] and e["details"]["payment"]["method"] == "stripe" and e["retryable"] is False
    assert "do not pay again" in e["hint"]
    assert keyfile.read_text() == first  # the first key, shown once, is still there
    second = keyfile.with_name(f"{oid}.key.2")
    assert e["details"]["key_file"] == str(keyfile) and e["details"]["second_key_file"] == str(second)
    assert second.read_text().strip() != first.strip() and second.stat().st_mode & 0o777 == 0o600
