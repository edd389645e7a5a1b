"""Management authentication: signed `X-Auth-*` headers and `X-API-Key` (compute-api.md §7).

The signed message is rebuilt from the header strings exactly as sent (chain and address are not
normalised before hashing), the path only (no query), and the SHA-256 of the raw body bytes:

    X402-COMPUTE-AUTH\\nv1\\n<chain>\\n<address>\\n<METHOD>\\n<path>\\n<sha256 hex>\\n<ts ms>\\n<nonce>

EVM: EIP-191 personal_sign (keccak of "\x19Ethereum Signed Message:\n<len>" + message), the signer
recovered and compared case-insensitively. The secp256k1 backend is chosen once (`ecc()`):
coincurve (libsecp256k1, ~0.1 ms per recovery; in requirements/dev.lock and the `sandbox` extra)
and, only if it is missing, eth-keys' pure-Python backend (~6 ms), with a warning, because every
signed request pays for one recovery.
Solana: raw ed25519 over the message bytes, verified with PyNaCl.

A nonce is consumed as soon as a signature verifies, whatever the request's answer turns out to be
(a 402 included): the hosted service behaves so (§7.4), and it is what makes a replayed header set
useless.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Optional

EVM_CHAINS = ("base", "megaeth", "robinhood")
AUTH_CHAINS = EVM_CHAINS + ("solana",)
API_KEY_PREFIX = "x402c_"
_EVM_ADDR = re.compile(r"^0x[0-9a-fA-F]{40}$")
_B58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
_HEADERS = ("X-Auth-Address", "X-Auth-Chain", "X-Auth-Signature", "X-Auth-Timestamp", "X-Auth-Nonce")


class AuthError(Exception):
    """Answered as 401 with this message."""

    def __init__(self, message: str, details: Optional[dict] = None):
        super().__init__(message)
        self.message, self.details = message, details or {}


@dataclass(frozen=True)
class Identity:
    wallet: str          # lower-case EVM address or base58 Solana address: the owner key of orders
    chain: str           # chain named by the signature, or "api_key"
    method: str          # "signature" | "api_key"
    api_key_id: Optional[str] = None


def normalize_wallet(address: str) -> str:
    """One spelling per wallet: EVM addresses compare case-insensitively, Solana ones do not."""
    return address.lower() if address.startswith("0x") else address


def auth_message(chain: str, address: str, method: str, path: str, body: bytes, timestamp: str,
                 nonce: str) -> str:
    return "\n".join(["X402-COMPUTE-AUTH", "v1", chain, address, method.upper(), path,
                      hashlib.sha256(body).hexdigest(), timestamp, nonce])


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """(id, key). Only the SHA-256 of the key is ever stored."""
    return str(uuid.uuid4()), API_KEY_PREFIX + secrets.token_hex(24)


def _b58decode(s: str) -> bytes:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    n = 0
    for ch in s:
        n = n * 58 + alphabet.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(s) - len(s.lstrip("1"))
    return b"\x00" * pad + raw


_ECC = None


def ecc():
    """eth-keys' KeyAPI on the fastest secp256k1 backend available, chosen once per process."""
    global _ECC
    if _ECC is None:
        from eth_keys import KeyAPI
        try:
            from eth_keys.backends.coincurve import CoinCurveECCBackend
            backend = CoinCurveECCBackend()   # raises when coincurve cannot be imported
        except Exception:
            import sys

            from eth_keys.backends.native import NativeECCBackend
            backend = NativeECCBackend()
            print("sandbox: coincurve is not installed; signature recovery uses eth-keys' pure-Python backend "
                  "(~6 ms per signed request). `pip install coincurve` (see requirements/dev.lock) fixes it.",
                  file=sys.stderr)
        _ECC = KeyAPI(backend)
    return _ECC


