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
- Each executed transaction is one slot: the chain records its signature, slot, time, raw bytes and
  balances before and after (what getTransaction and getSignaturesForAddress serve), and refuses a
  signature it has already processed, as a cluster's status cache does.
- With a `state_path` (chains/state.py) every account the chain writes, the transaction history,
  the issued blockhashes and the slot are saved in SQLite after each change, and a chain found there
  is resumed: balances and spent signatures survive a restart. LiteSVM's blockhash sequence is
  deterministic, so a resumed chain is advanced past every blockhash it ever issued.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Iterable, Optional, Union

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
from .state import PersistentChain, StateFile

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
LAMPORTS_PER_SIGNATURE = 5_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (address TEXT PRIMARY KEY, lamports INTEGER NOT NULL, data BLOB NOT NULL,
                                     owner TEXT NOT NULL, rent_epoch TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS txs (signature TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE, slot INTEGER NOT NULL,
                                block_time INTEGER NOT NULL, raw BLOB NOT NULL, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS address_sigs (address TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (address, seq));
CREATE TABLE IF NOT EXISTS blockhashes (hash TEXT PRIMARY KEY, issued REAL NOT NULL);
"""


class SvmError(Exception):
    """A simulated or sent transaction failed; `reason` is LiteSVM's error text."""

    def __init__(self, reason: str, logs: Optional[list] = None):
        super().__init__(reason)
        self.reason = reason
        self.logs = logs or []


def _pk(value: Union[str, Pubkey]) -> Pubkey:
    return value if isinstance(value, Pubkey) else Pubkey.from_string(value)


class SvmChain(PersistentChain):
    """LiteSVM with the network's stablecoin mint; every method is thread-safe."""

    def __init__(self, network: Network, fee_payer: Keypair, *, mint_authority: Optional[Pubkey] = None,
                 state_path: Optional[str] = None, seed: int = 0):
        if network.kind != "svm":
            raise ValueError(f"{network.label} is not an SVM network")
        self.network = network
        self.mint = Pubkey.from_string(network.asset)
        self.decimals = network.decimals
        self.fee_payer = fee_payer
        self._lock = threading.RLock()
        # Freshness is enforced by `is_recent_blockhash` (see module docstring), not by LiteSVM.
        self.svm = LiteSVM().with_blockhash_check(False)
        self._issued: dict[str, float] = {}           # blockhash -> wall-clock time it was first handed out
        self._token_accounts: dict[str, set] = {}     # owner -> its token accounts (getTokenAccountsByOwner)
        self._mint_authority = mint_authority
        self.state = StateFile(state_path, seed=seed, schema=_SCHEMA,
                               tables=("accounts", "txs", "address_sigs", "blockhashes"))
        self.restored = self.state.restored
        with self._lock, self.state.tx():
            if self.restored:
                self._resume()
            else:
                self._blocks, self._seq, self._supply = 0, 0, 0
                self.svm.airdrop(fee_payer.pubkey(), FEE_PAYER_LAMPORTS)
                self._save_accounts([fee_payer.pubkey()])
                self._write_mint()
            self.latest_blockhash()

    def _resume(self) -> None:
        db = self.state.db
        for address, lamports, data, owner, rent_epoch in db.execute(
                "SELECT address, lamports, data, owner, rent_epoch FROM accounts"):
            key = Pubkey.from_string(address)
            self.svm.set_account(key, Account(lamports=lamports, data=bytes(data), owner=Pubkey.from_string(owner),
                                              executable=False, rent_epoch=int(rent_epoch)))
            self._index(key)
        self._supply = int(self.state.meta("supply") or 0)
        self._blocks = int(self.state.meta("blocks") or 0)
        self._seq = int(self.state.meta("seq") or 0)
        for _ in range(self._blocks):   # LiteSVM's blockhashes follow one fixed sequence: skip the used ones
            self.svm.expire_blockhash()
        slot = int(self.state.meta("slot") or 0)
        if slot:
            self.svm.warp_to_slot(slot)
        self._issued = dict(db.execute("SELECT hash, issued FROM blockhashes"))

    def _index(self, key: Pubkey) -> None:
        acct = self.token_account(key)
        if acct is not None:
            self._token_accounts.setdefault(str(acct.owner), set()).add(str(key))

    def _save_accounts(self, keys: Iterable[Pubkey]) -> None:
        """Write these accounts' current state (programs and sysvars are LiteSVM's own, never saved)."""
        rows = []
        for key in keys:
            acct = self.svm.get_account(key)
            if acct is None or acct.executable or str(acct.owner) in _NOT_SAVED_OWNERS:
                continue
            rows.append((str(key), acct.lamports, bytes(acct.data), str(acct.owner), str(acct.rent_epoch)))
            self._index(key)
        with self.state.tx() as db:
            db.executemany("INSERT OR REPLACE INTO accounts(address, lamports, data, owner, rent_epoch) "
                           "VALUES (?,?,?,?,?)", rows)
            self.state.set_meta("supply", self._supply)

    # ---- state helpers ---------------------------------------------------------------------------
    def _rent(self, size: int) -> int:
        return self.svm.minimum_balance_for_rent_exemption(size)

    def _write_mint(self) -> None:
        mint = Mint(mint_authority=self._mint_authority, supply=self._supply, decimals=self.decimals,
                    is_initialized=True, freeze_authority=None)
        self.svm.set_account(self.mint, Account(lamports=self._rent(MINT_LEN), data=bytes(mint),
                                                owner=TOKEN_PROGRAM_ID, executable=False))
        self._save_accounts([self.mint])

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
        with self._lock, self.state.tx():
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
        self._save_accounts([address])

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
        with self._lock, self.state.tx():
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
            self._save_accounts([_pk(owner)])

    def sol_balance(self, owner: Union[str, Pubkey]) -> int:
        return self.svm.get_balance(_pk(owner)) or 0

    def latest_blockhash(self) -> Hash:
        with self._lock:
            h = self.svm.latest_blockhash()
            if str(h) not in self._issued:
                self._issued[str(h)] = time.time()
                with self.state.tx() as db:
                    db.execute("INSERT OR IGNORE INTO blockhashes(hash, issued) VALUES (?,?)", (str(h), self._issued[str(h)]))
            return h

    def is_recent_blockhash(self, blockhash: Union[str, Hash]) -> bool:
        with self._lock:
            now = time.time()
            latest = str(self.svm.latest_blockhash())
            for h, t in list(self._issued.items()):
                if now - t > BLOCKHASH_TTL_SECONDS and h != latest:
                    del self._issued[h]
            return str(blockhash) in self._issued

    def slot(self) -> int:
        return self.svm.get_clock().slot

    def mint_info(self) -> tuple[Pubkey, int]:
        """(owning token program, decimals), as a client reads them from getAccountInfo(mint)."""
        acct = self.svm.get_account(self.mint)
        return acct.owner, bytes(acct.data)[44]

    def simulate(self, tx: VersionedTransaction):
        with self._lock:
            if not self.is_recent_blockhash(tx.message.recent_blockhash):
                raise SvmError("BlockhashNotFound")
            if self.processed(str(tx.signatures[0])):
                raise SvmError("AlreadyProcessed")
            result = self.svm.simulate_transaction(tx)
            if isinstance(result, FailedTransactionMetadata):
                raise SvmError(str(result.err()), list(result.meta().logs()))
            return result

    def send(self, tx: VersionedTransaction) -> str:
        """Execute; returns the base58 transaction signature. Recorded (and saved) before it returns."""
        with self._lock:
            if not self.is_recent_blockhash(tx.message.recent_blockhash):
                raise SvmError("BlockhashNotFound")
            signature = str(tx.signatures[0])
            if self.processed(signature):
                raise SvmError("AlreadyProcessed")
            keys = list(tx.message.account_keys)
            pre = [self._snapshot(k) for k in keys]
            result = self.svm.send_transaction(tx)
            if isinstance(result, FailedTransactionMetadata):
                raise SvmError(str(result.err()), list(result.meta().logs()))
            post = [self._snapshot(k) for k in keys]
            slot = self.slot()
            meta = {"err": None, "fee": _fee(tx), "preBalances": [p[0] for p in pre],
                    "postBalances": [p[0] for p in post],
                    "preTokenBalances": _token_balances(pre, self.decimals),
                    "postTokenBalances": _token_balances(post, self.decimals),
                    "logMessages": list(result.logs()), "computeUnitsConsumed": result.compute_units_consumed(),
                    "memo": _memo(tx)}
            # A new block: the next payment gets a new blockhash and slot, older hashes stay valid for the TTL.
            self.svm.expire_blockhash()
            self._blocks += 1
            self._seq += 1
            self.svm.warp_to_slot(slot + 1)
            with self.state.tx() as db:
                db.execute("INSERT INTO txs(signature, seq, slot, block_time, raw, meta) VALUES (?,?,?,?,?,?)",
                           (signature, self._seq, slot, int(time.time()), bytes(tx), json.dumps(meta)))
                db.executemany("INSERT OR IGNORE INTO address_sigs(address, seq) VALUES (?,?)",
                               [(str(k), self._seq) for k in keys])
                self._save_accounts(keys)
                for k, v in (("blocks", self._blocks), ("seq", self._seq), ("slot", slot + 1)):
                    self.state.set_meta(k, v)
                self.latest_blockhash()
            return signature

    def _snapshot(self, key: Pubkey) -> tuple:
        """(lamports, token account or None) of one account, for the pre/post balances."""
        acct = self.svm.get_account(key)
        if acct is None:
            return 0, None
        tok = None
        if acct.owner in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) and len(acct.data) == TOKEN_ACCOUNT_LEN:
            t = TokenAccount.from_bytes(bytes(acct.data))
            tok = {"mint": str(t.mint), "owner": str(t.owner), "programId": str(acct.owner), "amount": t.amount}
        return acct.lamports, tok

    # ---- history (getTransaction, getSignaturesForAddress, getSignatureStatuses) --------------------
    def processed(self, signature: str) -> bool:
        with self._lock:
            return self.state.db.execute("SELECT 1 FROM txs WHERE signature=?", (signature,)).fetchone() is not None

    def transaction(self, signature: str) -> Optional[dict]:
        """{slot, block_time, raw, meta} of an executed transaction, or None."""
        with self._lock:
            row = self.state.db.execute("SELECT slot, block_time, raw, meta FROM txs WHERE signature=?",
                                        (signature,)).fetchone()
        if row is None:
            return None
        return {"slot": row[0], "block_time": row[1], "raw": bytes(row[2]), "meta": json.loads(row[3])}

    def signatures_for(self, address: str, *, limit: int = 1000, before: Optional[str] = None,
                       until: Optional[str] = None) -> list[dict]:
        """Newest first: the transactions that touched `address` (any account of the message)."""
        with self._lock:
            db = self.state.db

            def seq_of(sig: Optional[str]) -> Optional[int]:
                if sig is None:
                    return None
                row = db.execute("SELECT seq FROM txs WHERE signature=?", (sig,)).fetchone()
                return row[0] if row else -1

            hi, lo = seq_of(before), seq_of(until)
            rows = db.execute(
                "SELECT t.signature, t.slot, t.block_time, t.meta FROM address_sigs a JOIN txs t ON t.seq = a.seq "
                "WHERE a.address=? AND (? IS NULL OR a.seq < ?) AND (? IS NULL OR a.seq > ?) "
                "ORDER BY a.seq DESC LIMIT ?", (address, hi, hi, lo, lo, limit)).fetchall()
        out = []
        for sig, slot, block_time, meta in rows:
            m = json.loads(meta)
            out.append({"signature": sig, "slot": slot, "err": m["err"], "memo": m.get("memo"),
                        "blockTime": block_time, "confirmationStatus": "finalized"})
        return out

    def token_accounts_of(self, owner: str) -> list[str]:
        with self._lock:
            return sorted(self._token_accounts.get(owner, ()))


_NOT_SAVED_OWNERS = {"Sysvar1111111111111111111111111111111111111", "NativeLoader1111111111111111111111111111111",
                     "BPFLoader1111111111111111111111111111111111", "BPFLoader2111111111111111111111111111111111",
                     "BPFLoaderUpgradeab1e11111111111111111111111"}


def _fee(tx: VersionedTransaction) -> int:
    """What LiteSVM charges the fee payer: the base fee per signature. (It charges no prioritization fee,
    unlike a cluster, so the compute-unit price of a payment costs nothing here; the recorded fee says so.)"""
    return LAMPORTS_PER_SIGNATURE * tx.message.header.num_required_signatures


def _memo(tx: VersionedTransaction) -> Optional[str]:
    """What getSignaturesForAddress shows as `memo`: "[length] text" of each Memo instruction."""
    keys = tx.message.account_keys
    memos = [bytes(ix.data) for ix in tx.message.instructions if keys[ix.program_id_index] == MEMO_PROGRAM_ID]
    if not memos:
        return None
    return "; ".join(f"[{len(m)}] {m.decode('utf-8', 'replace')}" for m in memos)


def _token_balances(snapshots: list, decimals: int) -> list[dict]:
    out = []
    for i, (_, tok) in enumerate(snapshots):
        if tok is not None:
            out.append({"accountIndex": i, "mint": tok["mint"], "owner": tok["owner"], "programId": tok["programId"],
                        "uiTokenAmount": ui_amount(tok["amount"], decimals)})
    return out


def ui_amount(amount: int, decimals: int) -> dict:
    """The `uiTokenAmount` shape of the Solana RPC."""
    from decimal import Decimal
    text = format(Decimal(amount).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return {"amount": str(amount), "decimals": decimals, "uiAmount": amount / 10**decimals if amount else 0.0,
            "uiAmountString": text}
