"""An in-process Solana runtime (LiteSVM inside solders) holding USDC at its real mint address.

Why this shape (shared/reference/local-chains.md §6):
- The mint is written straight into state at `EPjFWdd5…Dt1v` with `set_account`, and token accounts at
  their real associated-token addresses, so a transaction built for mainnet USDC runs here unchanged.
- Balances are funded by rewriting token-account state (a test faucet); payments themselves only move
  through real SPL `TransferChecked` instructions executed by the token program.
- LiteSVM on its own accepts only its latest blockhash and never rotates it, so two identical payments
  (the upstream 3-instruction layout has no memo) would collide forever. Like a real cluster, this chain
  rotates the blockhash after every executed transaction and keeps accepting the hashes it handed out
  for BLOCKHASH_TTL_SECONDS (about Solana's 60-90 s validity); any other blockhash is refused.
"""
from __future__ import annotations

import threading
import time
from typing import Optional, Union

from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.token.associated import get_associated_token_address
from solders.token.state import Mint, TokenAccount, TokenAccountState
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata

from ..networks import Network

TOKEN_PROGRAM_ID = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM_ID = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
ASSOCIATED_TOKEN_PROGRAM_ID = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
COMPUTE_BUDGET_PROGRAM_ID = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM_ID = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
LIGHTHOUSE_PROGRAM_ID = Pubkey.from_string("L2TExMFKdjpN9kozasaurPirfHy9P8sbXoAN1qA3S95")

MINT_LEN = 82
TOKEN_ACCOUNT_LEN = 165
FEE_PAYER_LAMPORTS = 1_000 * 10**9   # plenty of SOL for the sponsor's fees
BLOCKHASH_TTL_SECONDS = 120


class SvmError(Exception):
    """A simulated or sent transaction failed; `reason` is LiteSVM's error text."""

    def __init__(self, reason: str, logs: Optional[list] = None):
        super().__init__(reason)
        self.reason = reason
        self.logs = logs or []


def _pk(value: Union[str, Pubkey]) -> Pubkey:
    return value if isinstance(value, Pubkey) else Pubkey.from_string(value)


