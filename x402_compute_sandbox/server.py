"""The HTTP layer: stdlib ThreadingHTTPServer, HTTP/1.1 keep-alive, JSON in and out.

No framework on purpose: the sandbox must start fast and add no dependency. Every answer has a
Content-Length, so keep-alive works; every error is a JSON `{"error": ..., "details": {...}}`.
The server binds loopback addresses only (127.0.0.0/8, ::1).

Hardening (each number is a `Sandbox` option (sandbox.py) and a command-line flag):
    Host        only `127.0.0.1`, `localhost` or the exact address it is bound to, with any port
                (a web page that rebinds its DNS name to 127.0.0.1 still sends its own name): 421;
                none or several Host headers: 400
    deadline    once the first byte of a request has arrived, the request line, headers and body
                must all arrive within `request_timeout` (10 s): a slow-loris connection is answered
                408 and closed; between requests a keep-alive connection may idle `idle_timeout` (30 s)
    threads     at most `max_connections` (64) connections are served at once, one thread each;
                the next waits in the listen backlog, and after 2 s without a free thread is
                answered 503 with Retry-After
"""
from __future__ import annotations

import io
import ipaddress
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

MAX_BODY_BYTES = 64 * 1024
REQUEST_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
MAX_CONNECTIONS = 64
SLOT_WAIT_SECONDS = 2.0


