"""The pympp ``Challenge`` a credential is built from, held to the challenge our policy checked.

pympp parses ``WWW-Authenticate`` with its own reader. Two readers of one header can disagree
(an unquoted value, an escape, a duplicate): the policy would check one charge and the credential
pay another. So before pympp builds anything, its parse of the very challenge text we parsed must
equal ours field by field (id, realm, method, intent, request (text and decoded), expires, digest,
description, opaque, header); any difference is ``unusable_offer`` and nothing is created, signed or
sent. pympp is imported by the callers, on the MPP path only.
"""

from __future__ import annotations

import json

from ...errors import PaymentRequired
from ..challenge import json_number
from ..model import MppOffer


def _unusable(offer: MppOffer, why: str) -> PaymentRequired:
    return PaymentRequired(
        f"The {offer.method} MPP challenge {why}. Nothing was created, signed or sent.",
        code="unusable_offer",
        details={"challenge_id": offer.id[:80], "method": offer.method},
        hint="The server's WWW-Authenticate header reads two ways; pay another way (--pay x402) or report it to the service.",
    )


def checked_challenge(offer: MppOffer):
    """pympp's ``Challenge`` for ``offer``, equal field by field to what the policy checked."""
    import mpp
    from mpp import advertised_credential_header
    from mpp._parsing import ParseError, _b64_decode

    try:
        theirs = mpp.Challenge.from_www_authenticate(offer.header)
    except (ParseError, ValueError) as e:
        raise _unusable(offer, f"is refused by pympp ({str(e)[:120]})") from None
    p = offer.params
    try:
        ours_opaque = _b64_decode(p["opaque"]) if p.get("opaque") else None
        ours_header = advertised_credential_header(p.get("header"))
    except (ParseError, ValueError) as e:
        raise _unusable(offer, f"has an unusable parameter ({str(e)[:120]})") from None
    ours_request = json.loads(json.dumps(offer.request, default=json_number))
    pairs = {
        "id": (theirs.id, p.get("id")),
        "realm": (theirs.realm, p.get("realm") or ""),
        "method": (theirs.method, p.get("method")),
        "intent": (theirs.intent, p.get("intent")),
        "request": (theirs.request_b64, p.get("request")),
        "request (decoded)": (theirs.request, ours_request),
        "expires": (theirs.expires, p.get("expires")),
        "digest": (theirs.digest, p.get("digest")),
        "description": (theirs.description, p.get("description")),
        "opaque": (theirs.opaque, ours_opaque),
        "header": (theirs.header, ours_header),
    }
    differ = [name for name, (a, b) in pairs.items() if a != b]
    if differ:
        raise _unusable(offer, f"reads differently to pympp than to the policy check ({', '.join(differ)})")
    return theirs
