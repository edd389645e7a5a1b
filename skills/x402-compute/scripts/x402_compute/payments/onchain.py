"""Did a journalled payment move the money? One read-only chain query per payment, never a signature.

``check(entry, rpc, now=…)`` answers with ``state``:

- ``used``: the chain consumed the authorization (the money moved);
- ``unused``: not consumed, and still valid (``valid_before`` in the future, or unknown): it may
  still settle, so paying again could charge twice; ``reconcile.py --resend`` is the safe move;
- ``expired_unused``: not consumed and past ``valid_before`` (or provably dead): it can never
  settle, so paying again is safe;
- ``unknown``: the chain could not be asked (no RPC, RPC down, odd answer) or its answer proves
  nothing; say so, never guess.

What is asked, per scheme (``Signed.nonce`` says what the journal holds):

==============  ==========================================================================
EIP-3009        token ``authorizationState(payer, nonce)`` (bytes32 nonce)
direct permit   token ``nonces(owner) > nonce`` (nonce journalled as ``"<nonce>:<deadline>"``)
Permit2         Permit2 ``nonceBitmap(owner, nonce >> 8)`` bit ``nonce & 0xff``
Solana          ``getSignatureStatuses([payer signature])`` (conclusive when the payer's
                signature is the transaction id, i.e. the payer pays the fee); otherwise the
                transaction id is the facilitator's signature, unknown here, so: first
                ``isBlockhashValid(its blockhash)``, then the payer's token account history,
                ``getSignaturesForAddress(source)`` back to just before the payment was signed,
                and ``getTransaction`` of each until one carries the payer's signature
MPP (Tempo)     ``eth_getTransactionReceipt(expected_tx_hash)``
==============  ==========================================================================

The Solana search is conclusive because the transfer must write the payer's source token account,
so a landed payment is in that account's history; the blockhash is asked *before* the search, so a
blockhash already dead then means nothing can land after the search. While the blockhash is still
valid, "not found" is ``unused`` (it may still land), whatever the client's own estimate says.

EVM reads first check ``eth_chainId``: an RPC pointed at another chain answers "unused" for
everything, and "unused + expired" is what tells the user paying again is safe.
"""

from __future__ import annotations

import base64
import time
from datetime import datetime
from typing import Any

from ..errors import ComputeError
from ..networks import NETWORKS
from .model import Offer
from .rpc import erc20_nonces
from .schemes import scheme_for

SEL_AUTHORIZATION_STATE = bytes.fromhex("e94a0102")  # authorizationState(address,bytes32)
SEL_NONCE_BITMAP = bytes.fromhex("4fe02b44")  # nonceBitmap(address,uint256)
PERMIT2_ADDRESS = "0x000000000022D473030F116dDEE9F6B43aC78BA3"

STATES = ("used", "unused", "expired_unused", "unknown")
# The Solana history search reads at most this many pages / transactions before giving up ("unknown").
SOL_HISTORY_PAGES = 5
SOL_HISTORY_TXS = 60
SOL_PAGE = 100


def _now() -> float:
    return time.time()


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _addr(address: str) -> bytes:
    a = address[2:] if address.lower().startswith("0x") else address
    return bytes(12) + bytes.fromhex(a)


def scheme_of(entry: dict) -> str:
    """``evm_eip3009`` | ``evm_permit`` | ``evm_permit2`` | ``svm_exact`` | ``mpp_tempo``, decided as when it was signed."""
    if entry.get("method") == "mpp":
        return "mpp_tempo"

    o = entry.get("offer") or {}
    raw = o.get("raw") if isinstance(o.get("raw"), dict) else {}
    offer = Offer(version=o.get("x402_version") or 1, scheme=o.get("scheme") or raw.get("scheme") or "exact",
                  network=o.get("network_id") or o.get("network") or "", key=o.get("network"), amount=0,
                  asset=o.get("asset") or "", pay_to=o.get("payee") or "", max_timeout_seconds=None,
                  extra=raw.get("extra") if isinstance(raw.get("extra"), dict) else {}, raw=raw)
    return scheme_for(offer)


def _uint(out: bytes, what: str) -> int:
    if len(out) < 32:
        raise ComputeError(f"The RPC returned no data for {what}.", code="rpc_bad_result")
    return int.from_bytes(out[:32], "big")


