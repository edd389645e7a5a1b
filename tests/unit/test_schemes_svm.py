"""Solana exact: transaction structure byte by byte, signature slots, layouts chosen from the challenge,
mint facts from the chain, and the missing-recipient-account refusal. A stub Rpc holds the accounts."""

from __future__ import annotations

import base64
import itertools
import struct

import base58
import pytest
from nacl.signing import VerifyKey
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction
from x402_compute.config import Settings
from x402_compute.errors import ComputeError, ConfigError, PaymentRequired, PolicyError
from x402_compute.payments.model import Offer
from x402_compute.payments.rpc import AccountInfo
from x402_compute.payments.schemes import sign_offer, svm_exact

TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022 = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
CB = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
PAYER = Keypair.from_seed(bytes([1]) * 32)
PAY_TO = Keypair.from_seed(bytes([2]) * 32).pubkey()
FEE_PAYER = Keypair.from_seed(bytes([3]) * 32).pubkey()
HINT = str(Hash(bytes([9]) * 32))
NOW = 1_750_000_000


def mint_data(decimals: int) -> bytes:
    return bytes(44) + bytes([decimals]) + bytes([1]) + bytes(36)


class StubRpc:
    def __init__(self, *, program=TOKEN, decimals=6, recipient=True, blockhash=str(Hash(bytes([7]) * 32)),
                 mint=USDC):
        self.accounts = {mint: AccountInfo(str(program), mint_data(decimals), 1)}
        if recipient:
            ata = get_associated_token_address(PAY_TO, Pubkey.from_string(mint), program)
            self.accounts[str(ata)] = AccountInfo(str(program), bytes(165), 1)
        self.blockhash = blockhash
        self.asked: list = []

    _serial = itertools.count()

    def cache_key(self, network):
        # Unique per stub for the life of the process (id() is reused once a stub is collected,
        # which would hand a new stub the old one's cached mint and destination facts).
        if not hasattr(self, "_key"):
            self._key = next(StubRpc._serial)
        return ("stub", self._key, network)

    def sol_account_info(self, network, address):
        self.asked.append(address)
        return self.accounts.get(address)

    def sol_latest_blockhash(self, network):
        self.asked.append("blockhash")
        return self.blockhash

    def sol_rent_exempt_lamports(self, network, size):
        assert size == 165
        return 2_039_280


def settings() -> Settings:
    return Settings(solana_secret_key=base58.b58encode(bytes(PAYER)).decode())


def offer(*, version=2, amount=1_234_567, extra=None, mint=USDC) -> Offer:
    if extra is None:
        extra = {"feePayer": str(FEE_PAYER), "recentBlockhash": HINT}
    network = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp" if version == 2 else "solana"
    raw = {"scheme": "exact", "network": network, "asset": mint, "payTo": str(PAY_TO), "maxTimeoutSeconds": 60,
           "extra": extra}
    return Offer(version=version, scheme="exact", network=network, key="solana", amount=amount, asset=mint,
                 pay_to=str(PAY_TO), max_timeout_seconds=60, extra=extra, raw=raw)


def decode(signed) -> VersionedTransaction:
    return VersionedTransaction.from_bytes(base64.b64decode(signed.payload["transaction"], validate=True))


def parts(tx):
    keys = list(tx.message.account_keys)
    out = []
    for ix in tx.message.instructions:
        metas = [(keys[i], tx.message.is_signer(i), tx.message.is_maybe_writable(i)) for i in bytes(ix.accounts)]
        out.append((keys[ix.program_id_index], bytes(ix.data), metas))
    return keys, out


def assert_payer_signature(tx, signed):
    keys = list(tx.message.account_keys)
    idx = keys.index(PAYER.pubkey())
    raw_sig = bytes(tx.signatures[idx])
    VerifyKey(bytes(PAYER.pubkey())).verify(to_bytes_versioned(tx.message), raw_sig)   # raises if wrong
    assert signed.nonce == str(tx.signatures[idx]) and signed.payer == str(PAYER.pubkey())


