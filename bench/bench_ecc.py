"""Which secp256k1 backend eth-keys should use: the pure-Python one, or coincurve (libsecp256k1).

1. Per operation, in one process: a signature recovery (what the sandbox does for every signed
   management request) and a signature (what the client does), each backend, and their ratio.
2. What a client *run* pays: a fresh interpreter that imports eth-account and signs one or two
   EIP-191 messages (a script signs one management request per call, two with a paid retry),
   median of --runs, with the pure-Python backend forced (ECC_BACKEND_CLASS) and with coincurve
   (eth-keys' default when it is importable: its import is counted), beside a fresh interpreter
   that only imports eth-account (the baseline both share).

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


CLIENT = """
import sys
from eth_account import Account
from eth_account.messages import encode_defunct
for i in range(int(sys.argv[1])):
    Account.sign_message(encode_defunct(text="X402-COMPUTE-AUTH\\nv1\\nbase\\n%d" % i), private_key="{key}")
""".replace("{key}", KEY)
BASELINE = "import eth_account"


def cold(code: str, args: list, backend, runs: int) -> float:
    env = dict(os.environ)
    env.pop("ECC_BACKEND_CLASS", None)
    if backend:
        env["ECC_BACKEND_CLASS"] = backend
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, *args], env=env, check=True)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 1)


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
    subprocess.run([sys.executable, "-c", "import coincurve"], check=True)
    base = cold(BASELINE, [], None, runs)
    res["client_run_ms"] = {
        "import_eth_account_only": base,
        "import_coincurve_only": cold("import coincurve", [], None, runs),
        "native_1_signature": cold(CLIENT, ["1"], NATIVE, runs),
        "coincurve_1_signature": cold(CLIENT, ["1"], None, runs),
        "native_2_signatures": cold(CLIENT, ["2"], NATIVE, runs),
        "coincurve_2_signatures": cold(CLIENT, ["2"], None, runs),
    }
    c = res["client_run_ms"]
    res["client_coincurve_minus_native_ms"] = {n: round(c[f"coincurve_{n}"] - c[f"native_{n}"], 1)
                                               for n in ("1_signature", "2_signatures")}
    res["seconds"] = round(time.perf_counter() - t, 1)
    res["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    p = res["per_operation"]
    print(f"per operation ({ops} each): recover native {p['native']['recover_ms']} ms, coincurve "
          f"{p['coincurve']['recover_ms']} ms (x{p['recover_ratio_native_to_coincurve']}); sign native "
          f"{p['native']['sign_ms']} ms, coincurve {p['coincurve']['sign_ms']} ms (x{p['sign_ratio_native_to_coincurve']})")
    print(f"client run, fresh interpreter, median of {runs} (ms):")
    for k, v in c.items():
        print(f"  {k:26s} {v:8.1f}")
    print(f"  coincurve minus native: {res['client_coincurve_minus_native_ms']} (negative = coincurve is cheaper)")
    print(f"  load average during the run: {res['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
