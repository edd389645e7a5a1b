"""The paid commands (provision, extend, credits top-up): their shared options, the
checks done before any request, the call each one makes, and the JSON they print.

The scripts stay thin: they add their own positional arguments and call one function here.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import time
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from .. import aimachines, cli, cmdline, plans, validate
from ..api.auth import missing_api_key, signature_auth
from ..cli import Output
from ..errors import EXIT_PAYMENT_UNKNOWN, ComputeError, ConfigError, ConfirmationRequired, Interrupted, PolicyError, UsageError
from ..instances import iso, parse_time, ssh_fields, summary, unwrap_order
from ..money import plain, to_decimal, usd, usd_to_micros
from ..networks import X402_NETWORKS
from ..payments.journal import new_id
from ..payments.policy import Limits, check_order, default_os_id
from ..payments.quotes import Quotes
from ..ssh import keys as sshkeys
from ..ssh import run as sshrun
from ..ssh import wait
from ..ssh.keys import ensure_auto_key, line_fingerprint
from ..ssh.wait import wait_for_instance

DEFAULT_WAIT_TIMEOUT = wait.DEFAULT_TIMEOUT
DEFAULT_POLL_INTERVAL = wait.DEFAULT_INTERVAL


# -- options ----------------------------------------------------------------------------------


def add_payment_options(p: argparse.ArgumentParser, *, credits: bool = True, unresolved: bool = True) -> None:
    g = p.add_argument_group("payment")
    g.add_argument("--network", choices=X402_NETWORKS, help="pay on this network (default: base with an EVM key, solana with only a Solana key)")
    g.add_argument(
        "--pay",
        choices=("auto", "x402", "mpp", "stripe"),
        default="auto",
        help="payment protocol: x402, or mpp (Tempo USDC.e over WWW-Authenticate: Payment; needs an EVM wallet (PRIVATE_KEY or an OWS vault) and Python 3.11+), "
        "or stripe (an MPP card charge paid with a Stripe Shared Payment Token from STRIPE_SECRET_KEY and STRIPE_PAYMENT_METHOD; never chosen by auto); "
        "auto = x402 on the network, else MPP when it is the only offer your wallet can pay and --network was not named",
    )
    g.add_argument("--max-usd", metavar="USD", help="refuse to sign more than this (default: COMPUTE_MAX_SPEND_USD, else 25); the human's figure, never raised by an agent")
    g.add_argument("--quote", action="store_true", help="show the price and payment terms with a quote_id (valid 10 minutes); sign and send nothing. Show it to the human")
    g.add_argument("--confirm-quote", metavar="QUOTE_ID",
                   help="pay exactly the quote the human approved, once: refused (quote_changed) if the fresh terms differ in any way, quote_used if it paid already")
    g.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help="the human's own shortcut when they run the command themselves: pay without asking (an agent quotes, shows the "
        "human the quote and pays it with --confirm-quote once they approve; outside a terminal one of the two is needed, "
        "and with COMPUTE_REQUIRE_QUOTE=1 only --confirm-quote pays there)",
    )
    g.add_argument("--accept-payee-change", action="store_true", help="the human's decision only: accept a payee that differs from the one pinned for this network")
    g.add_argument(
        "--create-recipient-account",
        action="store_true",
        help="Solana only: if the payee has no token account for the asset, create it first with a separate "
        "transaction your Solana wallet signs and pays (rent-exempt deposit + fee, about 0.00204 SOL); the cost "
        "is shown in the quote and confirmed before anything is signed. Without it a missing account is an error.",
    )
    if credits:
        g.add_argument("--use-credits", action="store_true", help="pay from prepaid credits (needs management auth)")
    if not unresolved:  # keepalive.py: an unattended run always stops at an unknown outcome
        return
    g.add_argument(
        "--ignore-unresolved",
        action="store_true",
        help="the human's decision only: pay even though an earlier payment for the same order has an unknown outcome (exit 4), after reconcile.py could not settle it and they checked the wallet",
    )


def add_duration_options(p: argparse.ArgumentParser, *, what: str) -> None:
    g = p.add_argument_group(f"{what} (required; minimum 24 hours)").add_mutually_exclusive_group(required=True)
    g.add_argument("--hours", type=int, metavar="N")
    g.add_argument("--days", type=int, metavar="N", help="N × 24 hours")
    g.add_argument("--months", type=int, metavar="N", help="N × 720 hours")


def add_wait_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("waiting")
    g.add_argument("--wait", action="store_true", help="block until the instance is running with an IP")
    g.add_argument("--wait-ssh", action="store_true", help="also wait until SSH answers with a banner (implies --wait)")
    g.add_argument("--wait-timeout", type=float, default=DEFAULT_WAIT_TIMEOUT, metavar="SECONDS", help="give up waiting after this long (default 600)")
    g.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL, metavar="SECONDS", help="seconds between status checks (default 5)")
    add_private_address_option(g)


def add_private_address_option(g) -> None:
    """--allow-private-address: the human's, never a tool input (see mcp.tools.SERVER_OPTIONS)."""
    g.add_argument("--allow-private-address", action="store_true",
                   help="a human's decision only: with --wait-ssh, connect even though the server gave a loopback, private, link-local, "
                   "CGNAT, multicast or reserved address (allowed without it when the API base URL is itself loopback, as for the sandbox)")


def ssh_address_check(ctx):
    """What --wait-ssh connects to, checked before any socket (``ssh.run.checked_address``)."""
    allow = bool(getattr(ctx.args, "allow_private_address", False))
    return lambda host, port: sshrun.checked_address(host, port, base_url=ctx.settings.base_url, allow_private=allow)


class _Once(argparse.Action):
    """An option that may be given once: ``--mode private --mode grid`` is refused (argparse would
    silently keep the last), since the two modes buy different things."""

    def __call__(self, parser, namespace, values, option_string=None):
        old = getattr(namespace, self.dest, None)
        if old is not None and old != values:
            parser.error(f"{option_string} was given twice ({old} and {values}): an AI Machine is either private or grid, not both")
        setattr(namespace, self.dest, values)


