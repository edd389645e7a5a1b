"""One HTTP session with a User-Agent, and retries only where a retry cannot do harm:
idempotent reads, and connection failures that happened before any byte of the request
left this machine.

A server is untrusted input, so every exchange is bounded: one deadline for all of it
(connect, send, headers, body: ``COMPUTE_TIMEOUT``), a cap on the body's bytes before any
decoding (``MAX_BODY_BYTES``; ``MAX_RPC_BODY_BYTES`` for JSON-RPC), and JSON nesting checked
in one linear scan before the decoder recurses. A request carrying a credential or a payment
passes the transport guard (no plain http off this machine) before it leaves."""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
import urllib.parse
import zlib
from decimal import Decimal
from typing import Any, Callable, Mapping

import requests
import requests.adapters
import urllib3

from .. import USER_AGENT, redact
from ..errors import ComputeError, NetworkError, ResponseTooLarge, error_for_status

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


MAX_JSON_DEPTH = 100
# The depth is measured in one left-to-right scan, in time linear in the body and constant extra
# memory. The regex it replaced matched closed strings only: on an unterminated one it failed
# and was retried from every later quote, quadratic on a body of escaped quotes (seconds for
# 20 KB, hours for 4 MiB; bench/bench_parsing.py has the figures).
#
# Python 3.11+: tokens are a whole string or a run of brackets; possessive quantifiers keep no
# backtracking state (a plain "unrolled loop" regex stacks one entry per escape: 240 MB for a
# 4 MiB body of them), and a string the body never closes runs to the end instead of failing.
try:
    _JSON_TOKEN: re.Pattern | None = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)|[\[{]+|[\]}]+', re.S)
except re.error:  # Python 3.10: no possessive quantifiers; step through strings instead
    _JSON_TOKEN = None
_STRUCTURAL = re.compile(r'[\[{]+|[\]}]+|"')
_STRING_RUN = re.compile(r'[^"\\]*')


def json_depth(text: str, limit: int | None = None) -> int:
    """How deeply ``text`` nests arrays and objects (brackets inside strings don't count).
    With ``limit``, stops as soon as the depth passes it (and returns that depth)."""
    if _JSON_TOKEN is None:
        return json_depth_stepwise(text, limit)
    return _peak(_bracket_runs(text), limit)


def json_depth_stepwise(text: str, limit: int | None = None) -> int:
    """``json_depth`` without possessive regexes (the Python 3.10 path): the same single scan,
    stepping through each string's escapes one at a time. Linear, constant memory, slower."""
    return _peak(_bracket_runs_stepwise(text), limit)


def _peak(runs, limit: int | None) -> int:
    depth = peak = 0
    for run in runs:  # +n for n opening brackets in a row, -n for n closing ones
        depth += run
        if depth > peak:
            peak = depth
            if limit is not None and peak > limit:
                return peak
    return peak


def _bracket_runs(text: str):
    for m in _JSON_TOKEN.finditer(text):
        c = text[m.start()]
        if c != '"':
            yield m.end() - m.start() if c in "[{" else m.start() - m.end()


def _bracket_runs_stepwise(text: str):
    pos, n = 0, len(text)
    while True:
        m = _STRUCTURAL.search(text, pos)
        if m is None:
            return
        pos = m.end()
        c = text[m.start()]
        if c != '"':
            yield m.end() - m.start() if c in "[{" else m.start() - m.end()
            continue
        while True:  # inside a string: skip plain runs, step over escape pairs
            pos = _STRING_RUN.match(text, pos).end()
            if pos >= n:
                return  # never closed: nothing after it counts
            if text[pos] == '"':
                pos += 1
                break
            pos += 2  # a backslash and the character it escapes


