"""Provision, wait, log in, run, destroy: the skill's scripts as subprocesses, then the system `ssh`
client pinned to the host key the API published, against the sandbox's real SSH server."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests.helpers import (
    PLAN,
    REGION,
    SSH,
    known_hosts,
    ok,
    openssh_fingerprint,
    run_script,
    ssh_argv,
    ssh_keypair,
    wallet_env,
)

pytestmark = pytest.mark.skipif(not os.path.exists(SSH), reason=f"the system ssh client ({SSH}) is not installed")


def test_provision_wait_login_run_destroy(sandbox, tools, tmp_path):
    wallet = tools.fresh_wallet(sandbox.facilitator, usd=50)
    key, _ = ssh_keypair(tmp_path)
    env = wallet_env(sandbox, wallet, tmp_path)
    doc = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--wait-ssh", "--poll-interval", "0.2",
                        "--ssh-key-file", f"{key}.pub", env=env))
    iid, ip, port = doc["order"]["id"], doc["ssh"]["host"], doc["ssh"]["port"]
    assert doc["ssh"]["auth"] == "ssh-key" and doc["ssh"]["banner"].startswith("SSH-2.0-")
    raw = ok(run_script("instance_details.py", iid, env=env))["instance"]["raw"]
    assert (raw["ip_address"], raw["ssh_port"]) == (ip, port)
    assert raw["ssh_host_key_fingerprint"] == openssh_fingerprint(raw["ssh_host_public_key"])
    argv = ssh_argv(ip, port, known_hosts(tmp_path, ip, port, raw["ssh_host_public_key"]), key)
    r = subprocess.run(argv + ["uname -a"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    ok(run_script("destroy_instance.py", iid, "--yes", env=env))
    with pytest.raises(OSError):
        socket.create_connection((ip, port), timeout=3).close()
    r = subprocess.run(argv + ["true"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 255
