"""Bridges that let the unmodified x402 SDK (2.25.0) talk to the sandbox's in-process chains.

The SDK is the independent oracle: its client builds payloads our facilitator must accept, and its
facilitator must accept payloads we build by hand. It expects RPC endpoints, so these stand-ins answer the
few calls it makes from LiteSVM and eth-tester (shared/reference/local-chains.md §7.2, §7.3).
They reach into private SDK attributes (`_clients`, `_w3`), which is why x402 is pinned exactly.
"""
from __future__ import annotations

import base64
from types import SimpleNamespace

from solders.transaction import VersionedTransaction
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware
from x402.mechanisms.evm.signers import EthAccountSignerWithRPC, FacilitatorWeb3Signer
from x402.mechanisms.svm.signers import FacilitatorKeypairSigner

from x402_compute_sandbox.chains.svm import SvmChain, SvmError


class LiteSvmRpc:
    """Stand-in for solana-py's `Client` on the SDK *client* path: mint info and the latest blockhash."""

    def __init__(self, chain: SvmChain):
        self.chain = chain

    def get_account_info(self, pubkey, *args, **kwargs):
        return SimpleNamespace(value=self.chain.svm.get_account(pubkey))

    def get_latest_blockhash(self, *args, **kwargs):
        return SimpleNamespace(value=SimpleNamespace(blockhash=self.chain.latest_blockhash(),
                                                     last_valid_block_height=0))


def attach_svm_client(scheme, chain: SvmChain, networks) -> None:
    """Point an SDK SVM client scheme (v1 or v2) at LiteSVM for each CAIP-2 network id."""
    for network in networks:
        scheme._clients[network] = LiteSvmRpc(chain)


class LiteSvmFacilitatorSigner(FacilitatorKeypairSigner):
    """The SDK's own fee-payer signer, with simulate/send/confirm executed by LiteSVM."""

    def __init__(self, keypair, chain: SvmChain):
        super().__init__(keypair)
        self.chain = chain

    def simulate_transaction(self, tx_base64: str, network: str) -> None:
        try:
            self.chain.simulate(VersionedTransaction.from_bytes(base64.b64decode(tx_base64)))
        except SvmError as exc:
            raise RuntimeError(f"Simulation failed: {exc.reason}") from exc

    def send_transaction(self, tx_base64: str, network: str) -> str:
        try:
            return self.chain.send(VersionedTransaction.from_bytes(base64.b64decode(tx_base64)))
        except SvmError as exc:
            raise RuntimeError(f"Send failed: {exc.reason}") from exc

    def confirm_transaction(self, signature: str, network: str, timeout_seconds: int = 30) -> None:
        return None   # LiteSVM executes synchronously: a returned signature is final


def evm_facilitator_signer(private_key: str, chain) -> FacilitatorWeb3Signer:
    """The SDK's FacilitatorWeb3Signer over the eth-tester provider instead of HTTP JSON-RPC."""
    signer = FacilitatorWeb3Signer(private_key, rpc_url="http://127.0.0.1:9")   # never contacted
    w3 = Web3(chain.provider)
    w3.middleware_onion.remove("validation")   # see EvmChain: web3 caches the chain id per provider class
    w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    signer._w3 = w3
    return signer


def evm_client_signer_with_rpc(account, chain) -> EthAccountSignerWithRPC:
    """The SDK's RPC-backed client signer (it reads `nonces()` and `allowance()` for the Permit2 /
    eip2612GasSponsoring path) over the eth-tester provider instead of HTTP JSON-RPC."""
    signer = EthAccountSignerWithRPC(account, rpc_url="http://127.0.0.1:9")   # never contacted
    w3 = Web3(chain.provider)
    w3.middleware_onion.remove("validation")   # see EvmChain: web3 caches the chain id per provider class
    signer._w3 = w3
    return signer
