"""The few chain reads a payment needs, as a tiny JSON-RPC client over the client's bounded transport (``api.http``).

What the schemes ask a chain (and nothing else):
- EVM: ``eth_chainId`` (so a mis-pointed RPC URL cannot feed us another chain's nonce), and
  ``eth_call`` for MegaUSD ``nonces(owner)`` and ``allowance(owner, Permit2)``;
- Solana: ``getLatestBlockhash`` (when the challenge gives no ``recentBlockhash``),
  ``getAccountInfo`` (the mint's owner program and decimals; whether the recipient's token account
  exists) and ``getMinimumBalanceForRentExemption`` (to tell the user what creating it would cost);
  and only when the user opts in to creating a missing recipient token account
  (``--create-recipient-account``): ``getBalance`` (the payer's SOL covers it), ``sendTransaction``
  (base64) and ``getSignatureStatuses`` (its confirmation) — the one write this client makes to a chain.
- reconcile.py's read-only "did it settle?" check (``payments.onchain``): ``eth_call`` for
  ``authorizationState`` / ``nonces`` / Permit2 ``nonceBitmap``, ``eth_getTransactionReceipt`` on
  Tempo; on Solana ``getSignatureStatuses``, ``isBlockhashValid``, and ``getSignaturesForAddress`` +
  ``getTransaction`` to find the payer's transfer in its token account's history.

``Rpc`` is the interface the schemes use. ``JsonRpc`` answers it from ``Settings.rpc_url(network)``;
tests inject any object with the same methods (e.g. one that reads the sandbox's in-process chains).
"""

from __future__ import annotations

import base64
import itertools
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from ..config import Settings
from ..errors import ComputeError, NetworkError

# ABI selectors (first 4 bytes of keccak256 of the signature); constants, so no keccak import is needed.
SEL_NONCES = bytes.fromhex("7ecebe00")  # nonces(address)
SEL_ALLOWANCE = bytes.fromhex("dd62ed3e")  # allowance(address,address)


@dataclass(frozen=True)
class AccountInfo:
    """A Solana account as ``getAccountInfo`` returns it (base58 owner program, raw data)."""

    owner: str
    data: bytes
    lamports: int


class Rpc(Protocol):
    """What the schemes read from chains. ``network`` is our key (``megaeth``, ``solana``, …)."""

    def eth_chain_id(self, network: str) -> int: ...

    def eth_call(self, network: str, to: str, data: bytes) -> bytes: ...

    def sol_latest_blockhash(self, network: str) -> str: ...

    def sol_account_info(self, network: str, address: str) -> AccountInfo | None: ...

    def sol_rent_exempt_lamports(self, network: str, size: int) -> int: ...

    # Used only by the opt-in creation of a missing recipient token account.
    def sol_balance(self, network: str, address: str) -> int: ...

    def sol_send_transaction(self, network: str, tx_base64: str) -> str: ...

    def sol_signature_statuses(self, network: str, signatures: list[str]) -> list[dict | None]: ...

    # Used only by reconcile.py's read-only check of an MPP payment.
    def eth_receipt(self, network: str, tx_hash: str) -> dict | None: ...

    # Used only by reconcile.py's read-only check of a Solana payment.
    def sol_blockhash_valid(self, network: str, blockhash: str) -> bool | None: ...

    def sol_signatures_for_address(self, network: str, address: str, *, before: str | None = None,
                                   limit: int = 100) -> list[dict]: ...

    def sol_transaction(self, network: str, signature: str) -> dict | None: ...


def _addr_word(address: str) -> bytes:
    a = address[2:] if address.lower().startswith("0x") else address
    return bytes(12) + bytes.fromhex(a)


def erc20_nonces(rpc: Rpc, network: str, token: str, owner: str) -> int:
    """ERC-2612 ``nonces(owner)``: the next permit nonce the token will accept."""
    out = rpc.eth_call(network, token, SEL_NONCES + _addr_word(owner))
    return _uint_word(out, "nonces(owner)")


def erc20_allowance(rpc: Rpc, network: str, token: str, owner: str, spender: str) -> int:
    out = rpc.eth_call(network, token, SEL_ALLOWANCE + _addr_word(owner) + _addr_word(spender))
    return _uint_word(out, "allowance(owner, spender)")


