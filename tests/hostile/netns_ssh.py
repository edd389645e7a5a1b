"""Run inside ``unshare -rn`` by test_ssh_targets.py: a network namespace of its own, so the private
and loopback addresses below are this namespace's loopback interface and nothing here can reach
the real network. Puts the hostile API on a non-loopback address (198.51.100.7), listens where a
hostile API points SSH, runs the real scripts, and prints one JSON document: each run's exit code
and error, and how many connections each listener saw."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import clean_env, run_script  # noqa: E402
from tests.hostile.stub import HostileAPI  # noqa: E402

API_ADDR = "198.51.100.7"  # TEST-NET-2: the API's address, not loopback
PORT = 2222


def listen(addr: str, port: int, family=socket.AF_INET) -> dict:
    """A TCP listener that counts the connections it accepts (and closes them at once)."""
    seen = {"addr": addr, "port": port, "connections": 0}
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(16)

    def loop():
        while True:
            conn, _ = s.accept()
            seen["connections"] += 1
            conn.close()

    threading.Thread(target=loop, daemon=True).start()
    return seen


def main() -> None:
    home = Path(sys.argv[1])
    key = Path(sys.argv[2])
    for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", f"{API_ADDR}/32", "dev", "lo"],
                ["ip", "addr", "add", "10.0.0.5/32", "dev", "lo"]):
        subprocess.run(cmd, check=True)
    listeners = {name: listen(addr, port, fam) for name, addr, port, fam in [
        ("127.0.0.2", "127.0.0.2", PORT, socket.AF_INET), ("10.0.0.5", "10.0.0.5", PORT, socket.AF_INET),
        ("127.0.0.1", "127.0.0.1", PORT, socket.AF_INET), ("::1", "::1", PORT, socket.AF_INET6),
        ("127.0.0.1:22", "127.0.0.1", 22, socket.AF_INET)]}
    api = HostileAPI(bind=API_ADDR).start()
    env = clean_env({"COMPUTE_BASE_URL": api.base_url, "PRIVATE_KEY": "0x" + "5c" * 32, "COMPUTE_TIMEOUT": "10"}, home=home)
    http = ("--allow-insecure-http",)  # plain http to a non-loopback API: the human's flag, for this test only
    runs = {}
    for host in ("127.0.0.2", "10.0.0.5", "::ffff:127.0.0.1", "localhost"):
        order = api.add_order(ip_address=host, ssh_port=PORT)
        code, doc, _ = run_script("ssh_exec.py", order["id"], *http, "--identity", str(key), "--", "true", env=env)
        runs[host] = {"exit": code, "error": doc.get("error")}
    # --wait-ssh after a paid provision: the stub's instances answer at 127.0.0.1 (port 22)
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", "--wait-ssh", "--wait-timeout", "20",
                              "--poll-interval", "0.2", *http, env=env)
    runs["provision --wait-ssh"] = {"exit": code, "error": doc.get("error")}
    # the control: the human's flag lets the same address through, and its listener sees the connection
    order = api.add_order(ip_address="10.0.0.5", ssh_port=PORT)
    code, doc, _ = run_script("ssh_exec.py", order["id"], *http, "--allow-private-address", "--identity", str(key), "--", "true", env=env)
    runs["10.0.0.5 --allow-private-address"] = {"exit": code, "error": doc.get("error")}
    print(json.dumps({"runs": runs, "listeners": listeners, "paid": len(api.paid_requests())}))
    api.stop()


if __name__ == "__main__":
    main()
