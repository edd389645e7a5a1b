"""Class 6: no credential, payment or chain read over plain http off this machine.

``http://0.0.0.0:<port>`` stands for "a host that is not loopback": the check refuses it, and
when allowed (``--allow-insecure-http``) Linux delivers it to the stub on 127.0.0.1, so these
tests never send a byte off the machine. Loopback http (the sandbox) stays allowed.
"""

from __future__ import annotations

import json

import pytest
from x402_compute.config import Settings, insecure_http
from x402_compute.errors import ConfigError
from x402_compute.payments.rpc import JsonRpc

from tests.helpers import SCRIPTS, run_script, state_entries


def off_box(hostile) -> str:
    return f"http://0.0.0.0:{hostile.port}"


def test_the_loopback_rule():
    assert not insecure_http("http://127.0.0.1:8402") and not insecure_http("http://localhost:1") and not insecure_http("http://[::1]:2")
    assert not insecure_http("https://compute.x402layer.cc") and not insecure_http("http://127.9.9.9")
    for url in ("http://compute.x402layer.cc", "http://0.0.0.0:1", "http://10.0.0.1", "http://localhost.evil.com", "HTTP://Example.com"):
        assert insecure_http(url), url


def test_a_signed_request_is_refused_before_it_leaves(hostile, hostile_env):
    code, doc, _ = run_script("list_instances.py", env=hostile_env(COMPUTE_BASE_URL=off_box(hostile)))
    assert code == 2 and doc["error"]["code"] == "insecure_transport"
    assert "--allow-insecure-http" in doc["error"]["hint"] and "https" in doc["error"]["hint"]
    assert hostile.requests == []  # not even the connection was made


def test_an_api_key_is_refused_too(hostile, hostile_env):
    code, doc, _ = run_script("list_instances.py", env=hostile_env(COMPUTE_BASE_URL=off_box(hostile), PRIVATE_KEY=None,
                                                                   COMPUTE_API_KEY="x402c_" + "k" * 32))
    assert code == 2 and doc["error"]["code"] == "insecure_transport" and hostile.requests == []


def test_the_flag_allows_it_for_a_lab(hostile, hostile_env):
    hostile.add_order()
    code, doc, _ = run_script("list_instances.py", "--allow-insecure-http", env=hostile_env(COMPUTE_BASE_URL=off_box(hostile)))
    assert code == 0 and doc["count"] == 1
    assert hostile.received("GET", "/compute/instances")[0].headers.get("x-auth-signature")


def test_the_public_catalog_needs_no_https(hostile, hostile_env):
    code, doc, _ = run_script("browse_plans.py", env=hostile_env(COMPUTE_BASE_URL=off_box(hostile), PRIVATE_KEY=None))
    assert code == 0 and doc["count"] == 2


def test_a_payment_is_refused_before_anything_is_signed(hostile, hostile_env, tmp_path):
    code, doc, _ = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes",
                              env=hostile_env(COMPUTE_BASE_URL=off_box(hostile), PRIVATE_KEY=None, COMPUTE_AUTH_MODE=None,
                                              SOLANA_SECRET_KEY=None))
    # no management credential at all: only the payment itself could be exposed, and it is refused
    assert code == 2 and doc["error"]["code"] == "insecure_transport", doc
    assert not hostile.received("POST") and not hostile.paid_requests()
    assert state_entries(tmp_path / "home" / "state") == []


def test_the_rpc_url_is_held_to_the_same_rule(hostile):
    rpc = JsonRpc(Settings(rpc_urls={"megaeth": f"{off_box(hostile)}/rpc"}))
    with pytest.raises(ConfigError) as e:
        rpc.eth_chain_id("megaeth")
    assert e.value.code == "insecure_transport" and "megaeth RPC" in e.value.message
    assert hostile.requests == []
    allowed = JsonRpc(Settings(rpc_urls={"megaeth": f"{off_box(hostile)}/rpc"}, allow_insecure_http=True))
    assert allowed.eth_chain_id("megaeth") == 0x2105
    assert JsonRpc(Settings(rpc_urls={"megaeth": f"{hostile.base_url}/rpc"})).eth_chain_id("megaeth") == 0x2105


@pytest.mark.parametrize("allow", [False, True])
def test_doctor_reports_plain_http(hostile, hostile_env, allow):
    env = hostile_env(COMPUTE_BASE_URL=off_box(hostile), BASE_RPC_URL="http://rpc.example.com/base")
    code, doc, _ = run_script("doctor.py", "--offline", *(["--allow-insecure-http"] if allow else []), env=env)
    check = {c["name"]: c for c in doc["checks"]}["transport"]
    assert check["status"] == ("warn" if allow else "fail")
    assert set(check["data"]["insecure"]) == {"base_url", "base_rpc"}
    assert code == (0 if allow else 1)
    code, doc, _ = run_script("doctor.py", "--offline", env=hostile_env())  # loopback: fine
    assert {c["name"]: c["status"] for c in doc["checks"]}["transport"] == "ok"


