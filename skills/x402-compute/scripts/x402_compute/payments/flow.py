"""A paid request end to end, signing at most one payment per run.

    unpaid probe (management auth when configured)
      → 402 → every offer it carries (x402 v1 body, v2 header, MPP header)
      → the offer on the wanted network (else one more probe with X-Accept-Networks)
      → policy (scheme, canonical asset, spend cap, catalog price, pinned payee)
      → Solana: the recipient's token account exists? If not, refuse, unless the user passed
        --create-recipient-account: then its cost (rent + fee, in SOL) joins the terms
      → --quote stops here; otherwise the user confirms (or --yes)
      → Solana opt-in only: create that account (a transaction the user's wallet signs and pays),
        wait for it to confirm
      → sign one payload → journal entry (0600, status "sent")
      → the identical method, path and body bytes + payment header + Idempotency-Key
      → 2xx settled | 402 rejected (never pay again) | ambiguous → resend the SAME
        payload with the same key once → still ambiguous: exit 4 with the journal id.

Paying from prepaid credits (``use_credits``) uses the same journal and resend rules:
the first request is then the one that spends.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ..auth import ApiKeyAuth, Auth, NoAuth, encode_body
from ..errors import ComputeError, ConfigError, NetworkError, PaymentOutcomeUnknown, PaymentRequired, PolicyError
from ..http import Response, api_error
from ..money import atomic_to_usd, usd
from ..networks import NETWORKS
from . import challenge as ch
from .journal import Journal, public
from .model import Challenge, MppOffer, Offer, Signed
from .policy import Limits, PayeePins, check_mpp_offer, check_offer, mpp_pin_view

AMBIGUOUS_STATUSES = (408, 500, 502, 503, 504, 520, 521, 522, 523, 524)


@dataclass
class PaidCall:
    kind: str  # "provision" | "extend" | "topup": shown to the user, kept in the journal
    path: str
    body: dict
    network: str  # our key: base | solana | megaeth | robinhood
    limits: Limits
    terms: dict  # what the quote shows besides the offer (plan, region, hours, hourly and total USD)
    journal_id: str  # chosen up front so the provision label can carry it
    use_credits: bool = False
    network_explicit: bool = False  # the user named --network: never pay on another rail instead
    auth_on_retry: bool = False  # the call needs an identity on the paid request (e.g. a top-up)
    method: str = "POST"
    context: dict = field(default_factory=dict)  # extra facts for the journal (e.g. old expires_at)
    what: str = "Paid request"


@dataclass
class PaidResult:
    status: int
    body: Any
    headers: Any
    method: str  # "x402" | "mpp" | "credits" | "none"
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

    def payment(self) -> dict:
        """The ``payment`` block of the output."""
        if self.method == "mpp" and self.mpp_offer is not None:
            m = self.mpp_offer
            return {
                "method": "mpp",
                "intent": m.intent,
                "network": "tempo",
                "chain_id": m.chain_id,
                "asset": m.currency,
                "asset_symbol": NETWORKS["tempo"].symbol,
                "amount_atomic": str(m.amount),
                "amount_usd": usd_plain(atomic_to_usd(m.amount, NETWORKS["tempo"].decimals)),
                "payer": self.signed.payer if self.signed else None,
                "payee": m.recipient,
                "tx_hash": self.tx_hash,
                "receipt": self.receipt,
                "idempotency_key": self.idempotency_key,
                "journal_id": self.journal_id,
                "resent": self.resent,
            }
        if self.method != "x402" or self.offer is None:
            return {"method": self.method, "note": self.note, "journal_id": self.journal_id, "idempotency_key": self.idempotency_key, "tx_hash": self.tx_hash}
        o = self.offer
        net = NETWORKS.get(o.key or "")
        return {
            "method": "x402",
            "network": o.key,
            "asset": o.asset,
            "asset_symbol": net.symbol if net else None,
            "amount_atomic": str(o.amount),
            "amount_usd": usd_plain(atomic_to_usd(o.amount, net.decimals)) if net else None,
            "payer": (self.signed.payer if self.signed else None) or (self.settlement or {}).get("payer"),
            "payee": o.pay_to,
            "tx_hash": self.tx_hash,
            "idempotency_key": self.idempotency_key,
            "journal_id": self.journal_id,
            "x402_version": o.version,
            "resent": self.resent,
            **({"recipient_account_created": self.recipient_account_created} if self.recipient_account_created else {}),
        }


def usd_plain(d) -> str:
    """Exact dollars without trailing zeros or exponent: 0.249600 → 0.2496, 2.000000 → 2."""
    return format(d.normalize(), "f")


def _sign(offer: Offer, settings) -> Signed:
    from .schemes import sign_offer  # heavy crypto imports only when paying

    return sign_offer(offer, settings)


def _svm_recipient(offer: Offer, settings) -> dict | None:
    from .schemes import svm_recipient_account

    return svm_recipient_account(offer, settings)


def _svm_create_recipient(offer: Offer, settings, progress) -> dict | None:
    from .schemes import svm_create_recipient_account

    return svm_create_recipient_account(offer, settings, progress=progress)


def _sign_mpp(offer: MppOffer, settings, **kw):
    from .schemes.mpp_tempo import sign_mpp  # pympp only on the MPP path

    return sign_mpp(offer, settings, **kw)


def offer_terms(offer: Offer) -> dict:
    net = NETWORKS.get(offer.key or "")
    return {
        "network": offer.key or offer.network,
        "network_id": offer.network,
        "x402_version": offer.version,
        "scheme": offer.scheme,
        "asset": offer.asset,
        "asset_symbol": net.symbol if net else None,
        "amount_atomic": str(offer.amount),
        "amount_usd": usd_plain(atomic_to_usd(offer.amount, net.decimals)) if net else None,
        "payee": offer.pay_to,
        "max_timeout_seconds": offer.max_timeout_seconds,
    }


def mpp_terms(challenge: Challenge) -> list[dict]:
    return [
        {
            "method": m.method,
            "intent": m.intent,
            "chain_id": m.chain_id,
            "currency": m.currency,
            "amount_atomic": str(m.amount),
            "amount_usd": usd_plain(atomic_to_usd(m.amount, 6)) if m.method == "tempo" else None,  # TIP-20 tokens have 6 decimals
            "recipient": m.recipient,
            "expires": m.expires,
            "pay_with": "--pay mpp" if (m.method, m.intent) == ("tempo", "charge") else "not supported by this client",
        }
        for m in challenge.mpp
    ]


class PaymentFlow:
    def __init__(
        self,
        client,
        *,
        confirm: Callable[[str, Any], None],
        progress: Callable[[str], None] = lambda m: None,
        quote: bool = False,
        accept_payee_change: bool = False,
        pay: str = "auto",
        signer: Callable[[Offer, Any], Signed] = _sign,
        mpp_signer: Callable[..., Any] = _sign_mpp,
        create_recipient_account: bool = False,
        svm_recipient: Callable[[Offer, Any], dict | None] = _svm_recipient,
        svm_create_recipient: Callable[..., dict | None] = _svm_create_recipient,
    ) -> None:
        self.client = client
        self.settings = client.settings
        self.confirm = confirm
        self.progress = progress
        self.quote = quote
        self.accept_payee_change = accept_payee_change
        self.pay = pay
        self.signer = signer
        self.mpp_signer = mpp_signer
        self.create_recipient_account = create_recipient_account
        self.svm_recipient = svm_recipient
        self.svm_create_recipient = svm_create_recipient
        if pay not in ("auto", "x402", "mpp"):
            raise ValueError(f"pay must be auto, x402 or mpp, not {pay!r}")
        self.journal = Journal(self.settings.state_dir)
        self.pins = PayeePins(self.settings.state_dir)
        self.signed_count = 0  # the invariant tests check: never more than one per run

    # -- auth -------------------------------------------------------------------------------
    def _probe_auth(self, required: bool, call: PaidCall | None = None) -> Auth:
        """Management auth for the unpaid request: the instance owner's wallet when the call
        concerns an existing instance (extend), else the configured identity."""
        iid = ((call.context or {}).get("instance_id") if call is not None else None)
        try:
            return self.client.auth_for_instance(iid) if iid else self.client.auth
        except ConfigError:
            if required:
                raise
            return NoAuth()

    def _retry_auth(self, probe_auth: Auth, needs_identity: bool) -> Auth:
        """API key: on both requests. Signature auth: none on the x402 retry (the probe's
        nonce is spent and the payment identifies the payer) unless the call needs an identity;
        then fresh headers, signed again for each send."""
        if isinstance(probe_auth, ApiKeyAuth):
            return probe_auth
        if needs_identity and not isinstance(probe_auth, NoAuth):
            return probe_auth
        return NoAuth()

    # -- the run ----------------------------------------------------------------------------
    def run(self, call: PaidCall) -> PaidResult:
        body = encode_body(call.body)  # the exact bytes for every request of this run
        idem = str(uuid.uuid4())
        if call.use_credits:
            return self._credits(call, body, idem)
        probe_auth = self._probe_auth(required=call.auth_on_retry, call=call)
        resp = self._send(call, body, probe_auth, {})
        if 200 <= resp.status < 300:
            return PaidResult(resp.status, resp.json(), resp.headers, "none", note="The server answered the unpaid request with success: no payment was asked for, none was made.")
        if resp.status != 402:
            raise api_error(resp, call.what)
        challenge = ch.from_response(resp)
        if self.pay == "mpp":
            return self._mpp(call, body, idem, challenge, probe_auth)
        offer = self._pick(challenge, call.network)
        if offer is None:
            self.progress(f"No {call.network} offer in the 402; asking again with X-Accept-Networks: {call.network}")
            again = self._send(call, body, probe_auth, {"X-Accept-Networks": call.network})
            if again.status == 402:
                challenge2 = ch.from_response(again)
                offer = self._pick(challenge2, call.network)
                if offer is not None or not challenge.mpp:
                    challenge = challenge2
        mpp = mpp_terms(challenge)
        if offer is None and self.pay == "auto" and not call.network_explicit and _tempo_charge(challenge) is not None and _has_evm_wallet(self.settings):
            # MPP is the only offer these wallets can pay: take it, under the same rules. Not when
            # the user named a network: paying on Tempo instead would be a rail they did not choose.
            self.progress(f"No x402 offer on {call.network}; paying the MPP (Tempo USDC.e) challenge instead")
            return self._mpp(call, body, idem, challenge, probe_auth)
        if offer is None:
            offered = sorted({o.key or o.network for o in challenge.offers})
            if self.quote:
                return PaidResult(402, None, None, "x402", quote={**call.terms, "offer": None, "offered_networks": offered, "mpp": mpp, "signed": False})
            raise PaymentRequired(
                f"The server offers no x402 payment on {call.network}.",
                code="network_not_offered",
                status=402,
                details={"offered_networks": offered, "mpp": mpp or None},
                hint=f"Pick one of --network {' | '.join(offered)}." if offered else ("Pay the MPP offer with --pay mpp (needs PRIVATE_KEY or an OWS wallet)." if mpp else None),
            )
        terms = {**call.terms, **offer_terms(offer), "mpp": mpp}
        try:
            check_offer(offer, call.limits)
            payee = self.pins.check(offer, accept_change=self.accept_payee_change)
            terms["payee_status"] = payee["status"]
            terms["policy"] = {"ok": True}
        except PolicyError as e:
            if not self.quote:
                raise
            terms["policy"] = {"ok": False, "code": e.code, "message": e.message}
        need = self._recipient_terms(offer, terms) if terms["policy"].get("ok") else None
        if self.quote:
            terms["signed"] = False
            return PaidResult(402, None, None, "x402", offer=offer, quote=terms)

        question = f"Pay {terms['amount_usd']} {terms['asset_symbol']} on {offer.key} to {offer.pay_to} for {call.kind} ({call.terms.get('summary') or call.path})?"
        if need:
            question = (
                f"First create the recipient's token account {need['token_account']}, costing your wallet "
                f"{need['create_total_sol']} SOL ({need['create_cost_lamports']} lamports rent + "
                f"{need['create_fee_lamports']} lamports fee), then: {question}"
            )
        self.confirm(question, terms)
        self.pins.pin(offer, self.settings.base_url)
        if self.signed_count:
            raise ComputeError("Refusing to sign a second payment in one run.", code="internal_error")
        created = None
        if need:
            created = self.svm_create_recipient(offer, self.settings, self.progress)
        self.signed_count += 1
        try:
            signed = self.signer(offer, self.settings)
        except ComputeError as e:
            if created:
                # The side transaction is on chain and cost the user SOL: journal it and say so,
                # whatever stopped the payment (which never left this machine).
                self._journal(
                    call,
                    body,
                    "x402",
                    status="not_sent",
                    reason=f"the payment was not signed: {e.message}",
                    offer={**offer_terms(offer), "raw": _plain(offer.raw)},
                    recipient_account_created=created,
                )
                e.details = {**(e.details if isinstance(e.details, dict) else {"details": e.details}), "recipient_account_created": created, "journal_id": call.journal_id}
            raise
        header_name, header_value = ch.payment_header(challenge, offer, signed)
        entry = self._journal(
            call,
            body,
            "x402",
            offer={**offer_terms(offer), "raw": _plain(offer.raw)},
            payer=signed.payer,
            nonce=signed.nonce,
            valid_before=signed.valid_before,
            idempotency_key=idem,
            payment_header_name=header_name,
            payment_header_value=header_value,
            auth_on_retry=bool(call.auth_on_retry),
            **({"recipient_account_created": created} if created else {}),
        )
        self.progress(f"Paying {terms['amount_usd']} {terms['asset_symbol']} on {offer.key} (journal {entry['id']})")
        retry_auth = self._retry_auth(probe_auth, call.auth_on_retry)
        result = deliver(self.client, self.journal, entry, retry_auth, call.what, progress=self.progress)
        result.offer, result.signed, result.recipient_account_created = offer, signed, created
        return result

    def _recipient_terms(self, offer: Offer, terms: dict) -> dict | None:
        """Solana only: does the payee's token account exist? If not, put its creation cost in the
        terms and either refuse (no opt-in; in a quote, policy not ok) or return what to create."""
        net = NETWORKS.get(offer.key or "")
        if net is None or net.family != "svm":
            return None
        try:
            need = self.svm_recipient(offer, self.settings)
        except ComputeError as e:
            if not self.quote:
                raise
            # A quote still shows the price when the chain cannot be read (or no Solana wallet is set).
            terms["recipient_account"] = {"checked": False, "error": e.message}
            return None
        if need is None:
            terms["recipient_account"] = {"exists": True}
            return None
        from .schemes.svm_exact import insufficient_sol_error, missing_recipient_error

        terms["recipient_account"] = {"exists": False, "create": self.create_recipient_account, **need}
        if not self.create_recipient_account:
            err = missing_recipient_error(need)
        elif not need["payer_can_afford"]:
            err = insufficient_sol_error(need)
        else:
            return need
        if not self.quote:
            raise err
        terms["policy"] = {"ok": False, "code": err.code, "message": err.message, "hint": err.hint}
        return None

    def _credits(self, call: PaidCall, body: bytes, idem: str) -> PaidResult:
        """``use_credits``: the first request spends prepaid credits, so it is journalled and
        guarded like a payment (cap against the catalog price, confirmation, one resend)."""
        auth = self._probe_auth(required=True, call=call)
        if call.limits.expected_micros is None:
            # No 402 names the amount here: the catalog price is the only thing the cap can be held against.
            raise PolicyError(
                f"{call.what} from prepaid credits needs a catalog price to check against the spend cap, and there is none"
                f"{' (' + call.terms['price_check'] + ')' if call.terms.get('price_check') else ''}. Nothing was sent.",
                code="price_unknown",
                details={"cap_usd": str(call.limits.cap_usd), "cap_source": call.limits.cap_source},
                hint="Pay with x402 instead (drop --use-credits): its 402 states the amount and the cap is checked against it.",
            )
        if call.limits.expected_micros is not None:
            exp = atomic_to_usd(call.limits.expected_micros, 6)
            if exp > call.limits.cap_usd:
                raise PolicyError(
                    f"The catalog price {exp} USD is above the spend cap of {call.limits.cap_usd} USD ({call.limits.cap_source}).",
                    code="spend_cap_exceeded",
                    details={"expected_usd": str(exp), "cap_usd": str(call.limits.cap_usd)},
                    hint="Raise it with --max-usd.",
                )
        terms = {**call.terms, "method": "credits"}
        if self.quote:
            return PaidResult(0, None, None, "credits", quote={**terms, "signed": False, "note": "Would be paid from prepaid credits (use_credits); nothing was sent."})
        self.confirm(f"Spend prepaid credits for {call.kind} ({call.terms.get('summary') or call.path})?", terms)
        entry = self._journal(call, body, "credits", idempotency_key=idem, auth_on_retry=True, terms=terms)
        result = deliver(self.client, self.journal, entry, auth, call.what, progress=self.progress, credits=True)
        result.method = "credits"
        result.note = "Paid from prepaid credits (use_credits): the server answered the first request with success, so no on-chain payment was needed."
        return result

    def _mpp(self, call: PaidCall, body: bytes, idem: str, challenge: Challenge, probe_auth: Auth) -> PaidResult:
        """Pay the 402's MPP tempo charge: same policy, pins, quote, confirmation, journal,
        Idempotency-Key and single-resend rules as x402 (``deliver``)."""
        m = _tempo_charge(challenge)
        mpp = mpp_terms(challenge)
        if m is None:
            if self.quote:
                return PaidResult(402, None, None, "mpp", quote={**call.terms, "offer": None, "mpp": mpp, "signed": False})
            raise PaymentRequired(
                "The server's 402 carries no MPP Tempo charge (WWW-Authenticate: Payment method=tempo intent=charge).",
                code="mpp_not_offered",
                status=402,
                details={"mpp": mpp or None, "offered_networks": sorted({o.key or o.network for o in challenge.offers})},
                hint="Pay with x402 instead (--pay x402).",
            )
        terms = {**call.terms, **mpp_offer_terms(m)}
        # Extending (and anything needing an identity) sends management auth on the paid request:
        # an MPP payment does not say whose instance this is. Resolve it before signing anything.
        needs_auth = call.auth_on_retry or call.kind == "extend"
        retry_auth: Auth = NoAuth()
        if needs_auth:
            try:
                iid = (call.context or {}).get("instance_id")
                retry_auth = self.client.auth_for_instance(iid) if iid else self.client.auth
            except ConfigError:
                if not self.quote:
                    raise ConfigError(
                        f"{call.what} through MPP needs management auth (the MPP payment does not identify the owner).",
                        code="auth_required",
                        hint="Set COMPUTE_API_KEY (or the saved per-instance key from an MPP provision), or PRIVATE_KEY for signed auth.",
                    ) from None
        elif isinstance(probe_auth, ApiKeyAuth):
            retry_auth = probe_auth  # an API key goes on both requests, so the order binds to it
        try:
            check_mpp_offer(m, call.limits)
            payee = self.pins.check(mpp_pin_view(m), accept_change=self.accept_payee_change)
            terms["payee_status"] = payee["status"]
            terms["policy"] = {"ok": True}
        except PolicyError as e:
            if not self.quote:
                raise
            terms["policy"] = {"ok": False, "code": e.code, "message": e.message}
        if self.quote:
            terms["signed"] = False
            return PaidResult(402, None, None, "mpp", mpp_offer=m, quote=terms)

        self.confirm(
            f"Pay {terms['amount_usd']} USDC.e on Tempo (MPP) to {m.recipient} for {call.kind} ({call.terms.get('summary') or call.path})?",
            terms,
        )
        self.pins.pin(mpp_pin_view(m), self.settings.base_url)
        if self.signed_count:
            raise ComputeError("Refusing to sign a second payment in one run.", code="internal_error")
        self.signed_count += 1
        from .policy import cap_atomic

        signed = self.mpp_signer(m, self.settings, max_atomic=cap_atomic(call.limits.cap_usd, 6), recipient=m.recipient)
        entry = self._journal(
            call,
            body,
            "mpp",
            offer={**mpp_offer_terms(m), "challenge_id": m.id},
            payer=signed.payer,
            nonce=signed.tx_hash,
            expected_tx_hash=signed.tx_hash,
            idempotency_key=idem,
            payment_header_name=signed.header,
            payment_header_value=signed.authorization,
            auth_on_retry=needs_auth,
        )
        self.progress(f"Paying {terms['amount_usd']} USDC.e on Tempo via MPP (journal {entry['id']})")
        result = deliver(self.client, self.journal, entry, retry_auth, call.what, progress=self.progress)
        result.mpp_offer, result.method = m, "mpp"
        result.signed = Signed(payload={}, payer=signed.payer, nonce=signed.tx_hash or "")
        return result

    # -- pieces -----------------------------------------------------------------------------
    def _journal(self, call: PaidCall, body: bytes, method: str, **fields: Any) -> dict:
        """One journal entry: what every payment method records about the request, plus
        its own ``fields`` (the signed header, nonce, offer...)."""
        return self.journal.create(
            {
                "id": call.journal_id,
                "kind": call.kind,
                "method": method,
                "base_url": self.settings.base_url,
                "request": {"method": call.method, "path": call.path, "body": body.decode("utf-8")},
                "label": call.body.get("label"),
                "terms": dict(call.terms),
                "context": call.context,
                **fields,
            }
        )

    def _send(self, call: PaidCall, body: bytes, auth: Auth, extra: dict) -> Response:
        return self.client.send(call.method, call.path, raw_body=body, auth=auth, headers=extra)

    @staticmethod
    def _pick(challenge: Challenge, network: str) -> Offer | None:
        """The offer on ``network``; among several, prefer exact with the canonical asset
        (the policy then refuses anything else rather than silently picking it)."""
        from ..networks import is_canonical_asset

        cands = [o for o in challenge.offers if o.key == network]
        if not cands:
            return None
        cands.sort(key=lambda o: (o.scheme != "exact", not is_canonical_asset(network, o.asset)))
        return cands[0]


def _plain(obj: Any) -> Any:
    """The challenge's requirement as the journal can store it: its numbers were parsed as Decimal."""
    import json

    return json.loads(json.dumps(obj, default=ch.json_number))


