"""Cross-checks against the official x402 SDK (2.25.0): its client's payloads settle on our facilitator,
our hand-built payloads pass its facilitator, and both agree on what is invalid. The SDK's facilitator
also settles a hand-built Permit2 payload through our own Permit2Lite + x402 exact proxy (the SDK
*client*'s Permit2 payloads are covered in tests/sandbox/test_permit2.py)."""
from __future__ import annotations

import json

import base58
import pytest
from eth_account import Account
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from x402 import x402ClientSync, x402FacilitatorSync
from x402.mechanisms.evm import EthAccountSigner
from x402.mechanisms.evm.exact import ExactEvmScheme, register_exact_evm_facilitator
from x402.mechanisms.evm.exact.v1.client import ExactEvmSchemeV1
from x402.mechanisms.svm import KeypairSigner
from x402.mechanisms.svm.exact import ExactSvmScheme, register_exact_svm_facilitator
from x402.mechanisms.svm.exact.v1.client import ExactSvmSchemeV1
from x402.schemas import (
    parse_payment_payload,
    parse_payment_required,
    parse_payment_requirements,
)

from tests.oracle import bridges
from tests.oracle import builders as b
from x402_compute_sandbox.chains.evm import ChainRevert
from x402_compute_sandbox.facilitator import Facilitator

RESOURCE = "http://127.0.0.1:8402/compute/provision"
SOLANA = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"


@pytest.fixture(scope="module")
def fac():
    return Facilitator(seed=3)


@pytest.fixture(scope="module")
def wallet(fac):
    return fac.test_wallets()[1]


def kp_of(wallet) -> Keypair:
    return Keypair.from_bytes(base58.b58decode(wallet["solana_secret_key"]))


def sdk_client(fac, wallet) -> x402ClientSync:
    """The SDK client, unmodified except that its SVM RPC is answered by our LiteSVM."""
    acct = Account.from_key(wallet["evm_private_key"])
    evm_signer = EthAccountSigner(acct)
    svm_v2 = ExactSvmScheme(KeypairSigner(kp_of(wallet)))
    svm_v1 = ExactSvmSchemeV1(KeypairSigner(kp_of(wallet)))
    bridges.attach_svm_client(svm_v2, fac.chain("solana"), [SOLANA])
    bridges.attach_svm_client(svm_v1, fac.chain("solana"), [SOLANA])
    client = x402ClientSync()
    client.register("eip155:*", ExactEvmScheme(evm_signer))
    client.register_v1("base", ExactEvmSchemeV1(evm_signer))
    client.register(SOLANA, svm_v2)
    client.register_v1("solana", svm_v1)
    # The $1 default cap and the default-asset filter would hide amounts above $1 and USDG on 4663.
    client.set_spend_controls(False)
    return client


def challenge(fac, network, usd_micros, version):
    r = fac.requirement(network, amount_usd_micros=usd_micros, resource=RESOURCE, description="vps",
                        version=version)
    if version == 1:
        body = {"x402Version": 1, "error": "X-PAYMENT header is required", "accepts": [r]}
    else:
        body = {"x402Version": 2, "resource": {"url": RESOURCE}, "accepts": [r]}
    return r, parse_payment_required(body)


def sdk_payload(client, required) -> dict:
    payload = client.create_payment_payload(required)
    return json.loads(payload.model_dump_json(by_alias=True, exclude_none=True))


def owner(network, wallet):
    return wallet["solana_address"] if network == "solana" else wallet["evm_address"]


# ---- the SDK client -> our facilitator ---------------------------------------------------------------

@pytest.mark.parametrize("network,version", [
    ("base", 1), ("base", 2), ("solana", 1), ("solana", 2), ("robinhood", 2)])
