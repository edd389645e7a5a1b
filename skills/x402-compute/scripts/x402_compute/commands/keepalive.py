"""keepalive.py: keep an instance alive until a target time. One run is one check and at most one
paid extension, so cron or an agent's scheduler drives it; each payment goes through the one
payment pipeline (spend cap, rolling budget, payee pin, quote, journal), like extend_instance.py.

A run, in order:
1. A recorded stop (the first refusal or unknown payment outcome of an earlier run) refuses it
   (``keepalive_stopped``, exit 3) until the human fixed the cause and runs it with ``--resume``.
2. The target: ``--until T``, or ``--for D`` anchored at the first run with that same value
   (recorded, so a cron line saying ``--for 3d`` does not push the target forward every run).
3. Under a per-instance lock (a second run waits for the first, then sees its result), the
   instance is read. Expiry at or after the target: ``done``, nothing more to pay. At least
   ``--min-hours-left`` hours left: ``none``, and ``next_action_at`` says when that changes.
4. Otherwise: coverage, not instants. An extension paid from expiry E for h hours covers up to
   E + h. If the journal holds a settled extension of this instance whose covered point the
   expiry is still below (by more than ``TOLERANCE``), the server did not apply it: nothing is
   paid for that window again and the run stops (``extension_not_applied``, naming the payment).
   One being paid by a live process: nothing is paid (``already_paid``). A payment with an unknown
   outcome stops it (the pipeline's ``unresolved_payment``). Else one extension by whole blocks of
   ``--block-hours`` (at least the service's 24 h minimum), enough to get back above the
   threshold; the last extension before the target pays exactly the whole hours that reach it
   (at least 24) when that costs less than a block now and a minimum one later.

State: a keepalive record per instance in the ledger (target, stop, last action; shared by every
agent on the ledger) and a local lock file ``<state>/keepalive/<instance-id>.lock``.
"""

from __future__ import annotations

import argparse
import fcntl
import math
import os
import re
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Iterator

from .. import cli, cmdline, plans, validate
from ..cli import Output
from ..config import parse_usd
from ..errors import ComputeError, PaymentRequired, PolicyError, UsageError
from ..instances import MIN_HOURS_LEFT, expires_in_hours, iso, normalized_state, parse_time
from ..payments.budget import Budget, counts, entry_micros, usd
from ..payments.journal import Entry, Journal, ledger_of
from ..state import ensure_dir
from . import paid

BLOCK_HOURS = 24  # the service's minimum extension
TOLERANCE = timedelta(seconds=paid.EXPIRY_TOLERANCE_S)  # an expiry this close to what was paid for counts as applied
MAX_AHEAD = timedelta(days=366)
LOCK_WAIT_S = 120.0
_DURATION = re.compile(r"(\d{1,5})\s*([hdw])")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 168}
# Refusals that stop keepalive for good (until --resume), besides every exit-4 outcome. Not those
# that only mean "ask the human now" (a confirmation, an approved quote) or "try again".
_TRANSIENT = {"confirmation_required", "cancelled", "quote_required", "quote_changed", "quote_expired", "quote_used",
              "unknown_quote", "challenge_expired", "keepalive_stopped", "keepalive_busy",
              # over MCP, the human's answer to an approval question (a prompt's "cancelled" in the scripts)
              "declined_by_user", "approval_expired",
              # the human's total for this target: refused every run until they raise it or set a new target
              "keepalive_total_exceeded"}


def parse_duration(text: str) -> timedelta:
    m = _DURATION.fullmatch(str(text).strip().lower())
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"--for {text!r} is not a duration.", hint="Use whole hours, days or weeks: 36h, 3d, 2w.")
    return timedelta(hours=int(m.group(1)) * _UNIT_HOURS[m.group(2)])


def parse_until(text: str) -> datetime:
    dt = parse_time(text)
    if dt is None:
        raise UsageError(f"--until {text!r} is not an ISO 8601 time.", hint="E.g. 2030-01-31T18:00:00Z (no offset means UTC).")
    return dt


