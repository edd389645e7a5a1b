"""solana: a partially signed SPL `TransferChecked` transaction whose fee payer is ours (x402.md §9.4),
inspected instruction by instruction, co-signed, simulated and executed by LiteSVM's token program."""
from __future__ import annotations

import base64

from ..networks import Network
from . import reject

# Solana compute price cap: 5 lamports per CU = 5,000,000 micro-lamports (x402.md §9.2).
MAX_CU_PRICE_MICROLAMPORTS = 5_000_000


def verify(chain, net: Network, inner: dict, req: dict, amount: int, *, fee_payer_key, settled) -> dict:
    from solders.message import to_bytes_versioned
    from solders.pubkey import Pubkey
    from solders.signature import Signature
    from solders.transaction import VersionedTransaction
    from ..chains.svm import (COMPUTE_BUDGET_PROGRAM_ID, LIGHTHOUSE_PROGRAM_ID, MEMO_PROGRAM_ID,
                              TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, SvmError)

    extra = req.get("extra") or {}
    fee_payer = fee_payer_key.pubkey()
    if not extra.get("feePayer"):
        reject("invalid_exact_svm_payload_missing_fee_payer", "requirement extra lacks feePayer")
    if extra["feePayer"] != str(fee_payer):
        reject("fee_payer_not_managed_by_facilitator", "extra.feePayer is not this facilitator's key")
    raw_b64 = inner.get("transaction")
    try:
        raw = base64.b64decode(raw_b64, validate=True)
        tx = VersionedTransaction.from_bytes(raw)
    except Exception:
        reject("invalid_exact_svm_payload_transaction_could_not_be_decoded",
               "payload.transaction is not a base64 serialized VersionedTransaction")
    msg = tx.message
    keys = list(msg.account_keys)
    if getattr(msg, "address_table_lookups", None):
        reject("invalid_exact_svm_payload_transaction_could_not_be_decoded",
               "address lookup tables are not supported")
    if not keys or keys[0] != fee_payer:
        reject("fee_payer_not_managed_by_facilitator", "the transaction's fee payer is not extra.feePayer")
    ixs = list(msg.instructions)
    if not 3 <= len(ixs) <= 6:
        reject("invalid_exact_svm_payload_transaction_instructions_length",
               f"{len(ixs)} instructions; expected 3 to 6")

    def program(ix) -> Pubkey:
        return keys[ix.program_id_index]

    def accounts(ix) -> list:
        return [keys[i] for i in bytes(ix.accounts)]

    cu_limit, cu_price, transfer = ixs[0], ixs[1], ixs[2]
    d = bytes(cu_limit.data)
    if program(cu_limit) != COMPUTE_BUDGET_PROGRAM_ID or len(d) != 5 or d[0] != 2:
        reject("invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction",
               "instruction 1 must be SetComputeUnitLimit")
    d = bytes(cu_price.data)
    if program(cu_price) != COMPUTE_BUDGET_PROGRAM_ID or len(d) != 9 or d[0] != 3:
        reject("invalid_exact_svm_payload_transaction_instructions_compute_price_instruction",
               "instruction 2 must be SetComputeUnitPrice")
    if int.from_bytes(d[1:], "little") > MAX_CU_PRICE_MICROLAMPORTS:
        reject("invalid_exact_svm_payload_transaction_instructions_compute_price_instruction_too_high",
               "compute unit price above 5 lamports/CU")
    d = bytes(transfer.data)
    t_accounts = accounts(transfer)
    if (program(transfer) not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) or len(d) != 10 or d[0] != 12
            or len(t_accounts) < 4):
        reject("invalid_exact_svm_payload_no_transfer_instruction", "instruction 3 must be TransferChecked")
    source, mint, destination, authority = t_accounts[:4]
    payer = str(authority)
    if str(mint) != net.asset:
        reject("invalid_exact_svm_payload_mint_mismatch", "TransferChecked mint is not the asset", payer)
    mint_program, mint_decimals = chain.mint_info()
    if program(transfer) != mint_program:
        reject("invalid_exact_svm_payload_mint_mismatch", "transfer uses another token program than the mint's", payer)
    pay_to = Pubkey.from_string(req["payTo"])
    if destination != chain.ata(pay_to):
        reject("invalid_exact_svm_payload_recipient_mismatch", "destination is not ATA(payTo, asset)", payer)
    value = int.from_bytes(d[1:9], "little")
    if value < amount:
        reject("invalid_exact_svm_payload_amount_insufficient", f"amount {value} < required {amount}", payer)
    if value != amount:
        reject("invalid_exact_svm_payload_amount_mismatch", f"amount {value} != required {amount}", payer)
    if d[9] != mint_decimals:
        reject("invalid_exact_svm_payload_mint_mismatch", f"decimals {d[9]} != mint decimals {mint_decimals}", payer)

    memos = []
    ordinal = {3: "fourth", 4: "fifth", 5: "sixth"}
    for i, ix in enumerate(ixs[3:], start=3):
        if program(ix) == MEMO_PROGRAM_ID:
            memos.append(bytes(ix.data))
        elif program(ix) != LIGHTHOUSE_PROGRAM_ID:
            reject(f"invalid_exact_svm_payload_unknown_{ordinal[i]}_instruction",
                   f"instruction {i + 1} is neither Memo nor Lighthouse", payer)
    if len(memos) > 1:
        reject("invalid_exact_svm_payload_memo_count", "at most one memo", payer)
    if extra.get("memo") is not None:
        if len(memos) != 1:
            reject("invalid_exact_svm_payload_memo_count", "extra.memo requires exactly one memo", payer)
        if memos[0] != str(extra["memo"]).encode():
            reject("invalid_exact_svm_payload_memo_mismatch", "memo differs from extra.memo", payer)

    if fee_payer in (authority, source) or any(fee_payer in accounts(ix) for ix in ixs):
        reject("invalid_exact_svm_payload_transaction_fee_payer_transferring_funds",
               "the fee payer appears in an instruction's accounts", payer)

    # The payer's signature: authority must be a required signer and its slot must verify.
    n_signers = msg.header.num_required_signatures
    signer_keys = keys[:n_signers]
    if authority not in signer_keys or len(tx.signatures) != n_signers:
        reject("invalid_exact_svm_payload_signature", "the transfer authority did not sign", payer)
    message_bytes = to_bytes_versioned(msg)
    for idx, key in enumerate(signer_keys):
        if idx == 0:
            continue   # our slot, filled in below
        if not tx.signatures[idx].verify(key, message_bytes):
            reject("invalid_exact_svm_payload_signature", f"signature of {key} does not verify", payer)
    if n_signers > 2:
        reject("invalid_exact_svm_payload_signature", "only the fee payer and the payer may sign", payer)

    src_acct = chain.token_account(source)
    if src_acct is None or src_acct.mint != chain.mint or src_acct.owner != authority:
        reject("invalid_exact_svm_payload_sender_ata_not_found", "source is not the payer's token account", payer)
    if chain.token_account(destination) is None:
        reject("invalid_exact_svm_payload_receiver_ata_not_found",
               "the recipient's associated token account does not exist (x402 v2 requires it to exist)", payer)
    if src_acct.amount < amount:
        reject("insufficient_funds", f"payer holds {src_acct.amount} < {amount}", payer)

    fee_sig = fee_payer_key.sign_message(message_bytes)
    signed = VersionedTransaction.populate(msg, [fee_sig] + list(tx.signatures[1:]))
    fingerprint = (net.label, "svm", str(tx.signatures[1] if n_signers > 1 else Signature.default()))
    if chain.processed(str(fee_sig)):   # the chain's own history, kept across restarts
        reject("duplicate_settlement", "this transaction was already processed", payer)
    if fingerprint not in settled:
        try:
            chain.simulate(signed)
        except SvmError as exc:
            reject("transaction_simulation_failed", f"simulation failed: {exc.reason}", payer)

    def settle() -> str:
        try:
            return chain.send(signed)
        except SvmError as exc:
            reject("transaction_failed", f"execution failed: {exc.reason}", payer)

    return {"payer": payer, "fingerprint": fingerprint, "settle": settle}
