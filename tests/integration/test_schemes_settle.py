"""Payloads built by our scheme signers settle for real.

For requirements produced by the sandbox facilitator (v1 and v2; base, robinhood, megaeth with 18
decimals, solana with the facilitator's feePayer/recentBlockhash), ``sign_offer`` builds the payload,
we wrap it as the payment flow does, and:
- the sandbox facilitator settles it on its local chain, moving exactly the amount;
- tampering with a signed field (value, recipient, a signature byte) is refused and moves nothing;
- the official x402 SDK facilitator (2.25.0) verifies the same kind of payloads (EVM on the eth-tester
  chain, Solana on LiteSVM, via tests/oracle/bridges.py) and settles them.
The RPC reads our signers make (MegaUSD nonces, Permit2 allowance, mint info, recipient account) are
answered from the facilitator's own chains through an in-process ``Rpc``.
"""

from __future__ import annotations

import base64
import copy

import pytest
from solders.pubkey import Pubkey  # noqa: E402
from x402_compute.config import Settings
from x402_compute.errors import PolicyError
from x402_compute.networks import network_key
from x402_compute.payments.model import Offer
from x402_compute.payments.rpc import AccountInfo
from x402_compute.payments.schemes import sign_offer

from x402_compute_sandbox.facilitator import Facilitator

RESOURCE = "http://127.0.0.1:8402/compute/provision"
USD = 1_234_567   # $1.234567 in USD micros


class ChainRpc:
    """``payments.rpc.Rpc`` answered by the facilitator's in-process chains (what POST /rpc/<net> serves)."""

    def __init__(self, fac: Facilitator):
        self.fac = fac

    def cache_key(self, network):
        return ("sandbox", id(self.fac), network)

    def eth_chain_id(self, network):
        return self.fac.chain(network).w3.eth.chain_id

    def eth_call(self, network, to, data):
        chain = self.fac.chain(network)
        chain.refresh_time()
        return bytes(chain.w3.eth.call({"to": to, "data": "0x" + data.hex()}))

    def sol_latest_blockhash(self, network):
        return str(self.fac.chain(network).latest_blockhash())

    def sol_account_info(self, network, address):
        acct = self.fac.chain(network).svm.get_account(Pubkey.from_string(address))
        if acct is None:
            return None
        return AccountInfo(owner=str(acct.owner), data=bytes(acct.data), lamports=acct.lamports)

    def sol_rent_exempt_lamports(self, network, size):
        return self.fac.chain(network).svm.minimum_balance_for_rent_exemption(size)


def to_offer(req: dict, version: int, extensions: dict | None = None) -> Offer:
    amount = req["maxAmountRequired"] if version == 1 else req["amount"]
    return Offer(version=version, scheme=req["scheme"], network=req["network"], key=network_key(req["network"]),
                 amount=int(amount), asset=req["asset"], pay_to=req["payTo"],
                 max_timeout_seconds=req.get("maxTimeoutSeconds"), extra=dict(req.get("extra") or {}),
                 raw=req, resource=req.get("resource") if version == 1 else {"url": RESOURCE},
                 extensions=extensions)


def wrap(offer: Offer, signed) -> dict:
    """The PaymentPayload the flow sends (x402.md §2.3, §2.4)."""
    if offer.version == 1:
        return {"x402Version": 1, "scheme": offer.scheme, "network": offer.network, "payload": signed.payload}
    doc = {"x402Version": 2, "accepted": offer.raw, "payload": signed.payload, "resource": {"url": RESOURCE}}
    if signed.extensions:
        doc["extensions"] = signed.extensions
    return doc


@pytest.fixture(scope="module")
def fac():
    return Facilitator(seed=41)


@pytest.fixture(scope="module")
def rpc(fac):
    return ChainRpc(fac)


def wallet_settings(fac, i=0) -> tuple[Settings, dict]:
    w = fac.test_wallets()[i]
    return Settings(private_key=w["evm_private_key"], solana_secret_key=w["solana_secret_key"]), w


def owner(w, network):
    return w["solana_address"] if network == "solana" else w["evm_address"]


def balances(fac, network, w):
    return fac.balance_of(network, owner(w, network)), fac.balance_of(network, fac.payee(network))


# ---- settle on the sandbox facilitator ------------------------------------------------------------

