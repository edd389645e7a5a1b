"""The embedded facilitator against hand-built payloads: what settles moves exactly the amount, and every
defect is refused with its x402 reason while no balance changes."""
from __future__ import annotations

import base64
import time

import pytest
from eth_account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from tests.oracle import builders as b
from x402_compute_sandbox import networks as nets
from x402_compute_sandbox.facilitator import Facilitator

RESOURCE = "http://127.0.0.1:8402/compute/provision"


@pytest.fixture(scope="module")
def fac():
    return Facilitator(seed=7)


@pytest.fixture(scope="module")
def wallet(fac):
    return fac.test_wallets()[0]


def req(fac, network, usd_micros=1_234_567, version=1, **kw):
    return fac.requirement(network, amount_usd_micros=usd_micros, resource=RESOURCE, description="t",
                           version=version, **kw)


def evm_inner(fac, wallet, r, **overrides):
    net = nets.get(r["network"])
    amount = int(r.get("maxAmountRequired") or r["amount"])
    args = dict(to=r["payTo"], value=amount, asset=net.asset, chain_id=net.chain_id,
                name=r["extra"]["name"], version=r["extra"]["version"])
    args.update(overrides)
    return b.eip3009_inner(wallet["evm_private_key"], **args)


def assert_refused(fac, payload, r, reason, network):
    w_from = payload["payload"].get("authorization", {}).get("from")
    before = fac.balance_of(network, fac.payee(network))
    before_from = fac.balance_of(network, w_from) if w_from else None
    v = fac.verify(payload, r)
    assert v["isValid"] is False and v["invalidReason"] == reason, v
    s = fac.settle(payload, r)
    assert s["success"] is False and s["errorReason"] == reason and s["transaction"] == "", s
    assert fac.balance_of(network, fac.payee(network)) == before
    if w_from:
        assert fac.balance_of(network, w_from) == before_from


# ---- requirements -------------------------------------------------------------------------------------

def test_requirement_shapes_and_decimals(fac):
    r1 = req(fac, "base", 1_500_000)
    assert r1["maxAmountRequired"] == "1500000" and r1["network"] == "base"
    assert r1["extra"] == {"name": "USD Coin", "version": "2"}
    assert r1["asset"] == "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
    r2 = req(fac, "megaeth", 1_500_000, version=2)
    assert r2["amount"] == "1500000000000000000" and r2["network"] == "eip155:4326"
    assert r2["extra"] == {"name": "MegaUSD", "version": "1"}
    rh = req(fac, "robinhood", 10, version=2)
    assert rh["network"] == "eip155:4663" and rh["extra"] == {"name": "Global Dollar", "version": "1"}
    rs = req(fac, "solana", 10, version=2)
    assert rs["extra"]["feePayer"] == fac.fee_payer()
    assert rs["extra"]["recentBlockhash"] == str(fac.chain("solana").latest_blockhash())
    assert rs["network"] == "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"


def test_test_wallets_are_funded_and_deterministic(fac):
    again = Facilitator(seed=7).test_wallets()
    assert again == fac.test_wallets()
    assert Facilitator(seed=8).test_wallets()[0]["evm_address"] != again[0]["evm_address"]
    w = again[0]
    assert Account.from_key(w["evm_private_key"]).address == w["evm_address"]
    kp = Keypair.from_bytes(__import__("base58").b58decode(w["solana_secret_key"]))
    assert str(kp.pubkey()) == w["solana_address"]
    assert fac.balance_of("megaeth", w["evm_address"]) >= 10**18   # 18 decimals
    assert fac.balance_of("solana", w["solana_address"]) >= 10**6


# ---- EIP-3009 (Base, Robinhood) --------------------------------------------------------------------------

