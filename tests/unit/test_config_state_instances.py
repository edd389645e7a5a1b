"""Settings from the environment, the state directory's file modes, and the
instance normalisation every script shows."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest
from x402_compute import errors
from x402_compute.api.auth import ApiKeyAuth, SignatureAuth, management_auth
from x402_compute.config import DEFAULT_BASE_URL, load_settings
from x402_compute.instances import (
    detail,
    hours_left,
    normalized_state,
    public_ip,
    ssh_block,
    summary,
    unwrap_order,
)
from x402_compute.state import State, write_private
from x402_compute.wallets import evm_signer, solana_signer

EVM_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
EVM_ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SOL_KEYPAIR = "2Ana1pUpv2ZbMVkwF5FXapYeBEjdxDatLn7nvJkhgTSdZd8hbDHTd21as7EAsg7ypityqfsw2pMQKJcVDVcAEsd"
SOL_ADDR = "9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def settings(tmp_path, **env):
    return load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path / "state"), **env})


# -- config ---------------------------------------------------------------------------

def test_defaults_and_env_names(tmp_path):
    s = settings(tmp_path)
    assert s.base_url == DEFAULT_BASE_URL and s.api_key is None and s.auth_chain == "base"
    s = settings(tmp_path, COMPUTE_BASE_URL="http://127.0.0.1:9/", COMPUTE_API_KEY=" x402c_k ", COMPUTE_MAX_SPEND_USD="7.5", COMPUTE_TIMEOUT="3")
    assert s.base_url == "http://127.0.0.1:9" and s.api_key == "x402c_k" and s.api_key_source == "COMPUTE_API_KEY"
    assert str(s.max_spend_usd) == "7.5" and s.max_spend_source == "COMPUTE_MAX_SPEND_USD" and s.timeout == 3.0
    assert "x402c_k" not in repr(s)


def test_base_url_scheme_checked(tmp_path):
    with pytest.raises(errors.ConfigError):
        settings(tmp_path, COMPUTE_BASE_URL="ftp://x")


def test_env_file_read_only_when_named(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("COMPUTE_API_KEY=x402c_from_implicit_file\n")
    monkeypatch.chdir(tmp_path)
    assert settings(tmp_path).api_key is None  # an implicit ./.env is never read
    named = tmp_path / "named.env"
    named.write_text("COMPUTE_API_KEY=x402c_from_named\nCOMPUTE_BASE_URL=http://localhost:1\n")
    s = load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path / "s"), "COMPUTE_API_KEY": "x402c_env"}, env_file=str(named))
    # The process environment wins over the named file (python-dotenv's default); the file fills the rest.
    assert s.api_key == "x402c_env" and s.base_url == "http://localhost:1"
    assert s.setting_source("COMPUTE_API_KEY") == "environment" and s.setting_source("COMPUTE_BASE_URL") == "file"
    assert s.setting_source("COMPUTE_BUDGET_USD") == "default"
    s = settings(tmp_path, COMPUTE_ENV_FILE=str(named))
    assert s.api_key == "x402c_from_named"
    # Even an empty variable in the environment is the caller's choice: the file does not replace it.
    s = load_settings(environ={"X402_COMPUTE_STATE_DIR": str(tmp_path / "s"), "COMPUTE_API_KEY": ""}, env_file=str(named))
    assert s.api_key is None
    with pytest.raises(errors.ConfigError):
        load_settings(environ={}, env_file=str(tmp_path / "missing.env"))


def test_secret_from_file_variables(tmp_path):
    f = tmp_path / "key.txt"
    f.write_text("x402c_filekey\n")
    s = settings(tmp_path, COMPUTE_API_KEY_FILE=str(f))
    assert s.api_key == "x402c_filekey" and s.api_key_source == "COMPUTE_API_KEY_FILE"
    pk = tmp_path / "pk"
    pk.write_text(EVM_KEY + "\n")
    assert settings(tmp_path, PRIVATE_KEY_FILE=str(pk)).private_key == EVM_KEY
    with pytest.raises(errors.ConfigError, match="PRIVATE_KEY_FILE"):
        settings(tmp_path, PRIVATE_KEY_FILE=str(tmp_path / "nope"))
    # The variable itself beats its _FILE form.
    assert settings(tmp_path, COMPUTE_API_KEY="x402c_direct", COMPUTE_API_KEY_FILE=str(f)).api_key == "x402c_direct"


def test_saved_api_key_used_only_when_env_unset(tmp_path):
    State(tmp_path / "state").save_api_key("x402c_saved")
    s = settings(tmp_path)
    assert s.api_key == "x402c_saved" and s.api_key_source.endswith("api_key")
    assert settings(tmp_path, COMPUTE_API_KEY="x402c_env").api_key == "x402c_env"


def test_private_key_wallet_address_mismatch_refused(tmp_path):
    assert evm_signer(settings(tmp_path, PRIVATE_KEY=EVM_KEY, WALLET_ADDRESS=EVM_ADDR.lower())).address == EVM_ADDR
    with pytest.raises(errors.ConfigError, match="WALLET_ADDRESS"):
        evm_signer(settings(tmp_path, PRIVATE_KEY=EVM_KEY, WALLET_ADDRESS="0x" + "1" * 40))


def test_solana_secret_key_base58_and_json_array(tmp_path):
    import base58

    arr = json.dumps(list(base58.b58decode(SOL_KEYPAIR)))
    for secret in (SOL_KEYPAIR, arr):
        s = settings(tmp_path, SOLANA_SECRET_KEY=secret)
        assert s.auth_chain == "solana"
        assert solana_signer(s).address == SOL_ADDR
    with pytest.raises(errors.ConfigError, match="64-byte"):
        solana_signer(settings(tmp_path, SOLANA_SECRET_KEY=json.dumps([1] * 32)))
    with pytest.raises(errors.ConfigError):
        solana_signer(settings(tmp_path, SOLANA_SECRET_KEY="0OIl-not-base58"))
    with pytest.raises(errors.ConfigError, match="Solana address"):
        solana_signer(settings(tmp_path, SOLANA_SECRET_KEY=SOL_KEYPAIR, SOLANA_WALLET_ADDRESS="11111111111111111111111111111111"))


@pytest.mark.parametrize(
    "env,chain",
    [
        ({"COMPUTE_AUTH_CHAIN": "SOLANA", "PRIVATE_KEY": EVM_KEY}, "solana"),
        ({"COMPUTE_AUTH_CHAIN": "robinhood"}, "base"),
        ({"COMPUTE_AUTH_CHAIN": "megaeth"}, "base"),
        ({"WALLET_ADDRESS": SOL_ADDR}, "solana"),
        ({"WALLET_ADDRESS": EVM_ADDR, "SOLANA_SECRET_KEY": SOL_KEYPAIR}, "base"),
        ({"PRIVATE_KEY": EVM_KEY, "SOLANA_SECRET_KEY": SOL_KEYPAIR}, "base"),
        ({"SOLANA_WALLET_ADDRESS": SOL_ADDR}, "solana"),
        ({}, "base"),
    ],
)
def test_auth_chain_resolution(tmp_path, env, chain):
    assert settings(tmp_path, **env).auth_chain == chain


def test_unknown_auth_chain_is_refused_not_ignored(tmp_path):
    with pytest.raises(errors.ConfigError, match="COMPUTE_AUTH_CHAIN"):
        settings(tmp_path, COMPUTE_AUTH_CHAIN="ethereum")
    with pytest.raises(errors.ConfigError, match="COMPUTE_AUTH_MODE"):
        settings(tmp_path, COMPUTE_AUTH_MODE="magic")


def test_management_auth_choice(tmp_path):
    s = settings(tmp_path, COMPUTE_API_KEY="x402c_abcd", PRIVATE_KEY=EVM_KEY)
    assert isinstance(management_auth(s), ApiKeyAuth)
    assert isinstance(management_auth(s, require_signature=True), SignatureAuth)
    with pytest.raises(errors.ConfigError):
        management_auth(settings(tmp_path, COMPUTE_AUTH_MODE="api-key"))
    with pytest.raises(errors.ConfigError, match="No EVM wallet"):
        management_auth(settings(tmp_path))


# -- state ---------------------------------------------------------------------------

def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


IID = "3f1c2a9e-0000-4000-8000-000000000001"


def test_state_files_0600_in_0700_dirs(tmp_path):
    old = os.umask(0o022)  # a permissive umask must not matter
    try:
        st = State(tmp_path / "state")
        paths = [st.save_api_key("x402c_k"), st.save_instance_key(IID, "x402c_i"), st.save_credentials(IID, "username=root\n")]
    finally:
        os.umask(old)
    for p in paths:
        assert _mode(p) == 0o600, p
        assert _mode(p.parent) == 0o700, p.parent
    assert st.saved_api_key() == "x402c_k" and st.instance_key(IID) == "x402c_i"
    assert not [x for x in (tmp_path / "state").rglob(".*.tmp")]  # no temp files left behind


def test_write_private_never_world_readable_even_briefly(tmp_path, monkeypatch):
    """The file is chmodded before any byte is written (no chmod-after race)."""
    seen = []
    real_fdopen = os.fdopen

    def spy(fd, *a, **kw):
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fdopen(fd, *a, **kw)

    monkeypatch.setattr(os, "fdopen", spy)
    write_private(tmp_path / "d" / "secret", "pw")
    assert seen == [0o600]


def test_an_existing_folder_is_never_chmodded(tmp_path):
    # The client only sets the mode of folders it creates (0700); one that exists may be shared
    # (doctor.py reports a loose state folder instead).
    d = tmp_path / "state"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    p = State(d).save_api_key("k")
    assert _mode(d) == 0o755 and _mode(p) == 0o600 and _mode(p.parent) == 0o755


def test_exclusive_write_refuses_overwrite(tmp_path):
    p = write_private(tmp_path / "x", "1")
    with pytest.raises(errors.ComputeError):
        write_private(p, "2", exclusive=True)
    assert p.read_text() == "1"


def test_a_saved_api_key_is_replaced_only_when_asked(tmp_path):
    """create_api_key's check runs before the key is made; the save itself is exclusive too, so a run
    that lost a race with another cannot overwrite the key that one saved."""
    st = State(tmp_path / "state")
    st.save_api_key("x402c_first", "id-1")
    with pytest.raises(errors.ComputeError) as e:
        st.save_api_key("x402c_second", "id-2")
    assert e.value.code == "file_exists" and st.saved_api_key() == "x402c_first" and st.saved_api_key_id() == "id-1"
    st.save_api_key("x402c_second", None, replace=True)
    assert st.saved_api_key() == "x402c_second" and st.saved_api_key_id() is None


def test_a_second_ai_key_for_the_same_machine_is_kept_beside_the_first(tmp_path):
    """aimachines.save_key keeps the management keys' rule: the first key stays where ai_chat reads
    it, a different one goes to the first free <id>.key.N (0600), the same one again adds nothing."""
    from x402_compute import aimachines

    st = State(tmp_path / "state")
    first, note = aimachines.save_key(st, IID, "sk-first-key")
    assert note is None and aimachines.save_key(st, IID, "sk-first-key") == (first, None)
    for n, key in ((2, "sk-second-key"), (2, "sk-second-key"), (3, "sk-third-key")):
        path, note = aimachines.save_key(st, IID, key)
        extra = first.with_name(f"{IID}.key.{n}")
        assert path == first and str(extra) in note and extra.read_text() == key + "\n" and _mode(extra) == 0o600
    assert sorted(p.name for p in first.parent.iterdir()) == [f"{IID}.key", f"{IID}.key.2", f"{IID}.key.3"]
    assert aimachines.saved_key(st, IID) == "sk-first-key"
    assert len(st.remove_key_files("ai-keys", IID)) == 3 and not any(first.parent.iterdir())


def test_remove_key_files_takes_every_key_of_the_id_and_nothing_else(tmp_path):
    """destroy_instance.py --forget-local: ``<id>.key`` and the second keys ``save_instance_key``
    keeps beside it (``<id>.key.2``, ...; never overwritten) go, with a ``.pub`` of either; another
    id's files, near-miss names, a folder and the target of a symlink stay."""
    st = State(tmp_path / "state")
    st.save_instance_key(IID, "x402c_first")
    for second in ("x402c_second", "x402c_third"):
        with pytest.raises(errors.ComputeError) as e:
            st.save_instance_key(IID, second)
        assert e.value.code == "bad_response"
    keys = tmp_path / "state" / "instance-keys"
    assert sorted(p.name for p in keys.iterdir()) == [f"{IID}.key", f"{IID}.key.2", f"{IID}.key.3"]
    other = "3f1c2a9e-0000-4000-8000-000000000002"
    st.save_instance_key(other, "x402c_other")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the client's\n")
    (keys / f"{IID}.key.2.pub").write_text("ssh-ed25519 AAAA\n")
    (keys / f"{IID}.key.7").symlink_to(outside)  # a link is unlinked, its target never touched
    (keys / f"{IID}.key.4").mkdir()
    near = [f"{IID}.key.2x", f"{IID}.key.bak", f"{IID}.keys", f"{IID}.key.", f"{IID}.key.-1", f"x{IID}.key", f"{IID}.key.\u0663",
            f"{IID}.key.pub.2", f"{IID.upper()}.key.5"]
    for n in near:
        (keys / n).write_text("kept\n")

    removed = st.remove_key_files("instance-keys", IID.upper())  # the id is checked and lower-cased first
    assert sorted(p.name for p in removed) == sorted(f"{IID}{s}" for s in (".key", ".key.2", ".key.2.pub", ".key.3", ".key.7"))
    assert all(p.parent == keys for p in removed)
    assert outside.read_text() == "not the client's\n"
    assert sorted(p.name for p in keys.iterdir()) == sorted([f"{other}.key", f"{IID}.key.4", *near])
    assert st.instance_key(other) == "x402c_other" and st.remove_key_files("instance-keys", IID) == []
    assert st.remove_key_files("ai-keys", IID) == []  # no such folder: nothing to do
    with pytest.raises(errors.ComputeError) as e:
        st.remove_key_files("instance-keys", "../x")
    assert e.value.code == "bad_response"