def add_ai_machine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("AI Machine (a GPU plan that comes up serving an LLM; see references/api-reference.md)")
    g.add_argument("--model-id", metavar="ID", help="the LLM the machine serves (e.g. llama-3.2-3b); needs --mode")
    g.add_argument(
        "--mode",
        choices=("private", "grid"),
        action=_Once,
        help="private: your own OpenAI-compatible endpoint (http://<ip>:8080/v1, plain http), its API key saved 0600 in the state "
        "folder, paid by the wallet (credits are refused); grid: the machine serves the provider's inference grid "
        "(the paying wallet needs 50,000 SGL staked; paid only by x402 on solana, the default network in this mode); needs --model-id",
    )


def ai_machine_request(a, plan: dict | None, plan_id: str) -> tuple[str, str] | None:
    """(model id, mode) of an AI Machine order, checked before anything is sent: both flags or
    neither, a GPU plan, and no credits for a private machine (the service takes only a wallet
    payment for it). None for a plain machine."""
    model, mode = getattr(a, "model_id", None), getattr(a, "mode", None)
    if model is None and mode is None:
        return None
    if model is None or mode is None:
        raise UsageError("--model-id and --mode go together: an AI Machine needs the model and the mode.",
                         hint="E.g. --model-id llama-3.2-3b --mode private.")
    model = aimachines.model_id(model)
    if mode == "private" and a.use_credits:
        raise UsageError(
            "A private AI Machine cannot be paid with credits: the service rejects use_credits for ai_machine. Nothing was sent.",
            code="credits_not_accepted",
            hint="Drop --use-credits to pay from the wallet (x402 or MPP).",
        )
    if plan is not None and not plans.is_gpu(plan):
        raise UsageError(
            f"Plan {plan_id} has no GPU: an AI Machine runs on a GPU plan. Nothing was sent.",
            code="not_a_gpu_plan",
            hint=f"Pick a GPU plan: {cmdline.command('browse_plans.py', '--gpu')}.",
        )
    return model, mode


def grid_payment(a, settings):
    """What a grid AI Machine (``--mode grid``: ``deploy_node``) must be paid with, checked before
    anything is sent: the service takes only an x402 payment on Solana for it (compute-api.md), so
    ``--pay mpp``/``stripe``, another ``--network``, no Solana wallet, or Solana not allowed here
    would be refused (or, the network not offered, fail) after the request. Returns the Solana
    wallet's signature auth that the unpaid request carries (None with an API key, which already
    names the account, and with credits, which have no unpaid request): the paying wallet needs
    50,000 SGL staked, which only the service can tell, and it tells before the 402 only when the
    request names that wallet; sent unsigned, it learns the wallet from the payment and refuses after
    settling. With ``COMPUTE_AUTH_MODE=api-key`` and no key, the api-key mode's config error, before
    anything is sent: never a wallet-signed probe in its place. Nothing in this client reads a stake."""
    if getattr(a, "mode", None) != "grid" or getattr(a, "model_id", None) is None or a.use_credits:
        return None  # credits: the sources disagree on whether grid takes them; the server decides before spending
    wrong = [f for f, bad in ((f"--pay {a.pay}", a.pay in ("mpp", "stripe")), (f"--network {a.network}", a.network not in (None, "solana"))) if bad]
    if wrong:
        raise UsageError(
            f"A grid AI Machine (--mode grid) is paid only by x402 on Solana: the service refuses {' and '.join(wrong)} for it. Nothing was sent.",
            code="grid_needs_solana",
            details={"mode": "grid", "given": wrong, "pays_with": "x402 on solana"},
            hint="Drop " + " and ".join(w.split()[0] for w in wrong) + " (grid mode pays on solana from the Solana wallet), or use --mode private.",
        )
    if "solana" not in settings.allowed_networks:
        raise PolicyError(
            f"A grid AI Machine is paid only on solana, which is not allowed here (COMPUTE_ALLOWED_NETWORKS={','.join(settings.allowed_networks)}). Nothing was sent.",
            code="network_not_allowed",
            details={"network": "solana", "allowed": list(settings.allowed_networks), "mode": "grid"},
            hint="Ask the human (never change COMPUTE_ALLOWED_NETWORKS yourself), or use --mode private on an allowed network.",
        )
    if not (settings.has_solana_key or settings.ows_wallet):
        raise ConfigError(
            "A grid AI Machine is paid only by x402 on Solana, and no Solana wallet is configured. Nothing was sent.",
            code="solana_wallet_required",
            hint="Set SOLANA_SECRET_KEY (or an OWS wallet with a Solana account) to the wallet with the 50,000 SGL stake, or use --mode private.",
        )
    if settings.api_key and settings.auth_mode in ("auto", "api-key"):
        return None
    if settings.auth_mode == "api-key":  # the human chose the key over the wallet: no wallet-signed probe instead
        raise missing_api_key()
    return signature_auth(settings, "solana")


def duration_hours(args) -> int:
    if args.hours is not None:
        h = args.hours
    elif args.days is not None:
        h = args.days * 24
    else:
        h = args.months * 720
    return validate.hours(h)


def default_network(settings) -> str:
    """The configured wallet decides: an EVM key pays on base, only a Solana key on solana; when
    COMPUTE_ALLOWED_NETWORKS excludes that one, the first allowed network the wallet can pay on."""
    evm = settings.has_evm_key or bool(settings.ows_wallet)
    sol = settings.has_solana_key or bool(settings.ows_wallet)
    preferred = "base" if settings.has_evm_key or (settings.ows_wallet and not settings.has_solana_key) else ("solana" if settings.has_solana_key else "base")
    allowed = [n for n in settings.allowed_networks if n in X402_NETWORKS]
    if preferred in allowed or not allowed:
        return preferred
    payable = [n for n in allowed if (sol if n == "solana" else evm)]
    return (payable or allowed)[0]


