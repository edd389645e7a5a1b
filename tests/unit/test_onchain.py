"""payments.onchain with a stub Rpc: what each scheme asks and how the answer maps to a state."""

from __future__ import annotations

from x402_compute.errors import NetworkError
from x402_compute.networks import NETWORKS
from x402_compute.payments import onchain

PAYER = "0x" + "ab" * 20
NOW = 1_800_000_000


class Stub:
    def __init__(self, *, word=0, statuses=None, receipt=None, fail=False, chain=None):
        self.word, self.statuses, self.receipt, self.fail, self.chain, self.calls = word, statuses, receipt, fail, chain, []

    def eth_chain_id(self, network):
        if self.fail:
            raise NetworkError("down", retryable=True)
        return self.chain or NETWORKS[network].chain_id

    def eth_call(self, network, to, data):
        self.calls.append((to, data))
        return self.word.to_bytes(32, "big")

    def sol_signature_statuses(self, network, sigs):
        self.calls.append(sigs)
        return self.statuses

    def eth_receipt(self, network, tx):
        self.calls.append(tx)
        return self.receipt


def entry(network, nonce, extra=None, method="x402", vb=NOW + 60, **kw):
    return {"method": method, "payer": PAYER, "nonce": nonce, "valid_before": vb,
            "offer": {"network": network, "asset": "0x" + "11" * 20, "scheme": "exact", "raw": {"extra": extra or {}}}, **kw}


def test_eip3009_selector_and_states():
    n = "0x" + "cd" * 32
    rpc = Stub(word=1)
    r = onchain.check(entry("base", n), rpc, now=NOW)
    assert r["state"] == "used" and r["scheme"] == "evm_eip3009"
    assert rpc.calls[0][1] == bytes.fromhex("e94a0102") + bytes(12) + bytes.fromhex("ab" * 20) + bytes.fromhex("cd" * 32)
    assert onchain.check(entry("base", n), Stub(word=0), now=NOW)["state"] == "unused"
    assert onchain.check(entry("base", n), Stub(word=0), now=NOW + 61)["state"] == "expired_unused"


def test_wrong_chain_or_no_rpc_is_unknown():
    n = "0x" + "cd" * 32
    assert onchain.check(entry("base", n), Stub(fail=True), now=NOW + 61)["state"] == "unknown"
    r = onchain.check(entry("base", n), Stub(chain=1), now=NOW + 61)
    assert r["state"] == "unknown" and "chain 1" in r["reason"]


def test_direct_permit_nonce_moved_past():
    e = entry("megaeth", f"7:{NOW + 60}")
    assert onchain.check(e, Stub(word=8), now=NOW)["state"] == "used"
    assert onchain.check(e, Stub(word=7), now=NOW)["state"] == "unused"
    rpc = Stub(word=7)
    assert onchain.check(e, rpc, now=NOW + 61)["state"] == "expired_unused"
    assert rpc.calls[0][1][:4] == bytes.fromhex("7ecebe00")


def test_permit2_bitmap_bit():
    nonce = (5 << 8) | 3
    e = entry("megaeth", str(nonce), extra={"assetTransferMethod": "permit2"})
    rpc = Stub(word=1 << 3)
    r = onchain.check(e, rpc, now=NOW)
    assert r["state"] == "used" and r["scheme"] == "evm_permit2"
    to, data = rpc.calls[0]
    assert to == onchain.PERMIT2_ADDRESS and data[:4] == bytes.fromhex("4fe02b44") and int.from_bytes(data[36:68], "big") == 5
    assert onchain.check(e, Stub(word=1 << 4), now=NOW)["state"] == "unused"
    assert onchain.check(e, Stub(word=1 << 4), now=NOW + 61)["state"] == "expired_unused"


class SolStub(Stub):
    """An RPC whose Solana history holds `history`: [(tx id, blockTime, signatures, err)], newest first."""

    def __init__(self, *, history=(), alive=None, statuses=None):
        super().__init__(statuses=statuses or [None])
        self.history, self.alive = list(history), alive

    def sol_blockhash_valid(self, network, blockhash):
        self.calls.append(("isBlockhashValid", blockhash))
        return self.alive

    def sol_signatures_for_address(self, network, address, *, before=None, limit=100):
        self.calls.append(("getSignaturesForAddress", address, before))
        start = 0 if before is None else [h[0] for h in self.history].index(before) + 1
        return [{"signature": h[0], "blockTime": h[1], "err": h[3]} for h in self.history[start:start + limit]]

    def sol_transaction(self, network, sig):
        self.calls.append(("getTransaction", sig))
        (h,) = [h for h in self.history if h[0] == sig]
        return {"slot": 9, "transaction": {"signatures": h[2]}, "meta": {"err": h[3]}}


