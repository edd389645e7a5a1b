"""The client's HTTP/1.1 transport, on the standard library's http.client: kept-alive connections
per thread, a User-Agent, the environment's proxies and CA bundle, and retries only where a retry
cannot do harm: idempotent reads, and connection failures that happened before any byte of the
request left this machine.

A server is untrusted input, so every exchange is bounded: one deadline for all of it
(connect, send, headers, body: ``COMPUTE_TIMEOUT``), a cap on the body's bytes before any
decoding (``MAX_BODY_BYTES``; ``MAX_RPC_BODY_BYTES`` for JSON-RPC), and JSON nesting checked
in one linear scan before the decoder recurses. A request carrying a credential or a payment
passes the transport guard (no plain http off this machine) before it leaves."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import MutableMapping
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping

from .. import USER_AGENT, redact
from ..deadline import Deadline

try:
    import certifi  # Mozilla's CA bundle (a requirement; without it, the system's store)
except ImportError:  # pragma: no cover
    certifi = None  # type: ignore[assignment]
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


class Headers(MutableMapping):
    """Response headers: case-insensitive names; a header sent more than once reads as its values
    joined by ", " (RFC 9110 5.3: e.g. two WWW-Authenticate challenges)."""

    def __init__(self, items: Any = ()) -> None:
        self._d: dict[str, tuple[str, str]] = {}
        pairs = items.items() if isinstance(items, Mapping) else items
        for k, v in pairs:
            self.add(k, v)

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        have = self._d.get(key)
        self._d[key] = (name, value if have is None else f"{have[1]}, {value}")

    def __getitem__(self, name: str) -> str:
        return self._d[name.lower()][1]

    def __setitem__(self, name: str, value: str) -> None:
        self._d[name.lower()] = (name, value)

    def __delitem__(self, name: str) -> None:
        del self._d[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class Response:
    """What callers need from an HTTP answer."""

    def __init__(self, status: int, headers: Any, content: bytes) -> None:
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
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


# -- failures -------------------------------------------------------------------------------------


class TransportError(Exception):
    """No usable answer. ``sent``: whether the request may have reached the server (False only when
    it provably did not: the connection, proxy tunnel or TLS handshake failed, or the request was
    refused before a byte left)."""

    sent = True

    def __init__(self, message: str, *, sent: bool | None = None, cause: BaseException | None = None) -> None:
        super().__init__(message)
        if sent is not None:
            self.sent = sent
        self.cause = cause


class ConnectFailed(TransportError):
    sent = False


class ConnectionLost(TransportError):
    """The connection broke, or the answer was not HTTP, after the request may have left."""


class DeadlineExceeded(TransportError):
    """The whole exchange took longer than its deadline."""


class BadEncoding(TransportError):
    """The body's Content-Encoding is not one this client decodes, or it is corrupt."""


# -- bounded exchanges ---------------------------------------------------------------------------
# A hostile server can answer slowly, hugely or forever. A socket timeout applies to each read, so
# a server dripping one byte a second never trips it, and nothing stops a read of any size. Every
# exchange here is therefore bounded twice: one deadline for the whole of it (connect, send,
# headers, body), enforced by a watchdog that shuts the connection's socket down when it passes,
# and a cap on the body's bytes, checked as they arrive (before any decoding).

MAX_BODY_BYTES = 4 * 1024 * 1024  # an API answer: a catalog is a few hundred KB
MAX_RPC_BODY_BYTES = 1024 * 1024  # a JSON-RPC answer: the reads a payment makes are tiny
_CHUNK = 64 * 1024


# -- where a request goes: proxies and TLS, from the environment as curl and requests read them -----

_route_cache: dict[tuple[str, str], tuple[str, int, str | None] | None] = {}
_tls: ssl.SSLContext | None = None
_tls_lock = threading.Lock()


