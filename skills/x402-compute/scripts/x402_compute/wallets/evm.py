"""EVM signer over a raw secp256k1 key (eth-account, imported on use)."""

from __future__ import annotations

import re

from ..errors import ConfigError

_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class EvmSigner:
    kind = "evm"

    def __init__(self, private_key: str) -> None:
        key = private_key.strip()
        if not _HEX_KEY.match(key):
            # Never echo the value: it may be a real key with a typo.
            raise ConfigError(
                "PRIVATE_KEY is not a 32-byte hex key.",
                hint="Use 64 hex characters, optionally prefixed with 0x.",
            )
        from eth_account import Account

        try:
            self._account = Account.from_key(key if key.startswith("0x") else "0x" + key)
        except Exception:  # 0 or >= the curve order: eth-keys' chained error quotes the key as an integer
            raise ConfigError(
                "PRIVATE_KEY is not a valid secp256k1 private key (it must be between 1 and the curve order).",
                hint="Check that the value is the wallet's private key, not a hash or an address.",
            ) from None
        self.address: str = self._account.address  # EIP-55 checksummed

    def __repr__(self) -> str:
        return f"EvmSigner({self.address})"

    def sign_message(self, text: str) -> bytes:
        from eth_account.messages import encode_defunct

        return bytes(self._account.sign_message(encode_defunct(text=text)).signature)

    def sign_typed_data(self, typed: dict) -> bytes:
        return bytes(self._account.sign_typed_data(full_message=typed).signature)

    def sign_hash(self, digest: bytes, *, chain: str | None = None) -> bytes:
        """Raw secp256k1 signature of a 32-byte digest, v = 27/28.

        ``chain`` is accepted so raw keys and OWS vaults share one interface; it only matters to
        a vault (an API token's chain policy), a raw key signs for any chain."""
        from eth_keys import keys

        sig = keys.PrivateKey(self._account.key).sign_msg_hash(digest)
        return sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v + 27])

    @property
    def private_key_hex(self) -> str:
        """For libraries that insist on a raw key (pympp). Never print it."""
        return self._account.key.hex()
