"""Every management script as a subprocess against the sandbox over loopback HTTP:
one JSON document on stdout, documented exit codes, and the error paths.

Instances are bought through the sandbox's real x402 path with a payment signed
here by eth-account (independently of the client's payments package), from a
fresh wallet funded by the sandbox faucet, so this module never shares
instances or API keys with other tests on the session sandbox."""

from __future__ import annotations

import base64
import json
import shlex
import stat
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.helpers import SCRIPTS, clean_env, closed_port_url, fail, ok, run_script
from tests.oracle.builders import eip3009_inner

MISSING = "3f1c2a9e-0000-4000-8000-00000000dead"
PLAN, REGION, OS_ID = "vc2-1c-2gb", "ewr", 2284


# -- a paid provision, signed here ----------------------------------------------------

def _eip3009(key: str, req: dict, chain_id: int) -> dict:
    inner = eip3009_inner(key, to=req["payTo"], value=int(req["maxAmountRequired"]), asset=req["asset"], chain_id=chain_id,
                          name=req["extra"]["name"], version=req["extra"]["version"],
                          valid_before=int(time.time()) + int(req.get("maxTimeoutSeconds") or 300))
    return {"x402Version": 1, "scheme": "exact", "network": req["network"], "payload": inner}


def provision(sandbox, key: str, *, plan=PLAN, region=REGION, os_id=OS_ID, label="e2e", ssh_key=None) -> dict:
    body = {"plan": plan, "region": region, "os_id": os_id, "label": label, "prepaid_hours": 24, "network": "base"}
    if ssh_key:
        body["ssh_public_key"] = ssh_key
    raw = json.dumps(body, separators=(",", ":"))
    url = sandbox.base_url + "/compute/provision"
    hdr = {"Content-Type": "application/json"}
    r = requests.post(url, data=raw, headers=hdr, timeout=30)
    assert r.status_code == 402, r.text
    offer = next(a for a in r.json()["accepts"] if a["network"] == "base")
    payment = base64.b64encode(json.dumps(_eip3009(key, offer, 8453)).encode()).decode()
    r = requests.post(url, data=raw, headers={**hdr, "X-PAYMENT": payment}, timeout=60)
    assert r.status_code in (200, 201), r.text
    return r.json()["order"]


@pytest.fixture(scope="module")
def wallet(sandbox):
    from eth_account import Account

    acct = Account.create()
    sandbox.facilitator.fund("base", acct.address, 1_000 * 10**6)
    return {"key": "0x" + bytes(acct.key).hex(), "address": acct.address}


@pytest.fixture
def env(sandbox, wallet, tmp_path):
    return clean_env({"COMPUTE_BASE_URL": sandbox.base_url, "PRIVATE_KEY": wallet["key"], "WALLET_ADDRESS": wallet["address"]}, home=tmp_path)


def wait_running(env, iid, timeout=20.0) -> dict:
    deadline = time.time() + timeout
    while True:
        code, doc, err = run_script("instance_details.py", iid, env=env)
        assert code == 0, doc
        if doc["instance"]["state"] == "running" or time.time() > deadline:
            return doc["instance"]
        time.sleep(0.3)


@pytest.fixture
def dead_url_env(tmp_path):
    """An env pointing at a closed port: a script that reaches the network fails with network_error."""
    from eth_account import Account

    return clean_env({"COMPUTE_BASE_URL": closed_port_url(), "PRIVATE_KEY": Account.create().key.hex(), "COMPUTE_API_KEY": "x402c_unused0000"}, home=tmp_path)


# -- catalog ----------------------------------------------------------------------------

