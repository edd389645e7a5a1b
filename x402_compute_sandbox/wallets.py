"""Deterministic sandbox keys: test wallets, payees and the Solana fee payer.

Everything derives from (seed, role, index) through SHA-256, so two sandboxes started with the same seed
hand out the same wallets and payees (reproducible tests and docs) and different seeds never collide.
These keys are public by construction: they exist only on the in-process chains.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import base58

TEST_WALLET_COUNT = 3     # funded test wallets, indices 0..2 of role "test"
TEST_WALLET_USD = 1_000   # whole dollars of stablecoin per test wallet per network (Tempo's USDC.e too)

# secp256k1 group order: a private key must be in [1, n).
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _derive(seed: int, role: str, index: int) -> bytes:
    counter = 0
    while True:
        digest = hashlib.sha256(f"x402-compute-sandbox/v1/{seed}/{role}/{index}/{counter}".encode()).digest()
        if 0 < int.from_bytes(digest, "big") < _SECP256K1_N:
            return digest
        counter += 1  # astronomically unlikely; keeps every derived key valid for both curves


@dataclass(frozen=True)
class SandboxWallet:
    evm_private_key: str      # 0x + 64 hex
    evm_address: str          # checksummed
    solana_secret_key: str    # base58 of the 64-byte keypair (secret ‖ public), the Solana CLI convention
    solana_address: str       # base58 public key

    def as_dict(self) -> dict:
        return {"evm_private_key": self.evm_private_key, "evm_address": self.evm_address,
                "solana_secret_key": self.solana_secret_key, "solana_address": self.solana_address}


def evm_key(seed: int, role: str, index: int = 0) -> str:
    return "0x" + _derive(seed, role + "/evm", index).hex()


def evm_address(private_key: str) -> str:
    from eth_account import Account  # heavy import, only when an address is needed
    return Account.from_key(private_key).address


def solana_keypair(seed: int, role: str, index: int = 0):
    from solders.keypair import Keypair
    return Keypair.from_seed(_derive(seed, role + "/svm", index))


def wallet(seed: int, role: str, index: int = 0) -> SandboxWallet:
    key = evm_key(seed, role, index)
    kp = solana_keypair(seed, role, index)
    return SandboxWallet(evm_private_key=key, evm_address=evm_address(key),
                         solana_secret_key=base58.b58encode(bytes(kp)).decode(),
                         solana_address=str(kp.pubkey()))
