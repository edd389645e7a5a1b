"""A client nobody here wrote: the MCP Inspector CLI (npm @modelcontextprotocol/inspector, pinned)
lists the server's tools, with its own schema portability check (--strict), and calls browse_plans
against the sandbox.

The Inspector is installed with npm into .cache/ at the repository root (gitignored), once; the
test skips only when npm is absent. The server's settings reach it through --env-file, so no key
is on any command line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import MCP_TOOLS, ROOT, SCRIPTS

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
CACHE = ROOT / ".cache" / "mcp-inspector-2.12.0"


def inspector_bin() -> Path:
    exe = CACHE / "node_modules" / ".bin" / "mcp-inspector"
    if exe.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the MCP Inspector CLI (an npm package) cannot be fetched")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mcp-inspector-", dir=CACHE.parent))
    proc = subprocess.run([npm, "install", "--prefix", str(tmp), "--no-audit", "--no-fund", "--loglevel=error", INSPECTOR],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"npm install {INSPECTOR} failed: {proc.stderr[-2000:]}"
    try:
        tmp.rename(CACHE)  # atomic: a half-finished install is never mistaken for a cache
    except OSError:  # another run finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return exe


def test_inspector_lists_the_tools_and_calls_browse_plans(sandbox, tmp_path):
    exe = inspector_bin()
    env_file = tmp_path / "server.env"
    settings = {**sandbox.env, "X402_COMPUTE_STATE_DIR": str(tmp_path / "state")}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR")}
    env.update(HOME=str(tmp_path), MCP_CATALOG_PATH=str(tmp_path / "catalog.json"))
    server = [sys.executable, str(SCRIPTS / "mcp_server.py"), "--env-file", str(env_file)]

    def inspector(*args: str) -> tuple[dict, str]:
        # A loaded CI machine can take longer than the Inspector's default 15 s to start the server.
        proc = subprocess.run([str(exe), "--cli", "--connect-timeout", "120000", *server, *args], env=env, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, f"inspector {args} exited {proc.returncode}: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
        return json.loads(proc.stdout), proc.stderr

    listed, log = inspector("--method", "tools/list", "--strict")
    assert "Issue:" not in log, log  # --strict reports each schema portability problem (exit 6 on errors)
    names = [t["name"] for t in listed["tools"]]
    assert sorted(names) == sorted(MCP_TOOLS)

    called, _ = inspector("--method", "tools/call", "--tool-name", "browse_plans", "--tool-arg", "limit=2", "--tool-arg", "provider=vultr")
    doc = called["structuredContent"]
    assert called.get("isError") in (None, False) and doc["ok"] is True
    assert doc["count"] == 2 and all(p["provider"] == "vultr" for p in doc["plans"])
    assert json.loads(called["content"][0]["text"]) == doc
