"""The LiteSVM chain: USDC at its real mint, real ATAs, SPL TransferChecked executed for real."""
from __future__ import annotations

import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import to_bytes_versioned
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction

from tests.oracle import builders as b
from x402_compute_sandbox import networks as nets
from x402_compute_sandbox.chains.svm import TOKEN_PROGRAM_ID, SvmChain, SvmError

USDC = Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v")


@pytest.fixture()
def env():
    fee_payer, payer, payee = Keypair(), Keypair(), Keypair()
    chain = SvmChain(nets.NETWORKS["solana"], fee_payer)
    chain.mint_to(payer.pubkey(), 100_000_000)
    chain.create_ata(payee.pubkey())
    return chain, fee_payer, payer, payee


def cosign(tx: VersionedTransaction, fee_payer: Keypair) -> VersionedTransaction:
    sig = fee_payer.sign_message(to_bytes_versioned(tx.message))
    return VersionedTransaction.populate(tx.message, [sig] + list(tx.signatures[1:]))


def build(chain, fee_payer, payer, payee, amount, **kw):
    return b.svm_transaction(payer, fee_payer=fee_payer.pubkey(), mint=USDC, pay_to=payee.pubkey(),
                             amount=amount, blockhash=chain.latest_blockhash(), **kw)


def test_mint_at_real_address_with_6_decimals(env):
    chain, fee_payer, payer, payee = env
    acct = chain.svm.get_account(USDC)
    assert acct.owner == TOKEN_PROGRAM_ID
    assert chain.mint_info() == (TOKEN_PROGRAM_ID, 6)
    assert chain.ata(payer.pubkey()) == get_associated_token_address(payer.pubkey(), USDC)
    assert chain.balance_of(payer.pubkey()) == 100_000_000
    assert chain.has_ata(payee.pubkey()) and chain.balance_of(payee.pubkey()) == 0
    assert not chain.has_ata(Keypair().pubkey())
    assert chain.sol_balance(fee_payer.pubkey()) > 10**9
    assert chain.sol_balance(payer.pubkey()) == 0


@pytest.mark.parametrize("layout", ["spec", "upstream"])
def test_partially_signed_transfer_executes(env, layout):
    chain, fee_payer, payer, payee = env
    tx = build(chain, fee_payer, payer, payee, 1_234_567, layout=layout)
    assert tx.signatures[0] == tx.signatures[0].default()          # slot 0 left for the fee payer
    assert tx.signatures[1].verify(payer.pubkey(), to_bytes_versioned(tx.message))
    fee_before = chain.sol_balance(fee_payer.pubkey())
    signed = cosign(tx, fee_payer)
    chain.simulate(signed)
    assert chain.balance_of(payer.pubkey()) == 100_000_000         # simulation moved nothing
    sig = chain.send(signed)
    assert sig == str(signed.signatures[0])
    assert chain.balance_of(payer.pubkey()) == 98_765_433
    assert chain.balance_of(payee.pubkey()) == 1_234_567
    assert chain.sol_balance(fee_payer.pubkey()) < fee_before        # the sponsor paid the fee
    assert chain.sol_balance(payer.pubkey()) == 0
    with pytest.raises(SvmError):                                     # replay
        chain.send(signed)
    assert chain.balance_of(payee.pubkey()) == 1_234_567


def test_identical_memo_less_payments_both_settle(env):
    """The blockhash rotates per transaction, so the same upstream-layout payment can be made twice."""
    chain, fee_payer, payer, payee = env
    first = cosign(build(chain, fee_payer, payer, payee, 1_000, layout="upstream"), fee_payer)
    chain.send(first)
    second = cosign(build(chain, fee_payer, payer, payee, 1_000, layout="upstream"), fee_payer)
    assert second.message.recent_blockhash != first.message.recent_blockhash
    chain.send(second)
    assert chain.balance_of(payee.pubkey()) == 2_000


def test_refusals_from_the_runtime(env):
    chain, fee_payer, payer, payee = env
    # missing fee-payer signature
    with pytest.raises(SvmError):
        chain.simulate(build(chain, fee_payer, payer, payee, 5))
    # the owner's signature over another amount
    good = build(chain, fee_payer, payer, payee, 5)
    other = build(chain, fee_payer, payer, payee, 6)
    forged = VersionedTransaction.populate(other.message, [good.signatures[0], good.signatures[1]])
    with pytest.raises(SvmError):
        chain.simulate(cosign(forged, fee_payer))
    # wrong decimals: the token program refuses (custom error 0x12)
    with pytest.raises(SvmError):
        chain.simulate(cosign(build(chain, fee_payer, payer, payee, 5, decimals=9), fee_payer))
    # more than the balance
    with pytest.raises(SvmError):
        chain.simulate(cosign(build(chain, fee_payer, payer, payee, 100_000_001), fee_payer))
    # a blockhash this chain never issued
    stale = b.svm_transaction(payer, fee_payer=fee_payer.pubkey(), mint=USDC, pay_to=payee.pubkey(), amount=5,
                              blockhash=Hash.new_unique())
    with pytest.raises(SvmError, match="BlockhashNotFound"):
        chain.simulate(cosign(stale, fee_payer))
    assert chain.balance_of(payee.pubkey()) == 0


def test_missing_recipient_ata_fails_on_chain(env):
    chain, fee_payer, payer, _ = env
    nobody = Keypair()
    with pytest.raises(SvmError):
        chain.simulate(cosign(build(chain, fee_payer, payer, nobody, 5), fee_payer))
    chain.create_ata(nobody.pubkey())
    chain.send(cosign(build(chain, fee_payer, payer, nobody, 5), fee_payer))
    assert chain.balance_of(nobody.pubkey()) == 5


def test_mint_to_tracks_supply_and_rejects_bad_amounts(env):
    chain, _, payer, _ = env
    from solders.token.state import Mint
    supply = Mint.from_bytes(bytes(chain.svm.get_account(USDC).data)).supply
    chain.mint_to(payer.pubkey(), 7)
    assert Mint.from_bytes(bytes(chain.svm.get_account(USDC).data)).supply == supply + 7
    with pytest.raises(ValueError):
        chain.mint_to(payer.pubkey(), -1)
    with pytest.raises(ValueError):
        chain.mint_to(payer.pubkey(), 2**64)
