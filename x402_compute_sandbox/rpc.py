"""`POST /rpc/<network>`: a read-only JSON-RPC view of the sandbox's local chains.

For clients that must read chain state before signing: the MegaUSD `nonces(owner)` (an `eth_call`)
for the ERC-2612 permit route, and on Solana the mint account (token program, decimals), whether a
token account exists, and a blockhash LiteSVM will accept.

EVM:    eth_chainId, eth_blockNumber, eth_getCode, eth_getBalance, eth_call (plus net_version);
        eth_getTransactionReceipt (with its logs, e.g. the token's Transfer), eth_getTransactionByHash,
        eth_getLogs (address/topics filter, at most MAX_LOG_BLOCKS blocks per query),
        eth_getTransactionCount; eth_sendRawTransaction
Solana: getLatestBlockhash, isBlockhashValid, getAccountInfo (base64), getBalance,
        getMinimumBalanceForRentExemption (plus getSlot, getBlockHeight, getHealth);
        getTokenAccountBalance, getTokenAccountsByOwner (base64 or jsonParsed), getTransaction
        (json or base64), getSignaturesForAddress; sendTransaction (base64) and getSignatureStatuses

So a `tx_hash` from a paid answer can be checked with any standard client (web3.py, solana-py, curl):
the receipt, the Transfer log, the transaction, the payer's token account history.

The writes are Solana `sendTransaction`, for the client's opt-in side transaction that creates a
missing recipient token account (compute-api.md §13 #14), and EVM `eth_sendRawTransaction`: both
run the chain's own rules (preflight simulation and signature checks on Solana; chain id, nonce and
gas on the EVM chains), so they can do nothing a real node would not let that signer do. x402
payments still reach the chains only through the facilitator's settlement.
The chains' own locks serialise access (the chains are not safe for concurrent use otherwise).
"""
from __future__ import annotations

import base64
import re
from contextlib import nullcontext
from typing import Any

from . import networks as nets
from .chains.svm import ui_amount
from .jsonrpc import RpcError, answer
from .jsonrpc import address as _address
from .server import Request, Response

_HEX = re.compile(r"^0x[0-9a-fA-F]*$")
_B58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,44}$")
_U64_MAX = 2**64 - 1
_TX_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
MAX_LOG_BLOCKS = 2_000             # per eth_getLogs query, as hosted RPCs bound it (the chain is locked meanwhile)


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