def test_remove_key_files_never_follows_a_symlinked_folder(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{IID}.key").write_text("someone else's\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "instance-keys").symlink_to(elsewhere)
    with pytest.raises(errors.ComputeError) as e:
        State(tmp_path / "state").remove_key_files("instance-keys", IID)
    assert e.value.code == "unsafe_state_dir" and "instance-keys" in e.value.message
    assert (elsewhere / f"{IID}.key").read_text() == "someone else's\n"


# -- instances ------------------------------------------------------------------------

def order(**kw):
    base = {"id": "i", "status": "active", "ip_address": "203.0.113.5", "expires_at": (NOW + timedelta(hours=30)).isoformat()}
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "fields,state",
    [
        ({}, "running"),
        ({"ip_address": "0.0.0.0"}, "provisioning"),
        ({"status": "pending"}, "provisioning"),
        ({"status": "new"}, "provisioning"),
        ({"status": "active", "server_status": "installingbooting"}, "provisioning"),
        ({"status": "active", "power_status": "stopped", "server_status": "installingbooting"}, "provisioning"),
        ({"status": "active", "power_status": "stopped", "server_status": "ok"}, "stopped"),
        ({"status": "off"}, "stopped"),
        ({"status": "resizing"}, "resizing"),
        ({"status": "suspended"}, "suspended"),
        ({"status": "active", "locked": True}, "provisioning"),
        ({"destroyed_at": "2026-01-01T00:00:00Z"}, "destroyed"),
        ({"status": "destroyed"}, "destroyed"),
        ({"expires_at": (NOW - timedelta(minutes=1)).isoformat()}, "expired"),
        ({"status": "expired"}, "expired"),
        ({"status": None, "vultr_status": "active"}, "running"),
    ],
)
def test_state_mapping(fields, state):
    assert normalized_state(order(**fields), NOW) == state


