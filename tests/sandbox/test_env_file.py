"""The sandbox's env file is what users source: it must point the client at the
sandbox AND keep the client's state (payee pins, journal) apart from the real one."""

import os
import stat
from pathlib import Path


def test_env_file_gives_the_client_its_own_state_folder(sandbox, tmp_path, monkeypatch):
    path = sandbox.sandbox.write_env_file(str(tmp_path / "sandbox.env"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    from x402_compute.config import load_settings

    # A user whose shell points at their real state folder still gets the sandbox's own.
    real = tmp_path / "real-state"
    s = load_settings(environ={"X402_COMPUTE_STATE_DIR": str(real), "HOME": str(tmp_path)}, env_file=path)
    assert s.base_url == sandbox.base_url
    assert s.state_dir == Path(sandbox.state_dir).resolve() / "client-state"
    assert s.state_dir != real and s.private_key and s.rpc_url("megaeth").startswith(sandbox.base_url)