def test_sdk_client_payload_settles_on_our_facilitator(fac, wallet, network, version):
    client = sdk_client(fac, wallet)
    usd = 4_200_000   # $4.20: above the SDK's default $1 cap on purpose
    r, required = challenge(fac, network, usd, version)
    payload = sdk_payload(client, required)
    assert payload["x402Version"] == version
    if version == 2:
        assert payload["accepted"] == r       # the SDK echoes our requirement byte for byte
    payer, payee = owner(network, wallet), fac.payee(network)
    before_payer, before_payee = fac.balance_of(network, payer), fac.balance_of(network, payee)
    v = fac.verify(payload, r)
    assert v == {"isValid": True, "invalidReason": None, "payer": payer}, v
    s = fac.settle(payload, r)
    assert s["success"] is True, s
    assert fac.balance_of(network, payee) - before_payee == 4_200_000
    assert before_payer - fac.balance_of(network, payer) == 4_200_000
    replay = fac.settle(payload, r)
    assert replay["success"] is False
    assert replay["errorReason"] in ("invalid_exact_evm_nonce_already_used", "duplicate_settlement")
    assert fac.balance_of(network, payee) - before_payee == 4_200_000


def test_sdk_client_pays_arc_and_our_facilitator_settles_it(fac, wallet):
    """x402 2.25.0 knows Arc mainnet (eip155:5042: USDC at 0x3600…, domain USDC/2, EIP-3009) among its
    default assets; its client pays our Arc requirement, which settles on our Arc chain. Below Arc's
    5 USD minimum the SDK still signs (the minimum is the service's rule), and our facilitator refuses."""
    client = sdk_client(fac, wallet)
    payer, payee = wallet["evm_address"], fac.payee("arc")
    r, required = challenge(fac, "arc", 5_250_000, 2)
    assert (r["network"], r["asset"], r["extra"]) == ("eip155:5042", "0x3600000000000000000000000000000000000000",
                                                      {"name": "USDC", "version": "2"})
    payload = sdk_payload(client, required)
    assert payload["accepted"] == r and payload["payload"]["authorization"]["from"] == payer
    before = fac.balance_of("arc", payee)
    s = fac.settle(payload, r)
    assert s["success"] is True and s["network"] == "eip155:5042", s
    assert fac.balance_of("arc", payee) - before == 5_250_000
    small, required = challenge(fac, "arc", 4_990_000, 2)
    refused = fac.settle(sdk_payload(client, required), small)
    assert (refused["success"], refused["errorReason"]) == (False, "below_network_minimum")
    assert fac.balance_of("arc", payee) - before == 5_250_000


def test_sdk_client_payload_tampered_is_refused(fac, wallet):
    client = sdk_client(fac, wallet)
    r, required = challenge(fac, "base", 1_000_000, 2)
    payload = sdk_payload(client, required)
    payload["payload"]["authorization"]["to"] = Account.create().address
    assert fac.verify(payload, r)["invalidReason"] == "invalid_exact_evm_payload_recipient_mismatch"
    payload = sdk_payload(client, required)
    sig = payload["payload"]["signature"]
    payload["payload"]["signature"] = sig[:20] + ("0" if sig[20] != "0" else "1") + sig[21:]
    assert fac.verify(payload, r)["invalidReason"] == "invalid_exact_evm_payload_signature"
    # an SDK payload for Base presented against a Robinhood requirement
    r_rh, _ = challenge(fac, "robinhood", 1_000_000, 2)
    assert fac.verify(sdk_payload(client, required), r_rh)["invalidReason"] == "network_mismatch"


def test_sdk_svm_payload_with_wrong_amount_is_refused(fac, wallet):
    client = sdk_client(fac, wallet)
    r, required = challenge(fac, "solana", 2_000_000, 2)
    payload = sdk_payload(client, required)
    r_bigger = dict(r, amount="2000001")
    payload["accepted"]["amount"] = "2000001"
    assert fac.verify(payload, r_bigger)["invalidReason"] == "invalid_exact_svm_payload_amount_insufficient"


# ---- hand-built payloads -> the SDK facilitator ------------------------------------------------------------

@pytest.fixture(scope="module")
def sdk_evm_facilitator(fac):
    key = Account.create().key.hex()
    signer = bridges.evm_facilitator_signer(key, fac.chain("base"))
    fac.native_fund("base", signer.address, 10**20)      # the SDK's facilitator pays its own gas
    facilitator = x402FacilitatorSync()
    register_exact_evm_facilitator(facilitator, signer, networks="eip155:8453")
    return facilitator