def read_ssh_key(args, ctx=None) -> str | None:
    """The public key to send: ``--ssh-public-key``, ``--ssh-key-file``, or with ``--ssh-key auto``
    the skill's own key pair (created once in the state folder; ``ctx.auto_ssh_key`` then says
    which, for the ``ssh`` blocks and the output)."""
    given = [f for f, v in (("--ssh-key auto", getattr(args, "ssh_key", None)), ("--ssh-public-key", getattr(args, "ssh_public_key", None)),
                            ("--ssh-key-file", getattr(args, "ssh_key_file", None))) if v]
    if len(given) > 1:
        raise UsageError(f"Give one of --ssh-key auto, --ssh-public-key or --ssh-key-file, not {' and '.join(given)}.")
    if getattr(args, "ssh_key", None) == "auto":
        key = ensure_auto_key(ctx.state)
        ctx.auto_ssh_key = key
        if key.created:
            ctx.progress(f"Created the skill's SSH key {key.private_key_file} ({key.fingerprint}); its public key goes to the instance")
        return key.public_key
    text = args.ssh_public_key
    if args.ssh_key_file:
        path = Path(args.ssh_key_file).expanduser()
        try:
            text = path.read_text()
        except OSError as e:
            raise UsageError(f"Cannot read SSH key file {path}: {e.strerror}.") from None
    if text is None:
        return None
    text = text.strip()
    if "PRIVATE KEY" in text:
        raise UsageError("That is a private key. Pass the public key (the .pub file).", code="private_key_given")
    if not text.startswith(("ssh-", "ecdsa-", "sk-")) or len(text.split()) < 2:
        raise UsageError("The SSH public key does not look like one (expected e.g. 'ssh-ed25519 AAAA... comment').")
    return text


def ssh_block_for(ctx, order: dict) -> dict | None:
    """The order's ``ssh`` block; with ``--ssh-key auto`` the instance is recorded as holding the
    skill's key (before it has an IP, so later scripts know too) and the block says ``-i``."""
    key = getattr(ctx, "auto_ssh_key", None)
    if key is not None and isinstance(order.get("id"), str):
        try:
            sshkeys.remember(ctx.state, order["id"], key)
        except (OSError, ComputeError) as e:  # the machine is paid for: a note, never a failure that hides it
            ctx.progress(f"warning: could not record that {order['id']} uses {key.private_key_file}: {e}; log in with ssh -i {key.private_key_file}")
    return sshkeys.ssh_block_for(ctx.state, order)


def ssh_out(ctx, order: dict) -> dict:
    """``ssh`` (as ``ssh_block_for``) and ``ssh_unavailable``: why there is no block (null when there is one)."""
    block = ssh_block_for(ctx, order)
    return {"ssh": block, "ssh_unavailable": None if block else ssh_fields(order)["ssh_unavailable"]}


def _journal_id() -> str:
    return new_id()


def _approved_quote(ctx) -> dict | None:
    """The recorded quote named by --confirm-quote; and COMPUTE_REQUIRE_QUOTE: outside a terminal,
    --yes alone does not pay. Checked before any request."""
    a = ctx.args
    if a.quote and a.confirm_quote:
        raise UsageError("--quote and --confirm-quote contradict each other.", hint="Quote first, then pay with --confirm-quote <quote_id>.")
    if a.confirm_quote:
        quotes = Quotes(ctx.settings)
        rec = quotes.load(a.confirm_quote)
        quotes.require_cap(rec, ctx.settings)
        return rec
    if ctx.settings.require_quote and not a.quote and not ctx.interactive():
        raise PolicyError(
            "COMPUTE_REQUIRE_QUOTE=1: outside a terminal only an approved quote is paid. Nothing was sent.",
            code="quote_required",
            hint="Run the same command with --quote, show the quote to the human, and pay with --confirm-quote <quote_id> once they approve.",
        )
    return None


def _confirm_payment(ctx, question: str, details) -> None:
    """The terminal's question, or outside a terminal a refusal that shows the safe path: the
    approval of a payment is the human's, so the hint leads to a quote they see, not to --yes."""
    try:
        ctx.confirm(question, details=details)
    except ConfirmationRequired as e:
        if e.code != "confirmation_required":  # "cancelled": the human said no at the prompt
            raise
        raise ConfirmationRequired(
            f"{question} Not at a terminal, so nothing was signed: a payment needs the human's approval.",
            details=details,
            hint="Re-run with --quote, show the quote to the human, and once they approve pay exactly it with "
            "--confirm-quote <quote_id>. --yes is the human's own shortcut when they run the command themselves.",
        ) from None


def _flow_options(ctx, approved: dict | None = None) -> dict:
    a = ctx.args
    pay = getattr(a, "pay", None)
    if pay in ("mpp", "stripe") and a.network is not None:
        # Otherwise --network base --pay mpp would quietly pay on Tempo (or by card), not on Base.
        rail = "MPP always pays USDC.e on Tempo" if pay == "mpp" else "--pay stripe pays by card"
        raise UsageError(
            f"--network {a.network} and --pay {pay} contradict each other: --network names an x402 network, {rail}.",
            hint=f"Drop --pay {pay} to pay on {a.network}, or drop --network to pay with --pay {pay}.",
        )
    return {
        "confirm": lambda q, d: _confirm_payment(ctx, q, d),
        "progress": ctx.progress,
        "quote": a.quote,
        "accept_payee_change": a.accept_payee_change,
        "pay": getattr(a, "pay", None) or "auto",
        "create_recipient_account": bool(getattr(a, "create_recipient_account", False)),
        "ignore_unresolved": bool(getattr(a, "ignore_unresolved", False)),
        "approved": approved,
    }


