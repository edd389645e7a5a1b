"""ComputeClient: one method per endpoint of the compute API.

Management calls carry ``X-API-Key`` or fresh ``X-Auth-*`` headers; paid calls
(provision, extend, credits top-up) are flows from ``payments.flow`` that the commands build and
``drive`` runs.
"""

from __future__ import annotations

import shlex
from typing import Any, Iterable

from .. import cmdline
from ..config import Settings
from ..errors import ComputeError, NetworkError
from ..instances import unwrap_order
from ..money import server_number
from ..plans import PLAN_TYPES
from ..validate import bad_response, server_instance_id
from .auth import Auth, AuthResolver, NoAuth, encode_body
from .http import Response, Transport, api_error

# Catalog numbers every consumer (browse, quotes, the price check, resize, destroy) does
# arithmetic on: checked once, here, as the catalog arrives.
PRICE_FIELDS = ("our_hourly", "our_daily", "our_monthly", "monthly_cost", "vultr_monthly")
SPEC_FIELDS = ("vcpu_count", "ram", "disk", "disk_count", "bandwidth", "gpu_vram_gb")
MAX_PRICE_USD = 1_000_000  # per hour, day or month: far above any machine
MAX_SPEC = 10**9  # MB of RAM, GB of disk or traffic, CPUs


def checked_plan(plan: dict, where: str) -> dict:
    """``plan`` once its numbers are sane (``bad_response`` otherwise): see ``money.server_number``."""
    name = plan.get("id") if isinstance(plan.get("id"), str) and len(plan.get("id")) <= 64 else where
    for key in PRICE_FIELDS:
        server_number(plan.get(key), f"catalog plans[{name}].{key}", maximum=MAX_PRICE_USD)
    for key in SPEC_FIELDS:
        server_number(plan.get(key), f"catalog plans[{name}].{key}", maximum=MAX_SPEC)
    return plan


def _listed(body: dict, key: str) -> list:
    items = body.get(key) or []
    if not isinstance(items, list):
        raise ComputeError(f"The API's {key} is not a list.", code="bad_response", details={"received": type(items).__name__})
    return items


