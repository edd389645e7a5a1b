"""What an agent tripped over (issue 15), proven with the real scripts against the sandbox:
GPU slices named as such, plan filters and sort, regions by country and continent, the resize dry
run that leaves the server untouched, and the skill's own SSH key.

Expected values come from the sandbox's catalog module and its server-side records, not from
the client code under test; the SSH key is checked with OpenSSH's own ssh-keygen and ssh."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from x402_compute.instances import parse_time

from tests.helpers import clean_env, closed_port_url, fail, ok, run_script

A100_SLICE = "vcg-a100-1c-2g-6gb"
NVIDIA_A100_GB = 80  # NVIDIA's A100 datasheet; Vultr deploys the 80 GB model
WAIT = ("--wait-timeout", "60", "--poll-interval", "0.3")


def sandbox_plans() -> list[dict]:
    from x402_compute_sandbox import catalog

    return [p for t in catalog.PLAN_TYPES for p in catalog.list_plans(t)]


def region_ids(field: str, value: str) -> set[str]:
    from x402_compute_sandbox import catalog

    return {r["id"] for r in catalog.REGIONS if r[field] == value}


@pytest.fixture
def public_env(sandbox, tmp_path):
    return clean_env({"COMPUTE_BASE_URL": sandbox.base_url}, home=tmp_path)


@pytest.fixture
def dead_env(tmp_path):
    return clean_env({"COMPUTE_BASE_URL": closed_port_url(), "PRIVATE_KEY": "0x" + "11" * 32}, home=tmp_path)


# -- GPU slices --------------------------------------------------------------------------------

def test_the_fractional_a100_is_named_a_slice(public_env):
    from x402_compute_sandbox import catalog

    vram = catalog.get_plan(A100_SLICE)["gpu_vram_gb"]
    doc = ok(run_script("browse_plans.py", "--gpu", env=public_env))
    row = next(p for p in doc["plans"] if p["id"] == A100_SLICE)
    assert (row["gpu_model"], row["gpu_count"], row["gpu_vram_gb"]) == ("A100", 1, vram)
    assert row["gpu_fraction"] == pytest.approx(vram / NVIDIA_A100_GB) and row["gpu_fraction"] < 1
    assert row["gpu_summary"] == f"1/{NVIDIA_A100_GB // vram} of an A100 ({vram} GB VRAM)"
    l40s = next(p for p in doc["plans"] if p["gpu_model"] == "L40S")
    assert (l40s["gpu_fraction"], l40s["gpu_count"]) == (1.0, 1)

    gpu_plans = [p for p in sandbox_plans() if p.get("gpu_type")]
    whole = ok(run_script("browse_plans.py", "--whole-gpu", env=public_env))
    # Whole GPUs by the vendors' figures: the L40S (48 GB) is; neither A100 slice (2, 20 of 80 GB) is.
    assert {p["id"] for p in whole["plans"]} == {p["id"] for p in gpu_plans if p["gpu_vram_gb"] in (48, 80)}
    assert all(p["gpu_fraction"] == 1 for p in whole["plans"])
    big = ok(run_script("browse_plans.py", "--min-gpu-vram", "20", env=public_env))
    assert {p["id"] for p in big["plans"]} == {p["id"] for p in gpu_plans if p["gpu_vram_gb"] >= 20}
    cpu = ok(run_script("browse_plans.py", "--type", "vps", "--limit", "3", env=public_env))
    assert all(p["gpu_model"] is None and p["gpu_fraction"] is None and p["gpu_summary"] is None for p in cpu["plans"])

    text = subprocess.run([*_script_cmd("browse_plans.py"), "--gpu-type", "a100", "-o", "text"], env=public_env,
                          capture_output=True, text=True, timeout=60).stdout
    assert f"1/{NVIDIA_A100_GB // vram} of an A100" in text


def _script_cmd(name: str) -> list[str]:
    import sys

    from tests.helpers import SCRIPTS

    return [sys.executable, str(SCRIPTS / name)]


# -- filters and sort ----------------------------------------------------------------------------

def _hourly(p: dict) -> Decimal:
    return Decimal(str(p["our_hourly"]))


def test_spec_and_place_filters_match_the_catalog(public_env):
    everything = sandbox_plans()
    doc = ok(run_script("browse_plans.py", "--min-ram", "2", "--min-vcpu", "2", "--min-disk", "60", env=public_env))
    want = [p for p in everything if p["ram"] >= 2048 and p["vcpu_count"] >= 2 and p["disk"] >= 60]
    assert [p["id"] for p in doc["plans"]] == [p["id"] for p in sorted(want, key=lambda p: (_hourly(p), p["id"]))]
    assert doc["matched"] == doc["count"] == len(want)

    de = region_ids("country", "DE")
    doc = ok(run_script("browse_plans.py", "--country", "de", env=public_env))
    assert {p["id"] for p in doc["plans"]} == {p["id"] for p in everything if de & set(p["locations"])}
    assert all(p["matching_locations"] and set(p["matching_locations"]) <= de for p in doc["plans"])

    na = region_ids("continent", "North America")
    doc = ok(run_script("browse_plans.py", "--continent", "north-america", "--provider", "do", env=public_env))
    assert {p["id"] for p in doc["plans"]} == {p["id"] for p in everything if p["provider"] == "digitalocean" and na & set(p["locations"])}
    assert all(set(p["matching_locations"]) == na & set(p["locations"]) for p in doc["plans"])

    # Price ascending by default; --sort ram / vcpu ascending with the cheaper first on a tie.
    by_price = ok(run_script("browse_plans.py", env=public_env))["plans"]
    assert [Decimal(p["hourly_usd"]) for p in by_price] == sorted(Decimal(p["hourly_usd"]) for p in by_price)
    for flag, field in (("ram", "ram_mb"), ("vcpu", "vcpu")):
        rows = ok(run_script("browse_plans.py", "--sort", flag, env=public_env))["plans"]
        keys = [(p[field], Decimal(p["hourly_usd"])) for p in rows]
        assert keys == sorted(keys) and len(rows) == len(everything)


@pytest.mark.parametrize("args, names", [
    (("--min-ram", "two"), ("--min-ram", "number of GB")),
    (("--min-ram", "-1"), ("--min-ram", "number of GB")),
    (("--min-disk", "NaN"), ("--min-disk", "number of GB")),
    (("--min-gpu-vram", "lots"), ("--min-gpu-vram", "number of GB")),
    (("--min-vcpu", "1.5"), ("--min-vcpu", "whole number")),
    (("--country", "Germany"), ("--country", "two-letter")),
    (("--continent", "Europe; rm -rf /"), ("--continent", "continent name")),
    (("--sort", "cheapest"), ("--sort", "price")),
])
def test_bad_filter_values_are_usage_errors_before_any_request(dead_env, args, names):
    e = fail(run_script("browse_plans.py", *args, env=dead_env), 2, "usage_error")
    assert all(n in e["message"] for n in names), e["message"]


def test_the_same_filters_reach_the_network_when_valid(dead_env):
    # Control for the test above: well-formed values do send a request (to the dead port).
    fail(run_script("browse_plans.py", "--min-ram", "2", "--country", "DE", "--sort", "ram", env=dead_env), 1, "network_error")
    fail(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--ssh-key", "auto", "--ssh-key-file", "/nonexistent.pub",
                    "--quote", env=dead_env), 2, "usage_error")


def test_regions_by_country_and_continent(public_env):
    eu = ok(run_script("browse_regions.py", "--continent", "EUROPE", env=public_env))
    assert {r["id"] for r in eu["regions"]} == region_ids("continent", "Europe")
    assert all(r["country"] and r["continent"] == "Europe" for r in eu["regions"])
    us_do = ok(run_script("browse_regions.py", "--country", "us", "--provider", "digitalocean", env=public_env))
    from x402_compute_sandbox import catalog

    assert {r["id"] for r in us_do["regions"]} == {r for r in region_ids("country", "US") if r in catalog.DO_LOCATIONS}
    e = fail(run_script("browse_regions.py", "--continent", "Oceania", env=public_env), 2, "unknown_continent")
    assert e["details"]["known_continents"] == sorted({r["continent"] for r in catalog.REGIONS}) and "Europe" in e["hint"]


# -- resize --quote ---------------------------------------------------------------------------------

class Spy:
    """Counts calls into the sandbox's provider (the server side of the API)."""

    def __init__(self, monkeypatch, provider, *names):
        self.calls: list[str] = []
        for name in names:
            real = getattr(provider, name)

            def wrapped(*a, _real=real, _name=name, **kw):
                self.calls.append(_name)
                return _real(*a, **kw)

            monkeypatch.setattr(provider, name, wrapped)


