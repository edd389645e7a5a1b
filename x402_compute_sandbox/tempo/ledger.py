"""The Tempo ledger: USDC.e balances, nonces and applied transactions, the checks a node makes before
including a transaction, and their persistence in SQLite. Transactions arrive decoded (codec.py).

Sandbox rules, kept simple on purpose (all documented in the module so tests can rely on them):
- The test wallets (their EVM keys are their Tempo keys) get TEST_WALLET_USD of USDC.e each at
  genesis. With a state folder the ledger (balances, nonces, applied transactions) is kept in
  SQLite and survives a restart, like a chain; without one it lives in memory.
- Gas: the base fee is GAS_PRICE attodollars per gas, fixed; tips are ignored. Every call costs
  GAS_PER_CALL. The sender must hold `gas_limit * max_fee_per_gas` (converted to micro-dollars,
  rounded up) in the fee token on top of what it transfers; it is charged
  `GAS_PER_CALL * calls * GAS_PRICE` (rounded up) and that fee goes to a sequencer address.
  Sponsored (fee-payer) transactions are refused.
- Fee token (Tempo fee spec, "Fee token preferences"): the transaction's `fee_token` when set;
  otherwise (no account preferences exist here) the TIP-20 rule: when *every* top-level call is a
  `transfer`, `transferWithMemo` or `startReward` on the same USD TIP-20 contract and the sender
  pays its own fee, that token; otherwise the pathUSD fallback. Only USDC.e can pay fees here, so
  any other outcome is refused, naming the token the rules chose.
- Nonces: Tempo expiring nonces (nonce_key = 2^256-1, valid_before required and at most
  EXPIRING_NONCE_MAX_SECONDS ahead) carry any nonce value: from hardfork T12 (TIP-1106) the nonce
  is an opaque discriminator, which viem fills with a random 48-bit number; the replay guard is
  the transaction (its hash, and the sender-scoped signing hash) within the validity window.
  Protocol nonce key 0 takes a sequential per-sender nonce. Other 2D nonce keys, access-key
  (keychain) signatures and Tempo authorization lists are refused with a clear reason.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Callable, Optional

from .. import wallets
from ..chains.state import StateFile
from .codec import (CHAIN_ID, DECIMALS, EXPIRING_NONCE_KEY, EXPIRING_NONCE_MAX_SECONDS, GAS_PER_CALL, GAS_PRICE,
                    TOPIC_TRANSFER, TOPIC_TRANSFER_WITH_MEMO, TX_TYPE, USDC_E, TempoTx, Transfer, TxRejected,
                    checksum, decode_transfer, fee_token_of, keccak, word)


def _topic_addr(addr: str) -> str:
    return "0x" + bytes(12).hex() + addr[2:].lower()


_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (address TEXT PRIMARY KEY, amount TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (address TEXT PRIMARY KEY, nonce INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS txs (hash TEXT PRIMARY KEY, block INTEGER NOT NULL, receipt TEXT NOT NULL,
                                tx TEXT NOT NULL);
"""


