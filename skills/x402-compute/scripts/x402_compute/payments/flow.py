"""A paid request end to end: one sequence for every way of paying, at most one signature per run.

    an earlier payment for the same order with an unknown outcome?  → refuse (unresolved_payment)
    unpaid probe (management auth from the AuthResolver)            credits: no probe, the first
      → 2xx: nothing to pay    → 402: every option it carries        request is the one that spends
      → ONE option: an x402 offer on the wanted network (else one more probe with X-Accept-Networks),
        or the MPP Tempo charge (--pay mpp, or --pay auto when it is the only payable offer),
        or the MPP Stripe card charge (--pay stripe only: a card is never chosen automatically),
        or prepaid credits (use_credits)
      → the guards, written once for every option:
          allowed network → the option's policy (scheme, canonical asset, spend cap, catalog price)
          → pinned payee → the option's preflight (Solana: the recipient's token account)
          → who signs the paid request → the rolling budget (read)
      → --quote stops here (a refusal raises exactly what paying would, with the quote in details)
      → the user confirms (or --yes)
      → under the state folder's lock: the budget again, and a journal reservation (0600)
      → sign one payment (Solana opt-in: first create the recipient's account) → journal "sent"
        (fsynced, file and folder, before the payment leaves: the one write a power cut must not lose)
      → pin the payee (only now: the offer passed every check and is signed)
      → deliver: the identical method, path and body bytes + payment header + Idempotency-Key;
        2xx with a JSON object settled | 402 rejected (never pay again) | anything else, a
        timeout or a reset is an unknown outcome: resend the SAME bytes once, then exit 4.

The flow never sends anything and never sees the client: ``steps`` yields each request (``Send``)
and receives its answer, the way ``httpx.Auth.auth_flow`` does; the caller hands the generator to
``ComputeClient.drive``, which owns the loop. Every way of paying is a ``options.PaymentOption``
(chosen by ``options.choose`` from ``options.REGISTRY``); this module names none of them but
credits, the one that needs no 402.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Generator

from .. import cmdline
from ..api.auth import Auth, AuthResolver, encode_body
from ..errors import ComputeError, NetworkError, PaymentOutcomeUnknown, PaymentRequired, PolicyError
from ..api.http import Response, api_error
from ..ledger import LedgerUnavailable
from . import challenge as ch
from .budget import Budget
from .journal import Entry, Journal, public
from .model import MppOffer, Offer, Send, Signed
from .options import PAY_CHOICES, Choice, CreditsOption, Payment, PaymentOption, Signers, choose, mpp_offer_terms, mpp_terms, offer_terms
from .policy import Limits, PayeePins
from .quotes import Quotes


@dataclass
class PaidCall:
    kind: str  # "provision" | "extend" | "topup": shown to the user, kept in the journal
    path: str
    body: dict
    network: str  # the wanted x402 network: base | solana | megaeth | robinhood
    limits: Limits
    terms: dict  # what the quote shows besides the offer (plan, region, hours, hourly and total USD)
    journal_id: str  # chosen up front so the provision label can carry it
    use_credits: bool = False
    network_explicit: bool = False  # the user named --network: never pay on another rail instead
    auth_on_retry: bool = False  # the call needs an identity on the paid request (e.g. a top-up)
    method: str = "POST"
    context: dict = field(default_factory=dict)  # extra facts for the journal (e.g. instance_id, old expires_at)
    order_key: dict = field(default_factory=dict)  # the terms naming the same order (unresolved-payment guard)
    what: str = "Paid request"


@dataclass
class PaidResult:
    status: int
    body: Any
    headers: Any
    method: str  # "x402" | "mpp" | "stripe" | "credits" | "none"
    note: str | None = None
    offer: Offer | None = None
    signed: Signed | None = None
    settlement: dict | None = None
    tx_hash: str | None = None
    journal_id: str | None = None
    idempotency_key: str | None = None
    quote: dict | None = None
    resent: bool = False
    mpp_offer: MppOffer | None = None
    receipt: dict | None = None  # the decoded MPP Payment-Receipt
    recipient_account_created: dict | None = None  # the opt-in Solana side transaction, when one ran
    budget: dict | None = None  # the budget block after this payment
    option: PaymentOption | None = None  # what was paid (None: nothing, or a resend from the journal)

    def payment(self) -> dict:
        """The ``payment`` block of the output."""
        common = {"tx_hash": self.tx_hash, "idempotency_key": self.idempotency_key, "journal_id": self.journal_id}
        if self.option is None:
            return {"method": self.method, "note": self.note, **common}
        return self.option.payment_block(self, common)


Steps = Generator[Send, Response, Any]  # what ComputeClient.drive runs


class PaymentFlow:
    def __init__(
        self,
        settings,
        auths: AuthResolver,
        *,
        confirm: Callable[[str, Any], None],
        progress: Callable[[str], None] = lambda m: None,
        quote: bool = False,
        accept_payee_change: bool = False,
        pay: str = "auto",
        create_recipient_account: bool = False,
        ignore_unresolved: bool = False,
        approved: dict | None = None,
        signers: Signers | None = None,
        budget: Budget | None = None,
    ) -> None:
        if pay not in PAY_CHOICES:
            raise ValueError(f"pay must be one of {', '.join(PAY_CHOICES)}, not {pay!r}")
        self.settings = settings
        self.auths = auths
        self.confirm = confirm
        self.progress = progress
        self.quote = quote
        self.accept_payee_change = accept_payee_change
        self.pay = pay
        self.create_recipient_account = create_recipient_account
        self.ignore_unresolved = ignore_unresolved
        self.approved = approved  # a recorded quote (--confirm-quote): pay exactly that, or nothing
        self.quotes = Quotes(settings)
        self.signers = signers or Signers()
        self.journal = Journal(settings)
        self.pins = PayeePins(settings)
        self.budget = budget or Budget(settings)
        self.signed_count = 0  # the invariant tests check: never more than one per run

    # -- the one sequence -----------------------------------------------------------------------
    def steps(self, call: PaidCall) -> Steps:
        self.journal.ledger.ready()  # a ledger this run cannot write (a newer release's schema) stops it before any request
        self._refuse_unresolved(call)
        body = encode_body(call.body)  # the exact bytes for every request of this run
        iid = call.context.get("instance_id")
        terms: dict = dict(call.terms)
        probe_auth: Auth | None = None
        try:
            if call.use_credits:
                option: PaymentOption = CreditsOption(call.limits, call.terms)
            else:
                probe_auth = self.auths.probe(iid, required=call.auth_on_retry)
                resp = yield Send(call.method, call.path, body, probe_auth)
                if 200 <= resp.status < 300:
                    return PaidResult(resp.status, resp.json(), resp.headers, "none",
                                      note="The server answered the unpaid request with success: no payment was asked for, none was made.")
                if resp.status != 402:
                    raise api_error(resp, call.what)
                challenge = ch.from_response(resp)
                choice = Choice(self.settings, self.signers, call.limits, self.pay, call.network, call.network_explicit,
                                self.create_recipient_account, self.progress)
                option = yield from choose(choice, challenge, lambda headers: Send(call.method, call.path, body, probe_auth, headers), terms)
                terms["mpp"] = mpp_terms(challenge)
            terms.update(option.terms())
            paid_auth = self._guards(call, option, terms, probe_auth)
        except ComputeError as e:
            if self.quote:  # a quote fails exactly as paying would, showing what it would have paid
                e.details = {**(e.details if isinstance(e.details, dict) else {"details": e.details}), "quote": {**terms, "signed": False}}
            raise
        if self.quote:
            terms.update(self.quotes.record(terms, call.journal_id))
            return PaidResult(402, None, None, option.method, quote={**terms, "signed": False}, **option.result_fields(None))

        if self.approved is not None:
            # The human approved exactly these terms (--confirm-quote): that is the confirmation.
            self.quotes.check(self.approved, terms)
            self.quotes.claim(self.approved)  # used from now on, by any agent on the ledger: the id never pays again
        else:
            self.confirm(option.question(f"{call.kind} ({call.terms.get('summary') or call.path})", terms), terms)
        if self.signed_count:
            raise ComputeError("Refusing to sign a second payment in one run.", code="internal_error")
        self.signed_count += 1
        idem = str(uuid.uuid4())
        try:
            entry, _ = self.budget.reserve(option.budget_micros(), self._entry(call, body, option, idem, paid_auth))
        except ComputeError as e:
            if e.code == "journal_conflict" and self.approved is not None:  # another agent on this ledger paid it first
                raise _quote_used(self.approved, self.journal.get_or_none(call.journal_id) or {"id": call.journal_id}) from None
            raise
        payment = self._sign(option, entry)
        try:
            entry = self.journal.update(
                entry["id"],
                "sent",
                payer=payment.payer,
                nonce=payment.nonce,
                valid_before=payment.valid_before,
                payment_header_name=payment.header_name,
                payment_header_value=payment.header_value,
                **payment.journal,
            )
        except LedgerUnavailable as e:
            # The write that must precede the payment failed: the signed payment is dropped here,
            # never sent (nobody else holds it), and its reservation ages out.
            e.message = e.message.replace("Nothing was signed.", "The payment was signed but never sent: nothing left this machine.")
            raise
        pin = option.pin_view()
        if pin is not None:
            self.pins.pin(pin, self.settings.base_url)
        if option.network is not None:  # something moves on a network (credits move nothing now)
            self.progress(f"Paying {terms.get('amount_usd')} {terms.get('asset_symbol')} on {option.network} (journal {entry['id']})")
        result = yield from deliver(self.journal, entry, paid_auth, call.what, progress=self.progress)
        result.method, result.option = option.method, option
        for name, value in option.result_fields(payment).items():
            setattr(result, name, value)
        done, value = _bounded(self.budget.ledger, self.budget.status)
        if done:
            result.budget = value
        else:  # paid already: the answer is shown, the budget block is not
            self.progress(f"warning: the budget could not be read after the payment: {_why(value, self.budget.ledger)}")
        if result.budget and result.budget.get("warning"):
            self.progress(f"warning: {result.budget['warning']}")
        return result

    # -- the pieces, in the order the sequence uses them -----------------------------------------
    def _refuse_unresolved(self, call: PaidCall) -> None:
        """Stop before signing a second payment for an order whose first payment has an unknown
        outcome (exit 4, or a run killed mid-flight): re-running the command is the one mistake
        the journal cannot undo. A payment still in flight in a live process is not unresolved."""
        if self.quote or self.ignore_unresolved:
            return
        now = time.time()
        for typed in self.journal.entries(statuses=Entry.UNRESOLVED_STATUSES):
            e, status = typed.data, typed.status
            if typed.kind != call.kind or not typed.unresolved(now):
                continue
            if e.get("base_url") and e["base_url"] != self.settings.base_url:
                continue
            terms = e.get("terms") or {}
            if any(terms.get(k) != v for k, v in call.order_key.items()):
                continue
            refused = status == "rejected"
            until = _iso_or_none(e.get("valid_before"))
            raise PolicyError(
                (f"An earlier {call.kind} payment for this order (journal {e['id']}) was refused by the server but stays valid "
                 f"until {until or 'an unknown time'}: the server could still settle it, so paying again could charge twice. Nothing was signed."
                 if refused else
                 f"An earlier {call.kind} payment for this order (journal {e['id']}, {status}) has an unknown outcome; "
                 "paying again could charge twice. Nothing was signed."),
                code="unresolved_payment",
                details={"journal_id": e["id"], "status": status, "created_at": e.get("created_at"), "label": e.get("label"),
                         "valid_until": until, "reconcile": cmdline.command("reconcile.py", e["id"])},
                hint=f"Run {cmdline.command('reconcile.py', e['id'])}: it looks the order up and also asks the chain whether the payment was used "
                "(if it was never used and has expired, the entry becomes expired and paying again is allowed); --resend if the order "
                "is not found. If it stays unknown, tell the human: only they, after checking the wallet's history, may re-run with --ignore-unresolved.",
            )

    def _guards(self, call: PaidCall, option: PaymentOption, terms: dict, probe_auth: Auth | None) -> Auth:
        """Every check before a signature, for every option; returns who signs the paid request."""
        net = option.network
        if net is not None and net not in self.settings.allowed_networks:
            raise PolicyError(
                f"Paying on {net} is not allowed here (COMPUTE_ALLOWED_NETWORKS={','.join(self.settings.allowed_networks)}). Nothing was signed.",
                code="network_not_allowed",
                details={"network": net, "allowed": list(self.settings.allowed_networks)},
                hint="Pick an allowed network with --network, or ask the human; never change COMPUTE_ALLOWED_NETWORKS yourself.",
            )
        option.check(call.limits)
        pin = option.pin_view()
        if pin is not None:
            terms["payee_status"] = self.pins.check(pin, accept_change=self.accept_payee_change)["status"]
        option.preflight(terms, quote=self.quote)
        paid_auth = option.paid_auth(self.auths, probe_auth, instance_id=call.context.get("instance_id"), needs_identity=call.auth_on_retry)
        terms["budget"] = self.budget.check(option.budget_micros())
        terms["policy"] = {"ok": True}
        return paid_auth

    def _entry(self, call: PaidCall, body: bytes, option: PaymentOption, idem: str, paid_auth: Auth) -> dict:
        """The journal entry every payment method writes (as a budget reservation, before signing)."""
        return {
            "id": call.journal_id,
            "kind": call.kind,
            "method": option.method,
            "base_url": self.settings.base_url,
            "request": {"method": call.method, "path": call.path, "body": body.decode("utf-8")},
            "label": call.body.get("label"),
            "terms": dict(call.terms),
            "context": call.context,
            "offer": option.journal_offer(),
            "idempotency_key": idem,
            "auth_on_retry": call.auth_on_retry or option.auth_on_retry(paid_auth),
        }

    def _sign(self, option: PaymentOption, entry: dict) -> Payment:
        """Sign the one payment; if anything stops it, the reservation is released (nothing left this machine)."""
        notes: dict = {}

        def note(fields: dict) -> None:
            notes.update(fields)
            self.journal.update(entry["id"], **fields)

        try:
            with self.budget.heartbeat(entry["id"]):
                return option.sign(self.progress, note)
        except BaseException as e:
            reason = e.message if isinstance(e, ComputeError) else type(e).__name__
            if notes:  # something was spent on the way (a Solana account): keep the record
                self.journal.update(entry["id"], "not_sent", reason=f"the payment was not signed: {reason}")
            else:  # nothing happened: the reservation goes, releasing its amount
                self.journal.discard(entry["id"])
            if isinstance(e, ComputeError) and notes:
                # A created Solana recipient account is on chain and cost the user SOL: say so.
                e.details = {**(e.details if isinstance(e.details, dict) else {"details": e.details}), **notes, "journal_id": entry["id"]}
            raise


def _quote_used(approved: dict, used: dict) -> PolicyError:
    return PolicyError(
        f"Quote {approved['quote_id']} was already used (journal {used['id']}, {used.get('status')}). Nothing was signed.",
        code="quote_used",
        details={"journal_id": used["id"], "status": used.get("status")},
        hint="A quote pays once. Quote again if the human wants another one.",
    )


# -- delivery: shared by the flow and reconcile.py --resend ---------------------------------------------


def payment_block(entry: dict) -> dict:
    """What a journal entry says about its payment: for errors raised after it left."""
    offer = entry.get("offer") or {}
    return {
        "journal_id": entry.get("id"),
        "status": entry.get("status"),
        "method": entry.get("method"),
        "network": offer.get("network"),
        "asset_symbol": offer.get("asset_symbol"),
        "amount_atomic": offer.get("amount_atomic"),
        "amount_usd": offer.get("amount_usd") or (entry.get("terms") or {}).get("total_usd"),
        "payer": entry.get("payer"),
        "payee": offer.get("payee"),
        "tx_hash": entry.get("tx_hash") or entry.get("expected_tx_hash"),
        "idempotency_key": entry.get("idempotency_key"),
    }


def _answer(resp: Response) -> str:
    """After a payment left, only a 2xx carrying a JSON object or a 402 is an answer."""
    if 200 <= resp.status < 300:
        return "settled" if isinstance(resp.json(), dict) else "ambiguous"
    if resp.status == 402:
        return "rejected"
    return "ambiguous"


def deliver(journal: Journal, entry: dict, auth: Auth | None, what: str, *, progress=lambda m: None, allow_resend: bool = True) -> Steps:
    """Send the journalled request (same bytes, same payment header, same Idempotency-Key);
    resend it once when the outcome is unknown; record the outcome; never sign anything."""
    req = entry["request"]
    body = req["body"].encode("utf-8")
    headers = {"Idempotency-Key": entry["idempotency_key"]}
    if entry.get("payment_header_value"):
        headers[entry["payment_header_name"]] = entry["payment_header_value"]
    attempts = 2 if allow_resend else 1
    first_unknown: str | None = None
    resp: Response | None = None
    reason = ""
    for attempt in range(attempts):
        try:
            resp = yield Send(req["method"], req["path"], body, auth, dict(headers), retry_reads=False)
        except NetworkError as e:
            sent = bool((e.details or {}).get("sent", True))
            if not sent and first_unknown is None:
                if entry.get("status") == "sent":  # a reconcile resend keeps the earlier status
                    journal.update(entry["id"], "not_sent", reason=e.message)
                raise NetworkError(
                    f"{e.message} The payment never left this machine; nothing was charged.",
                    details={"journal_id": entry["id"], "sent": False},
                    retryable=True,
                    hint="Check the base URL and connection, then run the command again.",
                ) from None
            reason, resp = e.message, None
        else:
            kind = _answer(resp)
            if kind == "settled":
                return _settled(journal, entry, resp, resent=attempt > 0, progress=progress)
            if kind == "rejected" and first_unknown is None:
                _rejected(journal, entry, resp, what, progress=progress)
            reason = f"HTTP {resp.status}" + ("" if kind != "ambiguous" or not (200 <= resp.status < 300) else " with a body that is not a JSON object")
        if first_unknown is None:
            first_unknown = reason
            if attempt + 1 < attempts:
                progress(f"Outcome unknown ({reason}); resending the same signed payment with the same Idempotency-Key")
    # Still unknown: never sign again; hand the user the journal id.
    entry = _record(journal, entry, "unknown", progress, reason=f"first: {first_unknown}; last: {reason}")
    raise PaymentOutcomeUnknown(
        f"The payment was sent but its outcome is unknown ({first_unknown}). Do not pay again: reconcile instead.",
        details={
            "journal_id": entry["id"],
            "idempotency_key": entry["idempotency_key"],
            "label": entry.get("label"),
            "payment": payment_block(entry),
            "reconcile": cmdline.command("reconcile.py", entry["id"]),
            "last_status": resp.status if resp is not None else None,
            "last_body": (resp.json() if resp is not None else None),
        },
        retryable=False,
        hint=f"Run: {cmdline.command('reconcile.py', entry['id'])} (it looks the order up; --resend re-sends the same signed payment, never a new one).",
    )


AFTER_PAYMENT_WRITE_S = 10.0  # a healthy ledger answers in milliseconds; a hung one must not hold the answer


def _bounded(ledger, fn: Callable[[], Any]) -> tuple[bool, Any]:
    """``fn()`` (a ledger call after a payment left), waited for at most ``AFTER_PAYMENT_WRITE_S``:
    (True, its value), or (False, a LedgerUnavailable or None when the ledger did not answer in
    time). See ``Ledger.bounded``."""
    return ledger.bounded(fn, AFTER_PAYMENT_WRITE_S)


def _why(e: LedgerUnavailable | None, ledger=None) -> str:
    if e is None:
        return f"no answer from the {ledger.engine} ledger ({ledger.where}) within {AFTER_PAYMENT_WRITE_S:g} s."
    return e.message.replace(" Nothing was signed.", "")


def _record(journal: Journal, entry: dict, status: str, progress, **fields: Any) -> dict:
    """Record the outcome of a payment that left this machine. The ledger failing or hanging now
    must not hide the server's answer behind a "Nothing was signed" error or an endless wait: the
    entry stays ``sent`` (written durably before the payment left), so it keeps counting toward the
    budget and reconcile.py resolves it."""
    done, value = _bounded(journal.ledger, lambda: journal.update(entry["id"], status, **fields))
    if done:
        return value
    progress(f"warning: the payment left this machine, but the ledger could not record its outcome ({status}): {_why(value, journal.ledger)} "
             f"Journal {entry['id']} stays 'sent' (it counts toward the budget); run {cmdline.command('reconcile.py', entry['id'])} "
             "once the ledger is back.")
    return {**entry, **fields}


def _settled(journal: Journal, entry: dict, resp: Response, *, resent: bool, progress=lambda m: None) -> PaidResult:
    body = resp.json()
    sr = ch.settlement(resp.headers)
    receipt = ch.mpp_receipt(resp.headers)
    tx = (receipt or {}).get("reference") or (sr or {}).get("transaction") or body.get("tx_hash") or None
    if tx is not None and not isinstance(tx, str):
        tx = None
    order = body.get("order") if isinstance(body.get("order"), dict) else {}
    oid = _uuid_or_none(order.get("id"))  # a server string is recorded as an order id only if it is one
    _record(journal, entry, "settled", progress, order_id=oid, tx_hash=tx, http_status=resp.status,
            replayed=resp.headers.get("Idempotent-Replayed") == "true")
    return PaidResult(resp.status, body, resp.headers, entry.get("method", "x402"), settlement=sr, tx_hash=tx, journal_id=entry["id"],
                      idempotency_key=entry["idempotency_key"], resent=resent, receipt=receipt)


def _uuid_or_none(value: Any) -> str | None:
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) and len(value) <= 64 else None
    except ValueError:
        return None


def _iso_or_none(ts: Any) -> str | None:
    if not isinstance(ts, (int, float)) or isinstance(ts, bool):
        return None
    try:
        return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def _rejected(journal: Journal, entry: dict, resp: Response, what: str, *, progress=lambda m: None) -> None:
    reason = ch.rejection_reason(resp)
    entry = _record(journal, entry, "rejected", progress, reason=reason, http_status=resp.status)
    if entry.get("method") == "credits":
        raise PaymentRequired(
            f"{what}: not enough prepaid credits ({reason}).",
            code="insufficient_credits",
            status=402,
            details={"journal_id": entry["id"], "body": resp.json()},
            hint="Top up with credits_topup.py, or pay with x402 (drop --use-credits).",
        )
    # Signed means spent until proven otherwise: the server holds a signature it may still settle.
    until = _iso_or_none(entry.get("valid_before"))
    raise PaymentRequired(
        f"{what}: the server refused the payment ({reason}). No other payment was made. The signed payment stays valid "
        f"until {until or 'an unknown time'}: until then it counts toward the budget and a re-run for this order stops "
        "(unresolved_payment), unless reconcile.py proves it can no longer settle.",
        code="payment_rejected",
        status=402,
        details={"journal_id": entry["id"], "reason": reason, "body": resp.json(), "valid_until": until, "counts_toward_budget": True,
                 "reconcile": cmdline.command("reconcile.py", entry["id"])},
        hint=f"Check the wallet's balance on that network; after {until or 'the signature expires'}, run "
        f"{cmdline.command('reconcile.py', entry['id'])} (it asks the chain whether the payment can still settle).",
    )


def resend(journal: Journal, entry: dict, auth: Auth | None, what: str, *, progress=lambda m: None) -> Steps:
    """reconcile.py --resend: the stored payment once more, exactly as it was sent (for ``ComputeClient.drive``)."""
    return deliver(journal, entry, auth, what, progress=progress, allow_resend=False)


__all__ = ["PaidCall", "PaidResult", "PaymentFlow", "Send", "Steps", "deliver", "resend", "payment_block", "offer_terms", "mpp_terms", "mpp_offer_terms", "public"]
