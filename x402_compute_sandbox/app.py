"""Routes and handlers of the sandbox compute API (compute-api.md, compute-openapi.json).

Order of checks on a paid POST, so that nobody pays for a request that would fail:
    body parses (400) -> auth, if any credentials are sent (401) -> Idempotency-Key replay ->
    request rules (400/404/409) -> payment: credits (402 shortfall) or x402 (402 challenge /
    refusal, 400 undecodable header) -> act -> store the outcome under the Idempotency-Key.

Test/dev extensions (not part of the hosted API):
    GET  /_sandbox/health                       no work at all (benchmark baseline)
    GET  /_sandbox/balance?network=&address=    stablecoin balance on a local chain (atomic units)
    POST /_sandbox/faults {"drop_after_settle": N}
         the next N paid x402 requests settle and act, then the connection is closed unanswered;
         replays of a paid answer (same Idempotency-Key) count too, so N = 2 gives exit 4
    POST /rpc/<network>                         JSON-RPC reads of the local chains (rpc.py)
    POST /_sandbox/instances/<id>/ssh/restart {"new_host_key": true}
         restart one active instance's SSH server, by default with a new host key
"""
from __future__ import annotations

import copy
import os
import re
import sys
import threading
import traceback
from contextlib import nullcontext
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from . import catalog
from . import networks as nets
from .auth import AuthError, Authenticator, Identity, hash_api_key, new_api_key, normalize_wallet
from .payments import Idempotency, Offer, PaymentRefused, Payments, Principal, settled_credential
from .provider import Provider, ProviderError, iso
from .server import ApiError, Request, Response
from .store import InsufficientCredits, Store

MIN_HOURS = 24
MAX_HOURS = 24 * 365 * 10          # a sanity bound, so absurd values are a 400 and not an overflow
MAX_TOPUP_USD = Decimal(1_000_000)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_SSH_KEY = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/=]{16,}( .*)?$")
_NETWORKS = tuple(nets.LABELS)


# --- small validators (each raises a 400 with the offending field) ------------------------------
def _bad(field: str, message: str, **details) -> ApiError:
    return ApiError(400, message, {"field": field, **details})


def _body(req: Request, allow_empty: bool = True) -> dict:
    data = req.json()
    if data is None and allow_empty:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return data


def _opt_str(body: dict, field: str, max_len: int = 255) -> Optional[str]:
    v = body.get(field)
    if v is None:
        return None
    if not isinstance(v, str):
        raise _bad(field, f"`{field}` must be a string")
    if len(v) > max_len:
        raise _bad(field, f"`{field}` is longer than {max_len} characters")
    return v


def _req_str(body: dict, field: str) -> str:
    v = _opt_str(body, field)
    if not v:
        raise _bad(field, f"`{field}` is required")
    return v


def _opt_bool(body: dict, field: str) -> bool:
    v = body.get(field)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(field, f"`{field}` must be a boolean")
    return v


def _hours(body: dict, field: str) -> int:
    v = body.get(field)
    if v is None:
        return MIN_HOURS
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(field, f"`{field}` must be an integer number of hours")
    if v < MIN_HOURS:
        raise _bad(field, f"`{field}` must be at least {MIN_HOURS} (the minimum prepaid period)",
                   minimum=MIN_HOURS, got=v)
    if v > MAX_HOURS:
        raise _bad(field, f"`{field}` must be at most {MAX_HOURS}", maximum=MAX_HOURS, got=v)
    return v


def _network(body: dict) -> Optional[str]:
    v = body.get("network")
    if v is None:
        return None
    if not isinstance(v, str) or v not in _NETWORKS:
        raise _bad("network", "`network` must be one of " + ", ".join(_NETWORKS), accepted=list(_NETWORKS))
    return v


def _ssh_key_blob_ok(line: str) -> bool:
    """The base64 part decodes and starts with the key type the line names (what sshd checks first)."""
    import base64
    import binascii
    kind, blob = line.split()[:2]
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return False
    n = int.from_bytes(raw[:4], "big")
    return len(raw) > 4 + n and raw[4:4 + n] == kind.encode()


def _uuid(value: str, what: str) -> str:
    if not _UUID.match(value):
        raise ApiError(400, f"Invalid {what} id: expected a UUID", {"id": value[:100]})
    return value.lower()


