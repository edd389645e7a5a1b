"""Management auth over loopback HTTP: X-Auth-* signatures (golden vectors), nonces, skew, API keys."""
import json
import os
import sqlite3
import time
import uuid

import pytest
import requests

# compute-api.md §7.3 golden vectors.
EVM_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
EVM_ADDR = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
EVM_BODY = b'{"plan":"vc2-1c-1gb","region":"lax","os_id":2284,"label":"demo","prepaid_hours":24,"network":"base"}'
EVM_SIG = ("0x6b7bfe924657ef0594851d2bf1e0877b1bed21189c2d130fcd095d4067734399744359f8ac3efc8d943b7cdce22b966"
           "cd8869ca3cbdd9f67dc5eaaf2d08c80311b")
SOL_ADDR = "9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj"
SOL_SECRET = "2Ana1pUpv2ZbMVkwF5FXapYeBEjdxDatLn7nvJkhgTSdZd8hbDHTd21as7EAsg7ypityqfsw2pMQKJcVDVcAEsd"
SOL_SIG = "+w5SyWI4jSBErZ2qY9AlZ4h1CynsWA2alAae4Z+3HClP2Dxmb98BFaTZN7Pkr7aULCuC4f87kL+TFZqS5WviAw=="
TS = "1767225600000"
NONCE = "0123456789abcdef0123456789abcdef"


def golden_evm_headers(nonce=NONCE):
    return {"X-Auth-Address": EVM_ADDR, "X-Auth-Chain": "base", "X-Auth-Signature": EVM_SIG,
            "X-Auth-Timestamp": TS, "X-Auth-Nonce": nonce, "X-Auth-Sig-Encoding": "hex",
            "Content-Type": "application/json"}


def golden_sol_headers():
    return {"X-Auth-Address": SOL_ADDR, "X-Auth-Chain": "solana", "X-Auth-Signature": SOL_SIG,
            "X-Auth-Timestamp": TS, "X-Auth-Nonce": NONCE, "X-Auth-Sig-Encoding": "base64"}


def test_golden_message_and_signatures_offline(tools):
    from x402_compute_sandbox.auth import auth_message
    msg = auth_message("base", EVM_ADDR, "POST", "/compute/provision", EVM_BODY, TS, NONCE)
    assert msg.split("\n")[6] == "8b22f6eba621b2aa3f683dc4ace74affcd8aea04c9dacfbc178cd4ad2eb72133"
    assert not msg.endswith("\n")
    # Our test signer reproduces the published signatures byte for byte.
    assert tools.evm_auth(EVM_KEY, "POST", "/compute/provision", EVM_BODY, ts=TS, nonce=NONCE)[
        "X-Auth-Signature"] == EVM_SIG
    assert tools.solana_auth(SOL_SECRET, "GET", "/compute/instances", ts=TS, nonce=NONCE)[
        "X-Auth-Signature"] == SOL_SIG


@pytest.fixture
def lenient(make_sandbox, sandbox):
    """A sandbox whose skew window admits the vectors' 2026-01-01 timestamp (chains shared)."""
    return make_sandbox(auth_skew_seconds=10 ** 10, facilitator=sandbox.facilitator)


def test_golden_vectors_over_http(lenient):
    r = requests.get(lenient.base_url + "/compute/instances", headers=golden_sol_headers())
    assert r.status_code == 200, r.text
    assert r.json() == {"instances": []}
    # Same nonce again: a replay, refused although the signature is valid.
    r = requests.get(lenient.base_url + "/compute/instances", headers=golden_sol_headers())
    assert r.status_code == 401 and "nonce" in r.json()["error"].lower()

    # The EVM vector signs a provision: auth passes, the answer is the 402 challenge, nonce consumed.
    r = requests.post(lenient.base_url + "/compute/provision", data=EVM_BODY, headers=golden_evm_headers())
    assert r.status_code == 402, r.text
    assert r.json()["x402Version"] == 1
    r = requests.post(lenient.base_url + "/compute/provision", data=EVM_BODY, headers=golden_evm_headers())
    assert r.status_code == 401


def test_golden_vector_with_other_body_fails(lenient):
    body = EVM_BODY.replace(b'"demo"', b'"demo2"')
    r = requests.post(lenient.base_url + "/compute/provision", data=body,
                      headers=golden_evm_headers(nonce="f" * 32))
    assert r.status_code == 401 and r.json()["error"] == "Invalid signature"


