"""Issue 20.4: ssh_exec and --wait-ssh go only to public addresses unless the API itself is on this
machine or the human allows it. The refusal comes before any socket to the address: listeners on
the addresses a hostile API names see nothing. Runs in a network namespace of its own
(``unshare -rn``), so no traffic can reach a private address of the real network."""

from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from x402_compute.ssh import run as sshrun
from x402_compute.errors import PolicyError

HERE = Path(__file__).parent


def _netns_ok() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _netns_ok(), reason="needs unshare -rn (an unprivileged network namespace) and ip")
def test_a_hostile_api_cannot_aim_ssh_at_loopback_or_private_addresses(tmp_path):
    key = tmp_path / "id"
    key.write_text("not a key: nothing may get far enough to read it\n")
    key.chmod(0o600)
    proc = subprocess.run(["unshare", "-rn", sys.executable, str(HERE / "netns_ssh.py"), str(tmp_path / "home"), str(key)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    runs, listeners = out["runs"], out["listeners"]
    for host in ("127.0.0.2", "10.0.0.5", "::ffff:127.0.0.1", "localhost"):
        r = runs[host]
        assert r["exit"] == 3 and r["error"]["code"] == "private_address", (host, r)
        assert "--allow-private-address" in r["error"]["hint"] and "human" in r["error"]["hint"]
    assert runs["::ffff:127.0.0.1"]["error"]["details"]["class"] == "loopback"
    assert runs["10.0.0.5"]["error"]["details"]["class"] == "private"
    w = runs["provision --wait-ssh"]
    assert w["exit"] == 3 and w["error"]["code"] == "private_address" and w["error"]["details"]["payment"]["journal_id"], w
    assert out["paid"] == 1  # the provision was paid; only the wait was refused, and the payment is shown
    # Nothing connected anywhere, except the human's explicit override (the control).
    assert {k: v["connections"] for k, v in listeners.items() if k != "10.0.0.5"} == {"127.0.0.2": 0, "127.0.0.1": 0, "::1": 0, "127.0.0.1:22": 0}
    assert runs["10.0.0.5 --allow-private-address"]["error"]["code"] != "private_address"
    assert listeners["10.0.0.5"]["connections"] >= 1


CLASSES = {
    "127.0.0.2": "loopback", "::1": "loopback", "::ffff:127.0.0.1": "loopback", "0.0.0.0": "unspecified", "::": "unspecified",
    "10.0.0.5": "private", "172.16.0.1": "private", "192.168.1.1": "private", "fd00::1": "private", "::ffff:10.1.2.3": "private",
    "169.254.169.254": "link-local", "fe80::1": "link-local", "100.64.0.1": "shared (CGNAT)", "224.0.0.1": "multicast",
    "ff02::1": "multicast", "240.0.0.1": "reserved", "192.0.2.10": "reserved", "2002:7f00:1::": "loopback",
    "64:ff9b::a00:5": "private", "255.255.255.255": "reserved",
    "8.8.8.8": None, "2606:4700:4700::1111": None, "::ffff:8.8.8.8": None,
}


@pytest.mark.parametrize("addr", sorted(CLASSES))
def test_address_classes(addr):
    assert sshrun.address_class(ipaddress.ip_address(addr)) == CLASSES[addr]


def test_the_refusal_needs_no_socket_and_names_resolve_once():
    public = "https://compute.x402layer.cc"
    asked = []

    def resolve(host, port, type=0):  # a name whose records point at the metadata service
        asked.append(host)
        return [(2, 1, 6, "", ("169.254.169.254", port))]

    with pytest.raises(PolicyError) as e:
        sshrun.checked_address("vm.example.com", 22, base_url=public, resolve=resolve)
    assert e.value.code == "private_address" and e.value.details["class"] == "link-local" and asked == ["vm.example.com"]
    # a public name connects to the address that was checked, not to a second lookup
    assert sshrun.checked_address("vm.example.com", 22, base_url=public, resolve=lambda h, p, type=0: [(2, 1, 6, "", ("8.8.8.8", p))]) == "8.8.8.8"
    # the sandbox (a loopback API) and the human's flag let private addresses through untouched
    assert sshrun.checked_address("127.0.0.1", 22, base_url="http://127.0.0.1:8402") == "127.0.0.1"
    assert sshrun.checked_address("10.0.0.5", 22, base_url=public, allow_private=True) == "10.0.0.5"
    assert not sshrun.loopback_base("http://127.0.0.1.evil.example:80") and sshrun.loopback_base("http://[::1]:8402")


def test_only_our_key_is_offered(tmp_path):
    t = sshrun.Target("203.0.113.5", 22, "root", tmp_path / "kh", "alias", tmp_path / "id")
    argv = sshrun.openssh_argv(t, "true", log_file=tmp_path / "log")
    opts = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert {"IdentitiesOnly=yes", "IdentityAgent=none", f"IdentityFile={tmp_path / 'id'}", "ForwardAgent=no"} <= set(opts)
    bare = sshrun.openssh_argv(sshrun.Target("203.0.113.5", 22, "root", tmp_path / "kh", "alias", None), "true", log_file=tmp_path / "log")
    assert "IdentityFile=none" in bare and "SSH_AUTH_SOCK" not in sshrun._ENV_KEEP


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "017700000001", "127.1", "0177.0.0.1", "0", "::1%lo", "fe80::1%1",
                                  "::ffff:127.0.0.1%1", "::127.0.0.1", "::ffff:0:127.0.0.1", "64:ff9b:1::a00:5", "mixed.example"])
def test_other_spellings_of_private_addresses_and_a_name_with_one_private_record_are_refused(host):
    """Red-team pass: the forms inet_aton and scoped IPv6 accept, the deprecated IPv4-compatible and
    translated IPv6 forms, and a name with one public and one private record. Numeric only: no DNS."""
    import socket

    def resolve(h, port, type=0):
        if h == "mixed.example":
            return [(2, 1, 6, "", ("8.8.8.8", port)), (2, 1, 6, "", ("10.0.0.5", port))]
        return socket.getaddrinfo(h, port, type=type, flags=socket.AI_NUMERICHOST)

    with pytest.raises(PolicyError) as e:
        sshrun.checked_address(host, 22, base_url="https://compute.x402layer.cc", resolve=resolve)
    assert e.value.code == "private_address"
