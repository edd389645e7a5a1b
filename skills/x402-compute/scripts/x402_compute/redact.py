"""The secrets this process holds, and one scrubber the output layer runs over everything it prints.

Code that loads or sends a secret (a configured key, an OWS passphrase, a credential header)
registers its value; ``cli`` scrubs every document, text, progress line and traceback before
it reaches stdout or stderr. This catches the paths no one thought of: a server that echoes
our ``X-API-Key`` back in an error body, a library exception that quotes a key. Values the
user asked to see (``--show``) are new secrets the process never registered, so they pass.

Matching is by meaning, not by exact string: case-insensitive, a hex value with or without
``0x``, and a payment header also in the forms a server could echo it in: base64 with or
without padding, URL-safe, and the signature (or signed transaction) inside its decoded JSON.

A script registers into one process-wide set. A long-running process (the MCP server) runs each
command inside ``scope()``: what the command registers (its keys, every signed header it sent)
is known to that command's thread only and dropped when it ends, so the set neither grows with
every request nor changes under another thread's scrub.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

# Request headers whose values are credentials (compared lower-case).
SECRET_HEADERS = frozenset({"x-api-key", "x-auth-signature", "x-payment", "payment-signature", "authorization", "payment-authorization"})
PAYMENT_HEADERS = frozenset({"x-payment", "payment-signature"})  # base64 JSON x402 payloads
# Fields of a decoded payment (x402 payload, MPP credential) that are bearer material.
_SIGNED_FIELDS = frozenset({"signature", "transaction", "serializedtransaction", "credential", "spt"})
_MIN_LEN = 6  # shorter values would scrub ordinary words; they are not worth guessing anyway
_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]+")

_secrets: set[str] = set()  # lower-cased: matching ignores case
_headers_done: set[tuple[str, str]] = set()  # (name, value) of header values registered with all their forms
_scoped: ContextVar[tuple[set[str], set[tuple[str, str]]] | None] = ContextVar("x402_compute_secrets", default=None)


@contextmanager
def scope() -> Iterator[None]:
    """Secrets registered inside belong to this context (thread) only, and only until it ends."""
    token = _scoped.set((set(), set()))
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
    new = {v}
    if _HEX.fullmatch(v) and v[:2].lower() == "0x" and len(v) - 2 >= _MIN_LEN:  # a hex key also appears without its prefix
        new.add(v[2:])
    into = _scoped.get()
    (_secrets if into is None else into[0]).update(x.lower() for x in new)


def carries_secret(headers: Any) -> bool:
    """Whether a request with these headers carries a credential or a payment."""
    return any(str(k).lower() in SECRET_HEADERS and v for k, v in dict(headers or {}).items())


def register_header(name: str, value: Any) -> None:
    """A credential or payment header value, with the encodings a server could echo it in."""
    if not isinstance(value, str):
        return
    lname = name.lower()
    into = _scoped.get()
    done = _headers_done if into is None else into[1]
    if (lname, value) in done:  # a paid run registers its payment header on each journal write and send
        return
    done.add((lname, value))
    register(value)
    if lname in PAYMENT_HEADERS:
        _register_b64_json(value.strip())
    elif value[:8].lower() == "payment ":  # MPP: "Payment <base64url JSON credential>"
        _register_b64_json(value[8:].strip())


def register_headers(headers: Any) -> None:
    for k, v in dict(headers or {}).items():
        if str(k).lower() in SECRET_HEADERS:
            register_header(str(k), v)


def _register_b64_json(text: str) -> None:
    bare = text.rstrip("=")
    register(bare)
    std = bare.replace("-", "+").replace("_", "/")
    register(std)
    register(std.replace("+", "-").replace("/", "_"))  # URL-safe, unpadded
    try:
        doc = json.loads(base64.b64decode(std + "=" * (-len(std) % 4), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return
    _register_signed(doc, 0)


def _register_signed(obj: Any, depth: int) -> None:
    if depth > 8:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if str(k).lower() in _SIGNED_FIELDS and isinstance(v, str):
                register(v)
            else:
                _register_signed(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _register_signed(v, depth + 1)


MASK = "***redacted***"


def _strings(obj: Any):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _strings(x)


def scrub(obj: Any) -> Any:
    """``obj`` with every registered secret replaced, recursively through dicts and lists."""
    scoped = _scoped.get()
    known = _secrets | scoped[0] if scoped else _secrets
    if not known:
        return obj
    # Which secrets occur at all, by a plain substring search over the lower-cased text (a process
    # may hold hundreds: every journalled payment it read); the regex is built from those only.
    low = "\n".join(_strings(obj)).lower()
    hits = sorted((s for s in known if s in low), key=len, reverse=True)  # "0x…" before its bare hex
    if not hits:
        return obj
    return _sub(obj, re.compile("|".join(re.escape(h) for h in hits), re.IGNORECASE))


def _sub(obj: Any, rx: re.Pattern) -> Any:
    if isinstance(obj, str):
        return rx.sub(MASK, obj)
    if isinstance(obj, dict):
        return {_sub(k, rx): _sub(v, rx) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sub(x, rx) for x in obj]
    return obj


# -- content that must not leave: a model's inline text checked before it is sent ------------------

_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_HEX_KEY = re.compile(r"(?<![0-9a-zA-Z])0x[0-9a-fA-F]{64}(?![0-9a-zA-Z])")
_B58_RUN = re.compile(r"(?<![1-9A-HJ-NP-Za-km-z])[1-9A-HJ-NP-Za-km-z]{80,90}(?![1-9A-HJ-NP-Za-km-z])")
_BYTE_ARRAY_64 = re.compile(r"\[\s*\d{1,3}(?:\s*,\s*\d{1,3}){63}\s*\]")  # a Solana keypair file
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58_len(text: str) -> int:
    n = 0
    for c in text:
        n = n * 58 + _B58.index(c)
    return (n.bit_length() + 7) // 8 + (len(text) - len(text.lstrip("1")))


def secret_like(text: str, known: Any = ()) -> str | None:
    """Why ``text`` looks like a private key or one of the given secrets (``known``, plus every
    secret this process registered), or None. For text a model hands in to be sent away (MCP
    ``user_data``): a prompt-injected model must not be able to ship the wallet's key with it."""
    low = text.lower()
    scoped = _scoped.get()
    for s in (_secrets | (scoped[0] if scoped else set())) | {str(k).strip().lower() for k in known if isinstance(k, str) and len(k.strip()) >= 8}:
        if s and s in low:
            return "it contains one of this skill's own secrets (a configured key, token or passphrase)"
    if _PEM_PRIVATE.search(text):
        return "it contains a PEM or OpenSSH private key block"
    if _HEX_KEY.search(text):
        return "it contains a 0x-prefixed 64-hex-digit value (an EVM private key has that form)"
    if _BYTE_ARRAY_64.search(text):
        return "it contains an array of 64 byte values (a Solana keypair file has that form)"
    for m in _B58_RUN.finditer(text):
        if _b58_len(m.group(0)) == 64:
            return "it contains a base58 value of 64 bytes (a Solana secret key has that form)"
    return None