def pay(ctx, call, approved: dict | None = None, *, auths=None):
    """Build the payment flow for ``call`` and let the client drive it: returns a ``PaidResult``.
    ``auths``: another AuthResolver than the client's (a grid provision's probe names its wallet)."""
    from ..payments.flow import PaymentFlow

    opts = _flow_options(ctx, approved)
    client = ctx.client
    if not opts["quote"]:
        client.settings.require_secure(client.settings.base_url, "a payment")
    try:
        return client.drive(PaymentFlow(client.settings, auths or client.auths, **opts).steps(call))
    except ComputeError as e:
        if e.code == "below_network_minimum":
            _hours_to_minimum(e, call.terms)
        raise


def _hours_to_minimum(e, terms: dict) -> None:
    """A network minimum (Arc's 5 USD) under an hourly order: say how many hours reach it, as an
    option for the human (who may not want the machine that long), beside credits or another network."""
    d = e.details if isinstance(e.details, dict) else None
    try:
        hourly, minimum = Decimal(str(terms.get("hourly_usd"))), Decimal(str((d or {}).get("minimum_usd")))
    except (InvalidOperation, ValueError):
        return
    if d is None or not hourly.is_finite() or hourly <= 0 or not minimum.is_finite():
        return
    hours = max(int(math.ceil(minimum / hourly)), 1)
    d["hours_for_minimum"] = hours
    e.hint = (e.hint or "") + f" (At {terms.get('hourly_usd')} USD an hour, an order of at least {hours} h reaches the minimum, if the human wants it that long.)"


def _limits(settings, expected_micros, what="the catalog price"):
    return Limits(settings.max_spend_usd, settings.max_spend_source, expected_micros, what)


def _quote_output(result, extra: dict | None = None):
    q = dict(result.quote or {})
    q.update(extra or {})
    def shown(v):
        return str(v).lower() if isinstance(v, bool) else v  # JSON spelling, not Python's

    lines = [f"{k}: {shown(v)}" for k, v in q.items() if not isinstance(v, (dict, list)) and v is not None]
    pol = q.get("policy")
    if isinstance(pol, dict):
        lines.append("policy: " + ", ".join(f"{k}={shown(v)}" for k, v in pol.items()))
    b = q.get("budget")
    if isinstance(b, dict):
        lines.append(f"budget: {b.get('remaining_usd')} of {b.get('limit_usd')} USD per {b.get('window')} left after this payment"
                     + (f" ({b['warning']})" if b.get("warning") else ""))
    ra = q.get("recipient_account")
    if ra and ra.get("exists") is False:
        lines.append(
            f"recipient token account: missing ({ra['token_account']}); creating it costs your wallet {ra['create_total_sol']} SOL "
            f"({ra['create_cost_lamports']} lamports rent + {ra['create_fee_lamports']} fee; wallet holds {ra['payer_sol']} SOL)"
            + ("" if ra.get("create") else f"; pass {ra['create_with']} to create it")
        )
    for m in q.get("mpp") or []:
        where = f"on chain {m['chain_id']}" if m.get("chain_id") is not None else f"in {m.get('currency')}"
        lines.append(f"mpp offer: {m['method']}/{m['intent']} {m['amount_usd']} USD {where} to {m['recipient']} ({m.get('pay_with')})")
    return Output({"quote": q}, "\n".join(lines))


@contextmanager
def after_payment(result, client=None):
    """Once a payment settled, no later failure of the run may hide it: every error raised inside
    carries the ``payment`` block (journal id, network, amount, tx hash) and says not to pay
    again. A malformed answer (the order cannot be identified) exits 4, like any unknown outcome;
    a bug is never a bare internal_error; an interrupt still shows the payment."""
    def block() -> dict:
        try:
            return result.payment()
        except Exception:  # noqa: BLE001 - the block must never be what fails
            return {"journal_id": result.journal_id, "tx_hash": result.tx_hash, "method": result.method}

    reconcile = cmdline.command("reconcile.py", result.journal_id) if result.journal_id else None
    dont = "The payment went through: do not pay again." + (f" Reconcile with: {reconcile}" if reconcile else "")
    try:
        yield
    except ComputeError as e:
        d = e.details if isinstance(e.details, dict) else ({} if e.details is None else {"details": e.details})
        e.details = {**d, "payment": block(), **({"reconcile": reconcile} if reconcile else {})}
        e.retryable = False
        e.hint = f"{e.hint} {dont}" if e.hint else dont
        if e.code == "bad_response":
            e.exit_code = EXIT_PAYMENT_UNKNOWN
        raise
    except KeyboardInterrupt:
        raise Interrupted("Interrupted after the payment settled.", details={"payment": block()}, hint=dont) from None
    except Exception as e:  # a bug after settlement: still the payment first, and never "try again"
        err = ComputeError(
            f"The payment settled, but handling the server's answer failed ({type(e).__name__}: {str(e)[:200]}).",
            code="error_after_payment",
            details={"payment": block(), **({"reconcile": reconcile} if reconcile else {})},
            hint=dont,
        )
        err.exit_code = EXIT_PAYMENT_UNKNOWN
        raise err from None


def _paid_order(result) -> dict:
    """The order of a settled provision; its id must be a UUID before anything uses it (a path,
    a later request)."""
    order = unwrap_order(result.body)
    order["id"] = validate.server_instance_id(order.get("id"), "the paid answer's order id")
    return order


def _budget_out(out: dict, result) -> dict:
    if result.budget is not None:
        out["budget"] = result.budget
    return out


def refuse_over_instance_limit(ctx) -> None:
    """COMPUTE_MAX_INSTANCES: refuse a provision when the wallets already own that many live machines."""
    s = ctx.settings
    if s.max_instances is None:
        return

    try:
        live = [summary(o) for o in ctx.client.list_instances() if isinstance(o, dict)]
    except ComputeError as e:
        raise PolicyError(
            f"COMPUTE_MAX_INSTANCES={s.max_instances} is set, but the live instances could not be counted ({e.message}). Nothing was signed.",
            code="instance_limit",
            details={"limit": s.max_instances},
            hint="Check the connection and management auth, then try again.",
        ) from None
    live = [r for r in live if r["state"] not in ("destroyed", "expired")]
    if len(live) >= s.max_instances:
        raise PolicyError(
            f"{len(live)} live instances already (COMPUTE_MAX_INSTANCES={s.max_instances}); refusing to provision another. Nothing was signed.",
            code="instance_limit",
            details={"limit": s.max_instances, "live": len(live), "instances": [r["id"] for r in live]},
            hint="Destroy one the human no longer needs, or ask the human to raise COMPUTE_MAX_INSTANCES; never change it yourself.",
        )


