"""Fixtures for the hostile-server tests: ``hostile`` (a fresh :class:`HostileAPI` per test) and
``hostile_env`` (a clean environment pointing the scripts at it, with a wallet and a private
state directory under ``tmp_path``)."""

from __future__ import annotations

import pytest

from tests.helpers import clean_env
from tests.hostile.stub import HostileAPI

# A throwaway EVM key: the stub never settles anything, so the wallet needs no funds.
EVM_KEY = "0x" + "5c" * 32


@pytest.fixture
def hostile():
    api = HostileAPI().start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def hostile_env(hostile, tmp_path):
    """``hostile_env(**extra)`` -> env dict; the state directory is ``tmp_path / "home" / "state"``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def make(**extra: str) -> dict:
        env = clean_env({"COMPUTE_BASE_URL": hostile.base_url, "PRIVATE_KEY": EVM_KEY, "COMPUTE_TIMEOUT": "10"}, home=home)
        env.update(extra)
        return {k: v for k, v in env.items() if v is not None}

    return make