@pytest.mark.parametrize("network", ["base", "robinhood"])
@pytest.mark.parametrize("version", [1, 2])
def test_eip3009_settles_exact_amount(fac, wallet, network, version):
    r = req(fac, network, 2_500_000, version=version)
    inner = evm_inner(fac, wallet, r)
    payload = b.v1(r, inner) if version == 1 else b.v2(r, inner)
    payee, payer = fac.payee(network), wallet["evm_address"]
    before_payee, before_payer = fac.balance_of(network, payee), fac.balance_of(network, payer)
    v = fac.verify(payload, r)
    assert v == {"isValid": True, "invalidReason": None, "payer": payer}
    s = fac.settle(payload, r)
    assert s["success"] is True and s["errorReason"] is None, s
    assert s["transaction"].startswith("0x") and len(s["transaction"]) == 66
    assert s["network"] == r["network"] and s["amount"] == "2500000" and s["payer"] == payer
    assert fac.balance_of(network, payee) - before_payee == 2_500_000
    assert before_payer - fac.balance_of(network, payer) == 2_500_000
    assert fac.chain(network).authorization_state(payer, inner["authorization"]["nonce"]) is True
    # replay of the very same payload
    again = fac.settle(payload, r)
    assert again["success"] is False and again["errorReason"] == "invalid_exact_evm_nonce_already_used"
    assert fac.balance_of(network, payee) - before_payee == 2_500_000


def test_eip3009_tampered_value(fac, wallet):
    r = req(fac, "base")
    inner = evm_inner(fac, wallet, r)
    inner["authorization"]["value"] = str(int(inner["authorization"]["value"]) + 1)
    assert_refused(fac, b.v1(r, inner), r, "invalid_exact_evm_payload_authorization_value_mismatch", "base")


def test_eip3009_value_tampered_in_both_requirement_and_payload(fac, wallet):
    """The value matches a (bigger) requirement, but the signature covered the smaller one."""
    r = req(fac, "base", 1_000_000)
    inner = evm_inner(fac, wallet, r)
    r_big = req(fac, "base", 2_000_000)
    inner["authorization"]["value"] = r_big["maxAmountRequired"]
    assert_refused(fac, b.v1(r_big, inner), r_big, "invalid_exact_evm_payload_signature", "base")


def test_eip3009_tampered_recipient(fac, wallet):
    r = req(fac, "base")
    inner = evm_inner(fac, wallet, r, to=Account.create().address)
    assert_refused(fac, b.v1(r, inner), r, "invalid_exact_evm_payload_recipient_mismatch", "base")


def test_eip3009_tampered_signature_byte(fac, wallet):
    r = req(fac, "robinhood", version=2)
    inner = evm_inner(fac, wallet, r)
    sig = bytearray(bytes.fromhex(inner["signature"][2:]))
    sig[10] ^= 0x01
    inner["signature"] = "0x" + sig.hex()
    assert_refused(fac, b.v2(r, inner), r, "invalid_exact_evm_payload_signature", "robinhood")


def test_eip3009_expired_and_not_yet_valid(fac, wallet):
    r = req(fac, "base")
    now = int(time.time())
    expired = evm_inner(fac, wallet, r, valid_before=now - 1)
    assert_refused(fac, b.v1(r, expired), r, "invalid_exact_evm_payload_authorization_valid_before", "base")
    too_short = evm_inner(fac, wallet, r, valid_before=now + 3)
    assert_refused(fac, b.v1(r, too_short), r, "invalid_exact_evm_payload_authorization_valid_before", "base")
    future = evm_inner(fac, wallet, r, valid_after=now + 120)
    assert_refused(fac, b.v1(r, future), r, "invalid_exact_evm_payload_authorization_valid_after", "base")


@pytest.mark.parametrize("domain", [
    {"chain_id": 84532},                 # Base Sepolia's chain id
    {"name": "USDC"},                    # Base Sepolia's domain name (x402#3102)
    {"version": "1"},
    {"asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e"},   # another verifying contract
])
def test_eip3009_wrong_domain(fac, wallet, domain):
    r = req(fac, "base")
    inner = evm_inner(fac, wallet, r, **domain)
    assert_refused(fac, b.v1(r, inner), r, "invalid_exact_evm_payload_signature", "base")


def test_eip3009_robinhood_signature_is_not_valid_on_base(fac, wallet):
    r_rh = req(fac, "robinhood")
    r_base = req(fac, "base")
    inner = evm_inner(fac, wallet, r_rh)   # signed for Global Dollar / 4663
    assert_refused(fac, b.v1(r_base, inner), r_base, "invalid_exact_evm_payload_signature", "base")


