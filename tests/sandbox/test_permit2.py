"""The x402 Permit2 route (x402.md §5) settles for real on the sandbox's MegaETH chain.

Our own Permit2Lite and X402ExactPermit2Proxy run at the canonical addresses (contracts/, chains/evm.py).
Payloads are signed independently with eth-account (tests/oracle/builders.py) and by the official x402
SDK client; both settle through `proxy.settleWithPermit` (eip2612GasSponsoring) or `proxy.settle`
(allowance already in place), move exactly the amount in 18-decimal atomic units, and spend the
Permit2 nonce. Replays, tampering and wrong witness types are refused by the facilitator *and* by the
contracts when called directly.
"""
from __future__ import annotations

import json
import time

import pytest
from eth_account import Account

from tests.oracle import builders as b
from x402_compute_sandbox.chains.evm import ChainRevert
from x402_compute_sandbox.facilitator import Facilitator
from x402_compute_sandbox.networks import PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY

RESOURCE = "http://127.0.0.1:8402/compute/provision"
NET = "megaeth"
CHAIN_ID = 4326


@pytest.fixture(scope="module")
def fac():
    return Facilitator(seed=11, permit2=True)


@pytest.fixture(scope="module")
def chain(fac):
    return fac.chain(NET)


def req(fac, usd_micros=1_000_000):
    return fac.requirement(NET, amount_usd_micros=usd_micros, resource=RESOURCE, description="t", version=2)


def signed(fac, wallet, r, **kw):
    args = dict(asset=r["asset"], amount=int(r["amount"]), pay_to=r["payTo"], chain_id=CHAIN_ID)
    args.update(kw)
    return b.permit2_inner(wallet["evm_private_key"], **args)


def extension(fac, chain, wallet, r, deadline=None):
    return b.eip2612_extension(wallet["evm_private_key"], asset=r["asset"], amount=int(r["amount"]),
                               nonce=chain.nonces(wallet["evm_address"]),
                               deadline=deadline or int(time.time()) + 300, chain_id=CHAIN_ID,
                               name="MegaUSD", version="1")


def selector(chain, tx_hash) -> str:
    return "0x" + bytes(chain.w3.eth.get_transaction(tx_hash)["input"][:4]).hex()


def fn_selector(fn) -> str:
    return "0x" + bytes.fromhex(fn._encode_transaction_data()[2:10]).hex()


def balances(fac, *owners):
    return [fac.balance_of(NET, o) for o in owners]


def sig_bytes(inner) -> bytes:
    return bytes.fromhex(inner["signature"][2:])


def test_contracts_are_at_the_canonical_addresses(chain):
    assert chain.has_permit2()
    assert chain.proxy.functions.PERMIT2().call() == PERMIT2_ADDRESS
    assert chain.proxy.functions.WITNESS_TYPE_STRING().call() == (
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)")
    # Permit2's domain has no version: {name: "Permit2", chainId, verifyingContract}
    from eth_account.messages import encode_typed_data
    domain = encode_typed_data(full_message={
        "types": {"EIP712Domain": b.PERMIT2_DOMAIN, "X": []}, "primaryType": "X",
        "domain": {"name": "Permit2", "chainId": CHAIN_ID, "verifyingContract": PERMIT2_ADDRESS}, "message": {}})
    assert chain.permit2.functions.DOMAIN_SEPARATOR().call() == domain.header


