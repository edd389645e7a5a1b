"""Read everything a 402 carries, and write the payment header that answers it.

A 402 from the compute API can hold, at once:
- an x402 v1 challenge as the JSON body (``{"x402Version": 1, "accepts": [...]}``);
- an x402 v2 challenge in the ``PAYMENT-REQUIRED`` header (base64 JSON);
- one or more MPP challenges in ``WWW-Authenticate: Payment ...`` (RFC 9110 auth-params).

The version is detected from the 402 (header → v2, body → v1) and the answer is
written in kind (``PAYMENT-SIGNATURE`` for v2, ``X-PAYMENT`` for v1): a v2 server
ignores ``X-PAYMENT`` and a v1 server ignores ``PAYMENT-SIGNATURE`` (x402.md §13.1).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from decimal import Decimal
from typing import Any, Mapping

from ..errors import ComputeError
from ..api.http import loads
from ..networks import network_key
from .model import Challenge, MppOffer, Offer, Signed

V1_PAYMENT_HEADER = "X-PAYMENT"
V2_PAYMENT_HEADER = "PAYMENT-SIGNATURE"
V2_REQUIRED_HEADER = "PAYMENT-REQUIRED"
SETTLEMENT_HEADERS = ("PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE")
MAX_HEADER_CHARS = 64 * 1024
MAX_AUTH_HEADER_CHARS = 1024 * 1024  # every WWW-Authenticate line merged: read no more than this


class ChallengeError(ComputeError):
    """The 402 could not be understood; nothing was signed."""

    code = "bad_challenge"


# -- helpers ----------------------------------------------------------------------------------


def b64_json(value: str, what: str) -> Any:
    """Standard (or URL-safe) base64, padding optional, of UTF-8 JSON."""
    text = (value or "").strip()
    if not text or len(text) > MAX_HEADER_CHARS:
        raise ChallengeError(f"{what} is empty or too large.")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if ("-" in text or "_" in text) else None, validate=True)
        return loads(raw.decode("utf-8"), parse_float=Decimal)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ChallengeError(f"{what} is not base64-encoded JSON.", details={"value": text[:200]}) from None


def json_number(value: Any) -> Any:
    """``json.dumps`` default for the Decimals a challenge was parsed into (``parse_float=Decimal``):
    echoed back (v2 ``accepted``) or journalled, a number the server wrote must stay a number.
    A whole one becomes an int (exact); any other becomes the float the server's own JSON parser
    made of the same text. Only echoed data takes this path: amounts are parsed by ``_atomic``."""
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value() and value.adjusted() < MAX_DIGITS:
            return int(value)
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def encode_b64_json(obj: Any) -> str:
    """Standard padded base64 of compact UTF-8 JSON: the x402 header encoding."""
    return base64.b64encode(json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=json_number).encode("utf-8")).decode("ascii")


MAX_DIGITS = 78  # uint256 has 78 decimal digits; anything longer is no amount (and 1e999999999 would hang int())


def small_int(value: Any) -> int | None:
    """A whole JSON number or digit string of at most MAX_DIGITS digits, else None. Never raises
    (Infinity, NaN, 1e999999999, "abc"): for optional fields such as maxTimeoutSeconds or a chain id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) < 10**MAX_DIGITS else None
    if isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value() and value.adjusted() < MAX_DIGITS:
            return int(value)
        return None
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,78}", value.strip()):
        return int(value.strip())
    return None


def _atomic(value: Any, what: str) -> int:
    """An amount in atomic units: a decimal digit string (or a JSON integer), never a fraction."""
    if isinstance(value, bool):
        raise ChallengeError(f"{what} is not an amount: {value!r}.")
    if isinstance(value, int):
        if value >= 10**MAX_DIGITS:
            raise ChallengeError(f"{what} is too large to be an amount.")
        n = value
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        if value.adjusted() >= MAX_DIGITS:
            raise ChallengeError(f"{what} is too large to be an amount: {value!r}.")
        n = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,78}", value.strip()):
        n = int(value.strip())
    else:
        raise ChallengeError(f"{what} must be a whole number of atomic units, got {value!r}.")
    if n < 0:
        raise ChallengeError(f"{what} is negative: {value!r}.")
    return n