def test_resize_quote_checks_and_estimates_without_touching_the_server(sandbox, paying_env, monkeypatch):
    env = paying_env
    iid = ok(run_script("provision.py", "vc2-1c-2gb", "ewr", "--days", "1", "--yes", "--wait", *WAIT, env=env))["order"]["id"]
    spy = Spy(monkeypatch, sandbox.app.provider, "resize", "check_resize")
    monkeypatch.setattr(sandbox.app.provider, "resize_seconds", 60.0)  # long enough to quote during it
    before = sandbox.app.store.get_order(iid)

    q = ok(run_script("resize_instance.py", iid, "vc2-2c-4gb", "--quote", env=env))["quote"]
    assert spy.calls == []
    after = sandbox.app.store.get_order(iid)
    assert {k: after[k] for k in ("plan", "expires_at", "status", "_resize_until")} == {k: before[k] for k in ("plan", "expires_at", "status", "_resize_until")}
    assert (q["from_plan"], q["to_plan"], q["sent"], q["irreversible"]) == ("vc2-1c-2gb", "vc2-2c-4gb", False, False)
    assert q["checks"] == ["target_plan_in_catalog", "different_plan", "same_provider", "offered_in_region", "vultr_upgrade_only"]
    assert q["old_expires_at"] == before["expires_at"] and "unavailable" in q["downtime"]
    assert 23 < q["remaining_hours_before"] <= 24
    from x402_compute_sandbox import catalog

    credit = Decimal(q["remaining_credit_usd_estimate"])
    assert abs(credit - Decimal(str(q["remaining_hours_before"])) * catalog.hourly("vc2-1c-2gb")) <= Decimal("0.01")
    assert q["hourly_usd_before"] == "0.0208" and q["hourly_usd_after"] == "0.0417"
    assert parse_time(q["new_expires_at_estimate"]) < parse_time(q["old_expires_at"])  # a dearer plan runs out sooner

    # A check that fails in a quote fails exactly as the real run would, still without a call.
    fail(run_script("resize_instance.py", iid, "vc2-1c-1gb", "--quote", env=env), 3, "downgrade_not_supported")
    assert spy.calls == []

    # Control: the real resize does reach the provider, and lands where the quote said.
    done = ok(run_script("resize_instance.py", iid, "vc2-2c-4gb", env=env))
    assert spy.calls.count("resize") == 1
    assert abs(parse_time(done["new_expires_at"]) - parse_time(q["new_expires_at_estimate"])) < timedelta(minutes=2)
    assert abs(Decimal(str(done["remaining_credit"])) - credit) <= Decimal("0.01")

    # While it resizes, a quote is refused like the real call would be (409), with the quote attached.
    e = fail(run_script("resize_instance.py", iid, "vc2-4c-8gb", "--quote", env=env), 1, "conflict")
    assert e["details"]["quote"]["state"] == "resizing" and spy.calls.count("resize") == 1