def test_eip2612_sponsored_payment_settles_with_settle_with_permit(fac, chain):
    w = fac.test_wallets()[0]
    r = req(fac, 2_500_000)
    amount = int(r["amount"])
    assert amount == 2_500_000 * 10**12            # 18 decimals, atomic units
    assert chain.allowance(w["evm_address"], PERMIT2_ADDRESS) == 0
    inner = signed(fac, w, r)
    payload = b.v2(r, inner, extensions=extension(fac, chain, w, r))
    nonce = int(inner["permit2Authorization"]["nonce"])
    assert not chain.permit2_nonce_used(w["evm_address"], nonce)
    v = fac.verify(payload, r)
    assert v == {"isValid": True, "invalidReason": None, "payer": w["evm_address"]}, v
    before = balances(fac, w["evm_address"], r["payTo"], X402_EXACT_PERMIT2_PROXY, PERMIT2_ADDRESS)
    token_nonce = chain.nonces(w["evm_address"])
    s = fac.settle(payload, r)
    assert s["success"] is True, s
    assert s["payer"] == w["evm_address"] and s["amount"] == str(amount) and s["network"] == "eip155:4326"
    after = balances(fac, w["evm_address"], r["payTo"], X402_EXACT_PERMIT2_PROXY, PERMIT2_ADDRESS)
    assert before[0] - after[0] == amount and after[1] - before[1] == amount
    assert after[2:] == before[2:]                 # nothing sticks to the proxy or Permit2
    assert selector(chain, s["transaction"]) == fn_selector(chain.proxy.functions.settleWithPermit(
        (0, 0, b"\0" * 32, b"\0" * 32, 0), ((r["asset"], 0), 0, 0), w["evm_address"], (r["payTo"], 0), b""))
    assert chain.w3.eth.get_transaction(s["transaction"])["from"] == chain.operator   # facilitator pays gas
    assert chain.permit2_nonce_used(w["evm_address"], nonce)
    assert chain.nonces(w["evm_address"]) == token_nonce + 1       # the ERC-2612 permit was redeemed
    assert chain.allowance(w["evm_address"], PERMIT2_ADDRESS) == 0  # and exactly consumed

    # replay: refused by the facilitator, and by Permit2's nonce bitmap when sent straight to the proxy
    for res in (fac.verify(payload, r), fac.settle(payload, r)):
        assert (res.get("invalidReason") or res.get("errorReason")) == "permit2_invalid_nonce", res
    with pytest.raises(ChainRevert, match="InvalidNonce"):
        chain.simulate_permit2_settle(inner["permit2Authorization"], sig_bytes(inner))
    assert balances(fac, w["evm_address"], r["payTo"])[0] == after[0]


def test_pre_approved_allowance_settles_with_plain_settle(fac, chain):
    w = fac.test_wallets()[1]
    chain.register_key(w["evm_private_key"])
    r = req(fac, 1_234_567)
    amount = int(r["amount"])
    chain.approve(w["evm_address"], PERMIT2_ADDRESS, amount)
    inner = signed(fac, w, r)
    payload = b.v2(r, inner)                       # no extension needed
    assert fac.verify(payload, r)["isValid"] is True
    before = balances(fac, w["evm_address"], r["payTo"])
    token_nonce = chain.nonces(w["evm_address"])
    s = fac.settle(payload, r)
    assert s["success"] is True, s
    after = balances(fac, w["evm_address"], r["payTo"])
    assert before[0] - after[0] == amount and after[1] - before[1] == amount
    assert selector(chain, s["transaction"]) == fn_selector(chain.proxy.functions.settle(
        ((r["asset"], 0), 0, 0), w["evm_address"], (r["payTo"], 0), b""))
    assert chain.nonces(w["evm_address"]) == token_nonce       # no ERC-2612 permit involved
    assert chain.allowance(w["evm_address"], PERMIT2_ADDRESS) == 0
    assert chain.permit2_nonce_used(w["evm_address"], int(inner["permit2Authorization"]["nonce"]))
    assert fac.settle(payload, r)["errorReason"] == "permit2_invalid_nonce"
    # with the allowance used up, a fresh payment needs an allowance or the extension again
    assert fac.verify(b.v2(r, signed(fac, w, r)), r)["invalidReason"] == "permit2_allowance_required"


