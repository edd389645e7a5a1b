"""MPP Tempo credentials signed through a signer (raw key or OWS vault) against pympp's own.

The reference is pympp's public client, ``charge(account=TempoAccount.from_key(key), …)``, which
signs with ``tx.sign(private_key)``. Ours builds the transaction in ``_SignerTempoMethod`` and signs
its hash with ``signer.sign_hash``. The RPC answers (chain id, gas price, gas estimate) and the
clock (``valid_before``) are pinned, so the same challenge must give the same bytes on every path.
Vaults live in tmp (``vault_path_opt``), never in ~/.ows.
"""

from __future__ import annotations

import asyncio
import base64
import json
import types
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from x402_compute.config import load_settings
from x402_compute.errors import PaymentRequired, PolicyError
from x402_compute.payments.challenge import ChallengeError
from x402_compute.api.http import Response
from x402_compute.payments import challenge as ch
from x402_compute.payments.flow import PaidCall
from x402_compute.payments.journal import new_id
from x402_compute.payments.policy import Limits
from x402_compute.payments.schemes.mpp_tempo import sign_mpp
from x402_compute.wallets import ows as ows_wallets

from tests.helpers import state_entries
from tests.unit.test_mpp_flow import FakeClient as FlowFakeClient
from tests.unit.test_mpp_flow import make_flow

pytest.importorskip("mpp.methods.tempo.client")
ows = pytest.importorskip("ows")

from mpp.methods.tempo import client as tc  # noqa: E402

EVM_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
EVM_ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
USDC_E = "0x20C000000000000000000000b9537d11c60E8b50"
PAYEE = "0x" + "5e" * 20
PASS = "correct horse"
RPC = "http://127.0.0.1:9/rpc/tempo"
NOW = 1_900_000_000  # the pinned clock: valid_before = NOW + 60
GAS_PRICE = 20_000_000_000
GAS_ESTIMATE = 1_234_567  # above pympp's 1,000,000 floor, so the estimate is really used
CAP = 25_000_000