@pytest.fixture(scope="module")
def sdk_svm_facilitator(fac):
    signer = bridges.LiteSvmFacilitatorSigner(fac._fee_payer, fac.chain("solana"))
    facilitator = x402FacilitatorSync()
    register_exact_svm_facilitator(facilitator, signer, networks=SOLANA)
    return facilitator


def sdk_verify(facilitator, payload, r):
    return facilitator.verify(parse_payment_payload(payload), parse_payment_requirements(payload["x402Version"], r))


def sdk_settle(facilitator, payload, r):
    return facilitator.settle(parse_payment_payload(payload), parse_payment_requirements(payload["x402Version"], r))


def test_hand_built_eip3009_passes_sdk_facilitator(fac, wallet, sdk_evm_facilitator):
    r = fac.requirement("base", amount_usd_micros=1_750_000, resource=RESOURCE, description="x", version=2)
    inner = b.eip3009_inner(wallet["evm_private_key"], to=r["payTo"], value=1_750_000, asset=r["asset"],
                            chain_id=8453, name="USD Coin", version="2")
    payload = b.v2(r, inner)
    fac.chain("base").refresh_time()
    res = sdk_verify(sdk_evm_facilitator, payload, r)
    assert res.is_valid is True, res
    assert res.payer == wallet["evm_address"]
    assert fac.verify(payload, r)["isValid"] is True
    # the SDK settles it on our chain; then both agree the nonce is spent
    before = fac.balance_of("base", r["payTo"])
    st = sdk_settle(sdk_evm_facilitator, payload, r)
    assert st.success is True, st
    assert fac.balance_of("base", r["payTo"]) - before == 1_750_000
    again = sdk_verify(sdk_evm_facilitator, payload, r)
    assert again.is_valid is False and again.invalid_reason == "invalid_exact_evm_nonce_already_used"
    assert fac.verify(payload, r)["invalidReason"] == "invalid_exact_evm_nonce_already_used"


def test_sdk_and_ours_agree_on_tampering(fac, wallet, sdk_evm_facilitator):
    r = fac.requirement("base", amount_usd_micros=500_000, resource=RESOURCE, description="x", version=2)
    inner = b.eip3009_inner(wallet["evm_private_key"], to=r["payTo"], value=500_000, asset=r["asset"],
                            chain_id=8453, name="USD Coin", version="2")
    sig = bytearray(bytes.fromhex(inner["signature"][2:]))
    sig[5] ^= 0xFF
    bad = b.v2(r, dict(inner, signature="0x" + sig.hex()))
    fac.chain("base").refresh_time()
    assert sdk_verify(sdk_evm_facilitator, bad, r).is_valid is False
    assert fac.verify(bad, r)["invalidReason"] == "invalid_exact_evm_payload_signature"
    wrong_domain = b.v2(r, b.eip3009_inner(wallet["evm_private_key"], to=r["payTo"], value=500_000,
                                           asset=r["asset"], chain_id=84532, name="USD Coin", version="2"))
    assert sdk_verify(sdk_evm_facilitator, wrong_domain, r).is_valid is False
    assert fac.verify(wrong_domain, r)["invalidReason"] == "invalid_exact_evm_payload_signature"


@pytest.mark.parametrize("layout", ["spec", "upstream"])
def test_hand_built_svm_passes_sdk_facilitator(fac, wallet, sdk_svm_facilitator, layout):
    r = fac.requirement("solana", amount_usd_micros=1_100_000, resource=RESOURCE, description="x", version=2)
    tx = b.svm_transaction(kp_of(wallet), fee_payer=Pubkey.from_string(r["extra"]["feePayer"]),
                           mint=Pubkey.from_string(r["asset"]), pay_to=Pubkey.from_string(r["payTo"]),
                           amount=1_100_000, blockhash=fac.chain("solana").latest_blockhash(), layout=layout)
    payload = b.v2(r, b.svm_inner(tx))
    res = sdk_verify(sdk_svm_facilitator, payload, r)
    assert res.is_valid is True, res
    assert fac.verify(payload, r)["isValid"] is True
    before = fac.balance_of("solana", r["payTo"])
    st = fac.settle(payload, r)
    assert st["success"] is True, st
    assert fac.balance_of("solana", r["payTo"]) - before == 1_100_000
    # after our settlement the SDK's simulation sees the replay too
    assert sdk_verify(sdk_svm_facilitator, payload, r).is_valid is False


