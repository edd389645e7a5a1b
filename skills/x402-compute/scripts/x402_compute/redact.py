"""The secrets this process holds, and one scrubber the output layer runs over everything it prints.

Code that loads or sends a secret (a configured key, an OWS passphrase, a credential header)
registers its value; ``cli`` scrubs every document, text, progress line and traceback before
it reaches stdout or stderr. This catches the paths no one thought of: a server that echoes
our ``X-API-Key`` back in an error body, a library exception that quotes a key. Values the
user asked to see (``--show``) are new secrets the process never registered, so they pass.

A script registers into one process-wide set. A long-running process (the MCP server) runs each
command inside ``scope()``: what the command registers (its keys, every signed header it sent)
is known to that command's thread only and dropped when it ends, so the set neither grows with
every request nor changes under another thread's scrub.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

# Request headers whose values are credentials (compared lower-case).
SECRET_HEADERS = frozenset({"x-api-key", "x-auth-signature", "x-payment", "payment-signature", "authorization"})
_MIN_LEN = 6  # shorter values would scrub ordinary words; they are not worth guessing anyway

_secrets: set[str] = set()
_scoped: ContextVar[set[str] | None] = ContextVar("x402_compute_secrets", default=None)


@contextmanager
def scope() -> Iterator[None]:
    """Secrets registered inside belong to this context (thread) only, and only until it ends."""
    token = _scoped.set(set())
    try:
        yield
    finally:
        _scoped.reset(token)


def register(value: Any) -> None:
    if not isinstance(value, str):
        return
    v = value.strip()
    if len(v) < _MIN_LEN:
        return
    into = _scoped.get()
    into = _secrets if into is None else into
    into.add(v)
    if v[:2].lower() == "0x" and len(v) - 2 >= _MIN_LEN:  # a hex key also appears without its prefix
        into.add(v[2:])
        into.add(v[2:].lower())
    elif all(c in "0123456789abcdefABCDEF" for c in v):
        into.add(v.lower())


def register_headers(headers: Any) -> None:
    for k, v in dict(headers or {}).items():
        if str(k).lower() in SECRET_HEADERS:
            register(v)


MASK = "***redacted***"


def scrub(obj: Any) -> Any:
    """``obj`` with every registered secret replaced, recursively through dicts and lists."""
    scoped = _scoped.get()
    known = _secrets | scoped if scoped else _secrets
    return _scrub(obj, sorted(known, key=len, reverse=True)) if known else obj  # longest first: "0x…" before its bare hex


def _scrub(obj: Any, known: list[str]) -> Any:
    if isinstance(obj, str):
        if any(s in obj for s in known):
            for s in known:
                obj = obj.replace(s, MASK)
        return obj
    if isinstance(obj, dict):
        return {_scrub(k, known): _scrub(v, known) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_scrub(x, known) for x in obj]
    return obj
