"""Arc (x402 network "arc", eip155:5042, USDC's ERC-20 interface, EIP-3009), the first network added
by the recipe in references/layout.md: the real scripts against the session sandbox, payments settled
on its Arc chain, each authorization recovered by eth-account from the Arc facts written out here (not
from the client's table) and read back on chain through web3.

Arc takes direct payments of 5 USD or more: $0.0104/h x 504 h (21 days) = 5.2416 USD is above it,
one day (0.2496 USD) below."""

from __future__ import annotations

import base64
import json

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from tests.helpers import PLAN, REGION, Proxy, fail_doc, journal_entries, ok, run_script, wallet_env
from tests.oracle.builders import EIP712_DOMAIN, TRANSFER_WITH_AUTHORIZATION

ARC_USDC = "0x3600000000000000000000000000000000000000"
ARC_DOMAIN = {"name": "USDC", "version": "2", "chainId": 5042, "verifyingContract": ARC_USDC}
DAYS_ABOVE_MINIMUM = "21"
AMOUNT = 5_241_600  # 0.0104 USD/h x 504 h, in USDC's 6 decimals
TOKEN_ABI = [
    {"type": "function", "name": "authorizationState", "stateMutability": "view",
     "inputs": [{"name": "a", "type": "address"}, {"name": "n", "type": "bytes32"}], "outputs": [{"type": "bool"}]},
    {"type": "function", "name": "name", "stateMutability": "view", "inputs": [], "outputs": [{"type": "string"}]},
    {"type": "function", "name": "version", "stateMutability": "view", "inputs": [], "outputs": [{"type": "string"}]},
]


def recovered_payer(entry: dict) -> tuple[str, dict]:
    """Who signed the journalled payment, recovered by eth-account over Arc's EIP-712 domain."""
    sent = json.loads(base64.b64decode(entry["payment_header_value"]))
    assert sent["network"] == "arc" and sent["scheme"] == "exact"
    auth = sent["payload"]["authorization"]
    typed = {
        "types": {"EIP712Domain": EIP712_DOMAIN, "TransferWithAuthorization": TRANSFER_WITH_AUTHORIZATION},
        "primaryType": "TransferWithAuthorization",
        "domain": ARC_DOMAIN,
        "message": {**auth, "value": int(auth["value"]), "validAfter": int(auth["validAfter"]),
                    "validBefore": int(auth["validBefore"])},
    }
    return Account.recover_message(encode_typed_data(full_message=typed), signature=sent["payload"]["signature"]), auth


def test_provision_extend_and_topup_settle_on_arc(sandbox, tools, tmp_path):
    fac = sandbox.facilitator
    w = tools.fresh_wallet(fac, usd=20)
    env = wallet_env(sandbox, w, tmp_path)
    payee = fac.payee("arc")
    before, payee_before = fac.balance_of("arc", w["evm_address"]), fac.balance_of("arc", payee)

    doc = ok(run_script("provision.py", PLAN, REGION, "--days", DAYS_ABOVE_MINIMUM, "--yes", "--network", "arc", env=env))
    pay = doc["payment"]
    assert (pay["network"], pay["asset"], int(pay["amount_atomic"])) == ("arc", ARC_USDC, AMOUNT)
    iid = doc["order"]["id"]
    ext = ok(run_script("extend_instance.py", iid, "--hours", "504", "--yes", "--network", "arc", env=env))
    assert ext["payment"]["network"] == "arc" and int(ext["payment"]["amount_atomic"]) == AMOUNT
    top = ok(run_script("credits_topup.py", "--amount", "5", "--yes", "--network", "arc", env=env))
    assert top["payment"]["network"] == "arc" and int(top["payment"]["amount_atomic"]) == 5_000_000
    assert top["credits"]["new_balance"] == "5.00"

    spent = 2 * AMOUNT + 5_000_000
    assert before - fac.balance_of("arc", w["evm_address"]) == spent == fac.balance_of("arc", payee) - payee_before

    w3 = Web3(Web3.HTTPProvider(env["ARC_RPC_URL"]))
    assert w3.eth.chain_id == 5042
    token = w3.eth.contract(address=ARC_USDC, abi=TOKEN_ABI)
    assert (token.functions.name().call(), token.functions.version().call()) == ("USDC", "2")
    entries = journal_entries(tmp_path)
    assert len(entries) == 3 and {e["status"] for e in entries} == {"settled"}
    for e in entries:
        payer, auth = recovered_payer(e)
        assert payer == w["evm_address"] and auth["to"] == payee
        assert token.functions.authorizationState(payer, bytes.fromhex(auth["nonce"][2:])).call() is True

    # The rolling budget counts Arc payments like any other, in micro-dollars.
    budget = ok(run_script("budget.py", env=env))
    arc_rows = [p for p in budget["payments"] if p["network"] == "arc"]
    assert len(arc_rows) == 3 and all(p["counts"] for p in arc_rows)
    assert budget["budget"]["spent_usd"] == "15.4832" and "arc" in budget["limits"]["allowed_networks"]


