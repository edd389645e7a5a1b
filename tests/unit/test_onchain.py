"""payments.onchain with a stub Rpc: what each scheme asks and how the answer maps to a state."""

from __future__ import annotations

from tests.helpers import import_lib

import_lib()
from x402_compute.errors import NetworkError  # noqa: E402
from x402_compute.networks import NETWORKS  # noqa: E402
from x402_compute.payments import onchain  # noqa: E402

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


def test_solana_conclusive_only_when_the_payer_signature_is_the_tx_id(monkeypatch):
    e = entry("solana", "5sig")
    ok = {"err": None, "confirmationStatus": "finalized"}
    assert onchain.check(e, Stub(statuses=[ok]), now=NOW)["state"] == "used"
    assert onchain.check(e, Stub(statuses=[{"err": "InsufficientFunds"}]), now=NOW)["state"] == "expired_unused"
    r = onchain.check(e, Stub(statuses=[None]), now=NOW + 61)
    assert r["state"] == "unknown" and "fee payer" in r["reason"]  # facilitator pays the fee: proves nothing
    monkeypatch.setattr(onchain, "_payer_signs_first", lambda entry: True)
    assert onchain.check(e, Stub(statuses=[None]), now=NOW)["state"] == "unused"
    assert onchain.check(e, Stub(statuses=[None]), now=NOW + 61)["state"] == "expired_unused"


def test_mpp_receipt():
    e = {"method": "mpp", "payer": PAYER, "expected_tx_hash": "0x" + "ee" * 32, "offer": {"network": "tempo"}}
    rpc = Stub(receipt={"status": "0x1", "blockNumber": "0x5"})
    r = onchain.check(e, rpc, now=NOW)
    assert r["state"] == "used" and r["scheme"] == "mpp_tempo" and rpc.calls == ["0x" + "ee" * 32]
    assert onchain.check(e, Stub(receipt={"status": "0x0"}), now=NOW)["state"] == "expired_unused"
    assert onchain.check(e, Stub(receipt=None), now=NOW)["state"] == "unused"  # no valid_before journalled: never "expired"
    assert onchain.check({**e, "expected_tx_hash": None}, Stub(), now=NOW)["state"] == "unknown"