def loads(data: bytes | str, **kw: Any) -> Any:
    """``json.loads`` for what a server sends us, refusing absurd nesting first.

    The C decoder recurses once per level and only stops at the interpreter's recursion
    limit, which some libraries (py_ecc, pulled in by eth-account's keyfile code) raise
    to 100000: then a body nested a few hundred thousand deep overflows the C stack and
    kills the process instead of raising."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    # Nesting needs an opening bracket per level: a text with few of them (any API answer) cannot
    # be too deep, and counting them is one pass in C. Only a text with more is scanned.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
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


# -- bounded exchanges ---------------------------------------------------------------------------
# A hostile server can answer slowly, hugely or forever. requests' timeout applies to each socket
# read, so a server dripping one byte a second never trips it, and it reads any size. Every
# exchange here is therefore bounded twice: one deadline for the whole of it (connect, send,
# headers, body), enforced by a watchdog that shuts the connection's socket down when it
# passes, and a cap on the body's bytes, checked as they arrive (before any decoding).

MAX_BODY_BYTES = 4 * 1024 * 1024  # an API answer: a catalog is a few hundred KB
MAX_RPC_BODY_BYTES = 1024 * 1024  # a JSON-RPC answer: the reads a payment makes are tiny
_CHUNK = 64 * 1024
_tracking = threading.local()  # the deadline of the exchange running on this thread


class DeadlineExceeded(requests.exceptions.ReadTimeout):
    """The whole exchange took longer than its deadline."""


class _Deadline:
    """A watchdog for one exchange: once ``seconds`` have passed, it shuts down the socket of every
    connection the exchange took from the pool (and keeps doing so until the exchange ends), so a
    blocked read returns at once whatever the HTTP library is doing. The watching is done by one
    thread per process (``_Watchdog``), not one per exchange: starting a thread for every request
    cost more than the request on a loopback sandbox (bench_paid_provision.py)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + max(0.0, seconds)
        self.expired = False
        self._conns: list = []
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def add(self, conn) -> None:
        with self._lock:
            self._conns.append(conn)
            if self.expired:
                _shut(conn)

    def fire(self) -> None:
        """Past the deadline: shut every connection taken so far (again on each call, for one that
        was still connecting the last time)."""
        with self._lock:
            self.expired = True
            for conn in self._conns:
                _shut(conn)

    def __enter__(self) -> "_Deadline":
        _tracking.deadline = self
        _WATCHDOG.watch(self)
        return self

    def __exit__(self, *exc) -> None:
        _WATCHDOG.forget(self)
        _tracking.deadline = None


class _Watchdog:
    """The one thread that fires every running exchange's deadline (started on first use)."""

    RETRY = 0.05  # an expired exchange still running is shut again this often

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: set[_Deadline] = set()
        self._thread: threading.Thread | None = None
        self._wakes_at: float | None = None  # when the thread looks again by itself (None: only when told)

    def watch(self, d: _Deadline) -> None:
        with self._cond:
            self._active.add(d)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="x402-compute-deadline", daemon=True)
                self._thread.start()
            # Wake the thread only when it would look too late: a request after a request has a
            # later deadline than the one it already sleeps until, and waking it on every request
            # hands the GIL to it and back each time (a measurable part of a paid run).
            if self._wakes_at is None or d.end < self._wakes_at:
                self._cond.notify()

    def forget(self, d: _Deadline) -> None:
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
                # the next request rarely has to.
                if wait is None and self._wakes_at is not None and self._wakes_at > now:
                    wait = self._wakes_at - now
                self._wakes_at = None if wait is None else now + wait
                self._cond.wait(wait)


_WATCHDOG = _Watchdog()


def _shut(conn) -> None:
    sock = conn if isinstance(conn, socket.socket) else getattr(conn, "sock", None)
    if sock is not None:
        try:
            # socket.socket's own methods, also on an SSLSocket (they leave the TLS object another
            # thread is using alone): shutdown ends a blocked read; the tiny timeout makes every
            # later read fail at once (Linux keeps delivering data after SHUT_RD, so a server still
            # dripping bytes would otherwise keep a read loop going).
            socket.socket.settimeout(sock, 0.001)
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except (OSError, TypeError):
            pass


