"""The secrets this process holds, and one scrubber the output layer runs over everything it prints.

Code that loads or sends a secret (a configured key, an OWS passphrase, a credential header)
registers its value; ``cli`` scrubs every document, text, progress line and traceback before
it reaches stdout or stderr. This catches the paths no one thought of: a server that echoes
our ``X-API-Key`` back in an error body, a library exception that quotes a key. Values the
user asked to see (``--show``) are new secrets the process never registered, so they pass.
"""

from __future__ import annotations

from typing import Any

# Request headers whose values are credentials (compared lower-case).
SECRET_HEADERS = frozenset({"x-api-key", "x-auth-signature", "x-payment", "payment-signature", "authorization"})
_MIN_LEN = 6  # shorter values would scrub ordinary words; they are not worth guessing anyway

_secrets: set[str] = set()


def register(value: Any) -> None:
    if not isinstance(value, str):
        return
    v = value.strip()
    if len(v) < _MIN_LEN:
        return
    _secrets.add(v)
    if v[:2].lower() == "0x" and len(v) - 2 >= _MIN_LEN:  # a hex key also appears without its prefix
        _secrets.add(v[2:])
        _secrets.add(v[2:].lower())
    elif all(c in "0123456789abcdefABCDEF" for c in v):
        _secrets.add(v.lower())


def register_headers(headers: Any) -> None:
    for k, v in dict(headers or {}).items():
        if str(k).lower() in SECRET_HEADERS:
            register(v)


MASK = "***redacted***"


def scrub(obj: Any) -> Any:
    """``obj`` with every registered secret replaced, recursively through dicts and lists."""
    if not _secrets:
        return obj
    if isinstance(obj, str):
        if any(s in obj for s in _secrets):
            for s in sorted(_secrets, key=len, reverse=True):  # longest first: "0x…" before its bare hex
                obj = obj.replace(s, MASK)
        return obj
    if isinstance(obj, dict):
        return {scrub(k): scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(x) for x in obj]
    return obj
