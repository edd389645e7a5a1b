"""MPP ``tempo`` ``charge``: the credential for one ``WWW-Authenticate: Payment`` challenge.

pympp (import ``mpp``, with its ``tempo`` extra) chooses and checks the challenge, builds the
attribution memo and the credential; it only reads chain id and gas from the Tempo RPC
(``TEMPO_RPC_URL``) and never broadcasts. We use its ``PaymentRuntime`` to make the credential and
nothing else: the paid request goes through this client's own transport, journal and resend rules,
so one signed credential exists per run and is resent at most once (pympp's own HTTP transport
would make its own retry decisions).

Signing goes through the configured EVM signer (``wallets.evm_signer``: a raw ``PRIVATE_KEY`` or an
OWS vault), never through a raw key handed to pympp: pympp's ``TempoMethod`` signs with
``tx.sign(private_key)``, which an OWS vault cannot provide. So ``_SignerTempoMethod`` overrides the
one step that needs the key: it builds the same ``pytempo.TempoTransaction`` pympp builds and signs
``tx.get_signing_hash()`` with ``signer.sign_hash`` (mpp-ows.md §B.6 route (b)). For a raw key the
result is byte-identical to pympp's own (tests/unit/test_mpp_signer.py proves it), so there is one
path for both kinds of wallet.

pympp is async-only and needs Python 3.11+; it is imported here, on the MPP path only.
Credentials are bearer instruments: never logged, journalled 0600 only.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from dataclasses import dataclass
from typing import Any

from ...errors import ComputeError, ConfigError, PolicyError
from ...networks import NETWORKS, X402_NETWORKS
from ...wallets import evm_signer, evm_uses_ows
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
            hint=f"Pay with x402 instead (--pay x402 --network {'|'.join(X402_NETWORKS)}), or run the script with python3.11+.",
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


def tempo_signer(settings):
    """The EVM wallet that pays on Tempo: the same choice as for every other EVM signature."""
    if not settings.private_key and not evm_uses_ows(settings):
        raise ConfigError(
            "MPP (Tempo) payments need an EVM wallet.",
            code="no_tempo_wallet",
            hint="Set PRIVATE_KEY (the EVM key is the Tempo key), or OWS_WALLET with COMPUTE_AUTH_MODE=ows (or auto).",
        )
    return evm_signer(settings)


def sign_tempo_tx(tx, signer, *, chain: str):
    """``tx`` signed by ``signer`` as pytempo's ``tx.sign(key)`` would sign it: secp256k1 over
    ``get_signing_hash()``, v as 27/28, the sender address set. ``chain`` (CAIP-2) is what an OWS
    API token's allowed_chains policy is checked against."""
    import attrs
    from eth_account import Account
    from pytempo import Signature
    from pytempo.types import as_address

    digest = tx.get_signing_hash()
    sig = bytes(signer.sign_hash(digest, chain=chain))
    if len(sig) != 65 or sig[64] not in (27, 28):
        raise ComputeError("The wallet returned a malformed signature for the Tempo transaction.", code="signer_error")
    # A signature from another key would be a transfer the server rejects (or, worse, one from an
    # account we did not journal as the payer): check it before anything is sent.
    if Account._recover_hash(digest, signature=sig).lower() != signer.address.lower():
        raise ComputeError("The wallet's Tempo signature does not recover to its own address.", code="signer_error")
    return attrs.evolve(tx, sender_signature=Signature.from_bytes(sig), sender_address=as_address(signer.address))