def test_no_mcp_tool_lets_a_model_lift_the_rule():
    """--allow-insecure-http is the human's, given when the MCP server starts; no tool takes it."""
    import argparse

    from x402_compute import mcp as mcp_server

    specs = [s for s in mcp_server.all_tools() if (SCRIPTS / s.mirrors.split()[0]).is_file()]
    assert specs
    for spec in specs:
        assert "allow_insecure_http" not in spec.input_schema["properties"], spec.name
    args = argparse.Namespace(env_file=None, base_url=None, timeout=None, verbose=False, allow_insecure_http=True)
    assert "--allow-insecure-http" in mcp_server.ServerConfig.load(args).script_argv


@pytest.mark.parametrize("proxy", ["http://agent:hunter2secret@[bad", "http://agent:hunter2secret@127.0.0.1:99999",
                                   "socks5://agent:hunter2secret@127.0.0.1:1080"])
def test_a_proxy_variable_the_client_cannot_use_is_a_clear_error(hostile, hostile_env, proxy):
    """The environment is input too: a malformed or unusable proxy URL stops the run with an error
    naming the variable, before anything is sent, never a traceback, never its password."""
    code, doc, err = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes",
                                env=hostile_env(HTTP_PROXY=proxy, http_proxy=None, NO_PROXY=None, no_proxy=None))
    assert code == 1 and doc["error"]["code"] == "network_error", doc
    assert "HTTP_PROXY" in doc["error"]["message"] and doc["error"]["details"]["sent"] is False, doc
    assert "hunter2secret" not in json.dumps(doc) + err and "Traceback" not in err
    assert not hostile.received("POST") and not hostile.paid_requests()


@pytest.mark.parametrize("bundle", ["missing", "not-pem"])
def test_a_ca_bundle_the_client_cannot_read_is_a_clear_error(hostile_env, tmp_path, bundle):
    path = tmp_path / "ca.pem"
    if bundle == "not-pem":
        path.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    code, doc, err = run_script("browse_plans.py", env=hostile_env(COMPUTE_BASE_URL="https://127.0.0.1:9", REQUESTS_CA_BUNDLE=str(path),
                                                                   COMPUTE_TIMEOUT="5"))
    assert code == 1 and doc["error"]["code"] == "network_error", doc
    assert "REQUESTS_CA_BUNDLE" in doc["error"]["message"] and "Traceback" not in err, doc


def test_a_password_in_the_api_url_is_sent_as_basic_auth_never_printed_and_never_over_plain_http(hostile, hostile_env):
    """user:password@ in COMPUTE_BASE_URL: sent as HTTP Basic (as curl and requests send it), never
    in the output (the error's url and hint carry the URL), and a credential: no plain http off this
    machine even for the public catalog."""
    url = f"http://agent:hunter2secret@127.0.0.1:{hostile.port}"
    code, doc, err = run_script("browse_plans.py", env=hostile_env(COMPUTE_BASE_URL=url, PRIVATE_KEY=None))
    assert code == 0, doc
    reqs = hostile.received("GET", "/compute/plans")
    assert reqs and all(r.headers.get("authorization") == "Basic YWdlbnQ6aHVudGVyMnNlY3JldA==" for r in reqs)  # agent:hunter2secret
    code, doc, err = run_script("list_instances.py", env=hostile_env(COMPUTE_BASE_URL="http://agent:hunter2secret@127.0.0.1:9"))
    assert code == 1 and doc["error"]["code"] == "network_error", doc
    assert "hunter2secret" not in json.dumps(doc) + err
    code, doc, _ = run_script("browse_plans.py", env=hostile_env(COMPUTE_BASE_URL=off_box(hostile).replace("://", "://agent:hunter2secret@"),
                                                                 PRIVATE_KEY=None))
    assert code == 2 and doc["error"]["code"] == "insecure_transport" and "hunter2secret" not in json.dumps(doc), doc


BAD_URLS = ["http://agent:hunter2secret@[bad", "https://agent:hunter2secret@127.0.0.1:99999", "ftp://agent:hunter2secret@127.0.0.1/"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_an_api_url_the_client_cannot_use_is_a_configuration_error(hostile, hostile_env, url):
    """Before anything is sent or signed; never a traceback, never the URL's password."""
    code, doc, err = run_script("provision.py", "vc2-1c-1gb", "lax", "--hours", "24", "--yes", env=hostile_env(COMPUTE_BASE_URL=url))
    assert code == 2 and doc["error"]["code"] == "config_error" and "COMPUTE_BASE_URL" in doc["error"]["message"], doc
    assert "hunter2secret" not in json.dumps(doc) + err and "Traceback" not in err
    assert not hostile.requests


@pytest.mark.parametrize("url", BAD_URLS)
def test_an_rpc_url_the_client_cannot_use_is_a_configuration_error(hostile, url):
    with pytest.raises(ConfigError) as e:
        JsonRpc(Settings(rpc_urls={"megaeth": url})).eth_chain_id("megaeth")
    assert e.value.code == "config_error" and "MEGAETH_RPC_URL" in e.value.message and "hunter2secret" not in e.value.message
    assert hostile.requests == []
