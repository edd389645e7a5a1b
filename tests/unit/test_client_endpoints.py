"""ComputeClient against a programmable server on 127.0.0.1 (tests/hostile/stub.py, one per
module): every endpoint's success path and the error paths a real server can't easily be made
to produce (typed errors with code/status/details/retryable, which requests are retried,
transport failures). Real sockets, so nothing here depends on the HTTP library the client uses:
the answers are bytes on the wire, the assertions are on what the server received and on the
client's own errors."""

from __future__ import annotations

import re

import pytest
from x402_compute import USER_AGENT, errors
from x402_compute.api.client import ComputeClient
from x402_compute.config import load_settings

from tests.helpers import closed_port_url
from tests.hostile.stub import HostileAPI, Reply, json_reply

IID = "3f1c2a9e-0000-4000-8000-000000000001"
KEY = "x402c_" + "a" * 28 + "wxyz"
EVM_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


@pytest.fixture
def make_client(api, tmp_path):
    made: list[ComputeClient] = []

    def make(**env) -> ComputeClient:
        base = {"COMPUTE_BASE_URL": api.base_url, "X402_COMPUTE_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path)}
        c = ComputeClient(load_settings(environ={**base, **env}))
        c.transport.backoff = 0  # retries without sleeping
        made.append(c)
        return c

    yield make
    for c in made:
        c.transport.close()


@pytest.fixture
def api_client(make_client):
    return make_client(COMPUTE_API_KEY=KEY)


@pytest.fixture
def sig_client(make_client):
    return make_client(PRIVATE_KEY=EVM_KEY)


def serve(api: HostileAPI, method: str, path: str, reply, *, times: int | None = None) -> None:
    """Answer ``method path`` (exactly that path) with ``reply``; the latest one added wins."""
    api.override(method, re.escape(path), reply, times=times)


def seen(api: HostileAPI) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in api.received()]


# -- catalog ---------------------------------------------------------------------------

def test_plans_typed_and_all_plans_merges_every_type(api, api_client):
    by_type = {"vps": ["a", "b"], "vhp": ["c"], "vdc": ["d"], "vcg": ["e", "a"]}

    def plans(req, honest):
        t = (req.query.get("type") or [""])[0]
        if t not in by_type:
            return json_reply(400, {"error": f"unknown plan type {t!r}"})
        return json_reply(200, {"plans": [{"id": i, "type": t} for i in by_type[t]]})

    serve(api, "GET", "/compute/plans", plans)
    assert [p["id"] for p in api_client.plans("vcg")] == ["e", "a"]
    merged = api_client.all_plans()
    assert sorted(p["id"] for p in merged) == ["a", "b", "c", "d", "e"]
    reqs = api.received()
    assert [(r.method, r.path) for r in reqs] == [("GET", "/compute/plans")] * 5
    assert reqs[0].query == {"type": ["vcg"]}
    assert sorted(r.query["type"][0] for r in reqs[1:]) == sorted(by_type) and all(len(r.query) == 1 for r in reqs)
    # Catalog calls are public: no credentials go out.
    for r in reqs:
        assert "x-api-key" not in r.headers and "x-auth-signature" not in r.headers and not r.body
        assert r.headers["user-agent"] == USER_AGENT


def test_plan_prices_stay_exact_decimals(api, api_client):
    # The number as the server wrote it: a binary float would read back as 0.010399999...
    serve(api, "GET", "/compute/plans", Reply(200, b'{"plans": [{"id": "p", "our_hourly": 0.0104}]}', {"Content-Type": "application/json"}))
    from decimal import Decimal

    assert api_client.plans()[0]["our_hourly"] == Decimal("0.0104")
    (r,) = api.received()
    assert (r.method, r.path, r.query) == ("GET", "/compute/plans", {})  # no type: no query at all


def test_regions_and_os(api, api_client):
    serve(api, "GET", "/compute/regions", json_reply(200, {"regions": [{"id": "lax"}]}))
    serve(api, "GET", "/compute/os", json_reply(200, {"os_options": [{"id": 2284}]}))
    assert api_client.regions() == [{"id": "lax"}]
    assert api_client.os_options() == [{"id": 2284}]
    assert seen(api) == [("GET", "/compute/regions"), ("GET", "/compute/os")]


# -- instances -------------------------------------------------------------------------

