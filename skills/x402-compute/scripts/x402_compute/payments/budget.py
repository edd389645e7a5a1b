"""The rolling budget: the most all payments together may spend within a window.

Every payment method counts (x402, MPP, credit top-ups); a provision paid from prepaid credits
does not count again (the top-up that bought the credits did). What counts is the typed journal
entry's rule (``journal.Entry.counts``):

- ``settled``, ``unknown`` and ``sent`` entries created within the window: the money left, or may
  have left (an exit-4 payment counts until reconcile.py proves it unused, which marks it
  ``expired``);
- ``reserved`` entries: a reservation taken by a process that is about to sign. A reservation
  whose heartbeat is stale (any host: the holder refreshes it while it signs; a pid gone here
  is not proof enough, two machines may share a host name), never had its payment leave (the entry turns
  ``sent`` before a single byte is sent), so it stops counting; one older than
  ``RESERVATION_TTL_S`` stops counting too (signing takes seconds);
- ``rejected`` entries whose signature is still live (``journal.live_refusal``): the server
  refused it, but may still settle it until its ``valid_before``.

``not_sent`` and ``expired`` never count, nor a ``rejected`` one past its validity.

The budget is the ledger's: every agent sharing one ledger (a PostgreSQL named by
``COMPUTE_LEDGER_URL``) shares one budget. The guard (``reserve``) is one ledger transaction under
the budget's lock (SQLite ``BEGIN IMMEDIATE``; PostgreSQL ``pg_advisory_xact_lock``): sum what
counts, check the amount fits, insert the reservation, commit. N processes on M machines can
therefore never all pass when together they exceed the budget.

All sums are integer micro-dollars; a payment in an 18-decimal token is rounded *up* to a
micro-dollar, so the budget is never under-counted.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterator

from ..errors import PolicyError
from .journal import (  # noqa: F401  (re-exported: the budget's arithmetic and rules, where callers look for them)
    COUNTED,
    HEARTBEAT_S,
    HOST as _HOST,
    RESERVATION_TTL_S,
    Entry,
    Journal,
    atomic_to_micros,
    entry_micros,
    ledger_of,
    live_refusal,
    parse_ts as _parse,
    pid_gone,
    usd,
)

WARN_FRACTION = Decimal("0.8")


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pid_gone(e: dict) -> bool:
    return pid_gone(e.get("host"), e.get("pid"))


def counts(e: dict, now: float) -> bool:
    return Entry.of(e).counts(now)


class BudgetExceeded(PolicyError):
    code = "budget_exceeded"


class Budget:
    """The budget over ``settings``' journal. ``limit_micros`` None means off (nothing is refused,
    but the spending is still reported)."""

    def __init__(self, settings, *, clock=None) -> None:
        self.limit = settings.budget_limit_micros
        self.window_s = settings.budget_window_s
        self.window = settings.budget_window
        self.journal = Journal(settings)
        self.ledger = self.journal.ledger
        self.clock = clock or self.ledger.now  # the fleet's one clock (PostgreSQL's), or this machine's

    # -- reading ------------------------------------------------------------------------------
    def entries(self, now: float | None = None, window_s: int | None = None) -> list[dict]:
        """Journal entries created within the window, oldest first (whatever their status)."""
        now = self.clock() if now is None else now
        return self.journal.list(modified_since=now - (self.window_s if window_s is None else window_s))

    def _counted(self, now: float) -> list[Entry]:
        return [e for e in map(Entry.of_row, self.ledger.rows(now - self.window_s)) if e.counts(now)]

    def sums(self, now: float | None = None) -> tuple[int, int]:
        """(spent, reserved): what ``tally`` sums, with the always-counted entries summed by the
        ledger and only reservations and refusals judged here (a paid run reads this three times;
        the window's whole history would cost it time in proportion to the history)."""
        now = self.clock() if now is None else now
        spent, rows = self.ledger.budget_rows(now - self.window_s, Entry.ALWAYS_COUNTED, Entry.SOMETIMES_COUNTED)
        reserved = 0
        for e in map(Entry.of_row, rows):
            if e.counts(now):
                if e.status == "reserved":
                    reserved += e.micros
                else:
                    spent += e.micros
        return spent, reserved

    def tally(self, now: float | None = None) -> tuple[int, int, list[tuple[float, int]]]:
        """(spent, reserved, [(created_at, micros) of every counted entry, oldest first])."""
        now = self.clock() if now is None else now
        spent = reserved = 0
        counted: list[tuple[float, int]] = []
        for e in self._counted(now):
            if e.status == "reserved":
                reserved += e.micros
            else:
                spent += e.micros
            counted.append((e.created if e.created is not None else now, e.micros))
        return spent, reserved, counted

    def fleet(self, now: float | None = None) -> dict:
        """Who spent it: the totals per host and per instance (a state folder on a host) of every
        agent sharing this ledger, within the window."""
        now = self.clock() if now is None else now
        hosts: dict[str, list[int]] = {}
        agents: dict[str, list] = {}
        for e in self._counted(now):
            i = 1 if e.status == "reserved" else 0
            hosts.setdefault(e.host or (e.agent or "?").split(":", 1)[0], [0, 0])[i] += e.micros
            a = agents.setdefault(e.agent or "(unknown)", [e.host or (e.agent or "?").split(":", 1)[0], 0, 0])
            a[1 + i] += e.micros
        return {
            "ledger": self.ledger.engine,
            "this_instance": self.ledger.agent,
            "hosts": [{"host": h, "spent_usd": usd(v[0]), "reserved_usd": usd(v[1])} for h, v in sorted(hosts.items())],
            "instances": [{"instance": k, "host": v[0], "spent_usd": usd(v[1]), "reserved_usd": usd(v[2])} for k, v in sorted(agents.items())],
        }

    def status(self, extra_micros: int = 0, now: float | None = None) -> dict:
        """The ``budget`` block: limit, window, spent, reserved, remaining (after ``extra_micros``
        more, not yet reserved), and a ``warning`` once 80% of the limit is used."""
        spent, reserved = self.sums(now)
        return self._block(spent, reserved, extra_micros)

    def _block(self, spent: int, reserved: int, pending: int = 0) -> dict:
        """``pending``: a payment not yet reserved (a quote), counted in remaining and the warning only."""
        used = spent + reserved + pending
        block: dict[str, Any] = {
            "limit_usd": usd(self.limit) if self.limit is not None else "off",
            "window": self.window,
            "spent_usd": usd(spent),
            "reserved_usd": usd(reserved),
            "remaining_usd": usd(max(0, self.limit - used)) if self.limit is not None else None,
        }
        if self.limit is not None and used >= WARN_FRACTION * self.limit and self.limit > 0:
            pct = int(Decimal(used * 100) / Decimal(self.limit)) if self.limit else 100
            block["warning"] = (
                f"{min(pct, 100)}% of the {usd(self.limit)} USD budget per {self.window} is used "
                f"({usd(used)} USD); tell the human before it runs out."
            )
        return block

    # -- the guard ------------------------------------------------------------------------------
    def check(self, micros: int, now: float | None = None) -> dict:
        """Raise BudgetExceeded unless ``micros`` more fits; else the block after it (read-only: quotes)."""
        now = self.clock() if now is None else now
        spent, reserved = self.sums(now)
        self._refuse_over(micros, spent, reserved, now)
        return self._block(spent, reserved, micros)

    def _refuse_over(self, micros: int, spent: int, reserved: int, now: float) -> None:
        if self.limit is None or spent + reserved + micros <= self.limit:
            return
        spent, reserved, counted = self.tally(now)  # refusing: the whole list, for when enough rolls off
        if spent + reserved + micros <= self.limit:  # cannot differ from the sums in one transaction; never refuse on a race
            return
        need = spent + reserved + micros - self.limit
        frees_at = None
        if micros <= self.limit:
            rolled = 0
            for created, m in counted:  # oldest first: when has enough rolled out of the window?
                rolled += m
                if rolled >= need:
                    frees_at = _iso(max(created + self.window_s, now))
                    break
        remaining = max(0, self.limit - spent - reserved)
        raise BudgetExceeded(
            f"Paying {usd(micros)} USD would exceed the budget: {usd(spent)} USD spent and {usd(reserved)} USD reserved "
            f"of {usd(self.limit)} USD per {self.window}, {usd(remaining)} USD left. Nothing was signed.",
            details={
                "limit_usd": usd(self.limit),
                "window": self.window,
                "spent_usd": usd(spent),
                "reserved_usd": usd(reserved),
                "remaining_usd": usd(remaining),
                "requested_usd": usd(micros),
                "frees_at": frees_at,
            },
            hint="Report these figures to the human and wait for their decision; never change COMPUTE_BUDGET_USD or "
            "COMPUTE_BUDGET_WINDOW yourself."
            + (f" Enough of the window rolls off at {frees_at}." if frees_at else " The amount alone is above the whole budget."),
        )

    def reserve(self, micros: int, entry: dict) -> tuple[dict, dict]:
        """In one ledger transaction under the budget's lock: check ``micros`` fits, then create
        ``entry`` in the journal as a ``reserved`` reservation of ``micros`` naming this host and
        process. Returns (entry, budget block after it)."""
        with self.ledger.tx(lock="budget"):
            now = self.clock()
            spent, reserved = self.sums(now)
            self._refuse_over(micros, spent, reserved, now)
            # Stamped by the same clock that judges it: another machine's skewed clock can't age it.
            stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            created = self.journal.create({**entry, "status": "reserved", "budget_micros": micros, "pid": os.getpid(), "host": _HOST,
                                           "created_at": stamp, "heartbeat_ts": now})
        return created, self._block(spent, reserved + micros)

    @contextmanager
    def heartbeat(self, entry_id: str, every_s: float = HEARTBEAT_S) -> Iterator[None]:
        """While the body runs (signing), refresh the reservation's heartbeat every ``every_s`` so
        agents on other machines keep counting it; a process that dies stops refreshing it."""
        key = _BEATS.hold(self.ledger, entry_id, every_s)
        try:
            yield
        finally:
            _BEATS.release(key)


class _Beats:
    """The one thread per process that refreshes the heartbeat of every reservation being signed
    (started on first use). A thread per signature cost a thread start and two handoffs on every
    paid run, for a beat that a signature of a millisecond never needs."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: dict[int, list] = {}  # key -> [ledger, entry id, every_s, next beat (monotonic)]
        self._next_key = 0
        self._thread: threading.Thread | None = None
        self._wakes_at: float | None = None  # when the thread looks again by itself

    def hold(self, ledger, entry_id: str, every_s: float) -> int:
        due = time.monotonic() + every_s
        with self._cond:
            self._next_key += 1
            key = self._next_key
            self._held[key] = [ledger, entry_id, every_s, due]
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="x402-reservation-heartbeat", daemon=True)
                self._thread.start()
            elif self._wakes_at is None or due < self._wakes_at:  # else it looks in time by itself
                self._cond.notify()
        return key

    def release(self, key: int) -> None:
        with self._cond:
            self._held.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [h for h in self._held.values() if h[3] <= now]
                for h in due:
                    h[3] = now + h[2]
                if not due:
                    # Idle, it still wakes every HEARTBEAT_S, so a new hold rarely has to wake it.
                    wake = min((h[3] for h in self._held.values()), default=now + HEARTBEAT_S)
                    self._wakes_at = wake
                    self._cond.wait(max(0.0, wake - now))
                    continue
            for ledger, entry_id, _, _ in due:  # outside the lock: a slow ledger holds no one else up
                try:
                    ledger.heartbeat(entry_id)
                except Exception:  # a missed beat only lets the reservation age sooner
                    pass


_BEATS = _Beats()
