"""Red-team pass on the SQL ledger (issue 24) with the real scripts against the hostile stub."""

from __future__ import annotations

import sqlite3

import pytest

from tests.helpers import run_script
from tests.hostile.stub import Reply

PROVISION = ("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes")  # 0.24 USD


@pytest.mark.parametrize("answer", ["settled", "refused"])
def test_a_ledger_lost_after_the_payment_left_never_hides_the_answer(hostile, hostile_env, tmp_path, answer):
    """The ledger breaks while the paid request is on the wire. The server's answer is still what the
    run reports (the order on exit 0; the refusal with its valid_until), never 'ledger_unavailable ...
    Nothing was signed'; the entry stays ``sent`` (durable before sending), so it keeps counting and
    reconcile.py resolves it."""
    db = tmp_path / "home" / "state" / "ledger.sqlite3"

    def break_ledger(req, honest):
        with sqlite3.connect(db) as c:  # another process takes the journal table away mid-payment
            c.execute("ALTER TABLE journal RENAME TO journal_gone")
        return honest() if answer == "settled" else Reply(402, {"error": "insufficient_funds"})

    hostile.override("POST", "/compute/provision", break_ledger, when="paid")
    code, doc, err = run_script(*PROVISION, env=hostile_env())
    assert len(hostile.paid_requests()) == 1
    assert "Nothing was signed" not in str(doc) + err, doc
    if answer == "settled":
        assert code == 0 and doc["order"]["id"] and doc["payment"]["tx_hash"], doc
    else:
        assert code == 1 and doc["error"]["code"] == "payment_rejected" and doc["error"]["details"]["valid_until"], doc
    assert f"could not record its outcome ({'settled' if answer == 'settled' else 'rejected'})" in err
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT status FROM journal_gone").fetchall() == [("sent",)]  # still counts


def test_a_ledger_password_is_never_printed(hostile_env):
    """libpq also reads a password from the URL's query string (and a key=value string): doctor, the
    errors and --verbose must not print it (they printed the query string whole)."""
    from x402_compute.ledger import redact_url

    url = "postgresql://agent@127.0.0.1:9/db?connect_timeout=1&password=Hunter2pw"
    env = hostile_env(COMPUTE_LEDGER_URL=url)
    for script in (("budget.py", "--verbose"), ("doctor.py", "--offline")):
        code, doc, err = run_script(*script, env=env)
        assert "ledger" in str(doc) and "hunter2pw" not in (str(doc) + err).lower(), (script, doc, err)
    assert redact_url(url) == "postgresql://agent@127.0.0.1:9/db?connect_timeout=1&password=***"
    assert redact_url("postgresql://agent:Hunter2pw@[::1]:9/db") == "postgresql://agent:***@[::1]:9/db"
    assert redact_url("host=127.0.0.1 password='Hunter 2pw' port=9") == "host=127.0.0.1 password=*** port=9"
