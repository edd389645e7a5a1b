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

The recipient's token account must exist (x402 v2 has no create-ATA instruction). When it does not, we
refuse with ``recipient_token_account_missing`` and say what creating it would cost the payer; creating
it ourselves (``allow_create_ata``) is not implemented yet.

solders is imported here because this module is loaded only when a Solana payment is signed.
"""

from __future__ import annotations

import base64
import os
import struct
from typing import Any

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from ...errors import ComputeError, PaymentRequired, PolicyError
from ...networks import NETWORKS
from ..model import Offer, Signed
from ..rpc import rpc_cache_key

TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"
COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")

TOKEN_ACCOUNT_LEN = 165
MINT_DECIMALS_OFFSET = 44  # SPL Mint: COption<Pubkey> authority (36) + supply u64 (8) → decimals
MAX_MEMO_BYTES = 256

LAYOUTS = {
    # name: (compute unit limit, compute unit price in µlamports, memo?)
    "spec": (20_000, 1, True),
    "upstream": (200_000, 1_000, False),
}
# A blockhash stays usable for ~150 slots (60–90 s); report the conservative end as the expiry.
BLOCKHASH_LIFETIME_SECONDS = 60

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


def _destination(rpc: Any, network: str, *, layout: str, pay_to: Pubkey, mint: Pubkey, program: Pubkey) -> Pubkey:
    ata = get_associated_token_address(pay_to, mint, program)
    if rpc.sol_account_info(network, str(ata)) is not None:
        return ata
    if layout == "upstream":
        # Upstream pays straight into payTo when payTo already is a token account of this mint.
        acct = rpc.sol_account_info(network, str(pay_to))
        if acct is not None and acct.owner == str(program) and len(acct.data) >= TOKEN_ACCOUNT_LEN and acct.data[:32] == bytes(mint):
            return pay_to
    rent = rpc.sol_rent_exempt_lamports(network, TOKEN_ACCOUNT_LEN)
    raise PolicyError(
        f"The recipient {pay_to} has no token account for {mint}; the payment could not arrive.",
        code="recipient_token_account_missing",
        details={"recipient": str(pay_to), "token_account": str(ata), "mint": str(mint),
                 "create_cost_lamports": rent, "create_cost_sol": f"{rent / 1e9:.9f}".rstrip("0")},
        hint=f"Creating it would cost the payer {rent} lamports of rent; this client does not create it yet. "
        "Ask the seller to create its token account, or pay on another network.",
    )


def sign(offer: Offer, signer: Any, *, now: int, rpc_factory, allow_create_ata: bool = False) -> Signed:
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
    destination = _destination(rpc, net.key, layout=layout, pay_to=pay_to, mint=mint, program=program)
    source = get_associated_token_address(payer, mint, program)

    hint = extra.get("recentBlockhash")
    blockhash = None
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
