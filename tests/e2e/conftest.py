"""Fixtures the end-to-end tests share."""

from __future__ import annotations

import pytest

from tests.helpers import clean_env


@pytest.fixture
def paying_env(sandbox, tools, tmp_path):
    """An EVM wallet funded with 50 USD on the session sandbox, its own HOME and state in tmp_path."""
    w = tools.fresh_wallet(sandbox.facilitator, usd=50)
    env = {k: v for k, v in sandbox.env.items() if not k.startswith("SOLANA_")}
    env.update({"PRIVATE_KEY": w["evm_private_key"], "WALLET_ADDRESS": w["evm_address"]})
    return clean_env(env, home=tmp_path)