def _tracked(pool):
    """Make ``pool`` report each connection it hands out to the running exchange's deadline."""
    if pool is None or getattr(pool, "_x402_tracked", False):
        return pool
    get_conn = pool._get_conn

    def _get_conn(*args, **kwargs):
        conn = get_conn(*args, **kwargs)
        deadline = getattr(_tracking, "deadline", None)
        if deadline is not None:
            deadline.add(conn)
        return conn

    pool._get_conn = _get_conn
    pool._x402_tracked = True
    return pool


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    def get_connection_with_tls_context(self, *args, **kwargs):  # requests >= 2.32
        return _tracked(super().get_connection_with_tls_context(*args, **kwargs))

    def get_connection(self, *args, **kwargs):  # requests < 2.32
        return _tracked(super().get_connection(*args, **kwargs))


class _Session(requests.Session):
    """requests reads the proxy and CA-bundle variables from the environment on every request
    (it walks all of os.environ each time: about 1 ms of a paid run's few). A script's environment
    does not change while it runs, so each (scheme, host) is looked up once per process."""

    _env_settings: dict = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        if not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.netloc, tuple(sorted((proxies or {}).items())), stream, verify, cert,
               tuple(sorted(self.proxies.items())), self.verify, self.cert)
        got = self._env_settings.get(key)
        if got is None:
            got = self._env_settings[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in got.items()}


def new_session() -> requests.Session:
    s = _Session()
    adapter = _DeadlineAdapter()
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    # Only encodings read() below can decode within the byte cap.
    s.headers["Accept-Encoding"] = "gzip, deflate"
    return s


