"""EVM signer over a raw secp256k1 key (eth-keys / eth-account, imported on use).

The key is parsed once and every signature is made over a digest with that parsed key:
eth-account's ``Account.sign_*`` helpers re-derive the public key from the raw key on every
call, an elliptic-curve multiplication as costly as the signature itself."""

from __future__ import annotations

import re

from ..eip712 import digest
from ..errors import ConfigError

_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


def _eip191_digest(m) -> bytes:
    """keccak256(0x19 ‖ version ‖ header ‖ body) of an eth-account SignableMessage (EIP-191)."""
    from eth_utils import keccak

    return keccak(b"\x19" + m.version + m.header + m.body)


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
        from eth_keys import keys

        try:
            self._key = keys.PrivateKey(bytes.fromhex(key[2:] if key.startswith("0x") else key))
        except Exception:  # 0 or >= the curve order: eth-keys' chained error quotes the key as an integer
            raise ConfigError(
                "PRIVATE_KEY is not a valid secp256k1 private key (it must be between 1 and the curve order).",
                hint="Check that the value is the wallet's private key, not a hash or an address.",
            ) from None
        self.address: str = self._key.public_key.to_checksum_address()  # EIP-55 checksummed

    def __repr__(self) -> str:
        return f"EvmSigner({self.address})"

    def sign_message(self, text: str) -> bytes:
        """EIP-191 personal_sign of ``text``."""
        from eth_account.messages import encode_defunct

        return self.sign_hash(_eip191_digest(encode_defunct(text=text)))

    def sign_typed_data(self, typed: dict) -> bytes:
        """EIP-712 (the full eth_signTypedData_v4 shape): hashed directly for the messages this
        client signs (``x402_compute.eip712``), by eth-account for anything else."""
        d = digest(typed)
        if d is None:
            from eth_account.messages import encode_typed_data

            d = _eip191_digest(encode_typed_data(full_message=typed))
        return self.sign_hash(d)

    def sign_hash(self, digest: bytes, *, chain: str | None = None) -> bytes:
        """Raw secp256k1 signature of a 32-byte digest, v = 27/28.

        ``chain`` is accepted so raw keys and OWS vaults share one interface; it only matters to
        a vault (an API token's chain policy), a raw key signs for any chain."""
        sig = self._key.sign_msg_hash(digest)
        return sig.r.to_bytes(32, "big") + sig.s.to_bytes(32, "big") + bytes([sig.v + 27])