def _proxy_for(scheme: str, host: str) -> tuple[str, int, str | None] | None:
    """(host, port, Proxy-Authorization value or None) of the proxy the environment names for
    ``scheme`` (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, either case), unless NO_PROXY covers ``host``.
    A script's environment does not change while it runs: looked up once per (scheme, host)."""
    key = (scheme, host)
    if key in _route_cache:
        return _route_cache[key]
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(scheme) or proxies.get("all")
    route = None
    if url and not urllib.request.proxy_bypass_environment(host, proxies):
        if "://" not in url:
            url = "http://" + url
        try:
            p = urllib.parse.urlsplit(url)
            port = p.port or 80
        except ValueError:  # "http://[bad", a port out of range: the environment is input too
            p = None
        if p is None or p.scheme.lower() != "http" or not p.hostname:
            raise ConnectFailed(f"the proxy the environment names for {scheme} ({_without_userinfo(url)}) is not an "
                                "http:// proxy this client can use (http://[user:password@]host:port); fix or unset HTTPS_PROXY, "
                                "HTTP_PROXY or ALL_PROXY")
        auth = None
        if p.username is not None:
            password = urllib.parse.unquote(p.password or "")
            creds = f"{urllib.parse.unquote(p.username)}:{password}"
            auth = "Basic " + base64.b64encode(creds.encode("utf-8")).decode("ascii")
            redact.register(auth)
            redact.register(password)
        route = (p.hostname, port, auth)
    _route_cache[key] = route
    return route


def _authority(url: str) -> str:
    """What stands between ``scheme://`` and the path, query or fragment (user:password@host:port)."""
    return re.split(r"[/?#]", url.partition("://")[2], maxsplit=1)[0]


def _has_userinfo(url: str) -> bool:
    return "@" in _authority(url)


