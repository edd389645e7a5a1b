"""ows_cli.py subcommands as subprocesses (one JSON document, documented exit codes), and the
OWS auth/payment path of the other scripts against the sandbox.

Every vault is a temporary directory (OWS_VAULT_PATH) and HOME points at tmp: the real ~/.ows is
never touched. Secrets go in through the environment or stdin, and the tests check they never
come back out on stdout/stderr unless asked for."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.helpers import clean_env, run_script

pytest.importorskip("ows")

MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
MNEMONIC_EVM = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
MNEMONIC_SOL = "HAgk14JpMQLgt6rVgv7cBQFJWFto5Dqxi472uT3DKpqk"
EVM_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
EVM_ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SOL_KEYPAIR = "2Ana1pUpv2ZbMVkwF5FXapYeBEjdxDatLn7nvJkhgTSdZd8hbDHTd21as7EAsg7ypityqfsw2pMQKJcVDVcAEsd"
SOL_ADDR = "9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj"
PASS = "e2e passphrase"


def ows(*args, env, input=None):
    return run_script("ows_cli.py", *args, env=env, input=input)


def ok(res):
    code, doc, err = res
    assert code == 0 and doc["ok"] is True, (code, doc, err)
    return doc


def fail(res, exit_code, code):
    rc, doc, err = res
    assert rc == exit_code and doc["ok"] is False and doc["error"]["code"] == code, (rc, doc, err)
    return doc["error"]


@pytest.fixture
def env(tmp_path):
    return clean_env({"OWS_VAULT_PATH": str(tmp_path / "vault"), "OWS_PASSPHRASE": PASS}, home=tmp_path)


@pytest.fixture
def keyed(env):
    """The well-known test keys imported for both curves (deterministic addresses)."""
    doc = ok(ows("wallet-import", "--name", "keyed", "--private-key-env", "PK", "--solana-key-env", "SK", env={**env, "PK": EVM_KEY, "SK": SOL_KEYPAIR}))
    return doc["wallet"]


def test_create_never_prints_the_mnemonic_unless_asked(env):
    doc = ok(ows("wallet-create", "--name", "a", env=env))
    assert "mnemonic" not in doc and doc["passphrase_set"] is True and doc["wallet"]["evm_address"].startswith("0x")
    assert doc["wallet"]["id"] in doc["backup"]
    wallet_file = Path(env["OWS_VAULT_PATH"]) / "wallets" / f"{doc['wallet']['id']}.json"
    assert stat.S_IMODE(wallet_file.stat().st_mode) == 0o600

    shown = ok(ows("wallet-create", "--name", "b", "--words", "24", "--show-mnemonic", env=env))
    words = shown["mnemonic"].split()
    assert len(words) == 24 and "warning" in shown
    import ows as binding

    assert binding.derive_address(shown["mnemonic"], "ethereum") == shown["wallet"]["evm_address"]

    listed = ok(ows("wallet-list", env=env))
    assert {w["name"] for w in listed["wallets"]} == {"a", "b"} and listed["count"] == 2
    fail(ows("wallet-create", "--name", "a", env=env), 2, "ows_wallet_exists")


def test_create_without_passphrase_off_terminal_needs_a_flag(env):
    bare = {k: v for k, v in env.items() if k != "OWS_PASSPHRASE"}
    e = fail(ows("wallet-create", "--name", "x", env=bare), 2, "config_error")
    assert "--no-passphrase" in e["hint"]
    assert ok(ows("wallet-create", "--name", "x", "--no-passphrase", env=bare))["passphrase_set"] is False
    fail(ows("wallet-create", "--name", "y", "--words", "15", env=env), 2, "usage_error")


def test_import_mnemonic_from_env_and_keys_from_stdin(env):
    doc = ok(ows("wallet-import", "--name", "m", "--mnemonic-env", "MN", env={**env, "MN": MNEMONIC}))
    assert (doc["wallet"]["evm_address"], doc["wallet"]["solana_address"]) == (MNEMONIC_EVM, MNEMONIC_SOL)

    code, doc, err = ows("wallet-import", "--name", "k", "--stdin", env=env, input=EVM_KEY + "\n")
    assert code == 0 and doc["wallet"]["evm_address"] == EVM_ADDR
    assert any("random Solana key" in w for w in doc["warnings"])
    assert EVM_KEY[2:] not in str(doc) + err

    doc = ok(ows("wallet-import", "--name", "s", "--stdin", env=env, input=SOL_KEYPAIR))
    assert doc["wallet"]["solana_address"] == SOL_ADDR

    e = fail(ows("wallet-import", "--name", "bad", "--private-key-env", "PK", env={**env, "PK": "not-a-key-at-all"}), 2, "usage_error")
    assert "not-a-key" not in str(e)
    fail(ows("wallet-import", "--name", "bad", "--private-key-env", "UNSET_VAR", env=env), 2, "usage_error")
    # The binding's own message would quote the offending word; ours does not.
    code, doc, err = ows("wallet-import", "--name", "bad", "--mnemonic-env", "MN", env={**env, "MN": MNEMONIC.replace("about", "secretword")})
    assert code == 2 and doc["error"]["code"] == "ows_invalid_secret" and "secretword" not in str(doc) + err
    fail(ows("wallet-import", "--name", "bad", "--mnemonic-env", "MN", "--stdin", env={**env, "MN": MNEMONIC}), 2, "usage_error")


def test_address_and_sign_message_verify_independently(env, keyed):
    import base58
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from nacl.signing import VerifyKey

    assert (keyed["evm_address"], keyed["solana_address"]) == (EVM_ADDR, SOL_ADDR)
    doc = ok(ows("address", "--wallet", "keyed", env=env))
    assert (doc["evm"], doc["solana"]) == (EVM_ADDR, SOL_ADDR)
    assert ok(ows("address", "--chain", "solana", env={**env, "OWS_WALLET": "keyed"}))["address"] == SOL_ADDR

    doc = ok(ows("sign-message", "--wallet", "keyed", "--message", "hello", env=env))
    assert doc["chain"] == "eip155:8453" and doc["recovery_id"] in (27, 28)
    assert Account.recover_message(encode_defunct(text="hello"), signature=doc["signature"]) == EVM_ADDR

    doc = ok(ows("sign-message", "--wallet", "keyed", "--message", "hello", "--chain", "solana", env=env))
    VerifyKey(base58.b58decode(SOL_ADDR)).verify(b"hello", base58.b58decode(doc["signature"]))
    assert base58.b58decode(doc["signature"]).hex() == doc["signature_hex"]

    fail(ows("sign-message", "--wallet", "keyed", "--message", "x", env={**env, "OWS_PASSPHRASE": "wrong"}), 2, "ows_bad_passphrase")
    fail(ows("address", "--wallet", "nope", env=env), 2, "ows_wallet_not_found")
    fail(ows("address", env=env), 2, "usage_error")


def test_api_token_lifecycle(env, keyed, tmp_path):
    # --save: the token goes to a new 0600 file and never to stdout.
    code, doc, err = ows("key-create", "--name", "bot", "--wallet", "keyed", "--allow-chain", "base", "--expires-at", "2099-01-01", "--save", env=env)
    assert code == 0 and "token" not in doc, doc
    path = Path(doc["token_file"])
    token = path.read_text().strip()
    assert token.startswith("ows_key_") and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in str(doc) + err
    assert doc["key"]["expires_at"] == "2099-01-01T00:00:00Z" and len(doc["key"]["policy_ids"]) == 1

    agent = {k: v for k, v in env.items() if k != "OWS_PASSPHRASE"} | {"OWS_PASSPHRASE_FILE": str(path), "OWS_WALLET": "keyed"}
    assert ok(ows("sign-message", "--message", "hi", env=agent))["address"] == EVM_ADDR
    e = fail(ows("sign-message", "--message", "hi", "--chain", "solana", env=agent), 3, "ows_policy_denied")
    assert "solana" in e["message"]
    fail(ows("sign-message", "--message", "hi", "--chain", "tempo", env=agent), 3, "ows_policy_denied")
    # A token cannot mint tokens.
    fail(ows("key-create", "--name", "x", "--wallet", "keyed", env=agent), 2, "config_error")

    # Without --save the token is printed once, with a loud note on stderr; unrestricted keys are flagged.
    code, doc, err = ows("key-create", "--name", "open", "--wallet", "keyed", env=env)
    assert code == 0 and doc["token"].startswith("ows_key_") and "WARNING" in err and doc["token"] not in err
    assert any("No policy" in w for w in doc["warnings"])

    # --save PATH refuses to overwrite, before any key is created.
    existing = tmp_path / "exists.token"
    existing.write_text("keep")
    fail(ows("key-create", "--name", "z", "--wallet", "keyed", "--save", str(existing), env=env), 2, "usage_error")
    assert existing.read_text() == "keep"
    fail(ows("key-create", "--name", "z", "--wallet", "keyed", "--expires-at", "2001-01-01", env=env), 2, "usage_error")
    fail(ows("key-create", "--name", "z", "--wallet", "keyed", "--policy", "missing", env=env), 2, "usage_error")

    keys = ok(ows("key-list", env=env))["keys"]
    assert {k["name"] for k in keys} == {"bot", "open"}
    assert all("token" not in k and "token_hash" not in k for k in keys)
    bot = next(k for k in keys if k["name"] == "bot")
    assert bot["wallets"] == [{"id": keyed["id"], "name": "keyed"}] and bot["expired"] is False

    fail(ows("key-revoke", "--id", bot["id"], env=env), 3, "confirmation_required")
    assert ok(ows("key-revoke", "--id", bot["id"], "--yes", env=env))["revoked"]["id"] == bot["id"]
    fail(ows("sign-message", "--message", "hi", env=agent), 2, "ows_token_unknown")
    fail(ows("key-revoke", "--id", bot["id"], "--yes", env=env), 2, "ows_key_not_found")


def test_vault_flag_after_the_subcommand_and_help(env, tmp_path):
    other = tmp_path / "other-vault"
    ok(ows("wallet-import", "--name", "m", "--mnemonic-env", "MN", "--vault", str(other), env={**env, "MN": MNEMONIC}))
    assert ok(ows("wallet-list", "--vault", str(other), env=env))["count"] == 1
    assert ok(ows("--vault", str(other), "wallet-list", env=env))["count"] == 1
    assert ok(ows("wallet-list", env=env))["count"] == 0


# -- against the sandbox ---------------------------------------------------------------------


def _ows_env(sandbox, tmp_path, wallet: dict, **extra) -> dict:
    """COMPUTE_AUTH_MODE=ows with `wallet`'s keys imported into a temp vault; no raw key in the env."""
    vault = str(tmp_path / "vault")
    base = clean_env({"OWS_VAULT_PATH": vault, "OWS_PASSPHRASE": PASS}, home=tmp_path)
    doc = ok(ows("wallet-import", "--name", "sb", "--private-key-env", "PK", "--solana-key-env", "SK",
                 env={**base, "PK": wallet["evm_private_key"], "SK": wallet["solana_secret_key"]}))
    assert doc["wallet"]["evm_address"].lower() == wallet["evm_address"].lower()
    assert doc["wallet"]["solana_address"] == wallet["solana_address"]
    rpc = {k: v for k, v in sandbox.env.items() if k.endswith("_RPC_URL")}
    return {**base, **rpc, "COMPUTE_BASE_URL": sandbox.base_url, "COMPUTE_AUTH_MODE": "ows", "OWS_WALLET": "sb", **extra}


