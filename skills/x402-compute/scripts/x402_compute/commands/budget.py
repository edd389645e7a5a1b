"""budget.py: the rolling budget and the payments behind it."""

from __future__ import annotations

from ..instances import parse_time


def budget_status(ctx):
    """The rolling budget and the payments behind it. Read-only: the budget is the human's
    setting (COMPUTE_BUDGET_USD, COMPUTE_BUDGET_WINDOW); no command raises it."""
    from collections import defaultdict

    from ..cli import Output, table
    from ..config import parse_window
    from ..payments.budget import Budget, usd as budget_usd
    from ..payments.journal import Entry

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
            "journal_id": v["id"],
        })
        if v["counts"]:
            per_day[parse_time(v["created_at"]).strftime("%Y-%m-%d")] += typed.micros
    days = [{"date": d, "usd": budget_usd(m)} for d, m in sorted(per_day.items())]
    state = budget.status()
    fleet = budget.fleet(now)
    out = {
        "budget": state,
        "fleet": fleet,
        "lookback": a.window or s.budget_window,
        "payments": rows,
        "per_day": days,
        "limits": {
            "per_payment_cap_usd": str(s.max_spend_usd),
            "per_payment_cap_source": s.max_spend_source,
            "allowed_networks": list(s.allowed_networks),
            "max_instances": s.max_instances,
        },
    }
    head = (f"budget: {state['spent_usd']} spent + {state['reserved_usd']} reserved of {state['limit_usd']} USD per {state['window']}; "
            f"{state['remaining_usd']} USD left" if state["remaining_usd"] is not None else
            f"budget: off ({state['spent_usd']} USD spent in the last {state['window']})")
    lines = [head] + ([f"warning: {state['warning']}"] if state.get("warning") else [])
    cols = [("time", "TIME"), ("script", "SCRIPT"), ("instance", "INSTANCE"), ("network", "NETWORK"), ("amount_usd", "USD"), ("outcome", "OUTCOME")]
    lines += ["", table(rows, cols) if rows else "(no payments in the window)"]
    if days:
        lines += ["", table(days, [("date", "DAY"), ("usd", "COUNTED USD")])]
    if len(fleet["instances"]) > 1 or fleet["ledger"] != "sqlite":
        lines += ["", f"ledger: {fleet['ledger']} (shared by {len(fleet['instances'])} instance(s) in the window)",
                  table(fleet["instances"], [("instance", "INSTANCE"), ("spent_usd", "SPENT USD"), ("reserved_usd", "RESERVED USD")])]
    return Output(out, "\n".join(lines))
