"""MPP ``tempo`` ``charge``: the credential for one ``WWW-Authenticate: Payment`` challenge.

pympp (import ``mpp``, with its ``tempo`` extra) builds and signs the Tempo 0x76 transfer; it
only reads chain id and gas from the Tempo RPC (``TEMPO_RPC_URL``) and never broadcasts. We use
its ``PaymentRuntime`` to make the credential and nothing else: the paid request goes through
this client's own transport, journal and resend rules, so one signed credential exists per run
and is resent at most once (pympp's own HTTP transport would make its own retry decisions).

pympp is async-only and needs Python 3.11+; it is imported here, on the MPP path only.
Credentials are bearer instruments: never logged, journalled 0600 only.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from ...errors import ConfigError, PolicyError
from ...networks import NETWORKS
from ..model import MppOffer

TEMPO = NETWORKS["tempo"]
DEFAULT_HEADER = "Authorization"


@dataclass
class MppSigned:
    authorization: str  # "Payment <b64url credential>": the header value (a bearer secret)
    header: str  # "Authorization", or what the challenge's `header` param asked for
    payer: str
    tx_hash: str | None  # hash of the signed 0x76 transaction (what the receipt will reference)


def require_pympp(version_info=None) -> None:
    """A clear error instead of an ImportError deep inside a payment."""
    v = version_info or sys.version_info
    if tuple(v[:2]) < (3, 11):
        raise ConfigError(
            f"Paying with MPP needs Python 3.11 or newer (the pympp library requires it); this is Python {v[0]}.{v[1]}.",
            code="mpp_unavailable",
            hint="Pay with x402 instead (--pay x402 --network base|solana|megaeth|robinhood), or run the script with python3.11+.",
        )
    try:
        import mpp  # noqa: F401
        from mpp.methods.tempo import TempoAccount  # noqa: F401  (raises without the tempo extra)
    except ImportError:
        raise ConfigError(
            "Paying with MPP needs the pympp library with its Tempo extra.",
            code="mpp_unavailable",
            hint="pip install 'pympp[tempo]>=0.16,<0.17' (or pay with x402: --pay x402).",
        ) from None


def _private_key(settings) -> str:
    if not settings.private_key:
        hint = "Set PRIVATE_KEY (the EVM key is the Tempo key)."
        if settings.ows_wallet:
            hint += " OWS vault signing of Tempo transactions is not supported yet; pay with x402 from the vault instead."
        raise ConfigError("MPP (Tempo) payments need an EVM private key.", code="no_tempo_wallet", hint=hint)
    return settings.private_key


def sign_mpp(offer: MppOffer, settings, *, max_atomic: int, recipient: str) -> MppSigned:
    """Sign one credential for ``offer``. Our policy has already passed; pympp re-checks the
    chain, currency, cap and recipient as a second line (it refuses rather than pays)."""
    require_pympp()
    from mpp import Challenge
    from mpp.methods.tempo import TempoAccount
    from mpp.methods.tempo import client as tempo_client
    from mpp.runtime import PaymentRuntime

    account = TempoAccount.from_key(_private_key(settings))
    method = tempo_client.charge(
        account=account,
        chain_id=TEMPO.chain_id,
        rpc_url=settings.rpc_url("tempo"),
        currency=TEMPO.asset,
        max_atomic_amount=max_atomic,
        expected_recipients=[recipient],
    )
    runtime = PaymentRuntime([method])
    try:
        challenge = Challenge.from_www_authenticate(offer.header)
        chosen, m = runtime.match_challenge([challenge])
    except ValueError as e:
        raise PolicyError(f"pympp refused the MPP challenge: {e}. Nothing was signed.", code="mpp_challenge_refused") from None
    try:
        credential = asyncio.run(runtime.create_credential(chosen, m))
    except Exception as e:  # RPC down, expired challenge, pympp policy: nothing was signed or sent
        raise ConfigError(
            f"Could not build the MPP payment: {type(e).__name__}: {str(e)[:200]}. Nothing was sent.",
            code="mpp_sign_failed",
            hint="Check TEMPO_RPC_URL (pympp reads chain id and gas price from it).",
        ) from None
    tx_hash = m.transaction_hash(credential) if m.transaction_hash else None
    header = (offer.params.get("header") or DEFAULT_HEADER).strip() or DEFAULT_HEADER
    return MppSigned(authorization=credential.to_authorization(), header=header, payer=account.address, tx_hash=tx_hash)
