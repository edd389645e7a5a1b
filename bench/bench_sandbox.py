"""Benchmark the sandbox over loopback HTTP.

Starts `python -m x402_compute_sandbox` as a child process on 127.0.0.1 (its own interpreter, so the
load generator does not share the server's GIL), then measures:

1. authenticated GET /compute/instances with an X-API-Key, at --concurrency clients (default 16),
   beside the same load on GET /_sandbox/health (a route that does no work) in the same run;
   requests/second, p50 and p99 latency, and the ratio of the two;
2. paid provisions per second per network, each paid by the official x402 SDK client
   (x402 v2 challenge; Base and Robinhood by EIP-3009, Solana by a partially signed transfer built
   against the sandbox's /rpc/solana).

Request counts are bounded (--requests, --provisions). Loopback only.

    .venv/bin/python bench/bench_sandbox.py [--requests 2000] [--concurrency 16] [--provisions 10] [--json]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def start_server(state_dir: str) -> tuple[subprocess.Popen, dict]:
    env_file = os.path.join(state_dir, "bench.env")
    proc = subprocess.Popen(
        [sys.executable, "-m", "x402_compute_sandbox", "--host", "127.0.0.1", "--port", "0",
         "--state-dir", os.path.join(state_dir, "state"), "--env-file", env_file,
         "--x402-version", "2", "--boot-seconds", "0.5"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, banner = time.time() + 120, ""
    while banner.count("=" * 72) < 2:
        line = proc.stderr.readline()
        if not line or time.time() > deadline:
            proc.kill()
            raise SystemExit(f"sandbox did not start:\n{banner}")
        banner += line
    # Keep draining stderr so the child never blocks on a full pipe.
    threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
    env = dict(line.split("=", 1) for line in Path(env_file).read_text().splitlines()
               if line and not line.startswith("#"))
    if not env["COMPUTE_BASE_URL"].startswith("http://127."):
        proc.kill()
        raise SystemExit("refusing to benchmark a non-loopback URL")
    return proc, env


def signed_headers(private_key: str, method: str, path: str, body: bytes) -> dict:
    import hashlib
    from eth_account import Account
    from eth_account.messages import encode_defunct
    address = Account.from_key(private_key).address.lower()
    ts, nonce = str(int(time.time() * 1000)), uuid.uuid4().hex
    msg = "\n".join(["X402-COMPUTE-AUTH", "v1", "base", address, method, path,
                     hashlib.sha256(body).hexdigest(), ts, nonce])
    sig = Account.sign_message(encode_defunct(text=msg), private_key=private_key).signature
    return {"X-Auth-Address": address, "X-Auth-Chain": "base", "X-Auth-Signature": "0x" + bytes(sig).hex(),
            "X-Auth-Timestamp": ts, "X-Auth-Nonce": nonce, "X-Auth-Sig-Encoding": "hex"}


def load(url: str, headers: dict, total: int, concurrency: int) -> dict:
    """`total` GETs spread over `concurrency` keep-alive clients; latency per request."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_client = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)

    def worker(n: int) -> None:
        mine = []
        with requests.Session() as s:
            s.get(url, headers=headers)   # warm the connection outside the measurement
            barrier.wait()
            for _ in range(n):
                t = time.perf_counter()
                r = s.get(url, headers=headers)
                mine.append(time.perf_counter() - t)
                if r.status_code != 200:
                    with lock:
                        errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in per_client]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": errors[0], "seconds": round(elapsed, 3),
            "rps": round(len(latencies) / elapsed, 1), "p50_ms": round(q[49] * 1000, 2),
            "p99_ms": round(q[98] * 1000, 2)}


def sdk_client(env: dict):
    from eth_account import Account
    from solders.keypair import Keypair
    from x402 import x402ClientSync
    from x402.mechanisms.evm import EthAccountSigner
    from x402.mechanisms.evm.exact import register_exact_evm_client
    from x402.mechanisms.svm import KeypairSigner
    from x402.mechanisms.svm.exact import ExactSvmScheme

    client = x402ClientSync()
    # The sandbox's tokens sit at the real asset addresses, but USDG is not an SDK default asset and
    # the $1 default cap is a client policy we are not measuring: switch spend controls off.
    client.set_spend_controls(False)
    register_exact_evm_client(client, EthAccountSigner(Account.from_key(env["PRIVATE_KEY"])))
    client.register("solana:*", ExactSvmScheme(KeypairSigner(Keypair.from_base58_string(env["SOLANA_SECRET_KEY"])),
                                               rpc_url=env["SOLANA_RPC_URL"]))
    return client


