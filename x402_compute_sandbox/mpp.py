"""MPP (`WWW-Authenticate: Payment`) on the sandbox: tempo `charge` challenges, credential
verification against the Tempo ledger, receipts, and the one-time management key.

Wire formats are the ones in shared/reference/mpp-ows.md Part A; the choices this sandbox makes:

Challenge (on every 402 of an MPP-enabled paid route, beside the x402 challenge):
    Payment id="…", realm="<sandbox host:port>", method="tempo", intent="charge",
            request="<b64url-nopad JCS {amount, currency, recipient, methodDetails:{chainId:4217}}>",
            description="…", expires="<RFC 3339, now + 5 min>", digest="sha-256=<std b64 of the body>",
            opaque="<b64url-nopad JCS {route: 'POST /compute/provision', nonce: <random>}>"
    id = base64url-nopad(HMAC-SHA256(secret, "realm|method|intent|request|expires|digest|opaque")),
    the same binding pympp computes, so `mpp.Challenge.create` with our secret gives the same id.
    `amount` is the catalog price in USDC.e atomic units (6 decimals = the price in micro-USD, the
    same number the x402 challenge asks for). The opaque route binds a challenge to its endpoint,
    the random nonce makes two identical requests get distinct challenges (and so distinct memos).
    The secret is 32 random bytes, hex, in <state-dir>/mpp-secret (0600), kept across restarts.

Credential (`Authorization: Payment <b64url JSON>`), checked in this order:
    decodes (else 402 malformed-credential) -> method/intent tempo/charge (400 method-unsupported)
    -> HMAC id recomputed over the echoed strings, realm ours (402 invalid-challenge)
    -> challenge not already paid (403 verification-failed: a replay, as pympp answers)
    -> not expired (402 payment-expired) -> issued for this route, body digest and price (402
    invalid-challenge) -> payload `{type: "transaction", signature: 0x76…}` (pull mode only; push
    `hash` payloads are refused) -> the Tempo transaction: chain 4217, valid_before not past, exactly
    one call, to USDC.e, `transferWithMemo` or `transfer`, recipient and amount exactly the
    challenge's, a memo (when present) that is the MPP attribution memo bound to this realm and
    challenge id, the sender recovered from the signature, `source` (when present) naming that
    sender (402 verification-failed) -> the ledger applies it (402 payment-insufficient when the
    sender cannot cover amount + gas reserve).
    Every 402 carries a fresh challenge and an RFC 9457 problem body (`type`
    https://paymentauth.org/problems/<slug>, `title`, `status`, `detail`, plus `error` = detail
    so clients of the compute API's `{error}` shape read it too).

Replay: one settlement per challenge id and per transaction hash, recorded in
<state-dir>/mpp.sqlite3 (survives restarts). A replayed credential is answered 403
`verification-failed` with no challenge: the payment was valid once, the policy refuses reuse.
A client that lost the answer must resend with the same `Idempotency-Key`, which replays the
stored response instead (payments.Idempotency).

Management key: a provision paid via MPP without management auth gets a one-time `x402c_…`
API key, owned by the payer's address; the api_keys table keeps only its SHA-256. The
Idempotency-Key record keeps the whole 2xx response (key included) so that a client which lost
that answer gets it back by resending with the same key; that is the only other copy.

Receipt (on the 2xx only): `Payment-Receipt: b64url-nopad({"method": "tempo", "reference":
<tx hash>, "status": "success", "timestamp": <RFC 3339>})`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from . import tempo

PROBLEM_BASE = "https://paymentauth.org/problems/"
METHOD, INTENT = "tempo", "charge"
CHALLENGE_TTL_SECONDS = 300
MAX_CREDENTIAL_CHARS = 64 * 1024
DEFAULT_ROUTES = (re.compile(r"^/compute/provision$"), re.compile(r"^/compute/instances/[^/]+/extend$"))
TOPUP_ROUTE = re.compile(r"^/compute/credits/topup$")
MEMO_TAG = bytes.fromhex("ef1ed712")   # keccak("mpp")[:4]
MEMO_VERSION = 1
MANAGEMENT_NOTE = ("This management API key is shown once. It is the only credential that can manage "
                   "this instance (send it as X-API-Key). Store it now; the service keeps only its hash.")

_TITLES = {
    "payment-required": "Payment Required", "payment-insufficient": "Payment Insufficient",
    "payment-expired": "Payment Expired", "verification-failed": "Verification Failed",
    "method-unsupported": "Method Unsupported", "malformed-credential": "Malformed Credential",
    "invalid-challenge": "Invalid Challenge",
}


# --- encodings ----------------------------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical JSON for the values we emit (objects, arrays, strings, integers, booleans).

    Keys sort by UTF-16 code units, as JCS requires; floats are refused rather than risk a
    representation that differs from ECMAScript's.
    """
    def enc(v: Any) -> str:
        if isinstance(v, dict):
            items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-16-be"))
            return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + enc(x) for k, x in items) + "}"
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(enc(x) for x in v) + "]"
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, int):
            if abs(v) > 2**53 - 1:
                raise ValueError("integer outside the I-JSON range; send it as a string")
            return str(v)
        raise TypeError(f"cannot canonicalise {type(v).__name__}")
    return enc(value).encode("utf-8")