class ApiError(Exception):
    """Raised anywhere in a handler; becomes `status` with a JSON error body."""

    def __init__(self, status: int, message: str, details: Optional[dict] = None,
                 headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message = status, message
        self.details = details or {}
        self.headers = headers or {}

    def response(self) -> "Response":
        return Response(self.status, {"error": self.message, "details": self.details}, dict(self.headers))


@dataclass
class Request:
    method: str
    path: str                       # path only, as sent (the auth message signs this string)
    query: dict[str, list[str]]
    headers: Any                    # case-insensitive mapping (email.message.Message)
    body: bytes

    def json(self) -> Any:
        """The body as JSON (an empty body is None). Malformed JSON is a 400."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:   # too deeply nested too
            raise ApiError(400, "Request body is not valid JSON", {"reason": str(exc)[:200]})


@dataclass
class Response:
    status: int
    body: Any = None                # dict/list -> compact JSON; bytes as is
    headers: dict = field(default_factory=dict)
    drop: bool = False              # fault injection: close the connection without answering

    def encoded(self) -> bytes:
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        if self.body is None:
            return b""
        return json.dumps(self.body, separators=(",", ":")).encode()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_loopback(*addresses: tuple[str, int], backlog: int = 64) -> socket.socket:
    """A listening TCP socket on the first of ``addresses`` ((ip, port) pairs, port 0 = any free
    port) that can be bound: what each instance's SSH server and AI model server listen on.
    Loopback IP literals only (127.0.0.0/8, ::1): any other address is refused (ValueError) before
    a socket is made. SO_REUSEADDR, so an instance reopened on its port (a restart, a resize) gets
    it back despite connections still in TIME_WAIT; on Linux it never lets two listeners share a
    port. OSError naming every address tried when none can be bound."""
    for host, _ in addresses:
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"refusing to listen on {host!r}: the sandbox listens on loopback addresses only")
    tried = []
    for host, port in addresses:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(backlog)
            return s
        except OSError as exc:
            s.close()
            tried.append(f"{host}:{port} ({exc.strerror or exc})")
    raise OSError(f"could not listen on {', '.join(tried) or 'no address'}")


def _raw_error(status: int, reason: str, message: str, extra: str = "") -> bytes:
    """A complete JSON error response that closes the connection (for answers given outside a
    parsed request: a timed-out one, or a connection refused for want of a thread)."""
    body = json.dumps({"error": message, "details": {"status": status}}, separators=(",", ":")).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n").encode() + body


class _DeadlineReader(io.RawIOBase):
    """The connection's reads. Waiting for a request to start may take the idle timeout; once its
    first byte is in, every later read gets only what is left of the request deadline, so a client
    sending one byte at a time cannot hold the thread longer than that."""

    def __init__(self, sock: socket.socket, handler: "_Handler"):
        self.sock, self.handler = sock, handler

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        h, srv = self.handler, self.handler.server
        if h.deadline is None:
            timeout = srv.idle_timeout
        else:
            timeout = h.deadline - time.monotonic()
            if timeout <= 0:
                h.timed_out = True
                raise TimeoutError("the request did not arrive within the deadline")
        self.sock.settimeout(timeout)
        try:
            n = self.sock.recv_into(buf)
        except TimeoutError:
            h.timed_out = h.deadline is not None
            raise
        if n and h.deadline is None:
            h.deadline = time.monotonic() + srv.request_timeout
        return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "x402-compute-sandbox/1"
    deadline: Optional[float] = None     # monotonic time by which the current request must be in
    timed_out = False

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self))
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def handle_one_request(self) -> None:
        self.deadline, self.timed_out = None, False
        super().handle_one_request()   # a read timeout ends it with close_connection set
        if self.timed_out:
            self._write_timeout()

    def _write_timeout(self) -> None:
        self.close_connection = True
        try:
            self.connection.settimeout(1.0)
            self.connection.sendall(_raw_error(408, "Request Timeout", "The request was not complete within "
                                               f"{self.server.request_timeout:g} s of its first byte"))
        except OSError:
            pass

    def _host_error(self) -> Optional[ApiError]:
        """DNS rebinding: a browser that reached us under another name says so in Host."""
        values = self.headers.get_all("Host") or []
        if len(values) != 1:
            return ApiError(400, "Send exactly one Host header" if values else "A Host header is required",
                            {"host_headers": len(values)})
        hosts = [values[0]]
        if "://" in self.path:   # absolute-form target: its authority is the host (RFC 9112 §3.2.2)
            hosts.append(urlsplit(self.path).netloc)
        for value in hosts:
            if not self.server.host_allowed(value):
                return ApiError(421, "This sandbox answers only requests addressed to "
                                     + " or ".join(self.server.allowed_hosts) + " (with any port)",
                                {"host": value[:100], "accepted": list(self.server.allowed_hosts)})
        return None

    def log_message(self, fmt, *args):  # one line per request only when asked for (--verbose)
        if getattr(self.server, "verbose", False):
            sys.stderr.write("sandbox: %s %s\n" % (self.address_string(), fmt % args))

    def _send(self, resp: Response) -> None:
        self.connection.settimeout(self.server.request_timeout)   # a client that does not read
        payload = resp.encoded()
        self.send_response(resp.status)
        headers = {"Content-Type": "application/json"} if payload else {}
        headers.update(resp.headers)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body leave in one write: two small writes on a keep-alive connection meet
        # Nagle's algorithm and the peer's delayed ACK, which costs ~40 ms per response.
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD" and payload:
            self._headers_buffer.append(payload)
        self.flush_headers()

    def __getattr__(self, name: str):
        # Any method token gets routed (a 405 or 404 from the app), not http.server's HTML 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """What http.server refuses before routing (bad request line, HTTP/0.9, too long a line or too
        many headers, an unsupported version) is answered like every other error: a JSON body."""
        self.close_connection = True
        self.connection.settimeout(self.server.request_timeout)
        short = self.responses.get(code, ("Error", ""))[0]
        message = message or short
        self.log_error("code %d, message %s", code, message)
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"   # a status line and headers, not a bare body
        payload = json.dumps({"error": message, "details": {"status": code}}, separators=(",", ":")).encode()
        self.send_response(code, short)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _handle(self) -> None:
        if self.request_version == "HTTP/0.9":
            return self.send_error(400, "HTTP/0.9 is not supported: send an HTTP/1.x request")
        host_error = self._host_error()
        if host_error is not None:
            self.close_connection = True
            return self._send(host_error.response())
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True   # we will not parse a chunked body; do not reuse the stream
            return self._send(ApiError(411, "Send the body with a Content-Length").response())
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return self._send(ApiError(400, "Invalid Content-Length").response())
        if length > MAX_BODY_BYTES:
            self.close_connection = True   # the unread body would otherwise be parsed as a request
            return self._send(ApiError(413, "Request body too large",
                                       {"max_bytes": MAX_BODY_BYTES, "got_bytes": length}).response())
        body = self.rfile.read(length) if length else b""
        if len(body) < length:   # the client closed mid-body
            self.close_connection = True
            return
        split = urlsplit(self.path)
        req = Request(method=self.command, path=split.path, query=parse_qs(split.query, keep_blank_values=True),
                      headers=self.headers, body=body)
        resp = self.server.app.handle(req)
        if resp.drop:
            # Ambiguous outcome for the client: the work is done, but no answer ever arrives.
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(resp)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _handle


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, app, host: str = "127.0.0.1", port: int = 8402, verbose: bool = False, *,
                 request_timeout: float = REQUEST_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS):
        if not is_loopback(host):
            raise ValueError(f"refusing to bind {host!r}: the sandbox listens on loopback only")
        if request_timeout <= 0 or idle_timeout <= 0 or max_connections < 1:
            raise ValueError("request_timeout and idle_timeout must be positive, max_connections at least 1")
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.app, self.verbose = app, verbose
        self.request_timeout, self.idle_timeout = float(request_timeout), float(idle_timeout)
        self.max_connections = int(max_connections)
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().__init__((host, port), _Handler)
        bound = self.server_address[0]
        self.allowed_hosts = tuple(dict.fromkeys(["127.0.0.1", "localhost",
                                                  f"[{bound}]" if ":" in bound else bound]))

    def host_allowed(self, value: str) -> bool:
        value = value.strip().lower()
        if value.startswith("["):
            host, _, port = value.partition("]")
            host += "]"
            port = port[1:] if port.startswith(":") else (None if port else "")
        else:
            host, _, port = value.partition(":")
        return host in self.allowed_hosts and port is not None and (port == "" or (port.isascii() and port.isdigit()
                                                                                   and len(port) <= 5))

    def process_request(self, request, client_address) -> None:
        """One thread per connection, at most max_connections of them."""
        if not self._slots.acquire(timeout=SLOT_WAIT_SECONDS):
            try:
                request.settimeout(1.0)
                request.sendall(_raw_error(503, "Service Unavailable", "The sandbox is serving "
                                           f"{self.max_connections} connections already; retry shortly",
                                           "Retry-After: 1\r\n"))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