@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("network", ["base", "robinhood", "megaeth", "solana"])
def test_our_payload_settles_and_moves_exactly_the_amount(fac, rpc, network, version):
    settings, w = wallet_settings(fac)
    req = fac.requirement(network, amount_usd_micros=USD, resource=RESOURCE, description="t", version=version)
    offer = to_offer(req, version)
    expected = USD * 10**12 if network == "megaeth" else USD       # MegaUSD has 18 decimals
    assert offer.amount == expected
    signed = sign_offer(offer, settings, rpc=rpc)
    assert signed.payer == owner(w, network)
    payload = wrap(offer, signed)
    payer_before, payee_before = balances(fac, network, w)
    res = fac.settle(payload, req)
    assert res["success"] is True, res
    assert res["payer"] == owner(w, network)
    payer_after, payee_after = balances(fac, network, w)
    assert payer_before - payer_after == expected
    assert payee_after - payee_before == expected
    # The same payload cannot be settled twice.
    again = fac.settle(payload, req)
    assert again["success"] is False
    assert balances(fac, network, w) == (payer_after, payee_after)


def test_megaeth_consecutive_permits_track_the_onchain_nonce(fac, rpc):
    settings, _ = wallet_settings(fac, 1)
    for _ in range(2):
        req = fac.requirement("megaeth", amount_usd_micros=10_000, resource=RESOURCE, description="t", version=1)
        offer = to_offer(req, 1)
        assert fac.settle(wrap(offer, sign_offer(offer, settings, rpc=rpc)), req)["success"] is True


# ---- tampering is refused, nothing moves --------------------------------------------------------

def assert_refused(fac, network, w, payload, req, reason_part):
    before = balances(fac, network, w)
    res = fac.settle(payload, req)
    assert res["success"] is False and reason_part in res["errorReason"], res
    assert balances(fac, network, w) == before


@pytest.mark.parametrize("network", ["base", "robinhood", "megaeth"])
def test_evm_tampering_is_refused(fac, rpc, network):
    settings, w = wallet_settings(fac, 2)
    req = fac.requirement(network, amount_usd_micros=200_000, resource=RESOURCE, description="t", version=1)
    cheaper = fac.requirement(network, amount_usd_micros=100_000, resource=RESOURCE, description="t", version=1)
    offer = to_offer(req, 1)
    good = wrap(offer, sign_offer(offer, settings, rpc=rpc))

    # value: the payload claims the cheaper price, matching a cheaper requirement; the signature says otherwise
    bad = copy.deepcopy(good)
    bad["payload"]["authorization"]["value"] = cheaper["maxAmountRequired"]
    assert_refused(fac, network, w, bad, cheaper, "signature")

    # recipient
    bad = copy.deepcopy(good)
    field = "spender" if network == "megaeth" else "to"
    bad["payload"]["authorization"][field] = w["evm_address"]
    assert_refused(fac, network, w, bad, req, "recipient_mismatch")

    # one signature byte
    bad = copy.deepcopy(good)
    sig = bytearray(bytes.fromhex(bad["payload"]["signature"][2:]))
    sig[10] ^= 0x01
    bad["payload"]["signature"] = "0x" + sig.hex()
    assert_refused(fac, network, w, bad, req, "signature")

    # and the untouched payload still settles: the refusals consumed nothing
    assert fac.settle(good, req)["success"] is True


def test_solana_tampering_is_refused(fac, rpc):
    settings, w = wallet_settings(fac, 2)
    req = fac.requirement("solana", amount_usd_micros=200_000, resource=RESOURCE, description="t", version=2)
    cheaper = fac.requirement("solana", amount_usd_micros=100_000, resource=RESOURCE, description="t", version=2)
    offer = to_offer(req, 2)
    good = wrap(offer, sign_offer(offer, settings, rpc=rpc))
    raw = base64.b64decode(good["payload"]["transaction"])

    def with_raw(b: bytes, r: dict) -> dict:
        doc = copy.deepcopy(good)
        doc["accepted"] = r
        doc["payload"]["transaction"] = base64.b64encode(b).decode()
        return doc

    # value: rewrite the TransferChecked amount to the cheaper price
    amount_le = (200_000).to_bytes(8, "little")
    assert raw.count(amount_le) == 1
    assert_refused(fac, "solana", w, with_raw(raw.replace(amount_le, (100_000).to_bytes(8, "little")), cheaper),
                   cheaper, "signature")
    # one byte of the payer's signature (slot 1; slot 0 is the fee payer's, still empty)
    sig_at = 1 + 64 + 5
    flipped = raw[:sig_at] + bytes([raw[sig_at] ^ 1]) + raw[sig_at + 1:]
    assert_refused(fac, "solana", w, with_raw(flipped, req), req, "signature")
    assert fac.settle(good, req)["success"] is True


