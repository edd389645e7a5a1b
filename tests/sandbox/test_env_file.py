"""The sandbox's env file is what users source: it must point the client at the
sandbox AND give the client a state folder of its own (payee pins, journal) unless the caller's
environment names one, which wins."""

import os
import stat
from pathlib import Path


def test_env_file_gives_the_client_its_own_state_folder(sandbox, tmp_path, monkeypatch):
    path = sandbox.sandbox.write_env_file(str(tmp_path / "sandbox.env"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    from x402_compute.config import load_settings

    # With nothing of its own in the environment, the file gives the client the sandbox's state folder.
    s = load_settings(environ={"HOME": str(tmp_path)}, env_file=path)
    assert s.base_url == sandbox.base_url
    assert s.state_dir == Path(sandbox.state_dir).resolve() / "client-state"
    assert s.private_key and s.rpc_url("megaeth").startswith(sandbox.base_url)
    assert s.setting_source("X402_COMPUTE_STATE_DIR") == "file"
    # A variable the caller set wins over the file (python-dotenv's default, documented in sandbox.md):
    # a state folder chosen in the shell is the one used, and the source says so.
    chosen = tmp_path / "chosen-state"
    s = load_settings(environ={"X402_COMPUTE_STATE_DIR": str(chosen), "HOME": str(tmp_path)}, env_file=path)
    assert s.state_dir == chosen and s.setting_source("X402_COMPUTE_STATE_DIR") == "environment"
    assert s.base_url == sandbox.base_url and s.setting_source("COMPUTE_BASE_URL") == "file"
