"""The sandbox's Tempo stand-in (x402_compute_sandbox/tempo/), with pytempo as the independent oracle.

The signing-hash rule (local-chains.md §8) is proven here: transactions built and signed by
pytempo (the library pympp signs with) decode to the same fields, the same signing hash and the
same tx hash, and recover to the signer, for both the plain and the fee-payer-sponsored preimage.
"""
from __future__ import annotations

import json
import time

import pytest

from x402_compute_sandbox import tempo

pytest.importorskip("pytempo")

from eth_account import Account  # noqa: E402
from pytempo import Call as PtCall  # noqa: E402
from pytempo import TempoTransaction  # noqa: E402

KEY = "0x" + "11" * 32
OTHER_KEY = "0x" + "22" * 32
PAYEE = "0x" + "33" * 20


def transfer_data(to: str, amount: int, memo: bytes | None = None) -> bytes:
    sel = tempo.SEL_TRANSFER_WITH_MEMO if memo is not None else tempo.SEL_TRANSFER
    return sel + bytes(12) + bytes.fromhex(to[2:]) + amount.to_bytes(32, "big") + (memo or b"")


def build(key=KEY, *, amount=1_000_000, to=PAYEE, memo=b"\x01" * 32, chain_id=tempo.CHAIN_ID,
          valid_before=None, fee_token=tempo.USDC_E, gas_limit=1_000_000, max_fee=tempo.GAS_PRICE,
          nonce_key=tempo.EXPIRING_NONCE_KEY, nonce=0, calls=None, awaiting_fee_payer=False):
    calls = calls or (PtCall.create(to=tempo.USDC_E, value=0, data=transfer_data(to, amount, memo)),)
    return TempoTransaction.create(
        chain_id=chain_id, gas_limit=gas_limit, max_fee_per_gas=max_fee, max_priority_fee_per_gas=max_fee,
        nonce=nonce, nonce_key=nonce_key, fee_token=None if awaiting_fee_payer else fee_token,
        awaiting_fee_payer=awaiting_fee_payer,
        valid_before=int(time.time()) + 60 if valid_before is None else valid_before, calls=calls)


def test_signing_hash_sender_and_hash_match_pytempo():
    tx = build()
    signed = tx.sign(KEY)
    raw = signed.encode()
    d = tempo.decode_tx(raw)
    assert d.signing_hash == tx.get_signing_hash()
    assert d.sender == Account.from_key(KEY).address
    assert d.hash == "0x" + signed.hash().hex()
    assert d.chain_id == tempo.CHAIN_ID and d.nonce_key == tempo.EXPIRING_NONCE_KEY and d.nonce == 0
    assert d.fee_token == tempo.USDC_E and not d.sponsored
    t = tempo.decode_transfer(d.calls[0])
    assert (t.recipient.lower(), t.amount, t.memo) == (PAYEE, 1_000_000, b"\x01" * 32)


def test_sponsored_preimage_rule_matches_pytempo():
    # The sender commits to an empty fee token and 0x00 in the fee-payer slot; once the fee payer
    # has co-signed, the encoded slot holds its [v, r, s] and the rule must still reproduce the hash.
    vb = int(time.time()) + 60  # one validity for both builds (two clock reads can straddle a second)
    tx = build(awaiting_fee_payer=True, valid_before=vb).sign(KEY)
    cosigned = tx.sign(OTHER_KEY, for_fee_payer=True)
    d = tempo.decode_tx(cosigned.encode())
    assert d.sponsored
    assert d.signing_hash == build(awaiting_fee_payer=True, valid_before=vb).get_signing_hash()
    assert d.sender == Account.from_key(KEY).address


def test_rlp_roundtrip_and_canonical_refusals():
    raw = build().sign(KEY).encode()
    import rlp  # the reference decoder pympp uses
    assert tempo.rlp_decode(raw[1:]) == rlp.decode(raw[1:])
    assert tempo.rlp_encode(tempo.rlp_decode(raw[1:])) == raw[1:]
    for bad in (b"\x81\x05", b"\xb8\x01\x00", b"\xc2\x01", b"\x82\x01", b"\x01\x02"):
        with pytest.raises(ValueError):
            tempo.rlp_decode(bad)


def test_decode_refuses_other_types_and_garbage():
    raw = build().sign(KEY).encode()
    for bad, reason in ((b"\x02" + raw[1:], "wrong_type"), (b"\x78" + raw[1:], "sponsored_unsupported"),
                        (raw[:-3], "malformed"), (b"\x76\xc0", "malformed")):
        with pytest.raises(tempo.TxRejected) as e:
            tempo.decode_tx(bad)
        assert e.value.reason == reason


def test_tampered_field_recovers_someone_else():
    signed = build(amount=5).sign(KEY)
    fields = tempo.rlp_decode(signed.encode()[1:])
    fields[4][0][2] = transfer_data(PAYEE, 6, b"\x01" * 32)     # change the amount after signing
    forged = tempo.decode_tx(b"\x76" + tempo.rlp_encode(fields))
    assert forged.sender != Account.from_key(KEY).address