def test_solana_missing_recipient_account_is_refused_before_signing():
    fac = Facilitator(seed=43, recipient_atas=False)
    settings, _ = wallet_settings(fac)
    req = fac.requirement("solana", amount_usd_micros=10_000, resource=RESOURCE, description="t", version=2)
    with pytest.raises(PolicyError) as e:
        sign_offer(to_offer(req, 2), settings, rpc=ChainRpc(fac))
    assert e.value.code == "recipient_token_account_missing"
    assert e.value.details["create_cost_lamports"] == fac.chain("solana").svm.minimum_balance_for_rent_exemption(165)


# ---- Permit2 (verification only: no Permit2/proxy bytecode offline) -------------------------------

SERVER_EXT = {"eip2612GasSponsoring": {"info": {"description": "gasless Permit2 approval", "version": "1"},
                                       "schema": {"type": "object"}}}


def test_permit2_with_gas_sponsoring_verifies_on_the_sandbox():
    fac = Facilitator(seed=44, permit2=True)
    settings, w = wallet_settings(fac)
    req = fac.requirement("megaeth", amount_usd_micros=USD, resource=RESOURCE, description="t", version=2)
    assert req["extra"]["assetTransferMethod"] == "permit2"
    offer = to_offer(req, 2, extensions=SERVER_EXT)
    signed = sign_offer(offer, settings, rpc=ChainRpc(fac))
    ext = signed.extensions["eip2612GasSponsoring"]
    assert ext["schema"] == {"type": "object"} and ext["info"]["amount"] == str(USD * 10**12)
    payload = wrap(offer, signed)
    res = fac.verify(payload, req)
    assert res["isValid"] is True, res        # includes an on-chain eth_call of the extension's permit
    # A flipped byte in the extension's permit signature is caught by that permit simulation.
    bad = copy.deepcopy(payload)
    s = bytearray(bytes.fromhex(bad["extensions"]["eip2612GasSponsoring"]["info"]["signature"][2:]))
    s[3] ^= 1
    bad["extensions"]["eip2612GasSponsoring"]["info"]["signature"] = "0x" + s.hex()
    assert fac.verify(bad, req)["isValid"] is False
    # Tampered Permit2 amount: the Permit2 signature no longer recovers to the payer.
    bad = copy.deepcopy(payload)
    bad["payload"]["permit2Authorization"]["witness"]["to"] = w["evm_address"]
    assert fac.verify(bad, req)["isValid"] is False


# ---- the official x402 SDK facilitator ------------------------------------------------------------

x402 = pytest.importorskip("x402")

SOLANA = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"


def sdk_evm_facilitator(fac, network, caip2):
    from eth_account import Account
    from x402 import x402FacilitatorSync
    from x402.mechanisms.evm.exact import register_exact_evm_facilitator

    from tests.oracle import bridges

    key = Account.create().key.hex()
    signer = bridges.evm_facilitator_signer(key, fac.chain(network))
    fac.native_fund(network, signer.address, 10**20)   # the SDK's facilitator pays its own gas
    return register_exact_evm_facilitator(x402FacilitatorSync(), signer, networks=caip2)


def sdk_svm_facilitator(fac):
    from x402 import x402FacilitatorSync
    from x402.mechanisms.svm.exact import register_exact_svm_facilitator

    from tests.oracle import bridges

    signer = bridges.LiteSvmFacilitatorSigner(fac._fee_payer, fac.chain("solana"))
    return register_exact_svm_facilitator(x402FacilitatorSync(), signer, networks=SOLANA)


def sdk(method, facilitator, payload, req):
    from x402.schemas import parse_payment_payload, parse_payment_requirements

    return getattr(facilitator, method)(parse_payment_payload(payload),
                                        parse_payment_requirements(payload["x402Version"], req))


