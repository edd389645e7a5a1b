"""`POST /rpc/<network>`: a read-only JSON-RPC view of the sandbox's local chains.

For clients that must read chain state before signing: the MegaUSD `nonces(owner)` (an `eth_call`)
for the ERC-2612 permit route, and on Solana the mint account (token program, decimals), whether a
token account exists, and a blockhash LiteSVM will accept.

EVM:    eth_chainId, eth_blockNumber, eth_getCode, eth_getBalance, eth_call (plus net_version)
Solana: getLatestBlockhash, getAccountInfo (base64), getBalance, getMinimumBalanceForRentExemption
        (plus getSlot, getBlockHeight, getHealth); sendTransaction (base64) and getSignatureStatuses

The one write is Solana `sendTransaction`, for the client's opt-in side transaction that creates a
missing recipient token account (compute-api.md §13 #14): it is simulated first (like an RPC node's
preflight) and executed by LiteSVM with signature verification and the chain's blockhash rules, so it
can do nothing a real cluster would not let that signer do. x402 payments still reach the chains only
through the facilitator's settlement.
The chains' own locks serialise access (the chains are not safe for concurrent use otherwise).
"""
from __future__ import annotations

import base64
import json
import math
import re
from contextlib import nullcontext
from typing import Any

from . import networks as nets
from .server import Request, Response

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")
_B58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_U64_MAX = 2**64 - 1


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def _param(params: list, i: int, default: Any = None) -> Any:
    return params[i] if len(params) > i else default


def _block(tag: Any) -> Any:
    if tag is None:
        return "latest"
    if tag in ("latest", "pending", "earliest", "safe", "finalized"):
        return "latest" if tag in ("safe", "finalized") else tag
    if isinstance(tag, str) and _HEX.match(tag) and len(tag) > 2:
        return int(tag, 16)
    raise RpcError(-32602, f"invalid block parameter {tag!r}")


def _address(value: Any) -> str:
    from eth_utils import is_address, to_checksum_address
    if not isinstance(value, str) or not is_address(value):
        raise RpcError(-32602, f"invalid address {value!r}")
    return to_checksum_address(value)


def _valid_id(rid: Any) -> bool:
    """A JSON-RPC id is a string, a number or null (echoing NaN or Infinity would not be JSON)."""
    if rid is None or isinstance(rid, str) or (isinstance(rid, int) and not isinstance(rid, bool)):
        return True
    return isinstance(rid, float) and math.isfinite(rid)