@pytest.fixture
def ledger():
    payer = Account.from_key(KEY).address
    return tempo.TempoLedger(funded=[payer], fund_usd=10)


def test_ledger_applies_transfer_charges_fee_and_refuses_replay(ledger):
    payer = Account.from_key(KEY).address
    before = ledger.balance_of(payer)
    d = tempo.decode_tx(build(amount=1_234_567).sign(KEY).encode())
    receipt = ledger.submit(d)
    fee = tempo.GAS_PER_CALL * tempo.GAS_PRICE // tempo.ATTO_PER_MICRO
    assert ledger.balance_of(PAYEE) == 1_234_567
    assert ledger.balance_of(payer) == before - 1_234_567 - fee
    assert ledger.balance_of(ledger.sequencer) == fee
    assert receipt["status"] == "0x1" and receipt["transactionHash"] == d.hash
    topics = [lg["topics"][0] for lg in receipt["logs"]]
    assert topics == [tempo.TOPIC_TRANSFER, tempo.TOPIC_TRANSFER_WITH_MEMO]
    assert int(receipt["logs"][0]["data"], 16) == 1_234_567
    assert ledger.receipt(d.hash) == receipt
    with pytest.raises(tempo.TxRejected) as e:
        ledger.submit(d)
    assert e.value.reason == "already_known"
    assert ledger.balance_of(PAYEE) == 1_234_567


@pytest.mark.parametrize("kwargs, reason", [
    ({"chain_id": 42431}, "wrong_chain"),
    ({"valid_before": int(time.time()) - 1}, "expired"),
    ({"valid_before": int(time.time()) + 3600}, "invalid_nonce"),
    ({"amount": 10 * 10**6}, "insufficient_funds"),         # the gas reserve no longer fits
    ({"max_fee": tempo.GAS_PRICE - 1}, "fee_too_low"),
    ({"gas_limit": 1000}, "intrinsic_gas_too_low"),
    ({"fee_token": "0x20c0000000000000000000000000000000000000"}, "unsupported_fee_token"),
    ({"nonce_key": 7}, "unsupported_nonce_key"),
    ({"calls": (PtCall.create(to=PAYEE, value=0, data=b"\x00" * 4),)}, "unsupported_call"),
])
def test_ledger_refusals(ledger, kwargs, reason):
    d = tempo.decode_tx(build(**kwargs).sign(KEY).encode())
    with pytest.raises(tempo.TxRejected) as e:
        ledger.submit(d)
    assert e.value.reason == reason
    assert ledger.balance_of(PAYEE) == 0


def test_unset_fee_token_follows_the_tempo_fee_rules(ledger):
    """Fee spec, TIP-20 level: every top-level call a transfer/transferWithMemo/startReward on one USD
    TIP-20 contract, sender paying its own fee -> that token. Anything else falls back to pathUSD."""
    payer = Account.from_key(KEY).address
    d = tempo.decode_tx(build(fee_token=None, amount=7).sign(KEY).encode())
    assert d.fee_token is None and tempo.fee_token_of(d) == tempo.USDC_E
    fee = tempo.GAS_PER_CALL * tempo.GAS_PRICE // tempo.ATTO_PER_MICRO
    before = ledger.balance_of(payer)
    assert ledger.submit(d)["feeToken"] == tempo.USDC_E
    assert before - ledger.balance_of(payer) == 7 + fee            # the fee came out of USDC.e
    two = (PtCall.create(to=tempo.USDC_E, value=0, data=transfer_data(PAYEE, 1)),
           PtCall.create(to=tempo.USDC_E, value=0, data=transfer_data(PAYEE, 2, b"\x02" * 32)))
    d2 = tempo.decode_tx(build(fee_token=None, calls=two, gas_limit=2_000_000).sign(KEY).encode())
    assert tempo.fee_token_of(d2) == tempo.USDC_E                  # several calls, one token: still that token
    other = (PtCall.create(to=tempo.USDC_E, value=0, data=transfer_data(PAYEE, 1)),
             PtCall.create(to=tempo.PATH_USD, value=0, data=transfer_data(PAYEE, 1)))
    d3 = tempo.decode_tx(build(fee_token=None, calls=other, gas_limit=2_000_000).sign(KEY).encode())
    assert tempo.fee_token_of(d3) == tempo.PATH_USD                # two contracts: the pathUSD fallback
    approve = (PtCall.create(to=tempo.USDC_E, value=0, data=bytes.fromhex("095ea7b3") + bytes(64)),)
    d4 = tempo.decode_tx(build(fee_token=None, calls=approve).sign(KEY).encode())
    assert tempo.fee_token_of(d4) == tempo.PATH_USD                # not a transfer: the fallback too
    with pytest.raises(tempo.TxRejected) as e:
        ledger.submit(d3)
    assert e.value.reason == "unsupported_fee_token" and tempo.PATH_USD in e.value.message


