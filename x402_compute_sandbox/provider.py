"""Provider emulation: instance lifecycle, provider rules, and each instance's SSH server on loopback.

Lifecycle (time-driven; `refresh` applies it on every read and a ticker thread applies it in the
background so listeners open on time even when nobody is polling):

    Vultr:  status pending/power stopped/server none -> (half the boot time) pending/running/
            installingbooting -> (boot time) active/running/ok, ip_address and ssh_port set
    DO:     status new -> active (locked false)
    resize: Vultr status "resizing" (server_status locked); DO status "off", locked true and the
            listener closed (DigitalOcean powers droplets off to resize); back to active afterwards
    expiry: at expires_at the status becomes "expired" and the listener closes
    destroy: status "destroyed", destroyed_at set, listener closed; the record stays listed

Instance addresses are loopback only: 127.0.<n>.<m>, unique per instance (127.0.0.1 if binding
that address fails). `ssh_port` is an extension: the hosted service implies port 22.

Each active instance runs a real SSH server (ssh.py) in `<state-dir>/instances/<id>/`: it accepts
the provision's public key and, on Vultr, the one-time password once revealed (only its salted
SHA-256 is kept). Extension fields of the order: `ssh_host_key_fingerprint` (OpenSSH
`SHA256:...`), `ssh_host_key_type` and `ssh_host_public_key` (the known_hosts form); they are
null until the instance first becomes active. Destroy and expiry close the server and delete
the instance folder.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
import string
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Optional

from . import catalog
from .llm import DEFAULT_PORT as LLM_PORT, LlmServers
from .ssh import InstanceSpec, SshServers


class ProviderError(Exception):
    """A rule refused the action; answered with `status` and this message."""

    def __init__(self, status: int, message: str, details: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details or {}


def iso(ts: Optional[float]) -> Optional[str]:
    """ISO 8601 UTC with a `Z` and millisecond precision."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(round(ts * 1000)) % 1000:03d}Z"


