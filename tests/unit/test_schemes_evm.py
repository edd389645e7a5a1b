"""EVM scheme builders: the x402.md §14 vectors, recovery to the payer, the domain-name pitfall, and the
dispatcher's choices and errors. Offline: a stub Rpc answers the few chain reads."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from x402_compute.config import Settings
from x402_compute.errors import ComputeError, ConfigError, PaymentRequired
from x402_compute.networks import NETWORKS
from x402_compute.payments.model import Offer
from x402_compute.payments.rpc import SEL_ALLOWANCE, SEL_NONCES
from x402_compute.payments.schemes import (
    evm_eip3009,
    evm_permit,
    evm_permit2,
    scheme_for,
    sign_offer,
)
from x402_compute.wallets.evm import EvmSigner

ANVIL0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
SEPOLIA_USDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
V_NONCE = "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"
V1_SIG = ("0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9b"
          "d15092f9ecab05ded3d6293af148b571c")
V2_SIG = ("0xdc53a4a579de989368a0fae2ef2172ff2f474b4297013f865d171239f17ef4c3157b4b4030f1bebc53d55ace15c2377dff"
          "501a60e1e56c291f1000d6e78f082f1b")
NOW = 1_750_000_000


def recover(typed: dict, signature: str) -> str:
    return Account.recover_message(encode_typed_data(full_message=typed), signature=signature)


def vector_typed(payer: str, *, name="USDC", chain_id=84532) -> dict:
    domain = {"name": name, "version": "2", "chainId": chain_id, "verifyingContract": SEPOLIA_USDC}
    return evm_eip3009.typed_data(domain, payer=payer, pay_to=PAY_TO, value=10000, valid_after=1740672089,
                                  valid_before=1740672154, nonce=V_NONCE)


def settings(**kw) -> Settings:
    return Settings(private_key=ANVIL0_KEY, **kw)


def offer(key: str, *, version=1, amount=1_500_000, extra=None, timeout=300, asset=None, extensions=None) -> Offer:
    net = NETWORKS[key]
    if extra is None:
        extra = {"name": net.eip712_name, "version": net.eip712_version}
    raw = {"scheme": "exact", "network": net.key if version == 1 else net.caip2, "asset": asset or net.asset,
           "payTo": PAY_TO, "maxTimeoutSeconds": timeout, "extra": extra}
    return Offer(version=version, scheme="exact", network=raw["network"], key=key, amount=amount,
                 asset=raw["asset"], pay_to=PAY_TO, max_timeout_seconds=timeout, extra=extra, raw=raw,
                 extensions=extensions)


class StubRpc:
    """Answers eth_chainId and the two eth_calls; records what was asked."""

    def __init__(self, chain_id=4326, nonce=0, allowance=0):
        self.chain_id, self.nonce, self.allowance = chain_id, nonce, allowance
        self.calls: list = []

    def eth_chain_id(self, network):
        self.calls.append(("chainId", network))
        return self.chain_id

    def eth_call(self, network, to, data):
        self.calls.append(("call", network, to, data[:4]))
        if data[:4] == SEL_NONCES:
            return self.nonce.to_bytes(32, "big")
        if data[:4] == SEL_ALLOWANCE:
            return self.allowance.to_bytes(32, "big")
        raise AssertionError(data.hex())


class NoRpc:
    def __getattr__(self, name):
        raise AssertionError(f"RPC {name} must not be used here")


# ---- x402.md §14 vectors -------------------------------------------------------------------------

def test_vector1_spec_signature_recovers_through_our_typed_data():
    assert recover(vector_typed("0x857b06519E91e3A54538791bDbb0E22373e36b66"), V1_SIG) == \
        "0x857b06519E91e3A54538791bDbb0E22373e36b66"


@pytest.mark.parametrize("name,chain_id,expected", [
    ("USD Coin", 84532, "0xED07B31Fa76779c7A25BA712fB1bFBECefa2ad7e"),
    ("USDC", 8453, "0x46e5af7a18131F1BC0947Cf44151ee84B58C92A9"),
    ("USD Coin", 8453, "0x72229B11Ffb6bAf986087378e39d65E6df456Ab4"),
])
def test_vector1_wrong_domain_recovers_elsewhere(name, chain_id, expected):
    typed = vector_typed("0x857b06519E91e3A54538791bDbb0E22373e36b66", name=name, chain_id=chain_id)
    assert recover(typed, V1_SIG) == expected


def test_vector2_known_key_gives_exactly_the_vector_signature():
    sig = EvmSigner(ANVIL0_KEY).sign_typed_data(vector_typed(ANVIL0))
    assert "0x" + sig.hex() == V2_SIG
    assert sig[64] == 27


def test_typed_data_is_json_that_ows_accepts():
    td = evm_eip3009.typed_data({"name": "x", "version": "1", "chainId": 1, "verifyingContract": SEPOLIA_USDC},
                                payer=ANVIL0, pay_to=PAY_TO, value=2**130, valid_after=0, valid_before=5, nonce=V_NONCE)
    json.dumps(td)
    assert "EIP712Domain" in td["types"]
    assert td["message"]["value"] == "0x%064x" % 2**130   # above u128: even-length hex
    assert td["message"]["validBefore"] == "5"


# ---- EIP-3009 through the dispatcher -------------------------------------------------------------

@pytest.mark.parametrize("key,chain_id", [("base", 8453), ("robinhood", 4663)])
def test_eip3009_payload_fields_and_recovery(key, chain_id):
    o = offer(key, timeout=300)
    s = sign_offer(o, settings(), now=NOW, rpc=NoRpc())
    a = s.payload["authorization"]
    assert set(s.payload) == {"signature", "authorization"}
    assert a == {"from": ANVIL0, "to": PAY_TO, "value": "1500000", "validAfter": "0",
                 "validBefore": str(NOW + 300), "nonce": a["nonce"]}
    assert all(isinstance(v, str) for v in a.values())
    assert len(a["nonce"]) == 66 and int(a["nonce"], 16) >= 0
    assert s.nonce == a["nonce"] and s.payer == ANVIL0 and s.valid_before == NOW + 300
    net = NETWORKS[key]
    domain = {"name": net.eip712_name, "version": net.eip712_version, "chainId": chain_id,
              "verifyingContract": net.asset}
    typed = evm_eip3009.typed_data(domain, payer=ANVIL0, pay_to=PAY_TO, value=1_500_000, valid_after=0,
                                   valid_before=NOW + 300, nonce=a["nonce"])
    assert recover(typed, s.payload["signature"]) == ANVIL0


def test_eip3009_fresh_nonce_each_time_and_default_validity():
    o = offer("base", timeout=None)
    a, b = (sign_offer(o, settings(), now=NOW) for _ in range(2))
    assert a.nonce != b.nonce
    assert a.payload["authorization"]["validBefore"] == str(NOW + 3600)


def test_eip3009_domain_name_comes_from_extra():
    # A challenge whose token uses another EIP-712 name: the signature must be made for *that* name.
    o = offer("base", extra={"name": "USDC", "version": "2"})
    s = sign_offer(o, settings(), now=NOW)
    a = s.payload["authorization"]
    base = NETWORKS["base"]

    def rec(name):
        domain = {"name": name, "version": "2", "chainId": 8453, "verifyingContract": base.asset}
        return recover(evm_eip3009.typed_data(domain, payer=ANVIL0, pay_to=PAY_TO, value=1_500_000, valid_after=0,
                                              valid_before=int(a["validBefore"]), nonce=a["nonce"]),
                       s.payload["signature"])
    assert rec("USDC") == ANVIL0
    assert rec("USD Coin") != ANVIL0      # the table's name would have made a signature for someone else


def test_eip3009_falls_back_to_table_domain_when_extra_lacks_it():
    s = sign_offer(offer("robinhood", extra={}), settings(), now=NOW)
    a = s.payload["authorization"]
    net = NETWORKS["robinhood"]
    domain = {"name": "Global Dollar", "version": "1", "chainId": 4663, "verifyingContract": net.asset}
    typed = evm_eip3009.typed_data(domain, payer=ANVIL0, pay_to=PAY_TO, value=1_500_000, valid_after=0,
                                   valid_before=int(a["validBefore"]), nonce=a["nonce"])
    assert recover(typed, s.payload["signature"]) == ANVIL0


# ---- MegaETH direct permit ---------------------------------------------------------------------

MEGA_AMOUNT = 1_500_000 * 10**12   # 1.5 USDm in 18 decimals


def permit_typed(s, *, spender, nonce):
    net = NETWORKS["megaeth"]
    a = s.payload["authorization"]
    domain = {"name": "MegaUSD", "version": "1", "chainId": 4326, "verifyingContract": net.asset}
    return evm_permit.typed_data(domain, owner=ANVIL0, spender=spender, value=MEGA_AMOUNT, nonce=nonce,
                                 deadline=int(a["deadline"]))


def test_permit_reads_nonce_from_chain_and_signs_for_payto():
    rpc = StubRpc(chain_id=4326, nonce=7)
    s = sign_offer(offer("megaeth", amount=MEGA_AMOUNT, timeout=None), settings(), now=NOW, rpc=rpc)
    assert scheme_for(offer("megaeth")) == "evm_permit"
    a = s.payload["authorization"]
    assert a == {"owner": ANVIL0, "spender": PAY_TO, "value": "1500000000000000000", "nonce": "7",
                 "deadline": str(NOW + 3600)}
    assert ("chainId", "megaeth") in rpc.calls and any(c[0] == "call" and c[3] == SEL_NONCES for c in rpc.calls)
    assert recover(permit_typed(s, spender=PAY_TO, nonce=7), s.payload["signature"]) == ANVIL0
    assert s.nonce == f"7:{NOW + 3600}" and s.valid_before == NOW + 3600


class DownRpc:
    """An RPC endpoint that cannot be reached."""

    def __getattr__(self, name):
        def fail(*a, **k):
            from x402_compute.errors import NetworkError

            raise NetworkError("POST /rpc failed: connection refused", details={"sent": False})

        return fail


def test_permit_uses_challenge_nonce_only_when_no_rpc_answers():
    o = offer("megaeth", amount=MEGA_AMOUNT, extra={"name": "MegaUSD", "version": "1", "spender": PAY_TO.lower(),
                                                    "permitNonce": "3"})
    s = sign_offer(o, settings(), now=NOW, rpc=DownRpc())
    assert s.payload["authorization"]["nonce"] == "3"
    spender = s.payload["authorization"]["spender"]
    assert spender.lower() == PAY_TO.lower()
    assert recover(permit_typed(s, spender=spender, nonce=3), s.payload["signature"]) == ANVIL0


def test_permit_nonce_suggested_by_the_402_must_match_the_chain():
    # A server-chosen future nonce would let a "rejected" permit be spent after the user's next one.
    extra = {"name": "MegaUSD", "version": "1", "permitNonce": "9"}
    with pytest.raises(PaymentRequired) as e:
        sign_offer(offer("megaeth", amount=MEGA_AMOUNT, extra=extra), settings(), now=NOW, rpc=StubRpc(nonce=2))
    assert e.value.code == "permit_nonce_mismatch"
    s = sign_offer(offer("megaeth", amount=MEGA_AMOUNT, extra={**extra, "permitNonce": "2"}), settings(), now=NOW, rpc=StubRpc(nonce=2))
    assert s.payload["authorization"]["nonce"] == "2"


def test_permit_to_a_spender_other_than_the_payee_is_refused():
    # A permit lets its spender pull the value anywhere; the payee pin covers payTo only.
    spender = "0x1111111111111111111111111111111111111111"
    o = offer("megaeth", amount=MEGA_AMOUNT, extra={"name": "MegaUSD", "version": "1", "spender": spender,
                                                    "permitNonce": "3"})
    with pytest.raises(PaymentRequired) as e:
        sign_offer(o, settings(), now=NOW, rpc=NoRpc())
    assert e.value.code == "spender_not_payee"


@pytest.mark.parametrize("key,amount", [("base", 1_500_000), ("megaeth", MEGA_AMOUNT)])
def test_validity_never_signed_further_than_an_hour_ahead(key, amount):
    # maxTimeoutSeconds = 10^9 would make a decades-long bearer authorization.
    o = offer(key, amount=amount, timeout=10**9,
              extra={"name": NETWORKS[key].eip712_name, "version": NETWORKS[key].eip712_version, "permitNonce": "0"})
    rpc = StubRpc(nonce=0) if key == "megaeth" else NoRpc()
    s = sign_offer(o, settings(), now=NOW, rpc=rpc)
    assert s.valid_before == NOW + 3600
    o = offer(key, amount=amount, timeout=10**80, extra=o.extra)   # above uint256: still an hour
    assert sign_offer(o, settings(), now=NOW, rpc=rpc).valid_before == NOW + 3600


def test_permit_refuses_an_rpc_for_another_chain():
    with pytest.raises(ComputeError) as e:
        sign_offer(offer("megaeth", amount=MEGA_AMOUNT), settings(), now=NOW, rpc=StubRpc(chain_id=8453))
    assert e.value.code == "rpc_wrong_chain"


def test_permit_without_rpc_url_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        sign_offer(offer("megaeth", amount=MEGA_AMOUNT), settings(rpc_urls={}), now=NOW)
    assert "MEGAETH_RPC_URL" in (e.value.hint or "")


# ---- Permit2 -------------------------------------------------------------------------------------

def permit2_offer(version=2, extensions=None):
    return offer("megaeth", version=version, amount=MEGA_AMOUNT,
                 extra={"name": "MegaUSD", "version": "1", "assetTransferMethod": "permit2"}, extensions=extensions)


def test_permit2_payload_is_offline_and_recovers():
    s = sign_offer(permit2_offer(), settings(), now=NOW, rpc=NoRpc())
    p = s.payload["permit2Authorization"]
    net = NETWORKS["megaeth"]
    assert p["spender"] == "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
    assert p["permitted"] == {"token": net.asset, "amount": "1500000000000000000"}
    assert p["witness"] == {"to": PAY_TO, "validAfter": "0"}
    assert p["from"] == ANVIL0 and p["deadline"] == str(NOW + 300)
    assert p["nonce"].isdigit() and s.nonce == p["nonce"] and s.extensions is None
    typed = evm_permit2.typed_data(chain_id=4326, token=net.asset, amount=MEGA_AMOUNT, spender=p["spender"],
                                   nonce=int(p["nonce"]), deadline=NOW + 300, to=PAY_TO, valid_after=0)
    assert "version" not in typed["domain"]
    assert recover(typed, s.payload["signature"]) == ANVIL0
    # The same signature on a domain *with* a version field would be someone else's.
    typed["types"] = dict(typed["types"], EIP712Domain=typed["types"]["EIP712Domain"][:1] + [
        {"name": "version", "type": "string"}] + typed["types"]["EIP712Domain"][1:])
    typed["domain"] = dict(typed["domain"], version="1")
    assert recover(typed, s.payload["signature"]) != ANVIL0


SERVER_EXT = {"eip2612GasSponsoring": {"info": {"description": "gasless", "version": "1"},
                                       "schema": {"type": "object", "properties": {}}}}


def test_permit2_gas_sponsoring_signs_permit_for_permit2_when_allowance_short():
    rpc = StubRpc(chain_id=4326, nonce=4, allowance=0)
    s = sign_offer(permit2_offer(extensions=SERVER_EXT), settings(), now=NOW, rpc=rpc)
    ext = s.extensions["eip2612GasSponsoring"]
    assert ext["schema"] == SERVER_EXT["eip2612GasSponsoring"]["schema"]
    info = ext["info"]
    assert info["description"] == "gasless" and info["version"] == "1"
    assert info["from"] == ANVIL0 and info["spender"] == evm_permit2.PERMIT2_ADDRESS
    assert info["amount"] == str(MEGA_AMOUNT) and info["nonce"] == "4" and info["deadline"] == str(NOW + 300)
    typed = evm_permit.typed_data({"name": "MegaUSD", "version": "1", "chainId": 4326,
                                   "verifyingContract": NETWORKS["megaeth"].asset},
                                  owner=ANVIL0, spender=evm_permit2.PERMIT2_ADDRESS, value=MEGA_AMOUNT, nonce=4,
                                  deadline=NOW + 300)
    assert recover(typed, info["signature"]) == ANVIL0
    assert SERVER_EXT["eip2612GasSponsoring"]["info"] == {"description": "gasless", "version": "1"}  # not mutated


def test_permit2_gas_sponsoring_skipped_when_allowance_suffices_or_v1():
    s = sign_offer(permit2_offer(extensions=SERVER_EXT), settings(), now=NOW,
                   rpc=StubRpc(allowance=MEGA_AMOUNT))
    assert s.extensions is None
    s = sign_offer(permit2_offer(version=1, extensions=SERVER_EXT), settings(), now=NOW, rpc=NoRpc())
    assert s.extensions is None


# ---- dispatcher errors ---------------------------------------------------------------------------

def test_dispatch_choices_and_refusals():
    assert scheme_for(offer("base")) == "evm_eip3009"
    assert scheme_for(permit2_offer()) == "evm_permit2"
    with pytest.raises(PaymentRequired) as e:
        scheme_for(offer("base", extra={"name": "USD Coin", "version": "2", "assetTransferMethod": "erc7710"}))
    assert e.value.code == "unsupported_transfer_method"
    o = offer("base")
    o.scheme = "upto"
    with pytest.raises(PaymentRequired) as e:
        sign_offer(o, settings(), now=NOW)
    assert e.value.code == "unsupported_scheme"
    o = offer("base")
    o.key = None
    with pytest.raises(PaymentRequired) as e:
        sign_offer(o, settings(), now=NOW)
    assert e.value.code == "unsupported_network"


def test_no_evm_wallet_is_a_config_error():
    with pytest.raises(ConfigError):
        sign_offer(offer("base"), Settings(), now=NOW)


def test_bad_offer_fields_are_refused_before_signing():
    o = offer("base")
    o.pay_to = "not-an-address"
    with pytest.raises(PaymentRequired) as e:
        sign_offer(o, settings(), now=NOW)
    assert e.value.code == "unusable_offer"
    o = offer("base", amount=0)
    with pytest.raises(PaymentRequired):
        sign_offer(o, settings(), now=NOW)
    # Domain strings a hostile 402 can write as valid JSON escapes: refused by name, nothing signed.
    for extra in ({"name": "USD\ud800Coin", "version": "2"}, {"name": "USD Coin", "version": "2\x1b[31m"}):
        with pytest.raises(PaymentRequired) as e:
            sign_offer(offer("base", extra=extra), settings(), now=NOW)
        assert e.value.code == "unusable_offer" and ("extra.name" in e.value.message or "extra.version" in e.value.message)
