"""A Tempo stand-in: decode and verify type-0x76 transactions, settle them on a USDC.e ledger.

No Tempo chain runs offline (local-chains.md §8), so the sandbox keeps the one thing MPP charges
touch, the USDC.e balances, in a ledger and checks every transaction the way a node would before
applying it: chain id, the validity window, the nonce, the sender's secp256k1 signature over the
Tempo signing hash, gas, and balances. It is **not** an EVM: the only calls it executes are
`transfer` / `transferWithMemo` on USDC.e (which is what an MPP charge is).

Wire format (local-chains.md §8, matched byte-for-byte against pytempo in the tests):

    signed  = 0x76 || rlp([chain_id, max_priority_fee_per_gas, max_fee_per_gas, gas_limit,
                           calls=[[to, value, input], ...], access_list, nonce_key, nonce,
                           valid_before, valid_after, fee_token, fee_payer_signature,
                           tempo_authorization_list, (key_authorization,) sender_signature])
    signing hash = keccak(0x76 || rlp([first ten fields, fee_token (empty when sponsored),
                           0x00 when sponsored else empty, tempo_authorization_list,
                           (key_authorization)]))
    tx hash = keccak(signed)

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
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

CHAIN_ID = 4217
USDC_E = "0x20C000000000000000000000b9537d11c60E8b50"
DECIMALS = 6
TX_TYPE = 0x76
FEE_PAYER_TX_TYPE = 0x78

GAS_PRICE = 20 * 10**9                 # attodollars (1e-18 USD) per gas: the sandbox's fixed base fee
GAS_PER_CALL = 270_000                 # about what a TIP-20 transfer in a 0x76 transaction uses
ATTO_PER_MICRO = 10**12                # gas prices are attodollars, TIP-20 amounts micro-dollars
EXPIRING_NONCE_KEY = (1 << 256) - 1
EXPIRING_NONCE_MAX_SECONDS = 300       # Tempo's cap on valid_before for expiring nonces (from T11)
PATH_USD = "0x20C0000000000000000000000000000000000000"   # the fee spec's fallback fee token
# TIP-20 tokens whose currency is USD that the fee rules may name (pathUSD, USDC.e, OUSD).
USD_TIP20 = frozenset(a.lower() for a in (PATH_USD, USDC_E, "0x20c0000000000000000000006a37DA5C996874BE"))

SEL_TRANSFER = bytes.fromhex("a9059cbb")           # transfer(address,uint256)
SEL_TRANSFER_WITH_MEMO = bytes.fromhex("95777d59")  # transferWithMemo(address,uint256,bytes32)
SEL_START_REWARD = bytes.fromhex("8afa46c7")        # startReward(uint256,uint32)
SEL_BALANCE_OF = bytes.fromhex("70a08231")
SEL_DECIMALS = bytes.fromhex("313ce567")
TOPIC_TRANSFER = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
TOPIC_TRANSFER_WITH_MEMO = "0x57bc7354aa85aed339e000bccffabbc529466af35f0772c8f8ee1145927de7f0"

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_RAW_TX_BYTES = 32 * 1024


def keccak(data: bytes) -> bytes:
    from eth_hash.auto import keccak as _k
    return _k(data)


class TxRejected(Exception):
    """A transaction a node would refuse. `reason` is a short stable code, `message` says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


