"""The skill's own SSH key (``provision.py --ssh-key auto``) and the ``ssh`` blocks that use it.

One ed25519 key pair, created on first use in the state folder and reused after:

    ssh/x402-compute_ed25519       the private key, OpenSSH format, 0600, never printed
    ssh/x402-compute_ed25519.pub   its public key (the line sent as ``ssh_public_key``)
    instance-ssh-keys.json         which instances were given it, so their ``ssh`` blocks say ``-i``

The pair is generated in Python with PyNaCl (already a dependency, so no ``ssh-keygen`` is needed)
and written in the ``openssh-key-v1`` format of OpenSSH's PROTOCOL.key, unencrypted like
``ssh-keygen -N ''`` would write it: the state folder's 0700/0600 modes are its protection.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shlex
import struct
from dataclasses import dataclass
from pathlib import Path

from .. import cmdline
from ..errors import ComputeError
from ..instances import ssh_block
from ..state import State, read_json, write_private, write_private_json
from .hostkeys import HostKeys
from .run import login_argv

KEY_FILE = ("ssh", "x402-compute_ed25519")
RECORDS = "instance-ssh-keys.json"
COMMENT = "x402-compute"
GENERATED_WITH = "pynacl"
_MAGIC = b"openssh-key-v1\x00"
_KEY_TYPE = b"ssh-ed25519"
_PEM_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_PEM_END = "-----END OPENSSH PRIVATE KEY-----"


@dataclass(frozen=True)
class AutoKey:
    private_key_file: Path
    public_key: str  # "ssh-ed25519 AAAA... x402-compute"
    fingerprint: str  # "SHA256:...", as ssh-keygen -l prints it
    created: bool

    def block(self) -> dict:
        """What provision.py prints about the key: never the private key, only where it is."""
        return {
            "mode": "auto",
            "private_key_file": str(self.private_key_file),
            "public_key": self.public_key,
            "fingerprint": self.fingerprint,
            "created": self.created,
            "generated_with": GENERATED_WITH,
        }


# -- the OpenSSH wire format (RFC 4251 strings, PROTOCOL.key) --------------------------------------

def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _read_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 4 > len(buf):
        raise ValueError("truncated")
    (n,) = struct.unpack(">I", buf[pos : pos + 4])
    if pos + 4 + n > len(buf):
        raise ValueError("truncated")
    return buf[pos + 4 : pos + 4 + n], pos + 4 + n


def _public_blob(pk: bytes) -> bytes:
    return _string(_KEY_TYPE) + _string(pk)


def public_line(pk: bytes, comment: str = COMMENT) -> str:
    return f"ssh-ed25519 {base64.b64encode(_public_blob(pk)).decode()} {comment}"


def fingerprint(pk: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(_public_blob(pk)).digest()).decode().rstrip("=")


def line_fingerprint(line: str) -> str:
    """``SHA256:<base64>`` of an OpenSSH public key line (``ssh-keygen -l``'s figure): what a quote
    pins and the approval shows as the key that gets root on the machine. A line whose key part is
    not base64 gets the digest of the whole line (still one value per key, never shared)."""
    parts = line.split()
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (IndexError, ValueError):
        blob = line.encode()
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def own_fingerprint(state: State) -> str | None:
    """The fingerprint of the skill's own key when it exists (never creates it)."""
    try:
        return line_fingerprint(key_path(state).with_name(KEY_FILE[1] + ".pub").read_text().strip())
    except OSError:
        return None


def encode_private(seed: bytes, pk: bytes, comment: str = COMMENT) -> str:
    """An unencrypted ``openssh-key-v1`` private key file holding one ed25519 key."""
    check = secrets.token_bytes(4)
    body = check + check + _string(_KEY_TYPE) + _string(pk) + _string(seed + pk) + _string(comment.encode())
    body += bytes(range(1, 1 + (-len(body) % 8)))  # pad to the "none" cipher's block size of 8
    blob = _MAGIC + _string(b"none") + _string(b"none") + _string(b"") + struct.pack(">I", 1) + _string(_public_blob(pk)) + _string(body)
    b64 = base64.b64encode(blob).decode()
    return "\n".join([_PEM_BEGIN, *(b64[i : i + 70] for i in range(0, len(b64), 70)), _PEM_END]) + "\n"


def decode_private(text: str) -> tuple[bytes, bytes]:
    """``(seed, public key)`` of an unencrypted OpenSSH ed25519 private key; ValueError otherwise."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _PEM_BEGIN or lines[-1] != _PEM_END:
        raise ValueError("not an OpenSSH private key file")
    blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    if not blob.startswith(_MAGIC):
        raise ValueError("not an openssh-key-v1 key")
    pos = len(_MAGIC)
    cipher, pos = _read_string(blob, pos)
    _kdf, pos = _read_string(blob, pos)
    _kdfopts, pos = _read_string(blob, pos)
    if cipher != b"none":
        raise ValueError("the key is encrypted with a passphrase")
    if blob[pos : pos + 4] != struct.pack(">I", 1):
        raise ValueError("the file holds more than one key")
    pub_blob, pos = _read_string(blob, pos + 4)
    body, _ = _read_string(blob, pos)
    if body[:4] != body[4:8]:
        raise ValueError("check bytes differ (corrupt key)")
    ktype, p = _read_string(body, 8)
    if ktype != _KEY_TYPE:
        raise ValueError(f"not an ed25519 key ({ktype.decode(errors='replace')})")
    pk, p = _read_string(body, p)
    sk, p = _read_string(body, p)
    if len(pk) != 32 or len(sk) != 64 or sk[32:] != pk or pub_blob != _public_blob(pk):
        raise ValueError("inconsistent ed25519 key")
    from nacl.signing import SigningKey

    if bytes(SigningKey(sk[:32]).verify_key) != pk:
        raise ValueError("the private key does not match its public key")
    return sk[:32], pk


# -- the key pair in the state folder -------------------------------------------------------------

def key_path(state: State) -> Path:
    return state.path(*KEY_FILE)


def ensure_auto_key(state: State) -> AutoKey:
    """The skill's key pair: read it, or create it once. Two processes creating it at the same
    time end up with the same key (the first link wins; the second reads the winner's)."""
    path = key_path(state)
    created = False
    if not path.exists():
        from nacl.signing import SigningKey

        sk = SigningKey.generate()
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
        write_private(tmp, encode_private(bytes(sk), bytes(sk.verify_key)))
        try:
            os.link(tmp, path)  # fails if another process got there first: never replace a key in use
            created = True
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)  # ssh refuses a private key others can read
        _seed, pk = decode_private(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ComputeError(
            f"The skill's SSH key {path} cannot be used: {e}.",
            code="ssh_key_unusable",
            hint=f"Move {path} aside (instances given it need it to log in) and run again to create a new one, or pass --ssh-key-file instead.",
        ) from None
    pub = public_line(pk)
    pub_path = path.with_name(path.name + ".pub")
    try:
        current = pub_path.read_text().strip()
    except OSError:
        current = None
    if current != pub:
        write_private(pub_path, pub + "\n")
    return AutoKey(path, pub, fingerprint(pk), created)


def remember(state: State, instance_id: str, key: AutoKey) -> None:
    """Record that ``instance_id`` was given the skill's key (so its ``ssh`` block says ``-i``)."""
    if not instance_id:
        return
    records = read_json(state.path(RECORDS), default={})
    records = records if isinstance(records, dict) else {}
    entry = {"private_key_file": str(key.private_key_file), "fingerprint": key.fingerprint}
    if records.get(instance_id) != entry:
        records[instance_id] = entry
        write_private_json(state.path(RECORDS), records)


def identity_for(state: State, instance_id: str | None) -> str | None:
    """The private key file to log in to ``instance_id`` with, when it was given the skill's key
    and that key is still there."""
    if not instance_id:
        return None
    try:
        records = read_json(state.path(RECORDS), default={})
    except ComputeError:  # a damaged record file costs the -i hint, never the command
        return None
    rec = records.get(str(instance_id)) if isinstance(records, dict) else None
    path = rec.get("private_key_file") if isinstance(rec, dict) else None
    return path if isinstance(path, str) and Path(path).is_file() else None


# -- ssh blocks ---------------------------------------------------------------------------------

PIN_NOTE = ("No host key is pinned for this instance yet, so this command refuses to connect: run "
            "{command} once (it checks the key against the API's and pins it), then run it again.")
# A machine without a key: ssh_exec.py pins, then stops before any login (keys only); the pin is what counts.
PIN_NOTE_PASSWORD = ("No host key is pinned for this instance yet, so this command refuses to connect: run "
                     "{command} once; it checks the key against the API's and pins it, then stops with "
                     "ssh_password_only, as expected (ssh_exec.py logs in with keys only). The pin stays, and this command, "
                     "with the one-time password, then logs in.")


def with_login(block: dict | None, *, known_hosts: Path, alias: str, pinned: bool, private_key_file: str | None) -> dict | None:
    """``block`` with the command that works as printed: the instance's pin file under its alias with
    strict checking, and ``-i <key> -o IdentitiesOnly=yes`` when it was given the skill's key."""
    if not block:
        return block
    out = dict(block)
    if private_key_file:
        out["identity_file"] = private_key_file
    out["argv"] = login_argv(out["host"], out["port"], out["user"], known_hosts=known_hosts, alias=alias,
                             identity=Path(private_key_file) if private_key_file else None)
    out["command"] = shlex.join(out["argv"])
    out["known_hosts_file"] = str(known_hosts)
    out["host_key_alias"] = alias
    out["host_key_pinned"] = pinned
    if not pinned:
        note = (PIN_NOTE_PASSWORD if out.get("auth") == "password" else PIN_NOTE).format(command=cmdline.command("ssh_exec.py", alias.removeprefix("x402-compute-"), "--", "true"))
        out["note"] = f"{out['note']} {note}" if out.get("note") else note
    return out


def login_block(state: State, block: dict | None, instance_id, *, with_key: bool = True) -> dict | None:
    """``block`` (an ``instances.ssh_fields`` block) made to work as printed for ``instance_id``:
    its pin file and alias, and the skill's key when the instance was given it (``with_key``)."""
    if not block or not isinstance(instance_id, str):
        return block
    pins = HostKeys(state.root)
    try:
        known, alias = pins.file(instance_id), pins.alias(instance_id)
    except ComputeError:  # not a UUID: no pin can exist for it
        return block
    try:
        pinned = bool(pins.pinned(instance_id))
    except ComputeError:
        pinned = False  # a damaged pin file: the command refuses to connect, ssh_exec.py names the problem
    return with_login(block, known_hosts=known, alias=alias, pinned=pinned,
                      private_key_file=identity_for(state, instance_id) if with_key else None)


def ssh_block_for(state: State, order: dict) -> dict | None:
    """The instance's ``ssh`` block: its login command with the pin (and ``-i`` when it was given
    the skill's key)."""
    return login_block(state, ssh_block(order), order.get("id"))
