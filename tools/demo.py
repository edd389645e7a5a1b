#!/usr/bin/env python3
"""The README's main job, end to end against a local sandbox (``bash dev.sh demo``).

Starts the sandbox on a free loopback port (temp state dir, 2 s boot time), then runs the
skill's scripts exactly as a user would, each as its own process with ``--env-file`` and a
temporary X402_COMPUTE_STATE_DIR:

    browse_plans.py → provision.py (cheapest Vultr plan, --days 1, --yes --wait --wait-ssh,
    with a key pair made for the demo) → instance_details.py → extend_instance.py --hours 24
    --yes → a real `ssh root@<ip> -p <port> 'uname -a'` into the instance, the host key pinned
    to the one the API published → destroy_instance.py --yes (and the SSH port is closed)

The key pair comes from ssh-keygen (asyncssh when ssh-keygen is absent); the login uses the
system ssh client with -F /dev/null (asyncssh when ssh is absent). Each step's key facts go to
stderr; one JSON summary goes to stdout. Exits non-zero if any step fails, and always stops the
sandbox. The wallets are the sandbox's test wallets on local chains: nothing real is spent.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "skills" / "x402-compute" / "scripts"
PY = sys.executable


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(base: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox exited early (code {proc.returncode})")
        try:
            with urllib.request.urlopen(base + "/_sandbox/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the sandbox did not answer /_sandbox/health within {timeout:g} s")


def make_keypair(folder: Path) -> tuple[Path, str]:
    """An ed25519 key pair for the demo: (private key path, how it was made)."""
    key = folder / "id_ed25519"
    if shutil.which("ssh-keygen"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "x402-demo", "-f", str(key)],
                       check=True, stdin=subprocess.DEVNULL)
        return key, "ssh-keygen"
    import asyncssh

    k = asyncssh.generate_private_key("ssh-ed25519", comment="x402-demo")
    k.write_private_key(str(key))
    os.chmod(key, 0o600)
    k.write_public_key(str(key) + ".pub")
    return key, "asyncssh"


HOST_KEY_LINE = re.compile(r"^ssh-ed25519 [A-Za-z0-9+/]{40,}={0,2}$")


def pinned_host(raw: dict) -> tuple[str, int, str, str]:
    """(ip, port, host public key line, fingerprint) from the API's order, each checked before use:
    the server's strings become an argv and a known_hosts line only once validated."""
    ip, port, line, fp = (raw.get("ip_address"), raw.get("ssh_port"), raw.get("ssh_host_public_key"),
                          raw.get("ssh_host_key_fingerprint"))
    if not isinstance(ip, str) or not ipaddress.ip_address(ip).is_loopback or ip.count(".") != 3:
        raise RuntimeError(f"unexpected instance address {ip!r}: the sandbox hands out 127.x.y.z only")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise RuntimeError(f"unexpected ssh_port {port!r}")
    if not isinstance(line, str) or not HOST_KEY_LINE.match(line):
        raise RuntimeError("the instance published no usable ssh-ed25519 host key")
    digest = hashlib.sha256(base64.b64decode(line.split()[1])).digest()
    if fp != "SHA256:" + base64.b64encode(digest).decode().rstrip("="):
        raise RuntimeError("the published host key fingerprint does not match the published key")
    return ip, port, line, fp


def printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def ssh_uname(key: Path, ip: str, port: int, host_key: str, folder: Path) -> tuple[str, str, list[str]]:
    """Log in as root and run `uname -a`: (its output, the client used, the command line shown)."""
    known = folder / "known_hosts"
    known.write_text(f"[{ip}]:{port} {host_key}\n")
    argv = ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-p", str(port), f"root@{ip}", "uname -a"]
    if shutil.which("ssh"):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"ssh exited {proc.returncode}: {printable(proc.stderr.strip())[:300]}")
        return proc.stdout.strip(), "ssh", argv
    import asyncio

    import asyncssh

    async def run() -> str:
        async with asyncssh.connect(ip, port, username="root", client_keys=[str(key)], known_hosts=str(known),
                                    config=None, agent_path=None) as conn:
            res = await conn.run("uname -a", check=True, timeout=60)
            return str(res.stdout).strip()

    return asyncio.run(run()), "asyncssh", argv


