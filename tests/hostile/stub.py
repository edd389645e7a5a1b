"""A hostile (or merely broken) compute API on 127.0.0.1, for driving the real scripts.

Left alone it is an honest, minimal implementation of the API, enough for every script to run:
the catalog, 402 challenges (x402 v1 body and/or v2 ``PAYMENT-REQUIRED`` header, optionally an
MPP ``WWW-Authenticate`` header) carrying Base USDC offers at the catalog price that the client
will sign, paid provision / extend / credits top-up answered 201/200 with a UUID order,
``Idempotency-Key`` replays, and instance management (list, details, destroy, password, resize,
API keys, credits). Tests then switch misbehaviours per route with :meth:`HostileAPI.override`:
any status, headers or bytes, a body dripped a byte at a time, a huge or endless body, a reset
connection, an echo of what the client sent.

Every request is recorded (:attr:`HostileAPI.requests`), so a test can count the payment
headers it received and the distinct signatures inside them (:meth:`HostileAPI.signatures`).

No chain is involved: a payment is decoded and recorded, never verified or settled. Use the
sandbox for that; use this for what a real server would never do on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
TEMPO_USDCE = "0x20C000000000000000000000b9537d11c60E8b50"
PAY_TO = "0x1111111111111111111111111111111111111111"
PAYMENT_HEADERS = ("x-payment", "payment-signature")  # x402 v1, v2; MPP uses "Authorization: Payment ..."


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def b64json(obj: Any) -> str:
    return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()


def unb64json(value: str) -> Any:
    return json.loads(base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if ("-" in value or "_" in value) else None))


# -- what a route answers ------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP answer, honest or not.

    ``body``: bytes/str as is, anything else as JSON. ``stream``: an iterable of byte chunks sent
    instead of ``body`` (for bodies too big to hold; sent chunked unless ``length`` is given).
    ``drip``: seconds between single bytes of the body (``drip_head``: of the status line and
    headers too). ``reset``: close the connection without answering. ``delay``: sleep first.
    ``raw``: the exact bytes to write on the socket (status line and headers included)."""

    status: int = 200
    body: Any = None
    headers: dict = field(default_factory=dict)
    stream: Iterable[bytes] | None = None
    length: int | None = None
    drip: float | None = None
    drip_head: bool = False
    reset: bool = False
    delay: float = 0.0
    raw: bytes | None = None

    def body_bytes(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body).encode("utf-8")


def json_reply(status: int, obj: Any, **headers: str) -> Reply:
    return Reply(status, obj, {"Content-Type": "application/json", **headers})