def test_browse_plans_all_types_filters_and_prices(env):
    doc = ok(run_script("browse_plans.py", env=env))
    types = {p["type"] for p in doc["plans"]}
    assert {"vps", "vhp", "vdc", "vcg"} <= types  # dedicated and GPU are included by default
    hourly = [float(p["hourly_usd"]) for p in doc["plans"]]
    assert hourly == sorted(hourly)
    p = next(x for x in doc["plans"] if x["id"] == "vc2-1c-1gb")
    assert (p["hourly_usd"], p["daily_usd"], p["monthly_usd"], p["ram_mb"]) == ("0.0104", "0.25", "7.49", 1024)

    gpu = ok(run_script("browse_plans.py", "--gpu", "--gpu-type", "a100", "--region", "ewr", env=env))
    assert gpu["count"] >= 1 and all("A100" in x["gpu_type"] and "ewr" in x["locations"] for x in gpu["plans"])
    do = ok(run_script("browse_plans.py", "--provider", "do", "--max-hourly", "0.03", "--limit", "2", env=env))
    assert do["count"] == 2 and do["matched"] >= 2
    assert all(x["provider"] == "digitalocean" and float(x["hourly_usd"]) <= 0.03 for x in do["plans"])
    vcg = ok(run_script("browse_plans.py", "--type", "vcg", env=env))
    assert vcg["count"] >= 1 and {x["type"] for x in vcg["plans"]} == {"vcg"}


def test_browse_plans_usage_errors_before_any_request(dead_url_env):
    fail(run_script("browse_plans.py", "--type", "bare-metal", env=dead_url_env), 2, "usage_error")
    fail(run_script("browse_plans.py", "--region", "NOT A REGION!", env=dead_url_env), 2, "usage_error")
    fail(run_script("browse_plans.py", "--max-hourly", "cheap", env=dead_url_env), 2)
    fail(run_script("browse_plans.py", "--limit", "0", env=dead_url_env), 2)
    # And a valid call to the dead URL proves the network path is what fails otherwise.
    fail(run_script("browse_plans.py", env=dead_url_env), 1, "network_error")


def test_browse_regions_and_os(env):
    all_regions = ok(run_script("browse_regions.py", env=env))
    ids = {r["id"] for r in all_regions["regions"]}
    assert {"ewr", "nyc3"} <= ids
    do = ok(run_script("browse_regions.py", "--provider", "digitalocean", env=env))
    assert do["count"] >= 1 and all(r["id"] != "ewr" for r in do["regions"]) and any(r["id"] == "nyc3" for r in do["regions"])
    gpu = ok(run_script("browse_regions.py", "--plan", "vcg-a100-1c-2g-6gb", env=env))
    assert {r["id"] for r in gpu["regions"]} == {"ewr", "lax", "fra"}
    fail(run_script("browse_regions.py", "--plan", "no-such-plan", env=env), 2)

    os_all = ok(run_script("browse_os.py", env=env))
    assert any(o["id"] == 2284 for o in os_all["os_options"])
    vultr_ubuntu = ok(run_script("browse_os.py", "--provider", "vultr", "--family", "ubuntu", env=env))
    assert vultr_ubuntu["count"] >= 1 and all(o["provider"] == "vultr" and o["family"] == "ubuntu" for o in vultr_ubuntu["os_options"])


