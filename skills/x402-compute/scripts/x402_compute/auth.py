"""Management authentication: ``X-API-Key``, or the six signed ``X-Auth-*``
headers over the nine-line message (reference: compute-api.md §7).

The body that is hashed must be byte-for-byte the body that is sent; callers
pass the exact bytes (``encode_body``) to both.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any, Callable, Protocol

AUTH_PREFIX = "X402-COMPUTE-AUTH"
AUTH_VERSION = "v1"


def encode_body(obj: Any) -> bytes:
    """Compact JSON in insertion order: the exact bytes hashed and sent."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def auth_message(chain: str, address: str, method: str, path: str, body: bytes, timestamp_ms: str, nonce: str) -> str:
    if "?" in path or "://" in path:
        raise ValueError("the signed path is the path only, without scheme, host or query")
    return "\n".join(
        [
            AUTH_PREFIX,
            AUTH_VERSION,
            chain,
            address,
            method.upper(),
            path,
            hashlib.sha256(body).hexdigest(),
            timestamp_ms,
            nonce,
        ]
    )


class Auth(Protocol):
    identity: str

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]: ...


class NoAuth:
    identity = "none"

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {}


class ApiKeyAuth:
    identity = "api-key"

    def __init__(self, key: str) -> None:
        from .redact import register

        register(key)
        self._key = key

    @property
    def last4(self) -> str:
        return self._key[-4:]

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {"X-API-Key": self._key}


class SignatureAuth:
    """Signs each request afresh: a nonce is consumed even when the answer is a 402."""

    identity = "signature"

    def __init__(
        self,
        signer: Any,
        chain: str,
        *,
        clock: Callable[[], float] = time.time,
        nonce_factory: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.signer = signer
        self.chain = chain
        self._clock = clock
        self._nonce = nonce_factory

    @property
    def address(self) -> str:
        # EVM addresses are sent lower-cased (proven against production).
        return self.signer.address.lower() if self.chain != "solana" else self.signer.address

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        ts = str(int(self._clock() * 1000))
        nonce = self._nonce()
        msg = auth_message(self.chain, self.address, method, path, body, ts, nonce)
        if self.chain == "solana":
            sig = base64.b64encode(self.signer.sign_message(msg.encode("utf-8"))).decode("ascii")
            encoding = "base64"
        else:
            sig = "0x" + self.signer.sign_message(msg).hex()
            encoding = "hex"
        return {
            "X-Auth-Address": self.address,
            "X-Auth-Chain": self.chain,
            "X-Auth-Signature": sig,
            "X-Auth-Timestamp": ts,
            "X-Auth-Nonce": nonce,
            "X-Auth-Sig-Encoding": encoding,
        }


def signature_auth(settings, chain: str | None = None) -> SignatureAuth:
    """Signed headers from the configured wallet of ``chain`` (default: the auth chain)."""
    from .wallets import evm_signer, solana_signer

    chain = chain or settings.auth_chain or "base"
    signer = solana_signer(settings) if chain == "solana" else evm_signer(settings)
    return SignatureAuth(signer, chain)


def management_auth(settings, *, require_signature: bool = False) -> Auth:
    """The API key when one is configured, else wallet signatures.

    ``require_signature``: creating and revoking API keys accept only signatures.
    """
    if settings.api_key and not require_signature and settings.auth_mode in ("auto", "api-key"):
        return ApiKeyAuth(settings.api_key)
    if settings.auth_mode == "api-key" and not require_signature:
        from .errors import ConfigError

        raise ConfigError("COMPUTE_AUTH_MODE=api-key but no API key is configured.", hint="Set COMPUTE_API_KEY.")
    return signature_auth(settings)