class Steps:
    def __init__(self, env_file: Path, state_dir: Path) -> None:
        self.env_file = env_file
        self.env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "SYSTEMROOT")}
        self.env["X402_COMPUTE_STATE_DIR"] = str(state_dir)
        self.results: list[dict] = []

    def run(self, name: str, *args: str, timeout: float = 180) -> dict | None:
        script = SCRIPTS / name
        if not script.exists():
            say(f"  skipped: {name} is not in this tree yet")
            self.results.append({"step": name, "ok": None, "skipped": "script missing"})
            return None
        t0 = time.monotonic()
        proc = subprocess.run([PY, str(script), *args, "--env-file", str(self.env_file)], env=self.env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        took = round(time.monotonic() - t0, 2)
        for line in proc.stderr.splitlines():
            say(f"  | {line}")
        try:
            doc = json.loads(proc.stdout)
        except ValueError:
            doc = {"ok": False, "error": {"code": "bad_output", "message": proc.stdout[:300]}}
        good = proc.returncode == 0 and doc.get("ok") is True
        rec = {"step": name, "ok": good, "exit_code": proc.returncode, "seconds": took}
        if not good:
            rec["error"] = doc.get("error")
            say(f"  FAILED ({proc.returncode}): {json.dumps(doc.get('error'))}")
        self.results.append(rec)
        return doc if good else None


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="x402-demo-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env_file = tmp / "sandbox.env"
    log = open(tmp / "sandbox.log", "wb")
    say(f"starting the sandbox on {base} (state in {tmp})")
    sb = subprocess.Popen(
        [PY, "-m", "x402_compute_sandbox", "--port", str(port), "--seed", "0", "--state-dir", str(tmp / "sandbox"), "--boot-seconds", "2", "--env-file", str(env_file)],
        cwd=str(ROOT),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    summary: dict = {"ok": False, "base_url": base, "steps": []}
    try:
        wait_health(base, sb)
        for _ in range(50):  # the env file is written at start-up, before serving
            if env_file.exists():
                break
            time.sleep(0.1)
        steps = Steps(env_file, tmp / "client-state")
        summary["steps"] = steps.results

        say("1. browse_plans.py: the cheapest Vultr plans")
        plans = steps.run("browse_plans.py", "--provider", "vultr", "--limit", "5")
        plan, region = "vc2-1c-1gb", "lax"
        if plans:
            cands = [p for p in plans.get("plans", []) if p.get("id", "").startswith("vc2-")] or plans.get("plans", [])
            if cands:
                plan = cands[0]["id"]
                locs = cands[0].get("locations") or [region]
                region = region if region in locs else locs[0]
            say(f"  {plans.get('count')} plans; picked {plan} in {region} at {cands[0].get('hourly_usd') if cands else '?'} USD/h")

        key, made_by = make_keypair(tmp)
        say(f"2. provision.py {plan} {region} --days 1 --yes --wait --wait-ssh --ssh-key-file {key}.pub  (key pair from {made_by})")
        prov = steps.run("provision.py", plan, region, "--days", "1", "--yes", "--wait", "--wait-ssh", "--ssh-key-file", f"{key}.pub", "--poll-interval", "0.5", "--wait-timeout", "120")
        if not prov:
            raise SystemExit(1)
        order, pay, ssh = prov["order"], prov["payment"], prov.get("ssh") or {}
        iid = order["id"]
        say(f"  order {iid}: {order['state']} at {order['ip']}, expires {order['expires_at']}")
        say(f"  paid {pay['amount_usd']} {pay['asset_symbol']} on {pay['network']} (tx {pay['tx_hash']})")
        say(f"  ssh: {ssh.get('command')}  banner: {ssh.get('banner')}")
        summary["instance"] = {"id": iid, "plan": plan, "region": region, "ip": order["ip"], "ssh": ssh.get("command"), "banner": ssh.get("banner")}
        summary["payments"] = [{"step": "provision", "amount_usd": pay["amount_usd"], "network": pay["network"], "tx_hash": pay["tx_hash"]}]

        say(f"3. instance_details.py {iid}")
        det = steps.run("instance_details.py", iid)
        raw: dict = {}
        if det:
            inst = det.get("instance") or det
            raw = inst.get("raw") or {}
            say(f"  state {inst.get('state')}, ip {inst.get('ip')}, hours left {inst.get('hours_left')}")
            say(f"  host key {printable(str(raw.get('ssh_host_key_fingerprint')))} ({printable(str(raw.get('ssh_host_key_type')))})")

        say(f"4. extend_instance.py {iid} --hours 24 --yes")
        ext = steps.run("extend_instance.py", iid, "--hours", "24", "--yes")
        if ext:
            o, p = ext["order"], ext["payment"]
            say(f"  expiry {o['old_expires_at']} -> {o['new_expires_at']}; paid {p['amount_usd']} {p['asset_symbol']}")
            summary["payments"].append({"step": "extend", "amount_usd": p["amount_usd"], "network": p["network"], "tx_hash": p["tx_hash"]})
            summary["instance"]["expires_at"] = o["new_expires_at"]

        say("5. log in: ssh root@<ip> -p <port> 'uname -a' (host key pinned to the published one)")
        t0 = time.monotonic()
        try:
            ip, port, host_key, fp = pinned_host(raw)
            uname, client, argv = ssh_uname(key, ip, port, host_key, tmp)
            took = round(time.monotonic() - t0, 2)
            say(f"  $ {' '.join(argv[:-1])} 'uname -a'" if client == "ssh" else
                "  (no ssh client here: asyncssh logged in the same way, the host key pinned)")
            say(f"  {printable(uname)}")
            summary["ssh_login"] = {"client": client, "host_key_fingerprint": fp, "uname": printable(uname), "seconds": took}
            steps.results.append({"step": "ssh uname -a", "ok": True, "exit_code": 0, "seconds": took})
        except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as e:
            say(f"  FAILED: {e}")
            steps.results.append({"step": "ssh uname -a", "ok": False, "error": str(e)})

        say(f"6. destroy_instance.py {iid} --yes")
        des = steps.run("destroy_instance.py", iid, "--yes")
        if des:
            lost = des.get("prepaid_time_lost") or {}
            say(f"  destroyed; {lost.get('hours')} prepaid hours" + (f" (about ${lost['usd']})" if lost.get("usd") else "") + " forfeited")
            if "ssh_login" in summary:
                try:
                    socket.create_connection((ip, port), timeout=3).close()
                    closed = False
                except OSError:
                    closed = True
                say(f"  SSH port {'closed' if closed else 'STILL OPEN'}")
                steps.results.append({"step": "ssh port closed after destroy", "ok": closed})
        summary["ok"] = all(r["ok"] is not False for r in steps.results)
        summary["skipped"] = [r["step"] for r in steps.results if r["ok"] is None]
    except SystemExit:
        pass
    except Exception as e:  # noqa: BLE001 - the demo reports every failure in its summary
        summary["error"] = f"{type(e).__name__}: {e}"
        say(f"demo failed: {summary['error']}")
    finally:
        if sb.poll() is None:
            os.killpg(sb.pid, signal.SIGTERM)  # the sandbox we started, by its own process group
            try:
                sb.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(sb.pid, signal.SIGKILL)
                sb.wait()
        log.close()
        if summary.get("ok"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            summary["sandbox_log"] = str(tmp / "sandbox.log")
        say("sandbox stopped")
    print(json.dumps(summary, indent=2))
    return 0 if summary.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