def _offer(req: Any, version: int, resource: Any, extensions: dict | None, where: str) -> Offer:
    if not isinstance(req, dict):
        raise ChallengeError(f"{where} is not an object.")
    amount_field = "maxAmountRequired" if version == 1 else "amount"
    missing = [k for k in ("scheme", "network", amount_field, "asset", "payTo") if req.get(k) in (None, "")]
    if missing:
        raise ChallengeError(f"{where} lacks {', '.join(missing)}.", details={"requirement": req})
    for k in ("scheme", "network", "asset", "payTo"):
        if not isinstance(req[k], str):
            raise ChallengeError(f"{where}.{k} must be a string.", details={"requirement": req})
    mts = small_int(req.get("maxTimeoutSeconds"))
    extra = req.get("extra")
    return Offer(
        version=version,
        scheme=req["scheme"],
        network=req["network"],
        key=network_key(req["network"]),
        amount=_atomic(req[amount_field], f"{where}.{amount_field}"),
        asset=req["asset"],
        pay_to=req["payTo"],
        max_timeout_seconds=mts,
        extra=dict(extra) if isinstance(extra, dict) else {},
        raw=req,
        resource=req.get("resource") if version == 1 else resource,
        extensions=extensions,
    )


def _x402_v2(header: str) -> tuple[list[Offer], Any, dict | None, str | None]:
    doc = b64_json(header, "The PAYMENT-REQUIRED header")
    if not isinstance(doc, dict) or doc.get("x402Version") != 2 or not isinstance(doc.get("accepts"), list):
        raise ChallengeError("The PAYMENT-REQUIRED header is not an x402 v2 PaymentRequired object.", details={"decoded": doc})
    resource = doc.get("resource")
    ext = doc.get("extensions") if isinstance(doc.get("extensions"), dict) else None
    offers = [_offer(r, 2, resource, ext, f"accepts[{i}]") for i, r in enumerate(doc["accepts"])]
    return offers, resource, ext, doc.get("error") if isinstance(doc.get("error"), str) else None


def _x402_v1(body: dict) -> list[Offer]:
    accepts = body.get("accepts")
    if not isinstance(accepts, list):
        raise ChallengeError("The 402 body says x402Version 1 but has no accepts list.", details={"body": body})
    return [_offer(r, 1, None, None, f"accepts[{i}]") for i, r in enumerate(accepts)]


# -- MPP: WWW-Authenticate auth-params (RFC 9110 §11.2) -----------------------------------------

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
# Written as what they exclude: a class spelling out the range up to U+10FFFF costs ~5 ms to
# compile, three of them a sixth of a paid script's imports; a test holds both spellings equal on
# every code point.
_QDTEXT = re.compile(r'[^\x00-\x08\x0a-\x1f"\\\x7f]')  # RFC 9110 qdtext: HTAB, SP, VCHAR but DQUOTE and "\", obs-text (any non-ASCII)
_QPAIR = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]")  # what may follow a backslash: HTAB, SP, VCHAR, obs-text
# A whole well-formed quoted-string in one match (the two alternatives start with different
# characters, so the match is linear); anything else goes to the character scan for its error.
_QSTRING = re.compile(r'"((?:[^\x00-\x08\x0a-\x1f"\\\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"')
_QUNESCAPE = re.compile(r"\\(.)", re.S)


class AuthHeaderError(ChallengeError):
    """A WWW-Authenticate value outside RFC 9110's grammar: no offer in it is payable, since two
    readers (ours and pympp's) could disagree about what it says."""

    code = "unusable_offer"


def _bad(value: str, at: int, why: str) -> AuthHeaderError:
    return AuthHeaderError(
        f"Malformed WWW-Authenticate header ({why}); no MPP offer in it is paid.",
        details={"at": value[at:at + 40], "position": at},
        hint="The server's challenge does not follow RFC 9110 (auth-param values are a token or a quoted string); pay with x402 (--pay x402) or report it to the service.",
    )