def test_below_the_arc_minimum_nothing_is_signed(sandbox, tools, tmp_path):
    fac = sandbox.facilitator
    w = tools.fresh_wallet(fac, usd=10)
    env = wallet_env(sandbox, w, tmp_path)
    before = fac.balance_of("arc", w["evm_address"])
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "arc", env=env), 3, "below_network_minimum")
    err = doc["error"]
    assert err["details"]["minimum_usd"] == "5" and err["details"]["amount_usd"] == "0.2496"
    assert "--use-credits" in err["hint"] and "credits_topup.py" in err["hint"]
    # How long an order would reach the minimum, as the human's option (0.0104 USD/h: 481 h).
    assert err["details"]["hours_for_minimum"] == 481 and "at least 481 h" in err["hint"] and "human" in err["hint"]
    fail_doc(run_script("credits_topup.py", "--amount", "4.99", "--yes", "--network", "arc", env=env), 3, "below_network_minimum")
    assert journal_entries(tmp_path) == [] and fac.balance_of("arc", w["evm_address"]) == before


def test_allowed_networks_knows_arc(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=10)
    only_arc = wallet_env(sandbox, w, tmp_path, COMPUTE_ALLOWED_NETWORKS="arc")
    doc = fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", "--network", "base", env=only_arc), 3, "network_not_allowed")
    assert doc["error"]["details"]["allowed"] == ["arc"]
    # With only Arc allowed, an EVM wallet's default network is Arc, and its minimum still holds.
    fail_doc(run_script("provision.py", PLAN, REGION, "--days", "1", "--yes", env=only_arc), 3, "below_network_minimum")
    no_arc = wallet_env(sandbox, w, tmp_path, COMPUTE_ALLOWED_NETWORKS="base,solana")
    fail_doc(run_script("provision.py", PLAN, REGION, "--days", DAYS_ABOVE_MINIMUM, "--yes", "--network", "arc", env=no_arc), 3, "network_not_allowed")
    assert journal_entries(tmp_path) == []


def test_reconcile_asks_the_arc_chain(sandbox, tools, tmp_path):
    """The answer to a settled Arc payment is lost on the way back (exit 4); reconcile.py asks the Arc
    chain's token whether the authorization was used, over ARC_RPC_URL."""
    w = tools.fresh_wallet(sandbox.facilitator, usd=10)
    proxy = Proxy(sandbox.base_url, drop_paid=2)
    try:
        env = wallet_env(sandbox, w, tmp_path, COMPUTE_BASE_URL=proxy.url)
        jid = fail_doc(run_script("provision.py", PLAN, REGION, "--days", DAYS_ABOVE_MINIMUM, "--yes", "--network", "arc", env=env),
                       4, "payment_outcome_unknown")["error"]["details"]["journal_id"]
    finally:
        proxy.stop()
    env = wallet_env(sandbox, w, tmp_path)
    rec = ok(run_script("reconcile.py", jid, env=env))
    chain = rec["onchain"]
    assert chain["scheme"] == "evm_eip3009" and chain["state"] == "used" and ARC_USDC in chain["query"]
    assert rec["journal"]["status"] == "settled"


def test_doctor_lists_arc(sandbox, tools, tmp_path):
    w = tools.fresh_wallet(sandbox.facilitator, usd=1)
    code, doc, err = run_script("doctor.py", env=wallet_env(sandbox, w, tmp_path))
    (payment,) = [c for c in doc["checks"] if c["name"] == "payment"]
    assert payment["status"] == "ok" and "arc" in payment["data"]["networks"], (code, payment)
    assert "arc (at least 5 USD a payment)" in payment["detail"]
