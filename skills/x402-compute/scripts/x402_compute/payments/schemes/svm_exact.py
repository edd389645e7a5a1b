"""x402 ``exact`` on Solana: a partially signed v0 transaction with an SPL ``TransferChecked``.

Layout (compute-api.md §13 #13 — decided from the challenge, both builders kept):

- **spec layout** when the offer is x402 v2 or carries ``extra.memo``:
  ``[SetComputeUnitLimit 20000, SetComputeUnitPrice 1 µlamport, TransferChecked, Memo]`` with the memo
  ``extra.memo`` or 16 random bytes as hex (what the x402 reference clients send and what the spec
  requires; the random memo keeps two identical payments from colliding). Needs ``extra.feePayer``.
- **upstream layout** for v1 offers without ``extra.memo``:
  ``[SetComputeUnitLimit 200000, SetComputeUnitPrice 1000 µlamports, TransferChecked]``, no memo — the
  three instructions the upstream compute skill has been paying production with. The fee payer is
  ``extra.feePayer``, or the payer itself when the challenge names none (as upstream does); its
  destination may be ``payTo`` itself when ``payTo`` is already a token account of the mint.

Common to both: v0 message without lookup tables; fee payer at account index 0 with its signature slot
left as 64 zero bytes for the facilitator; the payer signs the versioned message bytes
(``0x80 ‖ message``) through ``SolanaSigner.sign_message`` (so a vault signer works too); blockhash from
``extra.recentBlockhash`` else RPC ``getLatestBlockhash``; the token program and decimals read from the
mint account (its owner; ``data[44]``), cached per (RPC, mint) — never an assumed 6; source and
destination = associated token accounts under that program. Payload ``{"transaction": base64(tx)}``.

The recipient's token account must exist (x402 v2 has no create-ATA instruction). When it does not,
``sign`` refuses with ``recipient_token_account_missing`` and says what creating it would cost the payer.
Creating it is a separate, opt-in step the payment flow runs after the user confirmed the cost
(``--create-recipient-account``; compute-api.md §13 #14): ``recipient_account`` reports the missing
account and its cost (rent-exempt lamports + the one-signature fee) and the payer's SOL;
``create_recipient_account`` re-checks, checks the SOL, signs an ATA ``CreateIdempotent`` paid by the
user's wallet, sends it and waits (bounded) for its confirmation. Upstream did this silently
(user-expectations.md §6 item 12); here it is never silent and never twice for one recipient.

solders is imported here because this module is loaded only when a Solana payment is signed.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from decimal import Decimal
from typing import Any, Callable

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from ...errors import ComputeError, NetworkError, PaymentRequired, PolicyError
from ...networks import NETWORKS
from ..model import Offer, Signed
from ..rpc import rpc_cache_key

TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
ASSOCIATED_TOKEN_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")

TOKEN_ACCOUNT_LEN = 165
# A Token-2022 ATA carries the ImmutableOwner extension: 165 + account type (1) + TLV header (4).
TOKEN_2022_ATA_LEN = 170
# Solana's base fee per signature; the create transaction sets no compute-unit price, so no priority fee.
LAMPORTS_PER_SIGNATURE = 5_000
CREATE_ATA_SIGNATURES = 1  # the payer is the fee payer and the only signer
# Bounded wait for the create transaction: about one blockhash lifetime, after which it can never land.
CONFIRM_TIMEOUT_SECONDS = 90.0
CONFIRM_POLL_SECONDS = 0.5
CREATE_FLAG = "--create-recipient-account"
MINT_DECIMALS_OFFSET = 44  # SPL Mint: COption<Pubkey> authority (36) + supply u64 (8) → decimals
MAX_MEMO_BYTES = 256

LAYOUTS = {
    # name: (compute unit limit, compute unit price in µlamports, memo?)
    "spec": (20_000, 1, True),
    "upstream": (200_000, 1_000, False),
}
# A blockhash stays usable for ~150 slots (60–90 s); report the conservative end as the expiry.
BLOCKHASH_LIFETIME_SECONDS = 60
# The 402's recentBlockhash hint is used only this soon after the 402 arrived; later (a slow confirmation,
# the --create-recipient-account wait of up to 90 s) a fresh one comes from getLatestBlockhash.
BLOCKHASH_HINT_MAX_AGE_SECONDS = 15

_mint_cache: dict[tuple, tuple[str, int]] = {}


def choose_layout(offer: Offer) -> str:
    extra = offer.extra or {}
    return "spec" if offer.version == 2 or extra.get("memo") is not None else "upstream"


def _pubkey(value: Any, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(str(value))
    except Exception:
        raise PaymentRequired(f"The Solana offer's {what} is not a public key: {value!r}.", code="unusable_offer") from None


def mint_info(rpc: Any, network: str, mint: str) -> tuple[str, int]:
    """(token program id, decimals) of a mint, from its account; cached because neither can change."""
    key = (rpc_cache_key(rpc, network), mint)
    if key not in _mint_cache:
        acct = rpc.sol_account_info(network, mint)
        if acct is None:
            raise PaymentRequired(f"The offer's asset {mint} does not exist on {network}.", code="unusable_offer")
        if acct.owner not in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM) or len(acct.data) <= MINT_DECIMALS_OFFSET:
            raise PaymentRequired(f"The offer's asset {mint} is not an SPL token mint.", code="unusable_offer")
        _mint_cache[key] = (acct.owner, acct.data[MINT_DECIMALS_OFFSET])
    return _mint_cache[key]


def instructions(*, layout: str, program: Pubkey, source: Pubkey, mint: Pubkey, destination: Pubkey, owner: Pubkey,
                 amount: int, decimals: int, memo: bytes | None) -> list:
    """The instruction list, bytes built by hand (local-chains.md §6.3): solders has no SPL builders."""
    cu_limit, cu_price, with_memo = LAYOUTS[layout]
    ixs = [
        Instruction(COMPUTE_BUDGET_PROGRAM, bytes([2]) + struct.pack("<I", cu_limit), []),
        Instruction(COMPUTE_BUDGET_PROGRAM, bytes([3]) + struct.pack("<Q", cu_price), []),
        Instruction(
            program,
            bytes([12]) + struct.pack("<Q", amount) + bytes([decimals]),
            [
                AccountMeta(source, is_signer=False, is_writable=True),
                AccountMeta(mint, is_signer=False, is_writable=False),
                AccountMeta(destination, is_signer=False, is_writable=True),
                AccountMeta(owner, is_signer=True, is_writable=False),
            ],
        ),
    ]
    if with_memo:
        ixs.append(Instruction(MEMO_PROGRAM, memo if memo is not None else os.urandom(16).hex().encode(), []))
    return ixs


def _memo(offer: Offer) -> bytes | None:
    memo = (offer.extra or {}).get("memo")
    if memo is None:
        return None
    data = str(memo).encode("utf-8")
    if len(data) > MAX_MEMO_BYTES:
        raise PaymentRequired(f"extra.memo is {len(data)} bytes; x402 allows at most {MAX_MEMO_BYTES}.", code="unusable_offer")
    return data


def _existing_destination(rpc: Any, network: str, *, layout: str, pay_to: Pubkey, mint: Pubkey,
                          program: Pubkey) -> Pubkey | None:
    """Where the transfer can land today: ATA(payTo), or (upstream layout) payTo itself; else None.

    A destination found is remembered for this process (a token account does not disappear between
    the recipient check before the quote and the signing a moment later); a missing one is always
    asked again (it may just have been created)."""
    key = (rpc_cache_key(rpc, network), str(pay_to), str(mint), str(program), layout)
    if key in _destination_cache:
        return _destination_cache[key]
    ata = get_associated_token_address(pay_to, mint, program)
    found = None
    if rpc.sol_account_info(network, str(ata)) is not None:
        found = ata
    elif layout == "upstream":
        # Upstream pays straight into payTo when payTo already is a token account of this mint.
        acct = rpc.sol_account_info(network, str(pay_to))
        if acct is not None and acct.owner == str(program) and len(acct.data) >= TOKEN_ACCOUNT_LEN and acct.data[:32] == bytes(mint):
            found = pay_to
    if found is not None:
        _destination_cache[key] = found
    return found


_destination_cache: dict = {}


def lamports_to_sol(lamports: int) -> str:
    """Exact SOL as text, no exponent or trailing zeros: 2044280 → 0.00204428."""
    return format((Decimal(lamports).scaleb(-9)).normalize(), "f")


def _account_len(program: Pubkey) -> int:
    return TOKEN_2022_ATA_LEN if str(program) == TOKEN_2022_PROGRAM else TOKEN_ACCOUNT_LEN


def _create_cost(rpc: Any, network: str, program: Pubkey) -> tuple[int, int]:
    """(rent-exempt lamports the new account holds, transaction fee) — both paid by the payer."""
    return rpc.sol_rent_exempt_lamports(network, _account_len(program)), LAMPORTS_PER_SIGNATURE * CREATE_ATA_SIGNATURES


def _missing_details(*, pay_to: Pubkey, ata: Pubkey, mint: Pubkey, program: Pubkey, rent: int, fee: int) -> dict:
    return {
        "recipient": str(pay_to),
        "token_account": str(ata),
        "mint": str(mint),
        "token_program": str(program),
        "create_cost_lamports": rent,  # rent-exempt minimum the new account holds (kept by the recipient)
        "create_cost_sol": lamports_to_sol(rent),
        "create_fee_lamports": fee,
        "create_total_lamports": rent + fee,
        "create_total_sol": lamports_to_sol(rent + fee),
        "create_with": CREATE_FLAG,
    }


def missing_recipient_error(details: dict) -> PolicyError:
    return PolicyError(
        f"The recipient {details['recipient']} has no token account for {details['mint']}; the payment could not arrive.",
        code="recipient_token_account_missing",
        details=details,
        hint=(
            f"Creating it would cost your Solana wallet {details['create_total_sol']} SOL "
            f"({details['create_cost_lamports']} lamports of rent + {details['create_fee_lamports']} lamports fee). "
            f"Tell the human: only they may create it at their wallet's cost (they run the same command with {CREATE_FLAG}; "
            "the cost is shown in the quote and confirmed before anything is signed); or ask the seller to create it, or pay on another network."
        ),
    )


def _offer_keys(offer: Offer) -> tuple[Any, Pubkey, Pubkey]:
    net = NETWORKS.get(offer.key or "")
    if net is None or net.family != "svm":
        raise PaymentRequired(f"Network {offer.network!r} is not a Solana network this client knows.", code="unsupported_network")
    return net, _pubkey(offer.asset, "asset"), _pubkey(offer.pay_to, "payTo")


def recipient_account(offer: Offer, rpc: Any, payer: str) -> dict | None:
    """None when the payment's destination exists; else what creating ATA(payTo, mint) would take:
    the account, its cost (rent + fee, lamports and SOL) and the payer's SOL balance. Reads only."""
    net, mint, pay_to = _offer_keys(offer)
    program_id, _ = mint_info(rpc, net.key, str(mint))
    program = Pubkey.from_string(program_id)
    if _existing_destination(rpc, net.key, layout=choose_layout(offer), pay_to=pay_to, mint=mint, program=program):
        return None
    rent, fee = _create_cost(rpc, net.key, program)
    ata = get_associated_token_address(pay_to, mint, program)
    details = _missing_details(pay_to=pay_to, ata=ata, mint=mint, program=program, rent=rent, fee=fee)
    balance = rpc.sol_balance(net.key, payer)
    details.update(payer=payer, payer_sol_lamports=balance, payer_sol=lamports_to_sol(balance),
                   payer_can_afford=balance >= rent + fee)
    return details


