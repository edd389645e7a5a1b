"""The Tempo ledger's JSON-RPC 2.0 face: what a Tempo client (pympp, mppx, viem) needs to build and
send a payment, served by app.py at /rpc/tempo. Reads and writes go through the ledger (ledger.py).
"""
from __future__ import annotations

from typing import Any

from ..jsonrpc import RpcError, answer
from ..jsonrpc import address as _rpc_address
from .codec import (CHAIN_ID, DECIMALS, GAS_PER_CALL, GAS_PRICE, SEL_BALANCE_OF, SEL_DECIMALS, SEL_TRANSFER,
                    SEL_TRANSFER_WITH_MEMO, USDC_E, Call, TxRejected, checksum, decode_transfer, decode_tx, word)


class TempoRpc:
    """JSON-RPC over one ledger: `call(method, params)` for one method, `handle_http(body)` for a request body."""

    def __init__(self, ledger):
        self.ledger = ledger

    def call(self, method: str, params: list) -> Any:
        if method == "eth_chainId":
            return hex(CHAIN_ID)
        if method == "net_version":
            return str(CHAIN_ID)
        if method == "eth_blockNumber":
            return hex(self.ledger.block_number)
        if method == "eth_gasPrice":
            return hex(GAS_PRICE)
        if method == "eth_maxPriorityFeePerGas":
            return "0x0"
        if method == "eth_estimateGas":
            tx = params[0] if params and isinstance(params[0], dict) else {}
            calls = tx.get("calls")
            return hex(GAS_PER_CALL * (len(calls) if isinstance(calls, list) and calls else 1))
        if method == "eth_getTransactionCount":
            return hex(self.ledger.nonce_of(_rpc_address(params[0] if params else None)))
        if method == "eth_getBalance":
            _rpc_address(params[0] if params else None)
            return "0x0"     # Tempo has no native gas coin: fees are paid in stablecoins
        if method == "eth_getCode":
            addr = _rpc_address(params[0] if params else None)
            return "0xef" if addr.lower() == USDC_E.lower() else "0x"
        if method == "eth_call":
            return self._eth_call(params[0] if params else None)
        if method == "eth_getBlockByNumber":
            n, t = self.ledger.block()
            return {"number": hex(n), "hash": self.ledger.block_hash(n), "parentHash": self.ledger.block_hash(n - 1),
                    "timestamp": hex(max(t, int(self.ledger.clock()))), "baseFeePerGas": hex(GAS_PRICE),
                    "gasLimit": hex(500_000_000), "gasUsed": "0x0", "miner": self.ledger.sequencer,
                    "transactions": [], "uncles": []}
        if method in ("eth_sendRawTransaction", "eth_sendRawTransactionSync"):
            raw = params[0] if params else None
            if not isinstance(raw, str) or not raw.startswith("0x"):
                raise RpcError(-32602, "expected a 0x-prefixed raw transaction")
            try:
                receipt = self.ledger.submit(decode_tx(bytes.fromhex(raw[2:])))
            except ValueError:
                raise RpcError(-32602, "raw transaction is not hex")
            except TxRejected as rej:
                raise RpcError(-32003, f"transaction rejected ({rej.reason}): {rej.message}")
            return receipt if method.endswith("Sync") else receipt["transactionHash"]
        if method == "eth_getTransactionReceipt":
            return self.ledger.receipt(str(params[0] if params else ""))
        if method == "eth_getTransactionByHash":
            return self.ledger.transaction(str(params[0] if params else ""))
        raise RpcError(-32601, f"Method not found: {method} (the sandbox's Tempo stand-in serves eth_chainId, "
                               "eth_gasPrice, eth_estimateGas, eth_getTransactionCount, eth_call (USDC.e balanceOf/"
                               "decimals/transfer simulation), eth_getBlockByNumber, eth_sendRawTransaction[Sync], "
                               "eth_getTransactionReceipt, eth_getTransactionByHash)")

    def _eth_call(self, call: Any) -> str:
        if not isinstance(call, dict):
            raise RpcError(-32602, "eth_call needs a transaction object")
        to = _rpc_address(call.get("to"))
        data_hex = call.get("data", call.get("input", "0x"))
        try:
            data = bytes.fromhex(str(data_hex)[2:]) if str(data_hex).startswith("0x") else None
        except ValueError:
            data = None
        if data is None:
            raise RpcError(-32602, "`data` must be 0x-prefixed hex")
        if to.lower() != USDC_E.lower():
            return "0x"
        if data[:4] == SEL_BALANCE_OF and len(data) == 36:
            return word(self.ledger.balance_of(checksum(data[16:36])))
        if data[:4] == SEL_DECIMALS:
            return word(DECIMALS)
        if data[:4] in (SEL_TRANSFER, SEL_TRANSFER_WITH_MEMO):
            try:
                t = decode_transfer(Call(to, 0, data))
            except TxRejected as rej:
                raise RpcError(3, f"execution reverted: {rej.message}")
            sender = call.get("from")
            if sender and self.ledger.balance_of(_rpc_address(sender)) < t.amount:
                raise RpcError(3, "execution reverted: insufficient balance")
            return word(1)
        raise RpcError(3, "execution reverted: the sandbox's USDC.e answers balanceOf, decimals, transfer, "
                          "transferWithMemo only")

    def handle_http(self, body: bytes) -> Any:
        """A JSON-RPC 2.0 request body (single or batch) -> the JSON answer."""
        return answer(body, self.call)