def test_spec_layout_for_v2():
    rpc = StubRpc()
    s = sign_offer(offer(), settings(), now=NOW, rpc=rpc)
    tx = decode(s)
    keys, ixs = parts(tx)
    assert keys[0] == FEE_PAYER
    assert bytes(tx.signatures[0]) == bytes(64)                     # the facilitator's slot stays empty
    assert tx.message.header.num_required_signatures == 2
    assert str(tx.message.recent_blockhash) == HINT and "blockhash" not in rpc.asked
    assert [p for p, _, _ in ixs] == [CB, CB, TOKEN, MEMO]
    assert ixs[0][1] == bytes([2]) + struct.pack("<I", 20_000)
    assert ixs[1][1] == bytes([3]) + struct.pack("<Q", 1)
    assert ixs[2][1] == bytes([12]) + struct.pack("<Q", 1_234_567) + bytes([6])
    mint = Pubkey.from_string(USDC)
    assert ixs[2][2] == [
        (get_associated_token_address(PAYER.pubkey(), mint), False, True),
        (mint, False, False),
        (get_associated_token_address(PAY_TO, mint), False, True),
        (PAYER.pubkey(), True, False),
    ]
    memo = ixs[3][1]
    assert len(memo) == 32 and all(c in b"0123456789abcdef" for c in memo) and ixs[3][2] == []
    assert all(FEE_PAYER not in [m[0] for m in metas] for _, _, metas in ixs)
    assert_payer_signature(tx, s)
    assert s.valid_before == NOW + 60
    again = parts(decode(sign_offer(offer(), settings(), now=NOW, rpc=rpc)))[1]
    assert again[3][1] != memo                                         # fresh memo → distinct transactions


def test_tampered_transaction_no_longer_verifies():
    s = sign_offer(offer(), settings(), now=NOW, rpc=StubRpc())
    raw = bytearray(base64.b64decode(s.payload["transaction"]))
    amount_le = struct.pack("<Q", 1_234_567)
    i = bytes(raw).index(amount_le)
    raw[i] ^= 1
    tx = VersionedTransaction.from_bytes(bytes(raw))
    keys = list(tx.message.account_keys)
    idx = keys.index(PAYER.pubkey())
    assert not tx.signatures[idx].verify(PAYER.pubkey(), to_bytes_versioned(tx.message))


def test_extra_memo_is_used_verbatim_even_in_v1():
    s = sign_offer(offer(version=1, extra={"feePayer": str(FEE_PAYER), "recentBlockhash": HINT, "memo": "order-42"}),
                   settings(), now=NOW, rpc=StubRpc())
    _, ixs = parts(decode(s))
    assert len(ixs) == 4 and ixs[3] == (MEMO, b"order-42", [])
    assert ixs[0][1] == bytes([2]) + struct.pack("<I", 20_000)


def test_upstream_layout_for_v1_without_memo():
    s = sign_offer(offer(version=1), settings(), now=NOW, rpc=StubRpc())
    tx = decode(s)
    _, ixs = parts(tx)
    assert [p for p, _, _ in ixs] == [CB, CB, TOKEN]
    assert ixs[0][1] == bytes([2]) + struct.pack("<I", 200_000)
    assert ixs[1][1] == bytes([3]) + struct.pack("<Q", 1_000)
    assert list(tx.message.account_keys)[0] == FEE_PAYER and bytes(tx.signatures[0]) == bytes(64)
    assert_payer_signature(tx, s)


def test_upstream_layout_without_fee_payer_pays_its_own_fee():
    rpc = StubRpc()
    s = sign_offer(offer(version=1, extra={}), settings(), now=NOW, rpc=rpc)
    tx = decode(s)
    assert tx.message.header.num_required_signatures == 1
    assert list(tx.message.account_keys)[0] == PAYER.pubkey()
    assert str(tx.message.recent_blockhash) == rpc.blockhash and "blockhash" in rpc.asked
    assert_payer_signature(tx, s)


def test_spec_layout_requires_fee_payer():
    with pytest.raises(PaymentRequired) as e:
        sign_offer(offer(extra={"recentBlockhash": HINT}), settings(), now=NOW, rpc=StubRpc())
    assert "feePayer" in e.value.message


def test_decimals_and_program_come_from_the_mint():
    mint = str(Keypair.from_seed(bytes([5]) * 32).pubkey())
    rpc = StubRpc(program=TOKEN_2022, decimals=9, mint=mint)
    s = sign_offer(offer(mint=mint, amount=10**9), settings(), now=NOW, rpc=rpc)
    _, ixs = parts(decode(s))
    assert ixs[2][0] == TOKEN_2022
    assert ixs[2][1] == bytes([12]) + struct.pack("<Q", 10**9) + bytes([9])
    m = Pubkey.from_string(mint)
    assert ixs[2][2][0][0] == get_associated_token_address(PAYER.pubkey(), m, TOKEN_2022)
    assert ixs[2][2][2][0] == get_associated_token_address(PAY_TO, m, TOKEN_2022)
    # Mint facts are cached per (rpc, mint): a second payment asks only about the recipient.
    rpc.asked.clear()
    sign_offer(offer(mint=mint, amount=10**9), settings(), now=NOW, rpc=rpc)
    assert mint not in rpc.asked


