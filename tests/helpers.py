"""Shared test helpers: where the bundle lives and how to run its scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "skills" / "x402-compute"
SCRIPTS = BUNDLE / "scripts"


def clean_env(extra: dict | None = None, *, home: str | os.PathLike | None = None) -> dict:
    """A minimal environment: no wallet or API settings leak in from the caller."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT", "TMPDIR")}
    if home is not None:
        keep["HOME"] = str(home)
        keep["X402_COMPUTE_STATE_DIR"] = str(Path(home) / "state")
    keep.update(extra or {})
    return keep


def run_script(name: str, *args: str, env: dict, input: str | None = None, timeout: float = 60) -> tuple[int, dict, str]:
    """Run a bundle script as a subprocess; stdout must be exactly one JSON document."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        doc = json.loads(proc.stdout)
    except ValueError as e:  # the contract is broken: show what came out
        raise AssertionError(f"{name} stdout is not one JSON document: {proc.stdout!r}\nstderr: {proc.stderr}") from e
    assert isinstance(doc, dict) and "ok" in doc, doc
    return proc.returncode, doc, proc.stderr


def ok(result: tuple[int, dict, str]) -> dict:
    """The document of a ``run_script`` result that must have succeeded (exit 0, ``ok: true``)."""
    code, doc, err = result
    assert code == 0 and doc["ok"] is True, (code, doc, err)
    return doc


def fail(result: tuple[int, dict, str], exit_code: int, error_code: str | None = None) -> dict:
    """The ``error`` of a ``run_script`` result that must have failed with ``exit_code`` (and
    ``error_code``), in the documented error shape."""
    code, doc, err = result
    assert code == exit_code and doc["ok"] is False, (code, doc, err)
    e = doc["error"]
    assert set(e) >= {"code", "message", "status", "details", "retryable"}
    if error_code:
        assert e["code"] == error_code, e
    return e


def closed_port_url() -> str:
    """A loopback URL nothing listens on: a script that sends anything there fails with
    ``network_error`` (exit 1), so an exit 2 proves the check ran before any request."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


# --- SSH: the system client against the sandbox's instance servers ------------------------------
SSH = "/usr/bin/ssh"


def ssh_keypair(folder: Path, name: str = "id_ed25519") -> tuple[Path, str]:
    """(private key path, public key line): ssh-keygen's when it is installed, else cryptography's."""
    import shutil

    key = Path(folder) / name
    if shutil.which("ssh-keygen"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "x402-test", "-f", str(key)], check=True)
    else:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        k = ed25519.Ed25519PrivateKey.generate()
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                     serialization.NoEncryption()))
        pub = k.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        Path(str(key) + ".pub").write_text(pub.decode() + " x402-test\n")
    return key, Path(str(key) + ".pub").read_text().strip()


def openssh_fingerprint(public_line: str) -> str:
    """SHA256 fingerprint computed here, independently of the sandbox (RFC 4253 key blob, base64)."""
    import base64
    import hashlib

    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts(folder: Path, ip: str, port: int, public_line: str, name: str = "known_hosts") -> Path:
    path = Path(folder) / name
    kind, blob = public_line.split()[:2]
    path.write_text(f"[{ip}]:{port} {kind} {blob}\n")
    return path


def ssh_argv(ip: str, port: int, known: Path, identity: Path | None = None, *, user: str = "root",
             batch: bool = True, extra: tuple = ()) -> list[str]:
    """The system ssh client with nothing from the user's config: the host key must be the pinned one."""
    argv = [SSH, "-F", "/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
            "-p", str(port)]
    if batch:
        argv += ["-o", "BatchMode=yes"]
    if identity is not None:
        argv += ["-i", str(identity), "-o", "IdentitiesOnly=yes", "-o", "PasswordAuthentication=no",
                 "-o", "KbdInteractiveAuthentication=no"]
    return argv + list(extra) + [f"{user}@{ip}"]
