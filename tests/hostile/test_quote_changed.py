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
