#!/usr/bin/env python3
"""Client-side cost of one paid provision, ours beside the official x402 SDK client (2.25.0).

One in-process sandbox on 127.0.0.1 (x402 v2 challenges, which both clients speak). Each
run is: unpaid POST /compute/provision → 402 → build and sign one payment → the paid
retry → 201. Server time is measured inside the sandbox (every request its app handles,
including our client's chain JSON-RPC reads); client cost = wall time − server time.

- ours: a ``PaymentFlow`` driven by ``ComputeClient.drive`` (the unsigned probe, challenge parsing, policy, the budget guard
  (one SQLite ledger transaction: lock, window sum, reservation), the journal's ``sent`` write
  committed with synchronous=FULL and its ``settled`` write, payee pin, scheme signing, the paid retry); the guard's
  own time is its own column;
- SDK: ``x402ClientSync`` with its EVM and SVM exact schemes; the paid retry by hand with
  ``requests``. Its default spend controls ($1 per payment, default assets only) are turned
  off, or USDG on eip155:4663 would be filtered out. Its Solana RPC reads are answered
  in-process by LiteSVM (tests/oracle/bridges.py), so they count as SDK client time.
  The SDK's exact EVM client pays MegaUSD only through Permit2, so on the default sandbox (direct
  ERC-2612 permit) its megaeth cell is n/a.
- megaeth/permit2: a second in-process sandbox started with ``permit2=True`` advertises MegaETH as
  ``assetTransferMethod: "permit2"``; both clients sign a Permit2 ``PermitWitnessTransferFrom`` and the
  sandbox settles it through its Permit2 + x402ExactPermit2Proxy contracts. Its 402 does not advertise
  the ``eip2612GasSponsoring`` extension (checked at run time), so before anything is timed each payer
  sends one on-chain ``approve(Permit2, its whole MegaUSD balance)`` from its own key. After the runs
  the bench checks that the payers' Permit2 allowances fell by exactly what they paid.

- base/pg-ledger: ours on Base again, its ledger in a local PostgreSQL (started here with the
  machine's initdb, fsync on; skipped without one) instead of SQLite: the shared-budget guard's cost
  in the same run as the SDK comparison.

Bounded: WARMUP + RUNS provisions per client and network (default 1 + 5), loopback only. The two
clients take turns run by run, so on a shared machine both meet the same load; the load average
is printed with the table.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "skills" / "x402-compute" / "scripts"))

PLAN = {"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "prepaid_hours": 24}
NETS = ("base", "solana", "megaeth", "robinhood")


class ServerClock:
    """Accumulates the time the sandbox app spends handling requests."""

    def __init__(self, app) -> None:
        self.total = 0.0
        self._lock = threading.Lock()
        inner = app.handle

        def timed(req):
            t0 = time.perf_counter()
            try:
                return inner(req)
            finally:
                with self._lock:
                    self.total += time.perf_counter() - t0

        app.handle = timed

    def take(self) -> float:
        with self._lock:
            t, self.total = self.total, 0.0
        return t


def fresh_wallet(fac, usd: int = 50) -> dict:
    from tests.conftest import Tools

    return Tools.fresh_wallet(fac, usd=usd)


def permit2_challenge(sb) -> dict:
    """The MegaETH requirement and extensions of an unpaid v2 402 from a permit2=True sandbox."""
    import requests

    raw = json.dumps({**PLAN, "label": "probe", "network": "megaeth"}, separators=(",", ":")).encode()
    r = requests.post(sb.base_url + "/compute/provision", data=raw, timeout=30,
                      headers={"Content-Type": "application/json", "X-Accept-Networks": "megaeth"})
    assert r.status_code == 402, r.text[:300]
    doc = json.loads(base64.b64decode(r.headers["PAYMENT-REQUIRED"]))
    (req,) = [a for a in doc["accepts"] if a["network"] == "eip155:4326"]
    method = (req.get("extra") or {}).get("assetTransferMethod")
    if method != "permit2":
        raise SystemExit(f"the permit2 sandbox's 402 asks for assetTransferMethod={method!r}, not permit2")
    return {"requirement": req, "extensions": sorted((doc.get("extensions") or {}).keys())}


def approve_permit2(fac, w: dict) -> int:
    """Setup, not timed: the payer approves Permit2 for its whole MegaUSD balance (one on-chain tx)."""
    from x402_compute_sandbox.networks import PERMIT2_ADDRESS

    chain = fac.chain("megaeth")
    chain.register_key(w["evm_private_key"])       # the chain sends the payer's own approve tx
    amount = fac.balance_of("megaeth", w["evm_address"])
    chain.approve(w["evm_address"], PERMIT2_ADDRESS, amount)
    assert chain.allowance(w["evm_address"], PERMIT2_ADDRESS) == amount
    return amount


def ours_runner(sb, w: dict, state_dir: Path, ledger_url: str | None = None):
    from x402_compute.api.client import ComputeClient
    from x402_compute.config import load_settings
    from x402_compute.payments.flow import PaidCall, PaymentFlow
    from x402_compute.payments.journal import new_id
    from x402_compute.payments.policy import Limits
    from decimal import Decimal

    env = dict(sb.env())
    env.update({"PRIVATE_KEY": w["evm_private_key"], "WALLET_ADDRESS": w["evm_address"], "SOLANA_SECRET_KEY": w["solana_secret_key"],
                "SOLANA_WALLET_ADDRESS": w["solana_address"], "X402_COMPUTE_STATE_DIR": str(state_dir)})
    if ledger_url:
        env["COMPUTE_LEDGER_URL"] = ledger_url
    client = ComputeClient(load_settings(environ=env))
    from x402_compute.payments.budget import Budget

    guard = {"total": 0.0}
    reserve = Budget.reserve

    def timed_reserve(self, *a, **k):
        t0 = time.perf_counter()
        try:
            return reserve(self, *a, **k)
        finally:
            guard["total"] += time.perf_counter() - t0

    Budget.reserve = timed_reserve  # this process only: the bench's own instrument

    def take_guard() -> float:
        t, guard["total"] = guard["total"], 0.0
        return t

    def run(network: str) -> None:
        jid = new_id()
        body = {**PLAN, "label": f"x402-{jid[:8]}", "network": network}
        call = PaidCall(kind="provision", path="/compute/provision", body=body, network=network,
                        limits=Limits(Decimal(25), "default", 249600), terms={}, journal_id=jid)
        res = client.drive(PaymentFlow(client.settings, client.auths, confirm=lambda q, d: None).steps(call))
        assert res.status in (200, 201), res.status

    run.take_guard = take_guard  # type: ignore[attr-defined]
    return run


def sdk_runner(sb, w: dict):
    import requests
    from eth_account import Account
    from solders.keypair import Keypair
    import base58
    from x402 import x402ClientSync
    from x402.mechanisms.evm import EthAccountSigner
    from x402.mechanisms.evm.exact import ExactEvmScheme
    from x402.mechanisms.svm import KeypairSigner
    from x402.mechanisms.svm.exact import ExactSvmScheme
    from x402.schemas import parse_payment_required

    from tests.oracle import bridges

    solana = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"
    client = x402ClientSync()
    client.register("eip155:*", ExactEvmScheme(EthAccountSigner(Account.from_key(w["evm_private_key"]))))
    svm = ExactSvmScheme(KeypairSigner(Keypair.from_bytes(base58.b58decode(w["solana_secret_key"]))))
    bridges.attach_svm_client(svm, sb.facilitator.chain("solana"), [solana])
    client.register(solana, svm)
    client.set_spend_controls(False)
    session = requests.Session()
    caip = {"base": "eip155:8453", "solana": solana, "robinhood": "eip155:4663", "megaeth": "eip155:4326"}

    def run(network: str) -> None:
        raw = json.dumps({**PLAN, "label": "sdk", "network": network}, separators=(",", ":")).encode()
        hdrs = {"Content-Type": "application/json"}
        r = session.post(sb.base_url + "/compute/provision", data=raw, headers=hdrs, timeout=30)
        assert r.status_code == 402, r.text
        doc = json.loads(base64.b64decode(r.headers["PAYMENT-REQUIRED"]))
        doc["accepts"] = [a for a in doc["accepts"] if a["network"] == caip[network]]
        payload = client.create_payment_payload(parse_payment_required(doc))
        header = base64.b64encode(payload.model_dump_json(by_alias=True, exclude_none=True).encode()).decode()
        paid = session.post(sb.base_url + "/compute/provision", data=raw, headers={**hdrs, "PAYMENT-SIGNATURE": header, "Idempotency-Key": str(uuid.uuid4())}, timeout=30)
        assert paid.status_code in (200, 201), paid.text[:300]

    return run


def measure(runners: dict, network: str, clock: ServerClock, warmup: int, runs: int) -> dict:
    """Each runner's medians. The runners take turns run by run (the order flipping each round), so
    on a shared, loaded machine they meet the same load: the ratio is of the same moments."""
    results: dict = {}
    live = {}
    for who, run in runners.items():
        try:
            for _ in range(warmup):
                run(network)
            live[who] = run
        except Exception as e:  # noqa: BLE001 - report, do not hide
            results[who] = {"error": f"{type(e).__name__}: {str(e)[:120]}"}
    samples = {who: ([], [], []) for who in live}
    order = list(live)
    for i in range(runs):
        for who in (order if i % 2 == 0 else order[::-1]):
            run = live[who]
            walls, servers, guards = samples[who]
            take_guard = getattr(run, "take_guard", None)
            clock.take()
            if take_guard:
                take_guard()
            t0 = time.perf_counter()
            run(network)
            walls.append(time.perf_counter() - t0)
            servers.append(clock.take())
            if take_guard:
                guards.append(take_guard())
    for who, (walls, servers, guards) in samples.items():
        clients = [wl - sv for wl, sv in zip(walls, servers)]
        out = {"wall_ms": 1000 * statistics.median(walls), "server_ms": 1000 * statistics.median(servers), "client_ms": 1000 * statistics.median(clients)}
        if guards:
            out["guard_ms"] = 1000 * statistics.median(guards)
        results[who] = out
    return results


def _local_postgres():
    """(url, server) of a PostgreSQL started for this bench (tests/pg.py), or (None, None)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return None, None
    from tests import pg

    if pg.bin_dir() is None:
        return None, None
    import os

    server = pg.Server(pg.shared_root(f"bench-paid-{os.getpid()}"))
    server.fsync = True
    return pg.fresh_schema(server.acquire("bench")), server


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    a = ap.parse_args()
    runs, warmup = max(1, min(a.runs, 50)), max(0, min(a.warmup, 5))

    from x402_compute_sandbox.networks import PERMIT2_ADDRESS
    from x402_compute_sandbox.sandbox import Sandbox

    tmp = Path(tempfile.mkdtemp(prefix="x402-bench-paid-"))
    try:
        rows = []
        sb = Sandbox(host="127.0.0.1", port=0, state_dir=str(tmp / "sandbox"), boot_seconds=0.3, x402_version=2)
        sb.start(background=True)
        try:
            clock = ServerClock(sb.app)
            w_ours, w_sdk = fresh_wallet(sb.facilitator), fresh_wallet(sb.facilitator)
            ours, sdk = ours_runner(sb, w_ours, tmp / "client-state"), sdk_runner(sb, w_sdk)
            for net in NETS:
                m = measure({"ours": ours, "sdk": sdk} if net != "megaeth" else {"ours": ours}, net, clock, warmup, runs)
                rows.append((net, m["ours"], m.get("sdk") or {"error": "n/a (SDK: Permit2 only)"}))
            # The same provision on Base with the ledger in a local PostgreSQL (fsync on) instead of
            # SQLite, beside the same run's SDK cell: what sharing a budget across machines costs.
            pg_url, pg_server = _local_postgres()
            if pg_url:
                try:
                    ours_pg = ours_runner(sb, fresh_wallet(sb.facilitator), tmp / "client-state-pg", pg_url)
                    mp = measure({"ours": ours_pg, "sdk": sdk}, "base", clock, warmup, runs)
                    rows.append(("base/pg-ledger", mp["ours"], mp["sdk"]))
                finally:
                    pg_server.release("bench")
        finally:
            sb.stop()

        # MegaETH through Permit2: a second sandbox, started with permit2=True, one network.
        sb2 = Sandbox(host="127.0.0.1", port=0, state_dir=str(tmp / "sandbox-permit2"), boot_seconds=0.3,
                      x402_version=2, permit2=True)
        sb2.start(background=True)
        try:
            clock2 = ServerClock(sb2.app)
            ch = permit2_challenge(sb2)
            sponsored = "eip2612GasSponsoring" in ch["extensions"]
            w_ours2, w_sdk2 = fresh_wallet(sb2.facilitator), fresh_wallet(sb2.facilitator)
            chain2 = sb2.facilitator.chain("megaeth")
            start = {}
            for w in (w_ours2, w_sdk2):     # setup outside the timed part (see the module docstring)
                allowance = approve_permit2(sb2.facilitator, w)
                start[w["evm_address"]] = (allowance, sb2.facilitator.balance_of("megaeth", w["evm_address"]))
            ours2, sdk2 = ours_runner(sb2, w_ours2, tmp / "client-state-permit2"), sdk_runner(sb2, w_sdk2)
            m2 = measure({"ours": ours2, "sdk": sdk2}, "megaeth", clock2, warmup, runs)
            o2, s2 = m2["ours"], m2["sdk"]
            for w, d in ((w_ours2, o2), (w_sdk2, s2)):
                if "error" in d:
                    continue
                a0, b0 = start[w["evm_address"]]
                paid = b0 - sb2.facilitator.balance_of("megaeth", w["evm_address"])
                pulled = a0 - chain2.allowance(w["evm_address"], PERMIT2_ADDRESS)
                if not (paid > 0 and pulled == paid):
                    d.clear()
                    d["error"] = f"not settled via Permit2 (paid {paid}, allowance used {pulled})"
            rows.append(("megaeth/permit2", o2, s2))
        finally:
            sb2.stop()

        load = os.getloadavg()
        print(f"paid provision, x402 v2, loopback sandbox; median of {runs} runs (after {warmup} warm-up) per cell, "
              f"ours and the SDK taking turns; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
        print(f"{'network':<15} {'ours wall':>10} {'ours srv':>9} {'ours client':>12} {'ours guard':>11} | {'sdk wall':>9} {'sdk srv':>8} {'sdk client':>11} | {'client ratio ours/sdk':>22}")
        out = []
        for net, o, s in rows:
            def cells(d, w):
                if "error" in d:
                    return f"{'-':>{w[0]}} {'-':>{w[1]}} {'-':>{w[2]}}"
                return f"{d['wall_ms']:>{w[0]}.1f} {d['server_ms']:>{w[1]}.1f} {d['client_ms']:>{w[2]}.1f}"
            ratio = (o["client_ms"] / s["client_ms"]) if ("error" not in o and "error" not in s and s["client_ms"] > 0) else None
            guard = f"{o['guard_ms']:>11.2f}" if "guard_ms" in o else f"{'-':>11}"
            print(f"{net:<15} {cells(o, (10, 9, 12))} {guard} | {cells(s, (9, 8, 11))} | {(f'{ratio:.2f}x' if ratio else s.get('error', '-')):>22}")
            for who, d in (("ours", o), ("sdk", s)):
                if "error" in d and not d["error"].startswith("n/a"):
                    print(f"  {net} {who}: {d['error']}")
            row = {"network": net.split("/")[0], "ours": o, "sdk": s, "client_ratio": ratio}
            if "/" in net:
                row["route"] = net.split("/")[1]
            out.append(row)
        print("(ms; client = wall − time inside the sandbox's request handler; ours includes policy, the budget guard")
        print(" (its own column: lock + window sum + reservation; bench_ledger.py for both engines), the journal writes (\"sent\" durable) and the")
        print(" payee pin; the SDK's Solana RPC is in-process)")
        print("base/pg-ledger: ours with COMPUTE_LEDGER_URL on a local PostgreSQL (fsync on) instead of the SQLite ledger; its SDK cell taken in turns beside it.")
        print("megaeth: default sandbox, direct ERC-2612 permit (our client); the SDK pays MegaUSD only by Permit2.")
        print("megaeth/permit2: second sandbox with permit2=True; its 402 asks for assetTransferMethod permit2 and "
              + ("advertises" if sponsored else "does not advertise") + " eip2612GasSponsoring;")
        print(" setup, not timed: each payer approved Permit2 once on-chain (allowance = its MegaUSD balance),"
              " so neither client signs an ERC-2612 permit; allowance use == amount paid was checked.")
        print(json.dumps({"bench": "paid_provision", "runs": runs, "loadavg": list(load), "rows": out,
                          "megaeth_permit2": {"assetTransferMethod": "permit2", "extensions_advertised": ch["extensions"],
                                              "setup": "payer approve(Permit2, balance) before timing"}}))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