def test_eip3009_short_payloads(fac, wallet):
    r = req(fac, "base")
    inner = evm_inner(fac, wallet, r)
    short_sig = dict(inner, signature=inner["signature"][:-2])
    assert_refused(fac, b.v1(r, short_sig), r, "invalid_exact_evm_payload_signature", "base")
    no_nonce = {"signature": inner["signature"],
                "authorization": {k: v for k, v in inner["authorization"].items() if k != "nonce"}}
    assert fac.verify(b.v1(r, no_nonce), r)["invalidReason"] == "invalid_payload"
    assert fac.verify(b.v1(r, {}), r)["invalidReason"] == "invalid_payload"
    assert fac.verify({"x402Version": 1, "scheme": "exact", "network": "base"}, r)["invalidReason"] == "invalid_payload"
    float_value = {"signature": inner["signature"], "authorization": dict(inner["authorization"], value=1.5)}
    assert fac.verify(b.v1(r, float_value), r)["invalidReason"] == "invalid_payload"


def test_eip3009_scheme_network_and_version_checks(fac, wallet):
    r = req(fac, "base")
    inner = evm_inner(fac, wallet, r)
    assert fac.verify(dict(b.v1(r, inner), scheme="upto"), r)["invalidReason"] == "unsupported_scheme"
    assert fac.verify(dict(b.v1(r, inner), network="robinhood"), r)["invalidReason"] == "network_mismatch"
    assert fac.verify(dict(b.v1(r, inner), x402Version=3), r)["invalidReason"] == "invalid_x402_version"


def test_v2_accepted_must_echo_requirement(fac, wallet):
    r = req(fac, "base", version=2)
    inner = evm_inner(fac, wallet, r)
    wrong_asset = b.v2(r, inner)
    wrong_asset["accepted"]["asset"] = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
    assert_refused(fac, wrong_asset, r, "invalid_payment_requirements", "base")
    lower = b.v2(r, inner)
    lower["accepted"]["payTo"] = r["payTo"].lower()   # must not be re-cased
    assert fac.verify(lower, r)["invalidReason"] == "invalid_payment_requirements"
    timeout_str = b.v2(r, inner)
    timeout_str["accepted"]["maxTimeoutSeconds"] = str(r["maxTimeoutSeconds"])
    assert fac.verify(timeout_str, r)["invalidReason"] == "invalid_payment_requirements"
    dropped_extra = b.v2(r, inner)
    dropped_extra["accepted"]["extra"] = {"name": "USD Coin"}
    assert fac.verify(dropped_extra, r)["invalidReason"] == "invalid_payment_requirements"
    other_net = b.v2(r, inner)
    other_net["accepted"]["network"] = "eip155:4663"
    assert fac.verify(other_net, r)["invalidReason"] == "network_mismatch"
    extra_client_key = b.v2(r, inner)
    extra_client_key["accepted"]["extra"] = dict(r["extra"], clientHint="x")
    assert fac.verify(extra_client_key, r)["isValid"] is True


def test_wrong_asset_requirement_is_refused(fac, wallet):
    r = dict(req(fac, "base"), asset="0x036CbD53842c5426634e7929541eC2318f3dCF7e")
    inner = evm_inner(fac, wallet, r, asset=r["asset"])
    assert fac.verify(b.v1(r, inner), r)["invalidReason"] == "invalid_payment_requirements"


def test_eip3009_insufficient_balance(fac):
    poor = Account.create()
    r = req(fac, "base")
    inner = b.eip3009_inner(poor.key.hex(), to=r["payTo"], value=int(r["maxAmountRequired"]),
                            asset=r["asset"], chain_id=8453, name="USD Coin", version="2")
    assert_refused(fac, b.v1(r, inner), r, "invalid_exact_evm_insufficient_balance", "base")
    fac.fund("base", poor.address, int(r["maxAmountRequired"]))
    assert fac.verify(b.v1(r, inner), r)["isValid"] is True


# ---- MegaETH direct permit -----------------------------------------------------------------------------------