def _round_cents(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


class Provider:
    def __init__(self, store, *, boot_seconds: float = 3.0, resize_seconds: Optional[float] = None,
                 clock=time.time, ssh: Optional[SshServers] = None, llm: Optional[LlmServers] = None):
        self.store = store
        self.instances_dir = os.path.join(os.path.dirname(os.path.abspath(store.path)), "instances")
        self.boot_seconds = max(0.0, float(boot_seconds))
        self.resize_seconds = self.boot_seconds if resize_seconds is None else float(resize_seconds)
        self.clock = clock
        self._lock = threading.RLock()
        self.ssh = ssh or SshServers()
        self.llm = llm or LlmServers()
        # order id -> when its next time-driven transition is due; the ticker touches only those
        # that are due, so a sandbox with many running instances does not re-read them all.
        self._due: dict[str, float] = {}
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None

    # --- background -----------------------------------------------------------------------------
    def start(self) -> None:
        """Reopen listeners of instances that were active before a restart; start the ticker."""
        with self._lock:
            for order in self.store.all_orders():
                if order["status"] in ("destroyed", "expired"):
                    continue
                if order.get("_listening"):
                    order["_listening"] = False
                    self._open_listener(order)
                    self.store.put_order(order)
                self.refresh(order)
        self._ticker = threading.Thread(target=self._tick_loop, name="sandbox-provider", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker:
            self._ticker.join(timeout=2)
        self.ssh.shutdown()
        self.llm.shutdown()

    def _tick_loop(self) -> None:
        while not self._stop.wait(0.05):
            try:
                now = self.clock()
                for oid, due in list(self._due.items()):
                    if due > now:
                        continue
                    with self._lock:
                        order = self.store.get_order(oid)
                        if order is not None:
                            self.refresh(order)
            except Exception as exc:  # a ticker crash would freeze every instance; log and go on
                print(f"sandbox provider ticker: {exc!r}", file=sys.stderr)

    # --- state machine --------------------------------------------------------------------------
    def _open_listener(self, order: dict, new_host_key: bool = False) -> None:
        oid = order["id"]
        pw_check = None
        if order["provider"] == "vultr":
            pw_check = lambda pw: self.check_password(oid, pw)  # noqa: E731
        spec = InstanceSpec(instance_id=oid, folder=os.path.join(self.instances_dir, oid),
                            authorized_key=order.get("_ssh_public_key"), check_password=pw_check)
        try:
            ip, port, key = self.ssh.open(spec, order.get("_ip") or "127.0.0.1", order.get("ssh_port") or 0,
                                          new_host_key=new_host_key)
        except OSError as exc:
            raise ProviderError(503, f"could not start the instance's SSH server: {exc}")
        order.update(ip_address=ip, ssh_port=port, _listening=True, ssh_host_key_fingerprint=key.fingerprint,
                     ssh_host_key_type=key.key_type, ssh_host_public_key=key.public_line)
        ai = order.get("metadata", {}).get("ai")
        if ai is not None and order.get("_ai_api_key"):
            # The model server on the instance's own address: port 8080 when it is free there (another
            # sandbox may hold 127.0.x.y:8080 on a shared machine), else any port; metadata.ai says which.
            try:
                ai["port"] = self.llm.open(oid, ip, ai.get("port") or LLM_PORT, api_key=order["_ai_api_key"],
                                           model_id=ai["model_id"])
            except OSError as exc:
                self.ssh.close(oid)
                order["_listening"] = False
                raise ProviderError(503, f"could not start the instance's model server: {exc}")

    def _close_listener(self, order: dict, remove: bool = False) -> None:
        """Stop the SSH server (connections and commands end); `remove` also deletes the instance
        folder (host key and scratch files), as destroy and expiry do."""
        self.ssh.close(order["id"])
        self.llm.close(order["id"])
        order["_listening"] = False
        if remove:
            shutil.rmtree(os.path.join(self.instances_dir, order["id"]), ignore_errors=True)

    def check_password(self, order_id: str, password: str) -> bool:
        """The instance's revealed one-time password (the SSH server asks, on its own thread)."""
        order = self.store.get_order(order_id)
        rec = (order or {}).get("_password_hash")
        if not rec or order["status"] in ("destroyed", "expired"):
            return False
        digest = hashlib.sha256(bytes.fromhex(rec["salt"]) + password.encode("utf-8", "surrogateescape")).hexdigest()
        return hmac.compare_digest(digest, rec["sha256"])

    def restart_ssh(self, order_id: str, new_host_key: bool = True) -> dict:
        """Test-only: restart one active instance's SSH server, by default with a new host key."""
        with self._lock:
            order = self.store.get_order(order_id)
            if order is None:
                raise ProviderError(404, "Instance not found", {"id": order_id})
            order = self.refresh(order)
            if not order.get("_listening"):
                raise ProviderError(409, f"The instance's SSH server is not running (status: {order['status']})",
                                    {"status": order["status"]})
            before = order.get("ssh_host_key_fingerprint")
            self._close_listener(order)
            self._open_listener(order, new_host_key=new_host_key)
            self.store.put_order(order)
            return {"id": order["id"], "ip_address": order["ip_address"], "ssh_port": order["ssh_port"],
                    "previous_host_key_fingerprint": before,
                    "ssh_host_key_fingerprint": order["ssh_host_key_fingerprint"],
                    "ssh_host_key_type": order["ssh_host_key_type"],
                    "ssh_host_public_key": order["ssh_host_public_key"]}

    def refresh(self, order: dict) -> dict:
        """Apply every time-based transition that is due; persist when something changed."""
        with self._lock:
            now = self.clock()
            before = dict(order)
            vultr = order["provider"] == "vultr"
            st = order["status"]
            if st in ("destroyed", "expired"):
                self._due.pop(order["id"], None)
                return order
            if now >= order["_expires"]:
                self._close_listener(order, remove=True)
                order.update(status="expired", vultr_status="expired", power_status="stopped")
                if vultr:
                    order["server_status"] = "none"
                else:
                    order["locked"] = False
                order["_resize_until"] = None
            elif st in ("pending", "new"):
                if now >= order["_boot_at"]:
                    self._activate(order)
                elif vultr and now >= order["_created"] + self.boot_seconds / 2:
                    order.update(power_status="running", server_status="installingbooting")
            elif order.get("_resize_until") is not None and now >= order["_resize_until"]:
                order["_resize_until"] = None
                self._activate(order)
            if order != before:
                self.store.put_order(order)
            self._schedule(order)
            return order

    def _schedule(self, order: dict) -> None:
        if order["status"] in ("destroyed", "expired"):
            self._due.pop(order["id"], None)
            return
        times = [order["_expires"]]
        if order["status"] in ("pending", "new"):
            times.append(order["_boot_at"])
            if order["provider"] == "vultr" and order.get("server_status") == "none":
                times.append(order["_created"] + self.boot_seconds / 2)
        if order.get("_resize_until") is not None:
            times.append(order["_resize_until"])
        self._due[order["id"]] = min(times)

    def _activate(self, order: dict) -> None:
        order.update(status="active", vultr_status="active", power_status="running")
        if order["provider"] == "vultr":
            order["server_status"] = "ok"
        else:
            order["locked"] = False
        if not order.get("_listening"):
            self._open_listener(order)
        order["vultr_v6_main_ip"] = "::1"
        ai = order.get("metadata", {}).get("ai")
        if ai is not None:
            ai["endpoint"] = f"http://{order['ip_address']}:{ai['port']}/v1"

    # --- queries --------------------------------------------------------------------------------
    def get(self, order_id: str) -> Optional[dict]:
        with self._lock:
            order = self.store.get_order(order_id)
            return self.refresh(order) if order else None

    def list(self, owner: str) -> list[dict]:
        with self._lock:
            return [self.refresh(o) for o in self.store.orders_of(owner)]

    @staticmethod
    def public(order: dict) -> dict:
        return {k: v for k, v in order.items() if not k.startswith("_")}

    # --- actions --------------------------------------------------------------------------------
    def create(self, *, owner: str, plan_id: str, region: str, os_id: int, hours: int,
               label: Optional[str], hostname: Optional[str], ssh_public_key: Optional[str],
               user_data: Optional[str], ai_machine: Optional[dict], deploy_node: Optional[dict],
               payment: dict) -> dict:
        plan = catalog.get_plan(plan_id)
        now = self.clock()
        n = self.store.next_counter("instance_address")
        # 127.0.<1..255>.<1..254>: never 127.0.0.x, which belongs to the sandbox itself.
        ip = f"127.0.{1 + (n - 1) // 254 % 255}.{1 + (n - 1) % 254}"
        vultr = plan["provider"] == "vultr"
        oid = str(uuid.uuid4())
        order = {
            "id": oid, "label": label if label is not None else "x402-instance",
            "hostname": hostname or (label if label and _hostname_ok(label) else f"x402-{oid[:8]}"),
            "plan": plan_id, "vultr_plan": plan_id, "region": region, "vultr_region": region,
            "provider": plan["provider"], "os_id": os_id,
            "os": (catalog.os_image(os_id) or {}).get("name"), "vultr_ram": plan["ram"],
            "status": "pending" if vultr else "new", "vultr_status": "pending" if vultr else "new",
            "power_status": "stopped",
            "ip_address": "0.0.0.0", "vultr_v6_main_ip": "", "ssh_port": None,
            "vultr_instance_id": str(uuid.uuid4()) if vultr else str(400_000_000 + n),
            "created_at": iso(now), "expires_at": iso(now + hours * 3600), "destroyed_at": None,
            "prepaid_hours": hours, "payment_amount": catalog.usd(payment["amount_usd_micros"]),
            "payment_method": payment["method"], "payment_network": payment.get("network"),
            "tx_hash": payment.get("tx_hash"), "wallet_address": owner,
            "access_method": "ssh_key" if ssh_public_key else "one_time_password_fallback",
            "ssh_host_key_fingerprint": None, "ssh_host_key_type": None, "ssh_host_public_key": None,
            "metadata": {},
            "owner": owner, "_created": now, "_boot_at": now + self.boot_seconds,
            "_expires": now + hours * 3600, "_ip": ip, "_listening": False,
            "_password_revealed": False, "_resize_until": None,
            "_paid_micros": payment["amount_usd_micros"], "_user_data": user_data,
            "_ssh_public_key": ssh_public_key,
        }
        if vultr:
            order["server_status"] = "none"
        else:
            order["locked"] = False
        if ai_machine:
            # The key is shown once, in the provision answer (app.provision adds it there); the
            # order's public record carries model, port and endpoint only.
            order["_ai_api_key"] = "sk-" + secrets.token_hex(16)
            order["metadata"]["ai"] = {
                "model_id": ai_machine["model_id"], "port": LLM_PORT,
                "endpoint": None,  # http://<ip>:<port>/v1 once the machine has an address
            }
        if deploy_node:
            order["metadata"]["node"] = {k: deploy_node[k] for k in ("model_id", "tee_type") if k in deploy_node}
        with self._lock:
            self.store.put_order(order)
            self.refresh(order)
        return order

    def _manageable(self, order: dict) -> None:
        if order["status"] == "destroyed":
            raise ProviderError(409, "Instance has been destroyed", {"destroyed_at": order["destroyed_at"]})
        if order["status"] == "expired":
            raise ProviderError(409, "Instance has expired", {"expires_at": order["expires_at"]})

    def check_extend(self, order: dict) -> None:
        self._manageable(order)

    def extend(self, order: dict, hours: int, payment: dict) -> dict:
        """New expiry = old expiry + hours (the prepaid time adds on, whatever the current time)."""
        with self._lock:
            order = self.refresh(self.store.get_order(order["id"]))
            self._manageable(order)
            old = order["expires_at"]
            order["_expires"] += hours * 3600
            order["expires_at"] = iso(order["_expires"])
            order["prepaid_hours"] += hours
            order["_paid_micros"] += payment["amount_usd_micros"]
            order["payment_amount"] = catalog.usd(order["_paid_micros"])
            order["tx_hash"] = payment.get("tx_hash") or order.get("tx_hash")
            self.store.put_order(order)
            return {"order": order, "old_expires_at": old}

    def destroy(self, order: dict) -> dict:
        with self._lock:
            order = self.refresh(self.store.get_order(order["id"]))
            if order["status"] == "destroyed":
                raise ProviderError(409, "Instance already destroyed", {"destroyed_at": order["destroyed_at"]})
            self._close_listener(order, remove=True)
            order.update(status="destroyed", vultr_status="destroyed", power_status="stopped",
                         destroyed_at=iso(self.clock()), _resize_until=None)
            if order["provider"] == "vultr":
                order["server_status"] = "none"
            else:
                order["locked"] = False
            self._due.pop(order["id"], None)
            self.store.put_order(order)
            return order

    def password(self, order: dict) -> dict:
        with self._lock:
            order = self.refresh(self.store.get_order(order["id"]))
            self._manageable(order)
            if order["provider"] != "vultr":
                raise ProviderError(400, "DigitalOcean instances have no one-time password; "
                                         "they are reachable only with the SSH key given at provision")
            if order["_password_revealed"]:
                raise ProviderError(409, "The one-time password was already revealed; it is not stored "
                                         "and cannot be shown again (redeploy to get a new one)")
            alphabet = string.ascii_letters + string.digits + "-_@#%"
            pw = "".join(secrets.choice(alphabet) for _ in range(20))
            order["_password_revealed"] = True
            # Only a salted SHA-256 is kept, for the SSH server (20 random characters: ~118 bits).
            salt = secrets.token_bytes(16)
            order["_password_hash"] = {"salt": salt.hex(), "sha256": hashlib.sha256(salt + pw.encode()).hexdigest()}
            self.store.put_order(order)
            return {"method": "one_time_password", "username": "root",
                    "ip_address": order["ip_address"], "password": pw}

    def check_resize(self, order: dict, target_id, confirm_disk: bool) -> dict:
        """Validate a resize; returns the target plan. Raises ProviderError (400 or 409)."""
        self._manageable(order)
        if not isinstance(target_id, str) or not target_id:
            raise ProviderError(400, "`plan` (target plan id) is required")
        target = catalog.get_plan(target_id)
        if target is None:
            raise ProviderError(400, f"Unknown plan {target_id!r}")
        cur = catalog.get_plan(order["plan"])
        if target["id"] == cur["id"]:
            raise ProviderError(400, "The instance already runs this plan")
        if target["provider"] != cur["provider"]:
            raise ProviderError(400, "Resize must stay on the same provider",
                                {"from_provider": cur["provider"], "to_provider": target["provider"]})
        if order["region"] not in target["locations"]:
            raise ProviderError(400, f"Plan {target_id} is not available in region {order['region']}",
                                {"locations": target["locations"]})
        if order["status"] != "active" or order.get("_resize_until") is not None:
            msg = ("A resize is already in progress" if order.get("_resize_until") is not None
                   else f"Instance must be active to resize (status: {order['status']})")
            raise ProviderError(409, msg, {"status": order["status"]})
        if cur["provider"] == "vultr":
            if target["type"] != cur["type"]:
                raise ProviderError(400, "Unsupported resize target: Vultr resizes within a plan family",
                                    {"from_type": cur["type"], "to_type": target["type"]})
            if (target["vcpu_count"] < cur["vcpu_count"] or target["ram"] < cur["ram"]
                    or target["disk"] < cur["disk"]):
                raise ProviderError(400, "Downgrading is not supported")
        else:
            if target["disk"] < cur["disk"]:
                raise ProviderError(400, "A DigitalOcean disk cannot be decreased",
                                    {"from_disk_gb": cur["disk"], "to_disk_gb": target["disk"]})
            if target["disk"] > cur["disk"] and confirm_disk is not True:
                raise ProviderError(400, "This resize grows the disk, which is permanent on DigitalOcean; "
                                         "resend with confirm_disk_resize: true",
                                    {"from_disk_gb": cur["disk"], "to_disk_gb": target["disk"]})
        return target

    def resize(self, order: dict, target_id: str, confirm_disk: bool) -> dict:
        """Resize in place, keeping the remaining prepaid dollars:

            hours_left       = (expires_at - now) / 3600                  -> remaining_hours_before
            remaining_credit = round(hours_left × old_hourly, 2, half-up) -> USD
            hours_after      = remaining_credit / new_hourly              -> remaining_hours_after
            new_expires_at   = now + hours_after

        Hourly rates are the catalog's `our_hourly` (Decimal). The provider action then runs for
        `resize_seconds` (409 to further resizes meanwhile).
        """
        with self._lock:
            order = self.refresh(self.store.get_order(order["id"]))
            target = self.check_resize(order, target_id, confirm_disk)
            now = self.clock()
            old_hourly = catalog.hourly(order["plan"])
            new_hourly = catalog.hourly(target["id"])
            hours_left = max(Decimal(0), (Decimal(repr(order["_expires"])) - Decimal(repr(now))) / 3600)
            credit = _round_cents(hours_left * old_hourly)
            hours_after = credit / new_hourly
            new_expires = now + float(hours_after * 3600)
            result = {
                "success": True, "provider": order["provider"], "from_plan": order["plan"],
                "to_plan": target["id"], "old_expires_at": order["expires_at"],
                "new_expires_at": iso(new_expires), "remaining_credit": float(credit),
                "remaining_hours_before": float(hours_left.quantize(Decimal("0.000001"))),
                "remaining_hours_after": float(hours_after.quantize(Decimal("0.000001"))),
                "id": order["id"],
            }
            order.update(plan=target["id"], vultr_plan=target["id"], vultr_ram=target["ram"],
                         _expires=new_expires, expires_at=iso(new_expires),
                         _resize_until=now + self.resize_seconds)
            if order["provider"] == "vultr":
                order.update(status="resizing", vultr_status="resizing", server_status="locked")
            else:
                action = 3_000_000_000 + self.store.next_counter("do_action")
                result["provider_action_id"] = action
                self._close_listener(order)
                order.update(status="off", vultr_status="off", power_status="stopped", locked=True)
            self.store.put_order(order)
            self._schedule(order)
            return result


def _hostname_ok(name: str) -> bool:
    import re
    return bool(re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?", name))
