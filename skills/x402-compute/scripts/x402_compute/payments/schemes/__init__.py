"""Sign one x402 offer: pick the scheme the challenge asks for, build its payload, sign it.

    sign_offer(offer, settings, *, now=None, rpc=None) -> Signed
    svm_recipient_account(offer, settings, *, rpc=None) -> dict | None       (reads only)
    svm_create_recipient_account(offer, settings, *, rpc=None, progress=…) -> dict | None

Choice (by ``offer.key`` and ``extra.assetTransferMethod``; the challenge decides, the network table
(``networks.NETWORKS``: which networks are x402, their schemes and default transfer method) only fills gaps):

========================  =====================================  ==========================
offer                     scheme                                 module
========================  =====================================  ==========================
solana                    partially signed SPL TransferChecked   ``svm_exact``
EVM, method ``permit2``   Permit2 + x402 exact proxy (+ the      ``evm_permit2``
                          ``eip2612GasSponsoring`` extension
                          when a v2 challenge advertises it)
EVM, method ``eip3009``   EIP-3009 transferWithAuthorization     ``evm_eip3009``
EVM, method absent        the table's ``transfer``: ``eip3009``  ``evm_eip3009``
                          (base, robinhood) or ``permit``
                          (megaeth: direct ERC-2612, x402layer)  ``evm_permit``
========================  =====================================  ==========================

``now`` (unix seconds) fixes the clock for tests; ``rpc`` replaces the JSON-RPC client built from
``settings`` (``payments.rpc.Rpc``), which is created only when a scheme needs the chain. Failures are
``x402_compute.errors`` types with stable codes; ``sign_offer`` sends nothing anywhere except RPC reads.

On Solana the recipient's token account must exist. ``svm_recipient_account`` says whether it is
missing and what creating it costs; ``svm_create_recipient_account`` creates it (a transaction the
user's wallet signs and pays) — the payment flow calls it only when the user opted in and confirmed.

The scheme modules import eth-account / solders, so they are imported here only on use.
"""

from __future__ import annotations

import time

from ...config import Settings
from ...errors import PaymentRequired
from ...networks import NETWORKS
from ...wallets import evm_signer, solana_signer
from ..model import Offer, Signed
from ..rpc import JsonRpc, Rpc
from . import evm_eip3009, evm_permit, evm_permit2

__all__ = ["sign_offer", "scheme_for", "svm_recipient_account", "svm_create_recipient_account"]


def scheme_for(offer: Offer) -> str:
    """Which scheme module would sign this offer: ``svm_exact``, ``evm_eip3009``, ``evm_permit`` or ``evm_permit2``."""
    net = NETWORKS.get(offer.key or "")
    if offer.scheme != "exact" or (net is not None and net.x402 and offer.scheme not in net.schemes):
        raise PaymentRequired(
            f"Unsupported x402 scheme {offer.scheme!r}; this client pays only 'exact'.", code="unsupported_scheme"
        )
    if net is None or not net.x402:
        raise PaymentRequired(f"Unsupported x402 network {offer.network!r}.", code="unsupported_network")
    if net.family == "svm":
        return "svm_exact"
    method = (offer.extra or {}).get("assetTransferMethod")
    if method == "permit2":
        return "evm_permit2"
    if method == "eip3009":
        return "evm_eip3009"
    if method not in (None, ""):
        raise PaymentRequired(
            f"Unsupported assetTransferMethod {method!r} on {net.key}; this client signs eip3009, permit2 "
            "and the direct ERC-2612 permit.",
            code="unsupported_transfer_method",
        )
    return "evm_permit" if net.transfer == "permit" else "evm_eip3009"


def sign_offer(
    offer: Offer,
    settings: Settings,
    *,
    now: float | None = None,
    rpc: Rpc | None = None,
) -> Signed:
    scheme = scheme_for(offer)
    ts = int(time.time() if now is None else now)
    holder: list[Rpc] = [rpc] if rpc is not None else []

    def rpc_factory() -> Rpc:
        # Built lazily: EIP-3009 and plain Permit2 need no chain at all.
        if not holder:
            holder.append(JsonRpc(settings))
        return holder[0]

    if scheme == "svm_exact":
        signer = solana_signer(settings)
        from . import svm_exact

        return svm_exact.sign(offer, signer, now=ts, rpc_factory=rpc_factory)

    signer = evm_signer(settings)
    if scheme == "evm_eip3009":
        return evm_eip3009.sign(offer, signer, now=ts)
    if scheme == "evm_permit":
        return evm_permit.sign(offer, signer, now=ts, rpc_factory=rpc_factory)

    return evm_permit2.sign(offer, signer, now=ts, rpc_factory=rpc_factory)


def svm_recipient_account(offer: Offer, settings: Settings, *, rpc: Rpc | None = None) -> dict | None:
    """None when a Solana offer's recipient can receive; else the missing account and its cost."""
    from . import svm_exact

    return svm_exact.recipient_account(offer, rpc or JsonRpc(settings), solana_signer(settings).address)


def svm_create_recipient_account(offer: Offer, settings: Settings, *, rpc: Rpc | None = None, progress=lambda m: None) -> dict | None:
    """Create the missing recipient token account, paid and signed by the user's Solana wallet."""
    from . import svm_exact

    return svm_exact.create_recipient_account(offer, solana_signer(settings), rpc or JsonRpc(settings), progress=progress)
