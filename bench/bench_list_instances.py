#!/usr/bin/env python3
"""Benchmark (not a test): wall time of `list_instances.py` with an API key
against a loopback stub server, beside the floor of a bare
`python -c "import requests; requests.get(url)"` doing the same request.

Both are fresh interpreter processes, so the ratio shows what the client adds
on top of Python + requests start-up: imports, settings, auth and rendering.
Loopback only; N runs each (default 15, at most 100), run alternately so that
background load hits both sides alike.

    python bench/bench_list_instances.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "skills" / "x402-compute" / "scripts" / "list_instances.py"
API_KEY = "x402c_benchmarkkey0000000000000000abcd"
BODY = json.dumps({"instances": [
    {"id": f"3f1c2a9e-0000-4000-8000-{i:012d}", "label": f"bench-{i}", "plan": "vc2-1c-1gb", "region": "ewr",
     "status": "active", "server_status": "ok", "power_status": "running", "ip_address": f"127.0.0.{i + 2}",
     "expires_at": "2099-01-01T00:00:00Z", "created_at": "2026-01-01T00:00:00Z"} for i in range(20)
]}).encode()


class Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    def do_GET(self):
        ok = self.path.startswith("/compute/instances") and self.headers.get("X-API-Key") == API_KEY
        body = BODY if ok else b'{"error":"unauthorized"}'
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[1]} failed ({proc.returncode}): {proc.stdout[:300]!r} {proc.stderr[-500:]!r}")
    return dt


@contextmanager
def stub_env():
    """The stub on a free loopback port and an environment whose scripts list its 20 instances."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as home:
            env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
            env.update(HOME=home, X402_COMPUTE_STATE_DIR=os.path.join(home, "state"), COMPUTE_BASE_URL=url, COMPUTE_API_KEY=API_KEY)
            yield env
    finally:
        httpd.shutdown()


def parse_runs(doc: str) -> int:
    """--runs N from the command line (default 15, 1 to 100)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    return max(1, min(ap.parse_args().runs, 100))


def main() -> None:
    runs = parse_runs(__doc__)
    with stub_env() as env:
        url = env["COMPUTE_BASE_URL"]
        script = [sys.executable, str(SCRIPT), "--output", "json"]
        floor = [sys.executable, "-c", f"import requests; r = requests.get({url + '/compute/instances'!r}, headers={{'X-API-Key': {API_KEY!r}}}); r.raise_for_status(); print(r.text)"]
        timed(script, env), timed(floor, env)  # warm the page cache and .pyc files
        ts, tf = [], []
        for _ in range(runs):
            ts.append(timed(script, env))
            tf.append(timed(floor, env))
    ms, mf = statistics.median(ts) * 1000, statistics.median(tf) * 1000
    print(f"list_instances.py (API key, 20 instances), {runs} runs: median {ms:.0f} ms (min {min(ts) * 1000:.0f}, max {max(ts) * 1000:.0f})")
    print(f"python -c 'import requests; requests.get(url)',  {runs} runs: median {mf:.0f} ms (min {min(tf) * 1000:.0f}, max {max(tf) * 1000:.0f})")
    print(f"ratio script/floor: {ms / mf:.2f}  (overhead {ms - mf:+.0f} ms)")


if __name__ == "__main__":
    main()