def test_list_instances_authenticates_with_ows(sandbox, tmp_path):
    env = _ows_env(sandbox, tmp_path, sandbox.wallets[0])
    assert "PRIVATE_KEY" not in env and "SOLANA_SECRET_KEY" not in env
    assert isinstance(ok(run_script("list_instances.py", env=env))["instances"], list)
    assert isinstance(ok(run_script("list_instances.py", env={**env, "COMPUTE_AUTH_CHAIN": "solana"}))["instances"], list)
    # The wrong passphrase is a clear local error, not a 401.
    fail(run_script("list_instances.py", env={**env, "OWS_PASSPHRASE": "nope"}), 2, "ows_bad_passphrase")


@pytest.mark.parametrize("network", ["base", "solana", "megaeth", "robinhood"])
def test_provision_paid_through_ows_settles(sandbox, tools, tmp_path, network):
    wallet = tools.fresh_wallet(sandbox.facilitator, usd=100)
    env = _ows_env(sandbox, tmp_path, wallet)
    owner = wallet["solana_address"] if network == "solana" else wallet["evm_address"]
    payee = sandbox.facilitator.payee(network)
    before, payee_before = sandbox.facilitator.balance_of(network, owner), sandbox.facilitator.balance_of(network, payee)
    code, doc, err = run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--network", network, "--label", "ows-e2e", "--yes", env=env, timeout=120)
    assert code == 0 and doc["ok"], (code, doc, err)
    pay = doc["payment"]
    assert pay["method"] == "x402" and pay["network"] == network and pay["tx_hash"]
    assert (pay["payer"] or owner).lower() == owner.lower()
    amount = int(pay["amount_atomic"])
    assert amount > 0
    assert sandbox.facilitator.balance_of(network, owner) == before - amount
    assert sandbox.facilitator.balance_of(network, payee) == payee_before + amount
    # The instance belongs to the paying wallet, which OWS auth on the same chain can list.
    auth_env = {**env, "COMPUTE_AUTH_CHAIN": "solana" if network == "solana" else "base"}
    ids = [r["id"] for r in ok(run_script("list_instances.py", "--label", "ows-e2e", env=auth_env))["instances"]]
    assert doc["order"]["id"] in ids


