"""ComputeClient against `responses` mocks: every endpoint's success path and the
error paths a real server can't easily be made to produce (typed errors with
code/status/details/retryable, which requests are retried, transport failures)."""

from __future__ import annotations

import pytest
import requests
import responses
from responses import matchers
from x402_compute import errors
from x402_compute.api.client import ComputeClient
from x402_compute.config import load_settings

BASE = "https://api.test"
IID = "3f1c2a9e-0000-4000-8000-000000000001"
KEY = "x402c_" + "a" * 28 + "wxyz"
EVM_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


def client(tmp_path, **env) -> ComputeClient:
    base = {"COMPUTE_BASE_URL": BASE, "X402_COMPUTE_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
    c = ComputeClient(load_settings(environ={**base, **env}))
    c.transport.backoff = 0  # retries without sleeping
    return c


@pytest.fixture
def api_client(tmp_path):
    return client(tmp_path, COMPUTE_API_KEY=KEY)


@pytest.fixture
def sig_client(tmp_path):
    return client(tmp_path, PRIVATE_KEY=EVM_KEY)


KEY_HEADER = matchers.header_matcher({"X-API-Key": KEY})


# -- catalog ---------------------------------------------------------------------------

@responses.activate
def test_plans_typed_and_all_plans_merges_every_type(api_client):
    for t, ids in {"vps": ["a", "b"], "vhp": ["c"], "vdc": ["d"], "vcg": ["e", "a"]}.items():
        responses.get(f"{BASE}/compute/plans", match=[matchers.query_param_matcher({"type": t})],
                      json={"plans": [{"id": i, "type": t} for i in ids]})
    assert [p["id"] for p in api_client.plans("vcg")] == ["e", "a"]
    merged = api_client.all_plans()
    assert sorted(p["id"] for p in merged) == ["a", "b", "c", "d", "e"]
    # Catalog calls are public: no credentials go out.
    assert all("X-API-Key" not in c.request.headers and "X-Auth-Signature" not in c.request.headers for c in responses.calls)


@responses.activate
def test_plan_prices_stay_exact_decimals(api_client):
    responses.get(f"{BASE}/compute/plans", json={"plans": [{"id": "p", "our_hourly": 0.0104}]})
    from decimal import Decimal

    assert api_client.plans()[0]["our_hourly"] == Decimal("0.0104")


@responses.activate
def test_regions_and_os(api_client):
    responses.get(f"{BASE}/compute/regions", json={"regions": [{"id": "lax"}]})
    responses.get(f"{BASE}/compute/os", json={"os_options": [{"id": 2284}]})
    assert api_client.regions() == [{"id": "lax"}]
    assert api_client.os_options() == [{"id": 2284}]


# -- instances -------------------------------------------------------------------------

@responses.activate
def test_list_instances_with_api_key_and_orders_fallback(api_client):
    responses.get(f"{BASE}/compute/instances", match=[KEY_HEADER], json={"instances": [{"id": IID}]})
    assert api_client.list_instances() == [{"id": IID}]
    responses.replace(responses.GET, f"{BASE}/compute/instances", json={"orders": [{"id": IID.upper()}]})
    assert api_client.list_instances() == [{"id": IID.upper()}]


@responses.activate
def test_get_instance_unwraps_order_and_signs_with_fresh_nonces(sig_client):
    responses.get(f"{BASE}/compute/instances/{IID}", json={"order": {"id": IID, "status": "active"}})
    assert sig_client.get_instance(IID) == {"id": IID, "status": "active"}
    assert sig_client.get_instance(IID)["id"] == IID
    h1, h2 = (c.request.headers for c in responses.calls)
    for h in (h1, h2):
        assert h["X-Auth-Chain"] == "base" and h["X-Auth-Sig-Encoding"] == "hex"
        assert h["X-Auth-Address"] == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        assert "X-API-Key" not in h
    assert h1["X-Auth-Nonce"] != h2["X-Auth-Nonce"]


@responses.activate
def test_destroy_password_resize(api_client):
    responses.delete(f"{BASE}/compute/instances/{IID}", match=[KEY_HEADER], json={"success": True})
    responses.post(f"{BASE}/compute/instances/{IID}/password", match=[KEY_HEADER],
                   json={"success": True, "access": {"username": "root", "ip_address": "1.2.3.4", "password": "pw"}})
    responses.post(f"{BASE}/compute/instances/{IID}/resize", match=[KEY_HEADER], json={"from_plan": "a", "to_plan": "b"})
    assert api_client.destroy_instance(IID) == {"success": True}
    assert api_client.reveal_password(IID)["access"]["password"] == "pw"
    assert api_client.resize(IID, "b") == {"from_plan": "a", "to_plan": "b"}
    assert api_client.resize(IID, "b", confirm_disk_resize=True)
    pw_req, r1, r2 = responses.calls[1].request, responses.calls[2].request, responses.calls[3].request
    assert not pw_req.body  # the password call has no body
    assert r1.body == b'{"plan":"b"}'  # confirm_disk_resize omitted when false
    assert r2.body == b'{"plan":"b","confirm_disk_resize":true}'


@responses.activate
def test_signed_body_hash_matches_sent_bytes(sig_client):
    import hashlib

    from eth_account import Account
    from eth_account.messages import encode_defunct
    from x402_compute.api.auth import auth_message

    responses.post(f"{BASE}/compute/instances/{IID}/resize", json={})
    sig_client.resize(IID, "vc2-2c-4gb")
    req = responses.calls[0].request
    h = req.headers
    msg = auth_message("base", h["X-Auth-Address"], "POST", f"/compute/instances/{IID}/resize", req.body, h["X-Auth-Timestamp"], h["X-Auth-Nonce"])
    assert msg.splitlines()[6] == hashlib.sha256(req.body).hexdigest()
    assert Account.recover_message(encode_defunct(text=msg), signature=h["X-Auth-Signature"]).lower() == h["X-Auth-Address"]


# -- API keys and credits ------------------------------------------------------------------

@responses.activate
def test_api_keys_create_list_revoke_use_signatures_where_required(tmp_path):
    # Both an API key and a wallet: create/revoke must still sign; list may use the key.
    c = client(tmp_path, COMPUTE_API_KEY=KEY, PRIVATE_KEY=EVM_KEY)
    responses.post(f"{BASE}/compute/api-keys", status=201, json={"api_key": KEY, "id": "k1", "label": "x"})
    responses.get(f"{BASE}/compute/api-keys", json={"api_keys": [{"id": "k1", "key_last4": "wxyz"}]})
    responses.delete(f"{BASE}/compute/api-keys/k1", json={"success": True})
    assert c.create_api_key("x")["id"] == "k1"
    assert c.create_api_key()["id"] == "k1"
    assert c.list_api_keys() == [{"id": "k1", "key_last4": "wxyz"}]
    assert c.revoke_api_key("k1") == {"success": True}
    create1, create2, lst, rev = (x.request for x in responses.calls)
    assert create1.body == b'{"label":"x"}' and not create2.body  # no label → empty body
    for r in (create1, create2, rev):
        assert "X-Auth-Signature" in r.headers and "X-API-Key" not in r.headers
    assert lst.headers["X-API-Key"] == KEY


def test_api_key_create_without_wallet_is_a_config_error(api_client):
    with pytest.raises(errors.ConfigError):
        api_client.create_api_key("x")


@responses.activate
def test_credits_balance(api_client):
    responses.get(f"{BASE}/compute/credits/balance", match=[KEY_HEADER], json={"wallet": "0x1", "balance": "150.00"})
    assert api_client.credits_balance()["balance"] == "150.00"


# -- error mapping ---------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", f"/compute/instances/{IID}", lambda c: c.get_instance(IID)),
    ("GET", "/compute/instances", lambda c: c.list_instances()),
    ("DELETE", f"/compute/instances/{IID}", lambda c: c.destroy_instance(IID)),
    ("POST", f"/compute/instances/{IID}/password", lambda c: c.reveal_password(IID)),
    ("POST", f"/compute/instances/{IID}/resize", lambda c: c.resize(IID, "vc2-2c-4gb")),
    ("GET", "/compute/api-keys", lambda c: c.list_api_keys()),
    ("GET", "/compute/credits/balance", lambda c: c.credits_balance()),
    ("GET", "/compute/plans", lambda c: c.plans()),
    ("GET", "/compute/regions", lambda c: c.regions()),
    ("GET", "/compute/os", lambda c: c.os_options()),
]
STATUSES = [
    (400, errors.ApiError, "api_error", False),
    (401, errors.AuthError, "unauthorized", False),
    (404, errors.NotFound, "not_found", False),
    (409, errors.Conflict, "conflict", False),
    (500, errors.ServerError, "server_error", False),
]