def insufficient_sol_error(details: dict) -> PolicyError:
    return PolicyError(
        f"Your Solana wallet {details['payer']} holds {details['payer_sol']} SOL; creating the recipient's token "
        f"account needs {details['create_total_sol']} SOL.",
        code="insufficient_sol",
        details=details,
        hint=f"Send at least {lamports_to_sol(details['create_total_lamports'] - details['payer_sol_lamports'])} "
        "more SOL to that wallet, or ask the seller to create its token account. Nothing was signed.",
    )


def create_ata_instruction(*, payer: Pubkey, ata: Pubkey, owner: Pubkey, mint: Pubkey, program: Pubkey) -> Instruction:
    """Associated Token ``CreateIdempotent`` (data ``[1]``): succeeds without effect when the account
    exists, so a repeat (or a race with someone else creating it) can never fail or pay twice."""
    return Instruction(
        ASSOCIATED_TOKEN_PROGRAM,
        bytes([1]),
        [
            AccountMeta(payer, is_signer=True, is_writable=True),
            AccountMeta(ata, is_signer=False, is_writable=True),
            AccountMeta(owner, is_signer=False, is_writable=False),
            AccountMeta(mint, is_signer=False, is_writable=False),
            AccountMeta(SYSTEM_PROGRAM, is_signer=False, is_writable=False),
            AccountMeta(program, is_signer=False, is_writable=False),
        ],
    )