def _check_chain(rpc, network: str) -> None:
    net = NETWORKS.get(network)
    if net is None or net.chain_id is None:
        raise ComputeError(f"Unknown network {network!r}.", code="unsupported_network")
    got = rpc.eth_chain_id(network)
    if got != net.chain_id:
        raise ComputeError(f"The {network} RPC serves chain {got}, not {net.chain_id}.", code="rpc_wrong_chain")


def _consumed(entry: dict, rpc, scheme: str) -> tuple[bool | None, str, dict]:
    """(consumed?, how it was asked, extra facts). None: the read proves nothing."""
    o = entry.get("offer") or {}
    network, payer, nonce = o.get("network"), entry.get("payer") or "", str(entry.get("nonce") or "")
    if scheme == "evm_eip3009":
        _check_chain(rpc, network)
        out = rpc.eth_call(network, o["asset"], SEL_AUTHORIZATION_STATE + _addr(payer) + bytes.fromhex(nonce.removeprefix("0x")))
        return _uint(out, "authorizationState") != 0, f"{o['asset']}.authorizationState({payer}, {nonce})", {}
    if scheme == "evm_permit":
        _check_chain(rpc, network)
        n = int(nonce.split(":")[0])

        current = erc20_nonces(rpc, network, o["asset"], payer)
        return current > n, f"{o['asset']}.nonces({payer}) > {n}", {"onchain_nonce": str(current)}
    if scheme == "evm_permit2":
        _check_chain(rpc, network)
        n = int(nonce)
        out = rpc.eth_call(network, PERMIT2_ADDRESS, SEL_NONCE_BITMAP + _addr(payer) + _word(n >> 8))
        return bool((_uint(out, "nonceBitmap") >> (n & 0xFF)) & 1), f"Permit2.nonceBitmap({payer}, {n >> 8}) bit {n & 0xFF}", {}
    if scheme == "svm_exact":
        (status,) = rpc.sol_signature_statuses(network, [nonce])
        how = f"getSignatureStatuses([{nonce}])"
        if status is not None:
            if status.get("err"):
                # A transaction that failed on chain moved nothing and can never run again.
                return False, how, {"failed": True, "err": status.get("err")}
            return True, how, {"confirmation_status": status.get("confirmationStatus")}
        if _payer_signs_first(entry):
            return False, how, {}
        return _svm_history(entry, rpc, network, nonce)
    if scheme == "mpp_tempo":
        tx = entry.get("expected_tx_hash")
        if not tx:
            return None, "eth_getTransactionReceipt", {"reason": "no transaction hash was journalled"}
        receipt = rpc.eth_receipt("tempo", tx)
        how = f"eth_getTransactionReceipt({tx})"
        if receipt is None:
            return False, how, {}
        if str(receipt.get("status")) in ("0x1", "1"):
            return True, how, {"block_number": receipt.get("blockNumber")}
        return False, how, {"failed": True}  # reverted: included, moved nothing, cannot run again
    raise ComputeError(f"No on-chain check for scheme {scheme}.", code="unsupported_scheme")


