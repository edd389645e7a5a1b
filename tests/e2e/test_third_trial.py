"""What an agent tripped over on a third trial (the bundle installed from a release archive, ten
requests, the docs and --help only): a typo'd browse filter that read as "nothing there", a
DigitalOcean shrink the quote let through, a ledger hint naming the wrong pip. Each runs the real
scripts against the sandbox."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import SCRIPTS, clean_env, fail, ok, run_script


def test_a_browse_filter_nothing_has_is_a_usage_error_with_close_matches(sandbox, tmp_path):
    env = clean_env({"COMPUTE_BASE_URL": sandbox.base_url}, home=tmp_path)
    e = fail(run_script("browse_plans.py", "--region", "fra2", env=env), 2, "unknown_region")
    assert "fra" in e["details"]["did_you_mean"] and e["hint"].startswith("Did you mean fra")
    e = fail(run_script("browse_plans.py", "--region", "zz9", env=env), 2, "unknown_region")
    assert e["details"]["did_you_mean"] == [] and "browse_regions.py" in e["hint"]
    # A region that exists but that no plan of the asked type serves is still an answer, not an error.
    doc = ok(run_script("browse_plans.py", "--region", "fra1", "--type", "vcg", env=env))
    assert doc["plans"] == [] and doc["matched"] == 0
    e = fail(run_script("browse_plans.py", "--gpu-type", "h100", env=env), 2, "unknown_gpu_type")
    assert "NVIDIA_A100" in e["details"]["known_gpu_types"] and "NVIDIA_A100" in e["hint"]
    assert ok(run_script("browse_plans.py", "--gpu-type", "a100", "--region", "fra", env=env))["count"] > 0


def test_a_postgresql_ledger_without_psycopg_names_the_pip_of_the_scripts_python(sandbox, tmp_path):
    # psycopg made unimportable for this run only: a package of that name that fails to import.
    fake = tmp_path / "nopg" / "psycopg"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed here')\n")
    env = clean_env({"COMPUTE_BASE_URL": sandbox.base_url, "PYTHONPATH": str(fake.parent),
                     "COMPUTE_LEDGER_URL": "postgresql://agent@127.0.0.1:9/compute"}, home=tmp_path)
    e = fail(run_script("budget.py", env=env), 2, "ledger_unavailable")
    assert f"{sys.executable} -m pip install 'psycopg[binary]" in e["hint"] and "unset COMPUTE_LEDGER_URL" in e["hint"]


def test_asyncssh_dsa_deprecation_warnings_stay_off_stderr():
    # What cryptography 51+ says at asyncssh's import (the installed bundle resolves it; this venv may
    # not), raised as asyncssh raises it; another module's warning still shows.
    code = (
        "import sys, warnings; sys.path.insert(0, sys.argv[1]); import x402_compute.cli\n"
        "w = type('CryptographyDeprecationWarning', (UserWarning,), {})\n"
        "warnings.warn_explicit('DSA is deprecated and support will be removed in a future release.', w,"
        " 'misc.py', 32, module='asyncssh.crypto.misc')\n"
        "warnings.warn_explicit('DSA is deprecated (elsewhere)', w, 'other.py', 1, module='othermod')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(SCRIPTS)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "misc.py" not in proc.stderr and "other.py:1" in proc.stderr


def test_a_machine_without_a_key_says_that_pinning_ends_in_ssh_auth_failed(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = clean_env({k: v for k, v in sandbox.env.items() if not k.startswith("SOLANA_")}, home=tmp_path)
    env.update({"PRIVATE_KEY": w["evm_private_key"], "WALLET_ADDRESS": w["evm_address"]})
    doc = ok(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--yes", "--wait", "--poll-interval", "0.2",
                        env=env, timeout=120))
    iid, ssh = doc["order"]["id"], doc["ssh"]
    assert ssh["auth"] == "password" and ssh["host_key_pinned"] is False
    assert f"ssh_exec.py {iid} -- true" in ssh["note"] and "ssh_auth_failed, as expected" in ssh["note"]
    # As the note says: the run pins the host key, then cannot log in; the pin stays.
    fail(run_script("ssh_exec.py", iid, "--", "true", env=env), 1, "ssh_auth_failed")
    after = ok(run_script("instance_details.py", iid, env=env))["instance"]["ssh"]
    assert after["host_key_pinned"] is True and "ssh_auth_failed" not in (after.get("note") or "")
    ok(run_script("destroy_instance.py", iid, "--yes", env=env))
