"""A Tempo stand-in: decode and verify type-0x76 transactions, settle them on a USDC.e ledger.

No Tempo chain runs offline (local-chains.md §8), so the sandbox keeps the one thing MPP charges
touch, the USDC.e balances, in a ledger and checks every transaction the way a node would before
applying it: chain id, the validity window, the nonce, the sender's secp256k1 signature over the
Tempo signing hash, gas, and balances. It is **not** an EVM: the only calls it executes are
`transfer` / `transferWithMemo` on USDC.e (which is what an MPP charge is).

    codec.py   the wire format: RLP, 0x76 decoding, signing hash, sender recovery, fee-token rule
    ledger.py  balances, nonces, applied transactions, the node's checks, SQLite persistence
    rpc.py     the JSON-RPC methods a Tempo client calls (served at /rpc/tempo)

`TempoLedger` is the ledger with its JSON-RPC face; importers use the names exported here.
"""
from __future__ import annotations

from .codec import (ATTO_PER_MICRO, CHAIN_ID, DECIMALS, EXPIRING_NONCE_KEY, EXPIRING_NONCE_MAX_SECONDS,
                    FEE_PAYER_TX_TYPE, GAS_PER_CALL, GAS_PRICE, PATH_USD, SEL_TRANSFER, SEL_TRANSFER_WITH_MEMO,
                    TOPIC_TRANSFER, TOPIC_TRANSFER_WITH_MEMO, TX_TYPE, USDC_E, Call, TempoTx, Transfer, TxRejected,
                    checksum, decode_transfer, decode_tx, fee_token_of, keccak, recover_sender, rlp_decode,
                    rlp_encode, signing_preimage)
from .ledger import Ledger
from .rpc import TempoRpc

__all__ = ["ATTO_PER_MICRO", "CHAIN_ID", "DECIMALS", "EXPIRING_NONCE_KEY", "EXPIRING_NONCE_MAX_SECONDS",
           "FEE_PAYER_TX_TYPE", "GAS_PER_CALL", "GAS_PRICE", "PATH_USD", "SEL_TRANSFER", "SEL_TRANSFER_WITH_MEMO",
           "TOPIC_TRANSFER", "TOPIC_TRANSFER_WITH_MEMO", "TX_TYPE", "USDC_E", "Call", "TempoTx", "Transfer",
           "TxRejected", "checksum", "decode_transfer", "decode_tx", "fee_token_of", "keccak", "recover_sender",
           "rlp_decode", "rlp_encode", "signing_preimage", "Ledger", "TempoRpc", "TempoLedger"]


class TempoLedger(Ledger):
    """The ledger plus its JSON-RPC face: what app.py builds, mpp.py settles on and /rpc/tempo serves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.json_rpc = TempoRpc(self)

    def rpc(self, method: str, params: list):
        return self.json_rpc.call(method, params)

    def handle_http(self, body: bytes):
        """A JSON-RPC 2.0 request body (single or batch) -> the JSON answer."""
        return self.json_rpc.handle_http(body)
