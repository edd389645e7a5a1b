"""Each active instance runs a real SSH server: the system `ssh` client logs in with the key given at
provision (or the revealed one-time password), pinned to the host key the API publishes, and runs
commands as the sandbox's own user in the instance's scratch folder, within time and output bounds.
Destroy, expiry and the test-only restart route act on the live server."""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import SSH, known_hosts, openssh_fingerprint, ssh_argv, ssh_keypair

pytestmark = pytest.mark.skipif(not os.path.exists(SSH), reason=f"the system ssh client ({SSH}) is not installed")


@pytest.fixture(scope="module")
def keypair(tmp_path_factory):
    return ssh_keypair(tmp_path_factory.mktemp("ssh-key"))


class Instance:
    """A provisioned instance, seen through signed management calls."""

    def __init__(self, sb, tools, *, plan="vc2-1c-1gb", region="lax", os_id=2284, ssh_key=None):
        self.sb, self.tools = sb, tools
        self.w = tools.fresh_wallet(sb.facilitator, usd=10)
        extra = {"ssh_public_key": ssh_key} if ssh_key else {}
        self.id = tools.provision(sb, self.w, plan=plan, region=region, os_id=os_id, **extra)["order"]["id"]

    def call(self, method, path, body=None):
        raw = b"" if body is None else json.dumps(body).encode()
        h = self.tools.evm_auth(self.w["evm_private_key"], method, path, raw)
        return requests.request(method, self.sb.base_url + path, data=raw, timeout=30,
                                headers={**h, "Content-Type": "application/json"})

    def order(self) -> dict:
        r = self.call("GET", f"/compute/instances/{self.id}")
        assert r.status_code == 200, r.text
        return r.json()["order"]

    def active(self, timeout=15) -> dict:
        deadline = time.time() + timeout
        while (o := self.order())["status"] != "active":
            assert time.time() < deadline, o
            time.sleep(0.05)
        return o

    def folder(self) -> Path:
        return Path(self.sb.state_dir) / "instances" / self.id


def pin(tmp_path, o, name="known_hosts") -> Path:
    return known_hosts(tmp_path, o["ip_address"], o["ssh_port"], o["ssh_host_public_key"], name)


def ssh(argv, command=None, *, input=None, timeout=60, env=None):
    args = argv + ([command] if command is not None else [])
    return subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=None if input is not None else subprocess.DEVNULL)


def refused(ip, port) -> bool:
    try:
        socket.create_connection((ip, port), timeout=3).close()
        return False
    except OSError:
        return True


def test_the_ssh_server_moves_to_another_port_when_its_own_is_taken_and_never_off_loopback(tmp_path):
    """The instance's own port if free, else any port on its address (from the shared loopback
    helper), and a non-loopback address is refused before a socket."""
    from x402_compute_sandbox.server import listen_loopback
    from x402_compute_sandbox.ssh import InstanceSpec, SshServers

    busy = listen_loopback(("127.0.9.11", 0))
    servers = SshServers()
    try:
        spec = InstanceSpec(instance_id="i-1", folder=str(tmp_path / "i-1"), authorized_key=None)
        ip, port, key = servers.open(spec, "127.0.9.11", busy.getsockname()[1])
        assert ip == "127.0.9.11" and port != busy.getsockname()[1] and key.fingerprint.startswith("SHA256:")
        with socket.create_connection((ip, port), timeout=10) as c:
            c.settimeout(10)
            assert c.recv(64).startswith(b"SSH-2.0-x402sandbox")
        with pytest.raises(ValueError):
            servers.open(InstanceSpec(instance_id="i-2", folder=str(tmp_path / "i-2"), authorized_key=None), "198.51.100.7", 22)
        assert not servers.is_open("i-2")
    finally:
        servers.shutdown()
        busy.close()
    assert refused(ip, port)


