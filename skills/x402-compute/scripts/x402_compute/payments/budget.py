"""The rolling budget: the most all payments together may spend within a window.

Every payment method counts (x402, MPP, credit top-ups); a provision paid from prepaid credits
does not count again (the top-up that bought the credits did). What counts, from the journal:

- ``settled``, ``unknown`` and ``sent`` entries created within the window: the money left, or may
  have left (an exit-4 payment counts until reconcile.py proves it unused, which marks it
  ``expired``);
- ``reserved`` entries: a reservation taken by a process that is about to sign. A reservation
  whose process is provably gone (same host, no such pid) never had its payment leave this
  machine (the entry turns ``sent`` before a single byte is sent), so it stops counting; one
  older than ``RESERVATION_TTL_S`` stops counting too (signing takes seconds).

- ``rejected`` entries whose signature is still live (``journal.live_refusal``): the server
  refused it, but may still settle it until its ``valid_before``.

``not_sent`` and ``expired`` never count, nor a ``rejected`` one past its validity.

The guard (``reserve``) runs under an exclusive lock on the state folder (fcntl): sum what
counts, check the amount fits, write the reservation into the journal (atomic; visible to every
other process at once), release. Two
processes paying at once can therefore never both pass when together they exceed the budget.

All sums are integer micro-dollars; a payment in an 18-decimal token is rounded *up* to a
micro-dollar, so the budget is never under-counted.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

from ..errors import PolicyError
from ..money import plain
from ..networks import NETWORKS
from ..state import ensure_dir
from .journal import Journal, live_refusal

COUNTED = ("settled", "unknown", "sent", "reserved")
RESERVATION_TTL_S = 3600
WARN_FRACTION = Decimal("0.8")
_HOST = socket.gethostname()


def usd(micros: int) -> str:
    """Micro-dollars as an exact dollar string: 2500000 -> "2.5"."""
    return plain(Decimal(micros).scaleb(-6))


def atomic_to_micros(amount: int, decimals: int) -> int:
    """Atomic token units to micro-dollars, rounded up (every supported token is a 1:1 USD stablecoin)."""
    if decimals <= 6:
        return amount * 10 ** (6 - decimals)
    q, r = divmod(amount, 10 ** (decimals - 6))
    return q + (1 if r else 0)


def entry_micros(e: dict) -> int:
    """What a journal entry counts against the budget, in micro-dollars."""
    m = e.get("budget_micros")
    if isinstance(m, int) and not isinstance(m, bool) and m >= 0:
        return m
    if e.get("method") == "credits":  # spending credits already bought (and counted) is free
        return 0
    offer = e.get("offer") or {}  # entries written before the budget existed
    net = NETWORKS.get(str(offer.get("network") or ""))
    try:
        return atomic_to_micros(int(offer.get("amount_atomic")), net.decimals) if net else 0
    except (TypeError, ValueError):
        return 0


def _parse(ts: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(ts).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pid_gone(e: dict) -> bool:
    pid = e.get("pid")
    if e.get("host") != _HOST or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists but belongs to someone else
        return False
    return False


def counts(e: dict, now: float) -> bool:
    status = e.get("status")
    if status == "rejected":
        return live_refusal(e, now)
    if status not in COUNTED:
        return False
    if status == "reserved":
        created = _parse(e.get("created_at"))
        if created is None or now - created > RESERVATION_TTL_S or _pid_gone(e):
            return False
    return True


class BudgetExceeded(PolicyError):
    code = "budget_exceeded"


class Budget:
    """The budget over ``settings``' journal. ``limit_micros`` None means off (nothing is refused,
    but the spending is still reported)."""

    def __init__(self, settings, *, clock=time.time) -> None:
        self.limit = settings.budget_limit_micros
        self.window_s = settings.budget_window_s
        self.window = settings.budget_window
        self.journal = Journal(settings.state_dir)
        self.lock_path = Path(settings.state_dir) / "budget.lock"
        self.clock = clock

    # -- reading ------------------------------------------------------------------------------
    def entries(self, now: float | None = None, window_s: int | None = None) -> list[dict]:
        """Journal entries created within the window, oldest first (whatever their status)."""
        now = self.clock() if now is None else now
        since = now - (self.window_s if window_s is None else window_s)
        out = []
        for e in self.journal.list(modified_since=since):
            t = _parse(e.get("created_at"))
            if t is not None and t >= since:
                out.append(e)
        return out

    def tally(self, now: float | None = None) -> tuple[int, int, list[tuple[float, int]]]:
        """(spent, reserved, [(created_at, micros) of every counted entry, oldest first])."""
        now = self.clock() if now is None else now
        spent = reserved = 0
        counted: list[tuple[float, int]] = []
        for e in self.entries(now):
            if not counts(e, now):
                continue
            m = entry_micros(e)
            if e.get("status") == "reserved":
                reserved += m
            else:
                spent += m
            counted.append((_parse(e["created_at"]) or now, m))
        return spent, reserved, counted

    def status(self, extra_micros: int = 0, now: float | None = None) -> dict:
        """The ``budget`` block: limit, window, spent, reserved, remaining (after ``extra_micros``
        more, not yet reserved), and a ``warning`` once 80% of the limit is used."""
        spent, reserved, _ = self.tally(now)
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
        spent, reserved, counted = self.tally(now)
        self._refuse_over(micros, spent, reserved, counted, now)
        return self._block(spent, reserved, micros)

    def _refuse_over(self, micros: int, spent: int, reserved: int, counted: list[tuple[float, int]], now: float) -> None:
        if self.limit is None or spent + reserved + micros <= self.limit:
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

    @contextmanager
    def _locked(self) -> Iterator[None]:
        ensure_dir(self.lock_path.parent)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def reserve(self, micros: int, entry: dict) -> tuple[dict, dict]:
        """Under the lock: check ``micros`` fits, then create ``entry`` in the journal as a
        ``reserved`` reservation of ``micros``. Returns (entry, budget block after it)."""
        with self._locked():
            now = self.clock()
            spent, reserved, counted = self.tally(now)
            self._refuse_over(micros, spent, reserved, counted, now)
            created = self.journal.create({**entry, "status": "reserved", "budget_micros": micros, "pid": os.getpid(), "host": _HOST})
        return created, self._block(spent, reserved + micros)
