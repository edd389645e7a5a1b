"""`python -m x402_compute_sandbox`: loopback only, banner without secrets, env file usable by scripts."""
import os
import stat
import subprocess
import sys
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_refuses_non_loopback_host(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "x402_compute_sandbox", "--host", "0.0.0.0",
                           "--state-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "loopback" in proc.stderr
    assert not (tmp_path / "sandbox.sqlite3").exists()


def test_runs_and_writes_env_file(tmp_path):
    env_file = tmp_path / "sb.env"
    proc = subprocess.Popen([sys.executable, "-m", "x402_compute_sandbox", "--port", "0", "--state-dir",
                             str(tmp_path / "state"), "--env-file", str(env_file), "--boot-seconds", "0.2",
                             "--x402-version", "2", "--stripe"],
                            cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        banner, deadline = "", time.time() + 60
        while banner.count("=" * 72) < 2 and time.time() < deadline:
            line = proc.stderr.readline()
            assert line, banner
            banner += line
        assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
        env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line and not line.startswith("#"))
        for k in ("COMPUTE_BASE_URL", "PRIVATE_KEY", "WALLET_ADDRESS", "SOLANA_SECRET_KEY", "SOLANA_WALLET_ADDRESS",
                  "BASE_RPC_URL", "SOLANA_RPC_URL", "MEGAETH_RPC_URL", "ROBINHOOD_RPC_URL"):
            assert env.get(k), k
        assert env["COMPUTE_BASE_URL"] in banner and env["WALLET_ADDRESS"] in banner
        assert env["PRIVATE_KEY"] not in banner and env["SOLANA_SECRET_KEY"] not in banner
        assert "new, from genesis" in banner
        url = env["COMPUTE_BASE_URL"]
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/_sandbox/health", timeout=5).json() == {"ok": True}
        r = requests.post(url + "/compute/provision", json={"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284})
        assert r.status_code == 402 and "PAYMENT-REQUIRED" in r.headers
        r = requests.post(env["BASE_RPC_URL"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
        assert r.json()["result"] == hex(8453)
        from eth_account import Account
        assert Account.from_key(env["PRIVATE_KEY"]).address == env["WALLET_ADDRESS"]
        # --stripe: test card values in the env file (never in the banner), and with that file alone
        # (no wallet in the environment) a provision pays by card.
        assert env["STRIPE_SECRET_KEY"].startswith("sk_test_") and env["STRIPE_PAYMENT_METHOD"].startswith("pm_")
        assert env["STRIPE_API_BASE"].startswith("http://127.0.0.1:") and env["STRIPE_API_BASE"] in banner
        assert env["STRIPE_SECRET_KEY"] not in banner
        probe = requests.post(url + "/compute/provision", json={"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284})
        assert probe.status_code == 402 and 'method="stripe"' in probe.headers["WWW-Authenticate"]
        from tests.helpers import clean_env, run_script
        code, doc, err = run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--pay", "stripe", "--yes",
                                    "--env-file", str(env_file), env=clean_env(home=tmp_path / "home"), timeout=120)
        assert code == 0 and doc["ok"] is True, (code, doc, err)
        assert doc.get("data", doc)["payment"]["method"] == "stripe"
        assert env["STRIPE_SECRET_KEY"] not in err + str(doc)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # The chains in that state folder were built from seed 0: another seed is refused, not mixed in.
    other = subprocess.run([sys.executable, "-m", "x402_compute_sandbox", "--port", "0", "--seed", "1", "--state-dir",
                            str(tmp_path / "state")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "--seed 0" in other.stderr and "--seed 1" in other.stderr, other.stderr
