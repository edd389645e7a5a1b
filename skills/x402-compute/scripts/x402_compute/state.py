"""The user's state directory (0700) and the secret files inside it (0600).

Layout under ``$X402_COMPUTE_STATE_DIR`` (default
``$XDG_STATE_HOME/x402-compute`` or ``~/.local/state/x402-compute``)::

    api_key                  saved by create_api_key.py --save (replaced only with --replace-saved-key)
    api_key.id               that key's id (not a secret), so revoking it can remove it
    instance-keys/<id>.key   per-instance management keys (MPP provisions); <id>.key.2, ... a second
                             key sent for the same id (never overwritten)
    ai-keys/<id>.key         AI Machine API keys, kept by the same rule (<id>.key.2, ...)
    credentials/<id>.txt     one-time root passwords
    ledger.sqlite3           the ledger (x402_compute.ledger): journal, budget, quotes, payee pins,
                             keepalive records (unless COMPUTE_LEDGER_URL names a PostgreSQL)
    instance-owners.json     which wallet (chain, address) paid for an instance

``<id>`` is always a UUID: ``State`` checks every id it turns into a file name, whoever
passes it, and each path part is one plain name. Folders the client creates are 0700; one
that already exists is never chmod-ed (it may be shared), and a folder another user could
change (not ours, or writable by others; above it, not root's or ours, or writable by others
without the sticky bit) is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from . import redact
from .errors import ComputeError, ConfigError
from .validate import server_instance_id


def unsafe_dir(path: Path) -> str | None:
    """Why another user could change what is stored in folder ``path`` (existing or about to be
    made), or None.

    ``path`` itself must be owned by this user and not writable by group or others; each folder
    above it must be owned by this user or root, and if others may write to it, carry the sticky
    bit (as /tmp does: then nobody else can rename or replace what is ours in it)."""
    uid = os.geteuid() if hasattr(os, "geteuid") else None
    if uid is None:  # no POSIX ownership to check (Windows)
        return None
    try:
        st = os.stat(path)
    except OSError:
        pass  # not made yet: only the folders above it matter
    else:
        if st.st_uid != uid:
            return f"{path} belongs to another user (uid {st.st_uid})"
        if st.st_mode & 0o022:
            return f"{path} is writable by {'others' if st.st_mode & 0o002 else 'its group'} ({oct(stat.S_IMODE(st.st_mode))})"
    for d in Path(path).resolve().parents:
        try:
            st = os.stat(d)
        except OSError:
            continue
        if st.st_uid not in (uid, 0):
            return f"{d}, a folder above it, belongs to another user (uid {st.st_uid})"
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            return f"{d}, a folder above it, is writable by others without the sticky bit ({oct(stat.S_IMODE(st.st_mode))})"
    return None


def ensure_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents 0700, and refuse a folder others could change
    (checked before anything is made, and again after).

    A folder that already exists is never chmod-ed: it may be shared (a world-writable parent,
    a home directory); doctor.py reports a loose state folder instead."""
    path = Path(path)
    if str(path) in _CHECKED and path.is_dir():
        # Once found safe, only this user or root could make it unsafe: one check per process.
        return path
    _refuse_unsafe(path)
    for d in reversed([path, *path.parents]):
        if d.is_dir():
            continue
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)  # ours, just made: exactly 0700 whatever the umask
    _refuse_unsafe(path)
    _CHECKED.add(str(path))
    return path


_CHECKED: set[str] = set()  # folders ensure_dir created or found safe in this process


def _refuse_unsafe(path: Path) -> None:
    why = unsafe_dir(path)
    if why:
        raise ConfigError(
            f"Refusing to store secrets in {path}: {why}.",
            code="unsafe_state_dir",
            hint="Point X402_COMPUTE_STATE_DIR at a folder only you can write to (the default is ~/.local/state/x402-compute), "
            "or fix the folder's owner and mode (chmod 700). doctor.py reports it too.",
        )


def write_private(path: Path, data: str | bytes, *, exclusive: bool = False, durable: bool = True) -> Path:
    """Create ``path`` with mode 0600 from the first byte (no chmod race), atomically (a reader
    sees the old content or the new, never a part). ``durable``: on disk before this returns,
    the file's bytes and its name (the folder is synced too), so a power cut cannot lose it."""
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
            if durable:
                os.fsync(f.fileno())
        if exclusive:
            # link() never replaces: of two writers racing for one name, exactly one gets it
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ComputeError(f"Refusing to overwrite {path}.", code="file_exists") from None
            finally:
                os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    return path


