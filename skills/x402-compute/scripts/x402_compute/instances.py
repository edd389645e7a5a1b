"""Instance records as the API returns them, plus what users need beside the
raw fields: a normalised ``state``, the IP as null until assigned, hours left,
and an ``ssh`` block.

Every string here came from the server. The ``ssh`` block is the one that ends up in a shell,
so it is built only from a host that is an IP address or a DNS name, a port 1-65535 and a plain
POSIX user name, quoted with ``shlex``; anything else gives ``"ssh": null`` and the reason in
``ssh_unavailable``. No option (``-o...``) ever comes from the server."""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
from typing import Any

from . import cmdline
from .validate import is_host, is_port, is_posix_user, is_uuid, shown

NO_IP = ("", "0.0.0.0", None)
NO_ADDRESS = "no IP address yet"  # ssh_unavailable while the provider has not assigned one
STATES = ("provisioning", "running", "stopped", "resizing", "suspended", "expired", "destroyed")


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def iso(dt: datetime | None) -> str | None:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def _raw_ip(order: dict) -> Any:
    ip = order.get("ip_address") or order.get("main_ip")
    return None if ip in NO_IP else ip


def public_ip(order: dict) -> str | None:
    """The instance's address, when the server sent a well-formed one (an IP, or a DNS name)."""
    ip = _raw_ip(order)
    return ip if is_host(ip) else None


def normalized_state(order: dict, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    status = str(order.get("status") or order.get("vultr_status") or "").lower()
    if order.get("destroyed_at") or status in ("destroyed", "deleted", "archive"):
        return "destroyed"
    expires = parse_time(order.get("expires_at"))
    if status == "expired" or (expires and expires <= now):
        return "expired"
    if status in ("resizing",) or order.get("resizing"):
        return "resizing"
    if status == "suspended":
        return "suspended"
    if status in ("pending", "new", "provisioning", "") or public_ip(order) is None:
        return "provisioning"
    if status == "off" or str(order.get("power_status") or "").lower() == "stopped":
        # A new Vultr instance shows power_status stopped while it installs.
        return "provisioning" if str(order.get("server_status") or "").lower() in ("installingbooting", "none", "locked") else "stopped"
    if str(order.get("server_status") or "ok").lower() not in ("ok", "") or order.get("locked"):
        return "provisioning"
    return "running"


def hours_left(order: dict, now: datetime | None = None) -> float | None:
    expires = parse_time(order.get("expires_at"))
    if not expires:
        return None
    now = now or datetime.now(timezone.utc)
    return round(max(0.0, (expires - now).total_seconds() / 3600), 2)


# needs_extension: a live instance with fewer hours than this left (keepalive.py's default --min-hours-left).
MIN_HOURS_LEFT = 6.0


def expires_in_hours(order: dict, now: datetime | None = None) -> float | None:
    """Hours until ``expires_at``: negative once it has passed, None when unknown."""
    expires = parse_time(order.get("expires_at"))
    if not expires:
        return None
    now = now or datetime.now(timezone.utc)
    return round((expires - now).total_seconds() / 3600, 2)


def needs_extension(state: str, expires_in: float | None, min_hours_left: float = MIN_HOURS_LEFT) -> bool:
    """True for a live instance (not destroyed or expired) with less than ``min_hours_left`` hours to go."""
    return state not in ("destroyed", "expired") and expires_in is not None and expires_in < min_hours_left


def ssh_fields(order: dict, *, user: Any = "root") -> dict:
    """``{"ssh": block or None, "ssh_unavailable": None or why}`` for ``order``.

    The block: ``user``, ``host``, ``port``, ``argv`` (run it as is: no shell involved),
    ``command`` (the same argv quoted for a POSIX shell), ``auth`` and, for password instances,
    a ``note``."""
    raw = _raw_ip(order)
    if raw is None:
        return {"ssh": None, "ssh_unavailable": NO_ADDRESS}
    if not is_host(raw):
        return {"ssh": None, "ssh_unavailable": f"the server's address {shown(raw)} is not an IP address or a DNS name"}
    port = order.get("ssh_port")  # ssh_port: sandbox extension; the hosted service implies 22
    port = 22 if port is None else port
    if not is_port(port):
        return {"ssh": None, "ssh_unavailable": f"the server's SSH port {shown(port)} is not an integer from 1 to 65535"}
    if not is_posix_user(user):
        return {"ssh": None, "ssh_unavailable": f"the server's user name {shown(user)} is not a plain POSIX user name"}
    argv = ["ssh", *([] if port == 22 else ["-p", str(port)]), f"{user}@{raw}"]
    password = order.get("access_method") == "one_time_password_fallback"
    block = {"user": user, "host": raw, "port": port, "argv": argv, "command": shlex.join(argv), "auth": "password" if password else "ssh-key"}
    if password:
        iid = order.get("id")
        reveal = cmdline.command("get_one_time_password.py", iid) if is_uuid(iid) else "get_one_time_password.py <instance_id>"
        block["note"] = f"No SSH key was given: fetch the one-time root password with {reveal} (works once)."
    return {"ssh": block, "ssh_unavailable": None}


def ssh_block(order: dict, *, user: Any = "root") -> dict | None:
    """The ``ssh`` block of ``ssh_fields``, or None (no usable address, port or user)."""
    return ssh_fields(order, user=user)["ssh"]


def unwrap_order(body: Any) -> dict:
    if isinstance(body, dict):
        for key in ("order", "instance"):
            if isinstance(body.get(key), dict):
                return body[key]
        return body
    return {}


def summary(order: dict, now: datetime | None = None) -> dict:
    now = now or datetime.now(timezone.utc)
    state = normalized_state(order, now)
    expires_in = None if state == "destroyed" else expires_in_hours(order, now)
    return {
        "id": order.get("id"),
        "label": order.get("label"),
        "plan": order.get("plan") or order.get("vultr_plan"),
        "region": order.get("region") or order.get("vultr_region"),
        "state": state,
        # A destroyed machine has no address, whatever its record still carries.
        "ip": None if state == "destroyed" else public_ip(order),
        "expires_at": order.get("expires_at"),
        # A destroyed machine has no prepaid time left, whatever its old expiry says.
        "hours_left": 0.0 if state == "destroyed" else hours_left(order, now),
        "expires_in_hours": expires_in,
        "needs_extension": needs_extension(state, expires_in),
        "created_at": order.get("created_at"),
    }


def detail(order: dict, now: datetime | None = None) -> dict:
    d = summary(order, now)
    if d["state"] in ("destroyed", "expired"):
        d.update({"ssh": None, "ssh_unavailable": f"the instance is {d['state']}"})
    else:
        d.update(ssh_fields(order))
    d["raw"] = order
    return d
