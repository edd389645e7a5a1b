"""OWS vault signers (wallets/ows.py) against the raw-key signers and independent verifiers.

Every vault lives in a temporary directory passed as ``vault_path_opt`` and HOME points
at tmp, so the real ~/.ows is never touched. Each OWS signature costs ~0.2 s of scrypt:
the tests sign only what they check.
"""

import base64
import json

import pytest
from x402_compute.api.auth import SignatureAuth, auth_message
from x402_compute.config import load_settings
from x402_compute.errors import ConfigError, PolicyError
from x402_compute.wallets import evm_signer, solana_signer
from x402_compute.wallets import ows as ows_wallets
from x402_compute.wallets.evm import EvmSigner
from x402_compute.wallets.ows import OwsEvmSigner, OwsSolanaSigner, typed_data_json
from x402_compute.wallets.solana import SolanaSigner

ows = pytest.importorskip("ows")


MNEMONIC = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
MNEMONIC_EVM = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
MNEMONIC_SOL = "HAgk14JpMQLgt6rVgv7cBQFJWFto5Dqxi472uT3DKpqk"

EVM_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
EVM_ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SOL_SEED = bytes(range(1, 33))
SOL_KEYPAIR = "2Ana1pUpv2ZbMVkwF5FXapYeBEjdxDatLn7nvJkhgTSdZd8hbDHTd21as7EAsg7ypityqfsw2pMQKJcVDVcAEsd"
SOL_ADDR = "9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj"
TS = 1767225600000
NONCE = "0123456789abcdef0123456789abcdef"
PASS = "correct horse"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"