# -- provision --------------------------------------------------------------------------------


def provision(ctx):
    from ..payments.flow import PaidCall

    a = ctx.args
    s = ctx.settings
    plan_id = validate.plan_id(a.plan)
    region = validate.region_id(a.region)
    hours = duration_hours(a)
    wait.check_wait_options(a)
    ssh_key = read_ssh_key(a, ctx)
    user_data = ctx.content_of(a.user_data, "--user-data") if a.user_data else None
    grid_probe = grid_payment(a, s)
    network = a.network or ("solana" if getattr(a, "mode", None) == "grid" and getattr(a, "model_id", None) is not None else default_network(s))
    approved = _approved_quote(ctx)
    client = ctx.client

    plan = plans.find(client, plan_id)
    os_options = client.os_options() if plan is not None else []
    os_id = a.os_id if a.os_id is not None else (default_os_id(plan, os_options) if plan else None)
    # Only an unknown plan needs the whole catalog: its ids are the did-you-mean candidates.
    catalog_ids = [p.get("id") for p in client.all_plans() if isinstance(p, dict)] if plan is None else ()
    check_order(plan, plan_id, region, os_id, os_options, ssh_key, catalog_ids)
    ai_request = ai_machine_request(a, plan, plan_id)
    if os_id is None:
        raise UsageError("No default OS image for this provider.", hint="Pass --os-id (see browse_os.py).")
    hourly = plans.hourly(plan)
    expected = plans.expected_micros(plan, hours)
    # An approved quote fixes the order's label (by default it carries the journal id) and that journal id.
    jid = approved["journal_id"] if approved else _journal_id()
    label = validate.label(a.label) if a.label else (approved["fields"].get("label") if approved else None) or f"x402-{jid[:8]}"

    body: dict = {"plan": plan_id, "region": region, "os_id": int(os_id), "label": label}
    if a.hostname:
        body["hostname"] = a.hostname
    body["prepaid_hours"] = hours
    body["network"] = network
    if ssh_key:
        body["ssh_public_key"] = ssh_key
    if user_data is not None:
        body["user_data"] = user_data
    if a.use_credits:
        body["use_credits"] = True
    bought = None
    if ai_request:
        name, obj = aimachines.request_object(*ai_request)
        body[name] = obj
        what = "private endpoint" if ai_request[1] == "private" else "grid node"
        bought = f"AI Machine: {ai_request[0]}, {what} on {plan_id}"

    gpu = plans.gpu_fields(plan) if plans.is_gpu(plan or {}) else {}
    terms = {
        "action": "provision",
        "summary": f"{bought or plan_id}{' (' + gpu['gpu_summary'] + ')' if gpu.get('gpu_summary') else ''} in {region} for {hours} h",
        "plan": plan_id,
        **gpu,
        "region": region,
        "os_id": int(os_id),
        "label": label,
        "hostname": a.hostname,
        "hours": hours,
        "hourly_usd": str(hourly) if hourly is not None else None,
        "total_usd": plain(Decimal(expected).scaleb(-6)) if expected is not None else None,
        # Who gets root and what runs at first boot are part of what is bought: a quote pins them and
        # the approval shows them (a quote approved for one key must not pay for a machine given another).
        "login_key": line_fingerprint(ssh_key) if ssh_key else None,
        "user_data_sha256": hashlib.sha256(user_data.encode("utf-8")).hexdigest() if user_data is not None else None,
    }
    if ai_request:
        terms.update({"ai_machine": bought, "model_id": ai_request[0], "mode": ai_request[1]})
    if expected is None:
        raise UsageError(f"Plan {plan_id} has no price in the catalog; refusing to pay an unchecked amount.", code="unpriced_plan")
    refuse_over_instance_limit(ctx)
    call = PaidCall(
        kind="provision",
        path="/compute/provision",
        body=body,
        network=network,
        network_explicit=a.network is not None,
        limits=_limits(s, expected),
        terms=terms,
        journal_id=jid,
        use_credits=a.use_credits,
        order_key={"plan": plan_id, "region": region},
        what="Provision",
    )
    try:
        result = pay(ctx, call, approved, auths=client.auths.identified(grid_probe) if grid_probe else None)
    except ComputeError as e:
        if ai_request and ai_request[1] == "grid" and e.status == 403 and e.exit_code != EXIT_PAYMENT_UNKNOWN:
            # The unpaid request named the paying wallet, so the service refused it before any 402.
            e.message = e.message.rstrip(". ") + ". No payment was signed or made."
            e.hint = e.hint or ("A grid node needs 50,000 SGL staked to the paying wallet (the Solana one"
                                + (", or the API key's account" if not grid_probe else "") + "): that is the human's to arrange; or use --mode private.")
        raise
    if result.quote is not None:
        return _quote_output(result)

    with after_payment(result):
        order = _paid_order(result)
        out: dict = {"order": _order_block(order, plan_id, region), "payment": result.payment(), **ssh_out(ctx, order)}
        if getattr(ctx, "auto_ssh_key", None):
            out["ssh_key"] = ctx.auto_ssh_key.block()
        _budget_out(out, result)
        if result.method == "x402" and not call.auth_on_retry and out["payment"].get("payer"):
            # The unauthenticated paid retry binds the order to the paying wallet: manage it with that one.
            client.remember_owner(order["id"], out["payment"]["network"], out["payment"]["payer"])
        if result.method in ("mpp", "stripe"):
            saved = save_management_key(ctx, order["id"], result.body)
            if saved:
                out["management_api_key"] = saved
        ai_key = None
        if ai_request:
            ai_key, out["ai"] = save_ai_key(ctx, order, ai_request)
        if a.wait or a.wait_ssh:
            ctx.progress(f"Waiting for {order['id']} (timeout {a.wait_timeout:g} s)")
            started = time.monotonic()
            host_key: dict = {}
            order, banner = wait_for_instance(client, order["id"], timeout=a.wait_timeout, interval=a.poll_interval, ssh=a.wait_ssh,
                                              progress=ctx.progress, sleep=ctx.sleep, pinned=host_key.update,
                                              address_check=ssh_address_check(ctx))
            out["order"] = _order_block(order, plan_id, region)
            out.update(ssh_out(ctx, order))
            if banner and out["ssh"]:
                out["ssh"]["banner"] = banner
            if host_key:
                out["host_key"] = host_key
            if ai_key and out.get("ai"):
                left = max(1.0, a.wait_timeout - (time.monotonic() - started))
                order, models = aimachines.wait_ready(client, order["id"], ai_key, timeout=left, interval=a.poll_interval,
                                                      progress=ctx.progress, sleep=ctx.sleep)
                out["order"] = _order_block(order, plan_id, region)
                fresh = aimachines.block(ctx.state, order, key=ai_key, key_path=aimachines.key_file(ctx.state, order["id"]))
                out["ai"] = {**(fresh or out["ai"]), "models": models}
        o, p = out["order"], out["payment"]
        text = "\n".join(
            [
                f"order {o['id']}: {o['state']} {o['plan']} in {o['region']}, ip {o['ip'] or '(not yet)'}, expires {o['expires_at']}",
                f"paid {p.get('amount_usd', '-')} {p.get('asset_symbol') or ''} on {p.get('network', p.get('method'))}, tx {p.get('tx_hash')}",
                f"ssh: {out['ssh']['command']}" if out.get("ssh") else
                f"ssh: not yet (no IP); check with {cmdline.command('instance_details.py', o['id'])} (the machine is paid for: do not provision again)",
            ]
            + ([f"note: {out['ssh']['note']}"] if (out.get("ssh") or {}).get("note") else [])
            + ([f"ai: {out['ai']['model_id']} at {out['ai']['endpoint'] or '(no endpoint yet)'}, API key in {out['ai']['api_key_file']} "
                f"(...{out['ai']['api_key_last4']}); {out['ai']['note']}"] if out.get("ai") else [])
            + ([f"budget: {out['budget']['remaining_usd']} of {out['budget']['limit_usd']} USD per {out['budget']['window']} left"] if out.get("budget") else [])
        )
        return Output(out, text)


