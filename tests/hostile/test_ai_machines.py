"""AI Machines against a server that lies: the API key goes only to http://<the instance's own
address>:<port>/v1 (never to an endpoint the server names elsewhere, never through a redirect),
a reply is bounded in size, and a malformed key in a paid answer is neither stored, sent nor
printed, while the payment stays visible."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tests.helpers import run_script
from tests.hostile.stub import HostileAPI, Reply, huge, json_reply

MODEL = "llama-3.2-3b"
KEY = "sk-" + "a1b2c3d4" * 4


@pytest.fixture
def machine():
    """A second stub on another port: the AI Machine's model server (it records what reached it)."""
    api = HostileAPI().start()
    try:
        yield api
    finally:
        api.stop()


def _gpu(hostile):
    hostile.plans.append({"id": "vcg-a100-1c-2g-6gb", "type": "vcg", "provider": "vultr", "vcpu_count": 1, "ram": 6144, "disk": 70,
                          "bandwidth": 1024, "our_hourly": 0.01, "our_daily": 0.24, "our_monthly": 7.2, "locations": ["lax"],
                          "gpu_type": "NVIDIA_A100", "gpu_vram_gb": 2})


def _ai_order(hostile, tmp_path, **ai):
    order = hostile.add_order(metadata={"ai": {"model_id": MODEL, "port": 8080, "endpoint": None, **ai}})
    keys = tmp_path / "home" / "state" / "ai-keys"
    keys.mkdir(parents=True, mode=0o700, exist_ok=True)
    (keys / f"{order['id']}.key").write_text(KEY + "\n")
    os.chmod(keys / f"{order['id']}.key", 0o600)
    return order


@pytest.mark.parametrize("endpoint", [
    "http://127.0.0.2:{port}/v1",                 # another address
    "http://127.0.0.1:{port}/v1",                 # the right address, another port than metadata.ai.port
    "https://evil.example/v1",
    "http://127.0.0.1:8080/v1@127.0.0.1:{port}",  # userinfo trick
    42,
])
def test_the_key_never_goes_to_an_endpoint_the_server_names_elsewhere(hostile, hostile_env, tmp_path, machine, endpoint):
    ep = endpoint.format(port=machine.port) if isinstance(endpoint, str) else endpoint
    order = _ai_order(hostile, tmp_path, endpoint=ep)
    rc, doc, err = run_script("ai_chat.py", order["id"], "hi", env=hostile_env())
    assert rc == 1 and doc["error"]["code"] == "ai_endpoint_unavailable", (doc, err)
    assert "not sent" in doc["error"]["message"] or "not" in doc["error"]["details"]["reason"]
    assert machine.received() == []
    details = run_script("instance_details.py", order["id"], env=hostile_env())[1]["instance"]["ai"]
    assert details["endpoint"] is None and "key is not sent there" in details["note"]


def test_a_redirect_is_not_followed_and_a_huge_reply_is_cut_off(hostile, hostile_env, tmp_path, machine):
    decoy = HostileAPI().start()
    try:
        order = _ai_order(hostile, tmp_path, port=machine.port)  # the instance's own 127.0.0.1, the machine's port
        machine.override("POST", "/v1/chat/completions", Reply(307, b"", {"Location": f"{decoy.base_url}/v1/chat/completions"}))
        rc, doc, _ = run_script("ai_chat.py", order["id"], "hi", env=hostile_env())
        assert rc == 1 and doc["error"]["code"] == "ai_error" and doc["error"]["status"] == 307
        assert decoy.received() == []
        sent = machine.received("POST", "/v1/chat/completions")[0]
        assert sent.headers["authorization"] == f"Bearer {KEY}" and json.loads(sent.body)["model"] == MODEL

        machine.override("POST", "/v1/chat/completions", Reply(200, stream=huge(2, prefix=b'{"choices": [', filler=b'{"x": 1},'),
                                                               headers={"Content-Type": "application/json"}))
        rc, doc, _ = run_script("ai_chat.py", order["id"], "hi", env=hostile_env())
        assert rc == 1 and doc["error"]["code"] == "response_too_large", doc
        machine.override("POST", "/v1/chat/completions", json_reply(200, {"choices": [{"message": {"content": 7}}]}))
        rc, doc, _ = run_script("ai_chat.py", order["id"], "hi", env=hostile_env())
        assert rc == 1 and doc["error"]["code"] == "ai_bad_response"
        assert KEY not in json.dumps(doc)
    finally:
        decoy.stop()