def test_login_runs_commands_as_the_sandbox_user_in_the_scratch_folder(sandbox, tools, keypair, tmp_path, monkeypatch):
    key, pub = keypair
    inst = Instance(sandbox, tools, ssh_key=pub)
    o = inst.active()
    # The published host key: its fingerprint checked here and by ssh-keygen, not by the sandbox's code.
    assert o["ssh_host_key_type"] == "ssh-ed25519"
    assert o["ssh_host_public_key"].split()[0] == "ssh-ed25519"
    assert o["ssh_host_key_fingerprint"] == openssh_fingerprint(o["ssh_host_public_key"])
    if shutil.which("ssh-keygen"):
        pubfile = tmp_path / "host.pub"
        pubfile.write_text(o["ssh_host_public_key"] + "\n")
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pubfile)], capture_output=True, text=True,
                             check=True).stdout
        assert out.split()[1] == o["ssh_host_key_fingerprint"]
    assert o["ip_address"].startswith("127.") and o["ip_address"] != "127.0.0.1"
    monkeypatch.setenv("X402_CANARY_SECRET", "must-not-leak")   # the sandbox's own environment
    argv = ssh_argv(o["ip_address"], o["ssh_port"], pin(tmp_path, o), key)
    r = ssh(argv, 'uname -a; pwd; id -u; echo "home=$HOME"; env')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip()
    home = inst.folder() / "home"
    assert lines[1] == str(home) and lines[3] == f"home={home}"
    assert lines[2] == str(os.getuid())
    assert "X402_CANARY_SECRET" not in r.stdout and f"X402_SANDBOX_INSTANCE={inst.id}" in r.stdout
    assert stat.S_IMODE(inst.folder().stat().st_mode) == 0o700 and stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((inst.folder() / "ssh_host_ed25519_key").stat().st_mode) == 0o600
    # Exit status, stdin, a file left in the scratch folder, signals.
    assert ssh(argv, "exit 7").returncode == 7
    assert ssh(argv, "tr a-z A-Z", input="piped input\n").stdout == "PIPED INPUT\n"
    assert ssh(argv, "echo kept > note.txt").returncode == 0 and (home / "note.txt").read_text() == "kept\n"
    assert ssh(argv, "kill -KILL $$").returncode == 255          # OpenSSH's answer to an exit signal
    # A shell: commands on stdin without a terminal, and a PTY with -tt.
    r = ssh(argv, input="echo shell-$((40+2))\nexit 3\n")
    assert r.returncode == 3 and r.stdout == "shell-42\n"
    # Without TERM (a clean CI environment) the client asks for a pty with an empty terminal type:
    # still a pty, as OpenSSH's server gives.
    no_term = {k: v for k, v in os.environ.items() if k != "TERM"}
    r = ssh(argv[:1] + ["-tt"] + argv[1:], input="tty; echo pty-$((40+2))\nexit 4\n", env=no_term)
    assert r.returncode == 4 and "/dev/pts/" in r.stdout and "pty-42" in r.stdout


def test_only_the_provision_key_root_and_the_pinned_host_key(sandbox, tools, keypair, tmp_path):
    key, pub = keypair
    o = Instance(sandbox, tools, ssh_key=pub).active()
    good = pin(tmp_path, o)
    assert ssh(ssh_argv(o["ip_address"], o["ssh_port"], good, key), "true").returncode == 0
    other_key, _ = ssh_keypair(tmp_path, "other")
    r = ssh(ssh_argv(o["ip_address"], o["ssh_port"], good, other_key), "true")
    assert r.returncode == 255 and "Permission denied" in r.stderr
    r = ssh(ssh_argv(o["ip_address"], o["ssh_port"], good, key, user="admin"), "true")
    assert r.returncode == 255 and "Permission denied" in r.stderr
    # The test's own pin is really checked: another key under that name is refused.
    _, stranger = ssh_keypair(tmp_path, "stranger")
    wrong = known_hosts(tmp_path, o["ip_address"], o["ssh_port"], stranger, "wrong_known_hosts")
    r = ssh(ssh_argv(o["ip_address"], o["ssh_port"], wrong, key, extra=("-o", "LogLevel=INFO")), "true")
    assert r.returncode == 255 and "Host key verification failed" in r.stderr


