"""Golden tests for the signed X-Auth-* headers (compute-api.md §7.3), checked
both against the committed signatures and with independent verifiers."""

import base64

import pytest
from x402_compute.api.auth import SignatureAuth, auth_message, encode_body
from x402_compute.wallets.evm import EvmSigner
from x402_compute.wallets.solana import SolanaSigner

EVM_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
EVM_ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
SOL_KEYPAIR = "2Ana1pUpv2ZbMVkwF5FXapYeBEjdxDatLn7nvJkhgTSdZd8hbDHTd21as7EAsg7ypityqfsw2pMQKJcVDVcAEsd"
SOL_ADDR = "9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj"
TS = 1767225600000
NONCE = "0123456789abcdef0123456789abcdef"
BODY = {"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "label": "demo", "prepaid_hours": 24, "network": "base"}
EVM_SIG = "0x6b7bfe924657ef0594851d2bf1e0877b1bed21189c2d130fcd095d4067734399744359f8ac3efc8d943b7cdce22b966cd8869ca3cbdd9f67dc5eaaf2d08c80311b"
SOL_SIG = "+w5SyWI4jSBErZ2qY9AlZ4h1CynsWA2alAae4Z+3HClP2Dxmb98BFaTZN7Pkr7aULCuC4f87kL+TFZqS5WviAw=="


def _auth(signer, chain):
    return SignatureAuth(signer, chain, clock=lambda: TS / 1000, nonce_factory=lambda: NONCE)


def test_body_bytes_are_compact_insertion_order():
    assert encode_body(BODY) == b'{"plan":"vc2-1c-1gb","region":"lax","os_id":2284,"label":"demo","prepaid_hours":24,"network":"base"}'


def test_evm_golden_headers_and_independent_recovery():
    from eth_account import Account
    from eth_account.messages import encode_defunct

    body = encode_body(BODY)
    h = _auth(EvmSigner(EVM_KEY), "base").headers("POST", "/compute/provision", body)
    assert h == {
        "X-Auth-Address": EVM_ADDR.lower(),
        "X-Auth-Chain": "base",
        "X-Auth-Signature": EVM_SIG,
        "X-Auth-Timestamp": str(TS),
        "X-Auth-Nonce": NONCE,
        "X-Auth-Sig-Encoding": "hex",
    }
    msg = auth_message("base", EVM_ADDR.lower(), "POST", "/compute/provision", body, str(TS), NONCE)
    assert msg.splitlines()[6] == "8b22f6eba621b2aa3f683dc4ace74affcd8aea04c9dacfbc178cd4ad2eb72133"
    assert not msg.endswith("\n") and len(msg.split("\n")) == 9
    assert Account.recover_message(encode_defunct(text=msg), signature=h["X-Auth-Signature"]) == EVM_ADDR
    # A different body must not verify against the same signature.
    other = auth_message("base", EVM_ADDR.lower(), "POST", "/compute/provision", body + b" ", str(TS), NONCE)
    assert Account.recover_message(encode_defunct(text=other), signature=h["X-Auth-Signature"]) != EVM_ADDR


def test_solana_golden_headers_and_independent_verification():
    import base58
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    h = _auth(SolanaSigner(SOL_KEYPAIR), "solana").headers("GET", "/compute/instances", b"")
    assert h["X-Auth-Address"] == SOL_ADDR
    assert h["X-Auth-Signature"] == SOL_SIG
    assert h["X-Auth-Sig-Encoding"] == "base64"
    msg = auth_message("solana", SOL_ADDR, "GET", "/compute/instances", b"", str(TS), NONCE).encode()
    vk = VerifyKey(base58.b58decode(SOL_ADDR))
    vk.verify(msg, base64.b64decode(h["X-Auth-Signature"]))  # raises if wrong
    with pytest.raises(BadSignatureError):
        vk.verify(msg.replace(b"GET", b"PUT"), base64.b64decode(h["X-Auth-Signature"]))


def test_solana_json_array_key_gives_same_address():
    import json

    import base58

    arr = json.dumps(list(base58.b58decode(SOL_KEYPAIR)))
    assert SolanaSigner(arr).address == SOL_ADDR


def test_signed_path_excludes_query():
    with pytest.raises(ValueError):
        auth_message("base", "0x", "GET", "/compute/instances?wallet=x", b"", "1", "n")