def test_signature_for_other_path_or_method_fails(sandbox, tools):
    w = sandbox.wallets[0]
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/api-keys")
    assert requests.get(sandbox.base_url + "/compute/instances", headers=h).status_code == 401
    h = tools.evm_auth(w["evm_private_key"], "POST", "/compute/instances")
    assert requests.get(sandbox.base_url + "/compute/instances", headers=h).status_code == 401


def test_bad_signature_and_wrong_address(sandbox, tools):
    w = sandbox.wallets[0]
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")
    sig = h["X-Auth-Signature"]
    h["X-Auth-Signature"] = sig[:10] + ("0" if sig[10] != "0" else "1") + sig[11:]
    r = requests.get(sandbox.base_url + "/compute/instances", headers=h)
    assert r.status_code == 401
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances",
                       address=sandbox.wallets[1]["evm_address"].lower())
    assert requests.get(sandbox.base_url + "/compute/instances", headers=h).status_code == 401
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")
    h["X-Auth-Signature"] = "0x1234"
    r = requests.get(sandbox.base_url + "/compute/instances", headers=h)
    assert r.status_code == 401 and "130 hex" in r.json()["error"]


def test_query_string_is_not_signed(sandbox, tools):
    w = sandbox.wallets[0]
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")
    r = requests.get(sandbox.base_url + "/compute/instances?wallet=" + w["evm_address"], headers=h)
    assert r.status_code == 200


def test_checksummed_address_and_other_evm_chains_accepted(sandbox, tools):
    w = sandbox.wallets[0]
    for chain in ("base", "megaeth", "robinhood"):
        h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances", chain=chain,
                           address=w["evm_address"])  # mixed case, signed as sent
        assert requests.get(sandbox.base_url + "/compute/instances", headers=h).status_code == 200, chain
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances", chain="ethereum")
    r = requests.get(sandbox.base_url + "/compute/instances", headers=h)
    assert r.status_code == 401 and "X-Auth-Chain" in r.json()["error"]


def test_timestamp_skew(sandbox, tools):
    w = sandbox.wallets[0]
    now = int(time.time() * 1000)
    for ts in (now - 301_000, now + 301_000):
        h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances", ts=ts)
        r = requests.get(sandbox.base_url + "/compute/instances", headers=h)
        assert r.status_code == 401 and "window" in r.json()["error"]
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances", ts=now - 250_000)
    assert requests.get(sandbox.base_url + "/compute/instances", headers=h).status_code == 200
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")
    h["X-Auth-Timestamp"] = str(now / 1000.0)  # seconds with a fraction: not epoch ms
    assert requests.get(sandbox.base_url + "/compute/instances", headers=h).status_code == 401


def test_configurable_skew(make_sandbox, sandbox, tools):
    strict = make_sandbox(auth_skew_seconds=5, facilitator=sandbox.facilitator)
    w = sandbox.wallets[0]
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances", ts=int(time.time() * 1000) - 30_000)
    assert requests.get(strict.base_url + "/compute/instances", headers=h).status_code == 401


def test_replayed_nonce_rejected(sandbox, tools):
    w = sandbox.wallets[0]
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")
    assert requests.get(sandbox.base_url + "/compute/instances", headers=h).status_code == 200
    r = requests.get(sandbox.base_url + "/compute/instances", headers=h)
    assert r.status_code == 401 and "already used" in r.json()["error"]
    # Re-signed with a new timestamp, the same wallet's nonce is still spent.
    h2 = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances", nonce=h["X-Auth-Nonce"])
    assert requests.get(sandbox.base_url + "/compute/instances", headers=h2).status_code == 401
    # Nonces are per wallet: another wallet may use the same string (the §7.3 vectors share one).
    h3 = tools.evm_auth(sandbox.wallets[1]["evm_private_key"], "GET", "/compute/instances",
                        nonce=h["X-Auth-Nonce"])
    assert requests.get(sandbox.base_url + "/compute/instances", headers=h3).status_code == 200


def test_incomplete_headers(sandbox, tools):
    w = sandbox.wallets[0]
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/instances")
    del h["X-Auth-Nonce"]
    r = requests.get(sandbox.base_url + "/compute/instances", headers=h)
    assert r.status_code == 401 and r.json()["details"]["missing"] == ["X-Auth-Nonce"]
    assert requests.get(sandbox.base_url + "/compute/instances").status_code == 401


