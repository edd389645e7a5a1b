"""Benchmark the sandbox over loopback HTTP.

Starts `python -m x402_compute_sandbox` as a child process on 127.0.0.1 (its own interpreter, so the
load generator does not share the server's GIL), then measures:

1. authenticated GET /compute/instances with an X-API-Key, and with signed X-Auth-* headers (one
   fresh signature and nonce per request, all signed before the clock starts; the server recovers
   every signature), at --concurrency clients (default 16), beside the same load on
   GET /_sandbox/health (a route that does no work) in the same run; requests/second, p50 and p99
   latency, and the ratios. Then the signed GETs once more on a sandbox child whose `coincurve` import
   is made to fail, so eth-keys' pure-Python backend recovers the signatures: the baseline that
   shows what the sandbox's choice of coincurve buys (skip it with --no-native);
2. paid provisions per second per network, each paid by the official x402 SDK client
   (x402 v2 challenge; Base and Robinhood by EIP-3009, Solana by a partially signed transfer built
   against the sandbox's /rpc/solana); MegaETH through Permit2 on a second sandbox child started with
   permit2=True, which advertises MegaUSD as assetTransferMethod "permit2" and settles it through its
   Permit2 + x402ExactPermit2Proxy contracts. That 402 carries no eip2612GasSponsoring extension, so
   the child, before it serves (outside any timing), has the payer send one on-chain
   approve(Permit2, its whole MegaUSD balance) from its own key; the bench checks afterwards that
   the allowance fell by exactly what was paid.

Request counts are bounded (--requests, --provisions). Loopback only.

    .venv/bin/python bench/bench_sandbox.py [--requests 2000] [--concurrency 16] [--provisions 10] [--no-native] [--json]
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
PERMIT2_ADDRESS = "0x000000000022D473030F116dDEE9F6B43aC78BA3"   # canonical (CREATE2) Permit2, as in the sandbox


BANNER = "=" * 72


def serve_permit2_child(state_dir: str, env_file: str) -> int:
    """Child process: a permit2=True sandbox whose first test wallet has approved Permit2 (setup)."""
    sys.path.insert(0, str(ROOT))
    from x402_compute_sandbox import networks
    from x402_compute_sandbox.sandbox import Sandbox

    assert networks.PERMIT2_ADDRESS == PERMIT2_ADDRESS
    sb = Sandbox(host="127.0.0.1", port=0, state_dir=state_dir, boot_seconds=0.5, x402_version=2, permit2=True)
    w = sb.wallets[0]
    chain = sb.facilitator.chain("megaeth")
    chain.register_key(w["evm_private_key"])        # the chain sends the payer's own approve tx
    amount = sb.facilitator.balance_of("megaeth", w["evm_address"])
    chain.approve(w["evm_address"], PERMIT2_ADDRESS, amount)
    sb.write_env_file(env_file)
    sb.start(background=False)
    print(f"{BANNER}\npermit2 sandbox {sb.base_url}; Permit2 allowance {amount}\n{BANNER}", file=sys.stderr, flush=True)
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
    return 0


# `python -m x402_compute_sandbox` with coincurve unimportable (the pure-Python eth-keys backend).
WITHOUT_COINCURVE = ("import runpy, sys; sys.modules['coincurve'] = None; "
                     "runpy.run_module('x402_compute_sandbox', run_name='__main__', alter_sys=True)")


def start_server(state_dir: str, permit2: bool = False, without_coincurve: bool = False) -> tuple[subprocess.Popen, dict]:
    env_file = os.path.join(state_dir, "bench.env")
    if permit2:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-permit2-child",
               os.path.join(state_dir, "state"), env_file]
    else:
        launcher = ["-c", WITHOUT_COINCURVE] if without_coincurve else ["-m", "x402_compute_sandbox"]
        cmd = [sys.executable, *launcher, "--host", "127.0.0.1", "--port", "0",
               "--state-dir", os.path.join(state_dir, "state"), "--env-file", env_file,
               "--x402-version", "2", "--boot-seconds", "0.5"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, banner = time.time() + 120, ""
    while banner.count(BANNER) < 2:
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


def stop(proc: subprocess.Popen) -> None:
    """Terminate a sandbox child, and kill it if it does not stop within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


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


def presigned(private_key: str, path: str, count: int) -> list:
    """`count` signed header sets for GET `path`, each with its own nonce (nonces are single-use)."""
    return [signed_headers(private_key, "GET", path, b"") for _ in range(count)]


