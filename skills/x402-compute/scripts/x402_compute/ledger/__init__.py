"""The ledger: the journal, budget reservations, quotes, payee pins and keepalive records behind
one small interface and one SQL schema (``migrations``).

- **SQLite** (the default): ``<state_dir>/ledger.sqlite3``, 0600, WAL; the one write that must
  precede a payment is committed with ``synchronous=FULL``.
- **PostgreSQL** when ``COMPUTE_LEDGER_URL`` (or ``COMPUTE_LEDGER_URL_FILE``) names one: several
  agents on several machines then share one journal and one budget. ``psycopg`` 3 is imported
  only then.

Secrets (private keys, API and management keys, SSH keys, host-key pins) never go here: they stay
in the local state folder. The rules (what counts toward the budget, what a quote pins) live in
``payments/``; this package only stores and locks.
"""

from .store import Ledger, LedgerTooNew, LedgerUnavailable, open_ledger, redact_url, url_passwords

__all__ = ["Ledger", "LedgerTooNew", "LedgerUnavailable", "open_ledger", "redact_url", "url_passwords"]