def save_ai_key(ctx, order: dict, ai_request: tuple[str, str]) -> tuple[str | None, dict | None]:
    """A private AI Machine's one-time API key: saved 0600 before anything else can fail (and
    registered as a secret: it is never printed), described by its file and last four characters.
    The machine is paid for, so a malformed or unsavable key is a note in the block, never an error."""
    if ai_request[1] != "private":
        return None, None
    if not aimachines.is_ai_machine(order):
        ctx.progress(f"warning: the paid answer for {order['id']} carries no metadata.ai (no endpoint or API key)")
        return None, None
    note = path = None
    try:
        key = aimachines.api_key_in(order)
    except ComputeError as e:
        key, note = None, e.message
    if key is None and note is None:
        note = "the paid answer carries no API key"
    if key is not None:
        try:
            path, note = aimachines.save_key(ctx.state, order["id"], key)
        except (OSError, ComputeError) as e:
            note = f"could not save the API key ({e}); it was not printed either"
        if note is None:
            ctx.progress(f"Saved the AI Machine's API key to {path} (mode 0600); it is shown once by the server and never printed here")
        else:
            ctx.progress(f"warning: {note}")
            path = None
    return (key if path else None), aimachines.block(ctx.state, order, key=key if path else None, key_path=path, note=note)


def save_management_key(ctx, order_id: str, body) -> dict | None:
    """MPP's one-time management key, the only way to manage an MPP-paid instance: saved (0600)
    before anything else can fail, described without the key itself. Only for an order this run
    paid (or re-sent) by MPP: a key in any other answer is not ours to keep."""
    mkey = body.get("management_api_key") if isinstance(body, dict) else None
    if not mkey:
        return None
    key = validate.management_key(mkey)
    path = ctx.state.save_instance_key(order_id, key)
    return {
        "saved": True,
        "file": str(path),
        "last4": key[-4:],
        "id": body.get("management_api_key_id"),
        "note": "Shown once by the server; saved 0600. Scripts use it automatically for this instance when no other credential is configured.",
    }


def _order_block(order: dict, plan_id: str, region: str) -> dict:
    s = summary(order)
    return {
        "id": s["id"],
        "label": s["label"],
        "state": s["state"],
        "plan": s["plan"] or plan_id,
        "region": s["region"] or region,
        "ip": s["ip"],
        "expires_at": s["expires_at"],
    }


# -- extend -----------------------------------------------------------------------------------


def extend(ctx):
    a = ctx.args
    iid = validate.instance_id(a.instance_id)
    hours = duration_hours(a)
    approved = _approved_quote(ctx)
    # The instance's plan gives the price to check; reading it needs management auth.
    before: dict = {}
    no_auth = None
    try:
        before = ctx.client.get_instance(iid)
    except ConfigError:
        no_auth = "price not checked against the catalog: no management auth to read the instance's plan"
    call, price_note = extend_call(ctx, iid, hours, before, approved=approved, price_note=no_auth)
    result = pay(ctx, call, approved)
    if result.quote is not None:
        return _quote_output(result)
    with after_payment(result):
        return extend_output(result, iid, hours, before, price_note)