class Ledger:
    """USDC.e balances plus the node-side checks, applied atomically under one lock.

    `state_path` (a SQLite file) keeps the ledger across restarts: every applied transaction and
    faucet payment is written in one SQLite transaction before it is acknowledged, and a ledger
    found there is resumed instead of funding the test wallets again.
    """

    def __init__(self, seed: int = 0, *, funded: Optional[list] = None, fund_usd: int = wallets.TEST_WALLET_USD,
                 clock: Callable[[], float] = time.time, state_path: Optional[str] = None):
        self.clock = clock
        self._lock = threading.RLock()
        self._balances: dict[str, int] = {}          # lower-case address -> USDC.e atomic units
        self._nonces: dict[str, int] = {}            # protocol nonce key 0
        self._seen: set[str] = set()                 # tx hashes and replay ids ever applied
        self._receipts: dict[str, dict] = {}
        self._txs: dict[str, dict] = {}
        self.sequencer = wallets.evm_address(wallets.evm_key(seed, "tempo-sequencer"))
        self.state = StateFile(state_path, seed=seed, schema=_LEDGER_SCHEMA, tables=("balances", "nonces", "seen", "txs"))
        db = self.state.db
        if self.state.restored:
            self._balances = {a: int(v) for a, v in db.execute("SELECT address, amount FROM balances")}
            self._nonces = dict(db.execute("SELECT address, nonce FROM nonces"))
            self._seen = {r[0] for r in db.execute("SELECT id FROM seen")}
            for h, receipt, tx in db.execute("SELECT hash, receipt, tx FROM txs"):
                self._receipts[h], self._txs[h] = json.loads(receipt), json.loads(tx)
            self.block_number = int(self.state.meta("block_number") or 1)
            self.block_time = int(self.state.meta("block_time") or clock())
            return
        self.block_number = 1
        self.block_time = int(clock())
        if funded is None:
            funded = [wallets.evm_address(wallets.evm_key(seed, "test", i)) for i in range(wallets.TEST_WALLET_COUNT)]
        with self._lock, self.state.tx():
            for addr in funded:
                self.fund(addr, fund_usd * 10**DECIMALS)
            self._save_block()
            self.state.set_meta("initialized", 1)

    def _save_balance(self, address: str) -> None:
        self.state.db.execute("INSERT OR REPLACE INTO balances(address, amount) VALUES (?,?)",
                              (address, str(self._balances.get(address, 0))))

    def _save_block(self) -> None:
        self.state.set_meta("block_number", self.block_number)
        self.state.set_meta("block_time", self.block_time)

    def close(self) -> None:
        with self._lock:
            self.state.close()

    # --- balances -------------------------------------------------------------------------------
    def balance_of(self, address: str) -> int:
        with self._lock:
            return self._balances.get(address.lower(), 0)

    def fund(self, address: str, amount: int) -> None:
        """Test faucet (atomic USDC.e)."""
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise ValueError("amount must be a non-negative int")
        with self._lock, self.state.tx():
            a = address.lower()
            self._balances[a] = self._balances.get(a, 0) + amount
            self._save_balance(a)

    def nonce_of(self, address: str) -> int:
        with self._lock:
            return self._nonces.get(address.lower(), 0)

    def known(self, tx_hash: str) -> bool:
        with self._lock:
            return tx_hash.lower() in self._seen

    def receipt(self, tx_hash: str) -> Optional[dict]:
        with self._lock:
            return self._receipts.get(tx_hash.lower())

    def transaction(self, tx_hash: str) -> Optional[dict]:
        """An applied transaction as eth_getTransactionByHash shows it, or None."""
        with self._lock:
            return self._txs.get(tx_hash.lower())

    def block(self) -> tuple[int, int]:
        """(number, timestamp) of the latest block, read together."""
        with self._lock:
            return self.block_number, self.block_time

    def transactions(self, sender: Optional[str] = None) -> list[dict]:
        """Applied transactions (as eth_getTransactionByHash shows them), oldest first, optionally one sender's."""
        with self._lock:
            txs = sorted(self._txs.values(), key=lambda t: int(t["blockNumber"], 16))
        return [t for t in txs if sender is None or t["from"].lower() == sender.lower()]

    # --- the node ---------------------------------------------------------------------------------
    def check(self, tx: TempoTx) -> list[Transfer]:
        """Everything a node checks before including `tx`. Returns its transfers; raises TxRejected."""
        now = int(self.clock())
        if tx.chain_id != CHAIN_ID:
            raise TxRejected("wrong_chain", f"chain id {tx.chain_id} is not Tempo mainnet ({CHAIN_ID})")
        if tx.sponsored:
            raise TxRejected("sponsored_unsupported", "fee-payer (sponsored) transactions are not accepted here")
        fee_token = fee_token_of(tx)
        if fee_token.lower() != USDC_E.lower():
            how = ("the transaction's fee_token is" if tx.fee_token is not None
                   else "with no fee_token set, Tempo's fee rules choose")
            raise TxRejected("unsupported_fee_token",
                             f"{how} {fee_token}; the sandbox ledger takes fees in USDC.e ({USDC_E}) only")
        if tx.valid_after is not None and now < tx.valid_after:
            raise TxRejected("not_yet_valid", "valid_after is in the future")
        if tx.nonce_key == EXPIRING_NONCE_KEY:
            # Any nonce value: an opaque discriminator since T12 (TIP-1106); the tx is its own key.
            if tx.valid_before is None:
                raise TxRejected("invalid_nonce", "an expiring-nonce transaction needs valid_before")
            if tx.valid_before > now + EXPIRING_NONCE_MAX_SECONDS:
                raise TxRejected("invalid_nonce", f"valid_before is more than {EXPIRING_NONCE_MAX_SECONDS}s ahead")
            if tx.replay_id in self._seen:
                raise TxRejected("already_known", "this transaction (same signed payload and sender) was "
                                                  "already included")
        elif tx.nonce_key == 0:
            if tx.nonce != self._nonces.get(tx.sender.lower(), 0):
                raise TxRejected("invalid_nonce", f"nonce {tx.nonce} != account nonce "
                                                  f"{self._nonces.get(tx.sender.lower(), 0)}")
        else:
            raise TxRejected("unsupported_nonce_key", "only nonce key 0 and the expiring nonce key are supported")
        if tx.valid_before is not None and now >= tx.valid_before:
            raise TxRejected("expired", "valid_before has passed")
        if tx.hash.lower() in self._seen:
            raise TxRejected("already_known", "this transaction was already included")
        if tx.max_fee_per_gas < GAS_PRICE:
            raise TxRejected("fee_too_low", f"max_fee_per_gas {tx.max_fee_per_gas} is below the base fee {GAS_PRICE}")
        if tx.gas_limit < GAS_PER_CALL * len(tx.calls):
            raise TxRejected("intrinsic_gas_too_low", f"gas_limit below {GAS_PER_CALL} per call")
        transfers = []
        for c in tx.calls:
            if c.to.lower() != USDC_E.lower():
                raise TxRejected("unsupported_call", "the sandbox ledger executes USDC.e transfers only")
            if c.value != 0:
                raise TxRejected("unsupported_call", "Tempo calls carry no native value")
            transfers.append(decode_transfer(c))
        need = sum(t.amount for t in transfers) + tx.fee_reserve_micros
        have = self._balances.get(tx.sender.lower(), 0)
        if have < need:
            raise TxRejected("insufficient_funds",
                             f"sender holds {have} USDC.e atomic units; the transfers plus the gas reserve "
                             f"need {need}")
        return transfers

    def submit(self, tx: TempoTx, precheck: Optional[Callable[[TempoTx, list], None]] = None) -> dict:
        """Check and apply atomically; returns the receipt. `precheck` runs under the same lock.

        The new state is written (one SQLite transaction) before the receipt is returned; if that
        write fails, the in-memory ledger is put back as it was, so nothing is acknowledged that a
        restart would forget.
        """
        with self._lock:
            transfers = self.check(tx)
            if precheck is not None:
                precheck(tx, transfers)
            undo = (dict(self._balances), dict(self._nonces), self.block_number, self.block_time)
            try:
                return self._apply(tx, transfers)
            except BaseException:
                self._balances, self._nonces, self.block_number, self.block_time = undo
                self._seen.discard(tx.hash.lower())
                self._seen.discard(tx.replay_id)
                self._receipts.pop(tx.hash.lower(), None)
                self._txs.pop(tx.hash.lower(), None)
                raise

    def _apply(self, tx: TempoTx, transfers: list) -> dict:
        sender = tx.sender.lower()
        fee_token = fee_token_of(tx)
        fee = tx.fee_micros
        touched = {sender, self.sequencer.lower()}
        self._balances[sender] -= fee
        self._balances[self.sequencer.lower()] = self._balances.get(self.sequencer.lower(), 0) + fee
        logs = []
        for t in transfers:
            self._balances[sender] -= t.amount
            self._balances[t.recipient.lower()] = self._balances.get(t.recipient.lower(), 0) + t.amount
            touched.add(t.recipient.lower())
            logs.append(self._log(t.token, [TOPIC_TRANSFER, _topic_addr(tx.sender), _topic_addr(t.recipient)],
                                  t.amount, len(logs), tx.hash))
            if t.memo is not None:
                logs.append(self._log(t.token, [TOPIC_TRANSFER_WITH_MEMO, _topic_addr(tx.sender),
                                                _topic_addr(t.recipient), "0x" + t.memo.hex()],
                                      t.amount, len(logs), tx.hash))
        if tx.nonce_key == 0:
            self._nonces[sender] = tx.nonce + 1
        self._seen.add(tx.hash.lower())
        self._seen.add(tx.replay_id)
        self.block_number += 1
        self.block_time = max(self.block_time, int(self.clock()))
        receipt = {
            "transactionHash": tx.hash, "transactionIndex": "0x0", "type": hex(TX_TYPE),
            "blockNumber": hex(self.block_number), "blockHash": self.block_hash(self.block_number),
            "from": tx.sender, "to": tx.calls[0].to, "status": "0x1",
            "gasUsed": hex(GAS_PER_CALL * len(tx.calls)), "cumulativeGasUsed": hex(GAS_PER_CALL * len(tx.calls)),
            "effectiveGasPrice": hex(GAS_PRICE), "feeToken": checksum(bytes.fromhex(fee_token[2:])),
            "feePayer": tx.sender, "contractAddress": None, "logsBloom": "0x" + "00" * 256,
            "logs": [dict(lg, blockNumber=hex(self.block_number),
                          blockHash=self.block_hash(self.block_number)) for lg in logs]}
        txj = {"hash": tx.hash, "type": hex(TX_TYPE), "from": tx.sender,
               "chainId": hex(tx.chain_id), "nonce": hex(tx.nonce),
               "nonceKey": hex(tx.nonce_key), "gas": hex(tx.gas_limit),
               "maxFeePerGas": hex(tx.max_fee_per_gas), "feeToken": tx.fee_token,
               "blockNumber": hex(self.block_number),
               "blockHash": self.block_hash(self.block_number),
               "calls": [{"to": c.to, "value": hex(c.value), "input": "0x" + c.data.hex()}
                         for c in tx.calls]}
        self._receipts[tx.hash.lower()] = receipt
        self._txs[tx.hash.lower()] = txj
        with self.state.tx() as db:
            for a in touched:
                self._save_balance(a)
            if tx.nonce_key == 0:
                db.execute("INSERT OR REPLACE INTO nonces(address, nonce) VALUES (?,?)", (sender, self._nonces[sender]))
            db.executemany("INSERT OR IGNORE INTO seen(id) VALUES (?)", [(tx.hash.lower(),), (tx.replay_id,)])
            db.execute("INSERT INTO txs(hash, block, receipt, tx) VALUES (?,?,?,?)",
                       (tx.hash.lower(), self.block_number, json.dumps(receipt), json.dumps(txj)))
            self._save_block()
        return receipt

    @staticmethod
    def _log(token: str, topics: list, amount: int, index: int, tx_hash: str) -> dict:
        return {"address": token, "topics": topics, "data": word(amount), "logIndex": hex(index),
                "transactionHash": tx_hash, "transactionIndex": "0x0", "removed": False}

    @staticmethod
    def block_hash(n: int) -> str:
        return "0x" + keccak(b"x402-compute-sandbox/tempo/block/%d" % n).hex()
