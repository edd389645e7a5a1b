"""The product's own MPP path: the scripts pay the sandbox's tempo charge as subprocesses.

pympp builds the credential; our flow sends it (journal, Idempotency-Key, single resend); the
sandbox verifies the 0x76 transaction and settles on its Tempo ledger.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.helpers import fresh_tempo_key, journal_entries, run_script, tempo_env

pytest.importorskip("mpp")

from eth_account import Account  # noqa: E402

PLAN, REGION = "vc2-1c-1gb", "lax"






def ok(res):
    code, doc, err = res
    assert code == 0 and doc["ok"] is True, (code, doc, err)
    return doc


def provision(sb, home, key, *more):
    return run_script("provision.py", PLAN, REGION, "--days", "1", "--pay", "mpp", "--yes", *more,
                      env=tempo_env(sb, home, key), timeout=120)


def test_provision_via_mpp_settles_once_and_saves_the_management_key(sandbox, tmp_path):
    key = fresh_tempo_key(sandbox)
    payer = Account.from_key(key).address
    payee = sandbox.facilitator.payee("base")
    led = sandbox.app.tempo
    payee_before, payer_before = led.balance_of(payee), led.balance_of(payer)
    n_payments = len(sandbox.app.store.payments())

    doc = ok(provision(sandbox, tmp_path, key))
    data = doc["data"] if "data" in doc else doc
    pay = data["payment"]
    assert pay["method"] == "mpp" and pay["network"] == "tempo" and pay["payer"] == payer
    assert pay["receipt"]["status"] == "success" and pay["tx_hash"] == pay["receipt"]["reference"]
    amount = int(pay["amount_atomic"])
    assert led.balance_of(payee) - payee_before == amount
    receipt = led.receipt(pay["tx_hash"])
    assert receipt is not None and receipt["from"] == payer
    assert payer_before - led.balance_of(payer) == amount + int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16) // 10**12
    assert len(sandbox.app.store.payments()) == n_payments + 1

    # The one-time key: saved 0600 where the output says, never printed in full.
    mk = data["management_api_key"]
    path = Path(mk["file"])
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    full = path.read_text().strip()
    assert full.startswith("x402c_") and full.endswith(mk["last4"])
    assert full not in json.dumps(doc)
    # The journal holds the credential (in the 0600 ledger) but the public output does not.
    entries = journal_entries(tmp_path)
    assert len(entries) == 1 and stat.S_IMODE((tmp_path / "state" / "ledger.sqlite3").stat().st_mode) == 0o600
    entry = entries[0]
    assert entry["method"] == "mpp" and entry["status"] == "settled" and entry["payment_header_name"] == "Authorization"
    assert entry["payment_header_value"] not in json.dumps(doc)

    # With no wallet configured at all, the saved key manages that instance.
    oid = data["order"]["id"]
    got = ok(run_script("instance_details.py", oid, env=tempo_env(sandbox, tmp_path, None)))
    assert json.dumps(got).count(oid) >= 1 and got["auth"] == "management-key"

    # A replay of the same credential (no Idempotency-Key) is refused and nothing more is provisioned.
    import requests
    orders = len(sandbox.app.store.all_orders())
    req = entry["request"]
    r = requests.post(sandbox.base_url + req["path"], data=req["body"].encode(),
                      headers={"Content-Type": "application/json", "Authorization": entry["payment_header_value"]},
                      timeout=30)
    assert r.status_code == 403
    assert len(sandbox.app.store.all_orders()) == orders
    assert led.balance_of(payee) - payee_before == amount


@pytest.mark.parametrize("auth", ["signature", "management_key"])
def test_extend_via_mpp_sends_management_auth(sandbox, tmp_path, auth):
    key = fresh_tempo_key(sandbox)
    made = ok(provision(sandbox, tmp_path, key))
    data = made["data"] if "data" in made else made
    oid = data["order"]["id"]
    extra = {}
    if auth == "management_key":
        # The saved one-time key as the account credential: X-API-Key on the probe and the paid retry.
        extra["COMPUTE_API_KEY"] = Path(data["management_api_key"]["file"]).read_text().strip()
    # else: PRIVATE_KEY both pays (Tempo) and signs X-Auth-* (the payer owns the MPP-provisioned instance).
    res = run_script("extend_instance.py", oid, "--days", "1", "--pay", "mpp", "--yes",
                     env=tempo_env(sandbox, tmp_path, key, **extra), timeout=120)
    doc = ok(res)
    d = doc["data"] if "data" in doc else doc
    assert d["payment"]["method"] == "mpp" and d["payment"]["receipt"]["status"] == "success"
    assert d["order"]["new_expires_at"] > d["order"]["old_expires_at"]
    assert "price_check" not in d            # the plan was read with that auth, so the price was checked


def test_a_lost_mpp_answer_resent_by_reconcile_still_saves_the_management_key(sandbox, tmp_path):
    import requests

    key = fresh_tempo_key(sandbox)
    env = tempo_env(sandbox, tmp_path, key)
    # The payment settles but neither the answer nor the resend's answer comes back: exit 4.
    assert requests.post(sandbox.base_url + "/_sandbox/faults", json={"drop_after_settle": 2}, timeout=5).status_code == 200
    code, doc, err = provision(sandbox, tmp_path, key)
    assert code == 4 and doc["error"]["code"] == "payment_outcome_unknown", (doc, err)
    jid = doc["error"]["details"]["payment"]["journal_id"]
    assert not (tmp_path / "state" / "instance-keys").exists() or not list((tmp_path / "state" / "instance-keys").iterdir())
    # The stored payment re-sent: the server replays its first answer, the one-time key included.
    got = ok(run_script("reconcile.py", jid, "--resend", env=env, timeout=120))
    mk, oid = got["management_api_key"], got["order"]["id"]
    path = Path(mk["file"])
    assert path.name.startswith(oid) and stat.S_IMODE(path.stat().st_mode) == 0o600
    full = path.read_text().strip()
    assert full.startswith("x402c_") and full.endswith(mk["last4"]) and full not in json.dumps(got)
    # With no wallet configured, that key manages the instance.
    assert ok(run_script("instance_details.py", oid, env=tempo_env(sandbox, tmp_path, None)))["auth"] == "management-key"


def test_mpp_quote_signs_nothing(sandbox, tmp_path):
    key = fresh_tempo_key(sandbox)
    before = sandbox.app.tempo.balance_of(Account.from_key(key).address)
    res = run_script("provision.py", PLAN, REGION, "--days", "1", "--pay", "mpp", "--quote",
                     env=tempo_env(sandbox, tmp_path, key), timeout=120)
    doc = ok(res)
    q = (doc["data"] if "data" in doc else doc)["quote"]
    assert q["method"] == "mpp" and q["signed"] is False and q["policy"]["ok"] is True
    assert sandbox.app.tempo.balance_of(Account.from_key(key).address) == before
    assert journal_entries(tmp_path) == []


def test_mpp_cap_refuses_before_signing(sandbox, tmp_path):
    key = fresh_tempo_key(sandbox)
    code, doc, err = run_script("provision.py", PLAN, REGION, "--days", "1", "--pay", "mpp", "--yes",
                                "--max-usd", "0.01", env=tempo_env(sandbox, tmp_path, key), timeout=120)
    assert code == 3 and doc["error"]["code"] == "spend_cap_exceeded", (doc, err)


def test_python_310_gets_a_clear_error():
    from x402_compute.errors import ConfigError
    from x402_compute.payments.schemes.mpp_tempo import require_pympp
    with pytest.raises(ConfigError) as e:
        require_pympp((3, 10, 12))
    assert e.value.code == "mpp_unavailable" and "3.11" in e.value.message


def test_provision_via_mpp_from_an_ows_vault(sandbox, tmp_path):
    """COMPUTE_AUTH_MODE=ows: the Tempo transfer is signed inside the vault; no PRIVATE_KEY anywhere."""
    ows = pytest.importorskip("ows")
    wallet = sandbox.wallets[0]  # funded on the sandbox's Tempo ledger
    vault, passphrase = str(tmp_path / "vault"), "e2e mpp passphrase"
    info = ows.import_wallet_private_key("sb", "", passphrase=passphrase, vault_path_opt=vault,
                                         secp256k1_key=wallet["evm_private_key"].removeprefix("0x"),
                                         ed25519_key=os.urandom(32).hex())
    payer = next(a["address"] for a in info["accounts"] if a["chain_id"].startswith("eip155:"))
    assert payer.lower() == wallet["evm_address"].lower()
    env = tempo_env(sandbox, tmp_path, None, COMPUTE_AUTH_MODE="ows", OWS_WALLET="sb", OWS_VAULT_PATH=vault,
                  OWS_PASSPHRASE=passphrase)
    assert "PRIVATE_KEY" not in env and "PRIVATE_KEY_FILE" not in env

    led = sandbox.app.tempo
    payee = sandbox.facilitator.payee("base")
    payee_before, payer_before = led.balance_of(payee), led.balance_of(payer)
    n_payments = len(sandbox.app.store.payments())

    code, doc, err = run_script("provision.py", PLAN, REGION, "--days", "1", "--pay", "mpp", "--yes",
                                env=env, timeout=120)
    assert code == 0 and doc["ok"] is True, (code, doc, err)
    data = doc["data"] if "data" in doc else doc
    pay = data["payment"]
    assert pay["method"] == "mpp" and pay["payer"].lower() == payer.lower()
    assert pay["receipt"]["status"] == "success" and pay["tx_hash"] == pay["receipt"]["reference"]
    amount = int(pay["amount_atomic"])
    receipt = led.receipt(pay["tx_hash"])
    assert receipt is not None and receipt["from"].lower() == payer.lower()
    assert led.balance_of(payee) - payee_before == amount
    assert payer_before - led.balance_of(payer) == amount + int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16) // 10**12
    assert len(sandbox.app.store.payments()) == n_payments + 1  # settled once

    mk = data["management_api_key"]
    path = Path(mk["file"])
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() not in json.dumps(doc)
    assert passphrase not in json.dumps(doc) + err
