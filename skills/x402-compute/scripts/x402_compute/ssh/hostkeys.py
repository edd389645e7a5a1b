"""Each instance's SSH host key, pinned in the state folder on first contact.

``<state>/known_hosts/<instance-id>`` (0600) holds one line per pinned key,
``x402-compute-<instance-id> <type> <base64>``: OpenSSH known_hosts syntax under a per-instance
name (``HostKeyAlias``), so the file is the ``UserKnownHostsFile`` of every login the skill makes
and stays right when the instance's address or port changes. Only keys we parsed and checked are
ever written there; nothing the server sent is copied into it as text.

First contact (no pin yet): the key the server presents is read by a key-exchange-only probe
(``ssh-keyscan`` when installed, else asyncssh's ``get_server_host_key``: no login, no command).

- The API publishes the instance's key (``ssh_host_public_key``) or its fingerprint
  (``ssh_host_key_fingerprint``): the presented key must match it (else ``host_key_mismatch``,
  exit 3, nothing pinned); that key is pinned.
- Nothing published: trust on first use. The presented key is pinned and the output says so.

Later contacts: the server's key must be a pinned one, else ``host_key_changed`` (exit 3).
``--accept-host-key-change`` (a human's decision) replaces the pin, and only with a key that
matches what the API publishes now, when it publishes one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import ComputeError, PolicyError
from ..state import write_private
from ..validate import server_instance_id

KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
MAX_BLOB = 4096  # an RSA-16384 public key blob is about 2 KiB
_FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
_B64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
SCAN_TIMEOUT = 5.0
KEYSCAN = "ssh-keyscan"


class HostKeyChanged(PolicyError):
    """The server presented a key other than the pinned one."""

    code = "host_key_changed"


class HostKeyMismatch(PolicyError):
    """First contact: the server's key is not the one the API publishes for the instance."""

    code = "host_key_mismatch"


@dataclass(frozen=True)
class HostKey:
    type: str
    blob: bytes

    @property
    def line(self) -> str:
        return f"{self.type} {base64.b64encode(self.blob).decode()}"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    @classmethod
    def parse(cls, text: Any) -> "HostKey":
        """``<type> <base64> [comment]`` with a known type and a blob that names the same type;
        ValueError otherwise (the caller says whose value it was)."""
        if not isinstance(text, str) or len(text) > 2 * MAX_BLOB or any(c in text for c in "\r\n\0"):
            raise ValueError("not a one-line public key")
        parts = text.split()
        if len(parts) < 2 or len(parts) > 3:
            raise ValueError("expected '<type> <base64>'")
        kind, b64 = parts[0], parts[1]
        if kind not in KEY_TYPES:
            raise ValueError(f"key type {kind[:40]!r} is not one of {', '.join(KEY_TYPES)}")
        if not _B64.fullmatch(b64):
            raise ValueError("the key is not base64")
        try:
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the key is not base64") from None
        if len(blob) > MAX_BLOB or len(blob) < 4:
            raise ValueError("the key blob has an impossible length")
        n = int.from_bytes(blob[:4], "big")
        if blob[4 : 4 + n] != kind.encode():
            raise ValueError(f"the key blob is not a {kind} key")
        return cls(kind, blob)


def fingerprint(blob: bytes) -> str:
    """OpenSSH's ``SHA256:<base64 without padding>`` of a public key blob."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _bad(field: str, value: Any, why: str) -> ComputeError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:80] + "..."
    return ComputeError(
        f"The server sent {shown} as {field} ({why}); refusing to use it to check the machine's identity.",
        code="bad_response",
        details={"field": field, "received": shown},
        hint="Nothing was pinned or run. Tell the human: the API's description of this machine's host key is malformed.",
    )


@dataclass(frozen=True)
class Published:
    """What the API says the instance's host key is (either part may be missing)."""

    key: HostKey | None
    fingerprint: str | None
    type: str | None

    def __bool__(self) -> bool:
        return self.key is not None or self.fingerprint is not None

    def matches(self, key: HostKey) -> bool:
        if self.key is not None:
            return key == self.key
        return self.fingerprint is not None and key.fingerprint == self.fingerprint


