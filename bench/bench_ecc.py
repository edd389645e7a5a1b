"""Which secp256k1 backend eth-keys should use: the pure-Python one, or coincurve (libsecp256k1).

1. Per operation, in one process: a signature recovery (what the sandbox does for every signed
   management request) and a signature (what the client does), each backend, and their ratio.
2. What a client *run* pays for one or two signatures (a script signs one management request per
   call, two with a paid retry): in a fresh interpreter, from the moment it is about to sign,
   with the pure-Python backend, and with coincurve, whose import (which eth-keys does whenever
   coincurve is installed) is counted; median of --runs.

    .venv/bin/python bench/bench_ecc.py [--ops 200] [--runs 9] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

NATIVE = "eth_keys.backends.native.NativeECCBackend"
COINCURVE = "eth_keys.backends.coincurve.CoinCurveECCBackend"
KEY = "0x" + "42" * 32


def per_op(ops: int) -> dict:
    from eth_hash.auto import keccak
    from eth_keys import KeyAPI
    from eth_utils import import_string

    out = {}
    hashes = [keccak(b"message %d" % i) for i in range(ops)]
    for name, path in (("native", NATIVE), ("coincurve", COINCURVE)):
        api = KeyAPI(import_string(path))
        priv = api.PrivateKey(bytes.fromhex(KEY[2:]))
        t = time.perf_counter()
        sigs = [api.ecdsa_sign(h, priv) for h in hashes]
        sign = (time.perf_counter() - t) / ops
        t = time.perf_counter()
        for h, s in zip(hashes, sigs):
            api.ecdsa_recover(h, s)
        recover = (time.perf_counter() - t) / ops
        out[name] = {"sign_ms": round(sign * 1000, 3), "recover_ms": round(recover * 1000, 3)}
    out["recover_ratio_native_to_coincurve"] = round(out["native"]["recover_ms"] / out["coincurve"]["recover_ms"], 1)
    out["sign_ratio_native_to_coincurve"] = round(out["native"]["sign_ms"] / out["coincurve"]["sign_ms"], 1)
    return out


# A client run, from the moment it has a message to sign: with coincurve, importing it (eth-keys does
# that when it is installed) and signing; without, signing in pure Python. Timed inside a fresh
# interpreter, so one run's import noise (eth-account alone takes hundreds of ms) is left out.
CLIENT = """
import sys, time
from eth_hash.auto import keccak
from eth_keys import KeyAPI
mode, n = sys.argv[1], int(sys.argv[2])
digests = [keccak(b"\\x19Ethereum Signed Message:\\n5hello" + bytes([i])) for i in range(n)]
t = time.perf_counter()
if mode == "coincurve":
    from eth_keys.backends.coincurve import CoinCurveECCBackend
    api = KeyAPI(CoinCurveECCBackend())
else:
    from eth_keys.backends.native import NativeECCBackend
    api = KeyAPI(NativeECCBackend())
key = api.PrivateKey(bytes.fromhex("{key}"))
for d in digests:
    key.sign_msg_hash(d)
print(time.perf_counter() - t)
""".replace("{key}", KEY[2:])


def cold(mode: str, n: int, runs: int) -> float:
    """Median, over fresh interpreters, of the time from "about to sign" to "signed n times" (ms)."""
    env = dict(os.environ, ECC_BACKEND_CLASS=NATIVE)   # so importing eth-keys does not load coincurve itself
    times = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", CLIENT, mode, str(n)], env=env, check=True,
                             capture_output=True, text=True).stdout
        times.append(float(out))
    return round(statistics.median(times) * 1000, 2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=200, help="operations per backend (bounded; max 5000)")
    ap.add_argument("--runs", type=int, default=9, help="fresh interpreters per case (max 51)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ops, runs = max(10, min(args.ops, 5000)), max(3, min(args.runs, 51))
    try:
        import coincurve  # noqa: F401
    except ImportError:
        raise SystemExit("coincurve is not installed (it is in requirements/dev.lock): run `bash dev.sh setup`")
    res = {"per_operation": per_op(ops)}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", CLIENT, "coincurve", "1"], check=True, capture_output=True)   # warm caches
    c = {f"{mode}_{n}_signature{'s' if n > 1 else ''}": cold(mode, n, runs)
         for n in (1, 2) for mode in ("native", "coincurve")}
    res["client_ms_from_first_signature"] = c
    res["client_coincurve_minus_native_ms"] = {
        "1_signature": round(c["coincurve_1_signature"] - c["native_1_signature"], 2),
        "2_signatures": round(c["coincurve_2_signatures"] - c["native_2_signatures"], 2)}
    res["seconds"] = round(time.perf_counter() - t, 1)
    res["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    p = res["per_operation"]
    print(f"per operation ({ops} each): recover native {p['native']['recover_ms']} ms, coincurve "
          f"{p['coincurve']['recover_ms']} ms (x{p['recover_ratio_native_to_coincurve']}); sign native "
          f"{p['native']['sign_ms']} ms, coincurve {p['coincurve']['sign_ms']} ms (x{p['sign_ratio_native_to_coincurve']})")
    print(f"client run, fresh interpreter, from the first signature on (coincurve's import included), "
          f"median of {runs}:")
    for k, v in c.items():
        print(f"  {k:24s} {v:8.2f} ms")
    print(f"  coincurve minus native: {res['client_coincurve_minus_native_ms']} ms (negative = coincurve is cheaper)")
    print(f"  load average during the run: {res['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
