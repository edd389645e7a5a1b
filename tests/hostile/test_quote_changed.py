"""A quote approved, then the server changes its terms: refused before anything is signed."""

from __future__ import annotations

from tests.helpers import fail_doc, ok, run_script


def test_a_changed_price_or_payee_is_refused_with_nothing_signed(hostile, hostile_env, tmp_path):
    env = hostile_env()
    args = ("provision.py", "vc2-1c-1gb", "lax", "--hours", "24")
    q = ok(run_script(*args, "--quote", env=env))["quote"]
    # The server now asks one micro-dollar more.
    hostile.override("POST", "/compute/provision", lambda req, honest: hostile.challenge(req, int(q["amount_atomic"]) + 1, "t"), when="unpaid")
    doc = fail_doc(run_script(*args, "--confirm-quote", q["quote_id"], env=env), 3, "quote_changed")
    assert doc["error"]["details"]["differences"]["amount_atomic"] == {"quoted": q["amount_atomic"], "now": str(int(q["amount_atomic"]) + 1)}
    hostile.clear_overrides()
    hostile.pay_to = "0x" + "77" * 20
    doc = fail_doc(run_script(*args, "--confirm-quote", q["quote_id"], "--accept-payee-change", env=env), 3, "quote_changed")
    assert set(doc["error"]["details"]["differences"]) == {"payee"}
    assert hostile.paid_requests() == [] and hostile.signatures() == set()


def test_a_quote_without_a_catalog_price_check_is_no_approval_of_its_amount(hostile, hostile_env, tmp_path):
    """Issue 19.1: the instance's plan is gone from the catalog and the server asks 24 USD for a
    day; the agent's own quote satisfied price_unknown and COMPUTE_REQUIRE_QUOTE. Now such a quote
    records price_checked: false and paying it still needs the human's explicit --max-usd."""
    order = hostile.add_order(plan="gone-plan-1c")
    hostile.override("POST", f"/compute/instances/{order['id']}/extend", lambda req, honest: hostile.challenge(req, 24_000_000, "t"), when="unpaid")
    for extra in ({}, {"COMPUTE_REQUIRE_QUOTE": "1"}):
        env = hostile_env(**extra)
        args = ("extend_instance.py", order["id"], "--days", "1")
        q = ok(run_script(*args, "--quote", env=env))["quote"]
        assert q["price_checked"] is False and q["amount_usd"] == "24" and "catalog" in q["price_check"]
        doc = fail_doc(run_script(*args, "--confirm-quote", q["quote_id"], env=env), 3, "price_unknown")
        assert "--max-usd" in doc["error"]["message"]
        assert hostile.paid_requests() == [] and hostile.signatures() == set()
    # The human's own bound, given for this payment: paid (the cap is checked as always).
    fail_doc(run_script(*args, "--confirm-quote", q["quote_id"], "--max-usd", "1", env=env), 3, "spend_cap_exceeded")
    ok(run_script(*args, "--confirm-quote", q["quote_id"], "--max-usd", "24", env=env))
    assert len(hostile.signatures()) == 1


def test_over_mcp_an_unchecked_price_is_the_humans_question_and_their_yes_caps_it(hostile, hostile_env, tmp_path):
    """extend_instance over MCP for an instance whose plan left the catalog: the model cannot give
    --max-usd (no such tool input). The server quotes, shows the human the amount asked, and on
    their yes pays exactly that quote with that amount as the cap; a no signs nothing."""
    import anyio.from_thread

    from tests.e2e.test_mcp_server import Session

    order = hostile.add_order(plan="gone-plan-1c")
    hostile.override("POST", f"/compute/instances/{order['id']}/extend", lambda req, honest: hostile.challenge(req, 3_000_000, "t"), when="unpaid")
    env = hostile_env(COMPUTE_MCP_ALLOW_SPEND="1", COMPUTE_MCP_CONFIRM_ABOVE_USD="100")
    with anyio.from_thread.start_blocking_portal() as portal:
        s = Session(portal, env, tmp_path / "server.log")
        try:
            s.answers = ["decline"]
            s.error("extend_instance", {"instance_id": order["id"], "days": 1}, "declined_by_user")
            assert len(s.asked) == 1 and "catalog" in s.asked[0] and "3 USDC" in s.asked[0], s.asked
            assert hostile.signatures() == set()
            s.answers = ["accept"]
            doc = s.ok("extend_instance", {"instance_id": order["id"], "days": 1})
            # Paid: so the approved amount became --max-usd (a price_checked: false quote is refused without one).
            assert len(s.asked) == 2 and doc["payment"]["amount_atomic"] == "3000000"
            assert len(hostile.signatures()) == 1
        finally:
            s.close()