def test_missing_recipient_account_is_a_clear_refusal():
    with pytest.raises(PolicyError) as e:
        sign_offer(offer(), settings(), now=NOW, rpc=StubRpc(recipient=False))
    err = e.value
    assert err.code == "recipient_token_account_missing"
    ata = get_associated_token_address(PAY_TO, Pubkey.from_string(USDC), TOKEN)
    assert err.details == {
        "recipient": str(PAY_TO), "token_account": str(ata), "mint": USDC, "token_program": str(TOKEN),
        "create_cost_lamports": 2_039_280, "create_cost_sol": "0.00203928",
        "create_fee_lamports": 5_000, "create_total_lamports": 2_044_280, "create_total_sol": "0.00204428",
        "create_with": "--create-recipient-account",
    }
    assert "2039280" in err.hint and "0.00204428 SOL" in err.hint and "--create-recipient-account" in err.hint


def test_upstream_layout_pays_into_payto_when_it_is_a_token_account():
    rpc = StubRpc(recipient=False)
    rpc.accounts[str(PAY_TO)] = AccountInfo(str(TOKEN), bytes(Pubkey.from_string(USDC)) + bytes(133), 1)
    _, ixs = parts(decode(sign_offer(offer(version=1), settings(), now=NOW, rpc=rpc)))
    assert ixs[2][2][2][0] == PAY_TO
    with pytest.raises(PolicyError):     # the spec layout insists on ATA(payTo)
        sign_offer(offer(version=2), settings(), now=NOW, rpc=rpc)


def test_no_solana_wallet_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        sign_offer(offer(), Settings(), now=NOW, rpc=StubRpc())
    assert "Solana" in e.value.message


def test_signature_slot_matches_keypair_route():
    # The payer signs through SolanaSigner.sign_message; the bytes equal solders' own keypair signing.
    from solders.null_signer import NullSigner
    s = sign_offer(offer(), settings(), now=NOW, rpc=StubRpc())
    tx = decode(s)
    ref = VersionedTransaction(tx.message, [NullSigner(FEE_PAYER), PAYER])
    assert bytes(ref) == bytes(tx)
    assert ref.signatures[0] == Signature.default()


# ---- the opt-in creation of a missing recipient token account ---------------------------------------

ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM = Pubkey.from_string("11111111111111111111111111111111")


class WritingRpc(StubRpc):
    """StubRpc plus the three calls the create step makes; `land` controls what the chain does."""

    def __init__(self, *, sol=10**9, land="confirmed", **kw):
        super().__init__(recipient=False, **kw)
        self.sol, self.land, self.sent, self.polls = sol, land, [], 0

    def sol_balance(self, network, address):
        assert address == str(PAYER.pubkey())
        return self.sol

    def sol_send_transaction(self, network, tx_base64):
        tx = VersionedTransaction.from_bytes(base64.b64decode(tx_base64))
        self.sent.append(tx)
        if self.land == "confirmed":
            ata = get_associated_token_address(PAY_TO, Pubkey.from_string(USDC), TOKEN)
            self.accounts[str(ata)] = AccountInfo(str(TOKEN), bytes(165), 2_039_280)
        return str(tx.signatures[0])

    def sol_signature_statuses(self, network, signatures):
        self.polls += 1
        if self.land == "confirmed":
            return [{"err": None, "confirmationStatus": "confirmed"}]
        if self.land == "failed":
            return [{"err": "InsufficientFundsForRent", "confirmationStatus": "confirmed"}]
        return [None]


def _signer():
    from x402_compute.wallets.solana import SolanaSigner
    return SolanaSigner(base58.b58encode(bytes(PAYER)).decode())