def _ows(value: str, i: int) -> int:
    while i < len(value) and value[i] in " \t":
        i += 1
    return i


def _quoted(value: str, i: int) -> tuple[str, int]:
    """The quoted-string starting at ``value[i] == '"'``: (its text, the index after the closing quote)."""
    m = _QSTRING.match(value, i)
    if m:
        text = m.group(1)
        return (_QUNESCAPE.sub(r"\1", text) if "\\" in text else text), m.end()
    buf, i, n = [], i + 1, len(value)
    while i < n:
        c = value[i]
        if c == '"':
            return "".join(buf), i + 1
        if c == "\\":
            if i + 1 >= n or not _QPAIR.fullmatch(value[i + 1]):
                raise _bad(value, i, "a backslash escapes nothing printable")
            buf.append(value[i + 1])
            i += 2
            continue
        if not _QDTEXT.fullmatch(c):
            raise _bad(value, i, "a control character inside a quoted string")
        buf.append(c)
        i += 1
    raise _bad(value, n, "an unterminated quoted string")


def _param_at(value: str, i: int) -> tuple[str, str, int] | None:
    """``token BWS "=" BWS ( token / quoted-string )`` at ``i``, followed by OWS and a comma or the
    end: (name, value, index of that comma or end). None when no "name =" starts here; an error
    when one does but what follows is not a token or quoted string ending at a comma."""
    m = _TOKEN.match(value, i)
    if not m:
        return None
    k = _ows(value, m.end())
    if k >= len(value) or value[k] != "=":
        return None
    k = _ows(value, k + 1)
    if k < len(value) and value[k] == '"':
        val, k = _quoted(value, k)
    else:
        t = _TOKEN.match(value, k)
        if not t:
            return None  # "abc==" is a token68, not a parameter; the caller decides
        val, k = t.group(0), t.end()
    k = _ows(value, k)
    if k < len(value) and value[k] != ",":
        raise _bad(value, k, f"parameter {m.group(0)!r} has more after its value than a comma")
    return m.group(0).lower(), val, k


def parse_auth_header(value: str) -> list[tuple[str, dict[str, str], str]]:
    """Split a (possibly merged) WWW-Authenticate value into (scheme, params, raw text) triples,
    by RFC 9110 §11.2/§11.6.1 exactly: ``#challenge``, ``challenge = auth-scheme [ 1*SP ( token68
    / #auth-param ) ]``, ``auth-param = token BWS "=" BWS ( token / quoted-string )``.

    Several challenges may share one header, and several headers are merged with ", " by HTTP
    libraries, so commas separate both params and challenges: a token not followed by "=" starts
    a new challenge. Anything outside the grammar (an unquoted value that is not a token, text
    after a value, a duplicate parameter, a control character) raises AuthHeaderError
    (``unusable_offer``): a lenient reader is how two parsers come to read two different charges."""
    out: list[tuple[str, dict[str, str], str]] = []
    i, n = 0, len(value)
    cur: tuple[str, dict[str, str], int] | None = None
    token68 = False  # the current challenge is a token68 (no parameters may follow)

    def close(end: int) -> None:
        if cur is not None:
            out.append((cur[0], cur[1], value[cur[2]:end].strip().rstrip(",").strip()))

    def add(name: str, val: str, at: int) -> None:
        assert cur is not None
        if name in cur[1]:
            raise _bad(value, at, f"parameter {name!r} given twice")
        cur[1][name] = val

    while i < n:
        i = _ows(value, i)
        if i < n and value[i] == ",":
            i += 1
            continue
        if i >= n:
            break
        if cur is not None:
            p = _param_at(value, i)
            if p is not None:
                if token68:  # "Payment id=, method=x": a token68 is the whole of its challenge
                    raise _bad(value, i, f"parameter {p[0]!r} after a token68")
                add(p[0], p[1], i)
                i = p[2]
                continue
        m = _TOKEN.match(value, i)
        if not m:
            raise _bad(value, i, "expected an auth scheme or parameter name")
        # a new challenge: its scheme, then (after spaces) a token68 or its first parameter, or nothing
        close(i)
        cur, token68 = (m.group(0), {}, i), False
        j = m.end()
        if j < n and value[j] not in " ,":
            raise _bad(value, j, f"unexpected {value[j]!r} after the auth scheme")
        k = _ows(value, j)
        if k >= n or value[k] == ",":
            i = k
            continue
        p = _param_at(value, k)
        if p is not None:
            add(p[0], p[1], k)
            i = p[2]
            continue
        t = _TOKEN68.match(value, k)
        e = _ows(value, t.end()) if t else k
        if not t or (e < n and value[e] != ","):
            raise _bad(value, k, "neither a token68 nor parameters after the auth scheme")
        i, token68 = e, True  # a token68 (e.g. "Basic abc=="): nothing of ours
    close(n)
    return out