# --- RLP (Ethereum Yellow Paper, appendix B): tiny and strict, so non-canonical input is refused --
def rlp_encode(item: Any) -> bytes:
    if isinstance(item, int) and not isinstance(item, bool):
        if item < 0:
            raise ValueError("RLP integers are unsigned")
        item = item.to_bytes((item.bit_length() + 7) // 8, "big") if item else b""
    if isinstance(item, (bytes, bytearray)):
        item = bytes(item)
        if len(item) == 1 and item[0] < 0x80:
            return item
        return _rlp_len(len(item), 0x80) + item
    if isinstance(item, list):
        payload = b"".join(rlp_encode(x) for x in item)
        return _rlp_len(len(payload), 0xC0) + payload
    raise TypeError(f"cannot RLP-encode {type(item).__name__}")


def _rlp_len(n: int, offset: int) -> bytes:
    if n <= 55:
        return bytes([offset + n])
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([offset + 55 + len(ln)]) + ln


def rlp_decode(data: bytes) -> Any:
    item, end = _rlp_item(data, 0, 0)
    if end != len(data):
        raise ValueError("trailing bytes after the RLP item")
    return item


def _rlp_item(b: bytes, i: int, depth: int) -> tuple[Any, int]:
    if depth > 16:
        raise ValueError("RLP nesting too deep")
    if i >= len(b):
        raise ValueError("truncated RLP")
    p = b[i]
    if p < 0x80:
        return b[i:i + 1], i + 1
    if p < 0xC0:
        start, n = _rlp_header(b, i, 0x80)
        if n == 1 and start < len(b) and b[start] < 0x80:
            raise ValueError("non-canonical RLP: single byte below 0x80 wrapped in a string")
        return b[start:start + n], start + n
    start, n = _rlp_header(b, i, 0xC0)
    items, j, end = [], start, start + n
    while j < end:
        item, j = _rlp_item(b[:end], j, depth + 1)
        items.append(item)
    return items, end


def _rlp_header(b: bytes, i: int, offset: int) -> tuple[int, int]:
    p = b[i]
    if p - offset <= 55:
        start, n = i + 1, p - offset
    else:
        ll = p - offset - 55
        if i + 1 + ll > len(b):
            raise ValueError("truncated RLP length")
        raw = b[i + 1:i + 1 + ll]
        if raw[0] == 0:
            raise ValueError("non-canonical RLP length (leading zero)")
        n = int.from_bytes(raw, "big")
        if n <= 55:
            raise ValueError("non-canonical RLP: long form for a short payload")
        start = i + 1 + ll
    if start + n > len(b):
        raise ValueError("truncated RLP payload")
    return start, n


def _uint(raw: Any, what: str, max_bits: int = 256) -> int:
    if not isinstance(raw, bytes):
        raise TxRejected("malformed", f"{what} must be an RLP string")
    if raw[:1] == b"\x00":
        raise TxRejected("malformed", f"{what} has a leading zero byte (non-canonical)")
    v = int.from_bytes(raw, "big")
    if v.bit_length() > max_bits:
        raise TxRejected("malformed", f"{what} is wider than {max_bits} bits")
    return v


def _opt_uint(raw: Any, what: str) -> Optional[int]:
    return None if raw == b"" else _uint(raw, what, 64)


def checksum(addr: bytes) -> str:
    from eth_utils import to_checksum_address
    return to_checksum_address(addr)


@dataclass(frozen=True)
class Call:
    to: str                    # checksummed
    value: int
    data: bytes


@dataclass(frozen=True)
class TempoTx:
    """A decoded, signature-checked type-0x76 transaction."""
    raw: bytes
    chain_id: int
    max_priority_fee_per_gas: int
    max_fee_per_gas: int
    gas_limit: int
    calls: tuple
    nonce_key: int
    nonce: int
    valid_before: Optional[int]
    valid_after: Optional[int]
    fee_token: Optional[str]
    sponsored: bool
    signing_hash: bytes
    sender: str                # checksummed, recovered from the signature
    hash: str                  # 0x + keccak(raw)
    replay_id: str = ""        # 0x + keccak(signing preimage || sender): Tempo's expiring-nonce key (T1B+)

    @property
    def fee_reserve_micros(self) -> int:
        """What the sender must hold for gas before anything runs (rounded up, like a node would)."""
        return -(-self.gas_limit * self.max_fee_per_gas // ATTO_PER_MICRO)

    @property
    def fee_micros(self) -> int:
        return -(-GAS_PER_CALL * len(self.calls) * GAS_PRICE // ATTO_PER_MICRO)


def signing_preimage(fields: list) -> bytes:
    """The bytes the sender signs, from the decoded RLP items of a signed transaction.

    Rebuilt from the *raw* items (not re-encoded integers) so the hash is exactly what was signed.
    When a fee payer sponsors the transaction, the sender commits to an empty fee token and the
    single byte 0x00 in the fee-payer slot instead of the fee payer's signature.
    """
    body = fields[:-1]                       # drop sender_signature
    sponsored = fields[11] != b""
    pre = list(body[:10])
    pre.append(b"" if sponsored else body[10])
    pre.append(b"\x00" if sponsored else b"")
    pre.extend(body[12:])                    # tempo_authorization_list, (key_authorization)
    return bytes([TX_TYPE]) + rlp_encode(pre)


def recover_sender(msg_hash: bytes, sig65: bytes) -> str:
    """secp256k1 recovery from r||s||v (v 27/28 as pympp writes it, or 0/1). Low-s only (EIP-2)."""
    from .auth import ecc
    keys = ecc()
    if len(sig65) != 65:
        raise TxRejected("unsupported_signature",
                         f"sender signature is {len(sig65)} bytes; the sandbox accepts plain 65-byte "
                         "secp256k1 signatures only (no access-key / WebAuthn / P256 signatures)")
    r, s, v = int.from_bytes(sig65[:32], "big"), int.from_bytes(sig65[32:64], "big"), sig65[64]
    if v in (27, 28):
        v -= 27
    if v not in (0, 1) or not (0 < r < _SECP256K1_N) or not (0 < s <= _SECP256K1_N // 2):
        raise TxRejected("invalid_signature", "sender signature values out of range (v, r, or high s)")
    try:
        pub = keys.Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(msg_hash)
    except Exception:
        raise TxRejected("invalid_signature", "sender signature does not recover to a public key")
    return pub.to_checksum_address()


def decode_tx(raw: bytes) -> TempoTx:
    """Decode a signed 0x76 transaction and recover its sender. Raises TxRejected."""
    if not isinstance(raw, (bytes, bytearray)) or len(raw) < 2:
        raise TxRejected("malformed", "empty transaction")
    raw = bytes(raw)
    if len(raw) > MAX_RAW_TX_BYTES:
        raise TxRejected("malformed", "transaction too large")
    if raw[0] == FEE_PAYER_TX_TYPE:
        raise TxRejected("sponsored_unsupported",
                         "0x78 fee-payer envelopes are not accepted: the sandbox does not sponsor gas")
    if raw[0] != TX_TYPE:
        raise TxRejected("wrong_type", f"transaction type 0x{raw[0]:02x} is not a Tempo transaction (0x76)")
    try:
        fields = rlp_decode(raw[1:])
    except ValueError as exc:
        raise TxRejected("malformed", f"RLP: {exc}")
    if not isinstance(fields, list) or len(fields) not in (14, 15):
        raise TxRejected("malformed", "a 0x76 transaction is an RLP list of 14 (or 15) fields")
    if len(fields) == 15:
        raise TxRejected("unsupported_key_authorization",
                         "key authorizations (access keys) are not supported by the sandbox ledger")
    sig = fields[-1]
    if not isinstance(sig, bytes):
        raise TxRejected("malformed", "sender_signature must be a byte string")
    for i in (4, 5, 12):
        if not isinstance(fields[i], list):
            raise TxRejected("malformed", f"field {i} must be a list")
    if fields[12]:
        raise TxRejected("unsupported_authorization_list",
                         "Tempo authorization lists are not supported by the sandbox ledger")
    calls = []
    for c in fields[4]:
        if not isinstance(c, list) or len(c) != 3 or not all(isinstance(x, bytes) for x in c):
            raise TxRejected("malformed", "each call is [to, value, input]")
        if len(c[0]) != 20:
            raise TxRejected("malformed", "call.to must be a 20-byte address (contract creation is not supported)")
        calls.append(Call(checksum(c[0]), _uint(c[1], "call.value"), c[2]))
    if not calls:
        raise TxRejected("malformed", "a transaction needs at least one call")
    fee_token_raw = fields[10]
    if not isinstance(fee_token_raw, bytes) or len(fee_token_raw) not in (0, 20):
        raise TxRejected("malformed", "fee_token must be empty or a 20-byte address")
    sponsored = fields[11] != b""
    pre = signing_preimage(fields)
    signing_hash = keccak(pre)
    sender = recover_sender(signing_hash, sig)
    replay_id = "0x" + keccak(pre + bytes.fromhex(sender[2:])).hex()
    return TempoTx(
        raw=raw, chain_id=_uint(fields[0], "chain_id", 64),
        max_priority_fee_per_gas=_uint(fields[1], "max_priority_fee_per_gas"),
        max_fee_per_gas=_uint(fields[2], "max_fee_per_gas"), gas_limit=_uint(fields[3], "gas_limit", 64),
        calls=tuple(calls), nonce_key=_uint(fields[6], "nonce_key"), nonce=_uint(fields[7], "nonce", 64),
        valid_before=_opt_uint(fields[8], "valid_before"), valid_after=_opt_uint(fields[9], "valid_after"),
        fee_token=checksum(fee_token_raw) if fee_token_raw else None, sponsored=sponsored,
        signing_hash=signing_hash, sender=sender, hash="0x" + keccak(raw).hex(), replay_id=replay_id)


def fee_token_of(tx: TempoTx) -> str:
    """The fee token Tempo's fee rules choose for `tx` (spec-fee "Fee token preferences").

    1. the transaction's `fee_token`; 2. the fee payer's account preference (none exist on this
    ledger); 3. when every top-level call is `transfer`, `transferWithMemo` or `startReward` on
    one USD TIP-20 contract and the sender pays its own fee, that contract; 4. the DEX rule (no
    DEX here); 5. pathUSD.
    """
    if tx.fee_token is not None:
        return tx.fee_token
    targets = {c.to.lower() for c in tx.calls}
    if (not tx.sponsored and len(targets) == 1 and next(iter(targets)) in USD_TIP20
            and all(c.data[:4] in (SEL_TRANSFER, SEL_TRANSFER_WITH_MEMO, SEL_START_REWARD) for c in tx.calls)):
        return tx.calls[0].to
    return PATH_USD


@dataclass(frozen=True)
class Transfer:
    """A decoded TIP-20 transfer call: `memo` is None for plain `transfer`."""
    token: str
    recipient: str
    amount: int
    memo: Optional[bytes]


def decode_transfer(call: Call) -> Transfer:
    """ABI-decode `transfer(address,uint256)` or `transferWithMemo(address,uint256,bytes32)`, strictly."""
    d = call.data
    sel = d[:4]
    if sel == SEL_TRANSFER and len(d) == 4 + 64:
        memo = None
    elif sel == SEL_TRANSFER_WITH_MEMO and len(d) == 4 + 96:
        memo = d[68:100]
    else:
        raise TxRejected("unsupported_call", "the call is not a TIP-20 transfer or transferWithMemo "
                                             "(exact ABI length required)")
    if d[4:16] != bytes(12):
        raise TxRejected("malformed", "recipient word has non-zero high bytes")
    return Transfer(call.to, checksum(d[16:36]), int.from_bytes(d[36:68], "big"), memo)


def _word(v: int) -> str:
    return "0x" + v.to_bytes(32, "big").hex()


def _topic_addr(addr: str) -> str:
    return "0x" + bytes(12).hex() + addr[2:].lower()


def _valid_id(rid: Any) -> bool:
    """A JSON-RPC id is a string, a number or null (echoing NaN or Infinity would not be JSON)."""
    if rid is None or isinstance(rid, str) or (isinstance(rid, int) and not isinstance(rid, bool)):
        return True
    return isinstance(rid, float) and math.isfinite(rid)


_LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (address TEXT PRIMARY KEY, amount TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (address TEXT PRIMARY KEY, nonce INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS txs (hash TEXT PRIMARY KEY, block INTEGER NOT NULL, receipt TEXT NOT NULL,
                                tx TEXT NOT NULL);
"""


class TempoLedger:
    """USDC.e balances plus the node-side checks, applied atomically under one lock.

    `state_path` (a SQLite file) keeps the ledger across restarts: every applied transaction and
    faucet payment is written in one SQLite transaction before it is acknowledged, and a ledger
    found there is resumed instead of funding the test wallets again.
    """

    def __init__(self, seed: int = 0, *, funded: Optional[list] = None, fund_usd: int = 1_000,
                 clock: Callable[[], float] = time.time, state_path: Optional[str] = None):
        from . import wallets
        from .chains.state import StateFile
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
            from .facilitator import TEST_WALLET_COUNT
            funded = [wallets.evm_address(wallets.evm_key(seed, "test", i)) for i in range(TEST_WALLET_COUNT)]
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
            "blockNumber": hex(self.block_number), "blockHash": self._block_hash(self.block_number),
            "from": tx.sender, "to": tx.calls[0].to, "status": "0x1",
            "gasUsed": hex(GAS_PER_CALL * len(tx.calls)), "cumulativeGasUsed": hex(GAS_PER_CALL * len(tx.calls)),
            "effectiveGasPrice": hex(GAS_PRICE), "feeToken": checksum(bytes.fromhex(fee_token[2:])),
            "feePayer": tx.sender, "contractAddress": None, "logsBloom": "0x" + "00" * 256,
            "logs": [dict(lg, blockNumber=hex(self.block_number),
                          blockHash=self._block_hash(self.block_number)) for lg in logs]}
        txj = {"hash": tx.hash, "type": hex(TX_TYPE), "from": tx.sender,
               "chainId": hex(tx.chain_id), "nonce": hex(tx.nonce),
               "nonceKey": hex(tx.nonce_key), "gas": hex(tx.gas_limit),
               "maxFeePerGas": hex(tx.max_fee_per_gas), "feeToken": tx.fee_token,
               "blockNumber": hex(self.block_number),
               "blockHash": self._block_hash(self.block_number),
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
        return {"address": token, "topics": topics, "data": _word(amount), "logIndex": hex(index),
                "transactionHash": tx_hash, "transactionIndex": "0x0", "removed": False}

    @staticmethod
    def _block_hash(n: int) -> str:
        return "0x" + keccak(b"x402-compute-sandbox/tempo/block/%d" % n).hex()

    # --- JSON-RPC (what a Tempo client needs to build and send a payment) ---------------------------
    def rpc(self, method: str, params: list) -> Any:
        if method == "eth_chainId":
            return hex(CHAIN_ID)
        if method == "net_version":
            return str(CHAIN_ID)
        if method == "eth_blockNumber":
            return hex(self.block_number)
        if method == "eth_gasPrice":
            return hex(GAS_PRICE)
        if method == "eth_maxPriorityFeePerGas":
            return "0x0"
        if method == "eth_estimateGas":
            tx = params[0] if params and isinstance(params[0], dict) else {}
            calls = tx.get("calls")
            return hex(GAS_PER_CALL * (len(calls) if isinstance(calls, list) and calls else 1))
        if method == "eth_getTransactionCount":
            return hex(self.nonce_of(_rpc_address(params[0] if params else None)))
        if method == "eth_getBalance":
            _rpc_address(params[0] if params else None)
            return "0x0"     # Tempo has no native gas coin: fees are paid in stablecoins
        if method == "eth_getCode":
            addr = _rpc_address(params[0] if params else None)
            return "0xef" if addr.lower() == USDC_E.lower() else "0x"
        if method == "eth_call":
            return self._eth_call(params[0] if params else None)
        if method == "eth_getBlockByNumber":
            with self._lock:
                n, t = self.block_number, self.block_time
            return {"number": hex(n), "hash": self._block_hash(n), "parentHash": self._block_hash(n - 1),
                    "timestamp": hex(max(t, int(self.clock()))), "baseFeePerGas": hex(GAS_PRICE),
                    "gasLimit": hex(500_000_000), "gasUsed": "0x0", "miner": self.sequencer,
                    "transactions": [], "uncles": []}
        if method in ("eth_sendRawTransaction", "eth_sendRawTransactionSync"):
            raw = params[0] if params else None
            if not isinstance(raw, str) or not raw.startswith("0x"):
                raise RpcFault(-32602, "expected a 0x-prefixed raw transaction")
            try:
                receipt = self.submit(decode_tx(bytes.fromhex(raw[2:])))
            except ValueError:
                raise RpcFault(-32602, "raw transaction is not hex")
            except TxRejected as rej:
                raise RpcFault(-32003, f"transaction rejected ({rej.reason}): {rej.message}")
            return receipt if method.endswith("Sync") else receipt["transactionHash"]
        if method == "eth_getTransactionReceipt":
            return self.receipt(str(params[0] if params else ""))
        if method == "eth_getTransactionByHash":
            with self._lock:
                return self._txs.get(str(params[0] if params else "").lower())
        raise RpcFault(-32601, f"Method not found: {method} (the sandbox's Tempo stand-in serves eth_chainId, "
                               "eth_gasPrice, eth_estimateGas, eth_getTransactionCount, eth_call (USDC.e balanceOf/"
                               "decimals/transfer simulation), eth_getBlockByNumber, eth_sendRawTransaction[Sync], "
                               "eth_getTransactionReceipt, eth_getTransactionByHash)")

    def _eth_call(self, call: Any) -> str:
        if not isinstance(call, dict):
            raise RpcFault(-32602, "eth_call needs a transaction object")
        to = _rpc_address(call.get("to"))
        data_hex = call.get("data", call.get("input", "0x"))
        try:
            data = bytes.fromhex(str(data_hex)[2:]) if str(data_hex).startswith("0x") else None
        except ValueError:
            data = None
        if data is None:
            raise RpcFault(-32602, "`data` must be 0x-prefixed hex")
        if to.lower() != USDC_E.lower():
            return "0x"
        if data[:4] == SEL_BALANCE_OF and len(data) == 36:
            return _word(self.balance_of(checksum(data[16:36])))
        if data[:4] == SEL_DECIMALS:
            return _word(DECIMALS)
        if data[:4] in (SEL_TRANSFER, SEL_TRANSFER_WITH_MEMO):
            try:
                t = decode_transfer(Call(to, 0, data))
            except TxRejected as rej:
                raise RpcFault(3, f"execution reverted: {rej.message}")
            sender = call.get("from")
            if sender and self.balance_of(_rpc_address(sender)) < t.amount:
                raise RpcFault(3, "execution reverted: insufficient balance")
            return _word(1)
        raise RpcFault(3, "execution reverted: the sandbox's USDC.e answers balanceOf, decimals, transfer, "
                          "transferWithMemo only")

    def handle_http(self, body: bytes) -> Any:
        """A JSON-RPC 2.0 request body (single or batch) -> the JSON answer."""
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        if isinstance(req, list):
            if not req:
                return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Empty batch"}}
            return [self._one(item) for item in req[:100]]
        return self._one(req)

    def _one(self, call: Any) -> dict:
        if not isinstance(call, dict) or not isinstance(call.get("method"), str) \
                or not _valid_id(call.get("id")):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid Request"}}
        params = call.get("params", [])
        if not isinstance(params, list):
            params = [params] if params is not None else []
        try:
            return {"jsonrpc": "2.0", "id": call.get("id"), "result": self.rpc(call["method"], params)}
        except RpcFault as f:
            return {"jsonrpc": "2.0", "id": call.get("id"), "error": {"code": f.code, "message": f.message}}


class RpcFault(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _rpc_address(value: Any) -> str:
    from eth_utils import is_address, to_checksum_address
    if not isinstance(value, str) or not is_address(value):
        raise RpcFault(-32602, f"invalid address {value!r}")
    return to_checksum_address(value)