@pytest.fixture(scope="module")
def sdk_facilitators(fac):
    return {
        "base": sdk_evm_facilitator(fac, "base", "eip155:8453"),
        "robinhood": sdk_evm_facilitator(fac, "robinhood", "eip155:4663"),
        "solana": sdk_svm_facilitator(fac),
    }


# robinhood is not an x402 SDK v1 network name, so it is checked under its CAIP-2 id only.
@pytest.mark.parametrize("network,version", [("base", 1), ("base", 2), ("robinhood", 2), ("solana", 1), ("solana", 2)])
def test_official_sdk_facilitator_accepts_and_settles_our_payload(fac, rpc, sdk_facilitators, network, version):
    settings, w = wallet_settings(fac, 1)
    req = fac.requirement(network, amount_usd_micros=USD, resource=RESOURCE, description="t", version=version)
    offer = to_offer(req, version)
    payload = wrap(offer, sign_offer(offer, settings, rpc=rpc))
    facilitator = sdk_facilitators[network]
    if network != "solana":
        fac.chain(network).refresh_time()
    res = sdk("verify", facilitator, payload, req)
    assert res.is_valid is True, res
    assert res.payer == owner(w, network)
    before = balances(fac, network, w)
    st = sdk("settle", facilitator, payload, req)
    assert st.success is True, st
    after = balances(fac, network, w)
    assert (before[0] - after[0], after[1] - before[1]) == (USD, USD)
    # Our facilitator agrees the payment is spent.
    assert fac.verify(payload, req)["isValid"] is False


def test_official_sdk_facilitator_refuses_tampered_payloads(fac, rpc, sdk_facilitators):
    settings, _ = wallet_settings(fac, 1)
    req = fac.requirement("base", amount_usd_micros=300_000, resource=RESOURCE, description="t", version=2)
    offer = to_offer(req, 2)
    good = wrap(offer, sign_offer(offer, settings, rpc=rpc))
    fac.chain("base").refresh_time()
    bad = copy.deepcopy(good)
    sig = bytearray(bytes.fromhex(bad["payload"]["signature"][2:]))
    sig[7] ^= 0xFF
    bad["payload"]["signature"] = "0x" + sig.hex()
    assert sdk("verify", sdk_facilitators["base"], bad, req).is_valid is False
    bad = copy.deepcopy(good)
    bad["payload"]["authorization"]["validBefore"] = str(int(bad["payload"]["authorization"]["validBefore"]) + 1)
    assert sdk("verify", sdk_facilitators["base"], bad, req).is_valid is False
    assert sdk("verify", sdk_facilitators["base"], good, req).is_valid is True


# ---- the real JSON-RPC client, over loopback HTTP to the sandbox's POST /rpc/<network> ----------------

@pytest.mark.parametrize("network,version", [("megaeth", 1), ("solana", 2), ("solana", 1)])
def test_jsonrpc_reads_over_http_then_settles(sandbox, network, version):
    """No injected Rpc: sign_offer builds payments.rpc.JsonRpc from the *_RPC_URL settings."""
    from x402_compute.config import load_settings

    fac = sandbox.facilitator
    w = sandbox.wallets[2]
    # Only the RPC URLs come from the sandbox's env; the wallet is a funded test wallet of our choosing.
    env = {k: v for k, v in sandbox.env.items() if k.endswith("_RPC_URL")}
    env.update(PRIVATE_KEY=w["evm_private_key"], SOLANA_SECRET_KEY=w["solana_secret_key"])
    settings = load_settings(environ=env)
    assert settings.rpc_url(network).startswith(sandbox.base_url)
    req = fac.requirement(network, amount_usd_micros=50_000, resource=RESOURCE, description="t", version=version)
    if network == "solana":
        req["extra"].pop("recentBlockhash")     # make the signer ask getLatestBlockhash over HTTP too
    offer = to_offer(req, version)
    signed = sign_offer(offer, settings)
    before = balances(fac, network, w)
    res = fac.settle(wrap(offer, signed), req)
    assert res["success"] is True, res
    after = balances(fac, network, w)
    assert before[0] - after[0] == offer.amount and after[1] - before[1] == offer.amount