def test_create_ata_instruction_bytes_and_accounts():
    mint = Pubkey.from_string(USDC)
    ata = get_associated_token_address(PAY_TO, mint, TOKEN)
    ix = svm_exact.create_ata_instruction(payer=PAYER.pubkey(), ata=ata, owner=PAY_TO, mint=mint, program=TOKEN)
    assert ix.program_id == ATA_PROGRAM and bytes(ix.data) == bytes([1])          # CreateIdempotent
    assert [(m.pubkey, m.is_signer, m.is_writable) for m in ix.accounts] == [
        (PAYER.pubkey(), True, True), (ata, False, True), (PAY_TO, False, False), (mint, False, False),
        (SYSTEM, False, False), (TOKEN, False, False)]


def test_recipient_account_reports_cost_and_payer_sol():
    assert svm_exact.recipient_account(offer(), StubRpc(), str(PAYER.pubkey())) is None
    need = svm_exact.recipient_account(offer(), WritingRpc(sol=2_044_279), str(PAYER.pubkey()))
    assert need["create_total_lamports"] == 2_044_280 and need["payer_sol_lamports"] == 2_044_279
    assert need["payer_can_afford"] is False and need["payer"] == str(PAYER.pubkey())


def test_token_2022_account_rent_is_for_170_bytes():
    class Rpc2022(WritingRpc):
        def sol_rent_exempt_lamports(self, network, size):
            assert size == 170   # ImmutableOwner extension
            return 2_074_080
    need = svm_exact.recipient_account(offer(), Rpc2022(program=TOKEN_2022), str(PAYER.pubkey()))
    assert need["create_cost_lamports"] == 2_074_080 and need["token_program"] == str(TOKEN_2022)


def test_create_recipient_account_signs_sends_and_confirms():
    rpc = WritingRpc()
    done = svm_exact.create_recipient_account(offer(), _signer(), rpc, sleep=lambda s: None)
    (tx,) = rpc.sent
    assert tx.message.header.num_required_signatures == 1 and list(tx.message.account_keys)[0] == PAYER.pubkey()
    VerifyKey(bytes(PAYER.pubkey())).verify(to_bytes_versioned(tx.message), bytes(tx.signatures[0]))
    keys, ixs = parts(tx)
    (prog, data, metas), = ixs
    assert prog == ATA_PROGRAM and data == bytes([1]) and metas[0] == (PAYER.pubkey(), True, True)
    assert done["signature"] == str(tx.signatures[0]) and done["total_lamports"] == 2_044_280
    # The account now exists: a second call signs nothing.
    assert svm_exact.create_recipient_account(offer(), _signer(), rpc, sleep=lambda s: None) is None
    assert len(rpc.sent) == 1
    # ...and the payment itself now signs.
    sign_offer(offer(), settings(), now=NOW, rpc=rpc)


def test_create_recipient_account_refuses_without_enough_sol_before_signing():
    rpc = WritingRpc(sol=1_000)
    with pytest.raises(PolicyError) as e:
        svm_exact.create_recipient_account(offer(), _signer(), rpc)
    assert e.value.code == "insufficient_sol" and rpc.sent == []


def test_create_recipient_account_failure_and_bounded_wait():
    rpc = WritingRpc(land="failed")
    with pytest.raises(ComputeError) as e:
        svm_exact.create_recipient_account(offer(), _signer(), rpc, sleep=lambda s: None)
    assert e.value.code == "recipient_account_create_failed"
    t = [0.0]
    rpc = WritingRpc(land="never")

    def sleep(s):
        t[0] += s
    with pytest.raises(ComputeError) as e:
        svm_exact.create_recipient_account(offer(), _signer(), rpc, sleep=sleep, clock=lambda: t[0], timeout=5)
    assert e.value.code == "recipient_account_unconfirmed" and e.value.details["signature"]
    assert rpc.polls == 11 and len(rpc.sent) == 1   # polled for 5 s at 0.5 s, sent once


def test_a_stale_blockhash_hint_is_replaced_by_the_chains():
    # The 402's hint was read before the confirmation (or the recipient-account wait): it may have expired.
    rpc = StubRpc()
    o = offer()
    o.received_at = NOW - 120
    tx = decode(sign_offer(o, settings(), now=NOW, rpc=rpc))
    assert str(tx.message.recent_blockhash) == rpc.blockhash and "blockhash" in rpc.asked
    rpc = StubRpc()
    o.received_at = NOW - 2                                              # fresh: the hint is fine
    tx = decode(sign_offer(o, settings(), now=NOW, rpc=rpc))
    assert str(tx.message.recent_blockhash) == HINT and "blockhash" not in rpc.asked