def _stored_svm_tx(entry: dict):
    """The signed Solana transaction the journal holds (the payment payload), decoded."""
    from solders.transaction import VersionedTransaction

    from .challenge import b64_json

    doc = b64_json(entry["payment_header_value"], entry.get("payment_header_name") or "X-PAYMENT")
    return VersionedTransaction.from_bytes(base64.b64decode(doc["payload"]["transaction"]))


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _svm_history(entry: dict, rpc, network: str, payer_sig: str) -> tuple[bool | None, str, dict]:
    """Find the payer's signature among the transactions of its source token account (module doc)."""
    if not all(callable(getattr(rpc, m, None)) for m in ("sol_blockhash_valid", "sol_signatures_for_address", "sol_transaction")):
        return None, "getSignaturesForAddress", {"reason": "this RPC client cannot read Solana history"}
    try:
        tx = _stored_svm_tx(entry)
    except Exception:
        return None, "getSignaturesForAddress", {"reason": "the journal does not hold a readable signed transaction"}
    from .schemes.svm_exact import TOKEN_2022_PROGRAM, TOKEN_PROGRAM

    msg = tx.message
    keys = [str(k) for k in msg.account_keys]
    # The TransferChecked instruction's first account is the source: the payer's token account.
    transfer = next((ix for ix in msg.instructions if keys[ix.program_id_index] in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)
                     and bytes(ix.data)[:1] == b"\x0c" and len(bytes(ix.accounts)) >= 4), None)
    if transfer is None:
        return None, "getSignaturesForAddress", {"reason": "the journalled transaction has no TransferChecked"}
    source = keys[bytes(transfer.accounts)[0]]
    blockhash = str(msg.recent_blockhash)
    how = f"isBlockhashValid({blockhash}); getSignaturesForAddress({source}) + getTransaction"
    alive = rpc.sol_blockhash_valid(network, blockhash)     # asked first: see the module doc
    signed_at = _epoch(entry.get("created_at"))
    cutoff = signed_at - 120 if signed_at else None          # nothing signed then can be older (clock skew allowance)
    before, fetched = None, 0
    for _ in range(SOL_HISTORY_PAGES):
        page = rpc.sol_signatures_for_address(network, source, before=before, limit=SOL_PAGE)
        for item in page:
            bt = item.get("blockTime")
            if cutoff is not None and isinstance(bt, (int, float)) and bt < cutoff:
                return _not_found(how, alive, fetched)
            if fetched >= SOL_HISTORY_TXS:
                return None, how, {"reason": f"the payer's token account has more than {SOL_HISTORY_TXS} transactions "
                                             "since the payment was signed; the search stopped"}
            got = rpc.sol_transaction(network, item["signature"])
            fetched += 1
            sigs = (((got or {}).get("transaction") or {}).get("signatures")) or []
            if payer_sig in sigs:
                err = ((got or {}).get("meta") or {}).get("err")
                facts = {"transaction": item["signature"], "slot": got.get("slot")}
                if err is not None:
                    return False, how, {**facts, "failed": True, "err": err}
                return True, how, facts
        if len(page) < SOL_PAGE:
            return _not_found(how, alive, fetched)
        before = page[-1]["signature"]
    return None, how, {"reason": "the payer's token account history is longer than this check reads"}


def _not_found(how: str, alive: bool | None, fetched: int) -> tuple[bool | None, str, dict]:
    # blockhash_valid True: it may still land (never "expired", whatever the clock says); False: it
    # never can; None: the RPC does not say, valid_before decides.
    return False, how, {"searched_transactions": fetched, "blockhash_valid": alive}


def _payer_signs_first(entry: dict) -> bool:
    """Whether the stored Solana transaction's first signer (whose signature is the tx id) is the payer."""
    try:
        tx = _stored_svm_tx(entry)
        return str(tx.message.account_keys[0]) == entry.get("payer") and str(tx.signatures[0]) == entry.get("nonce")
    except Exception:
        return False


def check(entry: dict, rpc, *, now: float | None = None) -> dict:
    """The on-chain state of one journalled payment (see the module doc). Never raises for chain trouble."""
    now = _now() if now is None else now
    vb = entry.get("valid_before")
    out: dict[str, Any] = {"state": "unknown", "scheme": None, "network": (entry.get("offer") or {}).get("network"),
                           "valid_before": vb, "checked_at": int(now)}
    if entry.get("method") in ("credits", "stripe"):
        out["reason"] = f"a {entry['method']} payment has no on-chain authorization" + (" (reconcile.py asks Stripe about its token)" if entry["method"] == "stripe" else "")
        return out
    try:
        scheme = scheme_of(entry)
        out["scheme"] = scheme
        consumed, how, facts = _consumed(entry, rpc, scheme)
    except ComputeError as e:
        out["reason"] = f"could not read the chain: {e.message}"
        return out
    except (KeyError, ValueError, TypeError) as e:
        out["reason"] = f"the journal entry lacks what the check needs ({type(e).__name__}: {e})"
        return out
    out["query"] = how
    out.update(facts)
    if consumed is None:
        return out
    if consumed:
        out["state"] = "used"
    elif facts.get("failed") or facts.get("blockhash_valid") is False:
        out["state"] = "expired_unused"
    elif facts.get("blockhash_valid") is True:
        out["state"] = "unused"
    elif isinstance(vb, int) and vb <= now:
        out["state"] = "expired_unused"
    else:
        out["state"] = "unused"
    return out