class Rpc:
    def __init__(self, facilitator):
        self.f = facilitator

    def handle(self, network: str, req: Request) -> Response:
        try:
            net = nets.get(network)
        except KeyError:
            return Response(404, {"error": f"Unknown network {network!r}",
                                  "details": {"accepted": list(nets.LABELS)}})
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return Response(200, {"jsonrpc": "2.0", "id": None,
                                  "error": {"code": -32700, "message": "Parse error"}})
        if isinstance(body, list):
            if not body:
                return Response(200, {"jsonrpc": "2.0", "id": None,
                                      "error": {"code": -32600, "message": "Empty batch"}})
            return Response(200, [self._one(net, item) for item in body[:100]])
        return Response(200, self._one(net, body))

    def _one(self, net, call: Any) -> dict:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str) \
                or not _valid_id(call.get("id")):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
        rid = call.get("id")
        params = call.get("params", [])
        if not isinstance(params, list):
            params = [params] if params is not None else []
        try:
            if net.kind == "evm":
                result = self._evm(net, call["method"], params)
            else:
                result = self._svm(call["method"], params)
            return {"jsonrpc": "2.0", "id": rid, "result": result}
        except RpcError as err:
            error = {"code": err.code, "message": err.message}
            if err.data is not None:
                error["data"] = err.data
            return {"jsonrpc": "2.0", "id": rid, "error": error}
        except Exception as exc:  # a chain-side failure of a read (e.g. a reverting eth_call)
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": str(exc)[:300]}}

    # --- EVM ------------------------------------------------------------------------------------
    def _evm(self, net, method: str, params: list) -> Any:
        chain = self.f.chain(net.label)
        w3 = chain.w3
        with getattr(chain, "_lock", nullcontext()):
            if method == "eth_chainId":
                return hex(net.chain_id)
            if method == "net_version":
                return str(net.chain_id)
            if method == "eth_blockNumber":
                return hex(w3.eth.block_number)
            if method == "eth_getCode":
                return "0x" + bytes(w3.eth.get_code(_address(_param(params, 0)), _block(_param(params, 1)))).hex()
            if method == "eth_getBalance":
                return hex(w3.eth.get_balance(_address(_param(params, 0)), _block(_param(params, 1))))
            if method == "eth_call":
                tx = _param(params, 0)
                if not isinstance(tx, dict) or "to" not in tx:
                    raise RpcError(-32602, "eth_call needs a transaction object with `to`")
                call = {"to": _address(tx["to"])}
                data = tx.get("data", tx.get("input", "0x"))
                if not isinstance(data, str) or not _HEX.match(data):
                    raise RpcError(-32602, "`data` must be 0x-prefixed hex")
                call["data"] = data
                if tx.get("from"):
                    call["from"] = _address(tx["from"])
                return "0x" + bytes(w3.eth.call(call, _block(_param(params, 1)))).hex()
        raise RpcError(-32601, f"Method not found: {method} (the sandbox serves eth_chainId, eth_blockNumber, "
                               "eth_getCode, eth_getBalance, eth_call)")

    # --- Solana ---------------------------------------------------------------------------------
    def _svm(self, method: str, params: list) -> Any:
        from solders.pubkey import Pubkey

        chain = self.f.chain("solana")
        svm = chain.svm

        def pubkey(value: Any) -> Pubkey:
            if not isinstance(value, str) or not _B58.match(value):
                raise RpcError(-32602, f"Invalid param: {value!r} is not a base58 public key")
            try:
                return Pubkey.from_string(value)
            except ValueError:
                raise RpcError(-32602, f"Invalid param: {value!r} is not a public key")

        with getattr(chain, "_lock", nullcontext()):
            slot = svm.get_clock().slot
            ctx = {"slot": slot, "apiVersion": "2.0.0"}
            if method == "getLatestBlockhash":
                return {"context": ctx, "value": {"blockhash": str(svm.latest_blockhash()),
                                                  "lastValidBlockHeight": slot + 150}}
            if method == "getAccountInfo":
                key = pubkey(_param(params, 0))
                cfg = _param(params, 1) or {}
                encoding = cfg.get("encoding", "base64") if isinstance(cfg, dict) else "base64"
                if encoding != "base64":
                    raise RpcError(-32602, "the sandbox serves getAccountInfo with encoding base64 only")
                acct = svm.get_account(key)
                if acct is None or (acct.lamports == 0 and not bytes(acct.data)):
                    return {"context": ctx, "value": None}
                data = bytes(acct.data)
                return {"context": ctx, "value": {
                    "data": [base64.b64encode(data).decode(), "base64"], "executable": bool(acct.executable),
                    "lamports": acct.lamports, "owner": str(acct.owner),
                    "rentEpoch": min(int(acct.rent_epoch), _U64_MAX), "space": len(data)}}
            if method == "getBalance":
                return {"context": ctx, "value": svm.get_balance(pubkey(_param(params, 0))) or 0}
            if method == "getMinimumBalanceForRentExemption":
                size = _param(params, 0)
                if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 10 * 1024 * 1024:
                    raise RpcError(-32602, "Invalid param: data length must be an integer")
                return svm.minimum_balance_for_rent_exemption(size)
            if method == "getSlot":
                return slot
            if method == "getBlockHeight":
                return slot
            if method == "getHealth":
                return "ok"
            if method == "sendTransaction":
                return _send_transaction(chain, params)
            if method == "getSignatureStatuses":
                return {"context": ctx, "value": _signature_statuses(svm, slot, params)}
        raise RpcError(-32601, f"Method not found: {method} (the sandbox serves getLatestBlockhash, "
                               "getAccountInfo, getBalance, getMinimumBalanceForRentExemption, "
                               "sendTransaction, getSignatureStatuses)")


def _send_transaction(chain, params: list) -> str:
    """Execute one signed transaction; the base58 signature, or the error a node's preflight gives."""
    from solders.transaction import VersionedTransaction

    from .chains.svm import SvmError

    raw = _param(params, 0)
    cfg = _param(params, 1) or {}
    if not isinstance(cfg, dict) or cfg.get("encoding") != "base64":
        # Real nodes default to (deprecated) base58; asking for base64 explicitly keeps both sides honest.
        raise RpcError(-32602, "the sandbox serves sendTransaction with encoding base64 only")
    try:
        tx = VersionedTransaction.from_bytes(base64.b64decode(raw, validate=True))
    except Exception:
        raise RpcError(-32602, "invalid transaction: failed to deserialize a base64 VersionedTransaction")
    try:
        if not cfg.get("skipPreflight"):
            chain.simulate(tx)
        return chain.send(tx)
    except SvmError as err:
        raise RpcError(-32002, f"Transaction simulation failed: {err.reason}",
                       {"err": err.reason, "logs": err.logs[-20:]})


def _signature_statuses(svm, slot: int, params: list) -> list:
    from solders.signature import Signature
    from solders.transaction_metadata import FailedTransactionMetadata

    sigs = _param(params, 0)
    if not isinstance(sigs, list) or len(sigs) > 256:
        raise RpcError(-32602, "Invalid params: expected a list of at most 256 signatures")
    out = []
    for s in sigs:
        try:
            sig = Signature.from_string(s)
        except Exception:
            raise RpcError(-32602, f"Invalid param: {s!r} is not a signature")
        meta = svm.get_transaction(sig)
        if meta is None:
            out.append(None)
            continue
        err = str(meta.err()) if isinstance(meta, FailedTransactionMetadata) else None
        # LiteSVM executes synchronously: anything it holds is as final as it will ever be.
        out.append({"slot": slot, "confirmations": None, "err": err,
                    "status": {"Err": err} if err else {"Ok": None}, "confirmationStatus": "finalized"})
    return out