def test_list_instances_with_api_key_and_orders_fallback(api, api_client):
    serve(api, "GET", "/compute/instances", json_reply(200, {"instances": [{"id": IID}]}))
    assert api_client.list_instances() == [{"id": IID}]
    serve(api, "GET", "/compute/instances", json_reply(200, {"orders": [{"id": IID.upper()}]}))
    assert api_client.list_instances() == [{"id": IID.upper()}]
    reqs = api.received()
    assert [(r.method, r.path, r.query) for r in reqs] == [("GET", "/compute/instances", {})] * 2
    assert all(r.headers["x-api-key"] == KEY and "x-auth-signature" not in r.headers for r in reqs)


def test_get_instance_unwraps_order_and_signs_with_fresh_nonces(api, sig_client):
    serve(api, "GET", f"/compute/instances/{IID}", json_reply(200, {"order": {"id": IID, "status": "active"}}))
    assert sig_client.get_instance(IID) == {"id": IID, "status": "active"}
    assert sig_client.get_instance(IID)["id"] == IID
    assert seen(api) == [("GET", f"/compute/instances/{IID}")] * 2
    h1, h2 = (r.headers for r in api.received())
    for h in (h1, h2):
        assert h["x-auth-chain"] == "base" and h["x-auth-sig-encoding"] == "hex"
        assert h["x-auth-address"] == "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
        assert h["x-auth-signature"] and h["x-auth-timestamp"]
        assert "x-api-key" not in h
    assert h1["x-auth-nonce"] != h2["x-auth-nonce"]


def test_destroy_password_resize(api, api_client):
    serve(api, "DELETE", f"/compute/instances/{IID}", json_reply(200, {"success": True}))
    serve(api, "POST", f"/compute/instances/{IID}/password",
          json_reply(200, {"success": True, "access": {"username": "root", "ip_address": "1.2.3.4", "password": "pw"}}))
    serve(api, "POST", f"/compute/instances/{IID}/resize", json_reply(200, {"from_plan": "a", "to_plan": "b"}))
    assert api_client.destroy_instance(IID) == {"success": True}
    assert api_client.reveal_password(IID)["access"]["password"] == "pw"
    assert api_client.resize(IID, "b") == {"from_plan": "a", "to_plan": "b"}
    assert api_client.resize(IID, "b", confirm_disk_resize=True)
    reqs = api.received()
    assert [(r.method, r.path) for r in reqs] == [
        ("DELETE", f"/compute/instances/{IID}"),
        ("POST", f"/compute/instances/{IID}/password"),
        ("POST", f"/compute/instances/{IID}/resize"),
        ("POST", f"/compute/instances/{IID}/resize"),
    ]
    assert all(r.headers["x-api-key"] == KEY for r in reqs)
    delete, pw_req, r1, r2 = reqs
    assert not delete.body and not pw_req.body  # neither call has a body
    assert r1.body == b'{"plan":"b"}'  # confirm_disk_resize omitted when false
    assert r2.body == b'{"plan":"b","confirm_disk_resize":true}'
    assert r1.headers["content-type"] == r2.headers["content-type"] == "application/json"


def test_signed_body_hash_matches_sent_bytes(api, sig_client):
    import hashlib

    from eth_account import Account
    from eth_account.messages import encode_defunct
    from x402_compute.api.auth import auth_message

    serve(api, "POST", f"/compute/instances/{IID}/resize", json_reply(200, {}))
    sig_client.resize(IID, "vc2-2c-4gb")
    (req,) = api.received()
    h = req.headers
    assert req.json() == {"plan": "vc2-2c-4gb"}
    # The message is rebuilt from what arrived on the wire: method, path and body as the server saw them.
    msg = auth_message("base", h["x-auth-address"], req.method, req.path, req.body, h["x-auth-timestamp"], h["x-auth-nonce"])
    assert msg.splitlines()[6] == hashlib.sha256(req.body).hexdigest()
    assert Account.recover_message(encode_defunct(text=msg), signature=h["x-auth-signature"]).lower() == h["x-auth-address"]


# -- API keys and credits ------------------------------------------------------------------

