"""Solana signer over a raw ed25519 keypair (solders, imported on use)."""

from __future__ import annotations

import json

from ..errors import ConfigError


def _decode_secret(text: str) -> bytes:
    text = text.strip()
    if text.startswith("["):
        try:
            raw = bytes(json.loads(text))
        except (ValueError, TypeError):
            raise ConfigError("SOLANA_SECRET_KEY looks like a JSON array but is not a list of bytes.") from None
    else:
        import base58

        try:
            raw = base58.b58decode(text)
        except ValueError:
            raise ConfigError("SOLANA_SECRET_KEY is neither base58 nor a JSON byte array.") from None
    if len(raw) != 64:
        raise ConfigError(
            f"SOLANA_SECRET_KEY must decode to a 64-byte keypair, got {len(raw)} bytes.",
            hint="Export the full keypair (secret + public key), e.g. the JSON array from solana-keygen.",
        )
    return raw


class SolanaSigner:
    kind = "solana"

    def __init__(self, secret: str) -> None:
        from solders.keypair import Keypair

        raw = _decode_secret(secret)
        try:
            self._keypair = Keypair.from_bytes(raw)
        except ValueError:
            raise ConfigError("SOLANA_SECRET_KEY's public half does not match its secret half.") from None
        self.address: str = str(self._keypair.pubkey())

    def __repr__(self) -> str:
        return f"SolanaSigner({self.address})"

    @property
    def keypair(self):
        return self._keypair

    def sign_message(self, data: bytes) -> bytes:
        return bytes(self._keypair.sign_message(data))