@pytest.mark.parametrize("bad_key", ["sk-abc\r\nX-Injected: 1", "short", 12345678, "sk-" + "k" * 600])
def test_a_malformed_key_in_a_paid_answer_is_not_stored_and_the_payment_shows(hostile, hostile_env, tmp_path, bad_key):
    _gpu(hostile)

    def reply(req, honest):
        good = honest()
        body = json.loads(good.body_bytes())
        body["order"]["metadata"] = {"ai": {"model_id": MODEL, "api_key": bad_key, "port": 8080, "endpoint": None}}
        return json_reply(good.status, body)

    hostile.override("POST", "/compute/provision", reply, when="paid")
    rc, doc, err = run_script("provision.py", "vcg-a100-1c-2g-6gb", "lax", "--days", "1", "--model-id", MODEL, "--mode", "private", "--yes",
                              env=hostile_env())
    assert rc == 0 and doc["payment"]["tx_hash"], (doc, err)
    assert doc["ai"]["api_key_file"] is None and doc["ai"]["api_key_last4"] is None and "not one printable token" in doc["ai"]["note"]
    assert not (tmp_path / "home" / "state" / "ai-keys").exists()
    if isinstance(bad_key, str) and len(bad_key) >= 6:
        assert bad_key not in json.dumps(doc) and bad_key not in err
    sent = json.loads(hostile.paid_requests()[0].body)
    assert sent["ai_machine"] == {"model_id": MODEL, "mode": "private"} and "deploy_node" not in sent


def test_a_good_key_is_saved_0600_once_and_never_overwritten(hostile, hostile_env, tmp_path):
    _gpu(hostile)
    keys = iter([KEY, "sk-" + "z9" * 16])

    def reply(req, honest):
        good = honest()
        body = json.loads(good.body_bytes())
        body["order"]["id"] = "6d1f4c1e-0000-4000-8000-00000000a1a1"  # the same id twice: a broken server
        body["order"]["metadata"] = {"ai": {"model_id": MODEL, "api_key": next(keys), "port": 8080, "endpoint": None}}
        return json_reply(good.status, body)

    hostile.override("POST", "/compute/provision", reply, when="paid")
    args = ("provision.py", "vcg-a100-1c-2g-6gb", "lax", "--days", "1", "--model-id", MODEL, "--mode", "private", "--yes")
    rc, doc, err = run_script(*args, env=hostile_env())
    assert rc == 0, doc
    path = tmp_path / "home" / "state" / "ai-keys" / "6d1f4c1e-0000-4000-8000-00000000a1a1.key"
    assert doc["ai"]["api_key_file"] == str(path) and doc["ai"]["api_key_last4"] == KEY[-4:]
    assert doc["ai"]["endpoint"] == "http://127.0.0.1:8080/v1"  # the instance's own address and the key's port
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_text().strip() == KEY
    assert KEY not in json.dumps(doc) and KEY not in err
    rc, doc, err = run_script(*args, env=hostile_env())
    assert rc == 0 and path.read_text().strip() == KEY and "was kept" in doc["ai"]["note"]
    assert doc["ai"]["api_key_last4"] == KEY[-4:]  # the saved key, which ai_chat will use
    # The second, different key is kept too (shown once: dropping it loses it for good), beside the
    # first by the management keys' rule, 0600, and the output says where; it is never printed.
    second = path.with_name(path.name + ".2")
    assert second.read_text().strip() == "sk-" + "z9" * 16 and stat.S_IMODE(os.stat(second).st_mode) == 0o600
    assert str(second) in doc["ai"]["note"] and str(second) in err
    assert "sk-" + "z9" * 16 not in json.dumps(doc) + err
    # --forget-local removes both with the machine.
    iid = path.name.removesuffix(".key")
    hostile.add_order(id=iid)  # the broken server's answers named an id its store never held
    rc, doc, err = run_script("destroy_instance.py", iid, "--yes", "--forget-local", env=hostile_env())
    assert rc == 0 and {str(path), str(second)} <= set(doc["forgotten"]), (doc, err)
    assert not path.exists() and not second.exists()


def test_grid_in_api_key_mode_without_a_key_is_a_config_error_before_anything_is_sent(hostile, hostile_env):
    """COMPUTE_AUTH_MODE=api-key and no key: the grid probe used to be signed with the Solana wallet
    anyway. It is the api-key mode's config error, as on every other path, and nothing reaches the API."""
    from solders.keypair import Keypair

    _gpu(hostile)
    env = hostile_env(COMPUTE_AUTH_MODE="api-key", SOLANA_SECRET_KEY=str(Keypair()))
    rc, doc, err = run_script("provision.py", "vcg-a100-1c-2g-6gb", "lax", "--days", "1", "--model-id", MODEL, "--mode", "grid", "--yes", env=env)
    assert rc == 2 and doc["error"]["code"] == "config_error", (doc, err)
    assert doc["error"]["message"] == "COMPUTE_AUTH_MODE=api-key but no API key is configured." and "COMPUTE_API_KEY" in doc["error"]["hint"]
    assert hostile.received() == []