@functools.cache
def _signer_method_class():
    """pympp's ``TempoMethod`` with its signing step routed to a signer (defined on first use so
    pympp is imported only on the MPP path). Everything else stays pympp's: challenge policy
    (chain, currency, cap, recipients), the one-in-flight signing per challenge, the memo and the
    credential. ``account`` is the signer itself; pympp reads only its ``address``."""
    from mpp.methods.tempo import client as tc

    class _SignerTempoMethod(tc.TempoMethod):
        async def _build_tempo_transfer(
            self,
            amount: str,
            currency: str,
            recipient: str,
            memo: str | None = None,
            rpc_url: str | None = None,
            expected_chain_id: int | None = None,
            awaiting_fee_payer: bool = False,
            splits: list[dict] | None = None,
            expires: str | None = None,
        ) -> tuple[str, int]:
            # Mirrors pympp 0.16's TempoMethod._build_tempo_transfer for what our policy lets through
            # (check_mpp_offer refuses splits and fee sponsorship; the currency is pinned to USDC.e,
            # which pays its own gas). The module's helpers are looked up at call time so the
            # transaction is built from exactly the inputs pympp's would be.
            from pytempo import Call, TempoTransaction

            if awaiting_fee_payer or splits or currency.lower() in (tc.MACH.lower(), tc.OUSD.lower()):
                raise tc.TransactionError("split payments, fee sponsorship and MACH/OUSD charges are not signed by this client")
            resolved_rpc = rpc_url or self.rpc_url
            if memo:
                data = self._encode_transfer_with_memo(recipient, int(amount), memo)
            else:
                data = self._encode_transfer(recipient, int(amount))
            calls = (Call.create(to=currency, value=0, data=data),)
            sender = self.account.address

            chain_id = await self._get_chain_id(resolved_rpc)
            gas_price = int(await tc._rpc_call(resolved_rpc, "eth_gasPrice", []), 16)
            if expected_chain_id is not None and chain_id != expected_chain_id:
                raise tc.TransactionError(
                    f"Chain ID mismatch: RPC returned {chain_id}, expected {expected_chain_id} from client policy"
                )
            gas_limit = tc.DEFAULT_GAS_LIMIT
            try:
                gas_limit = max(gas_limit, await tc.estimate_gas(resolved_rpc, sender, currency, data) + 5_000)
            except Exception:  # best effort, as in pympp: the static limit covers a TIP-20 transfer
                pass
            tx = TempoTransaction.create(
                chain_id=chain_id,
                gas_limit=gas_limit,
                max_fee_per_gas=gas_price,
                max_priority_fee_per_gas=gas_price,
                nonce=0,
                nonce_key=tc.EXPIRING_NONCE_KEY,
                fee_token=currency,
                awaiting_fee_payer=False,
                valid_before=tc._expiring_valid_before(expires),  # after the RPC round trips, as pympp does
                calls=calls,
            )
            signed = sign_tempo_tx(tx, self.account, chain=f"eip155:{chain_id}")
            return "0x" + signed.encode().hex(), chain_id

    return _SignerTempoMethod


def signer_charge(signer, *, rpc_url: str, max_atomic: int, recipient: str, chain_id: int = TEMPO.chain_id, currency: str = TEMPO.asset):
    """The pympp ``ClientMethod`` paying Tempo charges with ``signer``: the same configuration and
    wrapper ``mpp.methods.tempo.client.charge(account=…, chain_id=, rpc_url=, currency=,
    max_atomic_amount=, expected_recipients=)`` makes, with our signing step."""
    from mpp.methods.tempo import client as tc

    method = _signer_method_class()(
        account=signer,
        rpc_url=rpc_url,
        chain_id=chain_id,
        currency=currency,
        currencies=(currency,),
        max_atomic_amount=max_atomic,
        expected_recipients=(recipient,),
    )
    # What charge()'s factory records: chain, currency and RPC were all given explicitly.
    method._chain_id_explicit = method._currency_explicit = method._rpc_url_explicit = True
    return tc._client_method(method)


def sign_mpp(offer: MppOffer, settings, *, max_atomic: int, recipient: str, signer: Any = None) -> MppSigned:
    """Sign one credential for ``offer``. Our policy has already passed; pympp re-checks the
    chain, currency, cap and recipient as a second line (it refuses rather than pays)."""
    require_pympp()
    from mpp.runtime import PaymentRuntime

    signer = signer if signer is not None else tempo_signer(settings)
    method = signer_charge(signer, rpc_url=settings.rpc_url("tempo"), max_atomic=max_atomic, recipient=recipient)
    runtime = PaymentRuntime([method])
    from mpp._parsing import ParseError

    from ._mpp import checked_challenge

    # Our policy checked the request *we* parsed: pympp signs exactly that challenge, or nothing.
    challenge = checked_challenge(offer)
    try:
        chosen, m = runtime.match_challenge([challenge])
    except (ValueError, ParseError) as e:  # ParseError (duplicate or missing params) is no ValueError
        raise PolicyError(f"pympp refused the MPP challenge: {e}. Nothing was signed.", code="mpp_challenge_refused") from None
    try:
        credential = asyncio.run(runtime.create_credential(chosen, m))
    except ComputeError as e:  # the wallet's own refusal (OWS policy, passphrase): already clear
        e.message = f"{e.message} Nothing was sent."
        raise
    except Exception as e:  # RPC down, expired challenge, pympp policy: nothing was signed or sent
        raise ConfigError(
            f"Could not build the MPP payment: {type(e).__name__}: {str(e)[:200]}. Nothing was sent.",
            code="mpp_sign_failed",
            hint="Check TEMPO_RPC_URL (pympp reads chain id and gas price from it).",
        ) from None
    tx_hash = m.transaction_hash(credential) if m.transaction_hash else None
    header = (offer.params.get("header") or DEFAULT_HEADER).strip() or DEFAULT_HEADER
    return MppSigned(authorization=credential.to_authorization(), header=header, payer=signer.address, tx_hash=tx_hash)