def create_recipient_account(
    offer: Offer,
    signer: Any,
    rpc: Any,
    *,
    progress: Callable[[str], None] = lambda m: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    timeout: float = CONFIRM_TIMEOUT_SECONDS,
) -> dict | None:
    """Create ATA(payTo, mint) with a transaction the payer signs and pays; wait for it to confirm.

    Returns None when the account exists already (nothing signed), else what was done: signature,
    account, lamports. Raises before signing when the payer's SOL does not cover rent + fee."""
    need = recipient_account(offer, rpc, signer.address)  # re-check right before: never create twice
    if need is None:
        return None
    if not need["payer_can_afford"]:
        raise insufficient_sol_error(need)
    net, mint, pay_to = _offer_keys(offer)
    payer = _pubkey(signer.address, "payer")
    program = Pubkey.from_string(need["token_program"])
    ata = Pubkey.from_string(need["token_account"])
    ix = create_ata_instruction(payer=payer, ata=ata, owner=pay_to, mint=mint, program=program)
    msg = MessageV0.try_compile(payer, [ix], [], Hash.from_string(rpc.sol_latest_blockhash(net.key)))
    if msg.header.num_required_signatures != CREATE_ATA_SIGNATURES:
        raise ComputeError("Internal error: unexpected signer layout for the create-account transaction.", code="internal_error")
    sig = Signature.from_bytes(bytes(signer.sign_message(to_bytes_versioned(msg))))
    tx = VersionedTransaction.populate(msg, [sig])
    signature = str(sig)
    record = {
        "signature": signature,
        "token_account": str(ata),
        "recipient": str(pay_to),
        "mint": str(mint),
        "payer": str(payer),
        "rent_lamports": need["create_cost_lamports"],
        "fee_lamports": need["create_fee_lamports"],
        "total_lamports": need["create_total_lamports"],
        "total_sol": need["create_total_sol"],
    }
    progress(f"Creating the recipient's token account {ata} ({need['create_total_sol']} SOL from {payer}); tx {signature}")
    try:
        sent = rpc.sol_send_transaction(net.key, base64.b64encode(bytes(tx)).decode("ascii"))
    except NetworkError:
        sent = signature  # it may have left: the status poll below tells
    except ComputeError as e:
        raise ComputeError(
            f"Creating the recipient's token account failed: {e.message}",
            code="recipient_account_create_failed",
            details={**record, "rpc_error": e.details},
            hint="Nothing else was signed and no payment was made.",
        ) from None
    if sent != signature:
        raise ComputeError(f"The RPC reported signature {sent} for our transaction {signature}.", code="rpc_bad_result", details=record)
    deadline = clock() + timeout
    while True:
        status = rpc.sol_signature_statuses(net.key, [signature])[0]
        if status is not None and status.get("err") is not None:
            raise ComputeError(
                f"The create-account transaction {signature} failed on chain: {status['err']}",
                code="recipient_account_create_failed",
                details={**record, "status": status},
                hint="No payment was made. Check the payer's SOL (the fee may have been spent).",
            )
        if status is not None and status.get("confirmationStatus") in ("confirmed", "finalized"):
            break
        if clock() >= deadline:
            raise ComputeError(
                f"The create-account transaction {signature} was sent but not confirmed within {timeout:g} s.",
                code="recipient_account_unconfirmed",
                details=record,
                hint="No payment was made. Run the command again: it checks whether the account exists first, "
                "and CreateIdempotent cannot create it twice.",
            )
        sleep(CONFIRM_POLL_SECONDS)
    if _existing_destination(rpc, net.key, layout=choose_layout(offer), pay_to=pay_to, mint=mint, program=program) is None:
        raise ComputeError(
            f"The create-account transaction {signature} confirmed, but the token account {ata} is not visible yet.",
            code="recipient_account_unconfirmed",
            details=record,
            hint="No payment was made. Run the command again in a few seconds.",
        )
    return record


