"""Policy: spend cap, catalog price (with rounding), canonical asset, scheme, payee pins."""

from __future__ import annotations

from decimal import Decimal

import pytest
from x402_compute.errors import PolicyError, UsageError
from x402_compute.payments.model import Offer
from x402_compute.payments.policy import Limits, PayeePins, check_offer, check_order
from x402_compute.plans import expected_micros, hourly

USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
USDM = "0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7"
MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"


def offer(key="base", amount=249600, asset=USDC, pay_to=PAYEE, scheme="exact"):
    return Offer(version=1, scheme=scheme, network=key, key=key, amount=amount, asset=asset, pay_to=pay_to, max_timeout_seconds=300, extra={}, raw={})


def limits(cap="25", expected=249600):
    return Limits(Decimal(cap), "default", expected)


def code_of(fn):
    with pytest.raises(PolicyError) as e:
        fn()
    assert e.value.exit_code == 3
    return e.value.code


def test_hourly_fallbacks_are_decimal():
    assert hourly({"our_hourly": Decimal("0.0104")}) == Decimal("0.0104")
    assert hourly({"our_daily": Decimal("0.2496")}) == Decimal("0.0104")
    assert hourly({"our_monthly": 5}) == Decimal(5) / 720
    assert hourly({}) is None
    # 0.1 × 3 is exact in Decimal (it is not in binary floats)
    assert expected_micros({"our_hourly": Decimal("0.1")}, 30) == 3_000_000
    # ceil to the micro-dollar: $5/720 × 24 = 0.1666… → 166667
    assert expected_micros({"our_monthly": 5}, 24) == 166667


def test_ok_offer_passes():
    check_offer(offer(), limits())


def test_cap_exceeded():
    assert code_of(lambda: check_offer(offer(amount=25_000_001), limits(expected=None))) == "spend_cap_exceeded"
    check_offer(offer(amount=25_000_000), limits(expected=None))  # exactly the cap is allowed
    # 18 decimals: $0.50 of MegaUSD against a $0.49 cap
    assert code_of(lambda: check_offer(offer("megaeth", 5 * 10**17, USDM), limits("0.49", None))) == "spend_cap_exceeded"
    check_offer(offer("megaeth", 5 * 10**17, USDM), limits("0.50", None))


def test_cap_refusal_states_the_exact_amount():
    # 0.2504 against a 0.25 cap must not read "0.25 USD is above the spend cap of 0.25 USD",
    # and the details carry the same plain amount as the quote (no trailing zeros).
    with pytest.raises(PolicyError) as e:
        check_offer(offer(amount=250400), limits("0.25", None))
    assert "payment of 0.2504 USD" in e.value.message
    assert e.value.details["amount_usd"] == "0.2504"
    assert "--max-usd 0.2504" in e.value.hint and "human" in e.value.hint
    with pytest.raises(PolicyError) as e:
        check_offer(offer("megaeth", 5 * 10**17, USDM), limits("0.49", None))
    assert e.value.details["amount_usd"] == "0.5"


def test_price_mismatch_with_one_cent_tolerance():
    check_offer(offer(amount=249600 + 10_000), limits())  # + 1 cent: rounding slack
    assert code_of(lambda: check_offer(offer(amount=249600 + 10_001), limits())) == "price_mismatch"
    # MegaETH: the same dollar amount scaled to 18 decimals
    check_offer(offer("megaeth", 249600 * 10**12, USDM), limits())
    assert code_of(lambda: check_offer(offer("megaeth", (259600 * 10**12) + 1, USDM), limits())) == "price_mismatch"


def test_unknown_asset_and_scheme():
    assert code_of(lambda: check_offer(offer(asset="0x0000000000000000000000000000000000000bad"), limits())) == "unknown_asset"
    assert code_of(lambda: check_offer(offer("solana", asset=MINT.lower(), pay_to="x"), limits())) == "unknown_asset"  # base58 is case-sensitive
    check_offer(offer("solana", asset=MINT, pay_to="11111111111111111111111111111111"), limits())
    for bad in ("x", "0x" + "ab" * 20, "0" * 44):  # not a 32-byte base58 key: refused before any pin
        assert code_of(lambda: check_offer(offer("solana", asset=MINT, pay_to=bad), limits())) == "bad_payee"
    for bad in ("x", "0x1234", "0x" + "zz" * 20, MINT):
        assert code_of(lambda: check_offer(offer("base", pay_to=bad), limits())) == "bad_payee"
    check_offer(offer(asset=USDC.lower()), limits())  # EVM hex is not
    assert code_of(lambda: check_offer(offer(scheme="upto"), limits())) == "unsupported_scheme"
    o = offer()
    o.key = None
    assert code_of(lambda: check_offer(o, limits())) == "unknown_network"


def test_payee_pins(tmp_path):
    pins = PayeePins(tmp_path)
    assert pins.check(offer())["status"] == "new"
    pins.pin(offer(), "http://x")
    assert PayeePins(tmp_path).load()["base"]["pay_to"] == offer().pay_to  # in the ledger, seen by every reader
    assert pins.check(offer(pay_to=PAYEE.lower()))["status"] == "pinned"  # checksum casing is not a change
    other = "0x1111111111111111111111111111111111111111"
    assert code_of(lambda: pins.check(offer(pay_to=other))) == "payee_changed"
    assert pins.check(offer(pay_to=other), accept_change=True)["status"] == "changed-accepted"
    pins.pin(offer(pay_to=other), "http://x")
    assert pins.check(offer(pay_to=other))["status"] == "pinned"
    # per network: a Solana payee is independent
    assert pins.check(offer("solana", asset=MINT, pay_to="So1"))["status"] == "new"


def test_check_order():
    plan = {"id": "vc2-1c-1gb", "provider": "vultr", "locations": ["lax"]}
    oses = [{"id": 2284, "name": "Ubuntu", "provider": "vultr"}, {"id": 160232537, "name": "Ubuntu 24.04", "provider": "digitalocean"}]
    check_order(plan, "vc2-1c-1gb", "lax", 2284, oses, None)
    for args, code in [
        ((None, "nope", "lax", 2284, oses, None), "unknown_plan"),
        ((plan, "vc2-1c-1gb", "ewr", 2284, oses, None), "region_not_offered"),
        ((plan, "vc2-1c-1gb", "lax", 160232537, oses, None), "os_provider_mismatch"),
        ((plan, "vc2-1c-1gb", "lax", 999, oses, None), "unknown_os"),
        (({"id": "do:s", "provider": "digitalocean", "locations": ["nyc3"]}, "do:s", "nyc3", 160232537, oses, None), "ssh_key_required"),
    ]:
        with pytest.raises(UsageError) as e:
            check_order(*args)
        assert e.value.code == code