class App:
    def __init__(self, *, facilitator, store: Store, x402_version: int = 1, boot_seconds: float = 3.0,
                 auth_skew_seconds: float = 300.0, resize_seconds: Optional[float] = None, ssh=None):
        self.f = facilitator
        self.store = store
        self._base_url = "http://127.0.0.1:8402"   # set by the runner once the port is bound
        self.auth = Authenticator(store, auth_skew_seconds)
        self.provider = Provider(store, boot_seconds=boot_seconds, resize_seconds=resize_seconds, ssh=ssh)
        self.payments = Payments(facilitator, x402_version=x402_version)
        # MPP (tempo charge) on the same 402s as x402. No Tempo chain runs offline: a ledger that
        # verifies each 0x76 transaction stands in for it (tempo/), funded for the test wallets
        # at genesis and kept in the state folder like the other chains.
        from .mpp import Mpp
        from .tempo import TempoLedger
        state_dir = os.path.dirname(os.path.abspath(store.path))
        self.tempo = TempoLedger(seed=getattr(facilitator, "seed", 0),
                                 state_path=os.path.join(state_dir, "chains", "tempo.sqlite3"))
        self.mpp = Mpp(self.tempo, state_dir=state_dir,
                       recipient=facilitator.payee("base"), realm=urlsplit(self.base_url).netloc, api_keys=store)
        self.payments.hooks.append(self.mpp)
        self.idem = Idempotency(store)
        self._faults_lock = threading.Lock()
        self.drop_after_settle = 0
        from .rpc import Rpc
        self.rpc = Rpc(facilitator)
        self._routes: list[tuple[str, re.Pattern, Callable]] = []
        for method, pattern, fn in [
            ("GET", r"/_sandbox/health", self.health),
            ("GET", r"/_sandbox/balance", self.sandbox_balance),
            ("GET", r"/_sandbox/faults", self.get_faults),
            ("POST", r"/_sandbox/faults", self.set_faults),
            ("POST", r"/_sandbox/instances/([^/]+)/ssh/restart", self.restart_ssh),
            ("POST", r"/rpc/([^/]+)", self.rpc_call),
            ("GET", r"/compute/plans", self.plans),
            ("GET", r"/compute/regions", self.regions),
            ("GET", r"/compute/os", self.os_list),
            ("POST", r"/compute/provision", self.provision),
            ("GET", r"/compute/instances", self.list_instances),
            ("GET", r"/compute/instances/([^/]+)", self.get_instance),
            ("DELETE", r"/compute/instances/([^/]+)", self.destroy),
            ("POST", r"/compute/instances/([^/]+)/password", self.password),
            ("POST", r"/compute/instances/([^/]+)/extend", self.extend),
            ("POST", r"/compute/instances/([^/]+)/resize", self.resize),
            ("POST", r"/compute/api-keys", self.create_api_key),
            ("GET", r"/compute/api-keys", self.list_api_keys),
            ("DELETE", r"/compute/api-keys/([^/]+)", self.revoke_api_key),
            ("GET", r"/compute/credits/balance", self.credits_balance),
            ("POST", r"/compute/credits/topup", self.topup),
        ]:
            self._routes.append((method, re.compile(f"^{pattern}$"), fn))

    @property
    def base_url(self) -> str:
        return self._base_url

    @base_url.setter
    def base_url(self, url: str) -> None:
        # The MPP realm is the host the client talks to; challenges are bound to it.
        self._base_url = url
        if hasattr(self, "mpp"):
            self.mpp.realm = urlsplit(url).netloc

    def start(self) -> None:
        self.provider.start()

    def stop(self) -> None:
        self.provider.stop()
        self.tempo.close()

    # --- dispatch -------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        try:
            path = req.path.rstrip("/") or "/"
            allowed = []
            for method, rx, fn in self._routes:
                m = rx.match(path)
                if m is None:
                    continue
                if method == req.method or (method == "GET" and req.method == "HEAD"):
                    return fn(req, *m.groups())
                allowed.append(method)
            if allowed:
                raise ApiError(405, f"Method {req.method} not allowed on {path}", {"allowed": allowed},
                               headers={"Allow": ", ".join(sorted(set(allowed)))})
            raise ApiError(404, f"No route for {req.method} {path}")
        except ApiError as err:
            return err.response()
        except AuthError as err:
            return ApiError(401, err.message, err.details).response()
        except ProviderError as err:
            return ApiError(err.status, err.message, err.details).response()
        except Exception as exc:  # a bug: still JSON, and logged with its traceback
            traceback.print_exc(file=sys.stderr)
            return ApiError(500, "Internal sandbox error", {"type": type(exc).__name__,
                                                            "message": str(exc)[:300]}).response()

    # --- auth helpers ---------------------------------------------------------------------------
    def _identity(self, req: Request, *, required: bool, signature_only: bool = False) -> Optional[Identity]:
        ident = self.auth.authenticate(req.headers, req.method, req.path, req.body, signature_only=signature_only)
        if ident is None and required:
            if signature_only:
                raise AuthError("Wallet signature auth (X-Auth-* headers) is required")
            raise AuthError("Authentication required: send X-API-Key or signed X-Auth-* headers")
        if ident is not None and signature_only and ident.method != "signature":
            raise AuthError("This endpoint requires wallet signature auth (X-Auth-*), not an API key")
        return ident

    def _own_order(self, order_id: str, ident: Optional[Identity]) -> dict:
        order_id = _uuid(order_id, "instance")
        order = self.provider.get(order_id)
        # Someone else's instance is indistinguishable from a missing one.
        if order is None or (ident is not None and order["owner"] != ident.wallet):
            raise ApiError(404, "Instance not found", {"id": order_id})
        return order

    # --- sandbox extensions ---------------------------------------------------------------------
    def health(self, req: Request) -> Response:
        return Response(200, {"ok": True})

    def sandbox_balance(self, req: Request) -> Response:
        network = (req.query.get("network") or [""])[0]
        address = (req.query.get("address") or [""])[0]
        if network == "tempo":
            from eth_utils import is_address
            from .tempo import DECIMALS, USDC_E
            if not is_address(address):
                raise ApiError(400, "Invalid address for this network", {"reason": "not an EVM address"})
            return Response(200, {"network": "tempo", "address": address, "asset": USDC_E, "decimals": DECIMALS,
                                  "balance": str(self.tempo.balance_of(address))})
        try:
            net = nets.get(network)
        except KeyError:
            raise ApiError(400, "Unknown network", {"network": network, "accepted": list(_NETWORKS) + ["tempo"]})
        if not address:
            raise ApiError(400, "`address` is required")
        try:
            bal = self.f.balance_of(net.label, address)
        except Exception as exc:
            raise ApiError(400, "Invalid address for this network", {"reason": str(exc)[:200]})
        return Response(200, {"network": net.label, "address": address, "asset": net.asset,
                              "decimals": net.decimals, "balance": str(bal)})

    def get_faults(self, req: Request) -> Response:
        return Response(200, {"drop_after_settle": self.drop_after_settle})

    def set_faults(self, req: Request) -> Response:
        body = _body(req)
        n = body.get("drop_after_settle", 0)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise _bad("drop_after_settle", "`drop_after_settle` must be a non-negative integer")
        with self._faults_lock:
            self.drop_after_settle = n
        return Response(200, {"drop_after_settle": n})

    def _take_drop_fault(self) -> bool:
        with self._faults_lock:
            if self.drop_after_settle > 0:
                self.drop_after_settle -= 1
                return True
            return False

    def restart_ssh(self, req: Request, order_id: str) -> Response:
        body = _body(req)
        new_key = body.get("new_host_key", True)
        if not isinstance(new_key, bool):
            raise _bad("new_host_key", "`new_host_key` must be a boolean")
        return Response(200, self.provider.restart_ssh(_uuid(order_id, "instance"), new_host_key=new_key))

    def rpc_call(self, req: Request, network: str) -> Response:
        if network == "tempo":
            return Response(200, self.tempo.handle_http(req.body))
        return self.rpc.handle(network, req)

    # --- catalog --------------------------------------------------------------------------------
    def plans(self, req: Request) -> Response:
        ptype = req.query.get("type", [None])[0]
        if ptype is not None and ptype not in catalog.PLAN_TYPES:
            raise ApiError(400, "`type` must be one of " + ", ".join(catalog.PLAN_TYPES),
                           {"field": "type", "accepted": list(catalog.PLAN_TYPES)})
        plans = catalog.list_plans(ptype)
        return Response(200, {"plans": plans, "count": len(plans)})

    def regions(self, req: Request) -> Response:
        return Response(200, {"regions": catalog.public_regions()})

    def os_list(self, req: Request) -> Response:
        return Response(200, {"os_options": catalog.public_os()})

    # --- paid requests --------------------------------------------------------------------------
    def _paid(self, req: Request, ident: Optional[Identity], *, validate: Callable[[], Any],
              offer: Callable[[Any], Offer], act: Callable[[Any, dict], tuple[Response, Optional[str]]],
              use_credits: Callable[[Any], bool], purpose: str) -> Response:
        key = self.idem.key_of(req)
        principal = Principal(auth=Principal.auth_of(ident))
        with (self.idem.lock(key) if key else nullcontext()):
            if key:
                replay = self.idem.replay(key, req, principal.auth)
                if replay is not None:
                    # A replay of a paid answer is dropped too while faults remain, so N = 2 makes
                    # the client's one automatic resend fail as well: exit 4, then reconcile.py.
                    replay.drop = self._take_drop_fault()
                    return replay
            spec = validate()
            price = offer(spec)
            drop = False
            if use_credits(spec):
                wallet = ident.wallet
                try:
                    self.store.spend(wallet, price.amount_usd_micros)
                except InsufficientCredits as exc:
                    raise ApiError(402, "Insufficient credits", {
                        "balance": catalog.usd_str(exc.balance), "required": catalog.usd_str(exc.required),
                        "shortfall": catalog.usd_str(exc.required - exc.balance)})
                payment = {"method": "credits", "network": None, "tx_hash": None, "payer": wallet,
                           "owner": wallet, "amount_usd_micros": price.amount_usd_micros}
                try:
                    resp, _ = act(spec, payment)
                except BaseException:
                    self.store.refund(wallet, price.amount_usd_micros)   # auto-refund, like production
                    raise
            else:
                try:
                    settled = self.payments.collect(req, price)
                except PaymentRefused as refused:
                    return refused.response
                owner = ident.wallet if ident else normalize_wallet(settled.payer or "")
                payment = {"method": settled.method, "network": settled.network,
                           "tx_hash": settled.transaction, "payer": settled.payer, "owner": owner,
                           "amount_usd_micros": price.amount_usd_micros}
                principal = Principal(auth=principal.auth, payment=settled_credential(req, settled.method),
                                      payer=normalize_wallet(settled.payer) if settled.payer else None)
                try:
                    resp, order_id = act(spec, payment)
                except Exception as exc:
                    # Paid but the action failed: credit the amount, as production does (§3).
                    self.store.deposit(owner, price.amount_usd_micros)
                    self.store.add_payment(tx=settled.transaction, network=settled.network, payer=settled.payer,
                                           amount_atomic=settled.amount_atomic,
                                           amount_usd_micros=price.amount_usd_micros, purpose=purpose + ":credited",
                                           order_id=None, identity=owner)
                    status = exc.status if isinstance(exc, (ApiError, ProviderError)) else 500
                    if not isinstance(exc, (ApiError, ProviderError)):
                        traceback.print_exc(file=sys.stderr)
                    return Response(status, {"error": getattr(exc, "message", str(exc)) or "Action failed after payment",
                                             "details": {"cleanup": "destroyed", "cleanup_error": None,
                                                         "credited": catalog.usd(price.amount_usd_micros)},
                                             "tx_hash": settled.transaction}, dict(settled.response_headers))
                self.store.add_payment(tx=settled.transaction, network=settled.network, payer=settled.payer,
                                       amount_atomic=settled.amount_atomic,
                                       amount_usd_micros=price.amount_usd_micros, purpose=purpose,
                                       order_id=order_id, identity=owner)
                resp.headers.update(settled.response_headers)
                drop = self._take_drop_fault()
            if key:
                self.idem.remember(key, req, resp, principal)
            resp.drop = drop
            return resp

    def provision(self, req: Request) -> Response:
        body = _body(req, allow_empty=False)
        ident = self._identity(req, required=False)

        def validate() -> dict:
            plan_id = _req_str(body, "plan")
            plan = catalog.get_plan(plan_id)
            if plan is None:
                raise _bad("plan", f"Unknown plan {plan_id!r}", hint="GET /compute/plans")
            region_id = _req_str(body, "region")
            if catalog.region(region_id) is None:
                raise _bad("region", f"Unknown region {region_id!r}", hint="GET /compute/regions")
            if region_id not in plan["locations"]:
                raise _bad("region", f"Plan {plan_id} is not available in region {region_id}",
                           locations=plan["locations"])
            if "os_id" not in body:
                raise _bad("os_id", "`os_id` is required")
            os_id = body["os_id"]
            if isinstance(os_id, bool) or not isinstance(os_id, int):
                raise _bad("os_id", "`os_id` must be an integer")
            image = catalog.os_image(os_id)
            if image is None:
                raise _bad("os_id", f"Unknown os_id {os_id}", hint="GET /compute/os")
            if image["provider"] != plan["provider"]:
                raise _bad("os_id", f"os_id {os_id} is a {image['provider']} image; plan {plan_id} runs on "
                                    f"{plan['provider']}", provider=plan["provider"])
            hint = _opt_str(body, "provider")
            if hint is not None and hint not in ("vultr", "digitalocean"):
                raise _bad("provider", "`provider` must be vultr or digitalocean")
            if hint is not None and hint != plan["provider"]:
                raise _bad("provider", f"Plan {plan_id} is a {plan['provider']} plan")
            hours = _hours(body, "prepaid_hours")
            label = _opt_str(body, "label")
            hostname = _opt_str(body, "hostname", 253)
            if hostname is not None and not _HOSTNAME.match(hostname):
                raise _bad("hostname", "`hostname` must be letters, digits, dots and hyphens")
            ssh_key = _opt_str(body, "ssh_public_key", 16 * 1024)
            ssh_key = ssh_key.strip() if ssh_key else None
            if ssh_key and not (_SSH_KEY.match(ssh_key) and _ssh_key_blob_ok(ssh_key)):
                raise _bad("ssh_public_key", "`ssh_public_key` is not an OpenSSH public key line "
                                             "(\"<type> <base64 key> [comment]\", e.g. a .pub file's line)")
            if plan["provider"] == "digitalocean" and not ssh_key:
                raise _bad("ssh_public_key", "DigitalOcean instances require `ssh_public_key`: there is no "
                                             "password fallback on DigitalOcean")
            network = _network(body)
            credits = _opt_bool(body, "use_credits")
            user_data = _opt_str(body, "user_data", 32 * 1024)
            ai, node = body.get("ai_machine"), body.get("deploy_node")
            if ai is not None and node is not None:
                raise _bad("ai_machine", "`ai_machine` and `deploy_node` are mutually exclusive")
            if ai is not None:
                if not isinstance(ai, dict) or not isinstance(ai.get("model_id"), str) or not ai["model_id"]:
                    raise _bad("ai_machine", "`ai_machine` must be {\"model_id\": str, \"mode\": \"private\"}")
                if ai.get("mode") != "private":
                    raise _bad("ai_machine.mode", "`ai_machine.mode` must be \"private\"")
                if credits:
                    raise _bad("use_credits", "use_credits is not supported for ai_machine: private AI "
                                              "machines require an x402 wallet payment")
            if node is not None:
                if not isinstance(node, dict) or not isinstance(node.get("model_id"), str) or not node["model_id"]:
                    raise _bad("deploy_node", "`deploy_node` must be {\"model_id\": str, \"tee_type\"?: str}")
                if "tee_type" in node and not isinstance(node["tee_type"], str):
                    raise _bad("deploy_node.tee_type", "`deploy_node.tee_type` must be a string")
                if credits:
                    raise _bad("use_credits", "deploy_node requires an x402 Solana payment, not credits")
                if ident is not None:
                    _no_stake(ApiError)  # the wallet is known before payment: refused before any
            if credits and ident is None:
                raise AuthError("use_credits requires authentication (X-API-Key or X-Auth-*)")
            return {"plan": plan, "region": region_id, "os_id": os_id, "hours": hours, "label": label,
                    "hostname": hostname, "ssh_key": ssh_key, "network": network, "credits": credits,
                    "user_data": user_data, "ai": ai, "node": node}

        def offer(spec) -> Offer:
            desc = f"Provision {spec['plan']['id']} in {spec['region']} for {spec['hours']}h"
            return Offer(catalog.amount_usd_micros(spec["plan"]["id"], spec["hours"]),
                         self.base_url + "/compute/provision", desc,
                         ["solana"] if spec["node"] else list(_NETWORKS), mpp=not spec["node"])

        def act(spec, payment):
            if spec["node"]:
                _no_stake(ProviderError)  # known only from the payment: refused after it, and credited
            order = self.provider.create(
                owner=payment["owner"], plan_id=spec["plan"]["id"], region=spec["region"], os_id=spec["os_id"],
                hours=spec["hours"], label=spec["label"], hostname=spec["hostname"],
                ssh_public_key=spec["ssh_key"], user_data=spec["user_data"], ai_machine=spec["ai"],
                deploy_node=spec["node"], payment=payment)
            try:
                return build(order, payment)
            except BaseException:
                # The payment is credited by _paid (§3): the half-built VM must not outlive it.
                self.provider.destroy(order)
                raise

        def build(order, payment):
            public = self.provider.public(order)
            if order.get("_ai_api_key"):
                # The AI Machine's API key, shown once: in this answer (and its idempotent replays) only.
                public = copy.deepcopy(public)
                public["metadata"]["ai"]["api_key"] = order["_ai_api_key"]
            body_out = {"success": True, "order": public, "tx_hash": payment["tx_hash"],
                        "payment": {"method": payment["method"], "network": payment["network"],
                                    "amount_usd": catalog.usd(payment["amount_usd_micros"]),
                                    "payer": payment["payer"]}}
            if payment["method"] == "mpp" and ident is None:
                # An MPP payment names no management identity: hand out the one-time key (§3).
                body_out.update(self.mpp.issue_management_key(payment["owner"], order["id"],
                                                              iso(self.provider.clock())))
            return Response(201, body_out), order["id"]

        return self._paid(req, ident, validate=validate, offer=offer, act=act,
                          use_credits=lambda s: s["credits"], purpose="provision")

    def extend(self, req: Request, order_id: str) -> Response:
        order_id = _uuid(order_id, "instance")
        body = _body(req)
        ident = self._identity(req, required=False)

        def validate() -> dict:
            if ident is None and self.mpp.credential_of(req) is not None:
                # Checked before payment: an MPP payment does not say whose instance this is (§4).
                raise AuthError("Extending through MPP requires management auth: send X-API-Key (e.g. the "
                                "management_api_key from an MPP provision) or X-Auth-* headers")
            order = self._own_order(order_id, ident)
            hours = _hours(body, "extend_hours")
            _network(body)
            credits = _opt_bool(body, "use_credits")
            if credits and ident is None:
                raise AuthError("use_credits requires authentication (X-API-Key or X-Auth-*)")
            self.provider.check_extend(order)
            return {"order": order, "hours": hours, "credits": credits}

        def offer(spec) -> Offer:
            o = spec["order"]
            return Offer(catalog.amount_usd_micros(o["plan"], spec["hours"]),
                         f"{self.base_url}/compute/instances/{o['id']}/extend",
                         f"Extend instance {o['id']} ({o['plan']}) by {spec['hours']}h")

        def act(spec, payment):
            res = self.provider.extend(spec["order"], spec["hours"], payment)
            order = res["order"]
            return Response(200, {"success": True, "order": self.provider.public(order),
                                  "tx_hash": payment["tx_hash"], "extended_hours": spec["hours"],
                                  "old_expires_at": res["old_expires_at"], "new_expires_at": order["expires_at"],
                                  "amount_usd": catalog.usd(payment["amount_usd_micros"])}), order["id"]

        return self._paid(req, ident, validate=validate, offer=offer, act=act,
                          use_credits=lambda s: s["credits"], purpose="extend")

    def topup(self, req: Request) -> Response:
        body = _body(req, allow_empty=False)
        ident = self._identity(req, required=False)

        def validate() -> int:
            amount = body.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)):
                raise _bad("amount", "`amount` (USD, a number) is required")
            try:
                usd = Decimal(str(amount))
            except InvalidOperation:
                raise _bad("amount", "`amount` is not a valid number")
            if not usd.is_finite() or usd < 1:
                raise _bad("amount", "`amount` must be at least 1 (USD)", minimum=1)
            if usd > MAX_TOPUP_USD:
                raise _bad("amount", f"`amount` must be at most {MAX_TOPUP_USD}")
            micros = usd * 1_000_000
            if micros != micros.to_integral_value():
                raise _bad("amount", "`amount` has more than 6 decimal places")
            _network(body)
            return int(micros)

        def offer(micros) -> Offer:
            return Offer(micros, self.base_url + "/compute/credits/topup",
                         f"Top up {catalog.usd_str(micros)} USD of compute credits")

        def act(micros, payment):
            balance = self.store.deposit(payment["owner"], micros)
            return Response(200, {"success": True, "wallet": payment["owner"], "deposited": catalog.usd(micros),
                                  "new_balance": catalog.usd_str(balance), "tx_hash": payment["tx_hash"]}), None

        return self._paid(req, ident, validate=validate, offer=offer, act=act,
                          use_credits=lambda s: False, purpose="topup")

    # --- instances ------------------------------------------------------------------------------
    def list_instances(self, req: Request) -> Response:
        ident = self._identity(req, required=True)
        return Response(200, {"instances": [self.provider.public(o) for o in self.provider.list(ident.wallet)]})

    def get_instance(self, req: Request, order_id: str) -> Response:
        ident = self._identity(req, required=True)
        return Response(200, {"order": self.provider.public(self._own_order(order_id, ident))})

    def destroy(self, req: Request, order_id: str) -> Response:
        ident = self._identity(req, required=True)
        order = self.provider.destroy(self._own_order(order_id, ident))
        return Response(200, {"success": True, "message": "Instance destroyed", "id": order["id"],
                              "destroyed_at": order["destroyed_at"], "order": self.provider.public(order)})

    def password(self, req: Request, order_id: str) -> Response:
        ident = self._identity(req, required=True)
        access = self.provider.password(self._own_order(order_id, ident))
        return Response(200, {"success": True, "access": access})

    def resize(self, req: Request, order_id: str) -> Response:
        order_id = _uuid(order_id, "instance")
        body = _body(req, allow_empty=False)
        ident = self._identity(req, required=True)
        order = self._own_order(order_id, ident)
        confirm = _opt_bool(body, "confirm_disk_resize")
        return Response(200, self.provider.resize(order, body.get("plan"), confirm))

    # --- API keys -------------------------------------------------------------------------------
    def create_api_key(self, req: Request) -> Response:
        body = _body(req)
        ident = self._identity(req, required=True, signature_only=True)
        label = _opt_str(body, "label", 100)
        key_id, key = new_api_key()
        created = iso(self.provider.clock())
        self.store.add_api_key(key_id, ident.wallet, hash_api_key(key), key[-4:], label, created)
        return Response(201, {"api_key": key, "id": key_id, "label": label, "key_last4": key[-4:],
                              "created_at": created, "wallet": ident.wallet})

    def list_api_keys(self, req: Request) -> Response:
        ident = self._identity(req, required=True)
        return Response(200, {"api_keys": self.store.api_keys_of(ident.wallet)})

    def revoke_api_key(self, req: Request, key_id: str) -> Response:
        key_id = _uuid(key_id, "API key")
        ident = self._identity(req, required=True, signature_only=True)
        res = self.store.revoke_api_key(key_id, ident.wallet, iso(self.provider.clock()))
        if res is None:
            raise ApiError(404, "API key not found", {"id": key_id})
        return Response(200, {"success": True, **res})

    # --- credits --------------------------------------------------------------------------------
    def credits_balance(self, req: Request) -> Response:
        ident = self._identity(req, required=True)
        c = self.store.credits(ident.wallet)
        return Response(200, {"wallet": ident.wallet, "balance": catalog.usd_str(c["balance"]),
                              "total_deposited": catalog.usd_str(c["deposited"]),
                              "total_spent": catalog.usd_str(c["spent"])})


def _no_stake(error) -> None:
    """The hosted service serves grid nodes (`deploy_node`) only for a wallet with 50,000 SGL staked.
    The sandbox has no staking, so every wallet has none."""
    raise error(403, "deploy_node requires at least 50,000 SGL staked to the paying wallet; this wallet has 0 SGL staked",
                {"field": "deploy_node", "required_stake_sgl": 50000, "staked_sgl": 0})