def _askpass(tmp_path: Path, password: str) -> dict:
    """Environment for the system ssh client to read `password` from a 0600 file (never from argv)."""
    secret = tmp_path / "pw"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password)
    script = tmp_path / "askpass.sh"
    script.write_text(f"#!/bin/sh\ncat '{secret}'\n")
    script.chmod(0o700)
    return {**os.environ, "SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}


def test_one_time_password_login_on_a_vultr_plan_without_a_key(sandbox, tools, tmp_path):
    inst = Instance(sandbox, tools)
    o = inst.active()
    assert o["access_method"] == "one_time_password_fallback"
    argv = ssh_argv(o["ip_address"], o["ssh_port"], pin(tmp_path, o), batch=False,
                    extra=("-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=1",
                           "-o", "PreferredAuthentications=password"))
    # Before the password is revealed there is none to log in with.
    r = ssh(argv, "true", env=_askpass(tmp_path, "guess-guess-guess-12"))
    assert r.returncode == 255 and "Permission denied" in r.stderr
    pw = inst.call("POST", f"/compute/instances/{inst.id}/password").json()["access"]["password"]
    r = ssh(argv, "whoami >/dev/null && echo in", env=_askpass(tmp_path, pw))
    assert r.returncode == 0 and r.stdout == "in\n", r.stderr
    r = ssh(argv, "true", env=_askpass(tmp_path, pw[:-1] + ("x" if pw[-1] != "x" else "y")))
    assert r.returncode == 255 and "Permission denied" in r.stderr
    # Only a salted hash of it is stored.
    raw = json.dumps(sandbox.app.store.get_order(inst.id))
    assert pw not in raw and "_password_hash" in raw


def test_restart_route_changes_the_host_key_and_the_old_pin_is_refused(sandbox, tools, keypair, tmp_path):
    key, pub = keypair
    inst = Instance(sandbox, tools, ssh_key=pub)
    o = inst.active()
    old_pin = pin(tmp_path, o, "old")
    url = f"{sandbox.base_url}/_sandbox/instances/{inst.id}/ssh/restart"
    # The same key when asked to keep it; the server still answers on the same address.
    same = requests.post(url, json={"new_host_key": False}, timeout=30).json()
    assert same["ssh_host_key_fingerprint"] == same["previous_host_key_fingerprint"] == o["ssh_host_key_fingerprint"]
    assert ssh(ssh_argv(o["ip_address"], o["ssh_port"], old_pin, key), "true").returncode == 0
    r = requests.post(url, timeout=30)
    assert r.status_code == 200
    new = r.json()
    assert new["previous_host_key_fingerprint"] == o["ssh_host_key_fingerprint"]
    assert new["ssh_host_key_fingerprint"] != o["ssh_host_key_fingerprint"]
    assert new["ssh_host_key_fingerprint"] == openssh_fingerprint(new["ssh_host_public_key"])
    assert (new["ip_address"], new["ssh_port"]) == (o["ip_address"], o["ssh_port"])
    after = inst.order()
    assert after["ssh_host_key_fingerprint"] == new["ssh_host_key_fingerprint"]
    r = ssh(ssh_argv(o["ip_address"], o["ssh_port"], old_pin, key, extra=("-o", "LogLevel=INFO")), "true")
    assert r.returncode == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr
    assert ssh(ssh_argv(o["ip_address"], o["ssh_port"], pin(tmp_path, after, "new"), key), "true").returncode == 0
    # Bad requests: not a UUID, an unknown instance, a bad flag, a destroyed instance.
    assert requests.post(f"{sandbox.base_url}/_sandbox/instances/nope/ssh/restart", timeout=30).status_code == 400
    unknown = f"{sandbox.base_url}/_sandbox/instances/00000000-0000-4000-8000-000000000000/ssh/restart"
    assert requests.post(unknown, timeout=30).status_code == 404
    assert requests.post(url, json={"new_host_key": "yes"}, timeout=30).status_code == 400
    assert inst.call("DELETE", f"/compute/instances/{inst.id}").status_code == 200
    r = requests.post(url, timeout=30)
    assert r.status_code == 409 and "not running" in r.json()["error"]


def test_sandbox_restart_keeps_the_host_key(make_sandbox, sandbox, tools, keypair, tmp_path):
    key, pub = keypair
    first = make_sandbox(facilitator=sandbox.facilitator)
    inst = Instance(first, tools, ssh_key=pub)
    o = inst.active()
    known = pin(tmp_path, o)
    assert ssh(ssh_argv(o["ip_address"], o["ssh_port"], known, key), "echo before > f").returncode == 0
    state = first.state_dir
    first.stop()
    assert refused(o["ip_address"], o["ssh_port"])
    second = make_sandbox(facilitator=sandbox.facilitator, state_dir=state)
    inst.sb = second
    again = inst.order()
    assert again["ssh_host_key_fingerprint"] == o["ssh_host_key_fingerprint"]
    r = ssh(ssh_argv(again["ip_address"], again["ssh_port"], known if again["ssh_port"] == o["ssh_port"]
                     else pin(tmp_path, again, "moved"), key), "cat f")
    assert r.returncode == 0 and r.stdout == "before\n"


def test_time_and_output_bounds_kill_the_whole_process_group(make_sandbox, sandbox, tools, keypair, tmp_path):
    key, pub = keypair
    sb = make_sandbox(facilitator=sandbox.facilitator, ssh_time_limit=1.5, ssh_output_limit=5000)
    o = Instance(sb, tools, ssh_key=pub).active()
    argv = ssh_argv(o["ip_address"], o["ssh_port"], pin(tmp_path, o), key)
    r = ssh(argv, "sleep 300 & echo $!; wait")  # ends at the limit (ssh()'s timeout guards a hang)
    assert r.returncode == 124 and "time limit of 1.5 s" in r.stderr
    child = int(r.stdout.split()[0])
    deadline = time.time() + 5
    while os.path.exists(f"/proc/{child}") and time.time() < deadline:   # the background child too
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{child}") or "zombie" in Path(f"/proc/{child}/status").read_text()
    r = subprocess.run(argv + ["yes"], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 125 and b"output limit of 5000 bytes" in r.stderr
    assert len(r.stdout) == 5000 and set(r.stdout) == {ord("y"), ord("\n")}
    # stdout and stderr share the bound.
    r = subprocess.run(argv + ["head -c 3000 /dev/zero; head -c 3000 /dev/zero >&2; sleep 5"],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 125 and len(r.stdout) + r.stderr.count(b"\0") == 5000


def test_sessions_per_instance_are_bounded(sandbox, tools, keypair, tmp_path):
    from x402_compute_sandbox.ssh import DEFAULT_MAX_SESSIONS

    key, pub = keypair
    o = Instance(sandbox, tools, ssh_key=pub).active()
    argv = ssh_argv(o["ip_address"], o["ssh_port"], pin(tmp_path, o), key)
    busy = [subprocess.Popen(argv + ["echo up; sleep 20"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL) for _ in range(DEFAULT_MAX_SESSIONS)]
    try:
        for p in busy:
            assert p.stdout.readline() == b"up\n"
        r = ssh(argv, "echo never")
        assert r.returncode == 1 and r.stdout == "" and f"at most {DEFAULT_MAX_SESSIONS} sessions" in r.stderr
    finally:
        for p in busy:
            p.kill()
            p.wait()
    deadline = time.time() + 10
    while (r := ssh(argv, "echo again")).returncode != 0 and time.time() < deadline:   # slots free again
        time.sleep(0.2)
    assert r.stdout == "again\n"


def test_destroy_ends_sessions_and_closes_the_port(sandbox, tools, keypair, tmp_path):
    key, pub = keypair
    inst = Instance(sandbox, tools, ssh_key=pub)
    o = inst.active()
    argv = ssh_argv(o["ip_address"], o["ssh_port"], pin(tmp_path, o), key)
    long = subprocess.Popen(argv + ["echo up; sleep 60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    try:
        assert long.stdout.readline() == b"up\n"
        assert inst.call("DELETE", f"/compute/instances/{inst.id}").status_code == 200
        assert long.wait(timeout=10) == 255          # the session ended with the machine
    finally:
        long.kill()
        long.wait()
    assert refused(o["ip_address"], o["ssh_port"])
    assert not inst.folder().exists()                # host key and scratch files went with it
    assert inst.order()["ssh_host_key_fingerprint"] == o["ssh_host_key_fingerprint"]   # still listed


def test_expiry_closes_the_server(make_sandbox, sandbox, tools, keypair, tmp_path):
    key, pub = keypair
    sb = make_sandbox(facilitator=sandbox.facilitator)
    inst = Instance(sb, tools, ssh_key=pub)
    o = inst.active()
    assert ssh(ssh_argv(o["ip_address"], o["ssh_port"], pin(tmp_path, o), key), "true").returncode == 0
    real = sb.app.provider.clock
    sb.app.provider.clock = lambda: real() + 24 * 3600 + 5
    deadline = time.time() + 10
    while inst.order()["status"] != "expired":
        assert time.time() < deadline
        time.sleep(0.05)
    assert refused(o["ip_address"], o["ssh_port"]) and not inst.folder().exists()


def test_another_os_user_cannot_connect(sandbox, tools, keypair):
    """Commands run as the sandbox's user, so only that user's processes may connect (Linux)."""
    setpriv = shutil.which("setpriv")
    if os.getuid() != 0 or not setpriv or not os.path.exists("/proc/net/tcp"):
        pytest.skip("needs root, setpriv and /proc/net/tcp to act as another local user")
    _, pub = keypair
    o = Instance(sandbox, tools, ssh_key=pub).active()
    probe = ("import socket,sys\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=5)\n"
             "s.sendall(b'SSH-2.0-probe\\r\\n')\ndata=b''\n"
             "while True:\n  try: c=s.recv(4096)\n  except ConnectionResetError: break\n  if not c: break\n  data+=c\n"
             "print(len(data))")
    args = [sys.executable, "-c", probe, o["ip_address"], str(o["ssh_port"])]
    nobody = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *args],
                            capture_output=True, text=True, timeout=30)
    # The banner may go out before the check closes the connection; the key exchange never starts.
    assert nobody.returncode == 0, nobody.stderr
    assert int(nobody.stdout) < 100, nobody.stdout
    from x402_compute.ssh.wait import ssh_banner
    assert ssh_banner(o["ip_address"], o["ssh_port"]).startswith("SSH-2.0-x402sandbox")


def test_asyncssh_is_imported_only_when_someone_connects(tmp_path):
    """A sandbox whose instances nobody logs into pays nothing for SSH."""
    code = f"""
import socket, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from x402_compute_sandbox.ssh import InstanceSpec, SshServers
servers = SshServers()
ip, port, key = servers.open(InstanceSpec("i-1", {str(tmp_path / "i-1")!r}, None), "127.0.0.1", 0)
assert key.fingerprint.startswith("SHA256:")
before = "asyncssh" in sys.modules
with socket.create_connection((ip, port), timeout=10) as s:
    s.settimeout(10)
    banner = s.recv(64)
print(before, "asyncssh" in sys.modules, banner.split(b"\\r\\n")[0].decode())
servers.shutdown()
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True", "SSH-2.0-x402sandbox"]


@pytest.mark.parametrize("line", [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLEEXAMPLE x",   # not base64 of a key
    "ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 x",                                     # an RSA blob
    "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x",   # ed25519 blob as RSA
])
def test_a_malformed_provision_key_is_a_400_before_any_payment(sandbox, line):
    r = requests.post(sandbox.base_url + "/compute/provision", timeout=30, json={
        "plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "ssh_public_key": line})
    assert r.status_code == 400 and r.json()["details"]["field"] == "ssh_public_key", r.text