def body_digest(body: bytes) -> str:
    """pympp/mppx form: `sha-256=<standard base64>` (no RFC 9530 colons)."""
    return "sha-256=" + base64.b64encode(hashlib.sha256(body or b"").digest()).decode("ascii")


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text):
        raise ValueError("not an RFC 3339 timestamp")
    frac = re.search(r"\.(\d+)", text)
    base = re.sub(r"\.\d+", "", text).replace("Z", "+00:00")
    return datetime.fromisoformat(base).timestamp() + (float("0." + frac.group(1)) if frac else 0.0)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def attribution_memo(realm: str, challenge_id: str, client_id: Optional[str] = None) -> bytes:
    """The 32-byte MPP attribution memo (mpp-ows.md §A.6): what a bound payment must carry."""
    k = tempo.keccak
    return (MEMO_TAG + bytes([MEMO_VERSION]) + k(realm.encode())[:10]
            + (k(client_id.encode())[:10] if client_id else bytes(10)) + k(challenge_id.encode())[:7])


def memo_bound(memo: bytes, realm: str, challenge_id: str) -> bool:
    """Tag, version, server fingerprint and challenge nonce; the client fingerprint is free."""
    return (len(memo) == 32 and memo[:4] == MEMO_TAG and memo[4] == MEMO_VERSION
            and memo[5:15] == tempo.keccak(realm.encode())[:10]
            and memo[25:32] == tempo.keccak(challenge_id.encode())[:7])


# --- secret and replay store --------------------------------------------------------------------
def load_secret(state_dir: str) -> str:
    """The HMAC secret, created once per state dir (0600) so challenges survive a restart."""
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, "mpp-secret")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        with open(path, encoding="ascii") as fh:
            secret = fh.read().strip()
        if not re.fullmatch(r"[0-9a-f]{64}", secret):
            raise RuntimeError(f"{path} is not a 64-hex-digit secret; delete it to have a new one made")
        return secret
    secret = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(secret + "\n")
    return secret


