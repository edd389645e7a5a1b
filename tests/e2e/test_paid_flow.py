"""Paid commands end to end: the real scripts as subprocesses against the sandbox over loopback
HTTP, payments settled on its local chains, balances read from those chains.

Every test uses a fresh, freshly funded wallet and its own state dir, so the session sandbox can be
shared with other tests.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from x402_compute.instances import parse_time

from tests.helpers import (
    NETS,
    PLAN,
    REGION,
    Proxy,
    balances,
    clean_env,
    closed_port_url,
    fail_doc,
    journal_entries,
    ok,
    owner,
    payee_pins,
    run_script,
    wallet_env,
)


@pytest.fixture
def wallet(sandbox, tools):
    return tools.fresh_wallet(sandbox.facilitator, usd=50)


@pytest.mark.parametrize("network", NETS)
def test_paid_provision_moves_exactly_the_amount(sandbox, wallet, tmp_path, network):
    env = wallet_env(sandbox, wallet, tmp_path)
    payee = sandbox.facilitator.payee(network)
    before, payee_before = balances(sandbox, wallet), sandbox.facilitator.balance_of(network, payee)
    doc = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", network, env=env))
    pay = doc["payment"]
    amount = int(pay["amount_atomic"])
    decimals = sandbox.facilitator.network(network).decimals
    assert amount == 249600 * 10 ** (decimals - 6)  # $0.0104/h × 24 h, 18 decimals on MegaETH
    assert pay["amount_usd"].rstrip("0") == "0.2496" and pay["network"] == network and pay["tx_hash"]
    after = balances(sandbox, wallet)
    assert before[network] - after[network] == amount
    assert sandbox.facilitator.balance_of(network, payee) - payee_before == amount
    assert all(after[n] == before[n] for n in NETS if n != network)
    assert pay["payee"] == payee and pay["payer"].lower() == owner(sandbox, wallet, network).lower()
    order = doc["order"]
    assert order["plan"] == PLAN and order["region"] == REGION and order["label"].startswith("x402-")
    (entry,) = journal_entries(tmp_path)
    assert entry["status"] == "settled" and entry["order_id"] == order["id"] and entry["id"] == pay["journal_id"]
    assert entry["label"] == order["label"] == f"x402-{entry['id'][:8]}"
    assert stat.S_IMODE(os.stat(tmp_path / "state" / "ledger.sqlite3").st_mode) == 0o600
    pins = payee_pins(tmp_path / "state")
    assert pins[network]["pay_to"] == payee


def test_v2_challenge_answered_with_payment_signature(make_sandbox, tools, tmp_path):
    sb = make_sandbox(x402_version=2)
    w = tools.fresh_wallet(sb.facilitator, usd=10)
    env = wallet_env(sb, w, tmp_path)
    for network in ("base", "solana"):
        before = balances(sb, w)
        doc = ok(run_script("provision.py", PLAN, REGION, "--hours", "24", "--yes", "--network", network, env=env))
        assert doc["payment"]["x402_version"] == 2
        assert before[network] - balances(sb, w)[network] == int(doc["payment"]["amount_atomic"])
    entries = journal_entries(tmp_path)
    assert {e["payment_header_name"] for e in entries} == {"PAYMENT-SIGNATURE"}


def test_quote_signs_nothing(sandbox, wallet, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    before = balances(sandbox, wallet)
    doc = ok(run_script("provision.py", PLAN, REGION, "--days", "2", "--quote", "--network", "megaeth", env=env))
    q = doc["quote"]
    assert q["signed"] is False and q["hours"] == 48 and q["hourly_usd"] == "0.0104"
    assert q["amount_atomic"] == str(499200 * 10**12) and q["asset_symbol"] == "USDm" and q["payee"] == sandbox.facilitator.payee("megaeth")
    assert q["policy"] == {"ok": True}
    assert balances(sandbox, wallet) == before
    assert journal_entries(tmp_path) == [] and payee_pins(tmp_path / "state") == {}


def test_not_at_a_terminal_without_yes_is_refused(sandbox, wallet, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    before = balances(sandbox, wallet)
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", env=env, input=""), 3, "confirmation_required")
    assert balances(sandbox, wallet) == before and journal_entries(tmp_path) == []
    # The hint leads to the safe path (a quote the human sees, then --confirm-quote), not to --yes.
    hint = doc["error"]["hint"]
    assert "--quote" in hint and "--confirm-quote <quote_id>" in hint and "human" in hint, hint
    assert not hint.startswith(("Add --yes", "Not at a terminal, so nothing was done. Add --yes")), hint


def test_spend_cap_refuses_before_signing(sandbox, wallet, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    before = balances(sandbox, wallet)
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--max-usd", "0.20", env=env), 3, "spend_cap_exceeded")
    assert doc["error"]["details"]["cap_source"] == "--max-usd"
    env_cap = wallet_env(sandbox, wallet, tmp_path, COMPUTE_MAX_SPEND_USD="0.10")
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "solana", env=env_cap), 3, "spend_cap_exceeded")
    assert doc["error"]["details"]["cap_source"] == "COMPUTE_MAX_SPEND_USD"
    # default cap: 25 USD; a month of a GPU plan is far above it
    gpu = fail_doc(run_script("provision.py", "vcg-a100-1c-2g-6gb", "ewr", "--months", "1", "--yes", env=env), 3, "spend_cap_exceeded")
    assert gpu["error"]["details"]["cap_source"] == "default"
    assert balances(sandbox, wallet) == before and journal_entries(tmp_path) == []


def test_changed_payee_is_refused_until_accepted(sandbox, make_sandbox, wallet, tools, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env))
    other = make_sandbox(seed=7)
    assert other.facilitator.payee("base") != sandbox.facilitator.payee("base")
    w2 = tools.fresh_wallet(other.facilitator, usd=5)
    env2 = wallet_env(other, w2, tmp_path)  # same state dir: the pin from the first sandbox applies
    before = balances(other, w2)
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env2), 3, "payee_changed")
    assert doc["error"]["details"]["pinned"] == sandbox.facilitator.payee("base")
    assert balances(other, w2) == before and len(journal_entries(tmp_path)) == 1
    ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--accept-payee-change", env=env2))
    assert payee_pins(tmp_path / "state")["base"]["pay_to"] == other.facilitator.payee("base")


def test_rejected_payment_is_not_retried(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=0)  # signs fine, cannot pay
    env = wallet_env(sandbox, w, tmp_path)
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env), 1, "payment_rejected")
    assert "insufficient" in doc["error"]["message"].lower() or "balance" in doc["error"]["message"].lower()
    (entry,) = journal_entries(tmp_path)
    assert entry["status"] == "rejected" and [h["status"] for h in entry["history"]] == ["reserved", "sent", "rejected"]


def test_preflight_checks_before_any_402(sandbox, wallet, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    fail_doc(run_script("provision.py", "do:s-1vcpu-1gb", "nyc3", "--days", "1", "--yes", env=env), 2, "ssh_key_required")
    fail_doc(run_script("provision.py", PLAN, "nyc3", "--days", "1", "--yes", env=env), 2, "region_not_offered")
    fail_doc(run_script("provision.py", "no-such-plan", REGION, "--days", "1", "--yes", env=env), 2, "unknown_plan")
    fail_doc(run_script("provision.py", PLAN, REGION, "--os-id", "160232537", "--days", "1", "--yes", env=env), 2, "os_provider_mismatch")
    fail_doc(run_script("provision.py", PLAN, REGION, "--hours", "23", "--yes", env=env), 2, "usage_error")
    fail_doc(run_script("provision.py", PLAN, REGION, "--yes", env=env), 2, "usage_error")  # no silent default duration
    key = tmp_path / "id.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test\n")   # a well-formed key: the sandbox checks the blob
    q = ok(run_script("provision.py", "do:s-1vcpu-1gb", "nyc3", "--days", "1", "--quote", "--ssh-key-file", str(key), env=env))
    assert q["quote"]["os_id"] == 160232537  # the DigitalOcean Ubuntu 24.04 image, not Vultr's 2284
    assert journal_entries(tmp_path) == []


def test_extend_topup_and_credits(sandbox, wallet, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    iid = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env))["order"]["id"]
    before = balances(sandbox, wallet)
    ext = ok(run_script("extend_instance.py", iid, "--hours", "24", "--yes", "--network", "robinhood", env=env))
    o = ext["order"]
    assert parse_time(o["new_expires_at"]) - parse_time(o["old_expires_at"]) == timedelta(hours=24)
    assert before["robinhood"] - balances(sandbox, wallet)["robinhood"] == int(ext["payment"]["amount_atomic"]) == 249600

    before = balances(sandbox, wallet)
    top = ok(run_script("credits_topup.py", "--amount", "2.5", "--yes", "--network", "solana", env=env))
    assert before["solana"] - balances(sandbox, wallet)["solana"] == 2_500_000 == int(top["payment"]["amount_atomic"])
    assert top["credits"]["new_balance"] == "2.50"

    before = balances(sandbox, wallet)
    cred = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--use-credits", env=env))
    assert cred["payment"]["method"] == "credits" and "credits" in cred["payment"]["note"]
    assert balances(sandbox, wallet) == before  # nothing moved on chain
    bal = ok(run_script("credits_balance.py", env=env)) if (Path(__file__).parents[2] / "skills/x402-compute/scripts/credits_balance.py").exists() else None
    if bal is not None:
        assert "2.25" in json.dumps(bal)


def test_wait_ssh_reaches_the_banner(sandbox, wallet, tmp_path):
    env = wallet_env(sandbox, wallet, tmp_path)
    doc = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--wait-ssh", "--poll-interval", "0.2", env=env))
    assert doc["order"]["state"] == "running" and doc["order"]["ip"]
    assert doc["ssh"]["banner"].startswith("SSH-") and doc["ssh"]["host"] == doc["order"]["ip"]


def test_wait_timeout_exit_5(make_sandbox, tools, tmp_path):
    sb = make_sandbox(boot_seconds=30)
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--wait", "--wait-timeout", "1", "--poll-interval", "0.2",
                          env=wallet_env(sb, w, tmp_path)), 5, "wait_timeout")
    assert doc["error"]["details"]["instance_id"] and doc["error"]["details"]["expires_at"]


# -- ambiguous outcomes ---------------------------------------------------------------------------


def _set_drop(sb, n: int) -> None:
    r = requests.post(sb.base_url + "/_sandbox/faults", json={"drop_after_settle": n}, timeout=5)
    assert r.status_code == 200, r.text


def test_dropped_answer_resends_same_payment_once(make_sandbox, tools, tmp_path):
    sb = make_sandbox()
    w = tools.fresh_wallet(sb.facilitator, usd=5)
    env = wallet_env(sb, w, tmp_path)
    before = balances(sb, w)
    _set_drop(sb, 1)
    doc = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env))
    assert doc["payment"]["resent"] is True
    assert before["base"] - balances(sb, w)["base"] == 249600  # exactly one charge
    (entry,) = journal_entries(tmp_path)
    assert entry["status"] == "settled" and entry["replayed"] is True




def test_unknown_outcome_exit_4_one_charge_then_reconcile(make_sandbox, tools, tmp_path):
    sb = make_sandbox()
    proxy = Proxy(sb.base_url, strip_key=True)
    try:
        w = tools.fresh_wallet(sb.facilitator, usd=5)
        env = wallet_env(sb, w, tmp_path, COMPUTE_BASE_URL=proxy.url)
        before = balances(sb, w)
        _set_drop(sb, 1)
        doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env), 4, "payment_outcome_unknown")
        d = doc["error"]["details"]
        jid = d["journal_id"]
        assert d["reconcile"].endswith(jid)
        # the payment and one resend of the very same signed header; never a second signature
        assert proxy.paid_requests == 2 and len(set(proxy.payment_headers)) == 1
        assert before["base"] - balances(sb, w)["base"] == 249600  # exactly one charge on chain
        (entry,) = journal_entries(tmp_path)
        assert entry["status"] == "unknown" and entry["id"] == jid
        assert entry["payment_header_value"] == proxy.payment_headers[0]

        rec = ok(run_script("reconcile.py", jid, env=env))
        assert rec["found"] is True and rec["order"]["label"] == entry["label"]
        # the chain agrees: the EIP-3009 authorization was used
        assert rec["onchain"]["state"] == "used" and rec["onchain"]["scheme"] == "evm_eip3009"
        assert "authorizationState" in rec["onchain"]["query"]
        assert rec["journal"]["status"] == "settled" and rec["journal"]["payment_header_value"] == "<stored, not shown>"
        lst = ok(run_script("reconcile.py", "--list", env=env))
        assert lst["entries"][0]["id"] == jid and entry["payment_header_value"] not in json.dumps(lst)
        assert before["base"] - balances(sb, w)["base"] == 249600
    finally:
        proxy.stop()


def test_reconcile_resend_returns_the_first_result(make_sandbox, tools, tmp_path):
    """Both answers lost (exit 4); ``reconcile.py --resend`` re-sends the stored payment with the
    same key and the server replays the first result: no second charge, the journal settles."""
    sb = make_sandbox()
    proxy = Proxy(sb.base_url, drop_paid=2)
    try:
        w = tools.fresh_wallet(sb.facilitator, usd=5)
        env = wallet_env(sb, w, tmp_path, COMPUTE_BASE_URL=proxy.url)
        before = balances(sb, w)
        jid = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=env), 4, "payment_outcome_unknown")["error"]["details"]["journal_id"]
        assert before["base"] - balances(sb, w)["base"] == 249600
        # a bearer payment is never sent to another host than the one it was made for
        fail_doc(run_script("reconcile.py", jid, "--resend", env=wallet_env(sb, w, tmp_path)), 2, "base_url_mismatch")
        rec = ok(run_script("reconcile.py", jid, "--resend", env=env))
        assert rec["resend"]["replayed"] is True and rec["journal"]["status"] == "settled"
        assert rec["order"]["id"] and proxy.paid_requests == 3 and len(set(proxy.payment_headers)) == 1
        assert before["base"] - balances(sb, w)["base"] == 249600
        fail_doc(run_script("reconcile.py", jid, "--resend", env=env), 2, "already_settled")
    finally:
        proxy.stop()


# ---- Solana: a missing recipient token account (compute-api.md §13 #14) --------------------------


def _sol(sb, w: dict) -> int:
    return sb.facilitator.chain("solana").sol_balance(w["solana_address"])


def test_missing_recipient_account_is_created_only_on_opt_in(make_sandbox, tools, tmp_path):
    sb = make_sandbox(recipient_atas=False)
    fac = sb.facilitator
    chain = fac.chain("solana")
    payee = fac.payee("solana")
    w = tools.fresh_wallet(fac, usd=10)
    fac.native_fund("solana", w["solana_address"], 10**8)  # 0.1 SOL: fresh wallets hold none
    env = wallet_env(sb, w, tmp_path)
    rent = chain.svm.minimum_balance_for_rent_exemption(165)
    cost = rent + 5_000  # rent-exempt deposit + one signature's fee
    cost_sol = format(Decimal(cost).scaleb(-9).normalize(), "f")
    args = ("provision.py", PLAN, REGION, "--days", "1", "--network", "solana")
    before, sol_before = balances(sb, w), _sol(sb, w)

    # Without the flag: a clear refusal naming the cost and the flag; nothing signed, nothing spent.
    doc = fail_doc(run_script(*args, "--yes", env=env), 3, "recipient_token_account_missing")
    err = doc["error"]
    assert err["details"]["create_total_lamports"] == cost and err["details"]["create_cost_lamports"] == rent
    assert err["details"]["create_total_sol"] == cost_sol and "--create-recipient-account" in err["hint"]
    assert cost_sol in err["hint"]
    assert not chain.has_ata(payee) and _sol(sb, w) == sol_before and balances(sb, w) == before
    assert journal_entries(tmp_path) == []

    # --quote with the flag: the cost is in the terms; nothing is sent.
    q = ok(run_script(*args, "--quote", "--create-recipient-account", env=env))["quote"]
    ra = q["recipient_account"]
    assert q["signed"] is False and q["policy"] == {"ok": True}
    assert ra["exists"] is False and ra["create"] is True and ra["create_total_lamports"] == cost
    assert ra["create_total_sol"] == cost_sol and ra["payer"] == w["solana_address"]
    assert ra["token_account"] == str(chain.ata(payee))
    assert not chain.has_ata(payee) and _sol(sb, w) == sol_before and journal_entries(tmp_path) == []
    # A quote without the flag fails as paying would (exit 3), saying what is missing and how to proceed.
    doc = fail_doc(run_script(*args, "--quote", env=env), 3, "recipient_token_account_missing")
    q = doc["error"]["details"]["quote"]
    assert q["signed"] is False and q["recipient_account"]["exists"] is False and q["recipient_account"]["create"] is False

    # Not at a terminal, the flag still needs --yes.
    fail_doc(run_script(*args, "--create-recipient-account", env=env, input=""), 3, "confirmation_required")
    assert not chain.has_ata(payee) and _sol(sb, w) == sol_before

    # With the flag and --yes: created (exactly rent + fee from the payer's SOL), then paid.
    payee_before = fac.balance_of("solana", payee)
    doc = ok(run_script(*args, "--create-recipient-account", "--yes", env=env))
    pay = doc["payment"]
    created = pay["recipient_account_created"]
    assert chain.has_ata(payee) and created["token_account"] == str(chain.ata(payee))
    assert sol_before - _sol(sb, w) == cost == created["total_lamports"]
    amount = int(pay["amount_atomic"])
    assert before["solana"] - balances(sb, w)["solana"] == amount
    assert fac.balance_of("solana", payee) - payee_before == amount
    (entry,) = journal_entries(tmp_path)
    assert entry["status"] == "settled" and entry["recipient_account_created"]["signature"] == created["signature"]

    # A second provision finds the account and creates nothing (no SOL spent).
    sol_mid = _sol(sb, w)
    doc = ok(run_script(*args, "--create-recipient-account", "--yes", env=env))
    assert "recipient_account_created" not in doc["payment"] and _sol(sb, w) == sol_mid


def test_create_recipient_account_needs_enough_sol(make_sandbox, tools, tmp_path):
    sb = make_sandbox(recipient_atas=False)
    fac = sb.facilitator
    w = tools.fresh_wallet(fac, usd=10)
    fac.native_fund("solana", w["solana_address"], 1_000_000)  # less than rent + fee
    env = wallet_env(sb, w, tmp_path)
    before = balances(sb, w)
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--network", "solana", "--yes",
                          "--create-recipient-account", env=env), 3, "insufficient_sol")
    assert doc["error"]["details"]["payer_sol_lamports"] == 1_000_000
    assert not fac.chain("solana").has_ata(fac.payee("solana"))
    assert _sol(sb, w) == 1_000_000 and balances(sb, w) == before and journal_entries(tmp_path) == []


def test_created_account_is_journalled_even_if_the_payment_is_not_signed(make_sandbox, tools, tmp_path):
    from x402_compute.api.auth import AuthResolver
    from x402_compute.api.client import ComputeClient
    from x402_compute.config import load_settings
    from x402_compute.errors import ComputeError
    from x402_compute.payments.flow import PaidCall, PaymentFlow
    from x402_compute.payments.options import Signers
    from x402_compute.payments.policy import Limits

    sb = make_sandbox(recipient_atas=False)
    w = tools.fresh_wallet(sb.facilitator, usd=10)
    sb.facilitator.native_fund("solana", w["solana_address"], 10**8)
    settings = load_settings(environ=wallet_env(sb, w, tmp_path))

    def broken_signer(offer, settings):
        raise ComputeError("signer unavailable", code="signer_failed")

    flow = PaymentFlow(settings, AuthResolver(settings), confirm=lambda q, d: None, signers=Signers(x402=broken_signer),
                       create_recipient_account=True)
    call = PaidCall(kind="topup", path="/compute/credits/topup", body={"amount": 1, "network": "solana"},
                    network="solana", limits=Limits(settings.max_spend_usd, "test", 1_000_000, "t"),
                    terms={"summary": "t"}, journal_id="ab" * 16, auth_on_retry=True, what="Top-up")
    with pytest.raises(ComputeError) as e:
        ComputeClient(settings).drive(flow.steps(call))
    created = e.value.details["recipient_account_created"]
    assert sb.facilitator.chain("solana").has_ata(sb.facilitator.payee("solana"))
    (entry,) = journal_entries(tmp_path)
    assert entry["status"] == "not_sent" and entry["recipient_account_created"] == created
    assert "payment_header_value" not in entry
    fail_doc(run_script("reconcile.py", entry["id"], "--resend", env=wallet_env(sb, w, tmp_path)), 2, "nothing_to_resend")


def test_megaeth_permit2_with_gas_sponsoring_settles_through_the_proxy(make_sandbox, tools, tmp_path):
    """A v2 sandbox in Permit2 mode advertises eip2612GasSponsoring; a payer with no Permit2
    allowance signs the Permit2 transfer plus an ERC-2612 permit for Permit2, and the facilitator
    settles both through our proxy contract: the money moves by exactly the amount."""
    import base64

    sb = make_sandbox(x402_version=2, permit2=True)
    w = tools.fresh_wallet(sb.facilitator, usd=10)
    env = wallet_env(sb, w, tmp_path)
    q = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--quote", "--network", "megaeth", env=env))["quote"]
    assert q["network"] == "megaeth" and q["signed"] is False
    payee = sb.facilitator.payee("megaeth")
    before, payee_before = balances(sb, w)["megaeth"], sb.facilitator.balance_of("megaeth", payee)
    doc = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "megaeth", env=env))
    amount = int(doc["payment"]["amount_atomic"])
    assert amount == 249600 * 10**12
    assert before - balances(sb, w)["megaeth"] == amount
    assert sb.facilitator.balance_of("megaeth", payee) - payee_before == amount
    (entry,) = journal_entries(tmp_path)
    sent = json.loads(base64.b64decode(entry["payment_header_value"]))
    assert sent["accepted"]["extra"]["assetTransferMethod"] == "permit2" and "permit2Authorization" in sent["payload"]
    info = sent["extensions"]["eip2612GasSponsoring"]["info"]
    assert info["spender"].lower() == "0x000000000022d473030f116ddee9f6b43ac78ba3" and info["from"].lower() == w["evm_address"].lower()
    assert "schema" in sent["extensions"]["eip2612GasSponsoring"]  # the server's schema is echoed, not dropped


def test_instance_paid_by_the_solana_wallet_is_managed_with_it(sandbox, wallet, tmp_path):
    """With both keys configured, management signs with the EVM key by default, but an x402
    provision paid on Solana belongs to the Solana payer (the paid retry carries no auth). Every
    script must find and manage it anyway: wait, details, list, extend, destroy."""
    env = wallet_env(sandbox, wallet, tmp_path)  # PRIVATE_KEY and SOLANA_SECRET_KEY both set
    doc = ok(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "solana",
                        "--wait", "--wait-timeout", "60", "--poll-interval", "0.3", env=env))
    iid = doc["order"]["id"]
    assert doc["order"]["state"] == "running" and doc["payment"]["payer"] == wallet["solana_address"]
    owners = json.loads((tmp_path / "state" / "instance-owners.json").read_text())
    assert owners[iid] == {"chain": "solana", "address": wallet["solana_address"]}
    assert ok(run_script("instance_details.py", iid, env=env))["instance"]["id"] == iid
    assert iid in {i["id"] for i in ok(run_script("list_instances.py", env=env))["instances"]}
    ext = ok(run_script("extend_instance.py", iid, "--hours", "24", "--yes", env=env))
    assert ext["payment"]["network"] == "base"
    assert ok(run_script("destroy_instance.py", iid, "--yes", env=env))
    # An EVM-only identity does not see it: the owner really is the Solana wallet.
    evm_only = {k: v for k, v in env.items() if not k.startswith("SOLANA_")}
    ids = {i["id"] for i in ok(run_script("list_instances.py", "--all", env=evm_only))["instances"]}
    assert iid not in ids


@pytest.mark.parametrize("flag, value", [("--poll-interval", "0"), ("--poll-interval", "-1"), ("--wait-timeout", "0")])
def test_wait_options_are_checked_before_paying(tmp_path, flag, value):
    # A closed port: a script that sent anything would fail with network_error (exit 1), so exit 2
    # proves the check ran before the 402 probe, let alone a payment. (Over MCP a zero interval
    # used to poll the API in a tight loop after the payment.)
    env = clean_env({"COMPUTE_BASE_URL": closed_port_url(), "PRIVATE_KEY": "0x" + "11" * 32}, home=tmp_path)
    code, doc, _ = run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--wait", flag, value, env=env)
    assert code == 2 and doc["error"]["code"] == "usage_error" and flag in doc["error"]["message"]
    assert not journal_entries(tmp_path)