class ComputeClient:
    def __init__(self, settings: Settings, *, transport: Transport | None = None, verbose: bool = False) -> None:
        self.settings = settings
        self.transport = transport or Transport(settings.base_url, timeout=settings.timeout, verbose=verbose, guard=settings.require_secure)
        self.auths = AuthResolver(settings)
        self.auths_used: list[str] = []  # every credential this client sent, in order (the scripts' "auth" field)

    # -- plumbing -----------------------------------------------------------------
    @property
    def auth(self) -> Auth:
        """The account-wide credential (see ``AuthResolver``)."""
        return self.auths.default()

    @property
    def signature_auth(self) -> Auth:
        return self.auths.signature()

    def auth_for_instance(self, instance_id: str) -> Auth:
        return self.auths.for_instance(instance_id)

    def remember_owner(self, instance_id: str, network: str, payer: str) -> None:
        self.auths.remember_owner(instance_id, network, payer)

    def send(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw_body: bytes | None = None,
        auth: Auth | None = None,
        params: dict | None = None,
        headers: dict | None = None,
        retry_reads: bool = True,
    ) -> Response:
        data = raw_body if raw_body is not None else (encode_body(body) if body is not None else None)
        hdrs = dict(headers or {})
        if auth is not None:
            hdrs.update(auth.headers(method, path, data if data is not None else b""))
            if not isinstance(auth, NoAuth) and auth.label not in self.auths_used:
                self.auths_used.append(auth.label)
        return self.transport.request(method, path, body=data, headers=hdrs, params=params, retry_reads=retry_reads)

    def call(self, method: str, path: str, what: str, *, ok: Iterable[int] = (200,), **kw) -> Any:
        resp = self.send(method, path, **kw)
        if resp.status not in tuple(ok):
            err = api_error(resp, what)
            if resp.status in (401, 403) and getattr(kw.get("auth"), "label", None) == "api-key":
                err.hint = self._refused_key_hint()
            raise err
        body = resp.json()
        if body is None and resp.content:
            raise ComputeError(f"{what}: the API answered with something that is not JSON.", code="bad_response", status=resp.status, details=resp.text[:500])
        if body is not None and not isinstance(body, dict):
            raise ComputeError(f"{what}: the API answered with a JSON {type(body).__name__}, not an object.", code="bad_response", status=resp.status, details=resp.text[:500])
        return body if body is not None else {}

    def _refused_key_hint(self) -> str:
        """What to do when the API refuses the configured API key (revoked, or never valid)."""
        src = self.settings.api_key_source or "COMPUTE_API_KEY"
        last4 = (self.settings.api_key or "")[-4:]
        if src in ("COMPUTE_API_KEY", "COMPUTE_API_KEY_FILE"):
            return (f"The API refused the key ...{last4} from {src} (revoked, or not valid here). Unset {src} to sign with the "
                    f"wallet instead, or create a new key ({cmdline.command('create_api_key.py', '--save')}) and use that.")
        return (f"The API refused the saved key ...{last4} ({src}: revoked, or not valid here). Remove it (rm {shlex.quote(src)}) so scripts "
                f"sign with the wallet, or save a new one with {cmdline.command('create_api_key.py', '--save')}.")

    @property
    def auth_used(self) -> str:
        """The scripts' ``auth`` field: the credential(s) the run's requests carried, ``none`` if none
        did (``wallet:base+wallet:solana`` when a listing asked both wallets)."""
        return "+".join(self.auths_used) or "none"

    # -- catalog (public) -------------------------------------------------------
    def plans(self, plan_type: str | None = None) -> list[dict]:
        params = {"type": plan_type} if plan_type else None
        body = self.call("GET", "/compute/plans", "List plans", params=params)
        plans = body.get("plans")
        if plans is not None and not isinstance(plans, list):
            raise ComputeError("List plans: the API's plan list is not a list.", code="bad_response", details={"received": type(plans).__name__})
        return [checked_plan(p, f"#{i}") if isinstance(p, dict) else p for i, p in enumerate(plans or [])]

    def all_plans(self) -> list[dict]:
        """Every plan: the untyped call omits dedicated and GPU plans, so ask per type and merge."""
        seen: dict[str, dict] = {}
        for t in PLAN_TYPES:
            for p in self.plans(t):
                if isinstance(p, dict) and p.get("id"):
                    seen.setdefault(p["id"], p)
        return list(seen.values())

    def plan(self, plan_id: str) -> dict | None:
        for p in self.all_plans():
            if p.get("id") == plan_id:
                return p
        return None

    def regions(self) -> list[dict]:
        return _listed(self.call("GET", "/compute/regions", "List regions"), "regions")

    def os_options(self) -> list[dict]:
        return _listed(self.call("GET", "/compute/os", "List OS images"), "os_options")

    # -- instances ---------------------------------------------------------------
    def list_instances(self) -> list[dict]:
        """Every instance of the configured identities: with raw EVM and Solana keys and no API
        key, each wallet owns what it paid for, so both are asked and the lists merged."""
        seen: dict[str, dict] = {}
        for auth in self.auths.listing():
            body = self.call("GET", "/compute/instances", "List instances", auth=auth)
            items = body.get("instances") or body.get("orders") or []
            if not isinstance(items, list):
                raise ComputeError("List instances: the API's instance list is not a list.", code="bad_response", details={"received": type(items).__name__})
            for i, o in enumerate(items):
                if isinstance(o, dict):
                    # Ids from a listing are copied into commands, URLs and file names.
                    seen.setdefault(server_instance_id(o.get("id"), f"instances[{i}].id"), o)
        return list(seen.values())

    def get_instance(self, instance_id: str) -> dict:
        path = f"/compute/instances/{instance_id}"
        order = unwrap_order(self.call("GET", path, "Get instance", auth=self.auth_for_instance(instance_id)))
        if order.get("id") is not None and server_instance_id(order["id"]) != instance_id.lower():
            raise bad_response("order.id", order["id"], f"the instance asked for ({instance_id})")
        return order

    def destroy_instance(self, instance_id: str) -> dict:
        path = f"/compute/instances/{instance_id}"
        return self.call("DELETE", path, "Destroy instance", auth=self.auth_for_instance(instance_id), retry_reads=False)

    def reveal_password(self, instance_id: str) -> dict:
        path = f"/compute/instances/{instance_id}/password"
        return self.call("POST", path, "Get one-time password", raw_body=b"", auth=self.auth_for_instance(instance_id))

    def resize(self, instance_id: str, plan: str, *, confirm_disk_resize: bool = False) -> dict:
        body: dict[str, Any] = {"plan": plan}
        if confirm_disk_resize:  # omitted when false: cleaner than upstream's always-false
            body["confirm_disk_resize"] = True
        path = f"/compute/instances/{instance_id}/resize"
        return self.call("POST", path, "Resize instance", body=body, auth=self.auth_for_instance(instance_id))

    # -- API keys ------------------------------------------------------------------
    def create_api_key(self, label: str | None = None) -> dict:
        body = {"label": label} if label else None  # upstream sends an empty body without a label
        return self.call("POST", "/compute/api-keys", "Create API key", ok=(200, 201), body=body, raw_body=None if body else b"", auth=self.signature_auth)

    def list_api_keys(self) -> list[dict]:
        return _listed(self.call("GET", "/compute/api-keys", "List API keys", auth=self.auth), "api_keys")

    def revoke_api_key(self, key_id: str) -> dict:
        return self.call("DELETE", f"/compute/api-keys/{key_id}", "Revoke API key", auth=self.signature_auth)

    # -- credits -------------------------------------------------------------------
    def credits_balance(self) -> dict:
        body = self.call("GET", "/compute/credits/balance", "Credits balance", auth=self.auth)
        for key in ("balance", "total_deposited", "total_spent"):
            server_number(body.get(key), f"credits {key}", maximum=MAX_PRICE_USD * 1000)
        return body

    # -- flows: a sans-I/O sequence of requests (the payment flow, a resend) -----------------
    def drive(self, steps: Any) -> Any:
        """Run a flow to its end, the way an httpx client runs an auth flow: send each request it
        yields (``payments.model.Send``) and hand it the answer, or throw the ``NetworkError`` into
        it, until it returns its result. The flow decides every request; the client only sends."""
        try:
            req = next(steps)
            while True:
                try:
                    resp = self.send(req.method, req.path, raw_body=req.body, auth=req.auth, headers=req.headers, retry_reads=req.retry_reads)
                except NetworkError as e:
                    req = steps.throw(e)
                else:
                    req = steps.send(resp)
        except StopIteration as done:
            return done.value