def test_solana_signature_auth(sandbox, tools):
    w = sandbox.wallets[0]
    h = tools.solana_auth(w["solana_secret_key"], "GET", "/compute/credits/balance")
    r = requests.get(sandbox.base_url + "/compute/credits/balance", headers=h)
    assert r.status_code == 200 and r.json()["wallet"] == w["solana_address"]
    h = tools.solana_auth(w["solana_secret_key"], "GET", "/compute/credits/balance")
    h["X-Auth-Address"] = sandbox.wallets[1]["solana_address"]
    assert requests.get(sandbox.base_url + "/compute/credits/balance", headers=h).status_code == 401


def test_api_key_lifecycle(sandbox, tools):
    w = tools.fresh_wallet(sandbox.facilitator, usd=0)
    raw = json.dumps({"label": "ci"}).encode()
    h = tools.evm_auth(w["evm_private_key"], "POST", "/compute/api-keys", raw)
    r = requests.post(sandbox.base_url + "/compute/api-keys", data=raw, headers=h)
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["api_key"]
    assert key.startswith("x402c_") and created["label"] == "ci" and uuid.UUID(created["id"])

    # An API key acts as its wallet: balance, list of keys (last four only).
    r = requests.get(sandbox.base_url + "/compute/credits/balance", headers={"X-API-Key": key})
    assert r.status_code == 200 and r.json()["wallet"] == w["evm_address"].lower()
    keys = requests.get(sandbox.base_url + "/compute/api-keys", headers={"X-API-Key": key}).json()["api_keys"]
    assert [k["key_last4"] for k in keys] == [key[-4:]]
    assert key not in json.dumps(keys) and keys[0]["revoked_at"] is None

    # Only the SHA-256 is stored.
    import hashlib
    db = sqlite3.connect(os.path.join(sandbox.state_dir, "sandbox.sqlite3"))
    rows = db.execute("SELECT key_hash FROM api_keys WHERE id=?", (created["id"],)).fetchall()
    assert rows == [(hashlib.sha256(key.encode()).hexdigest(),)]
    with open(os.path.join(sandbox.state_dir, "sandbox.sqlite3"), "rb") as fh:
        assert key.encode() not in fh.read()

    # Creating or revoking with an API key is refused, with a message saying why.
    r = requests.post(sandbox.base_url + "/compute/api-keys", json={}, headers={"X-API-Key": key})
    assert r.status_code == 401 and "signature" in r.json()["error"]
    r = requests.delete(f"{sandbox.base_url}/compute/api-keys/{created['id']}", headers={"X-API-Key": key})
    assert r.status_code == 401 and "signature" in r.json()["error"]

    # Another wallet cannot revoke it.
    path = f"/compute/api-keys/{created['id']}"
    h = tools.evm_auth(sandbox.wallets[1]["evm_private_key"], "DELETE", path)
    assert requests.delete(sandbox.base_url + path, headers=h).status_code == 404

    h = tools.evm_auth(w["evm_private_key"], "DELETE", path)
    r = requests.delete(sandbox.base_url + path, headers=h)
    assert r.status_code == 200 and r.json()["revoked_at"]
    r = requests.get(sandbox.base_url + "/compute/instances", headers={"X-API-Key": key})
    assert r.status_code == 401 and "revoked" in r.json()["error"]
    h = tools.evm_auth(w["evm_private_key"], "GET", "/compute/api-keys")
    keys = requests.get(sandbox.base_url + "/compute/api-keys", headers=h).json()["api_keys"]
    assert keys[0]["revoked_at"]


def test_api_key_create_with_empty_body_and_solana(sandbox, tools):
    w = sandbox.wallets[2]
    h = tools.solana_auth(w["solana_secret_key"], "POST", "/compute/api-keys", b"")
    r = requests.post(sandbox.base_url + "/compute/api-keys", headers=h)
    assert r.status_code == 201 and r.json()["label"] is None
    r = requests.get(sandbox.base_url + "/compute/credits/balance", headers={"X-API-Key": r.json()["api_key"]})
    assert r.json()["wallet"] == w["solana_address"]


def test_unknown_api_key(sandbox):
    for key in ("x402c_" + "0" * 48, "sk_live_nope", ""):
        r = requests.get(sandbox.base_url + "/compute/instances", headers={"X-API-Key": key})
        assert r.status_code == 401, key


def test_revoke_bad_uuid(sandbox, tools):
    h = tools.evm_auth(sandbox.wallets[0]["evm_private_key"], "DELETE", "/compute/api-keys/not-a-uuid")
    r = requests.delete(sandbox.base_url + "/compute/api-keys/not-a-uuid", headers=h)
    assert r.status_code == 400
