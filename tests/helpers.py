"""Shared test helpers: where the bundle lives and how to run its scripts."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

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


def wait_until(check, what: str, *, timeout: float = 30.0, interval: float = 0.02):
    """Wait for an event: return ``check()``'s first truthy value, polling; fail naming ``what``
    if it has not happened within ``timeout`` (generous: a deadline for a hang, not a speed
    measurement). Tests wait on the event this way instead of sleeping a guessed time."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def finishes(fn, what: str, *, timeout: float = 30.0):
    """``fn()``'s result (or its exception), failing naming ``what`` if it is still running after
    ``timeout``: a guard against a hang (a deadline many times what it needs), not a speed check."""
    out: dict = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise AssertionError(f"{what} was still running after {timeout:g} s (a hang)")
    if "error" in out:
        raise out["error"]
    return out.get("value")


def run_script(name: str, *args: str, env: dict, input: str | None = None, timeout: float = 60) -> tuple[int, dict, str]:
    """Run a bundle script as a subprocess; stdout must be exactly one JSON document.

    The process is forked from a helper that has the third-party libraries imported
    (tests/forkserver.py: same exit status, stdout, stderr, stdin and environment as a fresh
    interpreter; X402_TEST_SUBPROCESS=1 starts each one from scratch instead)."""
    from tests import forkserver

    proc = forkserver.run(str(SCRIPTS / name), list(args), env=env, input=input, timeout=timeout)
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


# --- paid scripts against the sandbox (shared by the e2e and hostile tests) ---------------------

PLAN, REGION = "vc2-1c-1gb", "lax"


NETS = ("base", "solana", "megaeth", "robinhood")


def wallet_env(sb, w: dict, home: Path, **extra) -> dict:
    env = dict(sb.env)
    env.update({"PRIVATE_KEY": w["evm_private_key"], "WALLET_ADDRESS": w["evm_address"],
                "SOLANA_SECRET_KEY": w["solana_secret_key"], "SOLANA_WALLET_ADDRESS": w["solana_address"]})
    env.update(extra)
    return clean_env(env, home=home)


def owner(sb, w: dict, network: str) -> str:
    return w["solana_address"] if sb.facilitator.network(network).kind == "svm" else w["evm_address"]


def balances(sb, w: dict) -> dict:
    return {n: sb.facilitator.balance_of(n, owner(sb, w, n)) for n in NETS}


def ledger(state: Path):
    """The SQLite ledger of a state folder (what the scripts wrote there), or None if none was made."""
    if not (Path(state) / "ledger.sqlite3").exists():
        return None
    from x402_compute.payments.journal import ledger_of

    return ledger_of(Path(state))


def state_entries(state: Path) -> list[dict]:
    """The journal entries in a state folder's ledger, oldest first."""
    led = ledger(state)
    return led.entries() if led is not None else []


def journal_entries(home: Path) -> list[dict]:
    return state_entries(home / "state")


def payee_pins(state: Path) -> dict:
    led = ledger(state)
    return led.pins() if led is not None else {}


def fail_doc(res, code: int, err_code: str):
    rc, doc, err = res
    assert rc == code and doc["ok"] is False and doc["error"]["code"] == err_code, (rc, doc, err)
    return doc


