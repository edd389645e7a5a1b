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


def _under_a_terminal(argv: list[str], env: dict, *, timeout: float = 60) -> tuple[int, str]:
    """``argv`` with a terminal as its controlling tty and stdin/stdout/stderr, as an agent's shell
    tool may give it: where a password prompt would wait forever. Returns (exit code, output);
    fails naming the hang if the process is still waiting after ``timeout``."""
    import os
    import pty
    import select
    import signal
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once (nothing else runs after a fork in a threaded process)
        os.execve(argv[0], argv, env)
    out, deadline = b"", time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError(f"still running after {timeout:g} s at a terminal (a prompt?): {out[-500:]!r}")
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child's side is closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), out.decode("utf-8", "replace")


def test_ssh_exec_on_a_password_only_machine_is_a_clear_error_never_a_prompt(sandbox, tools, tmp_path):
    import json
    import shlex
    from pathlib import Path

    from tests.helpers import ssh_keypair
    from x402_compute import cmdline

    w = tools.fresh_wallet(sandbox.facilitator, usd=5)
    env = clean_env({k: v for k, v in sandbox.env.items() if not k.startswith("SOLANA_")}, home=tmp_path)
    env.update({"PRIVATE_KEY": w["evm_private_key"], "WALLET_ADDRESS": w["evm_address"]})
    # No --ssh-key: the sandbox makes a Vultr machine that only its one-time root password opens.
    doc = ok(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--yes", "--wait", "--poll-interval", "0.2",
                        env=env, timeout=120))
    iid, ssh = doc["order"]["id"], doc["ssh"]
    assert ssh["auth"] == "password" and ssh["host_key_pinned"] is False
    assert f"ssh_exec.py {iid} -- true" in ssh["note"] and "ssh_password_only, as expected" in ssh["note"]
    marker = f"ran-{iid[:8]}"
    instance_home = Path(sandbox.state_dir) / "instances" / iid / "home"  # where a command that ran would leave its mark
    # As the note says: the run pins the host key, then stops, naming the machine and the ways in.
    for client in ("openssh", "python"):
        e = fail(run_script("ssh_exec.py", iid, "--client", client, "--", f"touch {marker}", env=env), 1, "ssh_password_only")
        assert iid in e["message"] and "one-time root password" in e["message"] and "Nothing was run" in e["message"]
        assert not (instance_home / marker).exists()
        assert cmdline.command("get_one_time_password.py", iid) in e["hint"] and "--ssh-key auto" in e["hint"]
        assert e["hint"].startswith("Tell the human") and e["details"]["access_method"] == "one_time_password_fallback"
        assert e["details"]["host_key"]["status"] in ("pinned_now", "matched") and e["retryable"] is False
    # A key the machine does not have, at a terminal: the login is refused (no password prompt, no hang).
    stranger, _ = ssh_keypair(tmp_path, "stranger")
    code, out = _under_a_terminal([sys.executable, str(SCRIPTS / "ssh_exec.py"), iid, "--client", "openssh", "--identity", str(stranger),
                                   "-o", "json", "--", f"touch {marker}"], env)
    e = json.loads(out)["error"]
    assert code == 1 and e["code"] == "ssh_password_only" and str(stranger) in e["message"] and "client_log" in e["details"]
    assert not (instance_home / marker).exists()
    after = ok(run_script("instance_details.py", iid, env=env))["instance"]["ssh"]
    assert after["host_key_pinned"] is True and "ssh_password_only" not in (after.get("note") or "")
    # The hint's command, as printed, reveals the password once (saved 0600): the way in it names works.
    got = json.loads(subprocess.run(shlex.split(cmdline.command("get_one_time_password.py", iid)), env=env, cwd=tmp_path,
                                    capture_output=True, text=True, timeout=60).stdout)
    assert got["ok"] is True and got["password"] is None and got["ssh"]["auth"] == "password"
    ok(run_script("destroy_instance.py", iid, "--yes", env=env))
