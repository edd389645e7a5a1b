#!/usr/bin/env python3
"""Benchmark (not a test): `list_instances` as an MCP tool over a warm stdio session (the MCP
SDK's own client, one `tools/call` round trip) beside `list_instances.py` as a fresh process,
both against the loopback stub of bench_list_instances.py (API key, 20 instances).

The process pays interpreter start-up, imports and settings on every call; the warm server paid
them once. Also printed: the server's cold start (spawn + initialize + first call). N runs each
(default 15, at most 100), alternated so background load hits both sides alike.

    python bench/bench_mcp.py [--runs N]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_list_instances import SCRIPT, parse_runs, stub_env, timed  # noqa: E402  the same stub and timer

SERVER = SCRIPT.with_name("mcp_server.py")


async def measure(env: dict, runs: int) -> tuple[float, list[float], list[float]]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    script = [sys.executable, str(SCRIPT), "--output", "json"]
    timed(script, env)  # warm the page cache and .pyc files
    t0 = time.perf_counter()
    with open(os.devnull, "w") as log:
        async with Client(stdio_client(StdioServerParameters(command=sys.executable, args=[str(SERVER)], env=env), errlog=log)) as client:
            first = await client.call_tool("list_instances", {})
            cold = time.perf_counter() - t0
            if first.is_error or first.structured_content["count"] != 20:
                raise SystemExit(f"list_instances over MCP failed: {first.structured_content}")
            tm, ts = [], []
            for _ in range(runs):
                t = time.perf_counter()
                r = await client.call_tool("list_instances", {})
                tm.append(time.perf_counter() - t)
                if r.is_error:
                    raise SystemExit(f"list_instances over MCP failed: {r.structured_content}")
                ts.append(timed(script, env))
    return cold, tm, ts


def main() -> None:
    import anyio

    runs = parse_runs(__doc__)
    with stub_env() as env:
        cold, tm, ts = anyio.run(measure, env, runs)
    mm, ms = statistics.median(tm) * 1000, statistics.median(ts) * 1000
    print(f"MCP list_instances, warm stdio session, {runs} runs: median {mm:.1f} ms (min {min(tm) * 1000:.1f}, max {max(tm) * 1000:.1f})")
    print(f"list_instances.py as a process,      {runs} runs: median {ms:.0f} ms (min {min(ts) * 1000:.0f}, max {max(ts) * 1000:.0f})")
    print(f"MCP server cold start (spawn, initialize, first call): {cold * 1000:.0f} ms")
    print(f"ratio process/warm MCP: {ms / mm:.1f}x  (warm MCP saves {ms - mm:.0f} ms per call)")


if __name__ == "__main__":
    main()
