"""Signers. Each exposes ``address`` and the signing primitives the auth and
payment layers need; heavy crypto libraries are imported only here, on use.

- ``EvmSigner``: ``sign_message(text) -> bytes`` (EIP-191) and
  ``sign_typed_data(typed: dict) -> bytes`` (EIP-712, full eth_signTypedData_v4
  shape including ``EIP712Domain``) and ``sign_hash(digest, *, chain=None) -> bytes``
  (raw 32-byte digest, e.g. a Tempo transaction), 65 bytes r‖s‖v with v = 27/28.
- ``SolanaSigner``: ``sign_message(data: bytes) -> bytes``, raw ed25519.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Settings
from ..errors import ConfigError
from .evm import EvmSigner
from .ows import OwsEvmSigner, OwsSolanaSigner
from .solana import SolanaSigner

if TYPE_CHECKING:  # pragma: no cover
    from .evm import EvmSigner
    from .solana import SolanaSigner


_RAW_EVM: dict = {}


def evm_uses_ows(settings: Settings) -> bool:
    """Whether the EVM wallet is an OWS vault: the one rule ``evm_signer`` and the payment choice share."""
    return settings.auth_mode == "ows" or bool(settings.auth_mode == "auto" and settings.ows_wallet and not settings.private_key)


def evm_signer(settings: Settings) -> "EvmSigner":
    if evm_uses_ows(settings):
        return _checked_evm(OwsEvmSigner.from_settings(settings), settings)
    if not settings.private_key:
        raise ConfigError(
            "No EVM wallet configured.",
            hint="Set PRIVATE_KEY (or PRIVATE_KEY_FILE), or use an API key for management.",
        )
    signer = _RAW_EVM.get(settings.private_key)
    if signer is None:  # parse a key once per process: it costs an elliptic-curve multiplication

        signer = _RAW_EVM.setdefault(settings.private_key, EvmSigner(settings.private_key))
    return _checked_evm(signer, settings)


def _source(signer) -> str:
    """How an error names where a signer's key lives."""
    name = getattr(signer, "wallet_name", None)
    if name is not None:
        return f"OWS wallet {name!r}"
    return "SOLANA_SECRET_KEY" if signer.kind == "solana" else "PRIVATE_KEY"


def _checked_evm(signer, settings: Settings):
    """Refuse a key whose address disagrees with WALLET_ADDRESS (raw key or vault alike)."""
    expected = settings.wallet_address
    if expected and expected.startswith("0x") and expected.lower() != signer.address.lower():
        raise ConfigError(
            f"{_source(signer)} belongs to {signer.address}, but WALLET_ADDRESS is {expected}.",
            hint=f"Fix or unset WALLET_ADDRESS so that it matches {_source(signer)}.",
        )
    return signer


def _checked_solana(signer, settings: Settings):
    """Refuse a key whose address disagrees with SOLANA_WALLET_ADDRESS (or a non-0x WALLET_ADDRESS)."""
    expected = settings.solana_wallet_address
    if not expected and settings.wallet_address and not settings.wallet_address.startswith("0x"):
        expected = settings.wallet_address
    if expected and expected != signer.address:
        raise ConfigError(
            f"{_source(signer)} belongs to {signer.address}, but the configured Solana address is {expected}.",
            hint=f"Fix or unset SOLANA_WALLET_ADDRESS / WALLET_ADDRESS so that it matches {_source(signer)}.",
        )
    return signer


def solana_signer(settings: Settings) -> "SolanaSigner":
    if settings.auth_mode == "ows" or (
        settings.auth_mode == "auto" and settings.ows_wallet and not settings.solana_secret_key
    ):
        return _checked_solana(OwsSolanaSigner.from_settings(settings), settings)
    if not settings.solana_secret_key:
        raise ConfigError(
            "No Solana wallet configured.",
            hint="Set SOLANA_SECRET_KEY (base58 64-byte keypair or a JSON byte array).",
        )

    return _checked_solana(SolanaSigner(settings.solana_secret_key), settings)