def published(order: dict) -> Published:
    """The order's ``ssh_host_public_key`` / ``ssh_host_key_fingerprint`` / ``ssh_host_key_type``,
    checked and consistent with each other; ``bad_response`` when malformed or contradictory."""
    raw_key, raw_fp, raw_type = order.get("ssh_host_public_key"), order.get("ssh_host_key_fingerprint"), order.get("ssh_host_key_type")
    key = fp = kind = None
    if raw_key not in (None, ""):
        try:
            key = HostKey.parse(raw_key)
        except ValueError as e:
            raise _bad("ssh_host_public_key", raw_key, str(e)) from None
    if raw_fp not in (None, ""):
        if not isinstance(raw_fp, str) or not _FINGERPRINT.fullmatch(raw_fp):
            raise _bad("ssh_host_key_fingerprint", raw_fp, "not an OpenSSH SHA256 fingerprint")
        fp = raw_fp
    if raw_type not in (None, ""):
        if raw_type not in KEY_TYPES:
            raise _bad("ssh_host_key_type", raw_type, "not a known host key type")
        kind = raw_type
    if key is not None and fp is not None and key.fingerprint != fp:
        raise _bad("ssh_host_key_fingerprint", raw_fp, f"the published key's fingerprint is {key.fingerprint}")
    if key is not None and kind is not None and key.type != kind:
        raise _bad("ssh_host_key_type", raw_type, f"the published key is a {key.type} key")
    return Published(key, fp if fp else (key.fingerprint if key else None), kind or (key.type if key else None))


# -- the probe: which key does the server present? ------------------------------------------------


def have_keyscan() -> bool:
    return shutil.which(KEYSCAN) is not None


def scan_keyscan(host: str, port: int, timeout: float = SCAN_TIMEOUT, key_type: str | None = None) -> list[HostKey]:
    """Every host key the server offers, read by ``ssh-keyscan`` (one key exchange per type)."""
    argv = [KEYSCAN, "-T", str(max(1, int(timeout))), "-p", str(port), "-t", "ed25519,ecdsa,rsa", "--", host]
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=3 * timeout + 5)
    except (OSError, subprocess.TimeoutExpired):
        return []
    keys = []
    for line in proc.stdout.decode("ascii", "replace").splitlines()[:16]:
        parts = line.split()
        if len(parts) != 3 or line.startswith("#"):
            continue
        try:
            keys.append(HostKey.parse(f"{parts[1]} {parts[2]}"))
        except ValueError:
            continue  # a line we do not understand is not a key we pin
    return keys