def test_text_output_for_humans(env):
    # With --output text stdout is a table for humans, not JSON.
    import subprocess
    import sys

    from tests.helpers import SCRIPTS

    proc = subprocess.run([sys.executable, str(SCRIPTS / "browse_plans.py"), "--output", "text", "--limit", "3"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("PLAN") and "$/HOUR" in proc.stdout


# -- instances ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def instance(sandbox, wallet):
    return provision(sandbox, wallet["key"], label="e2e-main")


def test_bad_uuid_is_usage_error_with_no_request(dead_url_env):
    for script, args in [
        ("instance_details.py", ["not-a-uuid"]),
        ("destroy_instance.py", ["../../etc/passwd", "--yes"]),
        ("get_one_time_password.py", ["1234"]),
        ("resize_instance.py", ["x", "vc2-2c-4gb", "--yes"]),
        ("resize_instance.py", [MISSING, "Bad Plan!", "--yes"]),
        ("revoke_api_key.py", ["bad/id", "--yes"]),
        ("create_api_key.py", ["--label", "bad\nlabel"]),
    ]:
        # The URL is dead: reaching the network would give network_error (exit 1), not exit 2.
        fail(run_script(script, *args, env=dead_url_env), 2)


def test_list_and_details(env, instance):
    iid = instance["id"]
    inst = wait_running(env, iid)
    assert inst["state"] == "running" and inst["ip"] and inst["ip"] != "0.0.0.0"
    ssh = inst["ssh"]
    assert ssh["user"] == "root" and ssh["host"] == inst["ip"] and isinstance(ssh["port"], int)
    assert ssh["command"].startswith("ssh ") and ssh["command"].endswith(f"root@{inst['ip']}")
    assert inst["ssh"]["auth"] == "password"  # provisioned without an SSH key
    assert inst["raw"]["id"] == iid and "status" in inst["raw"]
    assert 23 < inst["hours_left"] <= 24 and inst["hourly_usd"] == "0.0208"
    assert 0.45 < float(inst["prepaid_value_remaining_usd"]) <= 0.50

    doc = ok(run_script("list_instances.py", env=env))
    row = next(r for r in doc["instances"] if r["id"] == iid)
    assert row["state"] == "running" and row["label"] == "e2e-main"
    assert row["ssh"] == inst["ssh"]  # list rows carry the same ssh block as the details
    assert ok(run_script("list_instances.py", "--label", "E2E-MAIN", env=env))["count"] >= 1
    assert any(r["id"] == iid for r in ok(run_script("list_instances.py", "--expiring-within", "25", env=env))["instances"])
    assert not any(r["id"] == iid for r in ok(run_script("list_instances.py", "--expiring-within", "1", env=env))["instances"])
    assert ok(run_script("list_instances.py", "--state", "stopped", env=env))["count"] == 0


def test_details_while_booting_has_no_ip(sandbox, wallet, env):
    fresh = provision(sandbox, wallet["key"], label="e2e-boot")
    assert fresh["ip_address"] == "0.0.0.0"
    inst = ok(run_script("instance_details.py", fresh["id"], env=env))["instance"]
    if inst["state"] == "provisioning":  # the sandbox boots in 0.3 s; a slow runner may already see it up
        assert inst["ip"] is None and inst["ssh"] is None


def test_unknown_instance_is_404(env):
    e = fail(run_script("instance_details.py", MISSING, env=env), 1, "not_found")
    assert e["status"] == 404
    fail(run_script("destroy_instance.py", MISSING, "--yes", env=env), 1, "not_found")
    fail(run_script("get_one_time_password.py", MISSING, env=env), 1, "not_found")


def test_someone_elses_instance_is_404(sandbox, env, instance, tmp_path):
    from eth_account import Account

    other = clean_env({"COMPUTE_BASE_URL": sandbox.base_url, "PRIVATE_KEY": Account.create().key.hex()}, home=tmp_path / "other")
    fail(run_script("instance_details.py", instance["id"], env=other), 1, "not_found")
    assert not any(r["id"] == instance["id"] for r in ok(run_script("list_instances.py", env=other))["instances"])


def test_one_time_password_saved_0600_then_409_explained(sandbox, wallet, env, tmp_path):
    iid = provision(sandbox, wallet["key"], label="e2e-pw")["id"]
    wait_running(env, iid)
    work = tmp_path / "cwd"
    work.mkdir()
    import subprocess
    import sys

    from tests.helpers import SCRIPTS

    proc = subprocess.run([sys.executable, str(SCRIPTS / "get_one_time_password.py"), iid], env=env, cwd=work, capture_output=True, text=True, timeout=60)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0 and doc["ok"], proc
    assert doc["password"] is None and doc["username"] == "root" and doc["ip"]
    path = Path(doc["credentials_file"])
    assert path.is_relative_to(Path(env["X402_COMPUTE_STATE_DIR"]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    content = path.read_text()
    assert content.startswith(f"username=root\nip={doc['ip']}\npassword=") and len(content.split("password=")[1].strip()) >= 8
    password = content.split("password=")[1].strip()
    assert password not in proc.stdout and password not in proc.stderr
    assert list(work.iterdir()) == []  # nothing in the working directory

    e = fail(run_script("get_one_time_password.py", iid, env=env), 1, "password_already_revealed")
    assert e["status"] == 409 and "cannot be shown again" in e["message"] and str(path) in e["message"]
    assert e["details"]["credentials_file"] == str(path)
    assert path.read_text() == content  # the first file is untouched

    # Elsewhere (another state dir) the message still explains, without claiming a file exists.
    e = fail(run_script("get_one_time_password.py", iid, env={**env, "X402_COMPUTE_STATE_DIR": str(tmp_path / "elsewhere")}), 1, "password_already_revealed")
    assert "if it was made here" in e["message"] and "redeploy" in e["hint"].lower()


def test_password_show_prints_it(sandbox, wallet, env):
    iid = provision(sandbox, wallet["key"], label="e2e-pw-show")["id"]
    wait_running(env, iid)
    doc = ok(run_script("get_one_time_password.py", iid, "--show", env=env))
    assert doc["password"] and doc["password"] in Path(doc["credentials_file"]).read_text()


def test_destroy_needs_yes_then_forfeits_prepaid_time(sandbox, wallet, env):
    iid = provision(sandbox, wallet["key"], label="e2e-destroy")["id"]
    ip = wait_running(env, iid)["ip"]
    e = fail(run_script("destroy_instance.py", iid, env=env), 3, "confirmation_required")
    assert e["details"]["state"] == "running" and e["details"]["ip"] == ip  # what is about to go
    lost = e["details"]["prepaid_time_lost"]
    assert 23 < lost["hours"] <= 24 and lost["hourly_usd"] == "0.0208" and 0.45 < float(lost["usd"]) <= 0.50
    assert ok(run_script("instance_details.py", iid, env=env))["instance"]["state"] != "destroyed"  # still there

    doc = ok(run_script("destroy_instance.py", iid, "--yes", env=env))
    assert doc["destroyed"] is True and doc["prepaid_time_lost"]["usd"]
    # The instance as it is after the destroy, read back from the server, not the record from before.
    assert doc["instance"]["state"] == "destroyed" and doc["instance"]["ip"] is None and doc["instance"]["hours_left"] == 0
    assert sandbox.app.store.get_order(iid)["status"] == "destroyed"
    assert ok(run_script("instance_details.py", iid, env=env))["instance"]["state"] == "destroyed"
    assert not any(r["id"] == iid for r in ok(run_script("list_instances.py", env=env))["instances"])
    assert any(r["id"] == iid and r["state"] == "destroyed" for r in ok(run_script("list_instances.py", "--all", env=env))["instances"])
    fail(run_script("destroy_instance.py", iid, "--yes", env=env), 1, "already_destroyed")


def test_resize_downgrade_refused_before_calling_api(sandbox, wallet, env, instance):
    wait_running(env, instance["id"])
    e = fail(run_script("resize_instance.py", instance["id"], "vc2-1c-1gb", "--yes", env=env), 3, "downgrade_not_supported")
    assert "vc2-2c-4gb" in e["details"]["upgrade_targets"] and "vc2-1c-1gb" not in e["details"]["upgrade_targets"]
    assert all(not t.startswith(("do:", "vhp-")) for t in e["details"]["upgrade_targets"])
    assert "cannot shrink in place" in e["message"] and "allowed_targets" not in e["details"]
    # The way to the smaller plan: a new machine quoted by the exact command shown, data moved, the old one destroyed.
    steps = e["details"]["shrink_path"]["steps"]
    assert [s["step"] for s in steps] == ["quote_new_machine", "move_data", "destroy_old"]
    assert steps[0]["command"] in e["hint"] and instance["id"] in steps[2]["command"]
    words = shlex.split(steps[0]["command"])
    assert words[:2] == [sys.executable, str(SCRIPTS / "provision.py")] and words[2:4] == ["vc2-1c-1gb", instance["region"]]
    q = ok(run_script(Path(words[1]).name, *words[2:], env=env))["quote"]  # the printed command, as printed
    assert q["plan"] == "vc2-1c-1gb" and q["signed"] is False
    e = fail(run_script("resize_instance.py", instance["id"], "do:s-2vcpu-4gb", "--yes", env=env), 3, "provider_mismatch")
    assert "vc2-2c-4gb" in e["details"]["upgrade_targets"]
    e = fail(run_script("resize_instance.py", instance["id"], "vc2-2c-4g", "--yes", env=env), 2, "unknown_plan")
    assert "vc2-2c-4gb" in e["details"]["did_you_mean"] and "Did you mean" in e["hint"]


def test_resize_as_existing_users_type_it_keeps_credit(sandbox, wallet, env, monkeypatch):
    iid = provision(sandbox, wallet["key"], label="e2e-resize")["id"]
    before = wait_running(env, iid)
    # Long enough to observe the resize in progress (and its 409) from a subprocess.
    monkeypatch.setattr(sandbox.app.provider, "resize_seconds", 60.0)
    assert ok(run_script("instance_details.py", iid, env=env))["instance"]["plan"] == PLAN
    # The command line existing users type, unattended and without --yes, works as written.
    doc = ok(run_script("resize_instance.py", iid, "vc2-2c-4gb", "--confirm-disk-resize", env=env))
    assert doc["from_plan"] == PLAN and doc["to_plan"] == "vc2-2c-4gb" and doc["provider"] == "vultr"
    assert doc["old_expires_at"] == before["expires_at"] and doc["new_expires_at"] < doc["old_expires_at"]
    assert 0.45 < float(doc["remaining_credit"]) <= 0.50
    assert doc["remaining_hours_after"] < doc["remaining_hours_before"]
    after = ok(run_script("instance_details.py", iid, env=env))["instance"]
    assert after["plan"] == "vc2-2c-4gb" and after["state"] == "resizing"
    e = fail(run_script("resize_instance.py", iid, "vc2-4c-8gb", "--yes", env=env), 1, "conflict")
    assert e["status"] == 409 and "hint" in e


def test_resize_digitalocean_disk_growth_needs_confirmation(sandbox, wallet, env):
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2CxhZ3o1eF3V4ZkI1bYk4gH1sP6kq8W7Zc7r2Jt9Q e2e@test"
    iid = provision(sandbox, wallet["key"], plan="do:s-1vcpu-1gb", region="nyc3", os_id=160232537, label="e2e-do", ssh_key=key)["id"]
    wait_running(env, iid)
    e = fail(run_script("resize_instance.py", iid, "do:s-1vcpu-2gb", "--yes", env=env), 3, "disk_resize_confirmation_required")
    assert "irreversible" in e["message"]
    doc = ok(run_script("resize_instance.py", iid, "do:s-1vcpu-2gb", "--confirm-disk-resize", "--yes", env=env))
    assert doc["provider"] == "digitalocean" and doc["to_plan"] == "do:s-1vcpu-2gb" and doc["provider_action_id"]
    # Back down is refused here, before the API's bare 400: a DigitalOcean disk never shrinks; the way is a new machine.
    e = fail(run_script("resize_instance.py", iid, "do:s-1vcpu-1gb", "--yes", env=env), 3, "downgrade_not_supported")
    assert (e["details"]["from_disk_gb"], e["details"]["to_disk_gb"]) == (50, 25) and "status" in e and e["status"] is None
    assert e["details"]["shrink_path"]["steps"][0]["command"] in e["hint"]


# -- API keys and credits --------------------------------------------------------------------

def test_api_key_lifecycle(sandbox, env, instance, tmp_path):
    label = f"e2e-{uuid.uuid4().hex[:6]}"
    doc = ok(run_script("create_api_key.py", "--label", label, "--save", env=env))
    assert doc["api_key"] is None and len(doc["key_last4"]) == 4 and doc["label"] == label
    saved = Path(doc["saved_to"])
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    key = saved.read_text().strip()
    assert key.startswith("x402c_") and key.endswith(doc["key_last4"])

    keys = ok(run_script("list_api_keys.py", env=env))
    row = next(k for k in keys["api_keys"] if k["id"] == doc["id"])
    assert row["key_last4"] == doc["key_last4"] and row["active"] is True and row["label"] == label
    assert key not in json.dumps(keys)

    # An API-key-only environment: no wallet at all, the key from COMPUTE_API_KEY.
    key_only = clean_env({"COMPUTE_BASE_URL": sandbox.base_url, "COMPUTE_API_KEY": key}, home=tmp_path / "keyonly")
    assert any(r["id"] == instance["id"] for r in ok(run_script("list_instances.py", env=key_only))["instances"])
    assert ok(run_script("instance_details.py", instance["id"], env=key_only))["instance"]["id"] == instance["id"]
    # The saved file is picked up by later scripts when COMPUTE_API_KEY is unset (no wallet either).
    saved_only = clean_env({"COMPUTE_BASE_URL": sandbox.base_url, "X402_COMPUTE_STATE_DIR": env["X402_COMPUTE_STATE_DIR"]}, home=tmp_path / "saved")
    saved_only["X402_COMPUTE_STATE_DIR"] = env["X402_COMPUTE_STATE_DIR"]
    assert any(r["id"] == instance["id"] for r in ok(run_script("list_instances.py", env=saved_only))["instances"])

    # Creating and revoking keys need a wallet signature: the key alone is a config error.
    fail(run_script("create_api_key.py", env=key_only), 2, "config_error")
    fail(run_script("revoke_api_key.py", doc["id"], "--yes", env=key_only), 2, "config_error")

    e = fail(run_script("revoke_api_key.py", doc["id"], env=env), 3, "confirmation_required")
    assert e["details"]["key_last4"] == doc["key_last4"]
    rev = ok(run_script("revoke_api_key.py", doc["id"], "--yes", env=env))
    assert rev["revoked"] is True and rev["key_last4"] == doc["key_last4"]
    # The saved key was this one (by its recorded id): removed, and the output says so and when it was revoked.
    assert rev["saved_key_removed"] is True and rev["saved_key_path"] == str(saved) and not saved.exists()
    assert not (saved.parent / "api_key.id").exists()
    record = sandbox.app.store.api_keys_of(doc_owner(sandbox, doc["id"]))
    assert rev["revoked_at"] and rev["revoked_at"].startswith(next(k for k in record if k["id"] == doc["id"])["revoked_at"][:19])
    # With the saved key gone, the same environment manages with the wallet again.
    assert ok(run_script("list_instances.py", env=env))["auth"] == "wallet:base"

    e = fail(run_script("list_instances.py", env=key_only), 1, "unauthorized")
    assert e["status"] == 401 and "Unset COMPUTE_API_KEY" in e["hint"]
    after = ok(run_script("list_api_keys.py", env={**env, "X402_COMPUTE_STATE_DIR": str(tmp_path / "nokey")}))
    assert next(k for k in after["api_keys"] if k["id"] == doc["id"])["active"] is False
    assert ok(run_script("list_api_keys.py", "--active", env={**env, "X402_COMPUTE_STATE_DIR": str(tmp_path / "nokey")}))["count"] == after["count"] - sum(1 for k in after["api_keys"] if not k["active"])


def doc_owner(sandbox, key_id: str) -> str:
    return sandbox.app.store._one("SELECT owner FROM api_keys WHERE id=?", (key_id,))[0]


def test_a_refused_saved_key_hints_to_remove_it(sandbox, env, tmp_path):
    """A saved key revoked elsewhere (another state folder, the dashboard): the refusal names the
    saved file and the way back to the wallet."""
    doc = ok(run_script("create_api_key.py", "--save", env=env))
    other = {**env, "X402_COMPUTE_STATE_DIR": str(tmp_path / "elsewhere")}
    rev = ok(run_script("revoke_api_key.py", doc["id"], "--yes", env=other))
    assert rev["saved_key_removed"] is False and rev["revoked_at"]  # nothing saved there
    e = fail(run_script("list_instances.py", env=env), 1, "unauthorized")
    assert doc["saved_to"] in e["hint"] and "rm " in e["hint"] and "wallet" in e["hint"]


def test_save_never_replaces_the_saved_key_unless_the_human_says_so(sandbox, env):
    """--save over a saved key would leave this machine without it (still valid on the server):
    refused before any key is created, unless the human adds --replace-saved-key."""
    state = Path(env["X402_COMPUTE_STATE_DIR"])
    first = ok(run_script("create_api_key.py", "--save", env=env))
    saved = (state / "api_key").read_text()
    owner = doc_owner(sandbox, first["id"])
    before = sandbox.app.store.api_keys_of(owner)
    e = fail(run_script("create_api_key.py", "--label", "again", "--save", env=env), 3, "saved_key_exists")
    assert e["details"] == {"saved_key_file": str(state / "api_key"), "saved_key_id": first["id"], "saved_key_last4": first["key_last4"]}
    assert "ask the human" in e["hint"] and "--replace-saved-key" in e["hint"]
    # Nothing minted on the server, nothing changed here.
    assert sandbox.app.store.api_keys_of(owner) == before
    assert (state / "api_key").read_text() == saved and (state / "api_key.id").read_text().strip() == first["id"]
    fail(run_script("create_api_key.py", "--replace-saved-key", env=env), 2, "usage_error")  # only with --save

    code, new, err = run_script("create_api_key.py", "--save", "--replace-saved-key", env=env)
    assert code == 0, new
    assert new["replaced_saved_key"] is True and new["replaced_saved_key_id"] == first["id"]
    assert new["replaced_saved_key_last4"] == first["key_last4"] and first["id"] in new["warning"]
    assert saved.strip() not in json.dumps(new) + err
    key = (state / "api_key").read_text().strip()
    assert key.endswith(new["key_last4"]) and key != saved.strip() and (state / "api_key.id").read_text().strip() == new["id"]
    assert stat.S_IMODE((state / "api_key").stat().st_mode) == 0o600


def test_api_key_show_and_unsaved_warning(env):
    shown = ok(run_script("create_api_key.py", "--show", env=env))
    assert shown["api_key"].startswith("x402c_") and shown["api_key"].endswith(shown["key_last4"])
    code, doc, err = run_script("create_api_key.py", env=env)
    assert code == 0 and doc["api_key"] is None and "warning" in doc and "warning" in err
    fail(run_script("revoke_api_key.py", str(uuid.uuid4()), "--yes", env=env), 1, "not_found")


def test_credits_balance(env, wallet):
    doc = ok(run_script("credits_balance.py", env=env))
    assert doc["wallet"].lower() == wallet["address"].lower()
    assert doc["balance_usd"] == "0.00" and doc["total_deposited_usd"] == "0.00"
    # It says what it does not count, and where all spending is.
    assert doc["scope"] == "prepaid_credits_only" and "prepaid credits only" in doc["note"] and "budget.py" in doc["note"]
    import subprocess
    import sys

    from tests.helpers import SCRIPTS

    help_text = " ".join(subprocess.run([sys.executable, str(SCRIPTS / "credits_balance.py"), "--help"], capture_output=True, text=True, timeout=60).stdout.split())
    assert "prepaid credits only" in help_text and "budget.py" in help_text


def test_no_credentials_is_a_config_error(sandbox, tmp_path):
    bare = clean_env({"COMPUTE_BASE_URL": sandbox.base_url}, home=tmp_path)
    fail(run_script("list_instances.py", env=bare), 2, "config_error")
    ok(run_script("browse_plans.py", "--limit", "1", env=bare))  # the catalog needs none


# -- read-only scripts stay light --------------------------------------------------------------

SIGNING_MODULES = ("eth_account", "eth_keys", "solders", "nacl", "x402", "coincurve")
_WRAPPER = """
import json, runpy, sys
script, args = sys.argv[1], sys.argv[2:]
sys.argv = [script, *args]
sys.path.insert(0, script.rsplit("/", 1)[0])
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit as e:
    code = e.code
sys.stderr.write("\\nLOADED=" + json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
sys.exit(code)
""" % (SIGNING_MODULES,)


def _loaded_after(script, *args, env):
    import subprocess
    import sys

    from tests.helpers import SCRIPTS

    proc = subprocess.run([sys.executable, "-c", _WRAPPER, str(SCRIPTS / script), *args], env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, json.loads(proc.stderr.rsplit("LOADED=", 1)[1])


def test_read_only_scripts_never_import_signing_libraries_with_an_api_key(sandbox, env, instance, tmp_path):
    key = ok(run_script("create_api_key.py", "--label", "e2e-light", "--show", env=env))["api_key"]
    # A wallet is configured too: with an API key it must still not be loaded.
    key_env = {**env, "COMPUTE_API_KEY": key}
    for script, args in [("list_instances.py", ()), ("instance_details.py", (instance["id"],)), ("list_api_keys.py", ()),
                         ("credits_balance.py", ()), ("browse_plans.py", ()), ("browse_regions.py", ()), ("browse_os.py", ())]:
        code, out, loaded = _loaded_after(script, *args, env=key_env)
        assert code == 0 and json.loads(out)["ok"], (script, out)
        assert loaded == [], (script, loaded)
    code, out, loaded = _loaded_after("list_instances.py", "--help", env=clean_env(home=tmp_path))
    assert code == 0 and "usage:" in out and loaded == []
    # Control: the probe does see a signing library when a script really signs.
    code, out, loaded = _loaded_after("list_api_keys.py", env=env)
    assert code == 0 and "eth_account" in loaded
