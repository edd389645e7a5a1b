"""The user's state directory (0700) and the secret files inside it (0600).

Layout under ``$X402_COMPUTE_STATE_DIR`` (default
``$XDG_STATE_HOME/x402-compute`` or ``~/.local/state/x402-compute``)::

    api_key                  saved by create_api_key.py --save
    instance-keys/<id>.key   per-instance management keys (MPP provisions)
    credentials/<id>.txt     one-time root passwords
    journal/<id>.json        paid requests, written before the payment leaves
    instance-owners.json     which wallet (chain, address) paid for an instance
    payees.json              payee pinned per network on first use
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import ComputeError


def ensure_dir(path: Path) -> Path:
    # Missing ancestors are made 0700 too (mkdir(parents=True) would make them 0755): the state
    # root is often first created on the way to a subfolder such as credentials/.
    for d in reversed([path, *path.parents]):
        if not d.exists():
            try:
                d.mkdir(mode=0o700)
            except FileExistsError:
                pass
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError:
        pass
    return path


def write_private(path: Path, data: str | bytes, *, exclusive: bool = False) -> Path:
    """Create ``path`` with mode 0600 from the first byte (no chmod race), atomically."""
    ensure_dir(path.parent)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if exclusive and path.exists():
        raise ComputeError(f"Refusing to overwrite {path}.", code="file_exists")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_private_json(path: Path, obj: Any) -> Path:
    return write_private(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except ValueError:
        raise ComputeError(f"{path} is not valid JSON; fix or remove it.", code="state_corrupt") from None


class State:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    # -- saved secrets -------------------------------------------------------------
    def save_api_key(self, key: str) -> Path:
        return write_private(self.path("api_key"), key + "\n")

    def saved_api_key(self) -> str | None:
        try:
            return self.path("api_key").read_text().strip() or None
        except FileNotFoundError:
            return None

    def save_instance_key(self, instance_id: str, key: str) -> Path:
        return write_private(self.path("instance-keys", f"{instance_id}.key"), key + "\n")

    def instance_key(self, instance_id: str) -> str | None:
        try:
            return self.path("instance-keys", f"{instance_id}.key").read_text().strip() or None
        except FileNotFoundError:
            return None

    # -- which wallet owns an instance ----------------------------------------------
    # An x402 provision is bound to the wallet that paid (the paid retry carries no auth),
    # which may be the Solana wallet while management signs with the EVM one.
    def remember_owner(self, instance_id: str, chain: str, address: str) -> Path:
        owners = read_json(self.path("instance-owners.json"), default={})
        owners = owners if isinstance(owners, dict) else {}
        owners[instance_id] = {"chain": chain, "address": address}
        return write_private_json(self.path("instance-owners.json"), owners)

    def owner(self, instance_id: str) -> dict | None:
        rec = (read_json(self.path("instance-owners.json"), default={}) or {}).get(instance_id)
        return rec if isinstance(rec, dict) and rec.get("chain") else None

    def save_credentials(self, instance_id: str, text: str) -> Path:
        return write_private(self.path("credentials", f"{instance_id}.txt"), text)
