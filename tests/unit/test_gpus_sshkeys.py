"""The GPU model table and what a plan's VRAM means; the skill's own SSH key pair in OpenSSH's
format (checked with OpenSSH's ssh-keygen, an implementation nobody here wrote); the resize
credit estimate."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import stat
import subprocess
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from x402_compute import gpus, plans
from x402_compute.ssh import keys as sshkeys
from x402_compute.state import State

needs_ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="OpenSSH's ssh-keygen is not installed")


# -- GPUs ---------------------------------------------------------------------------------------

# Vultr's A100 line-up (plan id -> gpu_vram_gb) with the share of one 80 GB A100 each one is.
VULTR_A100 = [("vcg-a100-1c-6g-4vram", 4, Fraction(1, 20)), ("vcg-a100-2c-15g-8vram", 8, Fraction(1, 10)),
              ("vcg-a100-3c-30g-20vram", 20, Fraction(1, 4)), ("vcg-a100-6c-60g-40vram", 40, Fraction(1, 2))]


@pytest.mark.parametrize("plan_id, vram, share", VULTR_A100)
def test_a100_slices(plan_id, vram, share):
    d = gpus.describe("NVIDIA_A100", vram)
    assert (d["gpu_model"], d["gpu_count"], d["gpu_vram_gb"]) == ("A100", 1, vram)
    assert d["gpu_fraction"] == pytest.approx(float(share))
    assert d["gpu_summary"] == f"{share.numerator}/{share.denominator} of an A100 ({vram} GB VRAM)"


def test_whole_and_several_gpus():
    assert gpus.describe("NVIDIA_A100", 80) == {"gpu_model": "A100", "gpu_count": 1, "gpu_vram_gb": 80, "gpu_fraction": 1.0,
                                                "gpu_summary": "1 whole A100 (80 GB VRAM)"}
    d = gpus.describe("AMD_MI300X", 8 * 192)
    assert (d["gpu_count"], d["gpu_fraction"], d["gpu_summary"]) == (8, 1.0, "8 × MI300X (1536 GB VRAM)")
    assert gpus.describe("NVIDIA_L40S", 48)["gpu_summary"] == "1 whole L40S (48 GB VRAM)"


def test_model_names_longest_match_and_variants():
    assert gpus.model_of("NVIDIA_H100_NVL") == ("H100 NVL", 94)  # not an 80 GB H100
    assert gpus.model_of("NVIDIA_H100") == ("H100", 80)
    assert gpus.model_of("nvidia-rtx-6000-ada") == ("RTX 6000 Ada", 48)
    assert gpus.model_of("NVIDIA_A100_40GB") == ("A100", 40)  # a memory word names the variant
    assert gpus.describe("NVIDIA_A100_40GB", 20)["gpu_summary"] == "1/2 of an A100 (20 GB VRAM)"
    assert gpus.describe("NVIDIA_A16", 2)["gpu_fraction"] == 0.125  # 1/8 of one of the board's 16 GB GPUs


def test_unknown_or_inconsistent_figures_are_null_not_guessed():
    d = gpus.describe("NVIDIA_GH200", 96)
    assert (d["gpu_model"], d["gpu_count"], d["gpu_fraction"]) == ("GH200", None, None)
    assert "share of one GPU unknown" in d["gpu_summary"]
    d = gpus.describe("NVIDIA_A100", 120)  # 1.5 A100s: the figures disagree
    assert d["gpu_fraction"] is None and d["gpu_count"] is None and "not a whole number" in d["gpu_summary"]
    assert gpus.describe("NVIDIA_A100", None)["gpu_summary"] == "A100 (VRAM not published)"
    assert gpus.describe(None, None) == dict.fromkeys(("gpu_model", "gpu_count", "gpu_vram_gb", "gpu_fraction", "gpu_summary"))
    # A non-GPU plan gets nulls even if some field leaks in.
    assert plans.gpu_fields({"id": "vc2-1c-1gb", "type": "vps"})["gpu_model"] is None


def test_every_model_figure_has_a_source():
    assert len(gpus.MODELS) >= 10
    for m in gpus.MODELS.values():
        assert m.vram_gb > 0 and "https://" in m.source and str(m.vram_gb) in m.source, m


# -- resize estimate ---------------------------------------------------------------------------

def test_resize_estimate_follows_the_published_rule():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    cur, new = {"our_hourly": 0.0208}, {"our_hourly": 0.0417}
    est = plans.resize_estimate(cur, new, "2026-01-02T00:00:00Z", now)  # 24 h left
    # 24 × 0.0208 = 0.4992 -> 0.50 carried; 0.50 / 0.0417 = 11.990407... h
    assert est == {"remaining_hours_before": 24.0, "remaining_credit_usd": "0.50", "remaining_hours_after": 11.99,
                   "new_expires_at": "2026-01-01T11:59:25Z"}
    assert plans.resize_estimate(cur, None, "2026-01-02T00:00:00Z", now)["new_expires_at"] is None
    assert plans.resize_estimate(cur, new, None, now)["remaining_credit_usd"] is None


# -- the skill's SSH key --------------------------------------------------------------------------

def test_create_once_then_reuse(tmp_path):
    state = State(tmp_path / "state")
    first = sshkeys.ensure_auto_key(state)
    assert first.created and first.public_key.startswith("ssh-ed25519 ") and first.fingerprint.startswith("SHA256:")
    raw = first.private_key_file.read_bytes()
    assert stat.S_IMODE(first.private_key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(first.private_key_file.parent.stat().st_mode) == 0o700
    again = sshkeys.ensure_auto_key(state)
    assert not again.created and again.public_key == first.public_key and again.private_key_file.read_bytes() == raw
    assert (first.private_key_file.parent / "x402-compute_ed25519.pub").read_text().strip() == first.public_key
    assert raw.decode() not in json.dumps(first.block())  # the block names the file, never its content


def _make_key(root: str, q) -> None:
    k = sshkeys.ensure_auto_key(State(Path(root)))
    q.put((k.fingerprint, k.created))


def test_processes_racing_to_create_end_with_one_key(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_make_key, args=(str(tmp_path / "state"), q)) for _ in range(6)]
    for p in procs:
        p.start()
    results = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert len({fp for fp, _ in results}) == 1
    assert sum(created for _, created in results) <= 1  # at most one process created it; the rest read it
    assert sorted(p.name for p in (tmp_path / "state" / "ssh").iterdir()) == ["x402-compute_ed25519", "x402-compute_ed25519.pub"]


@needs_ssh_keygen
def test_openssh_reads_our_key_and_we_read_openssh_keys(tmp_path):
    key = sshkeys.ensure_auto_key(State(tmp_path / "state"))
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key.private_key_file)], capture_output=True, text=True, check=True).stdout.split()
    assert derived[:2] == key.public_key.split()[:2]
    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(key.private_key_file)], capture_output=True, text=True, check=True).stdout
    assert key.fingerprint in listed and "ED25519" in listed

    theirs = tmp_path / "theirs"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "c", "-f", str(theirs)], check=True)
    _seed, pk = sshkeys.decode_private(theirs.read_text())
    assert sshkeys.public_line(pk, "c") == Path(f"{theirs}.pub").read_text().strip()

    locked = tmp_path / "locked"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(locked)], check=True)
    with pytest.raises(ValueError, match="encrypted"):
        sshkeys.decode_private(locked.read_text())


def test_a_damaged_key_file_is_a_clear_error(tmp_path):
    state = State(tmp_path / "state")
    key = sshkeys.ensure_auto_key(state)
    text = key.private_key_file.read_text()
    key.private_key_file.write_text(text.replace(text.splitlines()[3], "A" * 70))
    from x402_compute.errors import ComputeError

    with pytest.raises(ComputeError) as e:
        sshkeys.ensure_auto_key(state)
    assert e.value.code == "ssh_key_unusable" and "Move" in e.value.hint


def test_identity_and_pin_go_into_command_and_argv(tmp_path):
    import shlex

    state = State(tmp_path / "state")
    key = sshkeys.ensure_auto_key(state)
    path = str(key.private_key_file)
    plain = {"user": "root", "host": "192.0.2.1", "port": 2222, "argv": ["ssh", "-p", "2222", "root@192.0.2.1"],
             "command": "ssh -p 2222 root@192.0.2.1", "auth": "ssh-key"}
    known = tmp_path / "a dir" / "pin%file"
    out = sshkeys.with_login(plain, known_hosts=known, alias="x402-compute-x", pinned=True, private_key_file=path)
    assert out["argv"] == ["ssh", "-o", "StrictHostKeyChecking=yes", "-o", f'UserKnownHostsFile="{tmp_path}/a dir/pin%%file"',
                           "-o", "GlobalKnownHostsFile=/dev/null", "-o", "HostKeyAlias=x402-compute-x",
                           "-i", path, "-o", "IdentitiesOnly=yes", "-p", "2222", "root@192.0.2.1"]
    assert shlex.split(out["command"]) == out["argv"] and out["identity_file"] == path and out["host_key_pinned"] is True
    assert "identity_file" not in plain and "note" not in out  # a copy, not the caller's block
    bare = sshkeys.with_login({**plain, "port": 22}, known_hosts=known, alias="a", pinned=False, private_key_file=None)
    assert "-i" not in bare["argv"] and "-p" not in bare["argv"] and "ssh_exec.py" in bare["note"]
    assert sshkeys.with_login(None, known_hosts=known, alias="a", pinned=True, private_key_file=path) is None

    iid = "3f1c2a9e-0000-4000-8000-000000000001"
    assert sshkeys.identity_for(state, iid) is None
    sshkeys.remember(state, iid, key)
    assert sshkeys.identity_for(state, iid) == path
    assert stat.S_IMODE(state.path(sshkeys.RECORDS).stat().st_mode) == 0o600
    state.path(sshkeys.RECORDS).write_text("{not json")
    assert sshkeys.identity_for(state, iid) is None  # a damaged record costs the hint, not the command


def test_price_sort_and_spec_filters_on_incomplete_records():
    catalog = [
        {"id": "a", "our_hourly": "0.02", "ram": 2048, "vcpu_count": 1, "disk": 50},
        {"id": "b", "our_hourly": "0.01", "ram": 4096, "vcpu_count": 2},  # no disk figure
        {"id": "c", "ram": 8192, "vcpu_count": 4, "disk": 100},  # no price
    ]
    assert [p["id"] for p in plans.select(catalog)] == ["b", "a", "c"]
    assert [p["id"] for p in plans.select(catalog, sort="ram")] == ["a", "b", "c"]
    assert [p["id"] for p in plans.select(catalog, min_disk_gb=Decimal(10))] == ["a", "c"]  # unknown disk never passes
    assert [p["id"] for p in plans.select(catalog, min_ram_gb=Decimal("3.5"))] == ["b", "c"]