def test_svm_tampered_signature_refused_by_both(fac, wallet, sdk_svm_facilitator):
    r = fac.requirement("solana", amount_usd_micros=100_000, resource=RESOURCE, description="x", version=2)
    tx = b.svm_transaction(kp_of(wallet), fee_payer=Pubkey.from_string(r["extra"]["feePayer"]),
                           mint=Pubkey.from_string(r["asset"]), pay_to=Pubkey.from_string(r["payTo"]),
                           amount=100_000, blockhash=fac.chain("solana").latest_blockhash())
    raw = bytearray(bytes(tx))
    raw[1 + 64 + 3] ^= 0x01
    import base64
    payload = b.v2(r, {"transaction": base64.b64encode(bytes(raw)).decode()})
    sdk = sdk_verify(sdk_svm_facilitator, payload, r)
    assert sdk.is_valid is False
    assert fac.verify(payload, r)["invalidReason"] == "invalid_exact_svm_payload_signature"


@pytest.mark.parametrize("with_extension", [True, False])
def test_sdk_facilitator_settles_hand_built_permit2_on_our_contracts(fac, with_extension):
    """The SDK builds the proxy calldata itself (settleWithPermit / settle); our contracts must accept it."""
    import time
    w = fac.test_wallets()[2]
    chain = fac.chain("megaeth")
    key = Account.create().key.hex()
    signer = bridges.evm_facilitator_signer(key, chain)
    fac.native_fund("megaeth", signer.address, 10**20)
    sdk = x402FacilitatorSync()
    register_exact_evm_facilitator(sdk, signer, networks="eip155:4326")
    r = fac.requirement("megaeth", amount_usd_micros=2_000_000, resource=RESOURCE, description="x", version=2)
    r["extra"]["assetTransferMethod"] = "permit2"
    amount = int(r["amount"])
    inner = b.permit2_inner(w["evm_private_key"], asset=r["asset"], amount=amount, pay_to=r["payTo"],
                            chain_id=4326)
    if with_extension:
        ext = b.eip2612_extension(w["evm_private_key"], asset=r["asset"], amount=amount,
                                  nonce=chain.nonces(w["evm_address"]), deadline=int(time.time()) + 300,
                                  chain_id=4326, name="MegaUSD", version="1")
        payload = b.v2(r, inner, extensions=ext)
    else:
        chain.register_key(w["evm_private_key"])
        chain.approve(w["evm_address"], b.PERMIT2, amount)
        payload = b.v2(r, inner)
    chain.refresh_time()
    res = sdk_verify(sdk, payload, r)
    assert res.is_valid is True, res
    assert fac.verify(payload, r)["isValid"] is True
    before = fac.balance_of("megaeth", r["payTo"]), fac.balance_of("megaeth", w["evm_address"])
    st = sdk_settle(sdk, payload, r)
    assert st.success is True, st
    assert fac.balance_of("megaeth", r["payTo"]) - before[0] == amount
    assert before[1] - fac.balance_of("megaeth", w["evm_address"]) == amount
    # the nonce is spent on chain: our facilitator sees it, and the SDK's second settle reverts
    assert fac.verify(payload, r)["invalidReason"] == "permit2_invalid_nonce"
    again = sdk_settle(sdk, payload, r)
    assert again.success is False, again
    # with the extension the SDK's verify passes (it checks only the permit's fields) and it sends
    # settleWithPermit unsimulated: the transaction is mined and reverts on Permit2's spent nonce. Without
    # it, the spent allowance already fails the SDK's own verify.
    assert again.error_reason == ("transaction_failed" if with_extension else "permit2_allowance_required"), again
    with pytest.raises(ChainRevert, match="InvalidNonce"):
        chain.simulate_permit2_settle(inner["permit2Authorization"], bytes.fromhex(inner["signature"][2:]))
    assert fac.balance_of("megaeth", r["payTo"]) - before[0] == amount
