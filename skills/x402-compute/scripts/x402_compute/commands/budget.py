"""budget.py: the rolling budget and the payments behind it."""

from __future__ import annotations

import argparse
import csv
import io
from collections import defaultdict
from urllib.parse import urlsplit

from .. import cli
from ..cli import Output, table
from ..config import is_loopback, parse_window
from ..instances import parse_time
from ..networks import explorer_url
from ..payments.budget import Budget
from ..payments.budget import usd as budget_usd
from ..payments.journal import Entry

BY = ("instance", "day", "network")
CSV_COLUMNS = ("time", "script", "instance", "method", "network", "amount_usd", "outcome", "counts", "tx_hash", "explorer_url", "journal_id")


def _explorer(e: dict, network: str | None) -> str | None:
    """A public explorer link for a settled payment's transaction; none for a payment made to an
    API on this machine (the sandbox's local chains are on no public explorer)."""
    if is_loopback(urlsplit(str(e.get("base_url") or "")).hostname):
        return None
    return explorer_url(network, e.get("tx_hash"))


def _csv_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a server's string starting with = + - @ would
    otherwise run as a formula."""
    text = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([_csv_cell(r.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue()


def totals_by(rows: list[dict], by: str) -> list[dict]:
    """The counted payments summed per instance, day (UTC) or network, largest first: the same
    amounts and the same rule (``counts``) as the budget itself."""
    sums: dict = defaultdict(lambda: [0, 0])
    for r in rows:
        if not r["counts"]:
            continue
        key = (r["time"] or "")[:10] if by == "day" else r[by]
        sums[key][0] += r["_micros"]
        sums[key][1] += 1
    order = sorted(sums.items(), key=lambda kv: (kv[0] or "") if by == "day" else (-kv[1][0], kv[0] or ""))
    return [{"key": k, "usd": budget_usd(m), "payments": n} for k, (m, n) in order]


def fleet_view(fleet: dict) -> dict:
    """The ``fleet`` block as budget.py prints it. Its users are agents (a state folder on a host),
    named so: "instance" in this output is a machine (``payments[].instance``, ``--by instance``)."""
    return {
        "ledger": fleet["ledger"],
        "this_agent": fleet["this_instance"],
        "hosts": fleet["hosts"],
        "agents": [{"agent": r["instance"], "host": r["host"], "spent_usd": r["spent_usd"], "reserved_usd": r["reserved_usd"]}
                   for r in fleet["instances"]],
    }


def budget_status(ctx):
    """The rolling budget and the payments behind it. Read-only: the budget is the human's
    setting (COMPUTE_BUDGET_USD, COMPUTE_BUDGET_WINDOW); no command raises it."""
    a = ctx.args
    s = ctx.settings
    look_s = parse_window(a.window, "--window") if a.window else s.budget_window_s
    budget = Budget(s)
    now = budget.clock()
    rows, per_day = [], defaultdict(int)
    for e in budget.entries(now, window_s=look_s):
        typed = Entry.of(e)
        v = typed.view(now)
        rows.append({
            "time": v["created_at"],
            "script": v["script"],
            "instance": v["instance"],
            "method": v["method"],
            "network": v["network"],
            "amount_usd": v["counted_usd"],
            "outcome": v["status"],
            "counts": v["counts"],
            "tx_hash": v["tx_hash"] if isinstance(v["tx_hash"], str) else None,
            "explorer_url": _explorer(e, v["network"]),
            "journal_id": v["id"],
            "_micros": typed.micros,
        })
        if v["counts"]:
            per_day[parse_time(v["created_at"]).strftime("%Y-%m-%d")] += typed.micros
    days = [{"date": d, "usd": budget_usd(m)} for d, m in sorted(per_day.items())]
    by = getattr(a, "by", None)
    totals = totals_by(rows, by) if by else None
    csv_text = to_csv(rows) if getattr(a, "csv", False) else None
    for r in rows:
        del r["_micros"]
    state = budget.status()
    fleet = fleet_view(budget.fleet(now))
    out = {
        "budget": state,
        "fleet": fleet,
        "lookback": a.window or s.budget_window,
        "state_dir": str(s.state_dir),
        "payments": rows,
        "per_day": days,
        "limits": {
            "per_payment_cap_usd": str(s.max_spend_usd),
            "per_payment_cap_source": s.max_spend_source,
            "allowed_networks": list(s.allowed_networks),
            "max_instances": s.max_instances,
        },
    }
    if by:
        out["by"], out["totals"] = by, totals
    if csv_text is not None:
        out["csv"] = csv_text
        return Output(out, csv_text.rstrip("\n"))  # -o text --csv: the CSV itself, ready for a file
    head = (f"budget: {state['spent_usd']} spent + {state['reserved_usd']} reserved of {state['limit_usd']} USD per {state['window']}; "
            f"{state['remaining_usd']} USD left" if state["remaining_usd"] is not None else
            f"budget: off ({state['spent_usd']} USD spent in the last {state['window']})")
    lines = [head] + ([f"warning: {state['warning']}"] if state.get("warning") else [])
    cols = [("time", "TIME"), ("script", "SCRIPT"), ("instance", "INSTANCE"), ("network", "NETWORK"), ("amount_usd", "USD"), ("outcome", "OUTCOME")]
    lines += ["", table(rows, cols) if rows else "(no payments in the window)"]
    if days:
        lines += ["", table(days, [("date", "DAY"), ("usd", "COUNTED USD")])]
    if by:
        lines += ["", table(totals, [("key", by.upper()), ("usd", "COUNTED USD"), ("payments", "PAYMENTS")])]
    if len(fleet["agents"]) > 1 or fleet["ledger"] != "sqlite":
        lines += ["", f"ledger: {fleet['ledger']} (shared by {len(fleet['agents'])} agent(s) in the window)",
                  table(fleet["agents"], [("agent", "AGENT"), ("spent_usd", "SPENT USD"), ("reserved_usd", "RESERVED USD")])]
    return Output(out, "\n".join(lines))


# -- budget.py: its parser (the script and the MCP server both build it here) ------

BUDGET_HELP = """Show the rolling spend budget: what all payments together may spend in the window
(COMPUTE_BUDGET_USD per COMPUTE_BUDGET_WINDOW), what is spent and reserved, what is left,
the window's payments (time, script, instance, network, amount, outcome) and a per-day total.

--by instance|day|network adds the counted spending summed that way; --csv adds the payments
as CSV (each with its transaction hash and explorer link), and with -o text prints only the CSV.

The budget sees the payments in this agent's ledger: the state folder's SQLite file
(X402_COMPUTE_STATE_DIR), shared by agents on one machine that share the folder, or the
PostgreSQL ledger the human set with COMPUTE_LEDGER_URL, shared by agents on several machines
(fleet then names each agent's host and state folder).

Read-only. There is no command to raise the budget: the human changes the setting."""


def budget_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "budget.py",
        BUDGET_HELP,
        examples="python scripts/budget.py\npython scripts/budget.py --window 7d\npython scripts/budget.py --window 30d --by instance\n"
        "python scripts/budget.py --window 30d --csv -o text > spending.csv",
    )
    p.add_argument("--window", metavar="Nh|Nd", help="list payments this far back (1h to 90d; default: the budget's own window)")
    p.add_argument("--by", choices=BY, help="also sum the counted payments per instance, day (UTC) or network (field totals)")
    p.add_argument("--csv", action="store_true", help="also give the payments as CSV (field csv); with -o text print only the CSV")
    return p
