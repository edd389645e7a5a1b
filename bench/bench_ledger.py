#!/usr/bin/env python3
"""The budget guard on each ledger engine: one ``Budget.reserve`` = take the budget's lock, sum what
counts in the window, check the amount fits, insert the reservation, commit.

- SQLite: ``<state>/ledger.sqlite3`` in a temporary folder (WAL; the reservation is not the
  fsynced write, the later ``sent`` is: that one is timed on its own too).
- PostgreSQL: ``COMPUTE_LEDGER_URL`` if set, else a server this bench starts on a loopback port with
  the machine's ``initdb``/``pg_ctl`` (tests/pg.py), else skipped. Its own fsync is on here (the
  tests turn it off): what a real local server costs.

The window holds ``--prior`` settled payments first (default 200: a busy day), so the sum is real.
Targets (issue 24): under 3 ms on SQLite, under 10 ms on a local PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "skills" / "x402-compute" / "scripts"))


def measure(state_dir: Path, url: str | None, prior: int, runs: int) -> dict:
    from x402_compute.config import load_settings
    from x402_compute.payments.budget import Budget
    from x402_compute.payments.journal import Journal, new_id

    env = {"X402_COMPUTE_STATE_DIR": str(state_dir), "COMPUTE_BUDGET_USD": "1000000", **({"COMPUTE_LEDGER_URL": url} if url else {})}
    s = load_settings(environ=env)
    j = Journal(s)
    for _ in range(prior):
        j.create({"id": new_id(), "kind": "provision", "method": "x402", "status": "settled", "budget_micros": 249_600, "terms": {}})
    b = Budget(s)
    b.reserve(1, {"id": new_id(), "kind": "provision", "method": "x402", "terms": {}})  # warm: connection, schema
    guard, sent = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        e, _ = b.reserve(249_600, {"id": new_id(), "kind": "provision", "method": "x402", "terms": {}})
        t1 = time.perf_counter()
        j.update(e["id"], "sent", payment_header_name="X-PAYMENT", payment_header_value="x" * 600)
        t2 = time.perf_counter()
        j.update(e["id"], "settled")
        guard.append((t1 - t0) * 1000)
        sent.append((t2 - t1) * 1000)
    q = lambda xs, p: sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]
    return {"engine": b.ledger.engine, "prior": prior, "runs": runs,
            "reserve_median_ms": round(statistics.median(guard), 3), "reserve_p95_ms": round(q(guard, 0.95), 3),
            "sent_write_median_ms": round(statistics.median(sent), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--prior", type=int, default=200)
    a = ap.parse_args()
    runs, prior = max(1, min(a.runs, 2000)), max(0, min(a.prior, 5000))
    tmp = Path(tempfile.mkdtemp(prefix="x402-bench-ledger-"))
    rows = []
    server = None
    try:
        rows.append(measure(tmp / "sqlite", None, prior, runs))
        url = os.environ.get("COMPUTE_LEDGER_URL")
        if not url:
            from tests import pg

            if pg.bin_dir() is not None:
                try:
                    import psycopg  # noqa: F401
                except ImportError:
                    pass
                else:
                    server = pg.Server(pg.shared_root(f"bench-{os.getpid()}"))
                    server.fsync = True
                    url = pg.fresh_schema(server.acquire("bench"))
        if url:
            rows.append(measure(tmp / "pg", url, prior, runs))
        else:
            rows.append({"engine": "postgresql", "skipped": "no COMPUTE_LEDGER_URL, no initdb or no psycopg"})
    finally:
        if server is not None:
            server.release("bench")
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"budget guard (check + reservation), {prior} payments already in the window, {runs} runs")
    print(f"{'engine':<11} {'reserve median':>15} {'reserve p95':>12} {'sent write':>11}   target")
    for r in rows:
        if "skipped" in r:
            print(f"{r['engine']:<11} skipped: {r['skipped']}")
            continue
        target = 3 if r["engine"] == "sqlite" else 10
        print(f"{r['engine']:<11} {r['reserve_median_ms']:>12.2f} ms {r['reserve_p95_ms']:>9.2f} ms {r['sent_write_median_ms']:>8.2f} ms   < {target} ms")
    print(json.dumps({"bench": "ledger", "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
