"""The card path's pure pieces: STRIPE_* settings and the policy on a stripe charge."""

from __future__ import annotations

from decimal import Decimal

import pytest

from x402_compute.config import load_settings
from x402_compute.errors import ConfigError, PolicyError
from x402_compute.payments.model import MppOffer
from x402_compute.payments.options import StripeOption, mpp_terms
from x402_compute.payments.policy import Limits, check_stripe_offer

KEY = "sk_test_" + "a1" * 20


def charge(amount=2500, currency="usd", network="profile_test_x", types=("card",), expires=None) -> MppOffer:
    req = {"amount": str(amount), "currency": currency, "methodDetails": {"networkId": network, "paymentMethodTypes": list(types)}}
    return MppOffer(header="", id="c", method="stripe", intent="charge", request=req, amount=amount, currency=currency,
                    recipient="", chain_id=None, expires=expires)


def limits(cap="25", expected=None):
    return Limits(Decimal(cap), "--max-usd", expected)


def test_settings_read_and_check_the_stripe_variables(tmp_path):
    s = load_settings(environ={"STRIPE_SECRET_KEY": KEY, "STRIPE_PAYMENT_METHOD": "pm_123", "X402_COMPUTE_STATE_DIR": str(tmp_path)})
    assert s.stripe_secret_key == KEY and s.stripe_payment_method == "pm_123"
    assert s.stripe_api_base == "https://api.stripe.com/v1" and "stripe" in s.allowed_networks
    assert KEY not in repr(s)
    f = tmp_path / "k"
    f.write_text(KEY + "\n")
    s = load_settings(environ={"STRIPE_SECRET_KEY_FILE": str(f), "X402_COMPUTE_STATE_DIR": str(tmp_path)})
    assert s.stripe_secret_key == KEY and s.stripe_secret_key_source == "STRIPE_SECRET_KEY_FILE"
    for env, word in [({"STRIPE_SECRET_KEY": "pk_test_abcdefghijk"}, "STRIPE_SECRET_KEY"),
                      ({"STRIPE_PAYMENT_METHOD": "card_123"}, "STRIPE_PAYMENT_METHOD"),
                      ({"STRIPE_API_BASE": "ftp://x/v1"}, "STRIPE_API_BASE"),
                      ({"COMPUTE_ALLOWED_NETWORKS": "base,visa"}, "COMPUTE_ALLOWED_NETWORKS")]:
        with pytest.raises(ConfigError) as e:
            load_settings(environ={**env, "X402_COMPUTE_STATE_DIR": str(tmp_path)})
        assert word in e.value.message
    s = load_settings(environ={"COMPUTE_ALLOWED_NETWORKS": "base", "X402_COMPUTE_STATE_DIR": str(tmp_path)})
    assert "stripe" not in s.allowed_networks


def test_policy_takes_usd_cents_within_cap_and_price():
    check_stripe_offer(charge(2500), limits("25", 25_000_000))
    for bad, code in [(charge(2501), "spend_cap_exceeded"), (charge(currency="eur"), "unknown_asset"),
                      (charge(network="has space"), "bad_payee"), (charge(types=("sepa_debit",)), "unsupported_scheme"),
                      (charge(0), "bad_challenge"), (charge(expires="2001-01-01T00:00:00Z"), "challenge_expired")]:
        with pytest.raises(PolicyError) as e:
            check_stripe_offer(bad, limits("25"))
        assert e.value.code == code
    with pytest.raises(PolicyError) as e:  # the catalog says 10 USD: 12 is refused even under the cap
        check_stripe_offer(charge(1200), limits("25", 10_000_000))
    assert e.value.code == "price_mismatch"


def test_option_terms_and_budget_are_integers_in_cents():
    opt = StripeOption(None, charge(2499), None, None)
    t = opt.terms()
    assert t["method"] == t["network"] == "stripe" and t["amount_atomic"] == "2499" and t["amount_usd"] == "24.99"
    assert t["payee"] == "profile_test_x" and opt.budget_micros() == 24_990_000
    from x402_compute.payments.model import Challenge
    (m,) = mpp_terms(Challenge(version=None, offers=[], mpp=[charge(2499)], error=None, body=None))
    assert m["pay_with"] == "--pay stripe" and m["amount_usd"] == "24.99"


def test_the_card_token_is_made_from_the_checked_challenge_only(tmp_path, monkeypatch):
    """Issue 20.1: pympp reads the very challenge the policy checked, field by field, or no token is made;
    the token's amount, currency, seller profile and expiry come from the checked terms."""
    pytest.importorskip("mpp")
    import base64
    import json

    from x402_compute.errors import PaymentRequired
    from x402_compute.api.http import Response
    from x402_compute.payments import challenge as ch
    from x402_compute.payments.schemes import mpp_stripe

    def header(amount, profile):
        req = base64.urlsafe_b64encode(json.dumps({"amount": amount, "currency": "usd", "methodDetails": {
            "networkId": profile, "paymentMethodTypes": ["card"]}}).encode()).decode().rstrip("=")
        return f'Payment id="c1", realm="r", method="stripe", intent="charge", request="{req}", expires="2099-01-01T00:00:00Z"'

    made = []
    monkeypatch.setattr(mpp_stripe, "create_spt", lambda settings, **kw: made.append(kw) or "spt_" + "x" * 20)
    s = load_settings(environ={"STRIPE_SECRET_KEY": KEY, "STRIPE_PAYMENT_METHOD": "pm_123", "X402_COMPUTE_STATE_DIR": str(tmp_path)})
    checked = ch.from_response(Response(402, {"WWW-Authenticate": header("25", "profile_x")}, b"{}")).mpp[0]

    forged = ch.from_response(Response(402, {"WWW-Authenticate": header("25", "profile_x")}, b"{}")).mpp[0]
    forged.header = header("2500000", "profile_ATTACKER")  # what pympp would read, were it handed other text
    with pytest.raises(PaymentRequired) as e:
        mpp_stripe.sign_stripe(forged, s)
    assert e.value.code == "unusable_offer" and "request" in e.value.message and made == []

    signed = mpp_stripe.sign_stripe(checked, s)
    (kw,) = made
    assert (kw["amount"], kw["currency"], kw["network_id"], kw["payment_method"]) == ("25", "usd", "profile_x", "pm_123")
    import time
    assert time.time() < kw["expires_at"] <= time.time() + mpp_stripe.MAX_SPT_LIFETIME_S + 1
    assert signed.spt.startswith("spt_") and signed.header == "Authorization"