@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("version", [1, 2])
def test_megaeth_permit_settles_with_18_decimals(fac, wallet, split, version):
    r = req(fac, "megaeth", 1_500_000, version=version)
    amount = int(r.get("maxAmountRequired") or r["amount"])
    assert amount == 1_500_000 * 10**12
    chain = fac.chain("megaeth")
    owner = wallet["evm_address"]
    nonce = chain.nonces(owner)
    inner = b.permit_inner(wallet["evm_private_key"], spender=r["payTo"], value=amount, nonce=nonce,
                           asset=r["asset"], chain_id=4326, name="MegaUSD", version="1", split=split)
    payload = b.v1(r, inner) if version == 1 else b.v2(r, inner)
    payee = fac.payee("megaeth")
    before_payee, before_owner = fac.balance_of("megaeth", payee), fac.balance_of("megaeth", owner)
    assert fac.verify(payload, r) == {"isValid": True, "invalidReason": None, "payer": owner}
    s = fac.settle(payload, r)
    assert s["success"] is True, s
    assert s["amount"] == str(amount)
    assert fac.balance_of("megaeth", payee) - before_payee == amount
    assert before_owner - fac.balance_of("megaeth", owner) == amount
    assert chain.nonces(owner) == nonce + 1
    assert chain.allowance(owner, payee) == 0          # the permit was spent by transferFrom
    again = fac.settle(payload, r)
    assert again["success"] is False and again["errorReason"] == "invalid_exact_evm_nonce_already_used"