def write_private_json(path: Path, obj: Any, *, durable: bool = True) -> Path:
    return write_private(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", durable=durable)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return default
    except ValueError:
        raise ComputeError(f"{path} is not valid JSON; fix or remove it.", code="state_corrupt") from None
    if isinstance(data, dict) and data.get("payment_header_value"):
        # A journalled payment is a secret this process now holds: a server may have echoed it
        # into the entry's reason or body, and whatever prints the entry must not show it.

        redact.register_header(str(data.get("payment_header_name") or "X-PAYMENT"), data["payment_header_value"])
    return data


class State:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, *parts: str) -> Path:
        """A file under the state folder. Each part is one plain name, never a path of its own."""
        for part in parts:
            if not isinstance(part, str) or not part or part in (".", "..") or "/" in part or "\\" in part or "\0" in part:
                raise ComputeError(f"Refusing to use {part!r} as a file name in the state folder.", code="bad_response")
        return self.root.joinpath(*parts)

    def _instance_file(self, folder: str, instance_id: str, suffix: str) -> Path:
        # The one place an instance id becomes a file name: whoever passes it (a paid answer,
        # a listing, the user's argument), only a UUID gets through.

        return self.path(folder, server_instance_id(instance_id, "instance id") + suffix)

    # -- saved secrets -------------------------------------------------------------------------
    def save_api_key(self, key: str, key_id: str | None = None, *, replace: bool = False) -> Path:
        """Save the account's API key (and its id). A key already saved is replaced only with
        ``replace`` (the human's ``--replace-saved-key``); otherwise ``file_exists``, even when
        another process saved one a moment ago."""
        path = write_private(self.path("api_key"), key + "\n", exclusive=not replace)
        id_file = self.path("api_key.id")
        if key_id:
            write_private(id_file, key_id + "\n")
        else:
            id_file.unlink(missing_ok=True)  # an id left from another key would name the wrong one
        return path

    def saved_api_key_id(self) -> str | None:
        try:
            return self.path("api_key.id").read_text().strip() or None
        except FileNotFoundError:
            return None

    def remove_saved_api_key(self) -> Path:
        """Delete the saved key (and its id); later scripts fall back to the wallet."""
        path = self.path("api_key")
        path.unlink(missing_ok=True)
        self.path("api_key.id").unlink(missing_ok=True)
        return path

    def saved_api_key(self) -> str | None:
        try:
            return self.path("api_key").read_text().strip() or None
        except FileNotFoundError:
            return None

    def keep_key(self, folder: str, instance_id: str, key: str) -> tuple[Path, Path | None]:
        """Save a one-time key of ``instance_id`` in ``folder`` (``instance-keys``, ``ai-keys``), 0600,
        never overwriting one already saved (the server shows each key once: a replaced key is lost
        for good). Returns (the first file ``<id>.key``, None) when the key is new there or is the
        one already in it (a replayed answer); a different key for the same id is kept beside the
        first, in the first free ``<id>.key.2``, ``<id>.key.3``, ... (or the one that already holds
        it): (the first file, that file)."""
        path = self._instance_file(folder, instance_id, ".key")
        try:
            return write_private(path, key + "\n", exclusive=True), None
        except ComputeError as e:
            if e.code != "file_exists":
                raise
        if path.read_text().strip() == key:
            return path, None
        for n in range(2, 1000):
            extra = self._instance_file(folder, instance_id, f".key.{n}")
            try:
                return path, write_private(extra, key + "\n", exclusive=True)
            except ComputeError as e:
                if e.code != "file_exists":
                    raise
                if extra.read_text().strip() == key:
                    return path, extra
        raise ComputeError(f"{path.parent} already holds 998 other keys for instance {instance_id}; the new one was not saved.",
                           code="bad_response", details={"instance_id": instance_id, "key_file": str(path)})

    def save_instance_key(self, instance_id: str, key: str) -> Path:
        """Save the one-time management key of ``instance_id`` (``keep_key``: never overwritten, the
        same key again is a no-op). A different key for the same id is kept beside the first
        (``<id>.key.2``, ...) and raises ``bad_response`` naming both files."""
        path, extra = self.keep_key("instance-keys", instance_id, key)
        if extra is None:
            return path
        raise ComputeError(
            f"The server sent a second one-time management key for instance {instance_id}; the first one, saved in {path}, "
            f"was kept and the second was saved in {extra}. Nothing was overwritten.",
            code="bad_response",
            details={"instance_id": instance_id, "key_file": str(path), "second_key_file": str(extra)},
            hint="Keep both files; ask the service which key is valid for this instance (the scripts use the first).",
        )

    @contextlib.contextmanager
    def _folder_fd(self, folder: str, what: str):
        """``folder`` under the state folder, opened without following a symlink: its descriptor,
        or None when there is no such folder. One that is a symlink (or not a folder) raises
        ``unsafe_state_dir``: what is deleted through the descriptor is in the state folder, never
        wherever a link points. ``what``: what was left alone, for the message."""
        where = self.path(folder)
        try:
            fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            yield None
            return
        except OSError as e:
            raise ComputeError(f"{where} is not a plain folder ({e.strerror}); {what} in it was left alone.",
                               code="unsafe_state_dir", hint=f"Delete {what} in it by hand if that is what you want.") from None
        try:
            yield fd
        finally:
            os.close(fd)

    def remove_file(self, folder: str, name: str) -> Path | None:
        """Delete ``<state>/<folder>/<name>`` (a host-key pin, a password file, keepalive state), never
        through a symlink: the folder is opened without following one (``_folder_fd``: a symlinked
        folder raises ``unsafe_state_dir``, nothing deleted) and the name unlinked in it, so a symlink
        there is removed, its target never touched; a folder of that name is left. Returns the path
        removed, None when there was nothing to remove."""
        path = self.path(folder, name)
        with self._folder_fd(folder, name) as fd:
            if fd is None:
                return None
            try:
                if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    return None
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                return None
        return path

    def remove_key_files(self, folder: str, instance_id: str) -> list[Path]:
        """Delete the key files of ``instance_id`` in ``folder`` (``instance-keys``, ``ai-keys``):
        ``<uuid>.key``, the second keys kept beside it (``<uuid>.key.2``, ``.key.3``, ... from
        ``keep_key``, never overwritten) and a ``.pub`` of either; only names of exactly
        that form, for the checked UUID alone. The folder is opened without following a symlink
        (``_folder_fd``: one that is a symlink raises ``unsafe_state_dir``, nothing deleted) and each
        file is unlinked in it, so a symlink among them is removed, never followed. Returns the paths removed."""
        iid = server_instance_id(instance_id, "instance id")
        where = self.path(folder)
        name = re.compile(re.escape(iid) + r"\.key(?:\.[0-9]+)?(?:\.pub)?")
        removed = []
        with self._folder_fd(folder, f"{iid}.key*") as fd:
            if fd is None:
                return []
            with os.scandir(fd) as entries:
                names = sorted(e.name for e in entries if name.fullmatch(e.name) and not e.is_dir(follow_symlinks=False))
            for n in names:
                try:
                    os.unlink(n, dir_fd=fd)
                except FileNotFoundError:
                    continue
                removed.append(where / n)
        return removed

    def instance_key(self, instance_id: str) -> str | None:
        try:
            key = self._instance_file("instance-keys", instance_id, ".key").read_text().strip() or None
        except FileNotFoundError:
            return None

        redact.register(key)
        return key

    # -- which wallet owns an instance ----------------------------------------------------------
    # An x402 provision is bound to the wallet that paid (the paid retry carries no auth),
    # which may be the Solana wallet while management signs with the EVM one.
    def remember_owner(self, instance_id: str, chain: str, address: str) -> Path:
        iid = server_instance_id(instance_id, "instance id")
        owners = read_json(self.path("instance-owners.json"), default={})
        owners = owners if isinstance(owners, dict) else {}
        owners[iid] = {"chain": chain, "address": address}
        return write_private_json(self.path("instance-owners.json"), owners)

    def owner(self, instance_id: str) -> dict | None:
        owners = read_json(self.path("instance-owners.json"), default={})
        rec = owners.get(server_instance_id(instance_id, "instance id")) if isinstance(owners, dict) else None
        return rec if isinstance(rec, dict) and rec.get("chain") else None

    def credentials_file(self, instance_id: str) -> Path:
        return self._instance_file("credentials", instance_id, ".txt")

    def save_credentials(self, instance_id: str, text: str) -> Path:
        return write_private(self.credentials_file(instance_id), text)