class SvmChain:
    """LiteSVM with the network's stablecoin mint; every method is thread-safe."""

    def __init__(self, network: Network, fee_payer: Keypair, *, mint_authority: Optional[Pubkey] = None):
        if network.kind != "svm":
            raise ValueError(f"{network.label} is not an SVM network")
        self.network = network
        self.mint = Pubkey.from_string(network.asset)
        self.decimals = network.decimals
        self.fee_payer = fee_payer
        self._lock = threading.RLock()
        # Freshness is enforced by `is_recent_blockhash` (see module docstring), not by LiteSVM.
        self.svm = LiteSVM().with_blockhash_check(False)
        self._issued: dict[str, float] = {}
        self.svm.airdrop(fee_payer.pubkey(), FEE_PAYER_LAMPORTS)
        self._supply = 0
        self._mint_authority = mint_authority
        self._write_mint()
        self.latest_blockhash()

    # ---- state helpers ---------------------------------------------------------------------------
    def _rent(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    def _write_mint(self) -> None:
        mint = Mint(mint_authority=self._mint_authority, supply=self._supply, decimals=self.decimals,
                    is_initialized=True, freeze_authority=None)
        self.svm.set_account(self.mint, Account(lamports=self._rent(MINT_LEN), data=bytes(mint),
                                                owner=TOKEN_PROGRAM_ID, executable=False))

    def ata(self, owner: Union[str, Pubkey]) -> Pubkey:
        return get_associated_token_address(_pk(owner), self.mint)

    def token_account(self, address: Union[str, Pubkey]) -> Optional[TokenAccount]:
        acct = self.svm.get_account(_pk(address))
        if acct is None or acct.owner != TOKEN_PROGRAM_ID or len(acct.data) != TOKEN_ACCOUNT_LEN:
            return None
        return TokenAccount.from_bytes(bytes(acct.data))

    def has_ata(self, owner: Union[str, Pubkey]) -> bool:
        return self.token_account(self.ata(owner)) is not None

    def create_ata(self, owner: Union[str, Pubkey], amount: int = 0) -> Pubkey:
        """Write an initialised associated token account (idempotent; keeps an existing balance)."""
        with self._lock:
            address = self.ata(owner)
            existing = self.token_account(address)
            if existing is not None:
                return address
            self._set_token_account(address, _pk(owner), amount)
            self._supply += amount
            self._write_mint()
            return address

    def _set_token_account(self, address: Pubkey, owner: Pubkey, amount: int) -> None:
        state = TokenAccount(mint=self.mint, owner=owner, amount=amount, delegate=None,
                             state=TokenAccountState.Initialized, is_native=None, delegated_amount=0,
                             close_authority=None)
        self.svm.set_account(address, Account(lamports=self._rent(TOKEN_ACCOUNT_LEN), data=bytes(state),
                                              owner=TOKEN_PROGRAM_ID, executable=False))

    # ---- public helpers --------------------------------------------------------------------------
    def balance_of(self, owner: Union[str, Pubkey]) -> int:
        """Token balance of the owner's associated token account (0 when it does not exist)."""
        with self._lock:
            acct = self.token_account(self.ata(owner))
            return acct.amount if acct is not None else 0

    def mint_to(self, owner: Union[str, Pubkey], amount: int) -> None:
        """Test faucet: add `amount` atomic units to the owner's ATA, creating it if needed."""
        if amount < 0:
            raise ValueError("amount must be >= 0")
        with self._lock:
            address = self.ata(owner)
            acct = self.token_account(address)
            current = acct.amount if acct is not None else 0
            if current + amount >= 2**64:
                raise ValueError("SPL amounts are u64")
            self._set_token_account(address, _pk(owner), current + amount)
            self._supply += amount
            self._write_mint()

    def airdrop_sol(self, owner: Union[str, Pubkey], lamports: int) -> None:
        with self._lock:
            self.svm.airdrop(_pk(owner), lamports)

    def sol_balance(self, owner: Union[str, Pubkey]) -> int:
        return self.svm.get_balance(_pk(owner)) or 0

    def latest_blockhash(self) -> Hash:
        with self._lock:
            h = self.svm.latest_blockhash()
            self._issued.setdefault(str(h), time.monotonic())
            return h

    def is_recent_blockhash(self, blockhash: Union[str, Hash]) -> bool:
        with self._lock:
            now = time.monotonic()
            for h, t in list(self._issued.items()):
                if now - t > BLOCKHASH_TTL_SECONDS and h != str(self.svm.latest_blockhash()):
                    del self._issued[h]
            return str(blockhash) in self._issued

    def mint_info(self) -> tuple[Pubkey, int]:
        """(owning token program, decimals), as a client reads them from getAccountInfo(mint)."""
        acct = self.svm.get_account(self.mint)
        return acct.owner, bytes(acct.data)[44]

    def simulate(self, tx: VersionedTransaction):
        with self._lock:
            if not self.is_recent_blockhash(tx.message.recent_blockhash):
                raise SvmError("BlockhashNotFound")
            result = self.svm.simulate_transaction(tx)
            if isinstance(result, FailedTransactionMetadata):
                raise SvmError(str(result.err()), list(result.meta().logs()))
            return result

    def send(self, tx: VersionedTransaction) -> str:
        """Execute; returns the base58 transaction signature."""
        with self._lock:
            if not self.is_recent_blockhash(tx.message.recent_blockhash):
                raise SvmError("BlockhashNotFound")
            result = self.svm.send_transaction(tx)
            if isinstance(result, FailedTransactionMetadata):
                raise SvmError(str(result.err()), list(result.meta().logs()))
            # A new block: the next payment gets a new blockhash, older ones stay valid for the TTL.
            self.svm.expire_blockhash()
            self.latest_blockhash()
            return str(result.signature())
