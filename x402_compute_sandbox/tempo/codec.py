"""The Tempo wire format: type-0x76 transactions decoded strictly (RLP, fields, sender recovery),
the chain's constants, the fee-token rule and TIP-20 transfer calls. No state: see ledger.py.

Wire format (local-chains.md §8, matched byte-for-byte against pytempo in the tests):

    signed  = 0x76 || rlp([chain_id, max_priority_fee_per_gas, max_fee_per_gas, gas_limit,
                           calls=[[to, value, input], ...], access_list, nonce_key, nonce,
                           valid_before, valid_after, fee_token, fee_payer_signature,
                           tempo_authorization_list, (key_authorization,) sender_signature])
    signing hash = keccak(0x76 || rlp([first ten fields, fee_token (empty when sponsored),
                           0x00 when sponsored else empty, tempo_authorization_list,
                           (key_authorization)]))
    tx hash = keccak(signed)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

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
    from ..auth import ecc
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


def word(v: int) -> str:
    """An ABI word: a uint256 as 0x + 64 hex digits (eth_call results, log data)."""
    return "0x" + v.to_bytes(32, "big").hex()