def sol_entry(created=NOW - 30, vb=NOW + 60):
    """A journal entry holding a real partially signed x402 transfer (fee payer slot empty)."""
    import base64
    import json

    from solders.hash import Hash
    from solders.keypair import Keypair
    from solders.pubkey import Pubkey
    from solders.token.associated import get_associated_token_address

    from tests.oracle import builders as b

    payer = Keypair()
    mint = Pubkey.from_string(NETWORKS["solana"].asset)
    tx = b.svm_transaction(payer, fee_payer=Pubkey.new_unique(), mint=mint, pay_to=Pubkey.new_unique(), amount=5,
                           blockhash=Hash.new_unique())
    header = base64.b64encode(json.dumps({"x402Version": 1, "payload": b.svm_inner(tx)}).encode()).decode()
    from datetime import datetime, timezone
    e = entry("solana", str(tx.signatures[1]), vb=vb, payment_header_value=header, payment_header_name="X-PAYMENT",
              created_at=datetime.fromtimestamp(created, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    e["payer"] = str(payer.pubkey())
    return e, str(get_associated_token_address(payer.pubkey(), mint)), str(tx.message.recent_blockhash)


def test_solana_status_of_the_payer_signature_first():
    e, _, _ = sol_entry()
    assert onchain.check(e, SolStub(statuses=[{"err": None, "confirmationStatus": "finalized"}]), now=NOW)["state"] == "used"
    assert onchain.check(e, SolStub(statuses=[{"err": "InsufficientFunds"}]), now=NOW)["state"] == "expired_unused"


def test_solana_payment_found_in_the_source_account_history():
    e, source, blockhash = sol_entry()
    mine = e["nonce"]
    rpc = SolStub(alive=True, history=[("other1", NOW, ["x", "y"], None), ("fac-sig", NOW - 10, ["fac-sig", mine], None),
                                       ("older", NOW - 20, ["z"], None)])
    r = onchain.check(e, rpc, now=NOW)
    assert r["state"] == "used" and r["transaction"] == "fac-sig"
    assert rpc.calls[1] == ("isBlockhashValid", blockhash)          # asked before the search
    assert rpc.calls[2] == ("getSignaturesForAddress", source, None)
    assert [c for c in rpc.calls if c[0] == "getTransaction"] == [("getTransaction", "other1"), ("getTransaction", "fac-sig")]
    assert source in r["query"] and blockhash in r["query"]
    failed = SolStub(alive=False, history=[("fac-sig", NOW, ["fac-sig", mine], {"InstructionError": [2, "Custom"]})])
    r = onchain.check(e, failed, now=NOW)
    assert r["state"] == "expired_unused" and r["failed"] is True   # landed, failed, moved nothing


def test_solana_not_found_follows_the_chain_blockhash_not_the_clock():
    e, _, _ = sol_entry(vb=NOW + 60)
    history = [("a", NOW, ["a", "b"], None)]
    # Still valid on chain: "unused" (it may land) even past the client's own estimate.
    r = onchain.check(e, SolStub(alive=True, history=history), now=NOW + 3600)
    assert r["state"] == "unused" and r["blockhash_valid"] is True and r["searched_transactions"] == 1
    # Dead on chain before the search: nothing can land any more, even before valid_before.
    assert onchain.check(e, SolStub(alive=False, history=history), now=NOW)["state"] == "expired_unused"
    # The RPC does not say: valid_before decides.
    assert onchain.check(e, SolStub(alive=None, history=history), now=NOW)["state"] == "unused"
    assert onchain.check(e, SolStub(alive=None, history=history), now=NOW + 61)["state"] == "expired_unused"


def test_solana_search_stops_at_the_signing_time_and_pages(monkeypatch):
    e, source, _ = sol_entry(created=NOW - 30)
    mine = e["nonce"]
    old = [("o%d" % i, NOW - 300 - i, ["o%d" % i], None) for i in range(3)]
    rpc = SolStub(alive=False, history=[("n1", NOW, ["n1"], None)] + old + [("fac", NOW - 400, ["fac", mine], None)])
    r = onchain.check(e, rpc, now=NOW)
    # Older than the journal entry (minus 2 minutes of clock skew): it cannot be this payment.
    assert r["state"] == "expired_unused" and [c[1] for c in rpc.calls if c[0] == "getTransaction"] == ["n1"]
    monkeypatch.setattr(onchain, "SOL_PAGE", 2)
    recent = [("r%d" % i, NOW - i, ["r%d" % i], None) for i in range(5)] + [("fac", NOW - 6, ["fac", mine], None)]
    rpc = SolStub(alive=True, history=recent)
    assert onchain.check(e, rpc, now=NOW)["state"] == "used"
    assert [c[2] for c in rpc.calls if c[0] == "getSignaturesForAddress"] == [None, "r1", "r3"]
    monkeypatch.setattr(onchain, "SOL_HISTORY_TXS", 3)
    r = onchain.check(e, SolStub(alive=True, history=recent), now=NOW)
    assert r["state"] == "unknown" and "more than 3 transactions" in r["reason"]


def test_solana_without_history_methods_or_payload_is_unknown():
    e, _, _ = sol_entry()
    r = onchain.check(e, Stub(statuses=[None]), now=NOW + 61)
    assert r["state"] == "unknown" and "cannot read Solana history" in r["reason"]
    r = onchain.check({**e, "payment_header_value": "!!"}, SolStub(alive=False), now=NOW + 61)
    assert r["state"] == "unknown" and "signed transaction" in r["reason"]


def test_solana_payer_as_fee_payer_needs_no_search(monkeypatch):
    e, _, _ = sol_entry()
    monkeypatch.setattr(onchain, "_payer_signs_first", lambda entry: True)
    rpc = SolStub(alive=True)
    assert onchain.check(e, rpc, now=NOW)["state"] == "unused" and len(rpc.calls) == 1
    assert onchain.check(e, SolStub(), now=NOW + 61)["state"] == "expired_unused"


def test_mpp_receipt():
    e = {"method": "mpp", "payer": PAYER, "expected_tx_hash": "0x" + "ee" * 32, "offer": {"network": "tempo"}}
    rpc = Stub(receipt={"status": "0x1", "blockNumber": "0x5"})
    r = onchain.check(e, rpc, now=NOW)
    assert r["state"] == "used" and r["scheme"] == "mpp_tempo" and rpc.calls == ["0x" + "ee" * 32]
    assert onchain.check(e, Stub(receipt={"status": "0x0"}), now=NOW)["state"] == "expired_unused"
    assert onchain.check(e, Stub(receipt=None), now=NOW)["state"] == "unused"  # no valid_before journalled: never "expired"
    assert onchain.check({**e, "expected_tx_hash": None}, Stub(), now=NOW)["state"] == "unknown"
