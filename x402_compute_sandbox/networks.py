"""The sandbox's network table: one place for every per-network payment fact.

Values come from shared/reference/x402.md §3 and compute-api.md §8 (Arc: §14). The sandbox places its token
at the *real* asset addresses with the *real* EIP-712 domains, so a payload signed for production
verifies here unchanged (and one signed for the wrong domain fails here as it would there).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# x402 Permit2 infrastructure (x402.md §5.1); CREATE2 addresses, identical on every chain. The sandbox
# runs its own Permit2Lite / X402ExactPermit2Proxy runtimes at these addresses (chains/evm.py).
PERMIT2_ADDRESS = "0x000000000022D473030F116dDEE9F6B43aC78BA3"
X402_EXACT_PERMIT2_PROXY = "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"

SOLANA_MAINNET_CAIP2 = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"


@dataclass(frozen=True)
class Network:
    label: str                  # x402 v1 name / compute API body `network`
    caip2: str                  # x402 v2 network id
    kind: str                   # "evm" | "svm"
    asset: str                  # token contract (EVM, checksummed) or mint (SVM)
    decimals: int
    symbol: str
    transfer_method: str        # "eip3009" | "permit" | "svm-exact"
    chain_id: Optional[int] = None
    eip712_name: Optional[str] = None
    eip712_version: Optional[str] = None
    # Other spellings a client may put in `network` (compute-api.md §8.3).
    aliases: tuple = field(default_factory=tuple)
    # The smallest direct payment the service takes on this network (atomic units; 0 = none).
    # Still offered in every 402 (the hosted service's behaviour below it is unpublished), but a
    # payment below it is refused at verification (`below_network_minimum`), so a client that
    # ignores the minimum is caught here rather than in production.
    min_payment_atomic: int = 0

    def atomic_from_usd_micros(self, usd_micros: int) -> int:
        """Prices are kept in USD micro-units (6 decimals); scale up for 18-decimal tokens, never down."""
        if not isinstance(usd_micros, int) or isinstance(usd_micros, bool):
            raise TypeError("usd_micros must be an int")
        if self.decimals < 6:
            raise ValueError("tokens with fewer than 6 decimals cannot express micro-dollars")
        return usd_micros * 10 ** (self.decimals - 6)


NETWORKS: dict[str, Network] = {
    "base": Network(
        label="base", caip2="eip155:8453", kind="evm", chain_id=8453,
        asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", decimals=6, symbol="USDC",
        eip712_name="USD Coin", eip712_version="2", transfer_method="eip3009",
    ),
    "solana": Network(
        label="solana", caip2=SOLANA_MAINNET_CAIP2, kind="svm",
        asset="EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", decimals=6, symbol="USDC",
        transfer_method="svm-exact",
    ),
    "megaeth": Network(
        label="megaeth", caip2="eip155:4326", kind="evm", chain_id=4326,
        asset="0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7", decimals=18, symbol="MegaUSD",
        eip712_name="MegaUSD", eip712_version="1", transfer_method="permit",
    ),
    "robinhood": Network(
        label="robinhood", caip2="eip155:4663", kind="evm", chain_id=4663,
        asset="0x5fc5360D0400a0Fd4f2af552ADD042D716F1d168", decimals=6, symbol="USDG",
        eip712_name="Global Dollar", eip712_version="1", transfer_method="eip3009",
    ),
    # Arc mainnet (compute-api.md §14): gas is paid in USDC, and the service takes direct payments of
    # 5 USD or more (smaller amounts go through prepaid credits). USDC's ERC-20 interface, EIP-3009.
    "arc": Network(
        label="arc", caip2="eip155:5042", kind="evm", chain_id=5042,
        asset="0x3600000000000000000000000000000000000000", decimals=6, symbol="USDC",
        eip712_name="USDC", eip712_version="2", transfer_method="eip3009",
        min_payment_atomic=5_000_000,
    ),
}

LABELS: tuple = tuple(NETWORKS)


def get(network: str) -> Network:
    """Look a network up by label or CAIP-2 id (exact spelling; v1 labels are lower-case)."""
    if network in NETWORKS:
        return NETWORKS[network]
    for n in NETWORKS.values():
        if network == n.caip2 or network in n.aliases:
            return n
    raise KeyError(f"unknown network {network!r}")
