"""Host key pins (hostkeys.py) and the system ssh argv (sshrun.py), checked against OpenSSH's own
tools: ssh-keygen reads the pin file and computes the fingerprints, `ssh -G` resolves the options."""

from __future__ import annotations

import shutil
import stat
import subprocess
import uuid

import pytest
from x402_compute.ssh import run as sshrun
from x402_compute.errors import ComputeError
from x402_compute.ssh.hostkeys import HostKey, HostKeyChanged, HostKeyMismatch, HostKeys, published

from tests.helpers import openssh_fingerprint, ssh_keypair

IID = str(uuid.uuid4())
needs_keygen = pytest.mark.skipif(not shutil.which("ssh-keygen"), reason="ssh-keygen is not installed")


@pytest.fixture(scope="module")
def pubs(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    return [ssh_keypair(d, f"k{i}")[1] for i in range(3)]


def test_parse_accepts_a_real_key_and_its_fingerprint_is_openssh_s(pubs):
    k = HostKey.parse(pubs[0])
    assert k.type == "ssh-ed25519" and k.line == " ".join(pubs[0].split()[:2])
    assert k.fingerprint == openssh_fingerprint(pubs[0])


@pytest.mark.parametrize("text", [
    None, 42, "", "ssh-ed25519", "ssh-dss AAAAB3NzaC1kc3MAAACBAP", "ssh-ed25519 not*base64",
    "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",  # an ed25519 blob called rsa
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n@cert-authority * ssh-ed25519 AAAA",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl comment with words",
    "ssh-ed25519 " + "A" * 9000,
])
def test_parse_refuses_anything_else(text):
    with pytest.raises(ValueError):
        HostKey.parse(text)


def test_published_must_be_well_formed_and_consistent(pubs):
    k = HostKey.parse(pubs[0])
    assert not published({})
    p = published({"ssh_host_public_key": pubs[0], "ssh_host_key_fingerprint": k.fingerprint, "ssh_host_key_type": "ssh-ed25519"})
    assert p.key == k and p.fingerprint == k.fingerprint and p.matches(k) and not p.matches(HostKey.parse(pubs[1]))
    only_fp = published({"ssh_host_key_fingerprint": k.fingerprint})
    assert only_fp.key is None and only_fp.matches(k) and not only_fp.matches(HostKey.parse(pubs[1]))
    for bad in (
        {"ssh_host_public_key": "ssh-ed25519 AAAA\nevil"},
        {"ssh_host_key_fingerprint": "MD5:aa:bb"},
        {"ssh_host_key_type": "ssh-ed25519; rm -rf /"},
        {"ssh_host_public_key": pubs[0], "ssh_host_key_fingerprint": HostKey.parse(pubs[1]).fingerprint},
        {"ssh_host_public_key": pubs[0], "ssh_host_key_type": "ssh-rsa"},
    ):
        with pytest.raises(ComputeError) as e:
            published(bad)
        assert e.value.code == "bad_response"


@needs_keygen
def test_first_contact_pins_the_published_key_in_a_file_openssh_reads(tmp_path, pubs):
    store = HostKeys(tmp_path / "state")
    key, other = HostKey.parse(pubs[0]), HostKey.parse(pubs[1])
    order = {"ssh_host_public_key": pubs[0]}
    # The server presents two keys; only the published one is pinned.
    block = store.check(IID, order, [other, key])
    assert block["status"] == "pinned_now" and block["verified_by"] == "api" and block["fingerprint"] == key.fingerprint
    path = store.file(IID)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # ssh-keygen finds exactly that key under the instance's alias, with OpenSSH's fingerprint.
    found = subprocess.run(["ssh-keygen", "-F", store.alias(IID), "-f", str(path)], capture_output=True, text=True)
    assert found.returncode == 0 and pubs[0].split()[1] in found.stdout and pubs[1].split()[1] not in found.stdout
    listed = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert listed.split()[1] == openssh_fingerprint(pubs[0])
    assert store.check(IID, order, [key])["status"] == "matched"


def test_first_contact_that_does_not_match_the_published_key_pins_nothing(tmp_path, pubs):
    store = HostKeys(tmp_path / "state")
    fp = HostKey.parse(pubs[0]).fingerprint
    with pytest.raises(HostKeyMismatch) as e:
        store.check(IID, {"ssh_host_key_fingerprint": fp}, [HostKey.parse(pubs[1])])
    assert e.value.exit_code == 3 and e.value.details["published_fingerprint"] == fp
    assert not store.file(IID).exists()


def test_trust_on_first_use_without_a_published_key_then_a_change_is_refused(tmp_path, pubs):
    store = HostKeys(tmp_path / "state")
    first, second = HostKey.parse(pubs[0]), HostKey.parse(pubs[1])
    block = store.check(IID, {}, [first])
    assert block["status"] == "pinned_now" and block["verified_by"] == "first_contact" and "trust on first use" in block["note"]
    with pytest.raises(HostKeyChanged) as e:
        store.check(IID, {}, [second])
    assert e.value.exit_code == 3 and e.value.code == "host_key_changed"
    assert e.value.details["pinned_fingerprints"] == [first.fingerprint] and e.value.details["presented_fingerprints"] == [second.fingerprint]
    assert store.pinned(IID) == [first]
    # The human's decision: accepted, and only a key matching the API's current record when it publishes one.
    with pytest.raises(HostKeyMismatch):
        store.check(IID, {"ssh_host_public_key": pubs[2]}, [second], accept_change=True)
    assert store.pinned(IID) == [first]
    assert store.check(IID, {"ssh_host_public_key": pubs[1]}, [second], accept_change=True)["status"] == "replaced"
    assert store.pinned(IID) == [second]


def test_pins_are_filed_by_uuid_only_and_a_foreign_file_is_refused(tmp_path, pubs):
    store = HostKeys(tmp_path / "state")
    for bad in ("../../etc/passwd", "x", IID + "/.."):
        with pytest.raises(ComputeError):
            store.file(bad)
    store.file(IID).parent.mkdir(parents=True)
    store.file(IID).write_text(f"@cert-authority * {pubs[0]}\n")
    with pytest.raises(ComputeError) as e:
        store.pinned(IID)
    assert e.value.code == "state_corrupt"


@pytest.mark.skipif(not shutil.which("ssh"), reason="the ssh client is not installed")
@pytest.mark.parametrize("folder", ["plain", "with space", "per%cent", 'quote"d'])
def test_the_ssh_argv_is_read_by_openssh_as_meant(tmp_path, folder):
    d = tmp_path / folder
    d.mkdir()
    t = sshrun.Target("127.0.0.9", 2222, "root", d / "kh", HostKeys.alias(IID), d / "id_key")
    argv = sshrun.openssh_argv(t, "-oProxyCommand=evil; rm -rf /", log_file=d / "log", ssh="ssh")
    # Everything after "--" is the host and the command, never an option.
    i = argv.index("--")
    assert argv[i + 1:] == ["127.0.0.9", "-oProxyCommand=evil; rm -rf /"]
    # `ssh -G` prints the configuration it would use: the same options, the paths exactly ours.
    g = subprocess.run([*argv[:i], "-G", *argv[i:i + 2]], capture_output=True, text=True, timeout=30)
    assert g.returncode == 0, g.stderr
    conf = dict(line.split(" ", 1) for line in g.stdout.splitlines() if " " in line)
    assert conf["userknownhostsfile"] == str(d / "kh") and conf["globalknownhostsfile"] == "/dev/null"
    # -G prints IdentityFile before its %-tokens are expanded (at key loading time, %% -> %).
    assert conf["identityfile"].replace("%%", "%") == str(d / "id_key") and conf["identitiesonly"] == "yes"
    assert conf["hostkeyalias"] == HostKeys.alias(IID) and conf["stricthostkeychecking"] == "true"
    assert (conf["hostname"], conf["port"], conf["user"]) == ("127.0.0.9", "2222", "root")
    assert conf["batchmode"] == "yes" and conf["forwardagent"] == "no" and conf["passwordauthentication"] == "no"
    assert "proxycommand" not in conf and conf.get("requesttty") == "false"


def test_capture_keeps_the_head_and_counts_everything():
    c = sshrun.Capture(5)
    for chunk in (b"abc", b"defgh", b"", b"ij"):
        c.feed(chunk)
    assert bytes(c.data) == b"abcde" and c.total == 10 and c.truncated
    c2 = sshrun.Capture(5)
    c2.feed(b"abcde")
    assert not c2.truncated and c2.text() == "abcde"