def _resign_with_other_k(tx, key: str) -> bytes:
    """The same signed payload under a second valid (low-s) ECDSA signature: another k than RFC 6979's."""
    import secrets

    from eth_keys.backends.native.ecdsa import G, N, fast_multiply, inv
    z = int.from_bytes(tx.signing_hash, "big")
    priv = int(key, 16)
    while True:
        k = secrets.randbelow(N - 1) + 1
        rx, ry = fast_multiply(G, k)
        r = rx % N
        s = inv(k, N) * (z + r * priv) % N
        if r and s:
            break
    v = ry & 1
    if s > N // 2:
        s, v = N - s, v ^ 1
    fields = tempo.rlp_decode(tx.raw[1:])
    fields[-1] = r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([27 + v])
    return b"\x76" + tempo.rlp_encode(fields)


def test_expiring_nonce_takes_any_nonce_and_guards_the_payload_not_just_the_hash(ledger):
    """From T12 (TIP-1106) the expiring nonce is an opaque discriminator (viem puts a random 48-bit
    value there); what cannot repeat is the transaction: its hash, and (T1B+) keccak(signing
    payload || sender), so the same payload under a second signature is a replay too."""
    d = tempo.decode_tx(build(nonce=0xDEADBEEF1234, amount=3).sign(KEY).encode())
    assert d.nonce == 0xDEADBEEF1234
    ledger.submit(d)
    again = tempo.decode_tx(_resign_with_other_k(d, KEY))
    assert again.sender == d.sender and again.hash != d.hash and again.replay_id == d.replay_id
    with pytest.raises(tempo.TxRejected) as e:
        ledger.submit(again)
    assert e.value.reason == "already_known"
    other = tempo.decode_tx(build(nonce=0xDEADBEEF1235, amount=3).sign(KEY).encode())
    ledger.submit(other)                                           # another discriminator: another transaction
    assert ledger.balance_of(PAYEE) == 6
    import dataclasses
    unbounded = dataclasses.replace(tempo.decode_tx(build(nonce=5).sign(KEY).encode()), valid_before=None)
    with pytest.raises(tempo.TxRejected) as e:                     # valid_before stays required
        ledger.submit(unbounded)
    assert e.value.reason == "invalid_nonce"


def test_sequential_nonce_key_zero(ledger):
    ledger.submit(tempo.decode_tx(build(nonce_key=0, nonce=0).sign(KEY).encode()))
    with pytest.raises(tempo.TxRejected):
        ledger.submit(tempo.decode_tx(build(nonce_key=0, nonce=0, amount=2).sign(KEY).encode()))
    ledger.submit(tempo.decode_tx(build(nonce_key=0, nonce=1, amount=2).sign(KEY).encode()))
    assert ledger.nonce_of(Account.from_key(KEY).address) == 2


def test_rpc_methods(ledger):
    payer = Account.from_key(KEY).address

    def call(method, *params):
        out = ledger.handle_http(json.dumps({"jsonrpc": "2.0", "id": 7, "method": method,
                                             "params": list(params)}).encode())
        assert out["id"] == 7
        return out.get("result", out.get("error"))

    assert call("eth_chainId") == "0x1079"
    assert int(call("eth_gasPrice"), 16) == tempo.GAS_PRICE
    assert int(call("eth_estimateGas", {"from": payer, "to": tempo.USDC_E, "data": "0x"}), 16) == tempo.GAS_PER_CALL
    assert call("eth_getTransactionCount", payer, "pending") == "0x0"
    bal = call("eth_call", {"to": tempo.USDC_E, "data": "0x70a08231" + "00" * 12 + payer[2:].lower()}, "latest")
    assert int(bal, 16) == 10 * 10**6
    assert int(call("eth_call", {"to": tempo.USDC_E, "data": "0x313ce567"}), 16) == 6
    assert call("eth_getBlockByNumber", "latest", False)["baseFeePerGas"] == hex(tempo.GAS_PRICE)
    raw = "0x" + build(amount=42).sign(KEY).encode().hex()
    receipt = call("eth_sendRawTransactionSync", raw, 5000)
    assert receipt["status"] == "0x1"
    assert call("eth_getTransactionReceipt", receipt["transactionHash"]) == receipt
    assert call("eth_sendRawTransactionSync", raw)["code"] == -32003           # replay refused
    assert call("eth_nope")["code"] == -32601
    batch = ledger.handle_http(json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
                                           {"jsonrpc": "2.0", "id": 2, "method": "net_version"}]).encode())
    assert [b["result"] for b in batch] == ["0x1079", "4217"]


def test_default_funding_is_the_sandbox_test_wallets():
    from x402_compute_sandbox import wallets
    from x402_compute_sandbox.wallets import TEST_WALLET_COUNT, TEST_WALLET_USD
    led = tempo.TempoLedger(seed=0)
    for i in range(TEST_WALLET_COUNT):
        addr = wallets.evm_address(wallets.evm_key(0, "test", i))
        assert led.balance_of(addr) == TEST_WALLET_USD * 10**6