def test_agent_token_limited_to_base_pays_on_base_and_is_refused_elsewhere(sandbox, tools, tmp_path):
    """The point of OWS API tokens: an agent holds a token, not the passphrase, and its policy decides the chains."""
    wallet = tools.fresh_wallet(sandbox.facilitator, usd=100)
    owner_env = _ows_env(sandbox, tmp_path, wallet)
    doc = ok(ows("key-create", "--name", "agent", "--wallet", "sb", "--allow-chain", "base", "--save", str(tmp_path / "agent.token"), env=owner_env))
    agent = {k: v for k, v in owner_env.items() if k != "OWS_PASSPHRASE"} | {"OWS_PASSPHRASE_FILE": doc["token_file"]}

    before = sandbox.facilitator.balance_of("megaeth", wallet["evm_address"])
    e = fail(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--network", "megaeth", "--yes", env=agent, timeout=120), 3, "ows_policy_denied")
    assert "eip155:4326" in e["message"]
    assert sandbox.facilitator.balance_of("megaeth", wallet["evm_address"]) == before

    before = sandbox.facilitator.balance_of("base", wallet["evm_address"])
    code, doc, err = run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--network", "base", "--yes", env=agent, timeout=120)
    assert code == 0 and doc["ok"], (code, doc, err)
    assert sandbox.facilitator.balance_of("base", wallet["evm_address"]) == before - int(doc["payment"]["amount_atomic"])