def _uint_word(out: bytes, what: str) -> int:
    if len(out) < 32:
        # An empty result usually means no contract at that address on this RPC's chain.
        raise ComputeError(
            f"The RPC returned no data for {what}; the token contract may not exist on that chain.",
            code="rpc_bad_result",
            hint="Check the network's RPC URL setting.",
        )
    return int.from_bytes(out[:32], "big")


_sessions = threading.local()


def _thread_session(make):
    """One HTTP session per thread for every ``JsonRpc`` (a payment builds a new one each time): a
    process that pays more than once (the MCP server, keepalive) keeps its RPC connections."""
    if getattr(_sessions, "session", None) is None:
        _sessions.session = make()
    return _sessions.session


class JsonRpc:
    """``Rpc`` over HTTP JSON-RPC, one URL per network from the settings."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ids = itertools.count(1)
        self._session = None

    def cache_key(self, network: str) -> str:
        return self._settings.rpc_url(network)

    def _call(self, network: str, method: str, params: list) -> Any:
        from ..api.http import MAX_RPC_BODY_BYTES, TransportError, bounded_request, describe_failure, new_session

        url = self._settings.rpc_url(network)
        # What a chain says feeds a signature (chain id, nonce, blockhash) or reconcile's verdict.
        self._settings.require_secure(url, f"{network} RPC requests")
        if self._session is None:
            self._session = _thread_session(new_session)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        try:
            resp = bounded_request(self._session, "POST", url, deadline=self._settings.timeout, limit=MAX_RPC_BODY_BYTES,
                                   what=f"{network} RPC {method}", json_body=body)
        except TransportError as exc:
            raise NetworkError(
                f"{network} RPC {method} failed: {describe_failure(exc, self._settings.timeout)}", retryable=True, details={"url": url}
            ) from None
        if resp.status != 200:
            raise NetworkError(
                f"{network} RPC {method} answered HTTP {resp.status}",
                status=resp.status,
                retryable=resp.status >= 500 or resp.status == 429,
                details={"url": url},
            )
        try:
            from ..api.http import loads

            doc = loads(resp.content)
        except ValueError:
            raise ComputeError(f"{network} RPC {method} did not return JSON", code="rpc_bad_result") from None
        if not isinstance(doc, dict):
            raise ComputeError(f"{network} RPC {method} returned {type(doc).__name__}", code="rpc_bad_result")
        if doc.get("error") is not None:
            err = doc["error"]
            msg = err.get("message") if isinstance(err, dict) else str(err)
            raise ComputeError(f"{network} RPC {method} error: {msg}", code="rpc_error", details=err)
        return doc.get("result")

    # ---- EVM ----
    def eth_chain_id(self, network: str) -> int:
        result = self._call(network, "eth_chainId", [])
        return _parse_hex_int(result, network, "eth_chainId")

    def eth_call(self, network: str, to: str, data: bytes) -> bytes:
        result = self._call(network, "eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
        if not isinstance(result, str) or not result.startswith("0x"):
            raise ComputeError(f"{network} RPC eth_call returned {result!r}", code="rpc_bad_result")
        try:
            return bytes.fromhex(result[2:])
        except ValueError:
            raise ComputeError(f"{network} RPC eth_call returned non-hex data", code="rpc_bad_result") from None

    def eth_receipt(self, network: str, tx_hash: str) -> dict | None:
        """``eth_getTransactionReceipt``: None while the transaction is not (yet) included."""
        result = self._call(network, "eth_getTransactionReceipt", [tx_hash])
        if result is not None and not isinstance(result, dict):
            raise ComputeError(f"{network} RPC eth_getTransactionReceipt returned {result!r}", code="rpc_bad_result")
        return result

    # ---- Solana ----
    def sol_latest_blockhash(self, network: str) -> str:
        result = self._call(network, "getLatestBlockhash", [{"commitment": "confirmed"}])
        try:
            return str(result["value"]["blockhash"])
        except (TypeError, KeyError):
            raise ComputeError(f"{network} RPC getLatestBlockhash returned {result!r}", code="rpc_bad_result") from None

    def sol_account_info(self, network: str, address: str) -> AccountInfo | None:
        result = self._call(
            network, "getAccountInfo", [address, {"encoding": "base64", "commitment": "confirmed"}]
        )
        try:
            value = result["value"]
            if value is None:
                return None
            data_b64 = value["data"][0] if isinstance(value["data"], list) else value["data"]
            owner, lamports = value["owner"], value["lamports"]
            if not isinstance(owner, str) or not isinstance(data_b64, str) or isinstance(lamports, bool) or not isinstance(lamports, int) or lamports < 0:
                raise ValueError("unexpected field types")
            return AccountInfo(owner=owner, data=base64.b64decode(data_b64, validate=True), lamports=lamports)
        except (TypeError, KeyError, IndexError, ValueError):
            raise ComputeError(f"{network} RPC getAccountInfo returned an unexpected shape", code="rpc_bad_result") from None

    def sol_rent_exempt_lamports(self, network: str, size: int) -> int:
        result = self._call(network, "getMinimumBalanceForRentExemption", [size])
        if isinstance(result, bool) or not isinstance(result, int) or result < 0:
            raise ComputeError(f"{network} RPC getMinimumBalanceForRentExemption returned {result!r}", code="rpc_bad_result")
        return result

    def sol_balance(self, network: str, address: str) -> int:
        result = self._call(network, "getBalance", [address, {"commitment": "confirmed"}])
        value = result.get("value") if isinstance(result, dict) else None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ComputeError(f"{network} RPC getBalance returned {result!r}", code="rpc_bad_result")
        return value

    def sol_send_transaction(self, network: str, tx_base64: str) -> str:
        # Preflight stays on: a transaction that would fail is refused before it can cost a fee.
        result = self._call(
            network, "sendTransaction", [tx_base64, {"encoding": "base64", "preflightCommitment": "confirmed"}]
        )
        if not isinstance(result, str):
            raise ComputeError(f"{network} RPC sendTransaction returned {result!r}", code="rpc_bad_result")
        return result

    def sol_signature_statuses(self, network: str, signatures: list[str]) -> list[dict | None]:
        result = self._call(network, "getSignatureStatuses", [signatures, {"searchTransactionHistory": True}])
        value = result.get("value") if isinstance(result, dict) else None
        if not isinstance(value, list) or len(value) != len(signatures):
            raise ComputeError(f"{network} RPC getSignatureStatuses returned {result!r}", code="rpc_bad_result")
        return [v if isinstance(v, dict) else None for v in value]


    def sol_blockhash_valid(self, network: str, blockhash: str) -> bool | None:
        """``isBlockhashValid``: whether a transaction built on ``blockhash`` can still land; None when the
        RPC does not serve the method (then the caller falls back on its own estimate)."""
        try:
            result = self._call(network, "isBlockhashValid", [blockhash, {"commitment": "processed"}])
        except ComputeError as e:
            if isinstance(e.details, dict) and e.details.get("code") == -32601:
                return None
            raise
        value = result.get("value") if isinstance(result, dict) else None
        if not isinstance(value, bool):
            raise ComputeError(f"{network} RPC isBlockhashValid returned {result!r}", code="rpc_bad_result")
        return value

    def sol_signatures_for_address(self, network: str, address: str, *, before: str | None = None,
                                   limit: int = 100) -> list[dict]:
        """``getSignaturesForAddress``, newest first: ``[{signature, slot, err, blockTime, ...}]``."""
        cfg: dict = {"limit": limit, "commitment": "confirmed"}
        if before:
            cfg["before"] = before
        result = self._call(network, "getSignaturesForAddress", [address, cfg])
        if not isinstance(result, list) or not all(isinstance(r, dict) and isinstance(r.get("signature"), str) for r in result):
            raise ComputeError(f"{network} RPC getSignaturesForAddress returned an unexpected shape", code="rpc_bad_result")
        return result

    def sol_transaction(self, network: str, signature: str) -> dict | None:
        """``getTransaction`` (json encoding, versioned transactions accepted); None when unknown."""
        result = self._call(network, "getTransaction",
                            [signature, {"encoding": "json", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"}])
        if result is not None and not isinstance(result, dict):
            raise ComputeError(f"{network} RPC getTransaction returned {result!r}", code="rpc_bad_result")
        return result


def _parse_hex_int(value: Any, network: str, method: str) -> int:
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise ComputeError(f"{network} RPC {method} returned {value!r}", code="rpc_bad_result")


def rpc_cache_key(rpc: Any, network: str) -> Any:
    """A key that identifies which chain an ``Rpc`` reads, for caching immutable facts (mint info)."""
    fn = getattr(rpc, "cache_key", None)
    return fn(network) if callable(fn) else (id(rpc), network)
