"""x402 ``exact`` on EVM through Uniswap Permit2 and the x402 exact proxy
(``extra.assetTransferMethod == "permit2"``; x402.md §5).

Signed data: ``PermitWitnessTransferFrom`` on the Permit2 domain (name ``Permit2``, **no version**),
spender = ``x402ExactPermit2Proxy``, a random uint256 nonce (Permit2 nonces are unordered bitmaps),
deadline = now + (maxTimeoutSeconds or 3600), witness ``{to: payTo, validAfter: 0}`` (the post-audit
``Witness(address to,uint256 validAfter)``; the older witness with ``extra`` makes invalid signatures).

Payload::

    {"signature": "0x…65 bytes",
     "permit2Authorization": {"from", "permitted": {"token", "amount"}, "spender", "nonce", "deadline",
                              "witness": {"to", "validAfter"}}}          (numbers as decimal strings)

``eip2612GasSponsoring``: when a v2 challenge advertises it and the payer's Permit2 allowance (read over
RPC) is below the amount, we also sign an ERC-2612 ``Permit`` on the token's domain with spender =
Permit2 (not the proxy), nonce = ``nonces(owner)`` from chain, value = the amount and deadline = the
Permit2 deadline (what the reference clients do), and return it in ``Signed.extensions`` with the
server's ``schema`` kept (strict servers reject a payload whose schema was dropped). Without the
extension nothing is read from chain: signing is offline, and a missing allowance is the facilitator's
``permit2_allowance_required`` to report.
"""

from __future__ import annotations

import copy
import os
from typing import Any

from ..model import Offer, Signed
from ..rpc import erc20_allowance
from . import _evm, evm_permit

# Same address on every chain (CREATE2); x402.md §5.1. The older 0x4020615294…0001 proxy is stale.
PERMIT2_ADDRESS = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
X402_EXACT_PERMIT2_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"
EXTENSION = "eip2612GasSponsoring"

PERMIT2_TYPES = {
    # Permit2's domain has no version field; listing one would change the domain separator.
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "PermitWitnessTransferFrom": [
        {"name": "permitted", "type": "TokenPermissions"},
        {"name": "spender", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
        {"name": "witness", "type": "Witness"},
    ],
    "TokenPermissions": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}],
    "Witness": [{"name": "to", "type": "address"}, {"name": "validAfter", "type": "uint256"}],
}


def typed_data(*, chain_id: int, token: str, amount: int, spender: str, nonce: int, deadline: int, to: str, valid_after: int) -> dict:
    return {
        "types": PERMIT2_TYPES,
        "primaryType": "PermitWitnessTransferFrom",
        "domain": {"name": "Permit2", "chainId": chain_id, "verifyingContract": PERMIT2_ADDRESS},
        "message": {
            "permitted": {"token": token, "amount": _evm.uint_json(amount)},
            "spender": spender,
            # A random uint256 is usually above u128, so uint_json gives even-length hex for OWS.
            "nonce": _evm.uint_json(nonce),
            "deadline": _evm.uint_json(deadline),
            "witness": {"to": to, "validAfter": _evm.uint_json(valid_after)},
        },
    }


def sign(offer: Offer, signer: Any, *, now: int, rpc_factory, nonce: int | None = None) -> Signed:
    net = _evm.network_of(offer)
    token = _evm.require_address(offer.asset, "asset")
    pay_to = _evm.require_address(offer.pay_to, "payTo")
    amount = _evm.positive_amount(offer)
    payer = signer.address
    nonce = int.from_bytes(os.urandom(32), "big") if nonce is None else nonce
    deadline = _evm.expiry(offer, now)
    valid_after = 0  # as EIP-3009: no clock-skew window to get wrong
    typed = typed_data(
        chain_id=net.chain_id, token=token, amount=amount, spender=X402_EXACT_PERMIT2_PROXY,
        nonce=nonce, deadline=deadline, to=pay_to, valid_after=valid_after,
    )
    payload = {
        "signature": _evm.signature_hex(signer, typed),
        "permit2Authorization": {
            "from": payer,
            "permitted": {"token": token, "amount": str(amount)},
            "spender": X402_EXACT_PERMIT2_PROXY,
            "nonce": str(nonce),
            "deadline": str(deadline),
            "witness": {"to": pay_to, "validAfter": str(valid_after)},
        },
    }
    extensions = None
    advertised = (offer.extensions or {}).get(EXTENSION) if offer.version == 2 else None
    if isinstance(advertised, dict):
        extensions = _gas_sponsoring(offer, net, signer, advertised, amount=amount, deadline=deadline, rpc_factory=rpc_factory)
    return Signed(payload=payload, payer=payer, nonce=str(nonce), valid_before=deadline, extensions=extensions)


def _gas_sponsoring(offer: Offer, net, signer: Any, advertised: dict, *, amount: int, deadline: int, rpc_factory) -> dict | None:
    rpc = rpc_factory()
    owner = signer.address
    evm_permit.check_chain(rpc, net.key, net.chain_id)
    if erc20_allowance(rpc, net.key, offer.asset, owner, PERMIT2_ADDRESS) >= amount:
        return None  # Permit2 can already pull the amount; a permit would only burn a nonce
    permit_nonce = evm_permit.onchain_nonce(rpc, net.key, net.chain_id, offer.asset, owner)
    domain = _evm.token_domain(offer, net)
    typed = evm_permit.typed_data(
        domain, owner=owner, spender=PERMIT2_ADDRESS, value=amount, nonce=permit_nonce, deadline=deadline
    )
    signature = _evm.signature_hex(signer, typed)
    ext = copy.deepcopy(advertised)  # keep `schema` and anything else the server put there
    info = ext.get("info") if isinstance(ext.get("info"), dict) else {}
    info.update(
        {
            "from": owner,
            "asset": offer.asset,
            "spender": PERMIT2_ADDRESS,
            "amount": str(amount),
            "nonce": str(permit_nonce),
            "deadline": str(deadline),
            "signature": signature,
            "version": "1",
        }
    )
    ext["info"] = info
    return {EXTENSION: ext}