_ALGS = {"ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]}


def scan_asyncssh(host: str, port: int, timeout: float = SCAN_TIMEOUT, key_type: str | None = None) -> list[HostKey]:
    """The key the server presents in one key exchange with asyncssh (no login); with
    ``key_type``, asking for that type of key."""
    import asyncio

    import asyncssh  # imported here: only a probe or a login pays for it

    async def probe():
        kw: dict = {"config": []}
        if key_type:
            kw["server_host_key_algs"] = _ALGS.get(key_type, [key_type])
        return await asyncssh.get_server_host_key(host, port, **kw)

    try:
        key = asyncio.run(asyncio.wait_for(probe(), timeout + 1))
    except (OSError, asyncio.TimeoutError, asyncssh.Error, ValueError):
        return []
    if key is None:
        return []
    try:
        return [HostKey.parse(key.export_public_key("openssh").decode().strip())]
    except ValueError:
        return []


def scanner(client: str = "auto") -> Callable[..., list[HostKey]] | None:
    """The probe for ``client`` (auto: ssh-keyscan when installed, else asyncssh), or None when
    neither is available."""
    if client in ("auto", "openssh") and have_keyscan():
        return scan_keyscan
    if client in ("auto", "python"):
        try:
            if importlib.util.find_spec("asyncssh") is not None:
                return scan_asyncssh
        except (ImportError, ValueError):
            pass
    return None


# -- the pins ------------------------------------------------------------------------------------


class HostKeys:
    """The pins under one state folder."""

    def __init__(self, state_dir: Path | str) -> None:
        self.root = Path(state_dir) / "known_hosts"

    @staticmethod
    def alias(instance_id: str) -> str:
        return f"x402-compute-{_uuid(instance_id)}"

    def file(self, instance_id: str) -> Path:
        return self.root / _uuid(instance_id)

    def pinned(self, instance_id: str) -> list[HostKey]:
        path = self.file(instance_id)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return []
        keys = []
        for line in text.splitlines():
            parts = line.split()
            if not parts or line.startswith("#"):
                continue
            try:
                if len(parts) != 3 or parts[0] != self.alias(instance_id):
                    raise ValueError("not a pin for this instance")
                keys.append(HostKey.parse(f"{parts[1]} {parts[2]}"))
            except ValueError as e:
                raise ComputeError(f"{path} is not a host key pin this skill wrote ({e}); fix or remove it.", code="state_corrupt") from None
        return keys

    def pin(self, instance_id: str, keys: Iterable[HostKey]) -> Path:
        alias = self.alias(instance_id)
        lines = "".join(f"{alias} {k.line}\n" for k in dict.fromkeys(keys))
        if not lines:
            raise ValueError("nothing to pin")
        return write_private(self.file(instance_id), lines)

    def forget(self, instance_id: str) -> None:
        try:
            self.file(instance_id).unlink()
        except FileNotFoundError:
            pass

    # -- the one decision --------------------------------------------------------------------------
    def check(self, instance_id: str, order: dict, presented: list[HostKey], *, accept_change: bool = False) -> dict:
        """Decide on the keys the server presented: pin them (first contact), confirm the pin, or
        refuse. Returns the ``host_key`` block of the output."""
        pins = self.pinned(instance_id)
        pub = published(order)
        base = {"known_hosts_file": str(self.file(instance_id)), "host_key_alias": self.alias(instance_id)}
        if pins:
            hit = next((k for k in presented if k in pins), None)
            if hit is not None:
                return {**_shown(hit), "status": "matched", "verified_by": "pin", **base}
            if not accept_change:
                raise changed(instance_id, pins, presented, pub, self.file(instance_id))
        if pub:
            hit = next((k for k in presented if pub.matches(k)), None)
            if hit is None:
                raise HostKeyMismatch(
                    f"Instance {instance_id} presents a host key ({_fps(presented)}) that is not the one the API publishes "
                    f"({pub.fingerprint}). Nothing was pinned or run.",
                    details={"instance_id": instance_id, "published_fingerprint": pub.fingerprint, "presented_fingerprints": [k.fingerprint for k in presented]},
                    hint="Something between you and the machine is answering in its place, or the API's record is stale. "
                    "Do not log in; tell the human. Check again later with instance_details.py.",
                )
            self.pin(instance_id, [hit])
            return {**_shown(hit), "status": "replaced" if pins else "pinned_now", "verified_by": "api", **base}
        hit = min(presented, key=lambda k: KEY_TYPES.index(k.type))  # one key: the strongest type offered
        self.pin(instance_id, [hit])
        return {
            **_shown(hit),
            "status": "replaced" if pins else "pinned_now",
            "verified_by": "first_contact",
            "note": "The API publishes no host key for this instance: the key the machine presented now was trusted and pinned "
            "(trust on first use). Later logins must present the same key.",
            **base,
        }


def changed(instance_id: str, pins: list[HostKey], presented: list[HostKey], pub: Published, path: Path) -> HostKeyChanged:
    now = {"published_fingerprint": pub.fingerprint} if pub else {}
    return HostKeyChanged(
        f"Instance {instance_id} presents a host key ({_fps(presented)}) other than the one pinned at first contact "
        f"({_fps(pins)}). Refusing to connect.",
        details={"instance_id": instance_id, "pinned_fingerprints": [k.fingerprint for k in pins],
                 "presented_fingerprints": [k.fingerprint for k in presented], "known_hosts_file": str(path), **now},
        hint="This is what a machine in the middle looks like; it is also what a reinstalled machine looks like. Do not log in: "
        "tell the human. Only they may accept the new key (--accept-host-key-change), after checking it"
        + (" against the fingerprint the API publishes now." if pub else "."),
    )


def _shown(key: HostKey) -> dict:
    return {"fingerprint": key.fingerprint, "type": key.type}


def _fps(keys: Iterable[HostKey]) -> str:
    return ", ".join(k.fingerprint for k in keys) or "none"


def _uuid(instance_id: str) -> str:
    return server_instance_id(instance_id, "instance id")

