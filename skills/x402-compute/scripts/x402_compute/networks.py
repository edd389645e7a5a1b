"""One table for every fact about the payment networks: chain ids, CAIP-2 ids, canonical
stablecoins, decimals, EIP-712 domains, transfer methods, whether x402 pays there, who signs
management requests, the public RPC endpoint and the smallest direct payment the service takes.

Everything per network derives from ``NETWORKS``: ``X402_NETWORKS`` (``--network``),
``config.DEFAULT_RPC_URLS`` / ``RPC_ENV`` / ``PAYMENT_NETWORKS`` (``COMPUTE_ALLOWED_NETWORKS``) /
``EVM_AUTH_CHAINS``, the scheme choice (``payments/schemes``), the minimum check
(``payments/policy``) and doctor. Adding a network is one row here (references/layout.md,
"Adding a network").

The 402 challenge drives signing (domain name/version from ``extra``, asset from ``asset``);
this table is the fallback and the allowlist.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Network:
    key: str  # our label, also the body's "network" value
    family: str  # "evm" | "svm" | "tempo"
    caip2: str
    chain_id: int | None
    asset: str  # canonical stablecoin (checksummed / base58)
    symbol: str
    decimals: int
    eip712_name: str | None
    eip712_version: str | None
    transfer: str  # default transfer method: "eip3009" | "permit" | "svm-exact" | "tempo"
    v1_names: tuple[str, ...] = ()
    x402: bool = False  # paid with x402 (a --network choice); Tempo is paid with MPP
    schemes: tuple[str, ...] = ()  # the x402 schemes this client pays there
    # The X-Auth-Chain label this network's wallet signs management requests as (the service
    # takes base and solana; MegaETH and Robinhood keys are EVM keys and sign as base); None: the
    # network is not a management identity (COMPUTE_AUTH_CHAIN refuses it).
    auth_chain: str | None = None
    rpc_default: str = ""  # public JSON-RPC endpoint; "" = none known (set <KEY>_RPC_URL)
    # The smallest direct payment the service takes there, in atomic units of ``asset``
    # (0 = none); below it the client refuses before signing (below_network_minimum).
    min_payment_atomic: int = 0
    min_payment_hint: str = ""  # why the minimum exists and what to do instead
    explorer_tx: str = ""  # a public explorer's page of a transaction: this + the hash ("" = none known)

    @property
    def rpc_env(self) -> str:
        return f"{self.key.upper()}_RPC_URL"


NETWORKS: dict[str, Network] = {
    "base": Network(
        "base", "evm", "eip155:8453", 8453, "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USDC", 6,
        "USD Coin", "2", "eip3009", ("base",), x402=True, schemes=("exact",), auth_chain="base",
        rpc_default="https://mainnet.base.org", explorer_tx="https://basescan.org/tx/",
    ),
    "solana": Network(
        "solana", "svm", "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", None, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
        "USDC", 6, None, None, "svm-exact", ("solana",), x402=True, schemes=("exact",), auth_chain="solana",
        rpc_default="https://api.mainnet-beta.solana.com", explorer_tx="https://solscan.io/tx/",
    ),
    "megaeth": Network(
        "megaeth", "evm", "eip155:4326", 4326, "0xFAfDdbb3FC7688494971a79cc65DCa3EF82079E7", "USDm", 18,
        "MegaUSD", "1", "permit", ("megaeth",), x402=True, schemes=("exact",), auth_chain="base",
        rpc_default="https://mainnet.megaeth.com/rpc", explorer_tx="https://megaeth.blockscout.com/tx/",
    ),
    "robinhood": Network(
        "robinhood", "evm", "eip155:4663", 4663, "0x5fc5360D0400a0Fd4f2af552ADD042D716F1d168", "USDG", 6,
        "Global Dollar", "1", "eip3009", ("robinhood",), x402=True, schemes=("exact",), auth_chain="base",
        rpc_default="",  # no well-known public endpoint; set ROBINHOOD_RPC_URL
    ),
    # Arc mainnet: USDC's ERC-20 interface (the chain's gas is USDC too), EIP-3009 like Base.
    # Sources in references/api-reference.md ("Networks"). No public RPC endpoint is confirmed
    # there, so none is assumed: set ARC_RPC_URL for reconcile's on-chain check.
    "arc": Network(
        "arc", "evm", "eip155:5042", 5042, "0x3600000000000000000000000000000000000000", "USDC", 6,
        "USDC", "2", "eip3009", ("arc",), x402=True, schemes=("exact",), auth_chain=None, rpc_default="",
        min_payment_atomic=5_000_000,  # 5 USD: gas on Arc is paid in USDC
        min_payment_hint="Arc takes direct payments of 5 USD or more (its gas is paid in USDC). For a smaller order pay "
        "from prepaid credits with --use-credits (top them up with credits_topup.py: 5 USD or more on arc, or any amount "
        "on another network), or pay this order on another network with --network.",
    ),
    "tempo": Network(
        "tempo", "tempo", "eip155:4217", 4217, "0x20C000000000000000000000b9537d11c60E8b50", "USDC.e", 6,
        None, None, "tempo", (), rpc_default="https://rpc.tempo.xyz", explorer_tx="https://explore.tempo.xyz/tx/",
    ),
}
X402_NETWORKS: tuple[str, ...] = tuple(k for k, n in NETWORKS.items() if n.x402)
SOLANA_MAINNET_GENESIS_PREFIX = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp"


def network_key(name: str | None) -> str | None:
    """Our key for a network string as a challenge spells it (v1 name or CAIP-2).

    Exact matches only: upstream's ``"8453" in network`` accepted look-alikes."""
    if not name:
        return None
    n = name.strip()
    low = n.lower()
    for net in NETWORKS.values():
        if low in net.v1_names or n == net.caip2:
            return net.key
    if low.startswith("eip155:"):
        try:
            cid = int(low.split(":", 1)[1])
        except ValueError:
            return None
        for net in NETWORKS.values():
            if net.chain_id == cid:
                return net.key
    if n == "solana:" + SOLANA_MAINNET_GENESIS_PREFIX:
        return "solana"
    return None


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def is_address(key: str, text: object) -> bool:
    """A well-formed account address of that network's family: 0x + 40 hex on EVM chains and
    Tempo, a base58 string of 32 bytes on Solana. (Form only: what it belongs to is the pins' job.)"""
    if not isinstance(text, str):
        return False
    if NETWORKS[key].family == "svm":
        if not 32 <= len(text) <= 44 or any(c not in _B58 for c in text):
            return False
        n = 0
        for c in text:
            n = n * 58 + _B58.index(c)
        size = (n.bit_length() + 7) // 8 + (len(text) - len(text.lstrip("1")))
        return size == 32
    return len(text) == 42 and text[:2] == "0x" and all(c in "0123456789abcdefABCDEF" for c in text[2:])


def is_canonical_asset(key: str, asset: str) -> bool:
    net = NETWORKS[key]
    if net.family == "svm":
        return asset == net.asset  # base58 is case-sensitive
    return asset.lower() == net.asset.lower()


def explorer_url(key: str | None, tx_hash: object) -> str | None:
    """The public explorer's page of ``tx_hash`` on network ``key``, or None: no explorer known
    there, or a hash that is not one (0x + 64 hex on EVM chains and Tempo, base58 of 64 bytes on
    Solana), so a server's string never becomes a link."""
    net = NETWORKS.get(key or "")
    if net is None or not net.explorer_tx or not isinstance(tx_hash, str):
        return None
    if net.family == "svm":
        ok = 64 <= len(tx_hash) <= 88 and all(c in _B58 for c in tx_hash)
    else:
        ok = len(tx_hash) == 66 and tx_hash[:2] == "0x" and all(c in "0123456789abcdefABCDEF" for c in tx_hash[2:])
    return net.explorer_tx + tx_hash if ok else None