# -- --ssh-key auto ------------------------------------------------------------------------------------

needs_openssh = pytest.mark.skipif(not (shutil.which("ssh-keygen") and shutil.which("ssh")), reason="OpenSSH client tools are not installed")


@needs_openssh
def test_ssh_key_auto_creates_one_key_sends_it_and_ssh_uses_it(sandbox, paying_env, monkeypatch, tmp_path):
    env = paying_env
    sent: list[str | None] = []
    real_create = sandbox.app.provider.create  # the server side: what public key the API received

    def create(**kw):
        sent.append(kw.get("ssh_public_key"))
        return real_create(**kw)

    monkeypatch.setattr(sandbox.app.provider, "create", create)
    code, doc, err = run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--ssh-key", "auto", "--yes", "--wait-ssh", *WAIT, env=env)
    assert code == 0, (doc, err)
    key = doc["ssh_key"]
    priv = Path(key["private_key_file"])
    assert key["created"] is True and key["generated_with"] == "pynacl"
    assert priv.parent == Path(env["X402_COMPUTE_STATE_DIR"]) / "ssh"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600 and stat.S_IMODE(priv.parent.stat().st_mode) == 0o700
    body = "".join(priv.read_text().splitlines()[1:-1])
    assert body[:40] not in json.dumps(doc) and body[:40] not in err  # the private key is never printed

    # The server received exactly the public key that OpenSSH derives from the private file.
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(priv)], capture_output=True, text=True, check=True).stdout.split()[:2]
    assert sent == [key["public_key"]] and key["public_key"].split()[:2] == derived
    # And the private file signs for it, verified by OpenSSH against the key the server got.
    msg = tmp_path / "msg"
    msg.write_text("login check")
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(priv), "-n", "file", str(msg)], capture_output=True, check=True)
    (tmp_path / "allowed").write_text(f"agent {sent[0]}\n")
    verify = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", "agent", "-n", "file", "-s", f"{msg}.sig"],
                            stdin=msg.open(), capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr

    # The ssh block uses the key: OpenSSH resolves the command to this identity, host, port and user.
    ssh = doc["ssh"]
    assert ssh["identity_file"] == str(priv) and ssh["banner"].startswith("SSH-2.0-")
    argv = shlex.split(ssh["command"])
    config = subprocess.run(["ssh", "-G", *argv[1:]], capture_output=True, text=True, check=True).stdout.lower().splitlines()
    assert f"identityfile {priv}".lower() in config
    assert f"hostname {ssh['host']}" in config and f"port {ssh['port']}" in config and "user root" in config

    # And it logs in on the sandbox's SSH server: the block's own command, which names its pin file
    # (holding the key the API published) and no other identity anywhere (empty HOME, no agent, no config).
    raw = ok(run_script("instance_details.py", doc["order"]["id"], env=env))["instance"]["raw"]
    assert Path(ssh["known_hosts_file"]).read_text().split()[1:] == raw["ssh_host_public_key"].split()[:2]
    assert "IdentitiesOnly=yes" in argv and f"UserKnownHostsFile={ssh['known_hosts_file']}" in argv
    pin = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    bare = {"PATH": os.environ["PATH"], "HOME": str(tmp_path / "empty-home")}
    (tmp_path / "empty-home").mkdir()
    login = subprocess.run([argv[0], *pin, *argv[1:], "echo logged-in-with-the-auto-key"], env=bare, capture_output=True, text=True,
                           timeout=60, stdin=subprocess.DEVNULL)
    assert login.returncode == 0 and login.stdout.strip() == "logged-in-with-the-auto-key", login.stderr
    # Control: the same command without its -i is refused, so the auto key is what let it in.
    no_key = [a for i, a in enumerate(argv) if a != "-i" and (i == 0 or argv[i - 1] != "-i")]
    refused = subprocess.run([no_key[0], *pin, *no_key[1:], "true"], env=bare, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert refused.returncode == 255 and "-i" in argv

    # A second machine (DigitalOcean needs a key) reuses the same pair, byte for byte.
    raw = priv.read_bytes()
    again = ok(run_script("provision.py", "do:s-1vcpu-1gb", "nyc3", "--days", "1", "--ssh-key", "auto", "--yes", "--wait", *WAIT, env=env))
    assert again["ssh_key"]["created"] is False and again["ssh_key"]["fingerprint"] == key["fingerprint"]
    assert priv.read_bytes() == raw and sent == [key["public_key"]] * 2
    assert sorted(p.name for p in priv.parent.iterdir()) == ["x402-compute_ed25519", "x402-compute_ed25519.pub"]

    # Later scripts know which instances have it.
    ids = {doc["order"]["id"], again["order"]["id"]}
    rows = [r for r in ok(run_script("list_instances.py", env=env))["instances"] if r["id"] in ids]
    assert len(rows) == 2 and all(r["ssh"]["identity_file"] == str(priv) and f"-i {priv}" in r["ssh"]["command"] for r in rows)
    details = ok(run_script("instance_details.py", again["order"]["id"], env=env))["instance"]
    assert details["ssh"]["identity_file"] == str(priv)
    # An instance made without it gets no -i.
    plain = ok(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--yes", "--wait", *WAIT, env=env))
    assert "identity_file" not in plain["ssh"] and "-i" not in shlex.split(plain["ssh"]["command"])


# -- an API key alone (what SKILL.md promises) -------------------------------------------------------

def test_an_api_key_alone_manages_and_spends_credits_but_never_pays(sandbox, paying_env, tmp_path):
    env = paying_env
    ok(run_script("credits_topup.py", "--amount", "1", "--yes", env=env))
    key = ok(run_script("create_api_key.py", "--label", "routine", "--show", env=env))["api_key"]
    key_only = clean_env({"COMPUTE_BASE_URL": sandbox.base_url, "COMPUTE_API_KEY": key, "COMPUTE_AUTH_MODE": "api-key"}, home=tmp_path / "key")
    orders_before = len(sandbox.app.store.all_orders())

    # Paying needs a wallet: refused before anything is sent, no order made.
    e = fail(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--yes", env=key_only), 2, "config_error")
    assert "wallet" in e["message"].lower() and len(sandbox.app.store.all_orders()) == orders_before
    fail(run_script("create_api_key.py", env=key_only), 2, "config_error")  # keys need a wallet signature

    # Prepaid credits can be spent with the key, and the key manages and destroys what it sees.
    doc = ok(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--use-credits", "--yes", env=key_only))
    assert doc["payment"]["method"] == "credits" and doc["payment"]["tx_hash"] is None
    iid = doc["order"]["id"]
    assert any(r["id"] == iid for r in ok(run_script("list_instances.py", env=key_only))["instances"])
    assert ok(run_script("credits_balance.py", env=key_only))["balance_usd"] == "0.75"  # 1.00 - 24 h × 0.0104
    gone = ok(run_script("destroy_instance.py", iid, "--yes", env=key_only))
    assert gone["instance"]["state"] == "destroyed" and sandbox.app.store.get_order(iid)["status"] == "destroyed"
