"""Run inside ``unshare -rn`` by test_ai_targets.py (a network namespace of its own: the addresses
below are its loopback interface, nothing reaches the real network). The hostile API sits on a
non-loopback address and names loopback and private addresses as AI Machines' IPs; listeners there
count connections. Prints one JSON document: each ai_chat run's exit code and error, the counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import clean_env, run_script  # noqa: E402
from tests.hostile.netns_ssh import API_ADDR, listen  # noqa: E402
from tests.hostile.stub import HostileAPI  # noqa: E402

PORT = 8080


def main() -> None:
    home = Path(sys.argv[1])
    for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", f"{API_ADDR}/32", "dev", "lo"],
                ["ip", "addr", "add", "10.0.0.5/32", "dev", "lo"]):
        subprocess.run(cmd, check=True)
    listeners = {addr: listen(addr, PORT) for addr in ("127.0.0.1", "10.0.0.5")}
    api = HostileAPI(bind=API_ADDR).start()
    env = clean_env({"COMPUTE_BASE_URL": api.base_url, "PRIVATE_KEY": "0x" + "5c" * 32, "COMPUTE_TIMEOUT": "10"}, home=home)
    keys = home / "state" / "ai-keys"
    keys.mkdir(parents=True, mode=0o700, exist_ok=True)
    runs = {}
    for name, host, extra in (("127.0.0.1", "127.0.0.1", ()), ("10.0.0.5", "10.0.0.5", ()), ("localhost", "localhost", ()),
                              ("10.0.0.5 --allow-private-address", "10.0.0.5", ("--allow-private-address",))):
        order = api.add_order(ip_address=host, metadata={"ai": {"model_id": "llama-3.2-3b", "port": PORT, "endpoint": None}})
        (keys / f"{order['id']}.key").write_text("sk-" + "a1b2c3d4" * 4 + "\n")
        os.chmod(keys / f"{order['id']}.key", 0o600)
        # plain http to a non-loopback API: the human's flag, for this test only
        code, doc, _ = run_script("ai_chat.py", order["id"], "hi", "--allow-insecure-http", "--reply-timeout", "5", *extra, env=env)
        runs[name] = {"exit": code, "error": doc.get("error")}
    print(json.dumps({"runs": runs, "listeners": {k: v["connections"] for k, v in listeners.items()}}))
    api.stop()


if __name__ == "__main__":
    main()