def test_api_keys_create_list_revoke_use_signatures_where_required(api, make_client):
    # Both an API key and a wallet: create/revoke must still sign; list may use the key.
    c = make_client(COMPUTE_API_KEY=KEY, PRIVATE_KEY=EVM_KEY)
    serve(api, "POST", "/compute/api-keys", json_reply(201, {"api_key": KEY, "id": "k1", "label": "x"}))
    serve(api, "GET", "/compute/api-keys", json_reply(200, {"api_keys": [{"id": "k1", "key_last4": "wxyz"}]}))
    serve(api, "DELETE", "/compute/api-keys/k1", json_reply(200, {"success": True}))
    assert c.create_api_key("x")["id"] == "k1"
    assert c.create_api_key()["id"] == "k1"
    assert c.list_api_keys() == [{"id": "k1", "key_last4": "wxyz"}]
    assert c.revoke_api_key("k1") == {"success": True}
    assert seen(api) == [("POST", "/compute/api-keys"), ("POST", "/compute/api-keys"), ("GET", "/compute/api-keys"),
                         ("DELETE", "/compute/api-keys/k1")]
    create1, create2, lst, rev = api.received()
    assert create1.body == b'{"label":"x"}' and not create2.body  # no label → empty body
    for r in (create1, create2, rev):
        assert "x-auth-signature" in r.headers and "x-api-key" not in r.headers
    assert lst.headers["x-api-key"] == KEY and "x-auth-signature" not in lst.headers


def test_api_key_create_without_wallet_is_a_config_error(api, api_client):
    with pytest.raises(errors.ConfigError):
        api_client.create_api_key("x")
    assert api.received() == []  # refused before anything was sent


def test_credits_balance(api, api_client):
    serve(api, "GET", "/compute/credits/balance", json_reply(200, {"wallet": "0x1", "balance": "150.00"}))
    assert api_client.credits_balance()["balance"] == "150.00"
    (r,) = api.received()
    assert (r.method, r.path) == ("GET", "/compute/credits/balance") and r.headers["x-api-key"] == KEY


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
def test_error_statuses_become_typed_errors(api, api_client, method, path, call, status, cls, code, retryable):
    body = {"error": f"boom {status}", "details": {"why": "because"}}
    serve(api, method, path, json_reply(status, body))
    with pytest.raises(cls) as ei:
        call(api_client)
    e = ei.value
    assert e.code == code and e.status == status and e.retryable is retryable
    assert e.details == body and f"boom {status}" in e.message
    assert e.exit_code == 1
    assert seen(api) == [(method, path)]  # a 4xx/500 is never retried


def test_get_retried_on_503_then_succeeds(api, api_client):
    path = f"/compute/instances/{IID}"
    serve(api, "GET", path, json_reply(200, {"order": {"id": IID}}))
    serve(api, "GET", path, json_reply(503, {"error": "busy"}), times=1)  # the first request only
    assert api_client.get_instance(IID) == {"id": IID}
    assert seen(api) == [("GET", path)] * 2


def test_get_gives_up_after_retries_with_retryable_error(api, api_client):
    serve(api, "GET", "/compute/instances", json_reply(503, {"error": "busy"}))
    with pytest.raises(errors.ServerError) as ei:
        api_client.list_instances()
    assert ei.value.retryable is True and ei.value.status == 503
    assert seen(api) == [("GET", "/compute/instances")] * (1 + api_client.transport.retries)


@pytest.mark.parametrize("method,path,call", [e for e in ENDPOINTS if e[0] != "GET"], ids=lambda x: x if isinstance(x, str) else "")
def test_writes_are_not_retried_on_503(api, api_client, method, path, call):
    serve(api, method, path, json_reply(503, {"error": "busy"}))
    with pytest.raises(errors.ServerError):
        call(api_client)
    assert seen(api) == [(method, path)]


# reset: the server reads the whole request, then closes the socket with a RST and no answer;
# closed: the same with an orderly close (FIN), the way a crashed upstream behind a proxy looks.
DROPS = {"reset": Reply(reset=True), "closed": Reply(raw=b"")}


@pytest.mark.parametrize("drop", sorted(DROPS))
def test_write_not_retried_after_connection_dropped_mid_request(api, api_client, drop):
    serve(api, "DELETE", f"/compute/instances/{IID}", DROPS[drop])
    with pytest.raises(errors.NetworkError) as ei:
        api_client.destroy_instance(IID)
    e = ei.value
    assert e.code == "network_error" and e.details["sent"] is True and e.retryable is False
    assert seen(api) == [("DELETE", f"/compute/instances/{IID}")]  # it arrived once and was never resent


