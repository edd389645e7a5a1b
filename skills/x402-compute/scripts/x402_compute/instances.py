"""Instance records as the API returns them, plus what users need beside the
raw fields: a normalised ``state``, the IP as null until assigned, hours left,
and an ``ssh`` block."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

NO_IP = ("", "0.0.0.0", None)
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


def public_ip(order: dict) -> str | None:
    ip = order.get("ip_address") or order.get("main_ip")
    return None if ip in NO_IP else ip


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


def ssh_block(order: dict) -> dict | None:
    ip = public_ip(order)
    if not ip:
        return None
    port = order.get("ssh_port") or 22  # ssh_port: sandbox extension; the hosted service implies 22
    password = order.get("access_method") == "one_time_password_fallback"
    cmd = f"ssh root@{ip}" if port == 22 else f"ssh -p {port} root@{ip}"
    block = {"user": "root", "host": ip, "port": int(port), "command": cmd, "auth": "password" if password else "ssh-key"}
    if password:
        block["note"] = "No SSH key was given: fetch the one-time root password with get_one_time_password.py (works once)."
    return block


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
        "ip": public_ip(order),
        "expires_at": order.get("expires_at"),
        # A destroyed machine has no prepaid time left, whatever its old expiry says.
        "hours_left": 0.0 if state == "destroyed" else hours_left(order, now),
        "expires_in_hours": expires_in,
        "needs_extension": needs_extension(state, expires_in),
        "created_at": order.get("created_at"),
    }


def detail(order: dict, now: datetime | None = None) -> dict:
    d = summary(order, now)
    d["ssh"] = ssh_block(order) if d["state"] not in ("destroyed", "expired") else None
    d["raw"] = order
    return d
