"""One deadline for an exchange with another machine, enforced from outside the blocked call.

A socket timeout bounds each read, not an exchange: a server dripping a byte a second, or a
database that keeps its connection open and never answers, holds a blocked call forever. A
``Deadline`` holds the sockets an exchange uses; once it passes, one watchdog thread per process
shuts them down (and again every ``Watchdog.RETRY`` until the exchange ends, for one that was
still connecting), so the blocked read returns at once whatever library is reading. Used by the
HTTP transport (``api.http``) and the PostgreSQL ledger (``ledger.store``).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any


def shut(sock: Any) -> None:
    """Shut a socket down for both directions: a read blocked on it returns, later ones fail."""
    if sock is None:
        return
    try:
        # socket.socket's own methods, also on an SSLSocket (they leave the TLS object another
        # thread is using alone): shutdown ends a blocked read; the tiny timeout makes every later
        # read fail at once (Linux keeps delivering data after SHUT_RD, so a server still dripping
        # bytes would otherwise keep a read loop going).
        socket.socket.settimeout(sock, 0.001)
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError, ValueError):
        pass


class Deadline:
    """The deadline of one exchange: ``with Deadline(s) as dl: dl.add(get_socket) ...``. Each
    ``get_socket()`` is asked again at every firing (a connection still connecting has none yet)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + max(0.0, seconds)
        self.expired = False
        self._sockets: list = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def add(self, get_socket) -> None:
        with self._lock:
            self._sockets.append(get_socket)
            if self.expired:
                shut(get_socket())

    def fire(self) -> None:
        """Past the deadline: shut every socket taken so far (again on each call)."""
        with self._lock:
            self.expired = True
            for get_socket in self._sockets:
                shut(get_socket())

    def __enter__(self) -> "Deadline":
        WATCHDOG.watch(self)
        return self

    def __exit__(self, *exc) -> None:
        WATCHDOG.forget(self)


class Watchdog:
    """The one thread that fires every running exchange's deadline (started on first use). A thread
    per exchange cost more than the exchange on a loopback sandbox (bench_paid_provision.py)."""

    RETRY = 0.05  # an expired exchange still running is shut again this often

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: set[Deadline] = set()
        self._thread: threading.Thread | None = None
        self._wakes_at: float | None = None  # when the thread looks again by itself (None: only when told)

    def watch(self, d: Deadline) -> None:
        with self._cond:
            self._active.add(d)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="x402-compute-deadline", daemon=True)
                self._thread.start()
            # Wake the thread only when it would look too late: an exchange after an exchange has a
            # later deadline than the one it already sleeps until, and waking it every time hands
            # the GIL to it and back (a measurable part of a paid run).
            if self._wakes_at is None or d.end < self._wakes_at:
                self._cond.notify()

    def forget(self, d: Deadline) -> None:
        with self._cond:
            self._active.discard(d)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                wait = None
                for d in list(self._active):
                    left = d.end - now
                    if left <= 0:
                        d.fire()
                        left = self.RETRY
                    wait = left if wait is None else min(wait, left)
                # Idle, it still sleeps until the last deadline it knew (forget does not wake it), so
                # the next exchange rarely has to.
                if wait is None and self._wakes_at is not None and self._wakes_at > now:
                    wait = self._wakes_at - now
                self._wakes_at = None if wait is None else now + wait
                self._cond.wait(wait)


WATCHDOG = Watchdog()
