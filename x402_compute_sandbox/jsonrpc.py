"""The JSON-RPC 2.0 envelope both of the sandbox's RPC endpoints speak: /rpc/<network> (rpc.py, the
local chains) and /rpc/tempo (tempo/rpc.py, the Tempo ledger). Parse errors, batches (at most 100
calls answered), invalid requests and error objects are answered the same way by both; each endpoint
supplies only its methods.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

MAX_BATCH = 100


class RpcError(Exception):
    """A JSON-RPC error answer: `code`, `message` and, when not None, `data`."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


def address(value: Any) -> str:
    """An EVM address parameter, checksummed; anything else is -32602."""
    from eth_utils import is_address, to_checksum_address
    if not isinstance(value, str) or not is_address(value):
        raise RpcError(-32602, f"invalid address {value!r}")
    return to_checksum_address(value)


def valid_id(rid: Any) -> bool:
    """A JSON-RPC id is a string, a number or null (echoing NaN or Infinity would not be JSON)."""
    if rid is None or isinstance(rid, str) or (isinstance(rid, int) and not isinstance(rid, bool)):
        return True
    return isinstance(rid, float) and math.isfinite(rid)


def _error(rid: Any, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def answer(body: bytes, method: Callable[[str, list], Any], *, internal_errors: bool = False) -> Any:
    """A request body (one call or a batch) -> the JSON answer. `method(name, params)` returns a result
    or raises RpcError; with `internal_errors`, any other exception becomes a -32000 error answer
    (a chain-side failure of a read) instead of propagating."""
    try:
        req = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _error(None, -32700, "Parse error")
    if isinstance(req, list):
        if not req:
            return _error(None, -32600, "Empty batch")
        return [_one(item, method, internal_errors) for item in req[:MAX_BATCH]]
    return _one(req, method, internal_errors)


def _one(call: Any, method: Callable[[str, list], Any], internal_errors: bool) -> dict:
    if not isinstance(call, dict) or not isinstance(call.get("method"), str) or not valid_id(call.get("id")):
        return _error(None, -32600, "Invalid Request")
    rid = call.get("id")
    params = call.get("params", [])
    if not isinstance(params, list):
        params = [params] if params is not None else []
    try:
        return {"jsonrpc": "2.0", "id": rid, "result": method(call["method"], params)}
    except RpcError as err:
        error = {"code": err.code, "message": err.message}
        if err.data is not None:
            error["data"] = err.data
        return {"jsonrpc": "2.0", "id": rid, "error": error}
    except Exception as exc:
        if not internal_errors:
            raise
        return _error(rid, -32000, str(exc)[:300])