def test_ip_null_until_assigned_and_ssh_block():
    assert public_ip(order(ip_address="0.0.0.0")) is None
    assert public_ip(order(ip_address="")) is None
    assert ssh_block(order(ip_address="0.0.0.0")) is None
    b = ssh_block(order())
    assert b == {"user": "root", "host": "203.0.113.5", "port": 22, "argv": ["ssh", "root@203.0.113.5"], "command": "ssh root@203.0.113.5", "auth": "ssh-key"}
    b = ssh_block(order(ssh_port=2222, access_method="one_time_password_fallback"))
    assert b["command"] == "ssh -p 2222 root@203.0.113.5" and b["auth"] == "password" and "get_one_time_password" in b["note"]


def test_summary_and_detail():
    o = order(plan=None, vultr_plan="vc2-1c-1gb", vultr_region="lax", label="web")
    s = summary(o, NOW)
    assert s["plan"] == "vc2-1c-1gb" and s["region"] == "lax" and s["hours_left"] == 30.0 and s["state"] == "running"
    d = detail(o, NOW)
    assert d["raw"] is o and d["ssh"]["host"] == "203.0.113.5"
    assert detail(order(destroyed_at="x"), NOW)["ssh"] is None
    assert hours_left(order(expires_at=(NOW - timedelta(hours=5)).isoformat()), NOW) == 0.0
    assert hours_left(order(expires_at=None), NOW) is None
    # destroyed before its expiry: nothing prepaid is left to use (list_instances --all, details)
    gone = summary(order(expires_at=(NOW + timedelta(hours=30)).isoformat(), destroyed_at=NOW.isoformat()), NOW)
    assert gone["state"] == "destroyed" and gone["hours_left"] == 0.0


def test_unwrap_order_shapes():
    assert unwrap_order({"order": {"id": 1}}) == {"id": 1}
    assert unwrap_order({"instance": {"id": 2}}) == {"id": 2}
    assert unwrap_order({"id": 3}) == {"id": 3}
    assert unwrap_order(None) == {}


def test_absurd_spend_caps_are_usage_errors_not_tracebacks():
    from x402_compute.config import load_settings
    from x402_compute.errors import ConfigError

    for bad in ("1e999999", "1000000.01", "-1", "NaN"):
        with pytest.raises(ConfigError):
            load_settings(environ={}, max_usd=bad)
    assert str(load_settings(environ={}, max_usd="1000000").max_spend_usd) == "1000000"
