"""EIP-712 hashing of the typed data this client signs, without eth-account's generic encoder.

eth-account's ``encode_typed_data`` validates and walks the message through several layers and
costs more than the signature itself (bench_paid_provision.py's profile). The messages we sign
(EIP-3009 ``TransferWithAuthorization``, ERC-2612 ``Permit``, Permit2
``PermitWitnessTransferFrom`` with its nested structs) use only atomic types and nested structs,
which this module hashes directly by the specification: ``keccak256(0x19 0x01 ‖ domainSeparator ‖
hashStruct(message))``. Anything else (arrays, unknown types, malformed values) returns None and
the caller falls back to eth-account. tests/unit/test_eip712.py checks every digest against
eth-account's; the settlement tests check them on chain."""

from __future__ import annotations

import re
from typing import Any

_UINT = re.compile(r"^u?int(8|16|24|32|40|48|56|64|72|80|88|96|104|112|120|128|136|144|152|160|168|176|184|192|200|208|216|224|232|240|248|256)$")
_BYTES_N = re.compile(r"^bytes([1-9]|[12][0-9]|3[0-2])$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX = re.compile(r"^0x([0-9a-fA-F]{2})*$")


class Unsupported(Exception):
    """A type or value this encoder does not handle: use the generic one."""


def _keccak(data: bytes) -> bytes:
    from eth_utils import keccak

    return keccak(data)


def _deps(primary: str, types: dict, found: list) -> list:
    if primary in found:
        return found
    found.append(primary)
    for field in types[primary]:
        t = field["type"]
        if t in types:
            _deps(t, types, found)
    return found


def _encode_type(primary: str, types: dict) -> str:
    deps = _deps(primary, types, [])
    order = [primary] + sorted(d for d in deps if d != primary)
    return "".join(f"{name}({','.join(f['type'] + ' ' + f['name'] for f in types[name])})" for name in order)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise Unsupported("bool as integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        v = value.strip()
        return int(v, 16) if v.lower().startswith("0x") else int(v, 10)
    raise Unsupported(f"integer value {type(value).__name__}")


def _bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and _HEX.match(value):
        return bytes.fromhex(value[2:])
    raise Unsupported("bytes value")


def _encode_value(t: str, value: Any, types: dict) -> bytes:
    if t in types:
        if not isinstance(value, dict):
            raise Unsupported("struct value")
        return _hash_struct(t, value, types)
    if t == "address":
        if not isinstance(value, str) or not _ADDRESS.match(value):
            raise Unsupported("address value")
        return bytes(12) + bytes.fromhex(value[2:])
    if t == "bool":
        if not isinstance(value, bool):
            raise Unsupported("bool value")
        return int(value).to_bytes(32, "big")
    if t == "string":
        if not isinstance(value, str):
            raise Unsupported("string value")
        return _keccak(value.encode("utf-8"))
    if t == "bytes":
        return _keccak(_bytes(value))
    m = _BYTES_N.match(t)
    if m:
        raw = _bytes(value)
        if len(raw) != int(m.group(1)):
            raise Unsupported("bytesN length")
        return raw.ljust(32, b"\0")
    m = _UINT.match(t)
    if m:
        n, bits = _int(value), int(m.group(1))
        if t.startswith("uint"):
            if not 0 <= n < 1 << bits:
                raise Unsupported("uint range")
            return n.to_bytes(32, "big")
        if not -(1 << (bits - 1)) <= n < 1 << (bits - 1):
            raise Unsupported("int range")
        return (n % (1 << 256)).to_bytes(32, "big")
    raise Unsupported(f"type {t}")


def _hash_struct(primary: str, data: dict, types: dict) -> bytes:
    fields = types[primary]
    if set(data) - {f["name"] for f in fields}:
        raise Unsupported("extra fields")
    enc = _keccak(_encode_type(primary, types).encode())
    for f in fields:
        if f["name"] not in data:
            raise Unsupported("missing field")
        enc += _encode_value(f["type"], data[f["name"]], types)
    return _keccak(enc)


def digest(typed: dict) -> bytes | None:
    """The 32-byte EIP-712 digest of an eth_signTypedData_v4 document, or None when it uses
    something this encoder leaves to eth-account."""
    try:
        types = typed["types"]
        if not isinstance(types, dict) or "EIP712Domain" not in types:
            raise Unsupported("no EIP712Domain")
        for fields in types.values():
            if not isinstance(fields, list) or not all(isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("type"), str) for f in fields):
                raise Unsupported("types shape")
        primary = typed["primaryType"]
        if primary not in types or primary == "EIP712Domain":
            raise Unsupported("primaryType")
        domain = _hash_struct("EIP712Domain", typed["domain"], types)
        message = _hash_struct(primary, typed["message"], types)
    except (Unsupported, KeyError, TypeError, ValueError):
        return None
    return _keccak(b"\x19\x01" + domain + message)