def recover_eip191(message: bytes, signature: bytes) -> Optional[str]:
    """The lower-case address that signed `message` with personal_sign, or None if no key did.

    v is 27/28 (or 0/1), as eth-account accepts it; r and s must be in range (high s is accepted, as
    eth-account does)."""
    from eth_hash.auto import keccak

    if len(signature) != 65:
        return None
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    digest = keccak(b"\x19Ethereum Signed Message:\n" + str(len(message)).encode() + message)
    api = ecc()
    try:
        sig = api.Signature(vrs=(v, int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")))
        return api.ecdsa_recover(digest, sig).to_address()
    except Exception:  # v not 0/1, r or s out of range, no point on the curve: not a valid signature
        return None


def _verify_evm(message: str, address: str, signature: str) -> bool:
    if not re.fullmatch(r"(0x)?[0-9a-fA-F]{130}", signature):
        raise AuthError("X-Auth-Signature must be 0x + 130 hex characters (65 bytes r||s||v)")
    recovered = recover_eip191(message.encode(), bytes.fromhex(signature[2:] if signature.startswith("0x") else signature))
    return recovered is not None and recovered == address.lower()


def _verify_solana(message: str, address: str, signature: str, encoding: str) -> bool:
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    try:
        if encoding == "hex":
            sig = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
        else:
            sig = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        raise AuthError(f"X-Auth-Signature is not valid {encoding}")
    if len(sig) != 64:
        raise AuthError("X-Auth-Signature must be a 64-byte ed25519 signature")
    pub = _b58decode(address)
    if len(pub) != 32:
        raise AuthError("X-Auth-Address is not a 32-byte base58 Solana public key")
    try:
        VerifyKey(pub).verify(message.encode(), sig)
        return True
    except (BadSignatureError, ValueError):
        return False


class Authenticator:
    def __init__(self, store, skew_seconds: float = 300.0, clock=time.time):
        self.store = store
        self.skew = float(skew_seconds)
        self.clock = clock

    # --- API keys -------------------------------------------------------------------------------
    def from_api_key(self, key: str) -> Identity:
        if not key.startswith(API_KEY_PREFIX):
            raise AuthError("Invalid API key")
        rec = self.store.api_key_by_hash(hash_api_key(key))
        if rec is None:
            raise AuthError("Invalid API key")
        if rec["revoked_at"]:
            raise AuthError("API key has been revoked", {"revoked_at": rec["revoked_at"]})
        return Identity(wallet=rec["owner"], chain="api_key", method="api_key", api_key_id=rec["id"])

    # --- signatures -----------------------------------------------------------------------------
    def from_signature(self, headers, method: str, path: str, body: bytes) -> Identity:
        missing = [h for h in _HEADERS if not headers.get(h)]
        if missing:
            raise AuthError("Incomplete signature auth headers", {"missing": missing})
        chain = headers["X-Auth-Chain"]
        address = headers["X-Auth-Address"]
        signature = headers["X-Auth-Signature"].strip()
        ts = headers["X-Auth-Timestamp"]
        nonce = headers["X-Auth-Nonce"]
        if chain not in AUTH_CHAINS:
            raise AuthError(f"Unsupported X-Auth-Chain {chain!r}", {"accepted": list(AUTH_CHAINS)})
        if chain == "solana":
            if not _B58.match(address):
                raise AuthError("X-Auth-Address is not a base58 Solana address")
        elif not _EVM_ADDR.match(address):
            raise AuthError("X-Auth-Address is not a 0x-prefixed 20-byte EVM address")
        if not (ts.isascii() and ts.isdigit()) or len(ts) > 16:   # isdigit() alone takes "²"
            raise AuthError("X-Auth-Timestamp must be Unix epoch milliseconds")
        skew = abs(self.clock() - int(ts) / 1000.0)
        if skew > self.skew:
            raise AuthError("X-Auth-Timestamp outside the accepted window",
                            {"max_skew_seconds": self.skew, "skew_seconds": round(skew, 3)})
        if not _NONCE.match(nonce):
            raise AuthError("X-Auth-Nonce must be 8-128 characters of [A-Za-z0-9_-]")
        message = auth_message(chain, address, method, path, body, ts, nonce)
        encoding = (headers.get("X-Auth-Sig-Encoding") or ("base64" if chain == "solana" else "hex")).lower()
        if chain == "solana":
            ok = _verify_solana(message, address, signature, encoding)
        else:
            ok = _verify_evm(message, address, signature)
        if not ok:
            raise AuthError("Invalid signature", {"signed_message_lines": message.split("\n")[:7]})
        # Remember nonces for twice the window: any timestamp that could still pass is covered.
        # Nonces are single-use per wallet (two wallets may pick the same one, as the §7.3 vectors do).
        if not self.store.use_nonce(f"{normalize_wallet(address)}:{nonce}", self.clock(),
                                    keep_seconds=2 * self.skew + 60):
            raise AuthError("Nonce already used (replayed request)")
        return Identity(wallet=normalize_wallet(address), chain=chain, method="signature")

    def authenticate(self, headers, method: str, path: str, body: bytes,
                     signature_only: bool = False) -> Optional[Identity]:
        """The caller's identity, or None when the request carries no credentials at all."""
        api_key = headers.get("X-API-Key")
        if api_key is not None:
            if signature_only:
                raise AuthError("This endpoint requires wallet signature auth (X-Auth-*); "
                                "an API key cannot create or revoke API keys")
            return self.from_api_key(api_key.strip())
        if any(headers.get(h) for h in _HEADERS):
            return self.from_signature(headers, method, path, body)
        return None
