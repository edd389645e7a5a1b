"""AI Machines through the scripts: provision --model-id ID --mode private pays on a local chain, saves
the one-time API key 0600 (never printed), waits until the endpoint answers /v1/models with it, and
the official `openai` package (a client nobody here wrote) then talks to the machine using only what
provision printed and saved, plain and streaming; ai_chat.py does the same in one call. The refusals
happen before anything is signed."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.helpers import Proxy, balances, fail, journal_entries, ok, run_script, wallet_env

GPU, REGION, MODEL = "vcg-a100-1c-2g-6gb", "ewr", "llama-3.2-3b"
WAIT = ("--wait-timeout", "60", "--poll-interval", "0.3")


@pytest.fixture
def wallet(sandbox, tools):
    return tools.fresh_wallet(sandbox.facilitator, usd=20)


def test_private_ai_machine_from_quote_to_openai_client_to_destroy(sandbox, wallet, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    ai_args = (GPU, REGION, "--days", "1", "--model-id", MODEL, "--mode", "private")
    quote = ok(run_script("provision.py", *ai_args, "--quote", env=env))["quote"]
    assert quote["ai_machine"] == f"AI Machine: {MODEL}, private endpoint on {GPU}"
    assert quote["summary"].startswith(f"AI Machine: {MODEL}, private endpoint on {GPU} (") and (quote["model_id"], quote["mode"]) == (MODEL, "private")

    before = balances(sandbox, wallet)
    code, doc, err = run_script("provision.py", *ai_args, "--yes", "--wait", *WAIT, env=env, timeout=120)
    assert code == 0, (doc, err)
    ai, order, pay = doc["ai"], doc["order"], doc["payment"]
    # Paid on the local Base chain: exactly the quoted amount left the wallet.
    assert pay["network"] == "base" and pay["tx_hash"] and pay["amount_atomic"] == quote["amount_atomic"]
    assert before["base"] - balances(sandbox, wallet)["base"] == int(pay["amount_atomic"])
    assert set(ai) == {"model_id", "endpoint", "port", "api_key_file", "api_key_last4", "note", "models"}
    assert ai["endpoint"] == f"http://{order['ip']}:{ai['port']}/v1" and ai["models"] == [MODEL] and "plain http" in ai["note"]
    key_file = Path(ai["api_key_file"])
    assert key_file.parent == tmp_path / "state" / "ai-keys" and key_file.name == f"{order['id']}.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = key_file.read_text().strip()
    assert key.endswith(ai["api_key_last4"]) and len(key) > 8
    assert key not in json.dumps(doc) and key not in err  # shown once by the server, never by us

    # The openai package, given only the printed endpoint and the saved key file.
    import openai

    client = openai.OpenAI(base_url=ai["endpoint"], api_key=key_file.read_text().strip(), max_retries=0, timeout=10)
    assert [m.id for m in client.models.list()] == [MODEL]
    chat = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello from openai"}])
    assert chat.choices[0].message.content == f"{MODEL} (sandbox) heard: Hello from openai"
    assert chat.choices[0].finish_reason == "stop" and chat.usage.completion_tokens == 6
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hello from openai"}], stream=True)
    parts = [(c.choices[0].delta.content or "", c.choices[0].finish_reason) for c in stream]
    assert "".join(p for p, _ in parts) == chat.choices[0].message.content and parts[-1][1] == "stop" and len(parts) > 3
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=ai["endpoint"], api_key="sk-not-the-key", max_retries=0, timeout=10).models.list()

    # ai_chat.py: the saved key, to the instance's own endpoint.
    code, reply, err = run_script("ai_chat.py", order["id"], "Say hi", "--system", "be brief", env=env)
    assert code == 0, (reply, err)
    assert reply["reply"] == f"{MODEL} (sandbox) heard: Say hi" and reply["model"] == MODEL and reply["finish_reason"] == "stop"
    assert reply["endpoint"] == ai["endpoint"] and reply["usage"]["completion_tokens"] == 5 and "plain http" in reply["transport"]
    assert key not in json.dumps(reply) and key not in err
    cut = ok(run_script("ai_chat.py", order["id"], "one two three four", "--max-tokens", "2", env=env))
    assert cut["reply"] == f"{MODEL} (sandbox)" and cut["finish_reason"] == "length"

    # The listings show the endpoint (and where the key is), never the key.
    details = ok(run_script("instance_details.py", order["id"], env=env))["instance"]
    assert details["ai"]["endpoint"] == ai["endpoint"] and details["ai"]["api_key_file"] == str(key_file)
    row = next(r for r in ok(run_script("list_instances.py", env=env))["instances"] if r["id"] == order["id"])
    assert row["ai"]["endpoint"] == ai["endpoint"] and row["ai"]["api_key_last4"] == ai["api_key_last4"]

    # Another state folder has no key: ai_chat refuses before sending anything.
    other = wallet_env(sandbox, wallet, tmp_path / "elsewhere")
    fail(run_script("ai_chat.py", order["id"], "hi", env=other), 1, "ai_key_missing")

    ok(run_script("destroy_instance.py", order["id"], "--yes", env=env))
    e = fail(run_script("ai_chat.py", order["id"], "hi", env=env), 1, "ai_endpoint_unavailable")
    assert "destroyed" in e["message"]
    with pytest.raises(openai.APIConnectionError):  # the machine's model server is gone with it
        client.models.list()
    assert key_file.read_text().strip() == key  # a plain destroy keeps it
    # Cleaning up after destroyed machines, on request, takes the AI key with the other leftovers.
    doc = ok(run_script("destroy_instance.py", "--forget-destroyed", env=env))
    assert str(key_file) in next(f for f in doc["forgotten"] if f["id"] == order["id"])["files"]
    assert not key_file.exists()


def test_refusals_sign_nothing(sandbox, wallet, tools, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    before = balances(sandbox, wallet)
    base = (GPU, REGION, "--days", "1", "--yes")

    e = fail(run_script("provision.py", *base, "--model-id", MODEL, "--mode", "private", "--use-credits", env=env), 2, "credits_not_accepted")
    assert "Nothing was sent" in e["message"]
    fail(run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--yes", "--model-id", MODEL, "--mode", "private", env=env), 2, "not_a_gpu_plan")
    e = fail(run_script("provision.py", *base, "--model-id", MODEL, "--mode", "private", "--mode", "grid", env=env), 2, "usage_error")
    assert "given twice" in e["message"]
    fail(run_script("provision.py", *base, "--mode", "private", env=env), 2, "usage_error")  # no model
    fail(run_script("provision.py", *base, "--model-id", "llama; rm -rf /", "--mode", "private", env=env), 2, "usage_error")
    # Grid mode is paid only by x402 on Solana: anything else is refused before a request.
    grid = (*base, "--model-id", MODEL, "--mode", "grid")
    for extra in (("--network", "base"), ("--pay", "mpp"), ("--pay", "stripe"), ("--network", "arc", "--pay", "mpp")):
        e = fail(run_script("provision.py", *grid, *extra, env=env), 2, "grid_needs_solana")
        assert "Nothing was sent" in e["message"] and all(x in e["message"] for x in extra[:2]) and "--mode private" in e["hint"]
    e = fail(run_script("provision.py", *grid, env=dict(env, COMPUTE_ALLOWED_NETWORKS="base")), 3, "network_not_allowed")
    assert "solana" in e["message"] and "never change" in e["hint"]
    evm_only = {k: v for k, v in env.items() if not k.startswith("SOLANA_")}
    e = fail(run_script("provision.py", *grid, env=evm_only), 2, "solana_wallet_required")
    assert "SOLANA_SECRET_KEY" in e["hint"]
    # The stake only the service can tell: the unpaid request names the paying (Solana) wallet, so a
    # wallet without 50,000 SGL staked is refused before the 402 (unsigned, it was refused only
    # after the payment settled: exit 4). The default network of grid mode is solana.
    for extra in ((), ("--network", "solana"), ("--quote",)):
        e = fail(run_script("provision.py", *grid, *extra, env=env), 1)
        assert e["status"] == 403 and "SGL staked" in e["message"] and "No payment was signed or made" in e["message"], e
        assert "50,000 SGL" in e["hint"] and "--mode private" in e["hint"]
    # With an API key the account is known up front the same way.
    keyed = dict(env, COMPUTE_API_KEY=tools.api_key(sandbox, wallet))
    e = fail(run_script("provision.py", *grid, "--network", "solana", env=keyed), 1)
    assert e["status"] == 403 and "SGL staked" in e["message"] and "API key" in e["hint"]

    # An approved quote pins what is bought: the same plan with another model is not that quote.
    qid = ok(run_script("provision.py", GPU, REGION, "--days", "1", "--model-id", MODEL, "--mode", "private", "--quote", env=env))["quote"]["quote_id"]
    e = fail(run_script("provision.py", GPU, REGION, "--days", "1", "--model-id", "qwen2.5-7b", "--mode", "private", "--confirm-quote", qid, env=env), 3, "quote_changed")
    assert set(e["details"]["differences"]) == {"model_id"}
    e = fail(run_script("provision.py", GPU, REGION, "--days", "1", "--confirm-quote", qid, env=env), 3, "quote_changed")
    assert set(e["details"]["differences"]) == {"model_id", "mode"}

    assert journal_entries(tmp_path) == [] and balances(sandbox, wallet) == before


def test_ai_chat_refuses_a_machine_that_is_not_an_ai_machine(sandbox, wallet, tools, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    plain = tools.provision(sandbox, wallet)["order"]["id"]  # paid by this wallet, so it may read it
    fail(run_script("ai_chat.py", plain, "hi", env=env), 1, "not_an_ai_machine")
    fail(run_script("ai_chat.py", plain, "", env=env), 2, "usage_error")
    fail(run_script("ai_chat.py", "../../etc/passwd", "hi", env=env), 2, "usage_error")


def test_a_resent_ai_provision_saves_the_one_time_key(sandbox, wallet, tmp_path):
    """Both paid answers lost (exit 4): the key is in the replayed answer only, so reconcile --resend
    saves it 0600 like provision would, and never prints it."""
    proxy = Proxy(sandbox.base_url, drop_paid=2)
    try:
        env = wallet_env(sandbox, wallet, tmp_path, COMPUTE_BASE_URL=proxy.url)
        err4 = fail(run_script("provision.py", GPU, REGION, "--days", "1", "--model-id", MODEL, "--mode", "private", "--yes", env=env),
                    4, "payment_outcome_unknown")
        jid = err4["details"]["journal_id"]
        assert not (tmp_path / "state" / "ai-keys").exists()
        code, rec, err = run_script("reconcile.py", jid, "--resend", env=env)
        assert code == 0, (rec, err)
        assert rec["resend"]["replayed"] is True and proxy.paid_requests == 3 and len(set(proxy.payment_headers)) == 1
        key_file = Path(rec["ai"]["api_key_file"])
        assert key_file == tmp_path / "state" / "ai-keys" / f"{rec['order']['id']}.key"
        assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
        key = key_file.read_text().strip()
        assert key.endswith(rec["ai"]["api_key_last4"]) and key not in json.dumps(rec) and key not in err
    finally:
        proxy.stop()
