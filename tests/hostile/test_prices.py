"""Class 10: absurd catalog numbers are a ``bad_response``, never an internal error or a silent pass.

The catalog is checked where it arrives (``ComputeClient.plans``), so every consumer sees the
same verdict: browse, the provision quote, resize, destroy's forfeited value; credit balances too.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_script
from tests.hostile.stub import Reply

ABSURD = ["1e999999", "-1e999999", "NaN", "Infinity", "-0.01", "1e30", '"1e999999"', '"abc"', "true", "[1]",
          "0." + "0" * 30 + "1", "9" * 5000]


def catalog(hostile, field: str, raw: str, plan_id: str = "vc2-1c-1gb") -> Reply:
    """The stub's catalog with ``field`` of ``plan_id`` set to the raw JSON text ``raw``."""
    plans = [dict(p) for p in hostile.plans]
    for p in plans:
        if p["id"] == plan_id:
            p[field] = "__RAW__"
    return Reply(200, json.dumps({"plans": plans}).replace('"__RAW__"', raw).encode(), {"Content-Type": "application/json"})


def assert_bad_response(code, doc, field):
    assert code == 1, doc
    err = doc["error"]
    assert err["code"] == "bad_response", err
    # a number Python's own JSON decoder refuses (over 4300 digits) is "not JSON" instead
    assert field in err["details"]["field"] if isinstance(err["details"], dict) else "not JSON" in err["message"]


@pytest.mark.parametrize("raw", ABSURD, ids=lambda r: r[:20])
def test_browse_refuses_an_absurd_price(hostile, hostile_env, raw):
    hostile.override("GET", "/compute/plans", catalog(hostile, "our_hourly", raw))
    code, doc, _ = run_script("browse_plans.py", env=hostile_env())
    assert_bad_response(code, doc, "our_hourly")


@pytest.mark.parametrize("field", ["ram", "disk", "vcpu_count", "our_monthly", "gpu_vram_gb"])
def test_browse_refuses_absurd_specs_and_other_prices(hostile, hostile_env, field):
    hostile.override("GET", "/compute/plans", catalog(hostile, field, "1e999999"))
    code, doc, _ = run_script("browse_plans.py", env=hostile_env())
    assert_bad_response(code, doc, field)


@pytest.mark.parametrize("raw", ["1e999999", "NaN", "-5"])
def test_a_quote_refuses_an_absurd_price_and_signs_nothing(hostile, hostile_env, raw):
    hostile.override("GET", "/compute/plans", catalog(hostile, "our_hourly", raw))
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--quote", env=hostile_env())
    assert_bad_response(code, doc, "our_hourly")
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", env=hostile_env())
    assert_bad_response(code, doc, "our_hourly")
    assert not hostile.paid_requests() and not hostile.received("POST", "/compute/provision")


def test_resize_refuses_an_absurd_target_price(hostile, hostile_env):
    order = hostile.add_order()
    hostile.override("GET", "/compute/plans", catalog(hostile, "our_hourly", "1e999999", plan_id="vc2-2c-4gb"))
    code, doc, _ = run_script("resize_instance.py", order["id"], "vc2-2c-4gb", env=hostile_env())
    assert_bad_response(code, doc, "our_hourly")
    assert not hostile.received("POST", r".*/resize")


def test_destroy_does_not_hide_the_forfeited_value_behind_an_absurd_price(hostile, hostile_env):
    order = hostile.add_order()
    hostile.override("GET", "/compute/plans", catalog(hostile, "our_hourly", "NaN"))
    code, doc, _ = run_script("destroy_instance.py", order["id"], "--yes", env=hostile_env())
    assert_bad_response(code, doc, "our_hourly")
    assert not hostile.received("DELETE")  # nothing destroyed on a figure the user could not see
    hostile.clear_overrides()
    code, doc, _ = run_script("destroy_instance.py", order["id"], "--yes", env=hostile_env())
    assert code == 0 and doc["prepaid_time_lost"]["usd"] is not None, doc


@pytest.mark.parametrize("raw", ['"1e999999"', "NaN", '"-3"'])
def test_credit_balance_refuses_absurd_numbers(hostile, hostile_env, raw):
    hostile.override("GET", "/compute/credits/balance", Reply(200, ('{"wallet": "0xw", "balance": %s}' % raw).encode()))
    code, doc, _ = run_script("credits_balance.py", env=hostile_env())
    assert_bad_response(code, doc, "balance")


def test_sane_numbers_still_pass(hostile, hostile_env):
    hostile.override("GET", "/compute/plans", catalog(hostile, "our_hourly", '"0.0104"'))
    code, doc, _ = run_script("browse_plans.py", env=hostile_env())
    assert code == 0 and {p["id"]: p["hourly_usd"] for p in doc["plans"]}["vc2-1c-1gb"] == "0.0104"


@pytest.mark.parametrize("plan", ["missing", None, "", 42])
def test_an_instance_record_naming_no_plan_is_price_unknown(hostile, hostile_env, plan):
    # Issue 20.6: no plan in the record gives no price to check, exactly like a plan the catalog lacks:
    # without an explicit --max-usd nothing is sent (the cap's default is no bound the user chose).
    order = hostile.add_order()
    for k in ("plan", "vultr_plan"):
        if plan == "missing":
            order.pop(k)
        else:
            order[k] = plan
    code, doc, _ = run_script("extend_instance.py", order["id"], "--hours", "24", "--yes", env=hostile_env())
    assert code == 3 and doc["error"]["code"] == "price_unknown", doc
    assert "names no plan" in doc["error"]["message"] and "--max-usd" in doc["error"]["message"]
    assert not hostile.paid_requests()
    order["plan"] = "no-such-plan"  # the case already caught, for comparison: the same refusal
    code, doc2, _ = run_script("extend_instance.py", order["id"], "--hours", "24", "--yes", env=hostile_env())
    assert code == 3 and doc2["error"]["code"] == "price_unknown" and not hostile.paid_requests()