def _has_evm_wallet(settings) -> bool:
    """A raw EVM key or an OWS vault (which signs Tempo transactions too): a wallet that can pay MPP."""
    from ..wallets import evm_uses_ows

    return bool(settings.private_key) or evm_uses_ows(settings)


def _tempo_charge(challenge: Challenge) -> MppOffer | None:
    return next((m for m in challenge.mpp if (m.method, m.intent) == ("tempo", "charge")), None)


def mpp_offer_terms(m: MppOffer) -> dict:
    net = NETWORKS["tempo"]
    return {
        "method": "mpp",
        "network": "tempo",
        "intent": m.intent,
        "chain_id": m.chain_id,
        "asset": m.currency,
        "asset_symbol": net.symbol,
        "amount_atomic": str(m.amount),
        "amount_usd": usd_plain(atomic_to_usd(m.amount, net.decimals)),
        "payee": m.recipient,
        "expires": m.expires,
    }


def _classify(resp: Response) -> str:
    if 200 <= resp.status < 300:
        return "settled"
    if resp.status in AMBIGUOUS_STATUSES:
        return "ambiguous"
    return "rejected"


def deliver(client, journal: Journal, entry: dict, auth: Auth, what: str, *, progress=lambda m: None, credits: bool = False, allow_resend: bool = True) -> PaidResult:
    """Send the journalled request (same bytes, same payment header, same Idempotency-Key);
    resend it once on an ambiguous outcome; record the outcome; never sign anything."""
    req = entry["request"]
    body = req["body"].encode("utf-8")
    headers = {"Idempotency-Key": entry["idempotency_key"]}
    if entry.get("payment_header_value"):
        headers[entry["payment_header_name"]] = entry["payment_header_value"]
    attempts = 2 if allow_resend else 1
    first_ambiguous: str | None = None
    resp: Response | None = None
    for attempt in range(attempts):
        try:
            resp = client.send(req["method"], req["path"], raw_body=body, auth=auth, headers=headers, retry_reads=False)
        except NetworkError as e:
            sent = bool((e.details or {}).get("sent", True))
            if not sent and first_ambiguous is None:
                if entry.get("status") == "sent":  # a reconcile resend keeps the earlier status
                    journal.update(entry["id"], "not_sent", reason=e.message)
                raise NetworkError(
                    f"{e.message} The payment never left this machine; nothing was charged.",
                    details={"journal_id": entry["id"], "sent": False},
                    hint="Check the base URL and connection, then run the command again.",
                ) from None
            reason = e.message
            resp = None
        else:
            kind = _classify(resp)
            if kind == "settled":
                return _settled(journal, entry, resp, resent=attempt > 0)
            if kind == "rejected" and first_ambiguous is None:
                _rejected(journal, entry, resp, what, credits)
            reason = f"HTTP {resp.status}"
        if first_ambiguous is None:
            first_ambiguous = reason
            if attempt + 1 < attempts:
                progress(f"Outcome unknown ({reason}); resending the same signed payment with the same Idempotency-Key")
                continue
    # Still unknown: never sign again; hand the user the journal id.
    last = reason if resp is None else f"HTTP {resp.status}"
    journal.update(entry["id"], "unknown", reason=f"first: {first_ambiguous}; last: {last}")
    raise PaymentOutcomeUnknown(
        f"The payment was sent but its outcome is unknown ({first_ambiguous}). Do not pay again: reconcile instead.",
        details={
            "journal_id": entry["id"],
            "idempotency_key": entry["idempotency_key"],
            "label": entry.get("label"),
            "reconcile": f"python scripts/reconcile.py {entry['id']}",
            "last_status": resp.status if resp is not None else None,
            "last_body": (resp.json() if resp is not None else None),
        },
        hint=f"Run: python scripts/reconcile.py {entry['id']} (it looks the order up; --resend re-sends the same signed payment, never a new one).",
    )