class Rpc:
    def __init__(self, facilitator):
        self.f = facilitator

    def handle(self, network: str, req: Request) -> Response:
        try:
            net = nets.get(network)
        except KeyError:
            return Response(404, {"error": f"Unknown network {network!r}",
                                  "details": {"accepted": list(nets.LABELS)}})

        def method(name: str, params: list) -> Any:
            return self._evm(net, name, params) if net.kind == "evm" else self._svm(name, params)

        # internal_errors: a chain-side failure of a read (e.g. a reverting eth_call) is a -32000 answer
        return Response(200, answer(req.body, method, internal_errors=True))

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
            if method == "eth_getTransactionCount":
                return hex(chain.transaction_count(_address(_param(params, 0)), _block(_param(params, 1))))
            if method == "eth_getTransactionReceipt":
                r = chain.receipt(_tx_hash(_param(params, 0)))
                return None if r is None else _evm_receipt(r)
            if method == "eth_getTransactionByHash":
                t = chain.transaction(_tx_hash(_param(params, 0)))
                return None if t is None else _evm_transaction(t, net.chain_id)
            if method == "eth_getLogs":
                return _evm_logs(chain, _param(params, 0), w3.eth.block_number)
            if method == "eth_sendRawTransaction":
                return _send_raw_transaction(chain, _param(params, 0))
            if method in ("eth_getBlockByNumber", "eth_getBlockByHash"):
                ref = _param(params, 0)
                ref = _block(ref) if method == "eth_getBlockByNumber" else _tx_hash(ref)
                full = _param(params, 1, False)
                if not isinstance(full, bool):
                    raise RpcError(-32602, "the second parameter (full transactions) must be a boolean")
                try:
                    b = (chain.tester.get_block_by_number if method.endswith("Number") else chain.tester.get_block_by_hash)(
                        ref, full_transactions=full)
                except Exception:   # eth-tester's BlockNotFound: a node answers null
                    return None
                return _evm_block(b, full, net.chain_id)
            if method == "eth_gasPrice":
                return hex(w3.eth.gas_price)
            if method == "eth_maxPriorityFeePerGas":
                return hex(10**9)
            if method == "eth_estimateGas":
                tx = _param(params, 0)
                if not isinstance(tx, dict):
                    raise RpcError(-32602, "eth_estimateGas needs a transaction object")
                call = {k: tx[k] for k in ("from", "to", "data", "value") if tx.get(k) is not None}
                for k in ("from", "to"):
                    if k in call:
                        call[k] = _address(call[k])
                if "value" in call:
                    call["value"] = int(call["value"], 16) if isinstance(call["value"], str) else call["value"]
                return hex(w3.eth.estimate_gas(call))
        raise RpcError(-32601, f"Method not found: {method} (the sandbox serves eth_chainId, eth_blockNumber, "
                               "eth_getCode, eth_getBalance, eth_call, eth_getTransactionCount, "
                               "eth_getTransactionReceipt, eth_getTransactionByHash, eth_getLogs, "
                               "eth_getBlockByNumber, eth_getBlockByHash, eth_gasPrice, eth_maxPriorityFeePerGas, "
                               "eth_estimateGas, eth_sendRawTransaction)")

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
                return {"context": ctx, "value": {"blockhash": str(chain.latest_blockhash()),
                                                  "lastValidBlockHeight": slot + 150}}
            if method == "isBlockhashValid":
                h = _param(params, 0)
                if not isinstance(h, str) or not _B58.match(h):
                    raise RpcError(-32602, f"Invalid param: {h!r} is not a blockhash")
                return {"context": ctx, "value": chain.is_recent_blockhash(h)}
            if method == "getTokenAccountBalance":
                key = pubkey(_param(params, 0))
                acct = chain.token_account(key)
                if acct is None:
                    raise RpcError(-32602, "Invalid param: not a Token account")
                return {"context": ctx, "value": ui_amount(acct.amount, chain.decimals)}
            if method == "getTokenAccountsByOwner":
                return {"context": ctx, "value": _token_accounts_by_owner(chain, pubkey(_param(params, 0)),
                                                                          _param(params, 1), _param(params, 2))}
            if method == "getTransaction":
                return _get_transaction(chain, _param(params, 0), _param(params, 1))
            if method == "getSignaturesForAddress":
                return _signatures_for_address(chain, pubkey(_param(params, 0)), _param(params, 1))
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
                return {"context": ctx, "value": _signature_statuses(chain, params)}
        raise RpcError(-32601, f"Method not found: {method} (the sandbox serves getLatestBlockhash, "
                               "isBlockhashValid, getAccountInfo, getBalance, getMinimumBalanceForRentExemption, "
                               "getTokenAccountBalance, getTokenAccountsByOwner, getTransaction, "
                               "getSignaturesForAddress, sendTransaction, getSignatureStatuses)")


# --- EVM wire formats (eth-tester answers in snake_case Python values) ------------------------------
def _tx_hash(value: Any) -> str:
    if not isinstance(value, str) or not _TX_HASH.match(value):
        raise RpcError(-32602, f"invalid transaction hash {value!r}: expected 0x + 64 hex digits")
    return value.lower()


