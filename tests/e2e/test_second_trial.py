"""Issue 22, what an agent tripped over on a second trial: settings that behave, revoking that
cleans up, a shrink that leads somewhere, did-you-mean, cleanup, the spend report, keepalive's
total and a login that works as printed. Each runs the real scripts against the sandbox."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import SCRIPTS, SSH, clean_env, fail, ok, run_script


# -- 2. settings: the environment wins over the env file ------------------------------------------

def test_the_environment_wins_over_the_env_file_and_doctor_shows_each_source(sandbox, tmp_path):
    env_file = tmp_path / "compute.env"
    env_file.write_text(f"COMPUTE_BASE_URL={sandbox.base_url}\nX402_COMPUTE_STATE_DIR={tmp_path / 'file-state'}\n"
                        "COMPUTE_BUDGET_USD=7\n")
    env_file.chmod(0o600)
    chosen = tmp_path / "chosen-state"
    env = clean_env({"X402_COMPUTE_STATE_DIR": str(chosen)}, home=tmp_path)
    doc = ok(run_script("doctor.py", "--offline", "--env-file", str(env_file), env=env))
    check = next(c for c in doc["checks"] if c["name"] == "settings")
    shown = check["data"]["settings"]
    assert shown["X402_COMPUTE_STATE_DIR"] == {"value": str(chosen), "source": "environment"}
    assert shown["COMPUTE_BASE_URL"] == {"value": sandbox.base_url, "source": "file"}
    assert shown["COMPUTE_BUDGET_USD"] == {"value": "7", "source": "file"}
    assert shown["COMPUTE_MAX_SPEND_USD"] == {"value": "25", "source": "default"}
    assert check["data"]["shadowed_by_environment"] == ["X402_COMPUTE_STATE_DIR"] and check["status"] == "warn"
    state = next(c for c in doc["checks"] if c["name"] == "state_dir")
    assert state["data"]["path"] == str(chosen)
    # A flag wins over both; a secret is named with its source, never its value.
    env["PRIVATE_KEY"] = "0x" + "22" * 32
    doc = ok(run_script("doctor.py", "--offline", "--env-file", str(env_file), "--base-url", "http://127.0.0.1:9", env=env))
    shown = next(c for c in doc["checks"] if c["name"] == "settings")["data"]["settings"]
    assert shown["COMPUTE_BASE_URL"] == {"value": "http://127.0.0.1:9", "source": "--base-url"}
    assert shown["PRIVATE_KEY"] == {"source": "environment"} and "22" * 32 not in str(doc)


# -- 7. did you mean ------------------------------------------------------------------------------

def test_a_typo_in_a_plan_region_or_os_id_gets_close_matches(sandbox, paying_env):
    e = fail(run_script("provision.py", "vc2-1c-2g", "lax", "--days", "1", "--quote", env=paying_env), 2, "unknown_plan")
    assert e["details"]["did_you_mean"][0] == "vc2-1c-2gb" and len(e["details"]["did_you_mean"]) <= 3
    assert e["hint"].startswith("Did you mean vc2-1c-2gb")
    e = fail(run_script("provision.py", "vc2-1c-1gb", "lxa", "--days", "1", "--quote", env=paying_env), 2, "region_not_offered")
    assert e["details"]["did_you_mean"] == ["lax"] and "Did you mean lax?" in e["hint"]
    e = fail(run_script("provision.py", "vc2-1c-1gb", "lax", "--os-id", "2248", "--days", "1", "--quote", env=paying_env), 2, "unknown_os")
    assert 2284 in e["details"]["did_you_mean"] and "2284 (" in e["hint"]
    e = fail(run_script("browse_regions.py", "--plan", "vc2-1c-2g", env=paying_env), 2, "unknown_plan")
    assert "vc2-1c-2gb" in e["details"]["did_you_mean"]
    # Nothing close: an empty list and the plain hint, never a wild guess.
    e = fail(run_script("provision.py", "zz9-nothing-like-it", "lax", "--days", "1", "--quote", env=paying_env), 2, "unknown_plan")
    assert e["details"]["did_you_mean"] == [] and e["hint"] == "See browse_plans.py for plan ids."


# -- 1. a login that works as printed -------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists(SSH), reason=f"the system ssh client ({SSH}) is not installed")
def test_the_printed_ssh_command_logs_in_as_printed(sandbox, paying_env, tmp_path):
    doc = ok(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--ssh-key", "auto", "--yes", "--wait-ssh",
                        "--poll-interval", "0.2", env=paying_env, timeout=120))
    ssh = doc["ssh"]
    iid = doc["order"]["id"]
    assert ssh["host_key_pinned"] is True and ssh["known_hosts_file"].endswith(iid) and ssh["host_key_alias"] == f"x402-compute-{iid}"
    assert ssh["argv"] == shlex.split(ssh["command"])
    for opt in ("StrictHostKeyChecking=yes", f"UserKnownHostsFile={ssh['known_hosts_file']}", f"HostKeyAlias=x402-compute-{iid}", "IdentitiesOnly=yes"):
        assert opt in ssh["argv"], opt
    assert ssh["argv"][ssh["argv"].index("-i") + 1] == ssh["identity_file"]
    # Exactly as printed, by the system ssh, with an empty HOME (no ~/.ssh, no config) and no agent:
    # a shell on the machine, fed a line on stdin.
    empty = tmp_path / "empty-home"
    empty.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(empty)}
    argv = shlex.split(ssh["command"])
    argv[0] = shutil.which(argv[0], path=env["PATH"])
    r = subprocess.run(argv, input="echo logged-in-$((6*7))\nexit\n", env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "logged-in-42" in r.stdout, (r.returncode, r.stdout, r.stderr)
    # The same block from list_instances.py and instance_details.py.
    listed = next(i for i in ok(run_script("list_instances.py", env=paying_env))["instances"] if i["id"] == iid)
    assert listed["ssh"]["command"] == ssh["command"]
    assert ok(run_script("instance_details.py", iid, env=paying_env))["instance"]["ssh"]["command"] == ssh["command"]
    # A pin that does not match the machine's key: the printed command refuses, it never asks to trust.
    pin = Path(ssh["known_hosts_file"])
    good = pin.read_text()
    pin.write_text(f"x402-compute-{iid} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBCY1U9ztiq5SD37s0Xw6r4ZTi8SbmH2hw1nYEcf0wwB\n")
    r = subprocess.run(argv, input="echo should-not-run\n", env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 255 and "should-not-run" not in r.stdout and "verification failed" in r.stderr.lower()
    pin.write_text(good)
    ok(run_script("destroy_instance.py", iid, "--yes", env=paying_env))


def test_before_first_contact_the_block_says_how_to_pin(sandbox, paying_env):
    doc = ok(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--ssh-key", "auto", "--yes", "--wait",
                        "--poll-interval", "0.2", env=paying_env, timeout=120))
    ssh = doc["ssh"]
    assert ssh["host_key_pinned"] is False and f"ssh_exec.py {doc['order']['id']} -- true" in ssh["note"]
    assert "StrictHostKeyChecking=yes" in ssh["argv"]  # never trust on first use by the user's own client
    ok(run_script("ssh_exec.py", doc["order"]["id"], "--", "true", env=paying_env, timeout=120))
    again = ok(run_script("instance_details.py", doc["order"]["id"], env=paying_env))["instance"]["ssh"]
    assert again["host_key_pinned"] is True and "note" not in again


# -- 9. cleanup: destroy --all / --label, and the local leftovers ---------------------------------

def test_destroy_by_label_then_all_with_one_summary_and_local_cleanup(sandbox, paying_env):
    state = Path(paying_env["X402_COMPUTE_STATE_DIR"])

    def rent(label, *extra):
        return ok(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--label", label, "--yes", *extra,
                             env=paying_env, timeout=120))["order"]["id"]

    a = rent("ci-1", "--ssh-key", "auto", "--wait-ssh", "--poll-interval", "0.2")  # pinned, with the skill's key
    b = rent("ci-2")
    c = rent("keep-me")
    pin = state / "known_hosts" / a
    assert pin.is_file() and a in (state / "instance-ssh-keys.json").read_text()
    # A management key and the second keys kept beside it (never overwritten) go with their machine; c's stay.
    from x402_compute.errors import ComputeError
    from x402_compute.state import State

    keys = state / "instance-keys"
    for iid in (a, c):
        State(state).save_instance_key(iid, f"x402c_{iid[:8]}_1")
        for n in (2, 3):
            with pytest.raises(ComputeError):
                State(state).save_instance_key(iid, f"x402c_{iid[:8]}_{n}")
    mine = [keys / f"{a}.key", keys / f"{a}.key.2", keys / f"{a}.key.3"]
    assert all(f.is_file() for f in mine)
    # Not at a terminal and no --yes: nothing is destroyed; the one summary is in the error's details.
    e = fail(run_script("destroy_instance.py", "--label", "ci-*", env=paying_env), 3, "confirmation_required")
    assert {i["id"] for i in e["details"]["instances"]} == {a, b} and e["details"]["selector"] == {"label": "ci-*"}
    assert 47 < e["details"]["prepaid_time_lost"]["hours"] <= 48 and e["details"]["prepaid_time_lost"]["usd"]
    assert "Show the human" in e["hint"] and "once they agree" in e["hint"]  # --yes is the human's answer, not the agent's
    assert all(sandbox.app.store.get_order(i)["status"] != "destroyed" for i in (a, b, c))

    doc = ok(run_script("destroy_instance.py", "--label", "ci-*", "--yes", "--forget-local", env=paying_env))
    assert doc["count"] == 2 and doc["destroyed"] is True and {r["id"] for r in doc["results"]} == {a, b}
    assert all(r["instance"]["state"] == "destroyed" for r in doc["results"])
    assert [sandbox.app.store.get_order(i)["status"] for i in (a, b, c)][:2] == ["destroyed", "destroyed"]
    assert not pin.exists() and a not in (state / "instance-ssh-keys.json").read_text()
    assert str(pin) in next(r for r in doc["results"] if r["id"] == a)["forgotten"]
    assert {str(f) for f in mine} <= set(next(r for r in doc["results"] if r["id"] == a)["forgotten"])
    assert not any(f.exists() for f in mine) and sorted(f.name for f in keys.iterdir()) == [f"{c}.key", f"{c}.key.2", f"{c}.key.3"]
    assert (state / "ssh").is_dir() and any((state / "ssh").iterdir())  # the skill's own key stays
    assert sandbox.app.store.get_order(c)["status"] != "destroyed"

    # --all: every live machine of this wallet (only c is left); then the leftovers of destroyed ones.
    doc = ok(run_script("destroy_instance.py", "--all", "--yes", env=paying_env))
    assert doc["count"] == 1 and doc["results"][0]["id"] == c and doc["selector"] == {"all": True}
    assert not [i for i in ok(run_script("list_instances.py", env=paying_env))["instances"]]
    owners = state / "instance-owners.json"
    assert c in owners.read_text()
    from x402_compute.payments.journal import ledger_of

    ledger_of(state).set_keepalive(c, {"target": "2030-01-01T00:00:00Z", "stopped": None})  # as a keepalive run leaves it
    doc = ok(run_script("destroy_instance.py", "--forget-destroyed", env=paying_env))
    assert c in {f["id"] for f in doc["forgotten"]} and c not in owners.read_text()
    assert ledger_of(state).keepalive(c) == {} and f"keepalive record ({c})" in next(f for f in doc["forgotten"] if f["id"] == c)["files"]
    assert {str(keys / f"{c}.key.3")} <= set(next(f for f in doc["forgotten"] if f["id"] == c)["files"]) and not list(keys.iterdir())
    assert ok(run_script("destroy_instance.py", "--all", "--yes", env=paying_env))["count"] == 0  # nothing left to destroy
    fail(run_script("destroy_instance.py", c, "--all", "--yes", env=paying_env), 2, "usage_error")


# -- 10. the spend report -------------------------------------------------------------------------

def test_the_spend_report_by_instance_network_day_and_csv_equals_the_journal(sandbox, paying_env):
    import csv
    import io
    from decimal import Decimal

    from tests.helpers import journal_entries

    a = ok(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--yes", env=paying_env, timeout=120))["order"]["id"]
    b = ok(run_script("provision.py", "vc2-1c-2gb", "lax", "--days", "1", "--yes", env=paying_env, timeout=120))["order"]["id"]
    ok(run_script("extend_instance.py", a, "--hours", "24", "--yes", env=paying_env, timeout=120))
    journal = [e for e in journal_entries(Path(paying_env["HOME"])) if e["status"] == "settled"]
    assert len(journal) == 3 and all(e.get("tx_hash") for e in journal)
    micros = {e["id"]: e["budget_micros"] for e in journal}

    doc = ok(run_script("budget.py", "--by", "instance", env=paying_env))
    assert doc["by"] == "instance" and doc["state_dir"] == paying_env["X402_COMPUTE_STATE_DIR"]
    per = {t["key"]: t for t in doc["totals"]}
    want = {a: sum(m for e in journal for m in [micros[e["id"]]] if (e.get("order_id") or e["context"].get("instance_id")) == a)}
    assert Decimal(per[a]["usd"]) == Decimal(want[a]) / 10**6 and per[a]["payments"] == 2 and per[b]["payments"] == 1
    assert sum(Decimal(t["usd"]) for t in doc["totals"]) == Decimal(sum(micros.values())) / 10**6 == Decimal(doc["budget"]["spent_usd"])
    # Every payment row carries its transaction hash (the journal's); no public explorer has the sandbox's chains.
    rows = {r["journal_id"]: r for r in doc["payments"]}
    assert all(rows[e["id"]]["tx_hash"] == e["tx_hash"] and rows[e["id"]]["explorer_url"] is None for e in journal)

    net = ok(run_script("budget.py", "--by", "network", env=paying_env))["totals"]
    assert net == [{"key": "base", "usd": doc["budget"]["spent_usd"], "payments": 3}]
    day = ok(run_script("budget.py", "--by", "day", env=paying_env))["totals"]
    assert sum(d["payments"] for d in day) == 3

    # CSV: in the JSON (for an agent), and alone on stdout with -o text (for a file).
    doc = ok(run_script("budget.py", "--csv", env=paying_env))
    table = list(csv.DictReader(io.StringIO(doc["csv"])))
    assert {r["journal_id"]: r["tx_hash"] for r in table} == {e["id"]: e["tx_hash"] for e in journal}
    assert sum(Decimal(r["amount_usd"]) for r in table if r["counts"] == "true") == Decimal(sum(micros.values())) / 10**6
    proc = subprocess.run([sys.executable, str(SCRIPTS / "budget.py"), "--csv", "-o", "text"], env=paying_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.splitlines()[0].startswith("time,script,instance")
    assert len(proc.stdout.splitlines()) == 4
    fail(run_script("budget.py", "--by", "plan", env=paying_env), 2, "usage_error")


def test_explorer_links_only_for_real_hashes_on_a_public_api():
    from x402_compute.commands.budget import _csv_cell, _explorer
    from x402_compute.networks import explorer_url

    h = "0x" + "ab" * 32
    assert explorer_url("base", h) == f"https://basescan.org/tx/{h}"
    assert explorer_url("base", "0x12") is None and explorer_url("base", "javascript:alert(1)") is None
    assert explorer_url("robinhood", h) is None  # no public explorer known
    sig = "5" * 87
    assert explorer_url("solana", sig) == f"https://solscan.io/tx/{sig}"
    assert _explorer({"base_url": "https://compute.x402layer.cc", "tx_hash": h}, "base").startswith("https://basescan.org/")
    assert _explorer({"base_url": "http://127.0.0.1:8402", "tx_hash": h}, "base") is None
    assert _csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and _csv_cell(True) == "true" and _csv_cell(None) == ""


# -- 5. revoking: a key saved without its id is matched by its last four ----------------------------

def test_revoking_matches_an_older_saved_key_by_its_last_four_and_never_another_id(sandbox, paying_env):
    state = Path(paying_env["X402_COMPUTE_STATE_DIR"])
    first = ok(run_script("create_api_key.py", "--save", env=paying_env))
    (state / "api_key.id").unlink()  # saved by a version that kept no id
    rev = ok(run_script("revoke_api_key.py", first["id"], "--yes", env=paying_env))
    assert rev["saved_key_removed"] is True and not (state / "api_key").exists()
    # A saved key whose recorded id is another key's stays, whatever its last four.
    kept = ok(run_script("create_api_key.py", "--save", env=paying_env))
    other = ok(run_script("create_api_key.py", env=paying_env))
    rev = ok(run_script("revoke_api_key.py", other["id"], "--yes", env=paying_env))
    assert rev["saved_key_removed"] is False and (state / "api_key").read_text().strip().endswith(kept["key_last4"])