def _settled(journal: Journal, entry: dict, resp: Response, *, resent: bool) -> PaidResult:
    body = resp.json()
    sr = ch.settlement(resp.headers)
    receipt = ch.mpp_receipt(resp.headers)
    tx = (receipt or {}).get("reference") or (sr or {}).get("transaction") or (body.get("tx_hash") if isinstance(body, dict) else None) or None
    order = body.get("order") if isinstance(body, dict) and isinstance(body.get("order"), dict) else {}
    journal.update(entry["id"], "settled", order_id=order.get("id"), tx_hash=tx, http_status=resp.status, replayed=resp.headers.get("Idempotent-Replayed") == "true")
    return PaidResult(resp.status, body, resp.headers, entry.get("method", "x402"), settlement=sr, tx_hash=tx, journal_id=entry["id"], idempotency_key=entry["idempotency_key"], resent=resent, receipt=receipt)


def _rejected(journal: Journal, entry: dict, resp: Response, what: str, credits: bool) -> None:
    reason = ch.rejection_reason(resp)
    journal.update(entry["id"], "rejected", reason=reason, http_status=resp.status)
    if credits and resp.status == 402:
        raise PaymentRequired(
            f"{what}: not enough prepaid credits ({reason}).",
            code="insufficient_credits",
            status=402,
            details={"journal_id": entry["id"], "body": resp.json()},
            hint="Top up with credits_topup.py, or pay with x402 (drop --use-credits).",
        )
    err = api_error(resp, what)
    if resp.status == 402:
        err = PaymentRequired(
            f"{what}: the server refused the payment ({reason}). No other payment was made.",
            code="payment_rejected",
            status=402,
            details={"journal_id": entry["id"], "reason": reason, "body": resp.json()},
            hint="Check the wallet's balance on that network; the journal entry records the refusal.",
        )
    err.details = err.details if isinstance(err.details, dict) else {"body": err.details}
    err.details.setdefault("journal_id", entry["id"])
    raise err


__all__ = ["PaidCall", "PaidResult", "PaymentFlow", "deliver", "offer_terms", "mpp_terms", "mpp_offer_terms", "public", "usd"]