def b64url(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def challenge_header(amount="249600", cid="cid-equal-bytes"):
    req = {"amount": amount, "currency": USDC_E, "recipient": PAYEE, "methodDetails": {"chainId": 4217}}
    exp = (datetime.fromtimestamp(NOW, timezone.utc) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return (f'Payment id="{cid}", realm="127.0.0.1:9", method="tempo", intent="charge", '
            f'request="{b64url(req)}", expires="{exp}"')


def offer_of(header):
    return ch.from_response(Response(402, {"WWW-Authenticate": header}, b"{}")).mpp[0]


@pytest.fixture
def pinned(monkeypatch):
    """Chain id, gas price, gas estimate and clock fixed for pympp's module and ours alike."""
    calls = []

    async def rpc_call(url, method, params):
        calls.append(method)
        return {"eth_chainId": hex(4217), "eth_gasPrice": hex(GAS_PRICE)}[method]

    async def estimate_gas(url, sender, to, data):
        return GAS_ESTIMATE

    monkeypatch.setattr(tc, "_rpc_call", rpc_call)
    monkeypatch.setattr(tc, "estimate_gas", estimate_gas)
    monkeypatch.setattr(tc, "time", types.SimpleNamespace(time=lambda: NOW + 0.25))
    return calls


@pytest.fixture
def vault(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("OWS_PASSPHRASE", "OWS_PASSPHRASE_FILE", "OWS_WALLET", "OWS_VAULT_PATH", "PRIVATE_KEY"):
        monkeypatch.delenv(var, raising=False)
    ows_wallets._PROMPTED.clear()
    v = str(tmp_path / "vault")
    ows.import_wallet_private_key("keyed", "", passphrase=PASS, vault_path_opt=v, secp256k1_key=EVM_KEY,
                                  ed25519_key=bytes(range(1, 33)).hex())
    return v


def ows_settings(tmp_path, vault, passphrase=PASS):
    return load_settings(environ={"COMPUTE_AUTH_MODE": "ows", "OWS_WALLET": "keyed", "OWS_VAULT_PATH": vault,
                                  "OWS_PASSPHRASE": passphrase, "TEMPO_RPC_URL": RPC,
                                  "X402_COMPUTE_STATE_DIR": str(tmp_path / "state"), "COMPUTE_BASE_URL": "http://127.0.0.1:9"})


def key_settings(tmp_path):
    return load_settings(environ={"PRIVATE_KEY": "0x" + EVM_KEY, "TEMPO_RPC_URL": RPC,
                                  "X402_COMPUTE_STATE_DIR": str(tmp_path / "state"), "COMPUTE_BASE_URL": "http://127.0.0.1:9"})


def pympp_reference(header):
    """What pympp alone makes from the raw key for this challenge."""
    from mpp import Challenge
    from mpp.methods.tempo import TempoAccount
    from mpp.runtime import PaymentRuntime

    method = tc.charge(account=TempoAccount.from_key("0x" + EVM_KEY), chain_id=4217, rpc_url=RPC, currency=USDC_E,
                       max_atomic_amount=CAP, expected_recipients=[PAYEE])
    runtime = PaymentRuntime([method])
    chosen, m = runtime.match_challenge([Challenge.from_www_authenticate(header)])
    cred = asyncio.run(runtime.create_credential(chosen, m))
    return cred.to_authorization(), m.transaction_hash(cred)


def decoded_tx(authorization):
    from mpp import Credential

    cred = Credential.from_authorization(authorization)
    return cred, bytes.fromhex(cred.payload["signature"].removeprefix("0x"))


def test_signer_credentials_are_byte_identical_to_pympps(tmp_path, vault, pinned):
    header = challenge_header()
    ref_auth, ref_hash = pympp_reference(header)

    raw = sign_mpp(offer_of(header), key_settings(tmp_path), max_atomic=CAP, recipient=PAYEE)
    vaulted = sign_mpp(offer_of(header), ows_settings(tmp_path, vault), max_atomic=CAP, recipient=PAYEE)

    assert raw.authorization == ref_auth and raw.tx_hash == ref_hash
    assert vaulted.authorization == ref_auth and vaulted.tx_hash == ref_hash
    assert raw.payer == vaulted.payer == EVM_ADDR
    # The pinned inputs really are in the signed bytes (not a trivially equal empty credential).
    cred, tx = decoded_tx(ref_auth)
    assert cred.source == f"did:pkh:eip155:4217:{EVM_ADDR}" and tx[:1] == b"\x76"
    import rlp
    fields = rlp.decode(tx[1:])
    assert int.from_bytes(fields[0], "big") == 4217
    assert int.from_bytes(fields[2], "big") == GAS_PRICE and int.from_bytes(fields[3], "big") == GAS_ESTIMATE + 5_000
    assert int.from_bytes(fields[8], "big") == NOW + 60 and len(fields[-1]) == 65 and fields[-1][64] in (27, 28)
    assert pinned.count("eth_gasPrice") == 3


def test_a_different_challenge_gives_different_bytes(tmp_path, vault, pinned):
    """The equality above is about the inputs, not a constant: another challenge id changes the memo."""
    a = sign_mpp(offer_of(challenge_header(cid="one")), ows_settings(tmp_path, vault), max_atomic=CAP, recipient=PAYEE)
    b = sign_mpp(offer_of(challenge_header(cid="two")), ows_settings(tmp_path, vault), max_atomic=CAP, recipient=PAYEE)
    assert a.authorization != b.authorization and a.tx_hash != b.tx_hash


def _token(vault, chains):
    pid = "only-" + "-".join(c.replace(":", "_") for c in chains)
    policy = {"id": pid, "name": pid, "version": 1, "created_at": "2026-01-01T00:00:00Z",
              "rules": [{"type": "allowed_chains", "chain_ids": chains}], "action": "deny"}
    ows.create_policy(json.dumps(policy), vault_path_opt=vault)
    wid = ows.get_wallet("keyed", vault_path_opt=vault)["id"]
    return ows.create_api_key(pid, [wid], [pid], PASS, vault_path_opt=vault)["token"]


class FakeClient(FlowFakeClient):
    """test_mpp_flow's scripted transport, around settings made here (an OWS vault, a token)."""

    def __init__(self, settings, answers):
        self.settings, self.answers, self.sent = settings, list(answers), []


def pay_through_flow(settings, header):
    receipt = b64url({"method": "tempo", "reference": "0xabc", "status": "success", "timestamp": "2026-01-01T00:00:00.000Z"})
    ok = Response(201, {"Payment-Receipt": receipt}, json.dumps({"order": {"id": "o1"}}).encode())
    client = FakeClient(settings, [Response(402, {"WWW-Authenticate": header}, b"{}"), ok])
    flow = make_flow(client, pay="mpp")  # the real signer: sign_mpp
    call = PaidCall(kind="provision", path="/compute/provision", body={"plan": "p", "label": "x"}, network="base",
                    limits=Limits(Decimal(25), "default", 249600), terms={}, journal_id=new_id())
    try:
        return client.drive(flow.steps(call)), client, None
    except Exception as e:  # noqa: BLE001
        return None, client, e


def test_tempo_only_token_pays_and_base_only_token_is_refused_before_sending(tmp_path, vault, pinned):
    header = challenge_header()
    ref_auth, _ = pympp_reference(header)

    tempo_token = _token(vault, ["eip155:4217"])
    res, client, err = pay_through_flow(ows_settings(tmp_path, vault, tempo_token), header)
    assert err is None, err
    assert res.method == "mpp" and res.payment()["payer"] == EVM_ADDR
    assert len(client.sent) == 2 and client.sent[1]["headers"]["Authorization"] == ref_auth

    base_token = _token(vault, ["eip155:8453"])
    res, client, err = pay_through_flow(ows_settings(tmp_path / "b", vault, base_token), header)
    assert isinstance(err, PolicyError) and err.code == "ows_policy_denied", err
    assert "eip155:4217" in err.message and "Nothing was sent" in err.message
    assert base_token not in json.dumps(err.to_dict())
    # Only the unpaid probe went out, and no journal entry (no credential) exists.
    assert len(client.sent) == 1 and "Authorization" not in client.sent[0]["headers"]
    assert state_entries(tmp_path / "b" / "state") == []


def test_auto_pays_mpp_from_an_ows_wallet_when_it_is_the_only_offer(tmp_path, vault, pinned):
    header = challenge_header()
    ref_auth, _ = pympp_reference(header)
    settings = load_settings(environ={"OWS_WALLET": "keyed", "OWS_VAULT_PATH": vault, "OWS_PASSPHRASE": PASS,
                                      "TEMPO_RPC_URL": RPC, "X402_COMPUTE_STATE_DIR": str(tmp_path / "state"),
                                      "COMPUTE_BASE_URL": "http://127.0.0.1:9"})  # auth mode auto, no PRIVATE_KEY
    only_mpp = Response(402, {"WWW-Authenticate": header}, b"{}")
    receipt = b64url({"method": "tempo", "reference": "0xabc", "status": "success", "timestamp": "2026-01-01T00:00:00.000Z"})
    client = FakeClient(settings, [only_mpp, only_mpp, Response(201, {"Payment-Receipt": receipt}, b'{"order":{"id":"o"}}')])
    flow = make_flow(client, pay="auto")
    call = PaidCall(kind="provision", path="/compute/provision", body={"plan": "p", "label": "x"}, network="base",
                    limits=Limits(Decimal(25), "default", 249600), terms={}, journal_id=new_id())
    res = client.drive(flow.steps(call))
    assert res.method == "mpp" and client.sent[-1]["headers"]["Authorization"] == ref_auth


def test_a_signature_from_another_key_is_refused(tmp_path, vault, pinned):
    """The recovery check: a wallet answering with a signature that is not its own sends nothing."""
    from x402_compute.errors import ComputeError
    from x402_compute.wallets.evm import EvmSigner

    other = EvmSigner("0x" + "11" * 32)

    class Liar:
        address = EVM_ADDR

        def sign_hash(self, digest, *, chain=None):
            return other.sign_hash(digest)

    with pytest.raises(ComputeError) as e:
        sign_mpp(offer_of(challenge_header()), key_settings(tmp_path), max_atomic=CAP, recipient=PAYEE, signer=Liar())
    assert e.value.code == "signer_error"


# -- the audit: pympp must sign the very charge our policy checked ------------------------------


def test_a_challenge_pympp_cannot_parse_is_a_policy_refusal_not_a_crash(tmp_path, pinned):
    # Duplicate `request` params: our parser refuses the header (RFC 9110 grammar, no duplicates), and
    # an offer that got past it anyway is refused by pympp's own ParseError (no ValueError): unusable_offer.
    cheap = challenge_header(amount="1")
    dup = cheap + ", request=" + '"' + b64url({"amount": "24000000", "currency": USDC_E, "recipient": PAYEE,
                                                "methodDetails": {"chainId": 4217}}) + '"'
    with pytest.raises(ChallengeError) as e:
        offer_of(dup)
    assert e.value.code == "unusable_offer" and "twice" in e.value.message
    m = offer_of(cheap)
    m.header = dup
    with pytest.raises(PaymentRequired) as e:
        sign_mpp(m, key_settings(tmp_path), max_atomic=CAP, recipient=PAYEE)
    assert e.value.code == "unusable_offer" and "Nothing was created, signed or sent" in e.value.message


def test_pympp_reading_another_request_than_the_policy_is_refused(tmp_path, pinned):
    # A parser differential: the policy saw a 1-unit charge, pympp would sign what the header says.
    m = offer_of(challenge_header(amount="249600"))
    m.params = dict(m.params, request=b64url({"amount": "1", "currency": USDC_E, "recipient": PAYEE,
                                              "methodDetails": {"chainId": 4217}}))
    with pytest.raises(PaymentRequired) as e:
        sign_mpp(m, key_settings(tmp_path), max_atomic=CAP, recipient=PAYEE)
    assert e.value.code == "unusable_offer" and "(request" in e.value.message