def extension_price(client, before: dict, hours: int) -> dict:
    """The catalog's view of extending the instance ``before`` by ``hours``: ``plan``, ``hourly``
    and ``expected`` micro-dollars (None when unknown), and ``note`` when the price cannot be checked."""

    plan_id = before.get("plan") or before.get("vultr_plan")
    if not isinstance(plan_id, str) or not plan_id.strip():
        plan_id = None  # a record naming no plan (or not as text) gives no price: the same refusal as an unknown plan
    plan = plans.find(client, plan_id) if plan_id else None
    expected = plans.expected_micros(plan, hours) if plan else None
    note = None
    if plan_id is None:
        note = "the instance record names no plan; price not checked"
    elif plan is None:
        note = f"plan {plan_id} is no longer in the catalog; price not checked"
    elif plan is not None and expected is None:
        note = f"plan {plan_id} has no price in the catalog; price not checked"
    return {"plan": plan_id, "hourly": plans.hourly(plan) if plan else None, "expected": expected, "note": note}


def extend_call(ctx, iid: str, hours: int, before: dict, *, approved: dict | None = None, price_note: str | None = None):
    """The paid call extending ``iid`` (whose current order is ``before``) by ``hours``, and the
    price note, if the price could not be checked. extend_instance.py and keepalive.py pay with it."""
    from ..payments.flow import PaidCall

    a = ctx.args
    s = ctx.settings
    network = a.network or default_network(s)
    price = extension_price(ctx.client, before, hours)
    price_note = price_note or price["note"]  # the caller's reason (no auth to read the record) explains an empty one
    expected, hourly = price["expected"], price["hourly"]
    body: dict = {"extend_hours": hours, "network": network}
    if a.use_credits:
        body["use_credits"] = True
    terms = {
        "action": "extend",
        "summary": f"instance {iid} by {hours} h",
        "instance_id": iid,
        "plan": price["plan"],
        "hours": hours,
        "hourly_usd": str(hourly) if hourly is not None else None,
        "total_usd": plain(Decimal(expected).scaleb(-6)) if expected is not None else None,
        "old_expires_at": before.get("expires_at"),
    }
    if price_note:
        terms["price_check"] = price_note
        if s.max_spend_source != "--max-usd" and not a.quote:
            # Nothing to hold the 402's amount against but the cap: then the cap must be a
            # number the user chose for this payment, not a default that happens to be large.

            raise PolicyError(
                f"Extending {iid}: the price cannot be checked ({price_note}), so the amount asked is bounded only by "
                "the spend cap; give it explicitly with --max-usd. Nothing was sent.",
                code="price_unknown",
                details={"instance_id": iid, "cap_usd": str(s.max_spend_usd), "cap_source": s.max_spend_source},
                hint="Quote first (--quote) to see the amount and show it to the human; only if they accept it, they re-run with --max-usd <that amount>.",
            )
    old = parse_time(before.get("expires_at"))
    if old:
        terms["expires_at_estimate"] = iso(old + timedelta(hours=hours))
    call = PaidCall(
        kind="extend",
        path=f"/compute/instances/{iid}/extend",
        body=body,
        network=network,
        network_explicit=a.network is not None,
        limits=_limits(s, expected),
        terms=terms,
        journal_id=approved["journal_id"] if approved else _journal_id(),
        use_credits=a.use_credits,
        context={"instance_id": iid, "old_expires_at": before.get("expires_at")},
        order_key={"instance_id": iid},
        what="Extend",
    )
    return call, price_note


EXPIRY_TOLERANCE_S = 60  # keepalive.TOLERANCE: an expiry this close to what was paid for counts as applied


def extension_shortfall(old: str | None, new: str | None, hours: int) -> str | None:
    """A warning when a paid extension's answer shows an expiry earlier than old + hours (beyond
    a minute): the server took the payment for time it did not give. None when it did, or when
    either expiry is unknown."""
    o, n = parse_time(old), parse_time(new)
    if o is None or n is None:
        return None
    want = o + timedelta(hours=hours)
    if n >= want - timedelta(seconds=EXPIRY_TOLERANCE_S):
        return None
    return (f"the server's new expiry {iso(n)} is earlier than the old one plus the {hours} h paid for ({iso(want)}); "
            "the extension was not (fully) applied. Do not pay again; tell the human.")


def extend_output(result, iid: str, hours: int, before: dict, price_note: str | None):
    """What a settled extension prints (call it inside ``after_payment(result)``)."""
    order = unwrap_order(result.body)
    new_expiry = order.get("expires_at") if isinstance(order.get("expires_at"), str) else None
    out = {
        "order": {"id": iid, "old_expires_at": before.get("expires_at"), "new_expires_at": new_expiry, "hours_added": hours},
        "payment": result.payment(),
    }
    _budget_out(out, result)
    if price_note:
        out["price_check"] = price_note
    short = extension_shortfall(before.get("expires_at"), new_expiry, hours)
    if short:
        out["warning"] = short
    p = out["payment"]
    text = (
        (f"warning: {short}\n" if short else "") +
        f"instance {iid}: expiry {out['order']['old_expires_at']} -> {out['order']['new_expires_at']}\n"
        f"paid {p.get('amount_usd', '-')} {p.get('asset_symbol') or ''} on {p.get('network', p.get('method'))}, tx {result.tx_hash}"
    )
    return Output(out, text)


# -- credits top-up ---------------------------------------------------------------------------


def _amount(text: str) -> Decimal:
    try:
        d = Decimal(str(text).strip())
    except InvalidOperation:
        raise UsageError(f"--amount must be a number of US dollars, got {text!r}.") from None
    if not d.is_finite() or d < 1:
        raise UsageError("--amount must be at least 1 USD.")
    if d != d.quantize(Decimal("0.01")):
        raise UsageError("--amount takes whole cents (at most two decimals).")
    return d


