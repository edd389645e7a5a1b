"""One HTTP session with timeouts, a User-Agent, and retries only where a
retry cannot do harm: idempotent reads, and connection failures that happened
before any byte of the request left this machine."""

from __future__ import annotations

import json
import re
import sys
import time
from decimal import Decimal
from typing import Any, Mapping

import requests

from . import USER_AGENT, redact
from .errors import ComputeError, NetworkError, error_for_status

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


MAX_JSON_DEPTH = 100
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deeply ``text`` nests arrays and objects (brackets inside strings don't count)."""
    depth = peak = 0
    for m in _JSON_BRACKET.finditer(_JSON_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            peak = max(peak, depth)
        else:
            depth -= 1
    return peak


def loads(data: bytes | str, **kw: Any) -> Any:
    """``json.loads`` for what a server sends us, refusing absurd nesting first.

    The C decoder recurses once per level and only stops at the interpreter's recursion
    limit, which some libraries (py_ecc, pulled in by eth-account's keyfile code) raise
    to 100000: then a body nested a few hundred thousand deep overflows the C stack and
    kills the process instead of raising."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    if json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return json.loads(text, **kw)


class Response:
    """What callers need from an HTTP answer, decoupled from requests."""

    def __init__(self, status: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status = status
        self.headers = requests.structures.CaseInsensitiveDict(headers)
        self.content = content

    def json(self) -> Any:
        """The body as JSON, floats as Decimal so money never passes through binary floats."""
        if not self.content:
            return None
        try:
            return loads(self.content, parse_float=Decimal)
        except ValueError:  # not JSON, or nested deeper than loads() accepts
            return None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _connect_phase_failure(exc: BaseException) -> bool:
    """True when the request provably never reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc)
        return any(s in text for s in ("NewConnectionError", "Failed to establish", "Name or service not known", "Connection refused", "NameResolutionError"))
    return False


class Transport:
    def __init__(self, base_url: str, *, timeout: float = 30.0, retries: int = 2, backoff: float = 0.5, verbose: bool = False) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.verbose = verbose
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT
        self._session.headers["Accept"] = "application/json"

    def close(self) -> None:
        self._session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
        retry_reads: bool = True,
    ) -> Response:
        """Send once (plus safe retries). Never raises on HTTP status; raises
        ``NetworkError`` when no answer came back. ``NetworkError.details['sent']``
        tells whether the request may have reached the server."""
        method = method.upper()
        url = self.base_url + path
        hdrs = dict(headers or {})
        redact.register_headers(hdrs)  # so a server that echoes them back cannot get them printed
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        reads_retry = method in SAFE_METHODS and retry_reads
        last: BaseException | None = None
        for attempt in range(1 + self.retries):
            more = attempt < self.retries
            try:
                if self.verbose:
                    print(f"→ {method} {url}", file=sys.stderr)
                r = self._session.request(method, url, data=body, headers=hdrs, params=params, timeout=timeout or self.timeout, allow_redirects=False)
                if self.verbose:
                    print(f"← {r.status_code} {method} {url}", file=sys.stderr)
                resp = Response(r.status_code, r.headers, r.content)
                if reads_retry and resp.status in (502, 503, 504) and more:
                    time.sleep(self.backoff * (2**attempt))
                    continue
                return resp
            except requests.exceptions.RequestException as e:
                last = e
                not_sent = _connect_phase_failure(e)
                # A read may be retried whatever happened; a write only if it never left.
                if more and (reads_retry or not_sent):
                    time.sleep(self.backoff * (2**attempt))
                    continue
                raise NetworkError(
                    f"{method} {path} failed: {_short(e)}",
                    details={"sent": not not_sent, "url": url},
                    retryable=not_sent or method in SAFE_METHODS,
                    hint=None if not not_sent else f"Is the API at {self.base_url} reachable?",
                ) from None
        raise NetworkError(f"{method} {path} failed: {_short(last)}")  # pragma: no cover


def _short(e: BaseException | None) -> str:
    if isinstance(e, requests.exceptions.ReadTimeout):
        return "timed out waiting for the response"
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return "timed out connecting"
    if isinstance(e, requests.exceptions.ConnectionError):
        text = str(e)
        if "Connection refused" in text:
            return "connection refused"
        if "RemoteDisconnected" in text or "Connection aborted" in text or "reset" in text.lower():
            return "the connection was closed before a response arrived"
        return "connection error"
    return type(e).__name__ if e else "unknown error"


def api_error(resp: Response, what: str) -> ComputeError:
    """A typed error from an error response, keeping the server's body."""
    body = resp.json()
    message = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            message = err.get("message") or err.get("code")
        elif isinstance(err, str):
            message = err
        message = message or body.get("message")
    message = message or (resp.text[:200] if resp.content else f"HTTP {resp.status}")
    cls = error_for_status(resp.status)
    return cls(
        f"{what}: {message}",
        status=resp.status,
        details=body if body is not None else (resp.text[:2000] or None),
        retryable=resp.status in (429, 502, 503, 504),
    )