def _body_socket(r: requests.Response) -> socket.socket | None:
    """The socket the body is read from (urllib3 response → http.client response → socket file)."""
    sock = getattr(getattr(getattr(getattr(r.raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _read_capped(r: requests.Response, limit: int, deadline: _Deadline, what: str) -> bytes:
    declared = r.headers.get("Content-Length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        raise ResponseTooLarge(f"{what}: the answer is {int(declared)} bytes, more than the {limit} this client reads.", details={"sent": True, "limit_bytes": limit}, retryable=False)
    encoding = (r.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding in ("", "identity"):
        inflate = None
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    else:
        raise requests.exceptions.ContentDecodingError(f"unsupported Content-Encoding {encoding!r}")
    buf = bytearray()
    try:
        for chunk in r.raw.stream(_CHUNK, decode_content=False):
            _take(chunk, buf, inflate, limit, what)
            if deadline.expired:
                raise DeadlineExceeded("deadline passed while reading the body")
    except urllib3.exceptions.ReadTimeoutError as e:  # what requests' iter_content would turn them into
        raise requests.exceptions.ConnectionError(e) from None
    except urllib3.exceptions.HTTPError as e:
        raise requests.exceptions.ChunkedEncodingError(e) from None
    return bytes(buf)


def _take(chunk: bytes, buf: bytearray, inflate, limit: int, what: str) -> None:
    if inflate is not None:
        try:
            chunk = inflate.decompress(chunk, limit + 1 - len(buf))  # never more than the cap
        except zlib.error as e:
            raise requests.exceptions.ContentDecodingError(str(e)) from None
    buf += chunk
    if len(buf) > limit:
        raise ResponseTooLarge(f"{what}: the answer is larger than the {limit} bytes this client reads.", details={"sent": True, "limit_bytes": limit}, retryable=False)


def bounded_request(session: requests.Session, method: str, url: str, *, deadline: float, limit: int = MAX_BODY_BYTES, what: str = "", **kwargs: Any) -> "Response":
    """One exchange that ends within ``deadline`` seconds, reading at most ``limit`` body bytes.

    Raises what requests raises (``DeadlineExceeded`` once the deadline passed) and
    ``ResponseTooLarge``."""
    with _Deadline(deadline) as dl:
        timeout = max(0.001, dl.remaining())
        try:
            r = session.request(method, url, timeout=(timeout, timeout), stream=True, allow_redirects=False, **kwargs)
            sock = _body_socket(r)
            if sock is not None:  # http.client hands a closing connection's socket to the response
                dl.add(sock)
            try:
                content = _read_capped(r, limit, dl, what or f"{method} {url}")
            finally:
                r.close()
        except requests.exceptions.RequestException:
            if dl.expired:
                raise DeadlineExceeded("deadline passed") from None
            raise
        except (OSError, ValueError, AttributeError):
            # A socket shut by the watchdog can surface as a bare OSError (or a TLS object torn
            # down mid-read) from deep inside the libraries.
            if dl.expired:
                raise DeadlineExceeded("deadline passed") from None
            raise
    return Response(r.status_code, r.headers, content)


def _connect_phase_failure(exc: BaseException) -> bool:
    """True when the request provably never reached the server."""
    if isinstance(exc, DeadlineExceeded):
        return False
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc)
        return any(s in text for s in ("NewConnectionError", "Failed to establish", "Name or service not known", "Connection refused", "NameResolutionError"))
    return False


class Transport:
    def __init__(self, base_url: str, *, timeout: float = 30.0, retries: int = 2, backoff: float = 0.5, verbose: bool = False,
                 guard: Callable[[str, str], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.verbose = verbose
        # Called with (url, what) before a request that carries a credential or a payment leaves.
        self.guard = guard
        self._session = new_session()
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
        """Send once (plus safe retries), all within one deadline (``timeout``, default the
        transport's: COMPUTE_TIMEOUT). Never raises on HTTP status; raises ``NetworkError`` when
        no usable answer came back. ``NetworkError.details['sent']`` tells whether the request
        may have reached the server."""
        method = method.upper()
        url = self.base_url + path
        hdrs = dict(headers or {})
        if self.guard is not None and redact.carries_secret(hdrs):
            self.guard(url, f"{method} {path}")
        redact.register_headers(hdrs)  # so a server that echoes them back cannot get them printed
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        reads_retry = method in SAFE_METHODS and retry_reads
        total = timeout or self.timeout
        end = time.monotonic() + total
        last: BaseException | None = None
        for attempt in range(1 + self.retries):
            more = attempt < self.retries
            try:
                if self.verbose:
                    print(f"→ {method} {url}", file=sys.stderr)
                resp = bounded_request(self._session, method, url, deadline=end - time.monotonic(), what=f"{method} {path}",
                                       data=body, headers=hdrs, params=params)
                if self.verbose:
                    print(f"← {resp.status} {method} {url}", file=sys.stderr)
                if reads_retry and resp.status in (502, 503, 504) and more and self._time_for(attempt, end):
                    time.sleep(self.backoff * (2**attempt))
                    continue
                return resp
            except ResponseTooLarge:
                raise
            except requests.exceptions.RequestException as e:
                last = e
                not_sent = _connect_phase_failure(e)
                # A read may be retried whatever happened; a write only if it never left.
                if more and (reads_retry or not_sent) and not isinstance(e, DeadlineExceeded) and self._time_for(attempt, end):
                    time.sleep(self.backoff * (2**attempt))
                    continue
                raise NetworkError(
                    f"{method} {path} failed: {describe_failure(e, total)}",
                    details={"sent": not not_sent, "url": url},
                    retryable=not_sent or method in SAFE_METHODS,
                    hint=None if not not_sent else f"Is the API at {self.base_url} reachable?",
                ) from None
        raise NetworkError(f"{method} {path} failed: {describe_failure(last, total)}")  # pragma: no cover

    def _time_for(self, attempt: int, end: float) -> bool:
        """Whether a retry after the backoff still starts before the deadline."""
        return time.monotonic() + self.backoff * (2**attempt) < end


def describe_failure(e: BaseException | None, total: float | None = None) -> str:
    if isinstance(e, DeadlineExceeded):
        return f"no complete answer within {total:g} s (the timeout covers the whole exchange; --timeout or COMPUTE_TIMEOUT)" if total else "timed out"
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