@pytest.fixture
def vault(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("OWS_PASSPHRASE", "OWS_PASSPHRASE_FILE", "OWS_WALLET", "OWS_VAULT_PATH"):
        monkeypatch.delenv(var, raising=False)
    ows_wallets._PROMPTED.clear()
    return str(tmp_path / "vault")


@pytest.fixture
def keyed(vault):
    """A wallet holding the well-known test keys, so raw and OWS signatures can be compared."""
    ows.import_wallet_private_key(
        "keyed", "", passphrase=PASS, vault_path_opt=vault, secp256k1_key=EVM_KEY, ed25519_key=SOL_SEED.hex()
    )
    return vault


def _settings(vault, wallet="keyed", passphrase=PASS, **extra):
    env = {"COMPUTE_AUTH_MODE": "ows", "OWS_WALLET": wallet, "OWS_VAULT_PATH": vault, **extra}
    if passphrase is not None:
        env["OWS_PASSPHRASE"] = passphrase
    return load_settings(environ=env)


def _auth(signer, chain):
    return SignatureAuth(signer, chain, clock=lambda: TS / 1000, nonce_factory=lambda: NONCE)


def test_fixture_mnemonic_gives_the_documented_addresses(vault):
    ows.import_wallet_mnemonic("t", MNEMONIC, vault_path_opt=vault)
    s = _settings(vault, wallet="t", passphrase="")
    assert evm_signer(s).address == MNEMONIC_EVM
    assert solana_signer(s).address == MNEMONIC_SOL
    # By id as well as by name, and nothing was written under HOME/.ows.
    wid = ows.get_wallet("t", vault_path_opt=vault)["id"]
    assert OwsEvmSigner.from_settings(_settings(vault, wallet=wid, passphrase="")).address == MNEMONIC_EVM


def test_auto_mode_routes_to_ows_only_without_a_raw_key(keyed):
    env = {"OWS_WALLET": "keyed", "OWS_VAULT_PATH": keyed, "OWS_PASSPHRASE": PASS}
    assert isinstance(evm_signer(load_settings(environ=env)), OwsEvmSigner)
    assert isinstance(evm_signer(load_settings(environ={**env, "PRIVATE_KEY": EVM_KEY})), EvmSigner)


def test_evm_auth_headers_equal_the_raw_key_signer_and_recover(keyed):
    from eth_account import Account
    from eth_account.messages import encode_defunct

    body = b'{"plan":"vc2-1c-1gb"}'
    got = _auth(evm_signer(_settings(keyed)), "base").headers("POST", "/compute/provision", body)
    want = _auth(EvmSigner(EVM_KEY), "base").headers("POST", "/compute/provision", body)
    assert got == want
    msg = auth_message("base", EVM_ADDR.lower(), "POST", "/compute/provision", body, str(TS), NONCE)
    assert Account.recover_message(encode_defunct(text=msg), signature=got["X-Auth-Signature"]) == EVM_ADDR


def test_solana_auth_headers_equal_the_raw_key_signer_and_verify(keyed):
    import base58
    from nacl.signing import VerifyKey

    signer = solana_signer(_settings(keyed, COMPUTE_AUTH_CHAIN="solana"))
    assert isinstance(signer, OwsSolanaSigner) and signer.address == SOL_ADDR
    got = _auth(signer, "solana").headers("GET", "/compute/instances", b"")
    assert got == _auth(SolanaSigner(SOL_KEYPAIR), "solana").headers("GET", "/compute/instances", b"")
    msg = auth_message("solana", SOL_ADDR, "GET", "/compute/instances", b"", str(TS), NONCE)
    VerifyKey(base58.b58decode(SOL_ADDR)).verify(msg.encode(), base64.b64decode(got["X-Auth-Signature"]))


def test_solana_signs_raw_bytes_like_a_transaction_signer(keyed):
    # A versioned message starts with 0x80 and is not UTF-8: OWS must sign the bytes themselves.
    data = b"\x80" + bytes(range(256))
    assert solana_signer(_settings(keyed)).sign_message(data) == SolanaSigner(SOL_KEYPAIR).sign_message(data)


def _eip3009(payer, *, chain_id=8453, nonce="0x" + "ab" * 32):
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "TransferWithAuthorization": [
                {"name": "from", "type": "address"},
                {"name": "to", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "validAfter", "type": "uint256"},
                {"name": "validBefore", "type": "uint256"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": "TransferWithAuthorization",
        "domain": {"name": "USD Coin", "version": "2", "chainId": chain_id, "verifyingContract": USDC_BASE},
        "message": {
            "from": payer,
            "to": "0x000000000000000000000000000000000000dEaD",
            "value": "1500000",
            "validAfter": "0",
            "validBefore": "1767229200",
            "nonce": nonce,
        },
    }


def test_eip3009_typed_data_byte_identical_to_eth_account(keyed):
    ows_signer, raw = evm_signer(_settings(keyed)), EvmSigner(EVM_KEY)
    typed = _eip3009(EVM_ADDR)
    sig = ows_signer.sign_typed_data(typed)
    assert sig == raw.sign_typed_data(_eip3009(EVM_ADDR)) and len(sig) == 65 and sig[64] in (27, 28)


def test_typed_data_conversion_large_uints_bytes_and_missing_domain_type(keyed):
    # A Permit2-style random uint256 nonce above u128 (OWS refuses it as a decimal string), given as an int,
    # a bytes32 given as bytes, and no EIP712Domain in types: the conversion keeps the signed data identical.
    typed = {
        "types": {"Permit": [{"name": "owner", "type": "address"}, {"name": "nonce", "type": "uint256"}, {"name": "tag", "type": "bytes32"}, {"name": "ids", "type": "uint256[]"}]},
        "primaryType": "Permit",
        "domain": {"name": "Permit2", "chainId": 4326, "verifyingContract": "0x000000000022D473030F116dDEE9F6B43aC78BA3"},
        "message": {"owner": EVM_ADDR, "nonce": (1 << 255) + 7, "tag": b"\x01" * 32, "ids": [1, str(1 << 200), "0xabc"]},
    }
    doc = json.loads(typed_data_json(typed))
    assert [f["name"] for f in doc["types"]["EIP712Domain"]] == ["name", "chainId", "verifyingContract"]
    assert doc["message"]["nonce"] == "0x" + "%064x" % ((1 << 255) + 7)
    assert doc["message"]["ids"] == ["1", "0x01" + "00" * 25, "0x0abc"]
    assert doc["message"]["tag"] == "0x" + "01" * 32
    assert typed["message"]["nonce"] == (1 << 255) + 7  # the caller's dict is not modified
    assert evm_signer(_settings(keyed)).sign_typed_data(typed) == EvmSigner(EVM_KEY).sign_typed_data(typed)


def test_sign_hash_v_is_27_28_like_the_raw_signer(keyed):
    digest = bytes(range(32))
    assert evm_signer(_settings(keyed)).sign_hash(digest) == EvmSigner(EVM_KEY).sign_hash(digest)


def test_api_token_with_allowed_chains_policy(keyed):
    policy = {
        "id": "base-and-solana",
        "name": "base and solana",
        "version": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "rules": [{"type": "allowed_chains", "chain_ids": ["eip155:8453", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"]}],
        "action": "deny",
    }
    ows.create_policy(json.dumps(policy), vault_path_opt=keyed)
    wid = ows.get_wallet("keyed", vault_path_opt=keyed)["id"]
    token = ows.create_api_key("agent", [wid], ["base-and-solana"], PASS, vault_path_opt=keyed)["token"]
    s = _settings(keyed, passphrase=token)
    evm = evm_signer(s)
    # Allowed: Base auth, Base EIP-3009, Solana.
    assert evm.sign_message("hi") == EvmSigner(EVM_KEY).sign_message("hi")
    assert evm.sign_typed_data(_eip3009(EVM_ADDR)) == EvmSigner(EVM_KEY).sign_typed_data(_eip3009(EVM_ADDR))
    assert solana_signer(s).sign_message(b"x") == SolanaSigner(SOL_KEYPAIR).sign_message(b"x")
    # Refused: typed data bound to MegaETH (the domain's chainId decides) and a Tempo hash.
    with pytest.raises(PolicyError) as e:
        evm.sign_typed_data(_eip3009(EVM_ADDR, chain_id=4326))
    assert e.value.code == "ows_policy_denied" and "eip155:4326" in e.value.message
    with pytest.raises(PolicyError):
        evm.sign_hash(b"\x00" * 32, chain="eip155:4217")
    # Revoked: a clear error, not the binding's text alone.
    keys = ows.list_api_keys(vault_path_opt=keyed)
    ows.revoke_api_key(keys[0]["id"], vault_path_opt=keyed)
    with pytest.raises(ConfigError) as e:
        evm_signer(_settings(keyed, passphrase=token)).sign_message("hi")
    assert e.value.code == "ows_token_unknown" and token not in str(e.value.to_dict())


def test_wrong_passphrase_is_a_clear_error(keyed):
    with pytest.raises(ConfigError) as e:
        evm_signer(_settings(keyed, passphrase="wrong")).sign_message("hi")
    assert e.value.code == "ows_bad_passphrase"
    assert "OWS_PASSPHRASE" in e.value.hint and "wrong" not in str(e.value.to_dict())


def test_missing_wallet_and_missing_setting(vault):
    with pytest.raises(ConfigError) as e:
        evm_signer(_settings(vault, wallet="nope"))
    assert e.value.code == "ows_wallet_not_found" and "nope" in e.value.message and vault in e.value.message
    with pytest.raises(ConfigError) as e:
        evm_signer(load_settings(environ={"COMPUTE_AUTH_MODE": "ows"}))
    assert "OWS_WALLET" in e.value.message


def test_wallet_address_cross_check(keyed):
    with pytest.raises(ConfigError) as e:
        evm_signer(_settings(keyed, WALLET_ADDRESS="0x000000000000000000000000000000000000dEaD"))
    assert "WALLET_ADDRESS" in e.value.message


def test_passphrase_file_and_prompt_once(keyed, tmp_path, monkeypatch):
    f = tmp_path / "pp"
    f.write_text(PASS + "\n")
    s = _settings(keyed, passphrase=None, OWS_PASSPHRASE_FILE=str(f))
    assert evm_signer(s).sign_message("a") == EvmSigner(EVM_KEY).sign_message("a")

    asked = []
    monkeypatch.setattr(ows_wallets, "interactive", lambda: True)
    monkeypatch.setattr(ows_wallets, "prompt_secret", lambda prompt: asked.append(prompt) or PASS)
    s = _settings(keyed, passphrase=None)
    evm_signer(s).sign_message("a")
    solana_signer(s).sign_message(b"b")  # a new signer object, same wallet: no second prompt
    assert len(asked) == 1 and "keyed" in asked[0]


def test_no_passphrase_off_terminal_means_empty(vault, monkeypatch):
    ows.import_wallet_private_key("open", "", vault_path_opt=vault, secp256k1_key=EVM_KEY, ed25519_key=SOL_SEED.hex())
    monkeypatch.setattr(ows_wallets, "interactive", lambda: False)
    assert evm_signer(_settings(vault, wallet="open", passphrase=None)).sign_message("a") == EvmSigner(EVM_KEY).sign_message("a")


def test_repr_never_shows_the_secret(keyed):
    signer = evm_signer(_settings(keyed))
    signer.sign_message("a")
    assert PASS not in repr(signer) and PASS not in repr(signer._wallet)


def test_missing_binding_is_a_config_error_with_the_install_hint(vault, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ows", None)  # import ows -> ImportError
    with pytest.raises(ConfigError) as e:
        evm_signer(_settings(vault))
    assert e.value.code == "ows_not_installed" and "pip install open-wallet-standard" in e.value.hint