class ConsumedStore:
    """Challenge ids and transaction hashes that have paid once (SQLite, one lock)."""

    def __init__(self, state_dir: str):
        self._lock = threading.Lock()
        self._db = sqlite3.connect(os.path.join(state_dir, "mpp.sqlite3"), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS consumed (challenge_id TEXT PRIMARY KEY, "
                         "tx_hash TEXT NOT NULL UNIQUE, payer TEXT NOT NULL, amount TEXT NOT NULL, "
                         "created REAL NOT NULL)")

    def seen(self, challenge_id: str, tx_hash: Optional[str] = None) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM consumed WHERE challenge_id=? OR tx_hash=?",
                                   (challenge_id, (tx_hash or "").lower())).fetchone()
            return row is not None

    def add(self, challenge_id: str, tx_hash: str, payer: str, amount: int) -> None:
        with self._lock:
            self._db.execute("INSERT INTO consumed(challenge_id, tx_hash, payer, amount, created) "
                             "VALUES (?,?,?,?,?)", (challenge_id, tx_hash.lower(), payer, str(amount), time.time()))

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM consumed").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --- results ------------------------------------------------------------------------------------
def challenge_mac(secret: bytes, *parts: str) -> str:
    """A challenge id: HMAC-SHA256 over its parameters (realm, method, intent, request, expires,
    digest, opaque), so only this server can issue one and none can be altered."""
    return b64url(hmac.new(secret, "|".join(parts).encode("utf-8"), hashlib.sha256).digest())


def checked_echo(ch: dict, request: Any, *, method: str, intent: str, realm: str,
                 challenge_id: Callable[[str, str, str, str, str], str], already_paid: Callable[[str], bool],
                 clock: Callable[[], float]) -> tuple[dict, Any, Any]:
    """The challenge a credential echoes, checked alike for every method this sandbox issues (Tempo,
    Stripe): string fields, method and intent, the HMAC id over its parameters, the realm, not paid
    before, not expired, decodable, issued for this endpoint and this body. Returns (fields, the
    decoded request, the decoded opaque); the terms are the caller's to compare. Raises MppRefusal."""
    fields = {}
    for name in ("id", "realm", "method", "intent", "request", "expires", "digest", "opaque"):
        v = ch.get(name)
        if v is not None and not isinstance(v, str):
            raise MppRefusal(402, "malformed-credential", f"challenge.{name} must be a string")
        fields[name] = v or ""
    if fields["method"] != method or fields["intent"] != intent:
        raise MppRefusal(400, "method-unsupported", f"only method={method!r} intent={intent!r} is accepted here")
    expected = challenge_id(fields["realm"], fields["request"], fields["expires"], fields["digest"], fields["opaque"])
    if not hmac.compare_digest(expected.encode(), fields["id"].encode()):
        raise MppRefusal(402, "invalid-challenge", "challenge id does not match its parameters "
                                                  "(not issued by this server, or altered)")
    if fields["realm"] != realm:
        raise MppRefusal(402, "invalid-challenge", f"challenge realm {fields['realm']!r} is not {realm!r}")
    if already_paid(fields["id"]):
        raise MppRefusal(403, "verification-failed", "this challenge was already paid: credential replayed", fresh=False)
    try:
        expires_at = parse_rfc3339(fields["expires"])
    except ValueError:
        raise MppRefusal(402, "invalid-challenge", "challenge has no valid `expires`")
    if clock() >= expires_at:
        raise MppRefusal(402, "payment-expired", f"challenge expired at {fields['expires']}")
    try:
        req = json.loads(b64url_decode(fields["request"]).decode("utf-8"))
        opaque = json.loads(b64url_decode(fields["opaque"]).decode("utf-8")) if fields["opaque"] else {}
    except (ValueError, UnicodeDecodeError):
        raise MppRefusal(402, "invalid-challenge", "challenge request/opaque do not decode")
    route = f"{request.method.upper()} {request.path.rstrip('/')}"
    if not isinstance(opaque, dict) or opaque.get("route") != route:
        raise MppRefusal(402, "invalid-challenge", f"challenge was issued for another endpoint, not {route}")
    if not hmac.compare_digest(fields["digest"].encode(), body_digest(request.body).encode()):
        raise MppRefusal(402, "invalid-challenge", "request body differs from the one the challenge was issued for")
    return fields, req, opaque


