"""ai_chat goes only to a public address unless the API itself is on this machine or the human
allows it (as ssh_exec, issue 20.4): a hostile API naming 127.0.0.1 or a private address as an AI
Machine's IP had the model's prompt and the machine's key posted to a service of this computer or
the user's network. Refused before any socket; runs in a network namespace of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hostile.test_ssh_targets import _netns_ok

HERE = Path(__file__).parent


@pytest.mark.skipif(not _netns_ok(), reason="needs unshare -rn (an unprivileged network namespace) and ip")
def test_a_hostile_api_cannot_aim_ai_chat_at_loopback_or_private_addresses(tmp_path):
    proc = subprocess.run(["unshare", "-rn", sys.executable, str(HERE / "netns_ai.py"), str(tmp_path / "home")],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    runs = out["runs"]
    for host in ("127.0.0.1", "10.0.0.5", "localhost"):
        r = runs[host]
        assert r["exit"] == 3 and r["error"]["code"] == "private_address", (host, r)
        assert "--allow-private-address" in r["error"]["hint"] and "human" in r["error"]["hint"]
    assert out["listeners"]["127.0.0.1"] == 0
    # The control: the human's flag lets the same address through, and its listener sees the connection.
    assert runs["10.0.0.5 --allow-private-address"]["error"]["code"] != "private_address"
    assert out["listeners"]["10.0.0.5"] >= 1