def sign(offer: Offer, signer: Any, *, now: int, rpc_factory) -> Signed:
    net = NETWORKS.get(offer.key or "")
    if net is None or net.family != "svm":
        raise PaymentRequired(f"Network {offer.network!r} is not a Solana network this client knows.", code="unsupported_network")
    amount = offer.amount
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount < 1 << 64:
        raise PaymentRequired(f"The offer's amount is not a u64 above zero: {amount!r}.", code="unusable_offer")
    extra = offer.extra or {}
    layout = choose_layout(offer)
    payer = _pubkey(signer.address, "payer")
    if extra.get("feePayer"):
        fee_payer = _pubkey(extra["feePayer"], "extra.feePayer")
    elif layout == "upstream":
        fee_payer = payer  # upstream's fallback: the payer pays its own fee
    else:
        raise PaymentRequired(
            "The Solana offer lacks extra.feePayer, which x402 requires.", code="invalid_exact_svm_payload_missing_fee_payer"
        )
    if fee_payer == payer and extra.get("feePayer"):
        # A sponsor equal to the payer would make the facilitator sign for our funds; refuse that shape.
        raise PaymentRequired("The offer's feePayer is the paying wallet itself.", code="unusable_offer")
    memo = _memo(offer)
    mint = _pubkey(offer.asset, "asset")
    pay_to = _pubkey(offer.pay_to, "payTo")

    rpc = rpc_factory()
    program_id, decimals = mint_info(rpc, net.key, str(mint))
    program = Pubkey.from_string(program_id)
    destination = _existing_destination(rpc, net.key, layout=layout, pay_to=pay_to, mint=mint, program=program)
    if destination is None:
        rent, fee = _create_cost(rpc, net.key, program)
        raise missing_recipient_error(_missing_details(
            pay_to=pay_to, ata=get_associated_token_address(pay_to, mint, program), mint=mint, program=program,
            rent=rent, fee=fee))
    source = get_associated_token_address(payer, mint, program)

    hint = extra.get("recentBlockhash")
    blockhash = None
    if offer.received_at is not None and now - offer.received_at > BLOCKHASH_HINT_MAX_AGE_SECONDS:
        hint = None  # read before a confirmation or a recipient-account wait: it may have expired, ask the chain
    if isinstance(hint, str):
        try:
            blockhash = Hash.from_string(hint)
        except Exception:
            blockhash = None  # a bad hint is only a hint: ask the chain instead
    if blockhash is None:
        blockhash = Hash.from_string(rpc.sol_latest_blockhash(net.key))

    ixs = instructions(layout=layout, program=program, source=source, mint=mint, destination=destination,
                       owner=payer, amount=amount, decimals=decimals, memo=memo)
    msg = MessageV0.try_compile(fee_payer, ixs, [], blockhash)
    n_signers = msg.header.num_required_signatures
    signer_keys = list(msg.account_keys)[:n_signers]
    if signer_keys[0] != fee_payer or payer not in signer_keys:
        raise ComputeError("Internal error: unexpected Solana signer layout.", code="internal_error")
    own = Signature.from_bytes(bytes(signer.sign_message(to_bytes_versioned(msg))))
    # Every slot but ours stays the default all-zero signature: the facilitator fills slot 0.
    sigs = [own if key == payer else Signature.default() for key in signer_keys]
    tx = VersionedTransaction.populate(msg, sigs)
    return Signed(
        payload={"transaction": base64.b64encode(bytes(tx)).decode("ascii")},
        payer=str(payer),
        nonce=str(own),
        valid_before=now + BLOCKHASH_LIFETIME_SECONDS,
    )