class MppRefusal(Exception):
    """A refused credential: `status` with an RFC 9457 body; `fresh` = attach a new challenge."""

    def __init__(self, status: int, slug: str, detail: str, fresh: bool = True):
        super().__init__(detail)
        self.status, self.slug, self.detail, self.fresh = status, slug, detail, fresh

    def problem(self) -> dict:
        return {"type": PROBLEM_BASE + self.slug, "title": _TITLES.get(self.slug, self.slug),
                "status": self.status, "detail": self.detail, "error": self.detail}


@dataclass(frozen=True)
class MppPayment:
    payer: str                 # checksummed Tempo (EVM) address recovered from the signature
    tx_hash: str
    amount_atomic: int
    challenge_id: str
    receipt_header: str        # Payment-Receipt value
    ledger_receipt: dict


@dataclass(frozen=True)
class Challenge:
    id: str
    realm: str
    request_b64: str
    expires: str
    digest: str
    opaque_b64: str
    description: str
    request: dict

    def header(self) -> str:
        parts = [("id", self.id), ("realm", self.realm), ("method", METHOD), ("intent", INTENT),
                 ("request", self.request_b64), ("description", self.description),
                 ("expires", self.expires), ("digest", self.digest), ("opaque", self.opaque_b64)]
        return "Payment " + ", ".join(f"{k}={_quote(v)}" for k, v in parts if v)


def _header(headers: Any, name: str) -> Optional[str]:
    try:
        return headers.get(name)
    except AttributeError:
        return None


