"""ssh_exec.py against the sandbox's real SSH servers: a machine provisioned with a generated key
and waited for (--wait-ssh pins its host key), then commands run with the system ssh client and
with asyncssh; output caps and the time limit hold; a changed host key is refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

from tests.helpers import (
    PLAN,
    REGION,
    SSH,
    fail_doc,
    ok,
    openssh_fingerprint,
    run_script,
    ssh_keypair,
    wallet_env,
)

pytestmark = pytest.mark.skipif(not os.path.exists(SSH), reason=f"the system ssh client ({SSH}) is not installed")
CLIENTS = ["openssh", "python"]
UNAME = subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout


class Machine:
    """One provisioned instance and the environment (wallet, state folder) that manages it."""

    def __init__(self, sandbox, tools, home: Path, *, wait_ssh: bool = True) -> None:
        self.sandbox = sandbox
        self.home = home
        self.key, _ = ssh_keypair(home)
        w = tools.fresh_wallet(sandbox.facilitator, usd=5)
        self.env = wallet_env(sandbox, w, home)
        self.provision = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--wait-ssh" if wait_ssh else "--wait",
                                       "--poll-interval", "0.2", "--ssh-key-file", f"{self.key}.pub", env=self.env))
        self.id = self.provision["order"]["id"]

    def exec(self, *args: str, identity: bool = True, timeout: float = 90):
        extra = ("--identity", str(self.key)) if identity else ()
        return run_script("ssh_exec.py", self.id, *extra, *args, env=self.env, timeout=timeout)

    def raw(self) -> dict:
        return ok(run_script("instance_details.py", self.id, env=self.env))["instance"]["raw"]

    @property
    def home_folder(self) -> Path:  # the instance's scratch folder (the sandbox's white box)
        return Path(self.sandbox.state_dir) / "instances" / self.id / "home"

    @property
    def pin(self) -> Path:
        return self.home / "state" / "known_hosts" / self.id


@pytest.fixture(scope="module")
def machine(sandbox, tools, tmp_path_factory):
    return Machine(sandbox, tools, tmp_path_factory.mktemp("machine"))


def test_wait_ssh_pins_the_published_key_and_logins_agree(machine):
    raw = machine.raw()
    hk = machine.provision["host_key"]
    assert hk["status"] == "pinned_now" and hk["verified_by"] == "api"
    assert hk["fingerprint"] == openssh_fingerprint(raw["ssh_host_public_key"]) == raw["ssh_host_key_fingerprint"]
    assert machine.pin.read_text() == f"x402-compute-{machine.id} {' '.join(raw['ssh_host_public_key'].split()[:2])}\n"
    assert oct(machine.pin.stat().st_mode & 0o777) == "0o600"
    for client in CLIENTS:
        doc = ok(machine.exec("--client", client, "--", "uname", "-a"))
        assert doc["stdout"] == UNAME and doc["exit_status"] == 0 and doc["stderr"] == ""
        assert doc["host_key"]["status"] == "matched" and doc["host_key"]["fingerprint"] == hk["fingerprint"]
        assert doc["connection"] == {"host": raw["ip_address"], "port": raw["ssh_port"], "user": "root",
                                     "client": "openssh" if client == "openssh" else "asyncssh"}
        assert doc["truncated"] == {"stdout": False, "stderr": False} and 0 < doc["duration_s"] < 60


@pytest.mark.parametrize("client", CLIENTS)
def test_arguments_stdin_and_exit_status(machine, tmp_path, client):
    # Several words arrive as exactly those words; one argument is a shell command line.
    doc = ok(machine.exec("--client", client, "--", "printf", "[%s]\n", "a b", "$HOME", "-x"))
    assert doc["stdout"] == "[a b]\n[$HOME]\n[-x]\n" and doc["remote_command"] == "printf '[%s]\n' 'a b' '$HOME' -x"
    doc = ok(machine.exec("--client", client, "--", 'echo "$HOME" | tr a-z A-Z; echo oops >&2; exit 7'))
    assert doc["stdout"] == str(machine.home_folder).upper() + "\n" and doc["stderr"] == "oops\n" and doc["exit_status"] == 7
    script = tmp_path / "job.sh"
    script.write_text("echo from-stdin $((6*7))\n")
    doc = ok(machine.exec("--client", client, "--stdin-file", str(script), "--", "sh", "-s"))
    assert doc["stdout"] == "from-stdin 42\n"
    doc = ok(machine.exec("--client", client, "--", "cat"))  # no --stdin-file: an empty stdin, never ours
    assert doc["stdout"] == "" and doc["exit_status"] == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_output_caps_and_the_time_limit_hold(machine, client):
    doc = ok(machine.exec("--client", client, "--max-output", "1000", "--",
                          "head -c 300000 /dev/zero | tr '\\0' a; head -c 5000 /dev/zero | tr '\\0' e >&2"))
    assert doc["stdout"] == "a" * 1000 and doc["stderr"] == "e" * 1000
    assert doc["truncated"] == {"stdout": True, "stderr": True} and doc["bytes"] == {"stdout": 300000, "stderr": 5000}
    # The limit: exit 5 with what was printed so far; the remote command is gone with its connection.
    marker = machine.home_folder / f"late-{client}"
    err = fail_doc(machine.exec("--client", client, "--timeout", "3", "--", f"echo before; sleep 20; touch {marker.name}"), 5, "command_timeout")
    d = err["error"]["details"]
    assert d["stdout"] == "before\n" and 3 <= d["duration_s"] < 15
    assert not marker.exists()


def test_a_changed_host_key_is_refused(sandbox, tools, tmp_path):
    m = Machine(sandbox, tools, tmp_path, wait_ssh=False)  # first contact is ssh_exec's own
    first = ok(m.exec("--", "true"))["host_key"]
    assert first["status"] == "pinned_now" and first["verified_by"] == "api"
    pinned = m.pin.read_text()
    r = requests.post(f"{sandbox.base_url}/_sandbox/instances/{m.id}/ssh/restart", json={"new_host_key": True}, timeout=30)
    assert r.status_code == 200
    new_fp = r.json()["ssh_host_key_fingerprint"]
    marker = m.home_folder / "ran"
    for client in CLIENTS:
        err = fail_doc(m.exec("--client", client, "--", f"touch {marker.name}"), 3, "host_key_changed")["error"]
        assert err["details"]["pinned_fingerprints"] == [first["fingerprint"]]
        assert err["details"]["presented_fingerprints"] == [new_fp] == [err["details"]["published_fingerprint"]]
        assert not marker.exists() and m.pin.read_text() == pinned
    # The human accepts the new key (it matches what the API now publishes): pinned, and the command runs.
    doc = ok(m.exec("--accept-host-key-change", "--", f"touch {marker.name}"))
    assert doc["host_key"]["status"] == "replaced" and doc["host_key"]["fingerprint"] == new_fp and marker.exists()
    assert ok(m.exec("--client", "python", "--", "true"))["host_key"]["status"] == "matched"


def test_refusals_before_any_connection(machine, tmp_path):
    fail_doc(machine.exec("--"), 2, "no_command")
    fail_doc(machine.exec("--user", "-oProxyCommand=x", "--", "true"), 2, "usage_error")
    fail_doc(machine.exec("--identity", str(tmp_path / "missing"), "--", "true", identity=False), 2, "usage_error")
    fail_doc(machine.exec("--timeout", "0", "--", "true"), 2, "usage_error")
    stranger, _ = ssh_keypair(tmp_path, "stranger")
    err = fail_doc(machine.exec("--identity", str(stranger), "--", "true", identity=False), 1, "ssh_auth_failed")["error"]
    assert "not the key this instance accepts" in err["hint"] and err["details"]["connection"]["user"] == "root"