def paid_provisions(env: dict, network_caip2: str, label: str, count: int) -> dict:
    from x402.schemas import PaymentRequired
    client = sdk_client(env)
    base = env["COMPUTE_BASE_URL"]
    body = json.dumps({"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "label": "bench",
                       "prepaid_hours": 24, "network": label}, separators=(",", ":"))
    h = {"Content-Type": "application/json"}
    ok, times = 0, []
    t_all = time.perf_counter()
    with requests.Session() as s:
        for _ in range(count):
            t = time.perf_counter()
            probe = s.post(base + "/compute/provision", data=body, headers={**h, "X-Accept-Networks": label})
            pr = PaymentRequired.model_validate_json(base64.b64decode(probe.headers["PAYMENT-REQUIRED"]))
            pr.accepts = [a for a in pr.accepts if a.network == network_caip2]
            payload = client.create_payment_payload(pr)
            header = base64.b64encode(payload.model_dump_json(by_alias=True, exclude_none=True).encode()).decode()
            paid = s.post(base + "/compute/provision", data=body, headers={**h, "PAYMENT-SIGNATURE": header})
            times.append(time.perf_counter() - t)
            if paid.status_code == 201:
                ok += 1
            else:
                print(f"  {label}: {paid.status_code} {paid.text[:200]}", file=sys.stderr)
    elapsed = time.perf_counter() - t_all
    return {"network": label, "provisions": count, "succeeded": ok, "seconds": round(elapsed, 3),
            "per_second": round(ok / elapsed, 2), "median_ms": round(statistics.median(times) * 1000, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="GETs per route (bounded; max 20000)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--provisions", type=int, default=10, help="paid provisions per network (max 100)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    args = ap.parse_args()
    total = max(args.concurrency, min(args.requests, 20_000))
    provisions = max(1, min(args.provisions, 100))

    with tempfile.TemporaryDirectory(prefix="x402-bench-") as tmp:
        proc, env = start_server(tmp)
        try:
            base = env["COMPUTE_BASE_URL"]
            raw = json.dumps({"label": "bench"}).encode()
            r = requests.post(base + "/compute/api-keys", data=raw,
                              headers={"Content-Type": "application/json",
                                       **signed_headers(env["PRIVATE_KEY"], "POST", "/compute/api-keys", raw)})
            r.raise_for_status()
            key_headers = {"X-API-Key": r.json()["api_key"]}
            health = load(base + "/_sandbox/health", {}, total, args.concurrency)
            instances = load(base + "/compute/instances", key_headers, total, args.concurrency)
            health2 = load(base + "/_sandbox/health", {}, total, args.concurrency)   # drift check
            paid = [paid_provisions(env, caip2, label, provisions)
                    for caip2, label in (("eip155:8453", "base"), ("eip155:4663", "robinhood"),
                                         ("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "solana"))]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    result = {"concurrency": args.concurrency, "health": health, "instances_api_key": instances,
              "health_again": health2, "ratio_instances_to_health": round(instances["rps"] / health["rps"], 3),
              "paid_provisions": paid,
              "notes": ["megaeth is not measured: the x402 SDK pays MegaUSD by Permit2, the sandbox settles "
                        "the x402layer direct ERC-2612 permit route"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.concurrency} concurrent clients, {total} GETs per route (loopback, keep-alive)")
    for name, row in (("GET /_sandbox/health", health), ("GET /compute/instances (X-API-Key)", instances),
                      ("GET /_sandbox/health (again)", health2)):
        print(f"  {name:38s} {row['rps']:8.1f} req/s  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms"
              f"  errors {row['errors']}")
    print(f"  ratio instances/health: {result['ratio_instances_to_health']}")
    print("paid provisions (x402 SDK client, v2 challenge, sequential):")
    for row in paid:
        print(f"  {row['network']:10s} {row['per_second']:6.2f}/s  median {row['median_ms']:7.1f} ms  "
              f"({row['succeeded']}/{row['provisions']} ok)")
    print("  megaeth    not measured (" + result["notes"][0].split(": ", 1)[1] + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