def _without_userinfo(url: str) -> str:
    """``url`` as it may be shown: no user or password, whatever else is wrong with it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.rsplit("@", 1)[-1][:200]
    authority = _authority(url)
    return (scheme + sep + authority.rsplit("@", 1)[-1] + rest[len(authority):])[:200]


def _tls_context() -> ssl.SSLContext:
    """Certificates verified, host names checked: against REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE when
    the environment names one (SSL_CERT_FILE/SSL_CERT_DIR are OpenSSL's own), else certifi's bundle
    when installed (what requests used), else the system's store."""
    global _tls
    if _tls is None:
        with _tls_lock:
            if _tls is None:
                cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
                if cafile is None and certifi is not None and not (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")):
                    cafile = certifi.where()
                try:
                    _tls = ssl.create_default_context(cafile=cafile)
                except (OSError, ValueError) as e:  # a missing or unreadable file, or not PEM (ssl.SSLError is an OSError)
                    raise ConnectFailed(f"the CA bundle {str(cafile)[:200]!r} cannot be used ({type(e).__name__}); fix or unset "
                                        "REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE") from None
    return _tls


# -- connections ----------------------------------------------------------------------------------


class Session:
    """Kept-alive connections, one idle list per (scheme, host, port); a connection is used by one
    exchange at a time. Safe to share between threads."""

    def __init__(self) -> None:
        self.headers: dict[str, str] = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for c in conns:
                c.close()

    def _take(self, key: tuple) -> http.client.HTTPConnection | None:
        with self._lock:
            conns = self._idle.get(key)
            while conns:
                conn = conns.pop()
                if _usable(conn):
                    return conn
                conn.close()
        return None

    def _give(self, key: tuple, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(conn)

    def _new(self, scheme: str, host: str, port: int, route, timeout: float) -> http.client.HTTPConnection:
        if scheme == "https":
            if route is None:
                return http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls_context())
            conn = http.client.HTTPSConnection(route[0], route[1], timeout=timeout, context=_tls_context())
            conn.set_tunnel(host, port, headers={"Proxy-Authorization": route[2]} if route[2] else None)
            return conn
        if route is None:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        return http.client.HTTPConnection(route[0], route[1], timeout=timeout)


def new_session() -> Session:
    return Session()


def _usable(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection the server has not closed (nothing to read on it: a readable
    idle socket is an EOF or bytes nobody asked for; either way it is not reused)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _target(url: str, params: Mapping[str, str] | None) -> tuple[str, str, int, str, str | None]:
    """(scheme, host, port, request target, Basic Authorization value of the URL's user:password or None)."""
    try:
        p = urllib.parse.urlsplit(url)
        scheme = p.scheme.lower()
        port = p.port or (443 if scheme == "https" else 80)
    except ValueError:  # "http://[bad", a port past 65535
        raise ConnectFailed(f"not a usable http(s) URL: {_without_userinfo(url)!r}") from None
    if scheme not in ("http", "https") or not p.hostname:
        raise ConnectFailed(f"not an http(s) URL: {_without_userinfo(url)!r}")
    path = p.path or "/"
    query = p.query
    if params:
        extra = urllib.parse.urlencode(params)
        query = f"{query}&{extra}" if query else extra
    auth = None
    if p.username is not None:  # user:password@ in the URL: HTTP Basic, as curl and requests send it
        creds = f"{urllib.parse.unquote(p.username)}:{urllib.parse.unquote(p.password or '')}"
        auth = "Basic " + base64.b64encode(creds.encode("utf-8")).decode("ascii")
        redact.register(auth)
    return scheme, p.hostname, port, path + (f"?{query}" if query else ""), auth


def _read_capped(resp: http.client.HTTPResponse, limit: int, deadline: Deadline, what: str) -> bytes:
    declared = resp.getheader("Content-Length", "") or ""
    if declared.strip().isdigit() and int(declared) > limit:
        raise ResponseTooLarge(f"{what}: the answer is {int(declared)} bytes, more than the {limit} this client reads.", details={"sent": True, "limit_bytes": limit}, retryable=False)
    encoding = (resp.getheader("Content-Encoding") or "identity").strip().lower()
    if encoding in ("", "identity"):
        inflate = None
    elif encoding in ("gzip", "x-gzip", "deflate"):
        inflate = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    else:
        raise BadEncoding(f"unsupported Content-Encoding {encoding!r}")
    buf = bytearray()
    while True:
        chunk = resp.read1(_CHUNK)
        if deadline.expired:
            raise DeadlineExceeded("deadline passed while reading the body")
        if not chunk:
            break
        _take(chunk, buf, inflate, limit, what)
    resp.close()  # read to its end: the connection may carry the next request
    return bytes(buf)


def _take(chunk: bytes, buf: bytearray, inflate, limit: int, what: str) -> None:
    if inflate is not None:
        try:
            chunk = inflate.decompress(chunk, limit + 1 - len(buf))  # never more than the cap
        except zlib.error as e:
            raise BadEncoding(f"corrupt compressed body: {e}") from None
    buf += chunk
    if len(buf) > limit:
        raise ResponseTooLarge(f"{what}: the answer is larger than the {limit} bytes this client reads.", details={"sent": True, "limit_bytes": limit}, retryable=False)


def bounded_request(session: Session, method: str, url: str, *, deadline: float, limit: int = MAX_BODY_BYTES, what: str = "",
                    data: bytes | None = None, json_body: Any = None, headers: Mapping[str, str] | None = None,
                    params: Mapping[str, str] | None = None) -> Response:
    """One exchange that ends within ``deadline`` seconds, reading at most ``limit`` body bytes.
    Redirects are answers (never followed).

    Raises ``TransportError`` (``DeadlineExceeded`` once the deadline passed; ``sent`` False only
    when the request provably never left) and ``ResponseTooLarge``."""
    scheme, host, port, path, url_auth = _target(url, params)
    route = _proxy_for(scheme, host)
    hdrs = dict(session.headers)
    hdrs.update(headers or {})
    if url_auth is not None and not any(k.lower() == "authorization" for k in hdrs):
        hdrs["Authorization"] = url_auth
    body = data
    if json_body is not None:
        body = json.dumps(json_body).encode("utf-8")
        hdrs.setdefault("Content-Type", "application/json")
    if scheme == "http" and route is not None:
        path = urllib.parse.urlunsplit((scheme, f"{host}:{port}", "", "", "")) + path  # absolute-form to an HTTP proxy
        if route[2]:
            hdrs["Proxy-Authorization"] = route[2]
    key = (scheme, host, port)
    with Deadline(deadline) as dl:
        timeout = max(0.001, dl.remaining())
        conn = session._take(key)
        fresh = conn is None
        if conn is None:
            conn = session._new(scheme, host, port, route, timeout)
        dl.add(lambda: conn.sock)  # asked again at each firing: a connection still connecting has none yet
        keep = False
        try:
            if fresh:
                try:
                    conn.connect()
                except OSError as e:  # refused, unreachable, name unknown, TLS refused, tunnel refused
                    if dl.expired:
                        raise DeadlineExceeded("deadline passed while connecting", sent=False) from None
                    raise ConnectFailed(_connect_text(e), cause=e) from None
            else:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, path, body, hdrs)  # buffered: nothing leaves before the headers all pass
            except ValueError as e:  # a header http.client refuses (CR/LF in it): nothing was sent
                raise ConnectFailed(f"refused to send a malformed request: {e}", cause=e) from None
            except (http.client.HTTPException, OSError) as e:
                if dl.expired:
                    raise DeadlineExceeded("deadline passed", cause=e) from None
                raise ConnectionLost(_lost_text(e), cause=e) from None
            try:
                resp = conn.getresponse()
                if conn.sock is None:  # a closing connection hands its socket to the response
                    body_sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
                    dl.add(lambda: body_sock)
                headers_in = Headers(resp.getheaders())
                content = _read_capped(resp, limit, dl, what or f"{method} {url}")
            except (http.client.HTTPException, OSError) as e:
                if dl.expired:
                    raise DeadlineExceeded("deadline passed", cause=e) from None
                raise ConnectionLost(_lost_text(e), cause=e) from None
            keep = not resp.will_close and not dl.expired
            return Response(resp.status, headers_in, content)
        except (TransportError, ResponseTooLarge):
            raise
        except (ValueError, AttributeError) as e:
            # A socket shut by the watchdog can surface as a bare ValueError (or a TLS object torn
            # down mid-read) from deep inside the libraries.
            if dl.expired:
                raise DeadlineExceeded("deadline passed", cause=e) from None
            raise
        finally:
            if keep:
                session._give(key, conn)
            else:
                conn.close()


def _connect_text(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out connecting"
    if isinstance(e, socket.gaierror):
        return "the host name could not be resolved"
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate was not accepted ({e.verify_message})"
    if isinstance(e, ssl.SSLError):
        return f"the TLS handshake failed ({e.reason or type(e).__name__})"
    text = str(e)
    if text.startswith("Tunnel connection failed"):
        return f"the proxy refused the tunnel ({text[len('Tunnel connection failed: '):][:80]})"
    return f"connection error ({type(e).__name__})"


def _lost_text(e: BaseException) -> str:
    if isinstance(e, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, http.client.IncompleteRead)):
        return "the connection was closed before a complete response arrived"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out waiting for the response"
    if isinstance(e, http.client.HTTPException):
        return f"the answer is not well-formed HTTP ({type(e).__name__})"
    return f"connection error ({type(e).__name__})"


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
        if self.guard is not None and (redact.carries_secret(hdrs) or _has_userinfo(url)):  # user:password@ is sent too
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
            except TransportError as e:
                last = e
                not_sent = not e.sent
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
    if isinstance(e, TransportError):
        return str(e)
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
