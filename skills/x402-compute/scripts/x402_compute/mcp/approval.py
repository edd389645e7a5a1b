"""Payment approval: what the human is shown (the quote's terms, cleaned of control characters) and
what an approval grants."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ..money import atomic_to_usd, plain
from ..networks import NETWORKS
from ..payments.policy import STRIPE_CURRENCY_DECIMALS, PayeePins

APPROVAL_TIMEOUT = 600.0  # seconds a payment waits for the human's answer before it is dropped


APPROVAL_KEY = "approve_payment"


APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve this payment", "description": "Sign and send the payment shown above", "default": False},
    },
    "required": ["approve"],
}


SPENDS_META_KEY = "x402-compute/spends"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean(text: Any) -> str:
    """Server-supplied text shown to the human in the client's dialog: no control characters."""
    return _CONTROL.sub("?", str(text))


def approved_usd(terms: dict) -> Decimal | None:
    for key in ("amount_usd", "total_usd"):
        try:
            if terms.get(key) is not None:
                return Decimal(str(terms[key]))
        except InvalidOperation:
            return None
    return None


def quote_terms(fields: dict, payee_status: str | None = None) -> dict:
    """A recorded quote's pinned fields (payments.quotes) in the terms shape approval_message reads."""
    net = NETWORKS.get(fields.get("network") or "")
    atomic = str(fields.get("amount_atomic") or "")
    # The amount the quote pins, in its own units (a card charge: the currency's minor units),
    # never the catalog total beside it: that is what is paid, so that is what the human sees.
    decimals, symbol = (net.decimals, net.symbol) if net is not None else (None, None)
    if fields.get("method") == "stripe" and fields.get("asset") in STRIPE_CURRENCY_DECIMALS:
        decimals, symbol = STRIPE_CURRENCY_DECIMALS[fields["asset"]], str(fields["asset"]).upper()
    amount = plain(atomic_to_usd(int(atomic), decimals)) if decimals is not None and atomic.isdigit() else None
    what = " ".join(str(fields[k]) for k in ("action", "plan", "instance_id") if fields.get(k))
    where = f" in {fields['region']}" if fields.get("region") else ""
    hours = f" for {fields['hours']} h" if fields.get("hours") else ""
    return {
        "action": fields.get("action"),
        "summary": f"{what}{where}{hours}",
        "amount_usd": amount,
        "total_usd": fields.get("total_usd"),
        "asset_symbol": symbol,
        "network": fields.get("network") or fields.get("method"),
        "payee": fields.get("payee"),
        "payee_status": payee_status or "unchecked",
        "method": fields.get("method"),
        "login_key": fields.get("login_key"),
        "user_data_sha256": fields.get("user_data_sha256"),
    }


def pin_status(state_dir, fields: dict) -> str | None:
    """Whether a quote's payee is the one pinned for its network now: pinned, changed or new."""
    network, payee = fields.get("network"), fields.get("payee")
    if not isinstance(network, str) or not isinstance(payee, str):
        return None
    rec = PayeePins(state_dir).load().get(network)
    old = rec.get("pay_to") if isinstance(rec, dict) else rec
    if not isinstance(old, str):
        return "new"
    return "pinned" if PayeePins._same(network, old, payee) else "changed"


def decision_reason(code: str, details: Any) -> str:
    """What the human is asked to decide, in a few words, from the refusal's details."""
    d = details if isinstance(details, dict) else {}
    if code == "payee_changed":
        return f"the payee for {d.get('network')} changed from {d.get('pinned')} to {d.get('offered')}"
    if code == "recipient_token_account_missing":
        return f"it first creates the payee's token account at your wallet's cost ({d.get('create_total_sol')} SOL)"
    return "its price could not be checked against the catalog"


def grant_key(terms: dict) -> tuple:
    """What the human approved, to recognise the same payment when it comes to be paid."""
    payee = terms.get("payee")
    return (approved_usd(terms), terms.get("network"), payee.lower() if isinstance(payee, str) else payee)


def argv_with(argv: list[str], extra: list[str]) -> list[str]:
    """``argv`` with ``extra`` options added before the positionals' ``--``."""
    if "--" in argv:
        i = argv.index("--")
        return [*argv[:i], *extra, *argv[i:]]
    return [*argv, *extra]


def approval_message(question: str, terms: dict, own_key: str | None = None) -> str:
    """What the human approves: what, how long, amount, network, payee, budget left; for a new
    machine also the SSH key that gets root on it (``own_key``: the skill's own key's fingerprint)
    and the digest of the user data it runs at first boot."""
    lines = [question]

    def add(label: str, value: Any) -> None:
        if value not in (None, ""):
            lines.append(f"{label}: {value}")

    add("What", terms.get("summary"))
    add("Hours", terms.get("hours"))
    amount = terms.get("amount_usd") or terms.get("total_usd")
    add("Amount", f"{amount} {terms.get('asset_symbol') or 'USD'}" if amount is not None else None)
    add("Network", terms.get("network") or terms.get("method"))
    if terms.get("payee"):
        add("Payee", f"{terms['payee']} ({terms.get('payee_status') or 'unchecked'})")
    budget = terms.get("budget")
    if isinstance(budget, dict) and budget.get("remaining_usd") is not None:
        add("Budget left after it", f"{budget['remaining_usd']} of {budget.get('limit_usd')} USD per {budget.get('window')}")
    elif isinstance(budget, dict):
        add("Budget", "off (COMPUTE_BUDGET_USD=off)")
    if terms.get("action") == "provision" or terms.get("login_key") or terms.get("user_data_sha256"):
        key = terms.get("login_key")
        whose = " (this skill's own key)" if key and key == own_key else " (a key given in the call, not this skill's own)" if key else ""
        add("Root login", f"SSH key {key}{whose}" if key else "no SSH key (a one-time root password)")
        if terms.get("user_data_sha256"):
            add("User data run at first boot", f"sha256 {terms['user_data_sha256']}")
    ra = terms.get("recipient_account")
    if isinstance(ra, dict) and ra.get("create"):
        add("Also", f"creates the payee's token account at your cost of {ra.get('create_total_sol')} SOL")
    lines.append("Approve to sign and send this payment; decline and nothing is signed.")
    return _clean("\n".join(str(x) for x in lines))