def _b64url_json(value: str, what: str) -> Any:
    return b64_json(value.replace("+", "-").replace("/", "_"), what)


def mpp_offer(raw: str, params: dict[str, str]) -> MppOffer:
    missing = [k for k in ("id", "method", "intent", "request") if not params.get(k)]
    if missing:
        raise ChallengeError(f"MPP challenge lacks {', '.join(missing)}.", details={"challenge": raw[:300]})
    req = _b64url_json(params["request"], "The MPP request parameter")
    if not isinstance(req, dict):
        raise ChallengeError("The MPP request is not a JSON object.")
    details = req.get("methodDetails") if isinstance(req.get("methodDetails"), dict) else {}
    chain_id = small_int(details.get("chainId"))
    return MppOffer(
        header=raw,
        id=params["id"],
        method=params["method"].lower(),
        intent=params["intent"].lower(),
        request=req,
        amount=_atomic(req.get("amount"), "MPP request.amount"),
        currency=str(req.get("currency") or ""),
        recipient=str(req.get("recipient") or ""),
        chain_id=chain_id,
        expires=params.get("expires"),
        params=dict(params),
    )


def _mpp(headers: Mapping[str, str]) -> tuple[list[MppOffer], list[str]]:
    value = headers.get("WWW-Authenticate")
    if not value:
        return [], []
    if len(value) > MAX_AUTH_HEADER_CHARS:
        raise ChallengeError(f"The WWW-Authenticate header is larger than {MAX_AUTH_HEADER_CHARS} characters; not read.")
    offers, problems = [], []
    for scheme, params, raw in parse_auth_header(value):
        if scheme.lower() != "payment":
            continue
        try:
            offers.append(mpp_offer(raw, params))
        except ChallengeError as e:
            problems.append(e.message)
    return offers, problems


# -- the 402 as a whole -------------------------------------------------------------------------


def parse_challenge(status: int, headers: Mapping[str, str], body: Any) -> Challenge:
    """Every offer one 402 carries. Raises ChallengeError when it carries none we can read."""
    offers: list[Offer] = []
    version = None
    resource = None
    extensions = None
    error = None
    v2 = headers.get(V2_REQUIRED_HEADER)
    if v2:
        offers, resource, extensions, error = _x402_v2(v2)
        version = 2
    elif isinstance(body, dict) and body.get("x402Version") is not None:
        if body.get("x402Version") != 1:
            raise ChallengeError(f"Unsupported x402Version {body.get('x402Version')!r} in the 402 body.", details={"body": body})
        offers = _x402_v1(body)
        version = 1
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = error or body["error"]
    mpp_error = None
    try:
        mpp, problems = _mpp(headers)
    except ChallengeError as e:
        if not offers:
            raise
        mpp, problems, mpp_error = [], ["unreadable WWW-Authenticate header"], e
    if version is None and not mpp:
        msg = "The server asked for payment (402) but sent no challenge this client can read."
        if problems:
            msg = f"The 402's MPP challenge could not be read: {problems[0]}"
        raise ChallengeError(msg, status=status, details={"body": body, "problems": problems or None})
    received = time.time()
    for o in offers:
        o.received_at = received
    return Challenge(version=version, offers=offers, mpp=mpp, error=error, body=body, resource=resource, extensions=extensions, mpp_error=mpp_error)