def test_tampered_amount_or_recipient_is_refused(fac, chain):
    w = fac.test_wallets()[2]
    chain.register_key(w["evm_private_key"])
    r = req(fac, 700_000)
    amount = int(r["amount"])
    chain.approve(w["evm_address"], PERMIT2_ADDRESS, 10 * amount)
    before = balances(fac, w["evm_address"], r["payTo"])
    inner = signed(fac, w, r)
    mallory = Account.create().address

    # fields edited after signing: the signature no longer covers them
    tampered_amount = json.loads(json.dumps(inner))
    tampered_amount["permit2Authorization"]["permitted"]["amount"] = str(amount // 2)
    tampered_to = json.loads(json.dumps(inner))
    tampered_to["permit2Authorization"]["witness"]["to"] = mallory
    r_half = dict(r, amount=str(amount // 2))
    p_amount = b.v2(r_half, tampered_amount)
    assert fac.verify(p_amount, r_half)["invalidReason"] == "invalid_permit2_signature"
    assert fac.settle(p_amount, r_half)["errorReason"] == "invalid_permit2_signature"
    assert fac.verify(b.v2(r, tampered_to), r)["invalidReason"] == "invalid_permit2_signature"
    # ... and the contracts refuse them when the facilitator is bypassed
    for bad in (tampered_amount, tampered_to):
        with pytest.raises(ChainRevert, match="InvalidSigner"):
            chain.simulate_permit2_settle(bad["permit2Authorization"], sig_bytes(bad))

    # honestly signed, but not what the requirement asks for
    assert fac.verify(b.v2(r, signed(fac, w, r, amount=amount - 1)), r)["invalidReason"] == "permit2_amount_mismatch"
    assert fac.verify(b.v2(r, signed(fac, w, r, pay_to=mallory)), r)["invalidReason"] == \
        "invalid_permit2_recipient_mismatch"
    assert fac.verify(b.v2(r, signed(fac, w, r, spender="0x4020615294c913F045dc10f0a5cdEbd86c280001")), r)[
        "invalidReason"] == "invalid_permit2_spender"      # the stale proxy address
    assert balances(fac, w["evm_address"], r["payTo"]) == before

    # the untampered original still settles, for exactly the amount
    s = fac.settle(b.v2(r, inner), r)
    assert s["success"] is True, s
    after = balances(fac, w["evm_address"], r["payTo"])
    assert before[0] - after[0] == amount and after[1] - before[1] == amount


def test_wrong_witness_type_is_refused(fac, chain):
    w = fac.test_wallets()[2]
    chain.register_key(w["evm_private_key"])  # its own approve below (xdist may run it first)
    r = req(fac, 300_000)
    amount = int(r["amount"])
    chain.approve(w["evm_address"], PERMIT2_ADDRESS, amount)
    before = balances(fac, w["evm_address"], r["payTo"])
    # the pre-audit Witness with an `extra` member: another witness type hash, so another digest
    old = signed(fac, w, r, witness_fields=b.PERMIT2_WITNESS + [{"name": "extra", "type": "bytes"}],
                 extra_witness={"extra": b""})
    assert fac.verify(b.v2(r, old), r)["invalidReason"] == "invalid_permit2_signature"
    with pytest.raises(ChainRevert, match="InvalidSigner"):
        chain.simulate_permit2_settle(old["permit2Authorization"], sig_bytes(old))
    # members reordered: same fields, different type string
    swapped = signed(fac, w, r, witness_fields=list(reversed(b.PERMIT2_WITNESS)))
    with pytest.raises(ChainRevert, match="InvalidSigner"):
        chain.simulate_permit2_settle(swapped["permit2Authorization"], sig_bytes(swapped))

    # Permit2 itself, called by a funded EOA named as spender: a correct signature verifies only with the
    # witness type string it was signed under, only for the signed spender, and only up to the amount.
    spender = Account.create().address
    fac.native_fund(NET, spender, 10**18)
    good = signed(fac, w, r)
    for_eoa = signed(fac, w, r, spender=spender)
    p2 = for_eoa["permit2Authorization"]
    permit = ((r["asset"], amount), int(p2["nonce"]), int(p2["deadline"]))
    witness_hash = chain.w3.keccak(
        chain.w3.codec.encode(["bytes32", "address", "uint256"],
                              [chain.w3.keccak(text="Witness(address to,uint256 validAfter)"), r["payTo"], 0]))
    right_type = "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)"
    wrong_type = "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validFrom)"
    call = chain.permit2.functions.permitWitnessTransferFrom

    def as_spender(sig, witness_type, requested=amount, sender=spender):
        return chain._call(call(permit, (r["payTo"], requested), w["evm_address"], witness_hash, witness_type, sig),
                           sender)

    assert as_spender(sig_bytes(for_eoa), right_type) == []          # simulation succeeds
    with pytest.raises(ChainRevert, match="InvalidSigner"):
        as_spender(sig_bytes(for_eoa), wrong_type)
    with pytest.raises(ChainRevert, match="InvalidSigner"):           # spender is msg.sender, not an argument
        as_spender(sig_bytes(for_eoa), right_type, sender=fac.payee(NET))
    with pytest.raises(ChainRevert, match="InvalidSigner"):           # signed for the proxy, not this caller
        as_spender(sig_bytes(good), right_type)
    with pytest.raises(ChainRevert, match="InvalidAmount"):
        as_spender(sig_bytes(for_eoa), right_type, requested=amount + 1)
    assert balances(fac, w["evm_address"], r["payTo"]) == before
    assert fac.settle(b.v2(r, good), r)["success"] is True        # the genuine one still works


def test_contract_time_checks_and_compact_signatures(fac, chain):
    w = fac.test_wallets()[2]
    chain.register_key(w["evm_private_key"])  # its own approve below; no other test's order to rely on (xdist)
    r = req(fac, 100_000)
    amount = int(r["amount"])
    chain.approve(w["evm_address"], PERMIT2_ADDRESS, amount)
    now = chain.refresh_time()
    expired = signed(fac, w, r, deadline=now - 1)
    with pytest.raises(ChainRevert, match="SignatureExpired"):
        chain.simulate_permit2_settle(expired["permit2Authorization"], sig_bytes(expired))
    assert fac.verify(b.v2(r, expired), r)["invalidReason"] == "permit2_deadline_expired"
    early = signed(fac, w, r, valid_after=now + 3600)
    with pytest.raises(ChainRevert, match="PaymentTooEarly"):
        chain.simulate_permit2_settle(early["permit2Authorization"], sig_bytes(early))
    assert fac.verify(b.v2(r, early), r)["invalidReason"] == "permit2_not_yet_valid"
    # EIP-2098 64-byte signatures are accepted by Permit2 (the facilitator, like x402's, wants 65 bytes)
    good = signed(fac, w, r)
    sig = sig_bytes(good)
    vs = int.from_bytes(sig[32:64], "big") | ((sig[64] - 27) << 255)
    chain.simulate_permit2_settle(good["permit2Authorization"], sig[:32] + vs.to_bytes(32, "big"))


def test_invalidated_nonce_and_bad_eip2612_extension_are_refused(fac, chain):
    w = fac.test_wallets()[0]
    r = req(fac, 200_000)
    inner = signed(fac, w, r, nonce=(7 << 8) | 42)
    ext = extension(fac, chain, w, r)
    payload = b.v2(r, inner, extensions=ext)
    assert fac.verify(payload, r)["isValid"] is True
    chain.register_key(w["evm_private_key"])
    chain._transact(chain.permit2.functions.invalidateUnorderedNonces(7, 1 << 42), sender=w["evm_address"])
    assert chain.permit2_nonce_used(w["evm_address"], (7 << 8) | 42)
    assert fac.settle(payload, r)["errorReason"] == "permit2_invalid_nonce"
    # an extension permit signed for another chain: the token rejects it in simulation, nothing moves
    fresh = signed(fac, w, r)
    bad = b.eip2612_extension(w["evm_private_key"], asset=r["asset"], amount=int(r["amount"]),
                              nonce=chain.nonces(w["evm_address"]), deadline=int(time.time()) + 300,
                              chain_id=1, name="MegaUSD", version="1")
    before = balances(fac, w["evm_address"], r["payTo"])
    assert fac.settle(b.v2(r, fresh, extensions=bad), r)["errorReason"] == "invalid_exact_evm_payload_signature"
    # an extension permit smaller than the payment
    small = b.eip2612_extension(w["evm_private_key"], asset=r["asset"], amount=int(r["amount"]) - 1,
                                nonce=chain.nonces(w["evm_address"]), deadline=int(time.time()) + 300,
                                chain_id=CHAIN_ID, name="MegaUSD", version="1")
    assert fac.verify(b.v2(r, fresh, extensions=small), r)["invalidReason"] == "invalid_payload"
    assert balances(fac, w["evm_address"], r["payTo"]) == before
    assert fac.settle(b.v2(r, fresh, extensions=extension(fac, chain, w, r)), r)["success"] is True


# ---- the official x402 SDK client (RPC-backed signer over our chain) ---------------------------------------

def sdk_payload(fac, chain, wallet, r):
    from x402 import x402ClientSync
    from x402.extensions.eip2612_gas_sponsoring import (
        declare_eip2612_gas_sponsoring_extension,
    )
    from x402.mechanisms.evm.exact import ExactEvmScheme
    from x402.schemas import parse_payment_required

    from tests.oracle import bridges

    signer = bridges.evm_client_signer_with_rpc(Account.from_key(wallet["evm_private_key"]), chain)
    client = x402ClientSync()
    client.register("eip155:*", ExactEvmScheme(signer))
    client.set_spend_controls(False)      # our 18-decimal amounts exceed the SDK's $1 default cap
    required = parse_payment_required({
        "x402Version": 2, "resource": {"url": RESOURCE}, "accepts": [r],
        "extensions": declare_eip2612_gas_sponsoring_extension()})
    payload = client.create_payment_payload(required)
    return json.loads(payload.model_dump_json(by_alias=True, exclude_none=True))


@pytest.mark.parametrize("pre_approved", [False, True])
def test_sdk_client_permit2_payload_settles(fac, chain, pre_approved):
    w = fac.test_wallets()[1]
    chain.register_key(w["evm_private_key"])
    r = req(fac, 3_300_000)
    amount = int(r["amount"])
    if pre_approved:
        chain.approve(w["evm_address"], PERMIT2_ADDRESS, amount)
    else:
        assert chain.allowance(w["evm_address"], PERMIT2_ADDRESS) == 0
    payload = sdk_payload(fac, chain, w, r)
    p2 = payload["payload"]["permit2Authorization"]
    assert p2["spender"] == X402_EXACT_PERMIT2_PROXY and p2["witness"]["to"] == r["payTo"]
    ext = (payload.get("extensions") or {}).get("eip2612GasSponsoring")
    if pre_approved:
        # the SDK skips the permit when the allowance suffices (it may echo the server's declaration)
        assert "signature" not in ((ext or {}).get("info") or {})
    else:
        assert ext["info"]["spender"] == PERMIT2_ADDRESS and ext["info"]["from"] == w["evm_address"]
    assert fac.verify(payload, r) == {"isValid": True, "invalidReason": None, "payer": w["evm_address"]}
    before = balances(fac, w["evm_address"], r["payTo"])
    s = fac.settle(payload, r)
    assert s["success"] is True, s
    after = balances(fac, w["evm_address"], r["payTo"])
    assert before[0] - after[0] == amount and after[1] - before[1] == amount
    assert chain.permit2_nonce_used(w["evm_address"], int(p2["nonce"]))
    assert fac.settle(payload, r)["errorReason"] == "permit2_invalid_nonce"
    assert balances(fac, w["evm_address"], r["payTo"]) == after