def test_megaeth_permit_refusals(fac, wallet):
    r = req(fac, "megaeth", 1_000_000)
    amount = int(r["maxAmountRequired"])
    chain = fac.chain("megaeth")
    owner = wallet["evm_address"]
    key = wallet["evm_private_key"]
    common = dict(value=amount, asset=r["asset"], name="MegaUSD", version="1")
    n = chain.nonces(owner)

    def refuse(inner, reason):
        before = fac.balance_of("megaeth", owner)
        v = fac.verify(b.v1(r, inner), r)
        assert v["isValid"] is False and v["invalidReason"] == reason, v
        assert fac.settle(b.v1(r, inner), r)["errorReason"] == reason
        assert fac.balance_of("megaeth", owner) == before and chain.nonces(owner) == n

    refuse(b.permit_inner(key, spender=Account.create().address, nonce=n, chain_id=4326, **common),
           "invalid_exact_evm_payload_recipient_mismatch")
    refuse(b.permit_inner(key, spender=r["payTo"], nonce=n, chain_id=1, **common),
           "invalid_exact_evm_payload_signature")
    refuse(b.permit_inner(key, spender=r["payTo"], nonce=n, chain_id=4326,
                          **dict(common, value=amount // 10**12)),   # 6-decimal mistake
           "invalid_exact_evm_payload_authorization_value_mismatch")
    refuse(b.permit_inner(key, spender=r["payTo"], nonce=n, chain_id=4326, deadline=int(time.time()) - 5, **common),
           "invalid_exact_evm_payload_authorization_valid_before")
    refuse(b.permit_inner(key, spender=r["payTo"], nonce=n + 1, chain_id=4326, **common),
           "invalid_exact_evm_payload_signature")
    good = b.permit_inner(key, spender=r["payTo"], nonce=n, chain_id=4326, **common)
    tampered = dict(good, authorization=dict(good["authorization"], value=str(amount)))
    tampered["signature"] = good["signature"][:-2] + ("1c" if good["signature"].endswith("1b") else "1b")
    refuse(tampered, "invalid_exact_evm_payload_signature")
    refuse({"authorization": good["authorization"]}, "invalid_payload")


def test_megaeth_rejects_eip3009_shape(fac, wallet):
    """MegaUSD has no EIP-3009 in production, so an EIP-3009 payload there is malformed."""
    r = req(fac, "megaeth")
    inner = evm_inner(fac, wallet, r)
    assert fac.verify(b.v1(r, inner), r)["invalidReason"] == "invalid_payload"


# ---- Solana ----------------------------------------------------------------------------------------------

def svm_payload(fac, wallet, r, version=1, **kw):
    kp = Keypair.from_bytes(__import__("base58").b58decode(wallet["solana_secret_key"]))
    amount = int(r.get("maxAmountRequired") or r["amount"])
    args = dict(fee_payer=Pubkey.from_string(r["extra"]["feePayer"]), mint=Pubkey.from_string(r["asset"]),
                pay_to=Pubkey.from_string(r["payTo"]), amount=amount,
                blockhash=fac.chain("solana").latest_blockhash())
    args.update(kw)
    tx = b.svm_transaction(kp, **args)
    inner = b.svm_inner(tx)
    return (b.v1(r, inner) if version == 1 else b.v2(r, inner)), kp, tx


@pytest.mark.parametrize("layout", ["spec", "upstream"])
@pytest.mark.parametrize("version", [1, 2])
def test_svm_settles_exact_amount(fac, wallet, layout, version):
    r = req(fac, "solana", 3_000_000, version=version)
    payload, kp, _ = svm_payload(fac, wallet, r, version=version, layout=layout)
    payer, payee = wallet["solana_address"], fac.payee("solana")
    before_payer, before_payee = fac.balance_of("solana", payer), fac.balance_of("solana", payee)
    sol_before = fac.chain("solana").sol_balance(payer)
    assert fac.verify(payload, r) == {"isValid": True, "invalidReason": None, "payer": payer}
    s = fac.settle(payload, r)
    assert s["success"] is True, s
    assert s["amount"] == "3000000" and s["payer"] == payer and len(s["transaction"]) > 60
    assert fac.balance_of("solana", payee) - before_payee == 3_000_000
    assert before_payer - fac.balance_of("solana", payer) == 3_000_000
    assert fac.chain("solana").sol_balance(payer) == sol_before     # the fee payer paid the fees
    again = fac.settle(payload, r)
    assert again["success"] is False and again["errorReason"] == "duplicate_settlement"
    assert fac.balance_of("solana", payee) - before_payee == 3_000_000


def svm_refuse(fac, payload, r, reason, wallet):
    payer = wallet["solana_address"]
    before = fac.balance_of("solana", payer)
    v = fac.verify(payload, r)
    assert v["isValid"] is False and v["invalidReason"] == reason, v
    s = fac.settle(payload, r)
    assert s["success"] is False and s["errorReason"] == reason
    assert fac.balance_of("solana", payer) == before


def test_svm_refusals(fac, wallet):
    r = req(fac, "solana", 1_000_000)
    svm_refuse(fac, svm_payload(fac, wallet, r, amount=999_999)[0], r,
               "invalid_exact_svm_payload_amount_insufficient", wallet)
    svm_refuse(fac, svm_payload(fac, wallet, r, amount=1_000_001)[0], r,
               "invalid_exact_svm_payload_amount_mismatch", wallet)
    svm_refuse(fac, svm_payload(fac, wallet, r, pay_to=Keypair().pubkey())[0], r,
               "invalid_exact_svm_payload_recipient_mismatch", wallet)
    svm_refuse(fac, svm_payload(fac, wallet, r, mint=Keypair().pubkey())[0], r,
               "invalid_exact_svm_payload_mint_mismatch", wallet)
    svm_refuse(fac, svm_payload(fac, wallet, r, decimals=9)[0], r,
               "invalid_exact_svm_payload_mint_mismatch", wallet)
    svm_refuse(fac, svm_payload(fac, wallet, r, cu_price=5_000_001)[0], r,
               "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction_too_high", wallet)
    svm_refuse(fac, svm_payload(fac, wallet, r, fee_payer=Keypair().pubkey())[0], r,
               "fee_payer_not_managed_by_facilitator", wallet)
    # a 5th instruction that is neither memo nor Lighthouse
    from solders.system_program import TransferParams, transfer
    kp = Keypair.from_bytes(__import__("base58").b58decode(wallet["solana_secret_key"]))
    stray = transfer(TransferParams(from_pubkey=kp.pubkey(), to_pubkey=Keypair().pubkey(), lamports=1))
    svm_refuse(fac, svm_payload(fac, wallet, r, extra_ixs=(stray,))[0], r,
               "invalid_exact_svm_payload_unknown_fifth_instruction", wallet)
    # the fee payer used as an account of an instruction: would drain the sponsor
    fp = Pubkey.from_string(fac.fee_payer())
    drain = transfer(TransferParams(from_pubkey=fp, to_pubkey=kp.pubkey(), lamports=1))
    svm_refuse(fac, svm_payload(fac, wallet, r, extra_ixs=(drain,), layout="upstream")[0], r,
               "invalid_exact_svm_payload_unknown_fourth_instruction", wallet)


def test_svm_signature_and_encoding(fac, wallet):
    r = req(fac, "solana", 1_000_000)
    payload, kp, tx = svm_payload(fac, wallet, r)
    raw = bytearray(base64.b64decode(payload["payload"]["transaction"]))
    raw[1 + 64 + 5] ^= 0x01   # one byte of the payer's signature (slot 1)
    bad = dict(payload, payload={"transaction": base64.b64encode(bytes(raw)).decode()})
    svm_refuse(fac, bad, r, "invalid_exact_svm_payload_signature", wallet)
    svm_refuse(fac, dict(payload, payload={"transaction": "not base64!"}), r,
               "invalid_exact_svm_payload_transaction_could_not_be_decoded", wallet)
    short = base64.b64encode(bytes(raw[:40])).decode()
    svm_refuse(fac, dict(payload, payload={"transaction": short}), r,
               "invalid_exact_svm_payload_transaction_could_not_be_decoded", wallet)


def test_svm_memo_rules(fac, wallet):
    r = req(fac, "solana", 1_000_000)
    r["extra"]["memo"] = "order-42"
    svm_refuse(fac, svm_payload(fac, wallet, r, memo=b"order-43")[0], r,
               "invalid_exact_svm_payload_memo_mismatch", wallet)
    svm_refuse(fac, svm_payload(fac, wallet, r, layout="upstream")[0], r,
               "invalid_exact_svm_payload_memo_count", wallet)
    ok = svm_payload(fac, wallet, r, memo=b"order-42")[0]
    assert fac.verify(ok, r)["isValid"] is True


def test_svm_insufficient_funds(fac):
    poor = Keypair()
    fac.fund("solana", str(poor.pubkey()), 10)
    w = {"solana_secret_key": __import__("base58").b58encode(bytes(poor)).decode(),
         "solana_address": str(poor.pubkey())}
    r = req(fac, "solana", 1_000_000)
    svm_refuse(fac, svm_payload(fac, w, r)[0], r, "insufficient_funds", w)


def test_svm_missing_recipient_ata_is_a_clear_refusal():
    fac = Facilitator(seed=11, recipient_atas=False)
    w = fac.test_wallets()[0]
    r = req(fac, "solana", 1_000_000, version=2)
    payload = svm_payload(fac, w, r, version=2)[0]
    v = fac.verify(payload, r)
    assert v["isValid"] is False and v["invalidReason"] == "invalid_exact_svm_payload_receiver_ata_not_found"
    assert "associated token account" in v["invalidMessage"]
    fac.chain("solana").create_ata(fac.payee("solana"))
    assert fac.settle(payload, r)["success"] is True
    assert fac.balance_of("solana", fac.payee("solana")) == 1_000_000


@pytest.mark.parametrize("mutate", [
    lambda p, r: (p, dict(r, network={"x": 1})),
    lambda p, r: (dict(p, payload=[]), r),
    lambda p, r: (dict(p, payload={"signature": 5, "authorization": {"from": 1, "to": [], "value": None,
                                                                    "validAfter": "x", "validBefore": {},
                                                                    "nonce": 7}}), r),
    lambda p, r: (dict(p, payload={"transaction": 12}), dict(r, network="solana")),
    lambda p, r: ("not a dict", r),
    lambda p, r: (p, dict(r, payTo=None)),
])
def test_malformed_input_is_refused_not_raised(fac, wallet, mutate):
    r = req(fac, "base")
    payload, r2 = mutate(b.v1(r, evm_inner(fac, wallet, r)), r)
    v = fac.verify(payload, r2)
    assert v["isValid"] is False and v["invalidReason"], v
    s = fac.settle(payload, r2)
    assert s["success"] is False and s["errorReason"] and s["transaction"] == ""


def test_concurrent_settles_of_one_payload_move_funds_once(fac, wallet):
    import threading
    r = req(fac, "base", 777)
    payload = b.v1(r, evm_inner(fac, wallet, r))
    before = fac.balance_of("base", r["payTo"])
    results = []
    threads = [threading.Thread(target=lambda: results.append(fac.settle(payload, r))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for x in results if x["success"]) == 1
    assert fac.balance_of("base", r["payTo"]) - before == 777


def test_permit2_mode_verifies_and_settles_through_the_proxy(wallet):
    """permit2=True: the Permit2 signature and the EIP-2612 extension are checked for real, and settlement
    runs our Permit2Lite + x402 exact proxy at the canonical addresses (settleWithPermit); more cases in
    test_permit2.py."""
    from x402_compute_sandbox.networks import PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY
    fac = Facilitator(seed=7, permit2=True)
    r = req(fac, "megaeth", 1_000_000, version=2)
    assert r["extra"]["assetTransferMethod"] == "permit2"
    amount, key, owner = int(r["amount"]), wallet["evm_private_key"], wallet["evm_address"]
    deadline = int(time.time()) + 300
    p2 = {"from": owner, "permitted": {"token": r["asset"], "amount": str(amount)},
          "spender": X402_EXACT_PERMIT2_PROXY, "nonce": "12345", "deadline": str(deadline),
          "witness": {"to": r["payTo"], "validAfter": "0"}}
    typed = {"types": {
        "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"},
                         {"name": "verifyingContract", "type": "address"}],
        "PermitWitnessTransferFrom": [
            {"name": "permitted", "type": "TokenPermissions"}, {"name": "spender", "type": "address"},
            {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"},
            {"name": "witness", "type": "Witness"}],
        "TokenPermissions": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "Witness": [{"name": "to", "type": "address"}, {"name": "validAfter", "type": "uint256"}]},
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": 4326, "verifyingContract": PERMIT2_ADDRESS},
        "message": {"permitted": {"token": r["asset"], "amount": amount}, "spender": X402_EXACT_PERMIT2_PROXY,
                    "nonce": 12345, "deadline": deadline, "witness": {"to": r["payTo"], "validAfter": 0}}}
    sig = "0x" + bytes(Account.sign_typed_data(key, full_message=typed).signature).hex()
    ext_sig = b.permit_signature(key, spender=PERMIT2_ADDRESS, value=amount, nonce=0, deadline=deadline,
                                 asset=r["asset"], chain_id=4326, name="MegaUSD", version="1")
    ext = {"eip2612GasSponsoring": {"info": {
        "from": owner, "asset": r["asset"], "spender": PERMIT2_ADDRESS, "amount": str(amount), "nonce": "0",
        "deadline": str(deadline), "signature": "0x" + ext_sig.hex(), "version": "1"}, "schema": {}}}
    payload = b.v2(r, {"signature": sig, "permit2Authorization": p2}, extensions=ext)
    assert fac.verify(payload, r)["isValid"] is True
    no_ext = b.v2(r, {"signature": sig, "permit2Authorization": p2})
    assert fac.verify(no_ext, r)["invalidReason"] == "permit2_allowance_required"
    bad_ext = json_copy(payload)
    bad_ext["extensions"]["eip2612GasSponsoring"]["info"]["signature"] = "0x" + b.permit_signature(
        key, spender=PERMIT2_ADDRESS, value=amount, nonce=0, deadline=deadline, asset=r["asset"],
        chain_id=1, name="MegaUSD", version="1").hex()
    assert fac.verify(bad_ext, r)["invalidReason"] == "invalid_exact_evm_payload_signature"
    wrong_spender = json_copy(payload)
    wrong_spender["payload"]["permit2Authorization"]["spender"] = "0x4020615294c913F045dc10f0a5cdEbd86c280001"
    assert fac.verify(wrong_spender, r)["invalidReason"] == "invalid_permit2_signature"
    before, before_payee = fac.balance_of("megaeth", owner), fac.balance_of("megaeth", r["payTo"])
    s = fac.settle(payload, r)
    assert s["success"] is True and s["transaction"].startswith("0x"), s
    assert before - fac.balance_of("megaeth", owner) == amount
    assert fac.balance_of("megaeth", r["payTo"]) - before_payee == amount
    again = fac.settle(payload, r)
    assert again["success"] is False and again["errorReason"] == "permit2_invalid_nonce"
    assert before - fac.balance_of("megaeth", owner) == amount


def json_copy(obj):
    import json
    return json.loads(json.dumps(obj))