class Mpp:
    """The sandbox's MPP tempo-charge server; also the `PaymentHook` payments.Payments calls."""

    def __init__(self, ledger: tempo.TempoLedger, *, state_dir: str, recipient: str,
                 realm: str = "127.0.0.1:8402", ttl_seconds: int = CHALLENGE_TTL_SECONDS,
                 topup: bool = False, api_keys=None, clock: Callable[[], float] = time.time):
        self.ledger = ledger
        self.recipient = tempo.checksum(bytes.fromhex(recipient[2:]))
        self.realm = realm                  # the app sets host:port once the port is bound
        self.ttl = ttl_seconds
        self.routes = DEFAULT_ROUTES + ((TOPUP_ROUTE,) if topup else ())
        self.api_keys = api_keys            # the sandbox Store (add_api_key) for management keys
        self.clock = clock
        self._secret = load_secret(state_dir).encode("utf-8")
        self.consumed = ConsumedStore(state_dir)
        self._lock = threading.Lock()       # verify-then-consume is one step

    # --- challenge ------------------------------------------------------------------------------
    def offered(self, request: Any, offer: Any) -> bool:
        """MPP is offered on the configured routes, unless the offer opts out (`mpp=False`)."""
        return getattr(offer, "mpp", True) and any(r.match(request.path.rstrip("/")) for r in self.routes)

    def _id(self, realm: str, request_b64: str, expires: str, digest: str, opaque_b64: str) -> str:
        return challenge_mac(self._secret, realm, METHOD, INTENT, request_b64, expires, digest, opaque_b64)

    def request_for(self, amount_atomic: int) -> dict:
        return {"amount": str(amount_atomic), "currency": tempo.USDC_E, "recipient": self.recipient,
                "methodDetails": {"chainId": tempo.CHAIN_ID}}

    def issue(self, method: str, path: str, body: bytes, amount_atomic: int, description: str = "") -> Challenge:
        req = self.request_for(amount_atomic)
        request_b64 = b64url(jcs(req))
        expires = rfc3339(self.clock() + self.ttl)
        digest = body_digest(body)
        opaque_b64 = b64url(jcs({"nonce": secrets.token_hex(8), "route": f"{method.upper()} {path.rstrip('/')}"}))
        cid = self._id(self.realm, request_b64, expires, digest, opaque_b64)
        return Challenge(cid, self.realm, request_b64, expires, digest, opaque_b64, description, req)

    def challenge_for(self, request: Any, offer: Any) -> Challenge:
        return self.issue(request.method, request.path, request.body, offer.amount_usd_micros, offer.description)

    def challenge_headers(self, request: Any, offer: Any) -> dict:
        if not self.offered(request, offer):
            return {}
        return {"WWW-Authenticate": self.challenge_for(request, offer).header(), "Cache-Control": "no-store"}

    # --- credential -----------------------------------------------------------------------------
    @staticmethod
    def credential_of(request: Any) -> Optional[str]:
        """The credential text of `Authorization: Payment <cred>` (scheme case-insensitive), else None."""
        value = _header(request.headers, "Authorization")
        if not value:
            return None
        scheme, _, rest = value.strip().partition(" ")
        return rest.strip() if scheme.lower() == "payment" else None

    def verify(self, request: Any, amount_atomic: int) -> MppPayment:
        """Verify and settle the request's MPP credential. Raises MppRefusal."""
        raw = self.credential_of(request)
        if raw is None:
            raise MppRefusal(402, "payment-required", "Authorization: Payment credential is required")
        if len(raw) > MAX_CREDENTIAL_CHARS:
            raise MppRefusal(402, "malformed-credential", "credential larger than 64 KiB")
        try:
            cred = json.loads(b64url_decode(raw).decode("utf-8"))
        except (ValueError, UnicodeDecodeError, binascii.Error, RecursionError):
            raise MppRefusal(402, "malformed-credential", "credential is not base64url-encoded JSON")
        ch = cred.get("challenge") if isinstance(cred, dict) else None
        payload = cred.get("payload") if isinstance(cred, dict) else None
        if not isinstance(ch, dict) or not isinstance(payload, dict):
            raise MppRefusal(402, "malformed-credential", "credential needs `challenge` and `payload` objects")
        if ch.get("header") not in (None, "", "Authorization"):
            raise MppRefusal(402, "invalid-challenge", "this server did not ask for another credential header")
        fields, req, opaque = checked_echo(ch, request, method=METHOD, intent=INTENT, realm=self.realm,
                                           challenge_id=self._id, already_paid=self.consumed.seen, clock=self.clock)
        cid = fields["id"]
        if req != self.request_for(amount_atomic):
            raise MppRefusal(402, "invalid-challenge",
                             f"challenge was issued for other payment terms; this request costs "
                             f"{amount_atomic} USDC.e atomic units to {self.recipient} on chain {tempo.CHAIN_ID}")
        if payload.get("type") != "transaction" or not isinstance(payload.get("signature"), str):
            raise MppRefusal(402, "verification-failed",
                             "payload must be {type: 'transaction', signature: <signed 0x76 tx>}: this server "
                             "broadcasts the transaction itself (push-mode `hash` payloads are not accepted)")
        sig = payload["signature"]
        try:
            raw_tx = bytes.fromhex(sig[2:] if sig.startswith("0x") else "!")
        except ValueError:
            raise MppRefusal(402, "malformed-credential", "payload.signature is not 0x-prefixed hex")
        try:
            tx = tempo.decode_tx(raw_tx)
        except tempo.TxRejected as rej:
            raise MppRefusal(402, "verification-failed", f"transaction rejected: {rej.message}")
        self._check_tx(tx, cid, amount_atomic, cred.get("source"))
        with self._lock:
            if self.consumed.seen(cid, tx.hash):
                raise MppRefusal(403, "verification-failed", "this payment was already used: credential replayed",
                                 fresh=False)
            try:
                receipt = self.ledger.submit(tx)
            except tempo.TxRejected as rej:
                if rej.reason == "already_known":
                    raise MppRefusal(403, "verification-failed", "transaction already included: replayed", fresh=False)
                if rej.reason == "insufficient_funds":
                    raise MppRefusal(402, "payment-insufficient", rej.message)
                raise MppRefusal(402, "verification-failed", f"transaction rejected: {rej.message}")
            self.consumed.add(cid, tx.hash, tx.sender, amount_atomic)
        receipt_json = {"method": METHOD, "reference": tx.hash, "status": "success",
                        "timestamp": rfc3339(self.clock())}
        return MppPayment(payer=tx.sender, tx_hash=tx.hash, amount_atomic=amount_atomic, challenge_id=cid,
                          receipt_header=b64url(jcs(receipt_json)), ledger_receipt=receipt)

    def _check_tx(self, tx: tempo.TempoTx, cid: str, amount: int, source: Any) -> None:
        def fail(msg: str):
            raise MppRefusal(402, "verification-failed", msg)
        if tx.chain_id != tempo.CHAIN_ID:
            fail(f"transaction is for chain {tx.chain_id}, not {tempo.CHAIN_ID}")
        if tx.valid_before is not None and self.clock() >= tx.valid_before:
            fail("transaction valid_before has passed")
        if len(tx.calls) != 1:
            fail(f"transaction must make exactly one call (it makes {len(tx.calls)})")
        call = tx.calls[0]
        if call.to.lower() != tempo.USDC_E.lower():
            fail("transaction does not call the challenge's currency (USDC.e)")
        try:
            t = tempo.decode_transfer(call)
        except tempo.TxRejected as rej:
            fail(rej.message)
        if t.recipient.lower() != self.recipient.lower():
            fail("transfer recipient is not the challenge's recipient")
        if t.amount != amount:
            fail(f"transfer amount {t.amount} is not the challenge's amount {amount}")
        if t.memo is not None and not memo_bound(t.memo, self.realm, cid):
            fail("memo is not the MPP attribution memo bound to this challenge and realm")
        if source is not None:
            want = f"did:pkh:eip155:{tempo.CHAIN_ID}:{tx.sender}".lower()
            if not isinstance(source, str) or source.lower() != want:
                fail("credential `source` does not name the transaction's signer")

    # --- PaymentHook (payments.Payments) -------------------------------------------------------------
    def refusal_response(self, request: Any, offer: Any, refusal: MppRefusal):
        from .server import Response
        headers = {"Content-Type": "application/problem+json", "Cache-Control": "no-store"}
        if refusal.fresh and self.offered(request, offer):
            headers["WWW-Authenticate"] = self.challenge_for(request, offer).header()
        return Response(refusal.status, refusal.problem(), headers)

    def try_pay(self, request: Any, offer: Any):
        """None when the request carries no MPP credential; a Settlement when it paid; else refuse."""
        if self.credential_of(request) is None:
            return None
        from .payments import PaymentRefused, Settlement
        if not self.offered(request, offer):
            raise PaymentRefused(self.refusal_response(request, offer, MppRefusal(
                400, "method-unsupported", "MPP is not accepted on this endpoint; pay with x402", fresh=False)))
        try:
            paid = self.verify(request, offer.amount_usd_micros)   # USDC.e: 6 decimals = micro-USD
        except MppRefusal as refusal:
            raise PaymentRefused(self.refusal_response(request, offer, refusal))
        return Settlement(method="mpp", network="tempo", payer=paid.payer, transaction=paid.tx_hash,
                          amount_atomic=paid.amount_atomic, response_headers={"Payment-Receipt": paid.receipt_header})

    # --- the one-time management key (compute-api.md §3) ---------------------------------------
    def issue_management_key(self, owner: str, order_id: str, created_at: str) -> dict:
        """A new `x402c_…` API key owned by the MPP payer; only its SHA-256 is stored.

        Bound to the payer's address (the instance's owner), so with it the payer manages this
        instance (and any other the same Tempo address paid for), and nobody else's.
        """
        from .auth import hash_api_key, new_api_key
        key_id, key = new_api_key()
        self.api_keys.add_api_key(key_id, owner, hash_api_key(key), key[-4:], f"mpp-management:{order_id}",
                                  created_at)
        return {"management_api_key": key, "management_api_key_id": key_id,
                "management_api_key_last4": key[-4:], "management_note": MANAGEMENT_NOTE}
