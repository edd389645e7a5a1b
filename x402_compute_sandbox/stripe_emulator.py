"""A local emulation of the Stripe API endpoints an MPP `stripe` charge uses, on loopback only.

Two test accounts, each with its own secret key:
    buyer   the agent's account: owns the card PaymentMethod and issues Shared Payment Tokens
            (SPTs) with it. Its key, the PaymentMethod id and this emulator's base URL are what the
            sandbox writes into its env file (STRIPE_SECRET_KEY, STRIPE_PAYMENT_METHOD, STRIPE_API_BASE).
    seller  the sandbox's account: has the business network profile SPTs are granted to, and
            creates the PaymentIntent that spends an SPT (pympp's Stripe server method does that).

Endpoints (form-encoded bodies like Stripe's, `Authorization: Basic base64(key:)` or `Bearer key`):
    POST /v1/shared_payment/issued_tokens          buyer: payment_method, seller_details[network_business_profile],
                                                   usage_limits[currency|max_amount|expires_at]
    GET  /v1/shared_payment/issued_tokens/{spt}    buyer
    GET  /v1/shared_payment/granted_tokens/{spt}   seller (only tokens granted to its profile)
    POST /v1/payment_intents                       seller: amount, currency, confirm, shared_payment_granted_token,
                                                   payment_method_types[i], metadata[k] (+ Idempotency-Key)
    GET  /v1/payment_intents/{pi}                  seller
    GET  /_emulator/requests                       every request served (method, path, status, account): for tests

What is checked, with Stripe-shaped errors (`{"error": {type, code, message, param}}`):
    - the secret key names an account (401 otherwise; the key is never echoed, only its last 4);
    - an SPT is issued only for a PaymentMethod of the calling account, to a known network profile,
      for a supported currency, a positive whole max_amount (minor units) and a future expiry;
    - a PaymentIntent may spend an SPT only when the SPT was granted to the caller's profile, is
      active (not consumed, revoked or expired), is in the same currency, and the amount is a
      positive whole number no larger than the SPT's max_amount; confirm=true charges it at once;
    - single use: a successful PaymentIntent consumes its SPT, so a second PaymentIntent with it is
      refused (`shared_payment_token_consumed`); the same Idempotency-Key with the same parameters
      replays the first answer with `Idempotent-Replayed: true` (what pympp treats as a replay),
      with other parameters it is refused (`idempotency_error`).

Accounts, keys and ids are random per state folder; the keys persist (0600) so an env file stays
valid across restarts. Tokens and PaymentIntents live in memory: after a restart an old SPT is
unknown, and the sandbox itself remembers which challenges were paid (stripe_mpp.py).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl, urlsplit

MAX_BODY = 64 * 1024
CURRENCIES = ("usd",)
MAX_AMOUNT = 99_999_999           # Stripe's limit for one charge in minor units (999,999.99 USD)
_ID = re.compile(r"^[A-Za-z0-9_]{1,128}$")


def _rand(prefix: str, n: int = 24) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


class StripeError(Exception):
    def __init__(self, status: int, message: str, *, code: Optional[str] = None, param: Optional[str] = None,
                 type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type_

    def body(self) -> dict:
        err = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
        if self.param:
            err["param"] = self.param
        return {"error": err}


def load_accounts(state_dir: str) -> dict:
    """The two test accounts of this state folder, created once (0600)."""
    path = os.path.join(state_dir, "stripe-accounts.json")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        os.chmod(path, 0o600)
        if all(isinstance(data.get(k), str) for k in ("buyer_key", "seller_key", "payment_method", "network_id")):
            return data
    except FileNotFoundError:
        pass
    except (OSError, ValueError):
        raise RuntimeError(f"{path} is not a valid emulator accounts file; delete it to have a new one made")
    data = {"buyer_key": _rand("sk_test_", 48), "seller_key": _rand("sk_test_", 48),
            "payment_method": _rand("pm_"), "network_id": _rand("profile_test_", 32)}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return data


class StripeState:
    """The emulated accounts and objects, and the rules above. Thread-safe (one lock)."""

    def __init__(self, accounts: dict, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.keys = {accounts["buyer_key"]: "acct_buyer", accounts["seller_key"]: "acct_seller"}
        self.network_id = accounts["network_id"]
        self.profiles = {accounts["network_id"]: "acct_seller"}
        self.payment_methods = {accounts["payment_method"]: {
            "id": accounts["payment_method"], "object": "payment_method", "type": "card", "account": "acct_buyer",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}}}
        self.tokens: dict[str, dict] = {}
        self.intents: dict[str, dict] = {}
        self.idem: dict[tuple, tuple] = {}
        self.requests: list[dict] = []
        self._lock = threading.Lock()

    # --- auth -------------------------------------------------------------------------------------
    def account(self, authorization: Optional[str]) -> str:
        scheme, _, value = (authorization or "").strip().partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[0]
            except (binascii.Error, ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise StripeError(401, "You did not provide an API key. Provide your secret key with Basic or Bearer auth.")
        acct = self.keys.get(key)
        if acct is None:
            raise StripeError(401, f"Invalid API Key provided: {key[:8]}****{key[-4:]}" if len(key) > 12
                              else "Invalid API Key provided.", code="api_key_invalid")
        return acct

    # --- shared payment tokens ----------------------------------------------------------------------
    def issue_token(self, acct: str, form: dict) -> dict:
        pm_id = _required(form, "payment_method")
        pm = self.payment_methods.get(pm_id)
        if pm is None or pm["account"] != acct:
            raise StripeError(400, f"No such PaymentMethod: '{pm_id[:64]}'", code="resource_missing", param="payment_method")
        profile = _required(form, "seller_details[network_business_profile]")
        if profile not in self.profiles:
            raise StripeError(400, f"No such business network profile: '{profile[:64]}'", code="resource_missing",
                              param="seller_details[network_business_profile]")
        currency = _required(form, "usage_limits[currency]")
        if currency not in CURRENCIES:
            raise StripeError(400, f"Invalid currency: {currency[:16]}", code="parameter_invalid_string",
                              param="usage_limits[currency]")
        max_amount = _int(form, "usage_limits[max_amount]", 1, MAX_AMOUNT)
        now = int(self.clock())
        expires_at = _int(form, "usage_limits[expires_at]", now + 1, now + 366 * 86400) \
            if "usage_limits[expires_at]" in form else now + 3600
        spt = {"id": _rand("spt_"), "object": "shared_payment.issued_token", "livemode": False, "created": now,
               "payment_method": pm_id, "seller_details": {"network_business_profile": profile, "external_id": None},
               "usage_limits": {"currency": currency, "max_amount": max_amount, "expires_at": expires_at},
               "usage_details": {"amount_captured": {"value": 0, "currency": currency}},
               "status": "active", "deactivated_at": None, "deactivated_reason": None, "_issuer": acct}
        self.tokens[spt["id"]] = spt
        return spt

    def _token_status(self, spt: dict) -> dict:
        if spt["status"] == "active" and self.clock() >= spt["usage_limits"]["expires_at"]:
            spt.update(status="deactivated", deactivated_at=int(self.clock()), deactivated_reason="expired")
        return spt

    def get_token(self, acct: str, spt_id: str, *, granted: bool) -> dict:
        spt = self.tokens.get(spt_id)
        owner = self.profiles.get(spt["seller_details"]["network_business_profile"]) if spt and granted \
            else (spt or {}).get("_issuer")
        if spt is None or owner != acct:
            raise StripeError(404, f"No such shared payment token: '{spt_id[:64]}'", code="resource_missing")
        out = dict(self._token_status(spt), object="shared_payment.granted_token" if granted else spt["object"])
        return out

    # --- payment intents ----------------------------------------------------------------------------
    def create_intent(self, acct: str, form: dict) -> dict:
        amount = _int(form, "amount", 1, MAX_AMOUNT)
        currency = _required(form, "currency")
        if currency not in CURRENCIES:
            raise StripeError(400, f"Invalid currency: {currency[:16]}", code="parameter_invalid_string", param="currency")
        spt_id = _required(form, "shared_payment_granted_token")
        spt = self.tokens.get(spt_id)
        if spt is None or self.profiles.get(spt["seller_details"]["network_business_profile"]) != acct:
            raise StripeError(400, f"No such shared payment token: '{spt_id[:64]}'", code="resource_missing",
                              param="shared_payment_granted_token")
        self._token_status(spt)
        if spt["status"] != "active":
            reason = spt["deactivated_reason"]
            raise StripeError(400, f"This shared payment token can no longer be used ({reason}).",
                              code=f"shared_payment_token_{reason}", param="shared_payment_granted_token")
        limits = spt["usage_limits"]
        if currency != limits["currency"]:
            raise StripeError(400, f"The shared payment token is limited to {limits['currency']}, not {currency}.",
                              code="shared_payment_token_currency_mismatch", param="currency")
        if amount > limits["max_amount"]:
            raise StripeError(400, f"The amount {amount} exceeds the shared payment token's max_amount "
                                   f"{limits['max_amount']}.", code="shared_payment_token_amount_exceeded", param="amount")
        pm = self.payment_methods[spt["payment_method"]]
        types = [v for k, v in sorted(form.items()) if re.fullmatch(r"payment_method_types\[\d+\]", k)] or ["card"]
        if pm["type"] not in types:
            raise StripeError(400, f"The shared payment token's payment method is a {pm['type']}, not one of "
                                   f"{', '.join(types)}.", code="payment_method_invalid_parameter",
                              param="payment_method_types")
        confirm = form.get("confirm") == "true"
        now = int(self.clock())
        pi = {"id": _rand("pi_"), "object": "payment_intent", "amount": amount, "amount_received": 0,
              "currency": currency, "livemode": False, "created": now, "payment_method": pm["id"],
              "payment_method_types": types, "shared_payment_granted_token": spt_id,
              "metadata": {k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[") and k.endswith("]")},
              "status": "requires_confirmation", "_account": acct}
        if confirm:
            # A test card always succeeds: the charge is captured and the token is used up.
            pi.update(status="succeeded", amount_received=amount)
            spt["usage_details"]["amount_captured"]["value"] += amount
            spt.update(status="deactivated", deactivated_at=now, deactivated_reason="consumed")
        self.intents[pi["id"]] = pi
        return pi

    def get_intent(self, acct: str, pi_id: str) -> dict:
        pi = self.intents.get(pi_id)
        if pi is None or pi["_account"] != acct:
            raise StripeError(404, f"No such payment_intent: '{pi_id[:64]}'", code="resource_missing")
        return pi

    # --- dispatch -----------------------------------------------------------------------------------
    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, dict, dict]:
        """(status, JSON body, extra headers) for one request; records it in `requests`."""
        acct = None
        status, out, extra = 500, {}, {}
        try:
            if method == "GET" and path == "/_emulator/requests":
                with self._lock:
                    return 200, {"requests": list(self.requests), "count": len(self.requests)}, {}
            acct = self.account(headers.get("Authorization"))
            form = _form(body)
            with self._lock:
                status, out, extra = self._route(acct, method, path, headers, form, body)
        except StripeError as err:
            status, out = err.status, err.body()
        finally:
            if path != "/_emulator/requests":
                with self._lock:
                    self.requests.append({"method": method, "path": path, "status": status, "account": acct,
                                          "time": self.clock()})
        return status, _public(out), extra

    def _route(self, acct, method, path, headers, form, body) -> tuple[int, dict, dict]:
        m = re.fullmatch(r"/v1/(shared_payment/issued_tokens|shared_payment/granted_tokens|payment_intents)(?:/([^/]+))?", path)
        if m is None:
            raise StripeError(404, f"Unrecognized request URL ({method}: {path[:100]}).")
        kind, obj_id = m.groups()
        if obj_id is not None and not _ID.match(obj_id):
            raise StripeError(404, "Invalid object id.", code="resource_missing")
        if method == "GET" and obj_id:
            if kind == "payment_intents":
                return 200, self.get_intent(acct, obj_id), {}
            return 200, self.get_token(acct, obj_id, granted=kind.endswith("granted_tokens")), {}
        if method != "POST" or obj_id is not None or kind == "shared_payment/granted_tokens":
            raise StripeError(404, f"Unrecognized request URL ({method}: {path[:100]}).")
        key = headers.get("Idempotency-Key")
        fingerprint = hashlib.sha256(path.encode() + b"\n" + body).hexdigest()
        if key:
            seen = self.idem.get((acct, key))
            if seen is not None:
                if seen[0] != fingerprint:
                    raise StripeError(400, "Keys for idempotent requests can only be used with the same parameters "
                                           "they were first used with.", type_="idempotency_error")
                return seen[1], seen[2], {"Idempotent-Replayed": "true"}
        if kind == "payment_intents":
            status, out = 200, self.create_intent(acct, form)
        else:
            status, out = 200, self.issue_token(acct, form)
        if key:
            self.idem[(acct, key)] = (fingerprint, status, out)
        return status, out, {"Idempotency-Key": key} if key else {}


def _public(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def _form(body: bytes) -> dict:
    if len(body) > MAX_BODY:
        raise StripeError(400, "Request body too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise StripeError(400, "The request body is not application/x-www-form-urlencoded.")
    return dict(pairs)


def _required(form: dict, name: str) -> str:
    value = form.get(name)
    if not value:
        raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
    return value


def _int(form: dict, name: str, lo: int, hi: int) -> int:
    value = _required(form, name)
    if not re.fullmatch(r"[0-9]{1,12}", value) or not lo <= int(value) <= hi:
        raise StripeError(400, f"Invalid integer: {name} must be a whole number from {lo} to {hi}.",
                          code="parameter_invalid_integer", param=name)
    return int(value)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-emulator"

    def log_message(self, fmt, *args):  # requests are recorded in the state, not printed
        pass

    def _serve(self, method: str) -> None:
        length = self.headers.get("Content-Length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            self._send(413, StripeError(413, "Request body too large.").body(), {})
            return
        body = self.rfile.read(int(length)) if length else b""
        status, out, extra = self.server.state.handle(method, urlsplit(self.path).path, self.headers, body)
        self._send(status, out, extra)

    def _send(self, status: int, out: dict, extra: dict) -> None:
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", _rand("req_", 14))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")


class StripeEmulator:
    """The emulation served on 127.0.0.1 (an ephemeral port) in a background thread."""

    def __init__(self, state_dir: str, *, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.time):
        from .server import is_loopback
        if not is_loopback(host):
            raise ValueError(f"refusing to bind {host!r}: the Stripe emulator listens on loopback only")
        self.accounts = load_accounts(state_dir)
        self.state = StripeState(self.accounts, clock)
        self.httpd = ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state
        h, p = self.httpd.server_address[:2]
        self.origin = f"http://{h}:{p}"
        self.api_base = self.origin + "/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="stripe-emulator", daemon=True)
        self._thread.start()

    @property
    def seller_key(self) -> str:
        return self.accounts["seller_key"]

    @property
    def network_id(self) -> str:
        return self.accounts["network_id"]

    def env(self) -> dict:
        """What a client needs to pay with the buyer's test card through this emulation."""
        return {"STRIPE_SECRET_KEY": self.accounts["buyer_key"], "STRIPE_PAYMENT_METHOD": self.accounts["payment_method"],
                "STRIPE_API_BASE": self.api_base}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