def cpu_seconds(pid) -> float | None:
    """User + system CPU time a process has used (Linux /proc), or None where that cannot be read."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def load(url: str, headers, total: int, concurrency: int, server_pid=None) -> dict:
    """`total` GETs spread over `concurrency` keep-alive clients; latency per request.

    `headers`: one dict for every request, or a list of total + concurrency dicts, one per request
    (the first `concurrency` warm the connections). With `server_pid`, also the server's CPU time per
    request: unlike rates and latencies it barely moves when other processes share the cores, and
    1000 / it is what one core (the server runs under one GIL) could serve."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_client = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]
    barrier = threading.Barrier(concurrency + 1)
    if isinstance(headers, dict):
        sets = [[headers] * (n + 1) for n in per_client]
    else:
        assert len(headers) >= total + concurrency, "one header set per request"
        it = iter(headers)
        sets = [[next(it) for _ in range(n + 1)] for n in per_client]

    def worker(n: int, mine_headers: list) -> None:
        mine = []
        with requests.Session() as s:
            s.get(url, headers=mine_headers[0])   # warm the connection outside the measurement
            barrier.wait()
            for h in mine_headers[1:]:
                t = time.perf_counter()
                r = s.get(url, headers=h)
                mine.append(time.perf_counter() - t)
                if r.status_code != 200:
                    with lock:
                        errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n, hs)) for n, hs in zip(per_client, sets)]
    for t in threads:
        t.start()
    barrier.wait()
    cpu0 = cpu_seconds(server_pid) if server_pid else None
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    cpu1 = cpu_seconds(server_pid) if server_pid else None
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    out_cpu = {} if cpu0 is None or cpu1 is None else {"server_cpu_ms_per_request": round((cpu1 - cpu0) * 1000 / len(latencies), 3)}
    return {**out_cpu, "requests": len(latencies), "errors": errors[0], "seconds": round(elapsed, 3),
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


def permit2_probe(env: dict) -> dict:
    """The unpaid 402's MegaETH requirement: it must ask for Permit2; which extensions come with it."""
    base = env["COMPUTE_BASE_URL"]
    body = json.dumps({"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "label": "probe",
                       "prepaid_hours": 24, "network": "megaeth"}, separators=(",", ":"))
    r = requests.post(base + "/compute/provision", data=body,
                      headers={"Content-Type": "application/json", "X-Accept-Networks": "megaeth"})
    if r.status_code != 402:
        raise SystemExit(f"permit2 sandbox: expected 402, got {r.status_code}")
    doc = json.loads(base64.b64decode(r.headers["PAYMENT-REQUIRED"]))
    (req,) = [a for a in doc["accepts"] if a["network"] == "eip155:4326"]
    method = (req.get("extra") or {}).get("assetTransferMethod")
    if method != "permit2":
        raise SystemExit(f"permit2 sandbox: the 402 asks for assetTransferMethod={method!r}, not permit2")
    return {"asset": req["asset"], "extensions": sorted((doc.get("extensions") or {}).keys())}


def megausd_state(env: dict, asset: str) -> tuple[int, int]:
    """(payer's MegaUSD balance, its allowance to Permit2), read from the sandbox (not timed)."""
    owner = env["WALLET_ADDRESS"]
    base = env["COMPUTE_BASE_URL"]
    bal = requests.get(base + "/_sandbox/balance", params={"network": "megaeth", "address": owner}).json()
    data = "0xdd62ed3e" + owner[2:].lower().rjust(64, "0") + PERMIT2_ADDRESS[2:].lower().rjust(64, "0")
    rpc = requests.post(env["MEGAETH_RPC_URL"], json={"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                                                      "params": [{"to": asset, "data": data}, "latest"]}).json()
    return int(bal["balance"]), int(rpc["result"], 16)


def paid_provisions(env: dict, network_caip2: str, label: str, count: int, name: str | None = None) -> dict:
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
    return {"network": name or label, "provisions": count, "succeeded": ok, "seconds": round(elapsed, 3),
            "per_second": round(ok / elapsed, 2), "median_ms": round(statistics.median(times) * 1000, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="GETs per route (bounded; max 20000)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--provisions", type=int, default=10, help="paid provisions per network (max 100)")
    ap.add_argument("--no-native", action="store_true",
                    help="skip the baseline run of signed GETs with the pure-Python secp256k1 backend")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--serve-permit2-child", nargs=2, metavar=("STATE_DIR", "ENV_FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_permit2_child:
        return serve_permit2_child(*args.serve_permit2_child)
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
            health = load(base + "/_sandbox/health", {}, total, args.concurrency, proc.pid)
            instances = load(base + "/compute/instances", key_headers, total, args.concurrency, proc.pid)
            sigs = presigned(env["PRIVATE_KEY"], "/compute/instances", total + args.concurrency)
            signed = load(base + "/compute/instances", sigs, total, args.concurrency, proc.pid)
            health2 = load(base + "/_sandbox/health", {}, total, args.concurrency, proc.pid)   # drift check
            paid = [paid_provisions(env, caip2, label, provisions)
                    for caip2, label in (("eip155:8453", "base"), ("eip155:4663", "robinhood"),
                                         ("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "solana"))]
        finally:
            stop(proc)

        signed_native = None
        if not args.no_native:   # the same signed GETs, recovered by eth-keys' pure-Python backend
            os.makedirs(os.path.join(tmp, "native"))
            proc, env3 = start_server(os.path.join(tmp, "native"), without_coincurve=True)
            try:
                sigs = presigned(env3["PRIVATE_KEY"], "/compute/instances", total + args.concurrency)
                signed_native = load(env3["COMPUTE_BASE_URL"] + "/compute/instances", sigs, total, args.concurrency,
                                     proc.pid)
            finally:
                stop(proc)

        # MegaETH through Permit2: a second sandbox child (permit2=True), after the first has stopped.
        os.makedirs(os.path.join(tmp, "permit2"))
        proc, env2 = start_server(os.path.join(tmp, "permit2"), permit2=True)
        try:
            probe = permit2_probe(env2)
            bal0, allow0 = megausd_state(env2, probe["asset"])
            row = paid_provisions(env2, "eip155:4326", "megaeth", provisions, name="megaeth/permit2")
            bal1, allow1 = megausd_state(env2, probe["asset"])
            row["paid_atomic"], row["permit2_allowance_used"] = bal0 - bal1, allow0 - allow1
            if row["succeeded"] and row["paid_atomic"] != row["permit2_allowance_used"]:
                raise SystemExit(f"megaeth/permit2: paid {row['paid_atomic']} but Permit2 allowance fell by "
                                 f"{row['permit2_allowance_used']}: not settled via Permit2")
            paid.append(row)
        finally:
            stop(proc)
    sponsored = "eip2612GasSponsoring" in probe["extensions"]

    result = {"concurrency": args.concurrency, "health": health, "instances_api_key": instances,
              "instances_signed": signed, "instances_signed_pure_python_ecc": signed_native,
              "health_again": health2, "ratio_instances_to_health": round(instances["rps"] / health["rps"], 3),
              "ratio_signed_to_api_key": round(signed["rps"] / instances["rps"], 3),
              "ratio_signed_coincurve_to_pure_python": (round(signed["rps"] / signed_native["rps"], 2)
                                                        if signed_native else None),
              "load_average": [round(x, 2) for x in os.getloadavg()],
              "paid_provisions": paid,
              "notes": ["megaeth (default sandbox) is not measured: the x402 SDK pays MegaUSD by Permit2, the "
                        "default sandbox settles the x402layer direct ERC-2612 permit route",
                        "megaeth/permit2: second sandbox child with permit2=True; its 402 asks for "
                        "assetTransferMethod permit2 and " + ("advertises" if sponsored else "does not advertise")
                        + " eip2612GasSponsoring; setup before serving, not timed: the payer approved Permit2 "
                        "once on-chain (allowance = its MegaUSD balance); allowance used == amount paid "
                        f"({paid[-1]['permit2_allowance_used']} atomic units) was checked"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.concurrency} concurrent clients, {total} GETs per route (loopback, keep-alive)")
    rows = [("GET /_sandbox/health", health), ("GET /compute/instances (X-API-Key)", instances),
            ("GET /compute/instances (X-Auth-*)", signed)]
    if signed_native:
        rows.append(("  same, pure-Python secp256k1", signed_native))
    rows.append(("GET /_sandbox/health (again)", health2))
    for name, row in rows:
        cpu = row.get("server_cpu_ms_per_request")
        print(f"  {name:38s} {row['rps']:8.1f} req/s  p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms"
              f"  errors {row['errors']}" + (f"  server CPU {cpu:.3f} ms/req" if cpu is not None else ""))
    print(f"  ratio instances/health: {result['ratio_instances_to_health']}; signed/API key: "
          f"{result['ratio_signed_to_api_key']}; signed coincurve/pure-Python: "
          f"{result['ratio_signed_coincurve_to_pure_python']}; load average {result['load_average']}")
    print("paid provisions (x402 SDK client, v2 challenge, sequential):")
    for row in paid:
        print(f"  {row['network']:15s} {row['per_second']:6.2f}/s  median {row['median_ms']:7.1f} ms  "
              f"({row['succeeded']}/{row['provisions']} ok)")
    print(f"  {'megaeth':15s} not measured (" + result["notes"][0].split(": ", 1)[1] + ")")
    print("  note: " + result["notes"][1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
