"""mppx, the MPP client the compute service documents ("tested with npx mppx"), pays the sandbox.

The two commands of the service's docs (mpp-ows.md §A.7, compute-api.md §7.4), run as documented
with `npx mppx` against a sandbox, the key in MPPX_PRIVATE_KEY and the Tempo RPC pointed at the
sandbox's ledger:

    npx mppx <url>/compute/provision -X POST -J '<json body>'
    npx mppx <url>/compute/instances/<id>/extend -X POST -J '<json body>' -H "X-API-Key: <management key>"

mppx 0.11.0 with viem 2.57.20 (tests/oracle/mppx/package-lock.json pins the whole tree) leaves the
Tempo fee token unset and puts a random discriminator in the expiring nonce, so both settle only if
the ledger follows Tempo's current rules (tempo/ledger.py). Each must settle exactly once: one ledger
transaction from the payer, the exact amount plus gas out of its USDC.e, the amount into the payee.

npm installs the tree once into `.cache/mppx-<hash of the lock>/` at the repository root (git
ignores it), shared by every test worker and every later run. Without npm the tests are skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import npm_ci_once

PKG_DIR = Path(__file__).resolve().parent / "mppx"
PLAN, REGION, OS_ID = "vc2-1c-1gb", "lax", 2284


def _mppx_dir() -> Path:
    """The installed tree (npm ci of the pinned lock), installed at most once per lock version."""
    if shutil.which("npm") is None or shutil.which("npx") is None:
        pytest.skip("npm is not installed: the mppx oracle (npx mppx@0.11.0) needs Node.js and npm")
    # viem declares `peerOptional mppx>=0.17.0`, which conflicts with mppx 0.11.0's own `viem`
    # peer: npm needs --legacy-peer-deps to install the pinned pair (mpp-ows.md §A.8).
    target = npm_ci_once(PKG_DIR, "mppx", "--legacy-peer-deps", timeout=300)
    return target


@pytest.fixture(scope="module")
def mppx_dir() -> Path:
    return _mppx_dir()


def npx_mppx(mppx_dir: Path, home: Path, key: str, rpc_url: str, *args: str) -> dict:
    """`npx mppx <args>` as the docs show it; stdout is the response body (JSON)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "XDG_DATA_HOME": str(home / ".local"), "MPPX_PRIVATE_KEY": key, "MPPX_RPC_URL": rpc_url,
           "NO_COLOR": "1", "npm_config_update_notifier": "false"}
    proc = subprocess.run(["npx", "--no", "mppx", *args], cwd=mppx_dir, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"mppx exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return json.loads(proc.stdout)


def test_npx_mppx_provision_then_extend_with_the_management_key(mppx_dir, sandbox, tools, tmp_path):
    from x402_compute_sandbox import tempo

    sb = sandbox
    ledger = sb.app.tempo
    w = tools.fresh_wallet(sb.facilitator, usd=1)      # a payer nobody else uses
    payer = w["evm_address"]
    ledger.fund(payer, 5 * 10**6)
    payee = sb.app.mpp.recipient
    rpc = sb.base_url + "/rpc/tempo"
    fee = tempo.GAS_PER_CALL * tempo.GAS_PRICE // tempo.ATTO_PER_MICRO   # one call at the fixed base fee

    def settled_once(doc: dict, n: int, amount: int, before: tuple) -> None:
        txs = ledger.transactions(payer)
        assert len(txs) == n, txs                                  # exactly one more on-chain transaction
        tx = txs[-1]
        assert doc["tx_hash"] == tx["hash"] and ledger.receipt(tx["hash"])["status"] == "0x1"
        assert tx["feeToken"] is None                              # mppx left it unset: the fee rules chose
        assert ledger.receipt(tx["hash"])["feeToken"] == tempo.USDC_E
        assert int(tx["nonceKey"], 16) == tempo.EXPIRING_NONCE_KEY
        assert (before[0] - ledger.balance_of(payer), ledger.balance_of(payee) - before[1]) == (amount + fee, amount)
        paid = [p for p in sb.app.store.payments() if p["payer"] == payer]
        assert len(paid) == n and paid[-1]["tx"] == tx["hash"] and paid[-1]["network"] == "tempo"

    # 1. The provision example: no auth, so the answer carries the one-time management key.
    body = json.dumps({"plan": PLAN, "region": REGION, "os_id": OS_ID, "label": "mppx", "prepaid_hours": 24})
    before = (ledger.balance_of(payer), ledger.balance_of(payee))
    doc = npx_mppx(mppx_dir, tmp_path, w["evm_private_key"], rpc,
                   sb.base_url + "/compute/provision", "-X", "POST", "-J", body)
    assert doc["success"] is True and doc["payment"]["method"] == "mpp" and doc["payment"]["payer"] == payer
    assert doc["management_api_key"].startswith("x402c_")
    settled_once(doc, 1, 249_600, before)
    iid = doc["order"]["id"]

    # 2. The extend example: the management key as X-API-Key (mppx repeats it on the paid retry).
    before = (ledger.balance_of(payer), ledger.balance_of(payee))
    doc = npx_mppx(mppx_dir, tmp_path, w["evm_private_key"], rpc,
                   f"{sb.base_url}/compute/instances/{iid}/extend", "-X", "POST", "-J", json.dumps({"extend_hours": 24}),
                   "-H", f"X-API-Key: {doc['management_api_key']}")
    assert doc["success"] is True and doc["extended_hours"] == 24 and doc["order"]["prepaid_hours"] == 48
    settled_once(doc, 2, 249_600, before)