def huge(mib: float, *, prefix: bytes = b'{"plans": [', filler: bytes = b'{"id": "x"},', chunk: int = 64 * 1024) -> Iterable[bytes]:
    """About ``mib`` MiB of (never-ending-looking) JSON, generated, never held in memory."""
    yield prefix
    block = filler * max(1, chunk // len(filler))
    for _ in range(int(mib * 1024 * 1024) // len(block) + 1):
        yield block


def quadratic_escapes(n: int, *, terminated: bool = True) -> bytes:
    """JSON whose one string holds ``n`` escaped quotes. Unterminated, it makes a regex that
    matches whole strings (``"(?:[^"\\\\]|\\\\.)*"``) fail from every one of those quotes and
    rescan the rest of the body each time: quadratic."""
    return b'{"plans": [], "note": "' + b'\\"' * n + (b'"}' if terminated else b"")


def deep(n: int) -> bytes:
    return b'{"plans": ' + b"[" * n + b"]" * n + b"}"


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict  # lower-cased names
    body: bytes
    at: float

    @property
    def payment(self) -> tuple[str, str] | None:
        """(header name, value) of the payment this request carries, if any."""
        for name in PAYMENT_HEADERS:
            if name in self.headers:
                return name, self.headers[name]
        auth = self.headers.get("authorization", "")
        if auth.lower().startswith("payment "):
            return "authorization", auth
        return None

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class _Override:
    method: str
    pattern: re.Pattern
    reply: Reply | Callable[["Request", Callable[[], Reply]], Reply]
    when: str  # "any" | "paid" | "unpaid"
    times: int | None
    used: int = 0


# -- the server --------------------------------------------------------------------------------


class HostileAPI:
    """``with HostileAPI() as api: ...`` or ``start()``/``stop()``; ``api.base_url``."""

    def __init__(self, bind: str = "127.0.0.1") -> None:
        self.bind = bind  # another address only inside a test's own network namespace (unshare -rn)
        now = datetime.now(timezone.utc)
        self.plans: list[dict] = [
            {"id": "vc2-1c-1gb", "type": "vps", "provider": "vultr", "vcpu_count": 1, "ram": 1024, "disk": 25,
             "bandwidth": 1024, "our_hourly": 0.01, "our_daily": 0.24, "our_monthly": 7.2, "locations": ["lax", "ewr"]},
            {"id": "vc2-2c-4gb", "type": "vps", "provider": "vultr", "vcpu_count": 2, "ram": 4096, "disk": 80,
             "bandwidth": 3072, "our_hourly": 0.03, "our_daily": 0.72, "our_monthly": 21.6, "locations": ["lax", "ewr"]},
        ]
        self.regions: list[dict] = [{"id": "lax", "city": "Los Angeles", "country": "US", "continent": "North America"},
                                    {"id": "ewr", "city": "New Jersey", "country": "US", "continent": "North America"}]
        self.os_options: list[dict] = [{"id": 2284, "name": "Ubuntu 24.04 LTS x64", "arch": "x64", "family": "ubuntu", "provider": "vultr"}]
        self.orders: dict[str, dict] = {}
        self.x402_versions: tuple[int, ...] = (1,)  # which challenges a 402 carries: (1,), (2,) or (1, 2)
        self.mpp = False  # also an MPP WWW-Authenticate: Payment challenge
        self.stripe = False  # also an MPP card charge (method="stripe"); the stub is the Stripe API too
        self.stripe_profile = "profile_stub"
        self.stripe_header: Callable[[str], str] | None = None  # rewrites the card challenge's header value
        self.spt_requests: list[dict] = []  # what POST /shared_payment/issued_tokens received (the form)
        self.pay_to = PAY_TO
        self.asset = BASE_USDC
        self.credits = {"balance": "0.00", "total_deposited": "0.00", "total_spent": "0.00"}
        self.requests: list[Request] = []
        self._overrides: list[_Override] = []
        self._replays: dict[str, Reply] = {}  # Idempotency-Key -> the first 2xx answer
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._now = now
        self._srv: ThreadingHTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "HostileAPI":
        api = self

        class Handler(_Handler):
            pass

        Handler.api = api
        self._srv = ThreadingHTTPServer((self.bind, 0), Handler)
        self._srv.daemon_threads = True
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()

    def __enter__(self) -> "HostileAPI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._srv is not None
        return self._srv.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.bind}:{self.port}"

    # -- misbehaviours ------------------------------------------------------------------------
    def override(self, method: str, path: str, reply, *, when: str = "any", times: int | None = None) -> None:
        """Answer ``method`` on paths matching the regex ``path`` (full match) with ``reply``: a
        :class:`Reply`, or ``fn(request, honest) -> Reply`` where ``honest()`` is what the stub
        would have answered. ``when``: ``paid`` (the request carries a payment), ``unpaid`` or
        ``any``. ``times``: only for the first N matching requests. Later overrides win."""
        if when not in ("any", "paid", "unpaid"):
            raise ValueError(when)
        self._overrides.insert(0, _Override(method.upper(), re.compile(path), reply, when, times))

    def clear_overrides(self) -> None:
        self._overrides.clear()

    def reset(self) -> None:
        """Forget the overrides, the recorded requests and the Idempotency-Key replays: one server
        shared by many tests (a module fixture) starts each test this way. The catalog, the
        orders and the other settings are left as they are."""
        with self._lock:
            self._overrides.clear()
            self.requests.clear()
            self._replays.clear()
            self.spt_requests.clear()

    def add_order(self, **fields: Any) -> dict:
        """An existing instance (running, with an IP) owned by whoever asks; ``fields`` override."""
        oid = fields.pop("id", None) or str(uuid.uuid4())
        order = self._new_order(oid, plan="vc2-1c-1gb", region="lax", hours=48, label=fields.pop("label", "web"))
        order.update(fields)
        self.orders[order["id"]] = order
        return order

    # -- what was received --------------------------------------------------------------------
    def received(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self._lock:
            reqs = list(self.requests)
        return [r for r in reqs if (method is None or r.method == method) and (path is None or re.fullmatch(path, r.path))]

    def paid_requests(self) -> list[Request]:
        return [r for r in self.received() if r.payment]

    def signatures(self) -> set[str]:
        """The distinct signed payments received (a resend of the same bytes counts once)."""
        out = set()
        for r in self.paid_requests():
            name, value = r.payment
            if name == "authorization":
                out.add(value)
                continue
            try:
                doc = unb64json(value)
                p = doc.get("payload") or {}
                out.add(str(p.get("signature") or p.get("transaction") or value))
            except (ValueError, AttributeError, TypeError):
                out.add(value)
        return out

    # -- the honest API -------------------------------------------------------------------------
    def _new_order(self, oid: str, *, plan: str, region: str, hours: int, label: str | None) -> dict:
        now = datetime.now(timezone.utc)
        return {
            "id": oid, "label": label or "x402-instance", "plan": plan, "vultr_plan": plan, "region": region,
            "vultr_region": region, "provider": "vultr", "os_id": 2284, "status": "active", "vultr_status": "active",
            "power_status": "running", "server_status": "ok", "ip_address": "127.0.0.1", "ssh_port": None,
            "created_at": iso(now), "expires_at": iso(now + timedelta(hours=hours)), "destroyed_at": None,
            "prepaid_hours": hours, "access_method": "ssh_key", "metadata": {},
        }

    def _plan(self, plan_id: str) -> dict | None:
        return next((p for p in self.plans if isinstance(p, dict) and p.get("id") == plan_id), None)

    @staticmethod
    def _micros(plan: dict | None, hours: int) -> int:
        try:
            return int(round(float(plan["our_hourly"]) * hours * 1_000_000))
        except (TypeError, ValueError, KeyError, OverflowError):
            return 240_000

    def challenge(self, req: Request, micros: int, description: str) -> Reply:
        """The 402 this stub sends: Base USDC at ``micros`` (USDC has 6 decimals)."""
        resource = f"{self.base_url}{req.path}"
        v1 = {"scheme": "exact", "network": "base", "maxAmountRequired": str(micros), "resource": resource,
              "description": description, "mimeType": "application/json", "payTo": self.pay_to, "asset": self.asset,
              "maxTimeoutSeconds": 300, "extra": {"name": "USD Coin", "version": "2"}}
        headers = {"Content-Type": "application/json"}
        body: dict = {"error": "Payment required"}
        if 1 in self.x402_versions:
            body.update({"x402Version": 1, "accepts": [v1]})
        if 2 in self.x402_versions:
            v2 = {k: v for k, v in v1.items() if k not in ("maxAmountRequired", "resource", "description", "mimeType")}
            v2.update({"network": "eip155:8453", "amount": str(micros)})
            headers["PAYMENT-REQUIRED"] = b64json({"x402Version": 2, "error": "Payment required",
                                                   "resource": {"url": resource, "description": description}, "accepts": [v2]})
        if self.mpp:
            request = {"amount": str(micros), "currency": TEMPO_USDCE, "recipient": self.pay_to, "methodDetails": {"chainId": 4217}}
            enc = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
            expires = iso(datetime.now(timezone.utc) + timedelta(minutes=5))
            headers["WWW-Authenticate"] = f'Payment id="{uuid.uuid4().hex}", realm="stub", method="tempo", intent="charge", request="{enc}", expires="{expires}"'
        if self.stripe:
            request = {"amount": str(max(1, micros // 10_000)), "currency": "usd",
                       "methodDetails": {"networkId": self.stripe_profile, "paymentMethodTypes": ["card"]}}
            card = self.card_challenge(request)
            if self.stripe_header is not None:
                card = self.stripe_header(card)
            headers["WWW-Authenticate"] = f"{headers['WWW-Authenticate']}, {card}" if "WWW-Authenticate" in headers else card
        return Reply(402, body, headers)

    @staticmethod
    def card_challenge(request: dict, **params: str) -> str:
        """One MPP stripe/charge challenge value (the ``WWW-Authenticate`` text) for ``request``."""
        enc = base64.urlsafe_b64encode(json.dumps(request).encode()).decode().rstrip("=")
        expires = iso(datetime.now(timezone.utc) + timedelta(minutes=5))
        fields = {"id": uuid.uuid4().hex, "realm": "stub", "method": "stripe", "intent": "charge", "request": enc, "expires": expires, **params}
        return "Payment " + ", ".join(f'{k}="{v}"' for k, v in fields.items())

    def _management_key(self, req: Request) -> dict:
        """What an MPP-paid provision adds: the one-time management key (a payment names no owner)."""
        if (req.payment or ("",))[0] != "authorization":
            return {}
        key = "x402c_" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
        return {"management_api_key": key, "management_api_key_id": uuid.uuid4().hex[:12], "management_api_key_last4": key[-4:]}

    def honest(self, req: Request) -> Reply:  # noqa: C901 - one switch over the routes
        m, p = req.method, req.path
        body = req.json() if req.body else None
        body = body if isinstance(body, dict) else {}
        if m == "GET" and p == "/compute/plans":
            t = (req.query.get("type") or [None])[0]
            plans = [x for x in self.plans if not t or not isinstance(x, dict) or x.get("type") == t]
            return json_reply(200, {"plans": plans, "count": len(plans)})
        if m == "GET" and p == "/compute/regions":
            return json_reply(200, {"regions": self.regions})
        if m == "GET" and p == "/compute/os":
            return json_reply(200, {"os_options": self.os_options})
        if m == "POST" and p == "/compute/provision":
            hours = int(body.get("prepaid_hours") or 24)
            plan = self._plan(str(body.get("plan")))
            if not req.payment:
                return self.challenge(req, self._micros(plan, hours), "Provision a compute instance")
            order = self._new_order(str(uuid.uuid4()), plan=str(body.get("plan")), region=str(body.get("region")), hours=hours, label=body.get("label"))
            self.orders[order["id"]] = order
            return json_reply(201, {"success": True, "order": order, "tx_hash": self._tx(req), **self._management_key(req)})
        mo = re.fullmatch(r"/compute/instances/([^/]+)/extend", p)
        if m == "POST" and mo:
            order = self.orders.get(mo.group(1))
            if order is None:
                return json_reply(404, {"error": "Instance not found"})
            hours = int(body.get("extend_hours") or 24)
            if not req.payment:
                return self.challenge(req, self._micros(self._plan(order["plan"]), hours), "Extend a compute instance")
            old = datetime.fromisoformat(order["expires_at"].replace("Z", "+00:00"))
            order["expires_at"] = iso(old + timedelta(hours=hours))
            return json_reply(200, {"success": True, "order": order, "tx_hash": self._tx(req)})
        if m == "POST" and p == "/compute/credits/topup":
            amount = body.get("amount") or 1
            if not req.payment:
                return self.challenge(req, int(round(float(amount) * 1_000_000)), "Top up credits")
            return json_reply(200, {"success": True, "deposited": amount, "new_balance": f"{float(amount):.2f}", "tx_hash": self._tx(req)})
        if m == "GET" and p == "/compute/instances":
            return json_reply(200, {"instances": list(self.orders.values())})
        mo = re.fullmatch(r"/compute/instances/([^/]+)", p)
        if mo and m in ("GET", "DELETE"):
            order = self.orders.get(mo.group(1))
            if order is None:
                return json_reply(404, {"error": "Instance not found"})
            if m == "DELETE":
                order["destroyed_at"] = iso(datetime.now(timezone.utc))
                order["status"] = "destroyed"
                return json_reply(200, {"success": True, "message": "Instance destroyed"})
            return json_reply(200, {"order": order})
        mo = re.fullmatch(r"/compute/instances/([^/]+)/password", p)
        if m == "POST" and mo:
            order = self.orders.get(mo.group(1))
            if order is None:
                return json_reply(404, {"error": "Instance not found"})
            if order.get("_revealed"):
                return json_reply(409, {"error": "Password already revealed"})
            order["_revealed"] = True
            return json_reply(200, {"success": True, "access": {"method": "one_time_password", "username": "root",
                                                                "ip_address": order.get("ip_address"), "password": "stub-Passw0rd-" + order["id"][:8]}})
        mo = re.fullmatch(r"/compute/instances/([^/]+)/resize", p)
        if m == "POST" and mo:
            order = self.orders.get(mo.group(1))
            if order is None:
                return json_reply(404, {"error": "Instance not found"})
            old_plan, order["plan"] = order["plan"], str(body.get("plan"))
            return json_reply(200, {"provider": "vultr", "from_plan": old_plan, "to_plan": order["plan"], "old_expires_at": order["expires_at"],
                                    "new_expires_at": order["expires_at"], "remaining_credit": 0.2, "remaining_hours_before": 20,
                                    "remaining_hours_after": 10})
        if m == "GET" and p == "/compute/credits/balance":
            return json_reply(200, {"wallet": "0xstub", **self.credits})
        if m == "POST" and p == "/compute/api-keys":
            return json_reply(201, {"api_key": "x402c_" + uuid.uuid4().hex, "id": uuid.uuid4().hex[:12], "label": body.get("label"), "created_at": iso(datetime.now(timezone.utc))})
        if m == "GET" and p == "/compute/api-keys":
            return json_reply(200, {"api_keys": []})
        if m == "DELETE" and p.startswith("/compute/api-keys/"):
            return json_reply(200, {"success": True})
        if m == "POST" and p == "/shared_payment/issued_tokens":  # the Stripe API, for --pay stripe
            with self._lock:
                self.spt_requests.append({k: v[0] for k, v in parse_qs(req.body.decode()).items()})
            return json_reply(200, {"id": "spt_" + uuid.uuid4().hex, "object": "shared_payment.issued_token", "status": "active"})
        if m == "POST" and p == "/rpc":
            return json_reply(200, {"jsonrpc": "2.0", "id": (req.json() or {}).get("id"), "result": "0x2105"})
        return json_reply(404, {"error": f"No route for {m} {p}"})

    @staticmethod
    def _tx(req: Request) -> str:
        return "0x" + hashlib.sha256((req.payment or ("", ""))[1].encode()).hexdigest()

    # -- dispatch ------------------------------------------------------------------------------
    def answer(self, req: Request) -> Reply:
        key = req.headers.get("idempotency-key")
        if key and req.payment and key in self._replays:
            r = self._replays[key]
            return Reply(r.status, r.body, {**r.headers, "Idempotent-Replayed": "true"})
        honest = lambda: self.honest(req)  # noqa: E731
        reply = None
        for o in self._overrides:
            if o.method != req.method or not o.pattern.fullmatch(req.path):
                continue
            if (o.when == "paid" and not req.payment) or (o.when == "unpaid" and req.payment):
                continue
            if o.times is not None and o.used >= o.times:
                continue
            o.used += 1
            reply = o.reply(req, honest) if callable(o.reply) else o.reply
            break
        if reply is None:
            reply = honest()
        if key and req.payment and 200 <= reply.status < 300 and reply.stream is None and reply.raw is None and not reply.drip:
            self._replays[key] = reply
        return reply


class _Handler(BaseHTTPRequestHandler):
    api: HostileAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _handle(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        u = urlsplit(self.path)
        req = Request(self.command, u.path, parse_qs(u.query), {k.lower(): v for k, v in self.headers.items()}, body, time.time())
        with self.api._lock:
            self.api.requests.append(req)
        reply = self.api.answer(req)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

    def _write_slowly(self, data: bytes, interval: float) -> None:
        for i in range(len(data)):
            if self.api._stopping.is_set():
                raise BrokenPipeError
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(interval)

    def _send(self, reply: Reply) -> None:
        if reply.delay:
            time.sleep(reply.delay)
        if reply.reset:
            self.close_connection = True
            try:  # linger 0: close() sends a RST instead of a FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
            except OSError:
                pass
            return
        if reply.raw is not None:
            self.close_connection = True
            self.wfile.write(reply.raw)
            return
        chunked = reply.stream is not None and reply.length is None
        body = b"" if reply.stream is not None else reply.body_bytes()
        head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('Status',))[0]}"]
        headers = {"Date": self.date_time_string(), "Server": "hostile-stub"}
        headers.update(reply.headers)
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        elif "Content-Length" not in headers:
            headers["Content-Length"] = str(reply.length if reply.length is not None else len(body))
        if reply.drip or reply.stream is not None:
            headers["Connection"] = "close"
            self.close_connection = True
        head += [f"{k}: {v}" for k, v in headers.items()]
        head_bytes = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if reply.drip and reply.drip_head:
            self._write_slowly(head_bytes, reply.drip)
        else:
            self.wfile.write(head_bytes)
            self.wfile.flush()
        if reply.stream is not None:
            for chunk in reply.stream:
                if self.api._stopping.is_set():
                    return
                self.wfile.write((b"%x\r\n" % len(chunk) + chunk + b"\r\n") if chunked else chunk)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            return
        if reply.drip:
            self._write_slowly(body, reply.drip)
        else:
            self.wfile.write(body)
        self.wfile.flush()