class Proxy:
    """A loopback proxy in front of the sandbox. ``strip_key``: behave like a server that ignores
    Idempotency-Key (compute-api.md §13 #11 is open for production). ``drop_paid``: forward that
    many paid requests, then close the connection without passing the answer on. ``swallow_paid``:
    never forward a paid request (the signed payment never reaches the server), close instead."""

    def __init__(self, upstream: str, *, strip_key: bool = False, drop_paid: int = 0, swallow_paid: bool = False):
        proxy = self
        self.strip_key, self.drop_paid, self.paid_requests, self.swallow_paid = strip_key, drop_paid, 0, swallow_paid
        self.payment_headers: list[str] = []

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _go(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                skip = ("host", "content-length", "connection") + (("idempotency-key",) if proxy.strip_key else ())
                hdrs = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                paid = [v for k, v in hdrs.items() if k.lower() in ("x-payment", "payment-signature")]
                if paid:
                    proxy.paid_requests += 1
                    proxy.payment_headers += paid
                    if proxy.swallow_paid:
                        self.close_connection = True
                        return
                try:
                    r = requests.request(self.command, upstream + self.path, data=body, headers=hdrs, timeout=30)
                except requests.RequestException:
                    r = None
                if r is None or (paid and proxy.drop_paid > 0):
                    if paid and r is not None:
                        proxy.drop_paid -= 1
                    self.close_connection = True  # the work is done upstream; the answer is lost
                    return
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_DELETE = _go

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


def reconcile_at(monkeypatch, capsys, env: dict, now: float, *args: str):
    """reconcile.py in this process, the chain check's clock set to ``now``."""
    import x402_compute.payments.onchain as onchain

    monkeypatch.setattr(onchain, "_now", lambda: now)
    for k in list(os.environ):
        if k not in env:
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(sys, "argv", ["reconcile.py", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ex:
        runpy.run_path(str(SCRIPTS / "reconcile.py"), run_name="__main__")
    doc = json.loads(capsys.readouterr().out)
    assert ex.value.code == 0 and doc["ok"] is True, doc
    return doc


def swallowed_payment(sb, tools, tmp_path, network):
    proxy = Proxy(sb.base_url, swallow_paid=True)
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    env = wallet_env(sb, w, tmp_path, COMPUTE_BASE_URL=proxy.url)
    before = balances(sb, w)
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", network, env=env), 4, "payment_outcome_unknown")
    assert proxy.paid_requests == 2 and len(set(proxy.payment_headers)) == 1  # signed once, never delivered
    assert balances(sb, w) == before
    return proxy, w, env, doc["error"]["details"]["journal_id"]


def fresh_tempo_key(sb, usd: int = 50) -> str:
    from eth_account import Account

    key = "0x" + uuid.uuid4().hex * 2
    sb.app.tempo.fund(Account.from_key(key).address, usd * 10**6)
    return key


def tempo_env(sb, home: Path, key: str | None, **extra) -> dict:
    env = {"COMPUTE_BASE_URL": sb.base_url, "TEMPO_RPC_URL": sb.env["TEMPO_RPC_URL"], **extra}
    if key:
        env["PRIVATE_KEY"] = key
    return clean_env(env, home=home)


MCP_TOOLS = {
    "browse_plans", "browse_regions", "browse_os", "quote_provision", "provision", "quote_extend", "extend_instance",
    "list_instances", "instance_details", "wait_for_instance", "resize_instance", "destroy_instance",
    "get_one_time_password", "create_api_key", "list_api_keys", "revoke_api_key", "credits_balance", "credits_topup",
    "budget_status", "reconcile", "ssh_exec", "quote_resize", "ai_chat", "keepalive",
    "quote_topup",  # not in the list: with COMPUTE_REQUIRE_QUOTE=1 a top-up needs a quote_id too
}


def npm_ci_once(pkg_dir: Path, name: str, *flags: str, timeout: float = 600) -> Path:
    """``npm ci`` of ``pkg_dir``'s committed package.json + package-lock.json into
    ``.cache/<name>-<lock hash>``, once per lock version even with several pytest workers (a file
    lock and a stamp). Never the user's npm configuration beyond what npm reads by itself."""
    import fcntl
    import hashlib
    import shutil

    lock = (pkg_dir / "package-lock.json").read_bytes()
    target = ROOT / ".cache" / f"{name}-{hashlib.sha256(lock).hexdigest()[:12]}"
    target.parent.mkdir(exist_ok=True)
    stamp = target / ".installed"
    with open(str(target) + ".lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not stamp.exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            for f in ("package.json", "package-lock.json"):
                shutil.copy(pkg_dir / f, target / f)
            proc = subprocess.run(["npm", "ci", *flags, "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                                  cwd=target, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, "npm_config_update_notifier": "false"})
            assert proc.returncode == 0, f"npm ci of {name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            stamp.write_text("ok\n")
    return target


def budget_race(envs: list[dict], *, n: int = 8, fits: int = 3) -> tuple[list[dict], list[dict]]:
    """``n`` provision.py runs started at once (env ``i % len(envs)``) against a budget that holds
    ``fits`` of them: asserts exactly ``fits`` paid and the others were refused by the budget
    (exit 3, budget_exceeded); returns (paid documents, refused documents)."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, str(SCRIPTS / "provision.py"), PLAN, REGION, "--days", "1", "--yes"],
                              env=envs[i % len(envs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        results.append((p.returncode, json.loads(out), err))
    paid = [d for rc, d, _ in results if rc == 0]
    refused = [d for rc, d, _ in results if rc == 3]
    assert len(paid) == fits and len(refused) == n - fits, [(rc, d.get("error", {}).get("code")) for rc, d, _ in results]
    assert all(d["error"]["code"] == "budget_exceeded" for d in refused)
    return paid, refused
