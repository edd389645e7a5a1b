#!/usr/bin/env python3
"""Benchmark (not a test): what bounding the client's reading of server answers costs, and what
it saves.

1. JSON depth check: the linear scan (``http.json_depth``) against the regex it replaced (kept
   here as the baseline), on an ordinary 200-plan catalog and on unterminated escaped quotes,
   where the regex rescans the rest of the body from every quote (quadratic). The baseline is
   only run on small hostile inputs; the figures show how its time grows with the size. At
   the 4 MiB body cap, the worst inputs for the linear scan itself (and its Python 3.10 path).
2. One bounded exchange (``Transport.request``: deadline watchdog, streamed body under a cap)
   against a bare ``requests.Session.get`` of the same loopback URL.

Loopback only, bounded: about ten seconds.

    python bench/bench_parsing.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "skills" / "x402-compute" / "scripts"))

import requests  # noqa: E402

from x402_compute.api.http import Transport, json_depth, json_depth_stepwise

# The depth check as it was before issue 9: strip whole strings with a regex, then count brackets.
_OLD_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_OLD_BRACKET = re.compile(r"[\[\]{}]")


def old_json_depth(text: str) -> int:
    depth = peak = 0
    for m in _OLD_BRACKET.finditer(_OLD_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            peak = max(peak, depth)
        else:
            depth -= 1
    return peak


def catalog(n: int = 200) -> str:
    return json.dumps({"plans": [{"id": f"vc2-{i}c-{i}gb", "type": "vps", "provider": "vultr", "vcpu_count": i, "ram": 1024 * i,
                                  "disk": 25 * i, "our_hourly": 0.01 * i, "locations": ["lax", "ewr", "ams"],
                                  "note": 'escaped \\"quotes\\" and [brackets] {inside}'} for i in range(n)]})


def hostile(pairs: int) -> str:
    return '{"plans": [], "note": "' + '\\"' * pairs  # never terminated


def best(fn, arg, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(arg)
        times.append(time.perf_counter() - t0)
    return min(times)


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = catalog(20).encode()

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = max(1, min(ap.parse_args().runs, 50))

    print("JSON depth check (best of %d)" % runs)
    text = catalog()
    old, new = best(old_json_depth, text, runs), best(json_depth, text, runs)
    print(f"  catalog {len(text) / 1024:.0f} KiB: regex {old * 1e3:.2f} ms, linear scan {new * 1e3:.2f} ms (ratio {new / old:.2f})")
    for pairs in (2_500, 5_000, 10_000):
        text = hostile(pairs)
        old, new = best(old_json_depth, text, 1), best(json_depth, text, runs)
        print(f"  unterminated, {pairs:>6} escaped quotes ({len(text) / 1024:.0f} KiB): regex {old * 1e3:8.1f} ms, "
              f"linear scan {new * 1e3:6.2f} ms (regex/linear {old / new:,.0f}x)")
    print("  at the 4 MiB body cap (the regex would need hours on the first):")
    for name, text in (("escaped quotes", hostile(2 * 1024 * 1024)), ("one long string", '{"n": "' + "a" * (4 << 20) + '"}'),
                       ("[] repeated", "[" + "[]," * ((4 << 20) // 3) + "[]]")):
        fast, step = best(json_depth, text, 1), best(json_depth_stepwise, text, 1)
        print(f"    {name:16}: linear scan {fast * 1e3:6.0f} ms (Python 3.10 path: {step * 1e3:6.0f} ms)")

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    t, s = Transport(url, timeout=10), requests.Session()
    n = 200
    bare, bounded = [], []
    for _ in range(runs):  # alternate, so background load hits both alike
        t0 = time.perf_counter()
        for _ in range(n):
            s.get(url + "/compute/plans", timeout=10).content
        bare.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        for _ in range(n):
            t.request("GET", "/compute/plans")
        bounded.append((time.perf_counter() - t0) / n)
    b, d = statistics.median(bare), statistics.median(bounded)
    print(f"one loopback GET ({len(Stub.body)} bytes), median of {runs} x {n}: requests.Session.get {b * 1e3:.2f} ms, "
          f"Transport.request (deadline + cap) {d * 1e3:.2f} ms (ratio {d / b:.2f})")
    srv.shutdown()


if __name__ == "__main__":
    main()
