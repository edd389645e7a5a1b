"""budget.py: the rolling budget and the payments behind it."""

from __future__ import annotations

from ..instances import parse_time

_SCRIPT_OF = {"provision": "provision.py", "extend": "extend_instance.py", "topup": "credits_topup.py"}


def budget_status(ctx):
    """The rolling budget and the payments behind it. Read-only: the budget is the human's
    setting (COMPUTE_BUDGET_USD, COMPUTE_BUDGET_WINDOW); no command raises it."""
    from collections import defaultdict

    from ..cli import Output, table
    from ..config import parse_window
    from ..payments.budget import Budget, counts, entry_micros, usd as budget_usd

    a = ctx.args
    s = ctx.settings
    look_s = parse_window(a.window, "--window") if a.window else s.budget_window_s
    budget = Budget(s)
    now = budget.clock()
    rows, per_day = [], defaultdict(int)
    for e in budget.entries(now, window_s=look_s):
        created = parse_time(e.get("created_at"))
        offer = e.get("offer") or {}
        counted = counts(e, now)
        micros = entry_micros(e)
        rows.append({
            "time": e.get("created_at"),
            "script": _SCRIPT_OF.get(e.get("kind"), e.get("kind")),
            "instance": e.get("order_id") or (e.get("context") or {}).get("instance_id"),
            "method": e.get("method"),
            "network": offer.get("network") or ("credits" if e.get("method") == "credits" else None),
            "amount_usd": budget_usd(micros),
            "outcome": e.get("status"),
            "counts": counted,
            "journal_id": e.get("id"),
        })
        if counted:
            per_day[created.strftime("%Y-%m-%d")] += micros
    days = [{"date": d, "usd": budget_usd(m)} for d, m in sorted(per_day.items())]
    state = budget.status()
    out = {
        "budget": state,
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
    return Output(out, "\n".join(lines))
