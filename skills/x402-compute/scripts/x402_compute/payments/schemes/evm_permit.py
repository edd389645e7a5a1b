"""MegaETH (MegaUSD) by a direct ERC-2612 ``permit``: the x402layer service's documented route.

x402 itself has no direct-permit payload (it pays such tokens through Permit2, see ``evm_permit2``);
the hosted service documents this one instead (local-chains.md §6 "The x402layer route",
compute-api.md §13 #3): the user signs ``Permit(owner, spender, value, nonce, deadline)`` on the
token's own EIP-712 domain, and the service's facilitator calls ``permit()`` then ``transferFrom()``.

Choices, all driven by the challenge:
- domain ``{name, version}`` from ``extra`` (MegaUSD / 1), chainId 4326 from the network table,
  verifyingContract = ``asset``;
- spender = ``payTo`` (the documented route); an ``extra.spender`` naming any other address is refused,
  because a permit lets its spender pull the value anywhere and only ``payTo`` is pinned;
- nonce = the token's ``nonces(owner)``, read over RPC after checking the RPC really serves chain
  4326 (a wrong chain's nonce makes a signature that fails only at settlement);
  ``extra.permitNonce`` / ``extra.nonce``, when given, must equal it, and stands alone only when
  no RPC can be reached;
- deadline = now + (maxTimeoutSeconds or 3600);
- value = the offer's amount in atomic units (18 decimals on MegaETH; never rescaled).

Shape we send (the sandbox also accepts split v/r/s; one 65-byte signature is what the x402 EVM
payloads use everywhere else, so it is the least surprising for a facilitator)::

    {"signature": "0x<65 bytes r‖s‖v, v = 27/28>",
     "authorization": {"owner", "spender", "value", "nonce", "deadline"}}   (decimal strings)
"""

from __future__ import annotations

from typing import Any

from ...errors import ComputeError, ConfigError, NetworkError
from ..model import Offer, Signed
from ..rpc import Rpc, erc20_nonces, rpc_cache_key
from . import _evm

PERMIT_TYPE = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def typed_data(domain: dict, *, owner: str, spender: str, value: int, nonce: int, deadline: int) -> dict:
    return {
        "types": {"EIP712Domain": _evm.EIP712_DOMAIN_TYPE, "Permit": PERMIT_TYPE},
        "primaryType": "Permit",
        "domain": domain,
        "message": {
            "owner": owner,
            "spender": spender,
            "value": _evm.uint_json(value),
            "nonce": _evm.uint_json(nonce),
            "deadline": _evm.uint_json(deadline),
        },
    }


_chain_checked: set = set()  # (which RPC, chain id) pairs found right in this process


def check_chain(rpc: Rpc, network: str, chain_id: int) -> None:
    """The RPC serves ``chain_id``. A match is remembered for this process (an endpoint does not
    change chains; a long-running MCP server or keepalive then pays without asking again); a
    mismatch is never remembered."""
    key = (rpc_cache_key(rpc, network), chain_id)
    if key in _chain_checked:
        return
    got = rpc.eth_chain_id(network)
    if got != chain_id:
        raise ComputeError(
            f"The {network} RPC serves chain {got}, not {chain_id}; refusing to read the permit nonce from it.",
            code="rpc_wrong_chain",
            hint=f"Point {network.upper()}_RPC_URL at a chain {chain_id} endpoint.",
        )
    _chain_checked.add(key)


def onchain_nonce(rpc: Rpc, network: str, chain_id: int, token: str, owner: str) -> int:
    check_chain(rpc, network, chain_id)
    return erc20_nonces(rpc, network, token, owner)


def _permit_nonce(rpc_factory, net, token: str, owner: str, hinted: int | None) -> int:
    """The chain's ``nonces(owner)``; a nonce the 402 suggests must agree with it.

    A server-chosen future nonce would let a "rejected" permit be used after the user's
    next one, so the chain decides whenever it can be read. Only when it cannot (no RPC
    reachable) is a hinted nonce used as is: the permit still goes only to the pinned
    payee and expires within the hour."""
    try:
        chain = onchain_nonce(rpc_factory(), net.key, net.chain_id, token, owner)
    except (ConfigError, NetworkError):
        if hinted is None:
            raise
        return hinted
    if hinted is not None and hinted != chain:
        raise _evm.unusable(
            f"The {net.key} offer suggests permit nonce {hinted}, but the token's nonces({owner}) is {chain}. Nothing was signed.",
            code="permit_nonce_mismatch",
            details={"hinted": str(hinted), "onchain": str(chain)},
        )
    return chain


def sign(offer: Offer, signer: Any, *, now: int, rpc_factory) -> Signed:
    net = _evm.network_of(offer)
    domain = _evm.token_domain(offer, net)
    extra = offer.extra or {}
    pay_to = _evm.require_address(offer.pay_to, "payTo")
    spender = _evm.require_address(extra.get("spender") or pay_to, "spender")
    if spender.lower() != pay_to.lower():
        # A permit lets its spender pull the value to any address: only the (pinned) payee may hold it.
        raise _evm.unusable(
            f"The {net.key} offer asks for a permit to spender {spender}, not to the payee {pay_to}. Nothing was signed.",
            code="spender_not_payee",
            details={"spender": spender, "payTo": pay_to},
        )
    value = _evm.positive_amount(offer)
    owner = signer.address
    hinted = None
    if extra.get("permitNonce") is not None:
        hinted = _evm.uint_extra(extra["permitNonce"], "permitNonce")
    elif extra.get("nonce") is not None:
        hinted = _evm.uint_extra(extra["nonce"], "nonce")
    nonce = _permit_nonce(rpc_factory, net, offer.asset, owner, hinted)
    deadline = _evm.expiry(offer, now)
    typed = typed_data(domain, owner=owner, spender=spender, value=value, nonce=nonce, deadline=deadline)
    signature = _evm.signature_hex(signer, typed)
    payload = {
        "signature": signature,
        "authorization": {
            "owner": owner,
            "spender": spender,
            "value": str(value),
            "nonce": str(nonce),
            "deadline": str(deadline),
        },
    }
    # (owner, nonce) is what the token consumes; the deadline tells two signatures for one nonce apart.
    return Signed(payload=payload, payer=owner, nonce=f"{nonce}:{deadline}", valid_before=deadline)