def topup(ctx):
    from ..payments.flow import PaidCall

    a = ctx.args
    s = ctx.settings
    amount = _amount(a.amount)
    network = a.network or default_network(s)
    approved = _approved_quote(ctx)
    # JSON number, as the API expects; whole dollars stay integers.
    num = int(amount) if amount == amount.to_integral_value() else float(amount)
    body = {"amount": num, "network": network}
    call = PaidCall(
        kind="topup",
        path="/compute/credits/topup",
        body=body,
        network=network,
        network_explicit=a.network is not None,
        limits=_limits(s, usd_to_micros(amount), "the top-up amount asked"),
        terms={"action": "topup", "summary": f"credits top-up of {usd(amount)} USD", "total_usd": usd(amount)},
        journal_id=approved["journal_id"] if approved else _journal_id(),
        auth_on_retry=True,  # the credits land on the authenticated account
        what="Credits top-up",
    )
    result = pay(ctx, call, approved)
    if result.quote is not None:
        return _quote_output(result)
    with after_payment(result):
        b = result.body if isinstance(result.body, dict) else {}
        dep, bal = b.get("deposited"), b.get("new_balance")
        # deposited_usd / balance_usd: the names credits_balance.py uses, as strings like there.

        credits = {"deposited": dep, "new_balance": bal, "deposited_usd": usd(to_decimal(dep)), "balance_usd": usd(to_decimal(bal))}
        out = _budget_out({"credits": credits, "payment": result.payment()}, result)
        return Output(out, f"deposited ${credits['deposited_usd']}; balance ${credits['balance_usd']}; tx {result.tx_hash}")


# -- credits_topup.py: its parser (the script and the MCP server both build it here) ------

CREDITS_TOPUP_HELP = """Buy prepaid credits (USD) with an x402 payment; spend them with --use-credits."""


def credits_topup_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "credits_topup.py",
        CREDITS_TOPUP_HELP,
        examples=(
            "python scripts/credits_topup.py --amount 20 --quote\n"
            "# show the quote to the human; once they approve, pay exactly that quote:\n"
            "python scripts/credits_topup.py --amount 20 --confirm-quote <quote_id>\n"
            "# the human at a terminal may skip the quote (--yes is their shortcut):\n"
            "python scripts/credits_topup.py --amount 20 --network solana --yes"
        ),
    )
    p.add_argument("--amount", required=True, metavar="USD", help="dollars to deposit (at least 1, whole cents)")
    add_payment_options(p, credits=False)
    return p


# -- extend_instance.py: its parser (the script and the MCP server both build it here) ------

EXTEND_INSTANCE_HELP = """Add prepaid time to an instance and pay over HTTP 402 (x402); prints old and new expiry."""


def extend_instance_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "extend_instance.py",
        EXTEND_INSTANCE_HELP,
        examples=(
            "python scripts/extend_instance.py 3f2c9a1e-0000-4000-8000-000000000000 --days 7 --quote\n"
            "# show the quote to the human; once they approve, pay exactly that quote:\n"
            "python scripts/extend_instance.py 3f2c9a1e-0000-4000-8000-000000000000 --days 7 --confirm-quote <quote_id>\n"
            "# the human at a terminal may skip the quote (--yes is their shortcut):\n"
            "python scripts/extend_instance.py 3f2c9a1e-0000-4000-8000-000000000000 --hours 720 --yes"
        ),
    )
    p.add_argument("instance_id", help="instance (order) id from list_instances.py")
    add_duration_options(p, what="extension")
    add_payment_options(p)
    return p


# -- provision.py: its parser (the script and the MCP server both build it here) ------

PROVISION_HELP = """Rent a VPS or GPU machine and pay for a prepaid period over HTTP 402 (x402).

Checks the plan, region and OS against the catalog, reads the 402's offers, refuses
anything above the spend cap, the catalog price or to a changed payee, signs one
payment, and prints the order, the payment (with tx hash) and how to SSH in."""


def provision_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "provision.py",
        PROVISION_HELP,
        examples=(
            "python scripts/provision.py vc2-1c-1gb lax --days 1 --ssh-key auto --quote\n"
            "# show the quote to the human; once they approve, pay exactly that quote:\n"
            "python scripts/provision.py vc2-1c-1gb lax --days 1 --ssh-key auto --confirm-quote <quote_id> --wait-ssh\n"
            "python scripts/provision.py vcg-a100-1c-2g-6gb lax --months 1 --ssh-key-file ~/.ssh/id_ed25519.pub --quote\n"
            "# the human at a terminal may skip the quote (--yes is their shortcut):\n"
            "python scripts/provision.py do:s-1vcpu-1gb nyc3 --days 2 --ssh-key-file ~/.ssh/id_ed25519.pub --network solana --yes\n"
            "python scripts/provision.py vcg-a100-1c-2g-6gb lax --days 1 --model-id llama-3.2-3b --mode private --quote"
        ),
    )
    p.add_argument("plan", help="plan id from browse_plans.py (e.g. vc2-1c-1gb, do:s-1vcpu-1gb)")
    p.add_argument("region", help="region id in the plan's locations (e.g. lax, nyc3)")
    add_duration_options(p, what="prepaid period")
    g = p.add_argument_group("machine")
    g.add_argument("--os-id", type=int, help="OS image id from browse_os.py (default: Ubuntu 24.04 of the plan's provider)")
    g.add_argument("--label", help="instance label (default: x402-<journal id prefix>, used by reconcile.py)")
    g.add_argument("--hostname", help="hostname the machine gets (default: the provider's)")
    g.add_argument("--ssh-key", choices=("auto",), help="auto: use the skill's own ed25519 key pair (created once in the state folder, private key 0600, never printed) and put -i in the ssh block; use it when the human has no key of their own")
    g.add_argument("--ssh-public-key", metavar="KEY", help="SSH public key text (DigitalOcean needs a key: this, --ssh-key-file or --ssh-key auto)")
    g.add_argument("--ssh-key-file", metavar="PATH", help="file holding the SSH public key (e.g. ~/.ssh/id_ed25519.pub)")
    g.add_argument("--user-data", metavar="FILE", help="cloud-init user data file run at first boot")
    add_ai_machine_options(p)
    add_payment_options(p)
    add_wait_options(p)
    return p
