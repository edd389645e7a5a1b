"""Benchmark the sandbox's start and its instances' SSH servers, over loopback.

1. start time: `python -m x402_compute_sandbox` spawned until `/_sandbox/health` answers, --starts
   times; with `--baseline DIR` (another checkout, e.g. `git archive main | tar -x -C DIR`) the
   same is timed for DIR's sandbox, alternating, and the ratio printed;
2. SSH: one instance provisioned by the skill's provision.py (--wait-ssh) with a fresh key pair,
   then the system ssh client, pinned to the published host key, runs `true` --logins times.
   Printed: the first login (one-time costs of the first key exchange), then median and p90 of the others,
   beside the banner check `--wait-ssh` does (TCP connect + identification line) and the client's
   own start (`ssh -G`, no network) in the same run, with their ratios.

    .venv/bin/python bench/bench_ssh.py [--starts 3] [--logins 20] [--baseline DIR] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(tree: Path, state: str, port: int, extra=()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.Popen([sys.executable, "-m", "x402_compute_sandbox", "--port", str(port), "--state-dir", state,
                             *extra], cwd=str(tree), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def wait_health(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"the sandbox exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("the sandbox did not answer in time")
            time.sleep(0.01)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)   # the child we started, by its own process group
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start_time(tree: Path) -> float:
    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        t = time.perf_counter()
        proc = spawn(tree, os.path.join(d, "s"), port)
        try:
            wait_health(port, proc)
            return time.perf_counter() - t
        finally:
            stop(proc)


def stats(xs: list[float]) -> dict:
    xs = sorted(xs)
    return {"median_ms": round(statistics.median(xs) * 1000, 1),
            "p90_ms": round(xs[min(len(xs) - 1, int(0.9 * len(xs)))] * 1000, 1), "n": len(xs)}


def bench_ssh(logins: int) -> dict:
    from tests.helpers import known_hosts, ssh_argv, ssh_keypair

    sys.path.insert(0, str(ROOT / "skills" / "x402-compute" / "scripts"))
    from x402_compute.ssh.wait import ssh_banner

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        port = free_port()
        proc = spawn(ROOT, str(tmp / "s"), port, ("--boot-seconds", "0.5", "--env-file", str(tmp / "sb.env")))
        try:
            wait_health(port, proc)
            key, _ = ssh_keypair(tmp)
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")}
            env["X402_COMPUTE_STATE_DIR"] = str(tmp / "client")
            script = ROOT / "skills" / "x402-compute" / "scripts"
            run = subprocess.run([sys.executable, str(script / "provision.py"), "vc2-1c-1gb", "lax", "--days", "1",
                                  "--yes", "--wait-ssh", "--poll-interval", "0.2", "--ssh-key-file", f"{key}.pub",
                                  "--env-file", str(tmp / "sb.env")], env=env, capture_output=True, text=True,
                                 timeout=180)
            doc = json.loads(run.stdout)
            if run.returncode != 0:
                raise SystemExit(f"provision failed: {doc}")
            iid = doc["order"]["id"]
            details = subprocess.run([sys.executable, str(script / "instance_details.py"), iid, "--env-file",
                                      str(tmp / "sb.env")], env=env, capture_output=True, text=True, timeout=60)
            raw = json.loads(details.stdout)["instance"]["raw"]
            ip, sport = raw["ip_address"], raw["ssh_port"]
            argv = ssh_argv(ip, sport, known_hosts(tmp, ip, sport, raw["ssh_host_public_key"]), key) + ["true"]

            def login() -> float:
                t = time.perf_counter()
                subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
                return time.perf_counter() - t

            # --wait-ssh's banner check already imported and started asyncssh; the first login still
            # pays one-time costs (the first key exchange's lazy imports, loading the host key).
            first = login()
            warm = [login() for _ in range(logins)]
            banner, client = [], []
            for _ in range(logins):
                t = time.perf_counter()
                assert ssh_banner(ip, sport)
                banner.append(time.perf_counter() - t)
                t = time.perf_counter()
                subprocess.run([argv[0], "-F", "/dev/null", "-G", f"root@{ip}"], check=True, capture_output=True)
                client.append(time.perf_counter() - t)
        finally:
            stop(proc)
    out = {"first_login_ms": round(first * 1000, 1), "login": stats(warm), "banner_check": stats(banner),
           "ssh_client_start": stats(client)}
    out["login_over_banner"] = round(out["login"]["median_ms"] / out["banner_check"]["median_ms"], 1)
    out["login_over_client_start"] = round(out["login"]["median_ms"] / out["ssh_client_start"]["median_ms"], 1)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--starts", type=int, default=3)
    p.add_argument("--logins", type=int, default=20)
    p.add_argument("--baseline", type=Path, default=None, help="another checkout to time the start of, alternating")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if not shutil.which("ssh"):
        raise SystemExit("the system ssh client is needed for the SSH figures")
    res: dict = {}
    ours, base = [], []
    for _ in range(a.starts):
        ours.append(start_time(ROOT))
        if a.baseline:
            base.append(start_time(a.baseline))
    res["start_s"] = {"median": round(statistics.median(ours), 2), "all": [round(x, 2) for x in ours]}
    if base:
        res["baseline_start_s"] = {"median": round(statistics.median(base), 2), "all": [round(x, 2) for x in base]}
        res["start_ratio"] = round(statistics.median(ours) / statistics.median(base), 2)
    res["ssh"] = bench_ssh(a.logins)
    if a.json:
        print(json.dumps(res))
        return 0
    print("=" * 72)
    print(f"sandbox start (spawn -> /_sandbox/health): median {res['start_s']['median']} s {res['start_s']['all']}")
    if base:
        print(f"  baseline {a.baseline}: median {res['baseline_start_s']['median']} s "
              f"{res['baseline_start_s']['all']}; ratio {res['start_ratio']}")
    s = res["ssh"]
    print(f"first ssh login (true): {s['first_login_ms']} ms")
    print(f"ssh login round trip (true): median {s['login']['median_ms']} ms, p90 {s['login']['p90_ms']} ms "
          f"(n={s['login']['n']})")
    print(f"  banner check (--wait-ssh): median {s['banner_check']['median_ms']} ms; login/banner "
          f"{s['login_over_banner']}x")
    print(f"  ssh client start alone (ssh -G): median {s['ssh_client_start']['median_ms']} ms; login/client "
          f"{s['login_over_client_start']}x")
    print("=" * 72)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
