"""Class 2: no shell from a server value.

The ``ssh`` block is built only from a host that is an IP address or a DNS name, a port 1-65535
and a plain POSIX user; otherwise it is ``null`` with the reason in ``ssh_unavailable``. When it
exists, ``argv`` is what to run (no shell) and ``command`` is the same argv quoted with shlex.
"""

from __future__ import annotations

import shlex

import pytest

from tests.helpers import run_script
from tests.hostile.stub import json_reply

BAD_HOSTS = ["1.2.3.4;touch /tmp/pwned", "$(id)", "`id`", "-oProxyCommand=sh -c id", "-p", "host name", "a|b",
             "1.2.3.4 -oProxyCommand=x", "evil.com\n", "fe80::1%eth0", "999.1.1.1", "a..b", "-lead.example", "x" * 300, 1234, ["1.2.3.4"]]
BAD_PORTS = ["22", "22; rm -rf ~", 0, 70000, -1, True, 22.5, "-oProxyCommand=x", None]
GOOD = [("203.0.113.5", None, ["ssh", "root@203.0.113.5"]),
        ("2001:db8::1", 2222, ["ssh", "-p", "2222", "root@2001:db8::1"]),
        ("vm-1.example.com", 65535, ["ssh", "-p", "65535", "root@vm-1.example.com"])]


def details(hostile, hostile_env, **fields):
    order = hostile.add_order(**fields)
    code, doc, _ = run_script("instance_details.py", order["id"], env=hostile_env())
    assert code == 0, doc
    return doc["instance"]


@pytest.mark.parametrize("host", BAD_HOSTS, ids=repr)
def test_a_host_that_is_no_ip_or_dns_name_gives_no_ssh_block(hostile, hostile_env, host):
    inst = details(hostile, hostile_env, ip_address=host)
    assert inst["ssh"] is None and "not an IP address or a DNS name" in inst["ssh_unavailable"]
    assert inst["ip"] is None  # nor is it shown as the address
    assert inst["raw"]["ip_address"] == host  # the raw record stays faithful


@pytest.mark.parametrize("port", [p for p in BAD_PORTS if p is not None], ids=repr)
def test_a_port_that_is_no_integer_1_to_65535_gives_no_ssh_block(hostile, hostile_env, port):
    inst = details(hostile, hostile_env, ip_address="203.0.113.5", ssh_port=port)
    assert inst["ssh"] is None and "SSH port" in inst["ssh_unavailable"], inst


@pytest.mark.parametrize("host,port,argv", GOOD)
def test_a_valid_block_has_argv_and_the_same_command_quoted(hostile, hostile_env, host, port, argv):
    inst = details(hostile, hostile_env, ip_address=host, ssh_port=port)
    ssh = inst["ssh"]
    assert inst["ssh_unavailable"] is None
    # The client's own pin options (issue 22.1), then only the checked port and user@host: no
    # option ever comes from the server.
    pin = ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={ssh['known_hosts_file']}",
           "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"HostKeyAlias=x402-compute-{inst['id']}"]
    assert ssh["argv"] == argv[:1] + pin + argv[1:]
    assert ssh["command"] == shlex.join(ssh["argv"]) and shlex.split(ssh["command"]) == ssh["argv"]
    assert not any(a.startswith("-o") for a in ssh["argv"][len(pin) + 1:])


@pytest.mark.parametrize("user", ["-oProxyCommand=sh -c id", "root;id", "$(id)", "root@evil", "ro ot", "", "r" * 40, 0])
def test_a_server_user_name_that_is_not_plain_gives_no_ssh_block(hostile, hostile_env, user):
    order = hostile.add_order(access_method="one_time_password_fallback", ip_address="203.0.113.5")
    hostile.override("POST", f"/compute/instances/{order['id']}/password",
                     json_reply(200, {"access": {"username": user, "ip_address": "203.0.113.5", "password": "pw-123456"}}))
    code, doc, _ = run_script("get_one_time_password.py", order["id"], env=hostile_env())
    assert code == 0, doc  # the password is saved whatever the rest says
    if user in ("", 0):  # falsy: the client's own default, root
        assert doc["ssh"]["argv"][0] == "ssh" and doc["ssh"]["argv"][-1] == "root@203.0.113.5" and "-i" not in doc["ssh"]["argv"]
    else:
        assert doc["ssh"] is None and "user name" in doc["ssh_unavailable"]


def test_the_text_output_shows_the_reason_not_the_server_string(hostile, hostile_env):
    order = hostile.add_order(ip_address="1.2.3.4;touch /tmp/pwned")
    code, doc, _ = run_script("instance_details.py", order["id"], env=hostile_env())
    import subprocess
    import sys

    from tests.helpers import SCRIPTS

    proc = subprocess.run([sys.executable, str(SCRIPTS / "instance_details.py"), order["id"], "-o", "text"], env=hostile_env(),
                          capture_output=True, text=True, timeout=60)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("ssh:"))
    assert line.startswith("ssh: unavailable (the server's address") and not line.startswith("ssh: ssh")