@pytest.mark.parametrize("method,path,call", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
@pytest.mark.parametrize("status,cls,code,retryable", STATUSES, ids=[str(s[0]) for s in STATUSES])
@responses.activate
def test_error_statuses_become_typed_errors(api_client, method, path, call, status, cls, code, retryable):
    body = {"error": f"boom {status}", "details": {"why": "because"}}
    responses.add(method, f"{BASE}{path}", status=status, json=body)
    with pytest.raises(cls) as ei:
        call(api_client)
    e = ei.value
    assert e.code == code and e.status == status and e.retryable is retryable
    assert e.details == body and f"boom {status}" in e.message
    assert e.exit_code == 1
    assert len(responses.calls) == 1  # a 4xx/500 is never retried


@responses.activate
def test_get_retried_on_503_then_succeeds(api_client):
    url = f"{BASE}/compute/instances/{IID}"
    responses.get(url, status=503, json={"error": "busy"})
    responses.get(url, json={"order": {"id": IID}})
    assert api_client.get_instance(IID) == {"id": IID}
    assert len(responses.calls) == 2


@responses.activate
def test_get_gives_up_after_retries_with_retryable_error(api_client):
    responses.get(f"{BASE}/compute/instances", status=503, json={"error": "busy"})
    with pytest.raises(errors.ServerError) as ei:
        api_client.list_instances()
    assert ei.value.retryable is True and ei.value.status == 503
    assert len(responses.calls) == 1 + api_client.transport.retries


@pytest.mark.parametrize("method,path,call", [e for e in ENDPOINTS if e[0] != "GET"], ids=lambda x: x if isinstance(x, str) else "")
@responses.activate
def test_writes_are_not_retried_on_503(api_client, method, path, call):
    responses.add(method, f"{BASE}{path}", status=503, json={"error": "busy"})
    with pytest.raises(errors.ServerError):
        call(api_client)
    assert len(responses.calls) == 1


@responses.activate
def test_write_not_retried_after_connection_dropped_mid_request(api_client):
    responses.delete(f"{BASE}/compute/instances/{IID}", body=requests.exceptions.ConnectionError("Connection aborted: RemoteDisconnected"))
    with pytest.raises(errors.NetworkError) as ei:
        api_client.destroy_instance(IID)
    assert ei.value.details["sent"] is True and ei.value.retryable is False
    assert len(responses.calls) == 1


def test_connection_refused_is_network_error(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port now
    c = client(tmp_path, COMPUTE_API_KEY=KEY, COMPUTE_BASE_URL=f"http://127.0.0.1:{port}")
    c.transport.backoff = 0
    with pytest.raises(errors.NetworkError) as ei:
        c.list_instances()
    e = ei.value
    assert e.code == "network_error" and e.details["sent"] is False and e.retryable is True
    assert "connection refused" in e.message
    with pytest.raises(errors.NetworkError) as ei:
        c.destroy_instance(IID)  # nothing left the machine, so even a write may say retryable
    assert ei.value.details["sent"] is False and ei.value.retryable is True


@responses.activate
def test_non_json_success_body_is_bad_response(api_client):
    responses.get(f"{BASE}/compute/instances", body="<html>gateway</html>", status=200, content_type="text/html")
    with pytest.raises(errors.ComputeError) as ei:
        api_client.list_instances()
    assert ei.value.code == "bad_response" and ei.value.status == 200 and "gateway" in ei.value.details


@responses.activate
def test_non_json_error_body_kept_as_text(api_client):
    responses.get(f"{BASE}/compute/instances", body="upstream exploded", status=502, content_type="text/plain")
    with pytest.raises(errors.ServerError) as ei:
        api_client.list_instances()
    assert ei.value.details == "upstream exploded" and "upstream exploded" in ei.value.message


@responses.activate
def test_empty_success_body_is_an_empty_dict(api_client):
    responses.delete(f"{BASE}/compute/instances/{IID}", body=b"", status=200)
    assert api_client.destroy_instance(IID) == {}


@responses.activate
def test_error_message_from_nested_error_object(api_client):
    responses.get(f"{BASE}/compute/instances", status=401, json={"error": {"code": "invalid_key", "message": "key revoked"}})
    with pytest.raises(errors.AuthError) as ei:
        api_client.list_instances()
    assert "key revoked" in ei.value.message


@responses.activate
def test_per_instance_key_used_when_no_account_credential(tmp_path):
    from x402_compute.state import State

    c = client(tmp_path)
    State(c.settings.state_dir).save_instance_key(IID, "x402c_instancekey1234")
    responses.get(f"{BASE}/compute/instances/{IID}", match=[matchers.header_matcher({"X-API-Key": "x402c_instancekey1234"})], json={"order": {"id": IID}})
    assert c.get_instance(IID) == {"id": IID}


def test_a_grid_provision_names_its_solana_wallet_on_the_unpaid_request_only(tmp_path):
    """--mode grid: the service tells whether the paying wallet has the SGL stake before the 402 only
    when the unpaid request names that wallet, so that probe is signed by the Solana wallet (the one
    grid mode pays with); the paid request stays unsigned, and no other provision's probe is signed."""
    from argparse import Namespace

    from x402_compute.api.auth import ApiKeyAuth, NoAuth, SignatureAuth
    from x402_compute.commands.paid import grid_payment

    sol = "2Ana1pUpv2ZbMVkwF5FXapYeBEjdxDatLn7nvJkhgTSdZd8hbDHTd21as7EAsg7ypityqfsw2pMQKJcVDVcAEsd"  # 9C6hybhQ...
    c = client(tmp_path, PRIVATE_KEY=EVM_KEY, SOLANA_SECRET_KEY=sol)
    args = Namespace(mode="grid", model_id="llama-3.2-3b", use_credits=False, pay="auto", network=None)
    auth = grid_payment(args, c.settings)
    assert isinstance(auth, SignatureAuth) and auth.chain == "solana" and auth.address == "9C6hybhQ6Aycep9jaUnP6uL9ZYvDjUp1aSkFWPUFJtpj"
    grid = c.auths.identified(auth)
    probe = grid.probe(None, required=False)
    assert probe is auth and isinstance(grid.paid(probe, needs_identity=False), NoAuth)
    assert isinstance(c.auths.probe(None, required=False), NoAuth)  # every other provision: unsigned, as before
    assert grid.probe(IID, required=False).chain == "base"  # a call on an instance keeps that instance's credential
    for other in (Namespace(**{**vars(args), "mode": "private"}), Namespace(**{**vars(args), "use_credits": True})):
        assert grid_payment(other, c.settings) is None
    keyed = client(tmp_path, PRIVATE_KEY=EVM_KEY, SOLANA_SECRET_KEY=sol, COMPUTE_API_KEY=KEY)
    assert grid_payment(args, keyed.settings) is None and isinstance(keyed.auths.probe(None, required=False), ApiKeyAuth)