@pytest.mark.parametrize("drop", sorted(DROPS))
def test_read_dropped_mid_request_is_retried(api, api_client, drop):
    serve(api, "GET", "/compute/instances", json_reply(200, {"instances": [{"id": IID}]}))
    serve(api, "GET", "/compute/instances", DROPS[drop], times=1)
    assert api_client.list_instances() == [{"id": IID}]
    assert seen(api) == [("GET", "/compute/instances")] * 2


def test_connection_refused_is_network_error(make_client):
    c = make_client(COMPUTE_API_KEY=KEY, COMPUTE_BASE_URL=closed_port_url())  # nothing listens there
    with pytest.raises(errors.NetworkError) as ei:
        c.list_instances()
    e = ei.value
    assert e.code == "network_error" and e.details["sent"] is False and e.retryable is True
    assert "connection refused" in e.message
    with pytest.raises(errors.NetworkError) as ei:
        c.destroy_instance(IID)  # nothing left the machine, so even a write may say retryable
    assert ei.value.details["sent"] is False and ei.value.retryable is True


def test_non_json_success_body_is_bad_response(api, api_client):
    serve(api, "GET", "/compute/instances", Reply(200, "<html>gateway</html>", {"Content-Type": "text/html"}))
    with pytest.raises(errors.ComputeError) as ei:
        api_client.list_instances()
    assert ei.value.code == "bad_response" and ei.value.status == 200 and "gateway" in ei.value.details
    assert seen(api) == [("GET", "/compute/instances")]


def test_non_json_error_body_kept_as_text(api, api_client):
    serve(api, "GET", "/compute/instances", Reply(502, "upstream exploded", {"Content-Type": "text/plain"}))
    with pytest.raises(errors.ServerError) as ei:
        api_client.list_instances()
    assert ei.value.details == "upstream exploded" and "upstream exploded" in ei.value.message


def test_empty_success_body_is_an_empty_dict(api, api_client):
    serve(api, "DELETE", f"/compute/instances/{IID}", Reply(200, b""))
    assert api_client.destroy_instance(IID) == {}
    assert seen(api) == [("DELETE", f"/compute/instances/{IID}")]


def test_error_message_from_nested_error_object(api, api_client):
    serve(api, "GET", "/compute/instances", json_reply(401, {"error": {"code": "invalid_key", "message": "key revoked"}}))
    with pytest.raises(errors.AuthError) as ei:
        api_client.list_instances()
    assert "key revoked" in ei.value.message


def test_per_instance_key_used_when_no_account_credential(api, make_client):
    from x402_compute.state import State

    c = make_client()
    State(c.settings.state_dir).save_instance_key(IID, "x402c_instancekey1234")
    serve(api, "GET", f"/compute/instances/{IID}", json_reply(200, {"order": {"id": IID}}))
    assert c.get_instance(IID) == {"id": IID}
    (r,) = api.received()
    assert (r.method, r.path) == ("GET", f"/compute/instances/{IID}")
    assert r.headers["x-api-key"] == "x402c_instancekey1234" and "x-auth-signature" not in r.headers


def test_a_grid_provision_names_its_solana_wallet_on_the_unpaid_request_only(make_client):
    """--mode grid: the service tells whether the paying wallet has the SGL stake before the 402 only
    when the unpaid request names that wallet, so that probe is signed by the Solana wallet (the one
    grid mode pays with); the paid request stays unsigned, and no other provision's probe is signed."""
    from argparse import Namespace

    from x402_compute.api.auth import ApiKeyAuth, NoAuth, SignatureAuth
    from x402_compute.commands.paid import grid_payment

    sol = "2Ana1pUpv2ZbMVkwF5FXapYeBEjdxDatLn7nvJkhgTSdZd8hbDHTd21as7EAsg7ypityqfsw2pMQKJcVDVcAEsd"  # 9C6hybhQ...
    c = make_client(PRIVATE_KEY=EVM_KEY, SOLANA_SECRET_KEY=sol)
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
    keyed = make_client(PRIVATE_KEY=EVM_KEY, SOLANA_SECRET_KEY=sol, COMPUTE_API_KEY=KEY)
    assert grid_payment(args, keyed.settings) is None and isinstance(keyed.auths.probe(None, required=False), ApiKeyAuth)