def _hex_data(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    return value if isinstance(value, str) and value.startswith("0x") else "0x" + str(value or "")


def _evm_log(lg: dict) -> dict:
    return {"address": lg["address"], "topics": [_hex_data(t) for t in lg["topics"]], "data": _hex_data(lg["data"]),
            "blockNumber": hex(lg["block_number"]), "blockHash": _hex_data(lg["block_hash"]),
            "transactionHash": _hex_data(lg["transaction_hash"]), "transactionIndex": hex(lg["transaction_index"]),
            "logIndex": hex(lg["log_index"]), "removed": False}


def _bloom(logs: list) -> str:
    from eth_bloom import BloomFilter
    bloom = BloomFilter()
    for lg in logs:
        bloom.add(bytes.fromhex(lg["address"][2:]))
        for t in lg["topics"]:
            bloom.add(bytes.fromhex(_hex_data(t)[2:]))
    return "0x" + int(bloom).to_bytes(256, "big").hex()


def _evm_receipt(r: dict) -> dict:
    return {"transactionHash": _hex_data(r["transaction_hash"]), "transactionIndex": hex(r["transaction_index"]),
            "blockHash": _hex_data(r["block_hash"]), "blockNumber": hex(r["block_number"]), "from": r["from"],
            "to": r["to"], "cumulativeGasUsed": hex(r["cumulative_gas_used"]), "gasUsed": hex(r["gas_used"]),
            "effectiveGasPrice": hex(r["effective_gas_price"]), "contractAddress": r.get("contract_address"),
            "logs": [_evm_log(lg) for lg in r["logs"]], "logsBloom": _bloom(r["logs"]),
            "status": hex(r["status"]), "type": r.get("type") or "0x0"}


def _evm_transaction(t: dict, chain_id: int) -> dict:
    out = {"hash": _hex_data(t["hash"]), "nonce": hex(t["nonce"]), "blockHash": _hex_data(t["block_hash"]),
           "blockNumber": hex(t["block_number"]), "transactionIndex": hex(t["transaction_index"]),
           "from": t["from"], "to": t.get("to") or None, "value": hex(t["value"]), "gas": hex(t["gas"]),
           "input": _hex_data(t["data"]), "type": t.get("type") or "0x0", "chainId": hex(t.get("chain_id") or chain_id),
           "v": hex(t["v"]), "r": hex(t["r"]), "s": hex(t["s"]), "gasPrice": hex(t.get("gas_price") or 0)}
    if "max_fee_per_gas" in t:
        out.update(maxFeePerGas=hex(t["max_fee_per_gas"]), maxPriorityFeePerGas=hex(t["max_priority_fee_per_gas"]),
                   accessList=[{"address": a["address"], "storageKeys": list(a.get("storage_keys", ()))}
                               for a in t.get("access_list", ())], yParity=hex(t.get("y_parity", t["v"])))
    return out


def _evm_block(b: dict, full: bool, chain_id: int) -> dict:
    out = {"number": hex(b["number"]), "hash": b["hash"], "parentHash": b["parent_hash"], "nonce": b["nonce"],
           "sha3Uncles": b["sha3_uncles"], "logsBloom": "0x" + int(b["logs_bloom"]).to_bytes(256, "big").hex(),
           "transactionsRoot": b["transactions_root"], "stateRoot": b["state_root"],
           "receiptsRoot": b["receipts_root"], "miner": b["coinbase"], "difficulty": hex(b["difficulty"]),
           "totalDifficulty": hex(b.get("total_difficulty") or 0), "extraData": b["extra_data"], "size": hex(b["size"]),
           "gasLimit": hex(b["gas_limit"]), "gasUsed": hex(b["gas_used"]), "timestamp": hex(b["timestamp"]),
           "mixHash": b["mix_hash"], "uncles": list(b["uncles"]), "baseFeePerGas": hex(b["base_fee_per_gas"]),
           "withdrawals": [], "withdrawalsRoot": b["withdrawals_root"]}
    out["transactions"] = ([_evm_transaction(t, chain_id) for t in b["transactions"]] if full
                           else [_hex_data(t) for t in b["transactions"]])
    return out


def _evm_logs(chain, flt: Any, head: int) -> list:
    """eth_getLogs: blockHash or fromBlock/toBlock (default latest), address, topics."""
    if not isinstance(flt, dict):
        raise RpcError(-32602, "eth_getLogs needs a filter object")

    def number(tag: Any, default: int) -> int:
        b = _block(tag) if tag is not None else default
        if b in ("latest", "pending"):
            return head
        return 0 if b == "earliest" else b

    if flt.get("blockHash") is not None:
        if flt.get("fromBlock") is not None or flt.get("toBlock") is not None:
            raise RpcError(-32602, "blockHash cannot be combined with fromBlock/toBlock")
        try:
            block = chain.tester.get_block_by_hash(_tx_hash(flt["blockHash"]))
        except Exception:
            raise RpcError(-32000, "unknown block")
        lo = hi = block["number"]
    else:
        lo, hi = number(flt.get("fromBlock"), head), number(flt.get("toBlock"), head)
    hi = min(hi, head)
    if lo > hi:
        return []
    if hi - lo + 1 > MAX_LOG_BLOCKS:
        raise RpcError(-32005, f"query covers {hi - lo + 1} blocks; the limit is {MAX_LOG_BLOCKS}: narrow fromBlock/toBlock")
    address = flt.get("address")
    if isinstance(address, list):
        address = [_address(a) for a in address] or None
    elif address is not None:
        address = _address(address)
    topics = flt.get("topics")
    if topics is not None:
        if not isinstance(topics, list) or len(topics) > 4:
            raise RpcError(-32602, "topics must be a list of at most 4 entries")
        norm = []
        for t in topics:
            if t is None:
                norm.append(None)
            elif isinstance(t, list):
                norm.append([_topic(x) for x in t] or None)
            else:
                norm.append(_topic(t))
        topics = norm
    try:
        found = chain.logs(lo, hi, address, topics)
    except (ValueError, TypeError) as exc:
        raise RpcError(-32602, f"invalid filter: {exc}")
    return [_evm_log(lg) for lg in found]


def _topic(value: Any) -> str:
    if not isinstance(value, str) or not _TX_HASH.match(value):
        raise RpcError(-32602, f"invalid topic {value!r}: expected 0x + 64 hex digits")
    return value.lower()


def _send_raw_transaction(chain, raw: Any) -> str:
    from .chains.evm import ChainRevert
    if not isinstance(raw, str) or not _HEX.match(raw) or len(raw) % 2 or len(raw) < 4:
        raise RpcError(-32602, "expected a 0x-prefixed signed transaction")
    if len(raw) > 2 + 2 * 128 * 1024:
        raise RpcError(-32602, "transaction larger than 128 KiB")
    try:
        return _hex_data(chain.send_raw_transaction(bytes.fromhex(raw[2:])))
    except ValueError as exc:
        raise RpcError(-32602, f"invalid transaction: {exc}")
    except ChainRevert as exc:
        raise RpcError(-32000, exc.reason)


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


# --- Solana history and token reads ---------------------------------------------------------------
_SIG = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{64,88}$")


def _signature(value: Any) -> str:
    if not isinstance(value, str) or not _SIG.match(value):
        raise RpcError(-32602, f"Invalid param: {value!r} is not a transaction signature")
    return value


def _config(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RpcError(-32602, "Invalid params: the configuration must be an object")
    return value


def _token_accounts_by_owner(chain, owner, flt: Any, cfg: Any) -> list:
    from .chains.svm import TOKEN_PROGRAM_ID
    flt, cfg = _config(flt), _config(cfg)
    if len(flt) != 1 or not ({"mint", "programId"} & set(flt)):
        raise RpcError(-32602, "Invalid params: the filter must be {\"mint\": <pubkey>} or {\"programId\": <pubkey>}")
    encoding = cfg.get("encoding", "base64")
    if encoding not in ("base64", "jsonParsed"):
        raise RpcError(-32602, "the sandbox serves getTokenAccountsByOwner with encoding base64 or jsonParsed")
    out = []
    for address in chain.token_accounts_of(str(owner)):
        acct = chain.svm.get_account(chain_pubkey(address))
        tok = chain.token_account(address)
        if acct is None or tok is None or str(tok.owner) != str(owner):
            continue
        if ("mint" in flt and flt["mint"] != str(tok.mint)) or ("programId" in flt and flt["programId"] != str(acct.owner)):
            continue
        data = bytes(acct.data)
        if encoding == "base64":
            shown = [base64.b64encode(data).decode(), "base64"]
        else:
            shown = {"program": "spl-token" if acct.owner == TOKEN_PROGRAM_ID else "spl-token-2022", "space": len(data),
                     "parsed": {"type": "account", "info": {
                         "isNative": False, "mint": str(tok.mint), "owner": str(tok.owner), "state": "initialized",
                         "tokenAmount": ui_amount(tok.amount, chain.decimals)}}}
        out.append({"pubkey": address, "account": {
            "data": shown, "executable": False, "lamports": acct.lamports, "owner": str(acct.owner),
            "rentEpoch": min(int(acct.rent_epoch), _U64_MAX), "space": len(data)}})
    return out


def chain_pubkey(address: str):
    from solders.pubkey import Pubkey
    return Pubkey.from_string(address)


def _get_transaction(chain, sig: Any, cfg: Any) -> Any:
    from solders.transaction import VersionedTransaction
    cfg = _config(cfg)
    rec = chain.transaction(_signature(sig))
    if rec is None:
        return None
    tx = VersionedTransaction.from_bytes(rec["raw"])
    version = 0 if type(tx.message).__name__ == "MessageV0" else "legacy"
    if version == 0 and cfg.get("maxSupportedTransactionVersion") is None:
        # What a real node answers to a client that did not opt in to versioned transactions.
        raise RpcError(-32015, "Transaction version (0) is not supported by the requesting client. Please try the "
                               "request again with the following configuration parameter: "
                               "\"maxSupportedTransactionVersion\": 0")
    encoding = cfg.get("encoding", "json")
    if encoding == "base64":
        shown = [base64.b64encode(rec["raw"]).decode(), "base64"]
    elif encoding == "json":
        import base58
        msg = tx.message
        shown = {"signatures": [str(x) for x in tx.signatures], "message": {
            "accountKeys": [str(k) for k in msg.account_keys],
            "header": {"numRequiredSignatures": msg.header.num_required_signatures,
                       "numReadonlySignedAccounts": msg.header.num_readonly_signed_accounts,
                       "numReadonlyUnsignedAccounts": msg.header.num_readonly_unsigned_accounts},
            "recentBlockhash": str(msg.recent_blockhash),
            "instructions": [{"programIdIndex": ix.program_id_index, "accounts": list(bytes(ix.accounts)),
                              "data": base58.b58encode(bytes(ix.data)).decode(), "stackHeight": None}
                             for ix in msg.instructions]}}
        if version == 0:
            shown["message"]["addressTableLookups"] = []
    else:
        raise RpcError(-32602, "the sandbox serves getTransaction with encoding json or base64")
    meta = {k: v for k, v in rec["meta"].items() if k != "memo"}
    meta.update(status={"Ok": None} if meta["err"] is None else {"Err": meta["err"]}, innerInstructions=[],
                rewards=[], loadedAddresses={"writable": [], "readonly": []})
    return {"slot": rec["slot"], "blockTime": rec["block_time"], "version": version, "transaction": shown, "meta": meta}


def _signatures_for_address(chain, address, cfg: Any) -> list:
    cfg = _config(cfg)
    limit = cfg.get("limit", 1000)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise RpcError(-32602, "Invalid param: limit must be 1 to 1000")
    before, until = cfg.get("before"), cfg.get("until")
    return chain.signatures_for(str(address), limit=limit, before=None if before is None else _signature(before),
                                until=None if until is None else _signature(until))


def _signature_statuses(chain, params: list) -> list:
    sigs = _param(params, 0)
    if not isinstance(sigs, list) or len(sigs) > 256:
        raise RpcError(-32602, "Invalid params: expected a list of at most 256 signatures")
    out = []
    for s in sigs:
        rec = chain.transaction(_signature(s))
        if rec is None:
            out.append(None)
            continue
        err = rec["meta"]["err"]
        # LiteSVM executes synchronously: anything it holds is as final as it will ever be.
        out.append({"slot": rec["slot"], "confirmations": None, "err": err,
                    "status": {"Err": err} if err else {"Ok": None}, "confirmationStatus": "finalized"})
    return out