def from_response(resp) -> Challenge:
    """``parse_challenge`` for an ``http.Response``."""
    return parse_challenge(resp.status, resp.headers, resp.json())


# -- answering ----------------------------------------------------------------------------------


def _merge_extensions(server: dict | None, ours: dict | None) -> dict | None:
    """Echo the server's extensions and add ours: add to ``info``, never drop ``schema``."""
    merged: dict[str, Any] = json.loads(json.dumps(server, default=json_number)) if server else {}
    for key, val in (ours or {}).items():
        have = merged.get(key)
        if isinstance(have, dict) and isinstance(val, dict):
            info = dict(have.get("info") or {})
            info.update(val.get("info") or {})
            have = dict(have, **{k: v for k, v in val.items() if k != "info"})
            have["info"] = info
            merged[key] = have
        else:
            merged[key] = val
    return merged or None


def payment_payload(challenge: Challenge, offer: Offer, signed: Signed) -> dict:
    if offer.version == 1:
        # the network string goes back verbatim (compute-api.md §13 #15)
        return {"x402Version": 1, "scheme": offer.scheme, "network": offer.network, "payload": signed.payload}
    doc: dict[str, Any] = {"x402Version": 2}
    if challenge.resource is not None:
        doc["resource"] = challenge.resource
    doc["accepted"] = offer.raw  # verbatim: servers compare it field by field (x402.md §2.3)
    doc["payload"] = signed.payload
    ext = _merge_extensions(challenge.extensions, signed.extensions)
    if ext:
        doc["extensions"] = ext
    return doc


def payment_header(challenge: Challenge, offer: Offer, signed: Signed) -> tuple[str, str]:
    """(header name, value) answering ``offer`` in the challenge's own version."""
    name = V1_PAYMENT_HEADER if offer.version == 1 else V2_PAYMENT_HEADER
    return name, encode_b64_json(payment_payload(challenge, offer, signed))


def settlement(headers: Mapping[str, str]) -> dict | None:
    """The decoded PAYMENT-RESPONSE / X-PAYMENT-RESPONSE, or None."""
    for name in SETTLEMENT_HEADERS:
        value = headers.get(name)
        if value:
            try:
                doc = b64_json(value, name)
            except ChallengeError:
                return None
            return doc if isinstance(doc, dict) else None
    return None


MPP_RECEIPT_HEADER = "Payment-Receipt"


def mpp_receipt(headers: Mapping[str, str]) -> dict | None:
    """The decoded MPP ``Payment-Receipt`` (base64url JSON: status, method, timestamp,
    reference = the Tempo tx hash), or None. Only 2xx answers carry one."""
    value = headers.get(MPP_RECEIPT_HEADER)
    if not value:
        return None
    try:
        doc = _b64url_json(value, MPP_RECEIPT_HEADER)
    except ChallengeError:
        return None
    if not isinstance(doc, dict):
        return None
    return {k: doc[k] for k in ("status", "method", "timestamp", "reference", "externalId") if k in doc}


def rejection_reason(resp) -> str:
    """Why a 402 answered our own payment: the settlement's errorReason, else the body's error."""
    sr = settlement(resp.headers)
    if sr and sr.get("errorReason"):
        return str(sr["errorReason"]) + (f": {sr['errorMessage']}" if sr.get("errorMessage") else "")
    body = resp.json()
    if isinstance(body, dict):
        det = body.get("details") if isinstance(body.get("details"), dict) else {}
        reason = det.get("reason") or body.get("error") or body.get("message") or body.get("detail")
        msg = det.get("message")
        if reason:
            return str(reason) + (f": {msg}" if msg and msg != reason else "")
    v2 = resp.headers.get(V2_REQUIRED_HEADER)
    if v2:
        try:
            doc = b64_json(v2, V2_REQUIRED_HEADER)
            if isinstance(doc, dict) and doc.get("error"):
                return str(doc["error"])
        except ChallengeError:
            pass
    return "the server refused the payment without giving a reason"
