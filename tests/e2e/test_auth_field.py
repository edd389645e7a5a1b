"""Every script's JSON says which credential its requests carried (issue 15, "Keys").

The runs go against the sandbox, whose server checks each credential, so the label printed is
compared with what the server accepted: a listing under the API key sees what the key's wallet
owns, a signed listing sees that wallet's instances, and so on."""

from __future__ import annotations

import pytest

from tests.helpers import clean_env, ok, run_script

PLAN, REGION = "vc2-1c-1gb", "lax"


@pytest.fixture(scope="module")
def wallet(sandbox, tools):
    return tools.fresh_wallet(sandbox.facilitator, usd=50)


def env_with(sandbox, home, **keys) -> dict:
    env = dict(sandbox.env)
    for k in ("PRIVATE_KEY", "WALLET_ADDRESS", "SOLANA_SECRET_KEY", "SOLANA_WALLET_ADDRESS", "COMPUTE_API_KEY"):
        env.pop(k, None)
    env.update(keys)
    return clean_env(env, home=home)


def test_each_credential_is_named(sandbox, wallet, tmp_path):
    evm = {"PRIVATE_KEY": wallet["evm_private_key"]}
    sol = {"SOLANA_SECRET_KEY": wallet["solana_secret_key"]}
    both = env_with(sandbox, tmp_path, **evm, **sol)

    # Catalog reads and local-only scripts send no credential.
    assert ok(run_script("browse_plans.py", "--limit", "1", env=both))["auth"] == "none"
    assert ok(run_script("budget.py", env=both))["auth"] == "none"

    # An x402 provision: the probe is unsigned and the paid request carries only the payment.
    doc = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--network", "base", "--yes", env=both, timeout=120))
    assert doc["auth"] == "none" and doc["payment"]["network"] == "base"
    iid = doc["order"]["id"]

    # Signed X-Auth-* challenges, per wallet; a listing with both wallets asks both.
    assert ok(run_script("instance_details.py", iid, env=env_with(sandbox, tmp_path, **evm)))["auth"] == "wallet:base"
    listed = ok(run_script("list_instances.py", env=both))
    assert listed["auth"] == "wallet:base+wallet:solana" and iid in {r["id"] for r in listed["instances"]}
    only_sol = ok(run_script("list_instances.py", env=env_with(sandbox, tmp_path / "sol", **sol)))
    assert only_sol["auth"] == "wallet:solana" and iid not in {r["id"] for r in only_sol["instances"]}

    # An API key created (and saved) by the Base wallet; then routine work on the key alone.
    created = ok(run_script("create_api_key.py", "--label", "auth-field", "--save", env=env_with(sandbox, tmp_path, **evm)))
    assert created["auth"] == "wallet:base"
    keyonly = env_with(sandbox, tmp_path)  # same state folder: the saved key, no wallet at all
    listed = ok(run_script("list_instances.py", env=keyonly))
    assert listed["auth"] == "api-key" and iid in {r["id"] for r in listed["instances"]}
    gone = ok(run_script("destroy_instance.py", iid, "--yes", env=keyonly))
    assert gone["auth"] == "api-key" and gone["instance"]["state"] == "destroyed"


def test_a_failure_carries_no_auth_claim(sandbox, tmp_path):
    # Errors say what went wrong, not which credential: the document has exactly ok and error.
    code, doc, _ = run_script("instance_details.py", "not-a-uuid", env=env_with(sandbox, tmp_path))
    assert code == 2 and set(doc) == {"ok", "error"}