def extension_hours(expires_in: float, min_hours_left: float, block_hours: int, to_target: float | None) -> int:
    """Whole blocks enough to get back to ``min_hours_left`` (at least one). Near the target, the
    whole hours that reach it instead (never under the service's 24 h minimum) whenever that is
    less than these blocks plus the one more minimum extension a later run would then have to pay."""
    blocks = max(1, math.ceil((min_hours_left - expires_in) / block_hours))
    hours = blocks * block_hours
    if to_target is not None:
        need = max(BLOCK_HOURS, math.ceil(to_target - 1e-9))
        if need < hours + BLOCK_HOURS:
            hours = need
    return hours


class Record:
    """What keepalive remembers about one instance (a record in the ledger)."""

    def __init__(self, settings, instance_id: str) -> None:
        self.ledger = ledger_of(settings)
        self.instance_id = instance_id
        self.dir = Path(settings.state_dir) / "keepalive"
        self.lock_path = self.dir / f"{instance_id}.lock"

    def load(self) -> dict:
        data = self.ledger.keepalive(self.instance_id)
        return data if isinstance(data, dict) else {}

    def save(self, data: dict) -> None:
        self.ledger.set_keepalive(self.instance_id, data)

    @contextmanager
    def locked(self, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
        ensure_dir(self.dir)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise ComputeError(
                            f"Another keepalive run for this instance has held its lock for {wait_s:g} s; nothing was done.",
                            code="keepalive_busy",
                            retryable=True,
                            hint="It may be waiting at a prompt. Run again later.",
                        ) from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _target(a, record: dict, now: datetime) -> dict:
    if a.until is not None:
        until = parse_until(a.until)
        return {"until": iso(until), "set_by": "--until", "anchored_at": None}
    set_by = f"--for {a.for_}"
    old = record.get("target") if isinstance(record.get("target"), dict) else {}
    if old.get("set_by") == set_by and parse_time(old.get("until")):
        return {"until": old["until"], "set_by": set_by, "anchored_at": old.get("anchored_at")}
    return {"until": iso(now + parse_duration(a.for_)), "set_by": set_by, "anchored_at": iso(now)}


def covered_until(e: dict) -> datetime | None:
    """How far a journalled extension reaches: the expiry it was paid from plus the hours paid."""
    old = parse_time((e.get("context") or {}).get("old_expires_at"))
    hours = (e.get("terms") or {}).get("hours")
    if old is None or not isinstance(hours, int) or isinstance(hours, bool) or hours <= 0:
        return None
    return old + timedelta(hours=hours)


def _same_window(entries: list[dict], iid: str, expires: datetime, base_url: str, now: float,
                 acknowledged: tuple = ()) -> dict | None:
    """A journalled extension of ``iid``, settled or being paid by a live process, that covers a
    point the expiry is still below (beyond ``TOLERANCE``): paying now would pay that window again.
    Coverage, not instants: a server moving ``expires_at`` by a millisecond between reads does not
    open a new window. (An unknown outcome is left to the pipeline, which refuses it; a payment the
    human acknowledged with ``--resume`` after it was named no longer blocks.)"""
    for e in entries:
        typed = Entry.of(e)
        ctx = e.get("context") or {}
        if e.get("kind") != "extend" or ctx.get("instance_id") != iid or e.get("id") in acknowledged:
            continue
        if e.get("base_url") and e["base_url"] != base_url:
            continue
        if not (typed.status == "settled" or typed.in_flight(now)):
            continue
        covered = covered_until(e)
        if covered is None:  # no hours recorded: the same instant is all that can be told
            if parse_time(ctx.get("old_expires_at")) == expires:
                return e
        elif expires < covered - TOLERANCE:
            return e
    return None


def paid_for_target(entries: list[dict], iid: str, until: str, now: float) -> int:
    """Micro-dollars the journal holds for keepalive extensions of ``iid`` toward the target
    ``until``, by the budget's rule (settled, unknown and in-flight payments count; one never sent
    or proven unused does not), across every run."""
    total = 0
    for e in entries:
        ctx = e.get("context") or {}
        mark = ctx.get("keepalive") if isinstance(ctx.get("keepalive"), dict) else {}
        if e.get("kind") == "extend" and ctx.get("instance_id") == iid and mark.get("until") == until and counts(e, now):
            total += entry_micros(e)
    return total


def _max_total_micros(a) -> int | None:
    text = getattr(a, "max_total_usd", None)
    if text is None:
        return None
    return int(parse_usd(text, "--max-total-usd") * 10**6)  # whole micro-dollars, rounded down: never more than set


def plan_schedule(expires: datetime, until: datetime, now: datetime, min_hours_left: float, block_hours: int, price_of) -> list[dict]:
    """The payments a keepalive scheduled every hour or so would make from ``expires`` to the
    target: each when the hours left reach ``min_hours_left`` (now, if already under), its hours by
    ``extension_hours``, its catalog price (``price_of(hours)`` micro-dollars, None if unknown)."""
    out: list[dict] = []
    e = expires
    while e < until and len(out) < 400:
        at = max(now, e - timedelta(hours=min_hours_left))
        left = (e - at).total_seconds() / 3600
        hours = extension_hours(left, min_hours_left, block_hours, (until - e).total_seconds() / 3600)
        e = e + timedelta(hours=hours)
        out.append({"at": iso(at), "hours": hours, "amount_micros": price_of(hours), "expires_at_after": iso(e)})
    return out


def _schedule_block(ctx, iid: str, order: dict, expires: datetime, until: datetime, now: datetime, target: dict) -> dict:
    """--dry-run's ``schedule``: the payments to the target and how they stand against the per-payment
    cap, --max-total-usd (with what this target has paid already) and the rolling budget."""
    a, s = ctx.args, ctx.settings
    plan_id = order.get("plan") or order.get("vultr_plan")
    plan = plans.find(ctx.client, plan_id) if isinstance(plan_id, str) and plan_id.strip() else None
    rows = plan_schedule(expires, until, now, a.min_hours_left, a.block_hours,
                         lambda h: plans.expected_micros(plan, h) if plan else None)
    known = all(r["amount_micros"] is not None for r in rows)
    total = sum(r["amount_micros"] or 0 for r in rows)
    cap = int(s.max_spend_usd * 10**6)
    limit = _max_total_micros(a)
    paid = paid_for_target(Journal(s.state_dir).list(), iid, target["until"], time.time())
    budget = Budget(s)
    spent, reserved = budget.sums()
    most, window = 0, timedelta(seconds=s.budget_window_s)
    for r in rows:  # the most the schedule pays within one budget window; the first also holds what is spent now
        start = parse_time(r["at"])
        inside = sum(x["amount_micros"] or 0 for x in rows if start <= parse_time(x["at"]) < start + window)
        most = max(most, inside + (spent + reserved if start < now + window else 0))
    payments = [{"at": r["at"], "hours": r["hours"], "amount_usd": usd(r["amount_micros"]) if r["amount_micros"] is not None else None,
                 "expires_at_after": r["expires_at_after"]} for r in rows]
    return {
        "payments": payments,
        "count": len(rows),
        "total_usd": usd(total) if known else None,
        "limits": {
            "per_payment_cap_usd": str(s.max_spend_usd),
            "per_payment_cap_source": s.max_spend_source,
            "over_cap": [p["at"] for p, r in zip(payments, rows) if (r["amount_micros"] or 0) > cap],
            "max_total_usd": usd(limit) if limit is not None else None,
            "paid_for_target_usd": usd(paid),
            "within_total": (paid + total <= limit) if limit is not None and known else None,
            "budget_limit_usd": usd(budget.limit) if budget.limit is not None else None,
            "budget_window": s.budget_window,
            "most_in_one_window_usd": usd(most),
            "within_budget": (most <= budget.limit) if budget.limit is not None and known else None,
        },
    }


def _stop_worthy(e: ComputeError) -> bool:
    if e.code in _TRANSIENT:
        return False
    return e.exit_code in (3, 4) or isinstance(e, PaymentRequired)


def keepalive(ctx):

    a = ctx.args
    iid = validate.instance_id(a.instance_id)
    if not 0 < a.min_hours_left <= 720:
        raise UsageError("--min-hours-left must be more than 0 and at most 720 hours.")
    if not BLOCK_HOURS <= a.block_hours <= 8760:
        raise UsageError(f"--block-hours must be from {BLOCK_HOURS} (the service's minimum) to 8760.")
    _max_total_micros(a)  # a malformed --max-total-usd is a usage error before anything is read
    if a.dry_run and (a.quote or a.confirm_quote):
        raise UsageError("--dry-run asks nothing of the server; drop --quote / --confirm-quote, or --dry-run.")
    now = datetime.now(timezone.utc)
    rec = Record(ctx.settings, iid)
    record = rec.load()
    target = _target(a, record, now)
    until = parse_time(target["until"])
    if until > now + MAX_AHEAD:
        raise UsageError(f"The target {target['until']} is more than a year away.", hint="Keep a machine alive for at most a year per target.")
    stopped = record.get("stopped")
    if stopped and not a.resume:
        raise PolicyError(
            f"keepalive for {iid} stopped at {stopped.get('at')}: {stopped.get('message')} Nothing was done.",
            code="keepalive_stopped",
            details={"instance_id": iid, "stopped": stopped},
            hint="Tell the human why it stopped. Once they have fixed the cause (reconciled the payment, raised the budget), "
            "they run keepalive.py again with --resume.",
        )
    if a.dry_run or a.quote:
        return _decide(ctx, iid, target, now, record, rec, paying=False)
    with rec.locked():
        record = rec.load()  # what the run that held the lock wrote
        if a.resume:
            gone = record.pop("stopped", None) or {}
            if gone.get("code") == "extension_not_applied" and gone.get("journal_id"):
                # the human looked at the payment the stop named: it no longer blocks this instance
                record["acknowledged"] = sorted(set(record.get("acknowledged") or []) | {gone["journal_id"]})
        record["target"] = target
        rec.save(record)
        try:
            return _decide(ctx, iid, target, now, record, rec, paying=True)
        except ComputeError as e:
            if _stop_worthy(e):
                record = rec.load()
                record["stopped"] = {"at": iso(datetime.now(timezone.utc)), "code": e.code, "message": e.message,
                                     **({"journal_id": e.details.get("journal_id")} if isinstance(e.details, dict) and e.details.get("journal_id") else {})}
                rec.save(record)
                e.details = {**(e.details if isinstance(e.details, dict) else {"details": e.details}), "keepalive": "stopped"}
                e.hint = (e.hint + " " if e.hint else "") + "keepalive stopped for this instance: later runs refuse until the human runs it with --resume."
            raise


def _decide(ctx, iid: str, target: dict, now: datetime, record: dict, rec: Record, *, paying: bool):
    a = ctx.args
    order = ctx.client.get_instance(iid)
    state = normalized_state(order)
    if state in ("destroyed", "expired"):
        raise ComputeError(f"Instance {iid} is {state}; there is nothing to keep alive.", code="instance_unusable",
                           details={"instance_id": iid, "state": state}, hint="Stop scheduling keepalive.py for it.")
    expires = parse_time(order.get("expires_at"))
    if expires is None:
        raise ComputeError(f"The server sent no usable expires_at for instance {iid}; cannot tell how long it has left.",
                           code="bad_response", details={"instance_id": iid, "expires_at": str(order.get("expires_at"))[:80]})
    until = parse_time(target["until"])
    left = expires_in_hours(order, now)
    out = {
        "instance_id": iid,
        "expires_at": order.get("expires_at"),
        "hours_left": round(max(0.0, left), 2),
        "target": target,
        "min_hours_left": a.min_hours_left,
        "block_hours": a.block_hours,
    }

    sched = _schedule_block(ctx, iid, order, expires, until, now, target) if a.dry_run else None

    def result(action: str, message: str, next_at: datetime | None, **more) -> "Output":
        limit = _max_total_micros(a)
        if limit is not None and sched is None:
            # What the human's total has left after this run (the dry run has it in schedule.limits).

            spent = paid_for_target(Journal(ctx.settings.state_dir).list(), iid, target["until"], time.time())
            more["total"] = {"max_total_usd": usd(limit), "paid_for_target_usd": usd(spent), "remaining_usd": usd(max(0, limit - spent))}
        if sched is not None:
            more["schedule"] = sched
            if sched["count"]:
                message += (f" To the target: {sched['count']} payment(s), the next at {sched['payments'][0]['at']}"
                            + (f", about {sched['total_usd']} USD in all." if sched["total_usd"] else "."))
        doc = {"action": action, "message": message, **out, **more, "done": next_at is None,
               "next_action_at": iso(max(next_at, now)) if next_at else None}
        if paying:
            latest = rec.load()
            latest["last"] = {"at": iso(now), "action": action, "expires_at": doc["expires_at"],
                              **({"journal_id": more["payment"].get("journal_id")} if more.get("payment") else {})}
            rec.save(latest)
        when = f"next action at {doc['next_action_at']}" if next_at else "target reached: stop scheduling keepalive.py"
        return Output(doc, f"{action}: {message}\n{when}")

    if expires >= until or now >= until:
        return result("done", f"expiry {iso(expires)} is at or after the target {target['until']}; nothing to pay.", None)
    threshold_at = expires - timedelta(hours=a.min_hours_left)
    if left >= a.min_hours_left:
        return result("none", f"{left:g} h left, at least the {a.min_hours_left:g} h threshold; nothing to pay.", threshold_at)

    hours = extension_hours(left, a.min_hours_left, a.block_hours, (until - expires).total_seconds() / 3600)
    new_expiry = expires + timedelta(hours=hours)
    next_at = None if new_expiry >= until else new_expiry - timedelta(hours=a.min_hours_left)
    if a.dry_run:
        price = paid.extension_price(ctx.client, order, hours)
        extension = {"hours": hours, "old_expires_at": order.get("expires_at"), "expires_at_estimate": iso(new_expiry),
                     "hourly_usd": str(price["hourly"]) if price["hourly"] is not None else None,
                     "estimated_usd": _usd(price["expected"]), "price_check": price["note"]}
        budget = Budget(ctx.settings)
        try:
            block = budget.check(price["expected"] or 0)
            refusal = None
        except PolicyError as e:
            block, refusal = budget.status(), {"code": e.code, "message": e.message}
        return result("would_extend", f"{left:g} h left, under the {a.min_hours_left:g} h threshold: would extend by {hours} h"
                      + (f" for about {extension['estimated_usd']} USD" if extension["estimated_usd"] else "") + ". Nothing was sent.",
                      next_at, extension=extension, budget=block, **({"would_be_refused": refusal} if refusal else {}))

    if paying:
        prior = _same_window(Journal(ctx.settings).list(), iid, expires, ctx.settings.base_url, time.time(),
                             tuple(record.get("acknowledged") or ()))
        if prior is not None and prior.get("status") == "settled":
            covered = covered_until(prior)
            raise PolicyError(
                f"Journal {prior['id']} paid to extend {iid} from {(prior.get('context') or {}).get('old_expires_at')} to "
                f"{iso(covered) if covered else 'later'}, but its expiry is still {order.get('expires_at')}: the server did not apply "
                "that extension. Not paying for the same window again. Nothing was sent.",
                code="extension_not_applied",
                details={"instance_id": iid, "journal_id": prior["id"], "covered_until": iso(covered) if covered else None,
                         "expires_at": order.get("expires_at"), "reconcile": cmdline.command("reconcile.py", prior["id"])},
                hint=f"Tell the human: the payment of journal {prior['id']} bought time the instance does not show. Ask the service; "
                "once the human has looked into it, they run keepalive.py with --resume.",
            )
        if prior is not None:
            return result("already_paid", f"journal {prior['id']} ({prior.get('status')}) already extends this instance from {order.get('expires_at')}; "
                          "not paying for the same window twice. The new expiry is not visible yet: check again later "
                          f"(reconcile.py {prior['id']} looks it up).", datetime.now(timezone.utc) + timedelta(minutes=5),
                          journal_id=prior["id"])
    approved = paid._approved_quote(ctx)
    call, price_note = paid.extend_call(ctx, iid, hours, order, approved=approved)
    call.context["keepalive"] = {"until": target["until"], "set_by": target["set_by"]}
    _hold_to_total(ctx, call, iid, target, hours)
    res = paid.pay(ctx, call, approved)
    if res.quote is not None:
        q = paid._quote_output(res)
        return Output({"action": "quote", **out, "extension": {"hours": hours, "expires_at_estimate": iso(new_expiry)}, **q.data}, q.text)
    with paid.after_payment(res):
        ext = paid.extend_output(res, iid, hours, order, price_note)
        # Counted on: at most what was paid for (old expiry + hours). An answer claiming more must not
        # end keepalive ("done") while the instance really has only what was bought; the next run reads it.
        got = min(parse_time(ext.data["order"].get("new_expires_at")) or new_expiry, new_expiry)
        out["expires_at"] = ext.data["order"].get("new_expires_at") or out["expires_at"]
        out["hours_left"] = round(max(0.0, (got - datetime.now(timezone.utc)).total_seconds() / 3600), 2)
        next_at = None if got >= until else got - timedelta(hours=a.min_hours_left)
        paid_usd = ext.data["payment"].get("amount_usd")
        if ext.data.get("warning"):
            # Paid, but the answer's expiry falls short of what was bought: no further payment
            # for this instance until the human has looked (--resume).
            latest = rec.load()
            latest["stopped"] = {"at": iso(datetime.now(timezone.utc)), "code": "extension_not_applied", "message": ext.data["warning"],
                                 "journal_id": ext.data["payment"].get("journal_id")}
            rec.save(latest)
            return result("extended", f"extended by {hours} h" + (f", paid {paid_usd} USD" if paid_usd else "") + f"; but {ext.data['warning']} "
                          "keepalive stopped for this instance: later runs refuse until run with --resume.", None,
                          extension={"hours": hours, "old_expires_at": order.get("expires_at"), "new_expires_at": ext.data["order"].get("new_expires_at")},
                          **{k: v for k, v in ext.data.items() if k != "order"}, keepalive="stopped")
        return result("extended", f"extended by {hours} h" + (f", paid {paid_usd} USD" if paid_usd else "") + f"; expires {out['expires_at']}.",
                      next_at, extension={"hours": hours, "old_expires_at": order.get("expires_at"), "new_expires_at": ext.data["order"].get("new_expires_at")},
                      **{k: v for k, v in ext.data.items() if k != "order"})


def _hold_to_total(ctx, call, iid: str, target: dict, hours: int) -> None:
    """--max-total-usd, before anything is signed: refuse an extension whose catalog price would take
    this target's payments (from the journal, across runs) over the total, and lower this payment's
    cap to what the total leaves, so no offer above it is ever signed."""
    limit = _max_total_micros(ctx.args)
    if limit is None:
        return
    paid_micros = paid_for_target(Journal(ctx.settings.state_dir).list(), iid, target["until"], time.time())
    left = max(0, limit - paid_micros)
    expected = call.limits.expected_micros
    if (expected is not None and paid_micros + expected > limit) or left == 0:
        raise PolicyError(
            f"keepalive for {iid} has paid {usd(paid_micros)} USD toward the target {target['until']}; extending by {hours} h"
            + (f" (about {usd(expected)} USD)" if expected is not None else "") + f" would go over --max-total-usd {usd(limit)}. "
            "Nothing was signed.",
            code="keepalive_total_exceeded",
            details={"instance_id": iid, "target": target, "max_total_usd": usd(limit), "paid_for_target_usd": usd(paid_micros),
                     "this_payment_usd": usd(expected) if expected is not None else None, "remaining_usd": usd(left)},
            hint="Tell the human: the total they set for keeping this machine alive to this target is used up. Only they raise "
            "--max-total-usd (or set another target); the machine expires at its current expiry otherwise.",
        )
    cap = Decimal(left) / 10**6
    if cap < call.limits.cap_usd:
        call.limits.cap_usd, call.limits.cap_source = cap, "--max-total-usd (what is left of it)"


def _usd(micros: int | None) -> str | None:
    return usd(micros) if micros is not None else None


# -- keepalive.py: its parser (the script and the MCP server both build it here) ------

KEEPALIVE_HELP = """Keep an instance alive until a target time: one check and at most one paid extension per run
(schedule it with cron or your agent's scheduler). Extends when the hours left drop below
--min-hours-left, in whole prepaid blocks, through the normal payment pipeline (spend cap,
budget, quote, journal); stops at the target, at the first refusal and at an unknown payment
outcome; never pays twice for the same window. Prints what it did and when it next needs to act."""


def keepalive_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "keepalive.py",
        KEEPALIVE_HELP,
        examples=(
            "python scripts/keepalive.py 3f2c9a1e-0000-4000-8000-000000000000 --for 3d --max-total-usd 2 --dry-run\n"
            "# show the human what it would pay; only once they agreed to the deadline and the amount,\n"
            "# --yes with their amounts (--max-usd, --max-total-usd) is their standing approval for the runs that follow:\n"
            "python scripts/keepalive.py 3f2c9a1e-0000-4000-8000-000000000000 --until 2030-01-31T18:00:00Z --yes --max-usd 2 --max-total-usd 5\n"
            "# crontab: every hour, keep it alive for 3 days from the first run\n"
            "0 * * * * python scripts/keepalive.py 3f2c9a1e-0000-4000-8000-000000000000 --for 3d --yes --max-usd 2 --max-total-usd 5"
        ),
    )
    p.add_argument("instance_id", help="instance (order) id from list_instances.py")
    g = p.add_argument_group("target (required)").add_mutually_exclusive_group(required=True)
    g.add_argument("--until", metavar="ISO8601", help="keep it alive until this time (e.g. 2030-01-31T18:00:00Z; no offset means UTC)")
    g.add_argument("--for", dest="for_", metavar="DURATION", help="keep it alive this long from the first run with this value (36h, 3d, 2w); recorded, so repeated runs keep that target")
    k = p.add_argument_group("keepalive")
    k.add_argument("--min-hours-left", type=float, default=MIN_HOURS_LEFT, metavar="HOURS", help="extend when fewer hours than this are left (default 6)")
    k.add_argument("--block-hours", type=int, default=BLOCK_HOURS, metavar="HOURS", help="extend in whole blocks of this many hours (default and minimum 24)")
    k.add_argument("--max-total-usd", metavar="USD", help="the most all runs for this target may pay in all, counted from the journal across runs; "
                   "a run whose extension would go over is refused (keepalive_total_exceeded, exit 3) before anything is signed")
    k.add_argument("--dry-run", action="store_true", help="say what this run would do and print the schedule of payments to the target "
                   "(when, hours, amount each, total) against the limits; send nothing but reads")
    k.add_argument("--resume", action="store_true", help="clear a recorded stop (after the human fixed its cause) and run")
    paid.add_payment_options(p, unresolved=False)
    return p
