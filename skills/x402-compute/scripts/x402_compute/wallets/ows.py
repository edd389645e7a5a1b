"""Signers backed by an Open Wallet Standard vault, through the PyPI binding
(``pip install open-wallet-standard``, import name ``ows``): no Node binary, and
the private key never enters this process.

Same interface as the raw-key signers (``evm.py``, ``solana.py``):

- ``OwsEvmSigner``: ``address``, ``sign_message(text)`` (EIP-191),
  ``sign_typed_data(typed)`` (EIP-712), ``sign_hash(digest)``; 65 bytes r‖s‖v, v = 27/28.
- ``OwsSolanaSigner``: ``address``, ``sign_message(data)`` (raw ed25519, 64 bytes).

Settings (environment or ``--env-file``):

- ``OWS_WALLET``: wallet name or id.
- ``OWS_VAULT_PATH``: vault root (default: the binding's ``~/.ows``).
- ``OWS_PASSPHRASE`` (or ``OWS_PASSPHRASE_FILE``): the wallet passphrase, or an
  ``ows_key_…`` API token in its place. Unset: a hidden prompt at a terminal
  (once per process), else the empty passphrase. The binding ignores the
  variable, so it is passed explicitly; it is never logged or put in argv.

Every signing call re-runs scrypt in the vault (~0.2 s), so nothing here signs
speculatively (no "test signature" to validate the passphrase up front).
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from .. import cmdline, redact
from ..errors import ComputeError, ConfigError, PolicyError

# The chain named to OWS decides which API-token policy applies (allowed_chains).
# Management auth is labelled "base" (compute-api.md §7.2), so EVM signing that
# is not tied to a chain (EIP-191, raw hashes) is presented to OWS as Base.
DEFAULT_EVM_CHAIN = "eip155:8453"
SOLANA_CHAIN = "solana"

API_TOKEN_PREFIX = "ows_key_"
_U128 = 1 << 128
_INT_TYPE = re.compile(r"^u?int(\d*)$")

# Passphrases typed at the prompt, per (vault, wallet id): asked once per process.
_PROMPTED: dict[tuple[str, str], str] = {}


def load_binding():
    try:
        import ows  # noqa: PLC0415 - native module, imported only when OWS is used
    except ImportError:
        raise ConfigError(
            "OWS mode needs the Python package open-wallet-standard (import name ows).",
            code="ows_not_installed",
            hint="pip install open-wallet-standard  (no Node or ows binary needed).",
        ) from None
    return ows


def vault_path(env: Mapping[str, str]) -> str | None:
    """``OWS_VAULT_PATH`` expanded, or None for the binding's default (~/.ows)."""
    raw = (env.get("OWS_VAULT_PATH") or "").strip()
    return str(Path(raw).expanduser()) if raw else None


def vault_label(vault: str | None) -> str:
    return vault or str(Path("~/.ows").expanduser())


def is_api_token(secret: str | None) -> bool:
    return bool(secret) and secret.startswith(API_TOKEN_PREFIX)  # type: ignore[union-attr]


def env_secret(env: Mapping[str, str]) -> str | None:
    """``OWS_PASSPHRASE`` (set but empty means the empty passphrase) or ``OWS_PASSPHRASE_FILE``; None if neither."""
    if "OWS_PASSPHRASE" in env:
        redact.register(env["OWS_PASSPHRASE"])
        return env["OWS_PASSPHRASE"]
    path = (env.get("OWS_PASSPHRASE_FILE") or "").strip()
    if path:
        try:
            # Only the trailing newline an editor or `echo` adds; inner spaces may be part of a passphrase.
            value = Path(path).expanduser().read_text().rstrip("\r\n")
            redact.register(value)
            return value
        except OSError as e:
            raise ConfigError(f"Cannot read OWS_PASSPHRASE_FILE ({path}): {e.strerror}") from None
    return None


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def prompt_secret(prompt: str) -> str:
    try:
        value = getpass.getpass(prompt)
    except EOFError:
        return ""
    redact.register(value)
    return value


def map_error(e: Exception, *, wallet: str | None = None, chain: str | None = None, vault: str | None = None, secret: str | None = None) -> ComputeError:
    """A binding ``RuntimeError`` as an error a user can act on."""
    msg = str(e)
    if secret and secret in msg:  # the binding does not echo secrets, but never risk it
        msg = msg.replace(secret, "***")
    low = msg.lower()
    where = f" in the vault {vault_label(vault)}"
    if "decryption failed" in low:
        return ConfigError(
            f"Wrong passphrase for OWS wallet {wallet!r}." if wallet else "Wrong OWS passphrase.",
            code="ows_bad_passphrase",
            hint="Set OWS_PASSPHRASE (or OWS_PASSPHRASE_FILE) to the wallet passphrase or an ows_key_ API token. "
            "API tokens cannot export wallets or create keys.",
        )
    if "wallet not found" in low:
        return ConfigError(
            f"OWS wallet {wallet!r} not found{where}." if wallet else f"OWS wallet not found{where}.",
            code="ows_wallet_not_found",
            hint=f"List wallets with: {cmdline.command('ows_cli.py', 'wallet-list')}  (set OWS_VAULT_PATH if the vault is elsewhere).",
        )
    if "policy denied" in low:
        return PolicyError(
            f"The OWS API token's policy refused to sign on {chain or 'this chain'}: {msg}",
            code="ows_policy_denied",
            hint="Use a token whose policy allows this chain, or the wallet passphrase.",
        )
    if "api key expired" in low:
        return ConfigError("The OWS API token has expired.", code="ows_token_expired", hint="Create a new one with ows_cli.py key-create.")
    if "api key not found" in low:
        return ConfigError(
            "The OWS API token is unknown or revoked.",
            code="ows_token_unknown",
            hint="Check OWS_PASSPHRASE, or create a new token with ows_cli.py key-create.",
        )
    if "already exists" in low:
        return ConfigError(msg[:1].upper() + msg[1:] + ".", code="ows_wallet_exists")
    if "unknown chain" in low:
        return ConfigError(msg.split("\n", 1)[0], code="ows_unknown_chain", hint="Use evm, solana, or a CAIP-2 id such as eip155:8453.")
    if "invalid" in low:
        return ConfigError(f"OWS rejected the input: {msg.splitlines()[0]}", code="ows_invalid_input")
    return ComputeError(f"OWS error: {msg.splitlines()[0] if msg else type(e).__name__}", code="ows_error")


class OwsWallet:
    """One wallet in one vault, and the secret that unlocks it (resolved lazily, at the first signature)."""

    def __init__(self, wallet: str, *, vault: str | None = None, env: Mapping[str, str] | None = None, secret: str | None = None) -> None:
        self._ows = load_binding()
        self.vault = vault
        self._env = dict(os.environ if env is None else env)
        self._secret = secret
        try:
            info = self._ows.get_wallet(wallet, vault_path_opt=vault)
        except RuntimeError as e:
            raise map_error(e, wallet=wallet, vault=vault) from None
        self.info: dict = info
        self.id: str = info["id"]
        self.name: str = info["name"]

    def __repr__(self) -> str:  # never the secret
        return f"OwsWallet({self.name!r}, {self.id})"

    def account(self, prefix: str) -> str | None:
        return account_address(self.info, prefix)

    def secret(self) -> str:
        if self._secret is not None:
            return self._secret
        value = env_secret(self._env)
        if value is None:
            key = (vault_label(self.vault), self.id)
            if key in _PROMPTED:
                value = _PROMPTED[key]
            elif interactive():
                value = prompt_secret(f"OWS passphrase or API token for wallet {self.name!r}: ")
                _PROMPTED[key] = value
            else:
                value = ""  # OWS's default is the empty passphrase; a wrong guess fails with a clear hint
        self._secret = value
        return value

    def call(self, fn: str, chain: str, *args: Any, **kwargs: Any) -> dict:
        secret = self.secret()
        try:
            return getattr(self._ows, fn)(self.id, chain, *args, passphrase=secret, vault_path_opt=self.vault, **kwargs)
        except RuntimeError as e:
            err = map_error(e, wallet=self.name, chain=chain, vault=self.vault, secret=secret)
            if isinstance(err, ConfigError) and err.code in ("ows_bad_passphrase", "ows_token_unknown", "ows_token_expired"):
                # A prompted value was wrong: ask again next time rather than repeat the failure.
                _PROMPTED.pop((vault_label(self.vault), self.id), None)
            raise err from None


def account_address(info: Mapping, prefix: str) -> str | None:
    """The address of the first account whose CAIP chain id starts with ``prefix`` (``eip155:``, ``solana:``)."""
    for acct in info.get("accounts") or []:
        if str(acct.get("chain_id", "")).startswith(prefix):
            return acct.get("address")
    return None


def _wallet_from_settings(settings) -> tuple[OwsWallet, Mapping[str, str]]:
    env = getattr(settings, "env", None) or {}
    if not settings.ows_wallet:
        raise ConfigError(
            "OWS mode needs a wallet: OWS_WALLET is not set.",
            hint=f"Set OWS_WALLET to a wallet name or id ({cmdline.command('ows_cli.py', 'wallet-list')}).",
        )
    return OwsWallet(settings.ows_wallet, vault=vault_path(env), env=env), env


# -- EIP-712 JSON for ows.sign_typed_data ------------------------------------------

_DOMAIN_FIELDS = (
    ("name", "string"),
    ("version", "string"),
    ("chainId", "uint256"),
    ("verifyingContract", "address"),
    ("salt", "bytes32"),
)


def _uint_value(v: Any) -> Any:
    """OWS reads decimal strings only up to u128; above that it wants even-length 0x hex (mpp-ows.md §B.5)."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        if v < 0:
            return str(v)
        return str(v) if v < _U128 else "0x" + _even_hex(v)
    if isinstance(v, str):
        s = v.strip()
        if s[:2].lower() == "0x":
            digits = s[2:]
            return "0x" + ("0" + digits if len(digits) % 2 else digits)
        if s.isdigit() and int(s) >= _U128:
            return "0x" + _even_hex(int(s))
        return s
    return v


def _even_hex(n: int) -> str:
    h = format(n, "x")
    return "0" + h if len(h) % 2 else h


def _encode_value(typ: str, v: Any, types: Mapping[str, list]) -> Any:
    if typ.endswith("]"):
        inner = typ[: typ.rindex("[")]
        return [_encode_value(inner, x, types) for x in (v or [])]
    if typ in types:
        return _encode_struct(typ, v, types)
    if _INT_TYPE.match(typ):
        return _uint_value(v)
    if isinstance(v, (bytes, bytearray)):
        return "0x" + bytes(v).hex()
    return v


def _encode_struct(name: str, obj: Any, types: Mapping[str, list]) -> Any:
    if not isinstance(obj, Mapping):
        return obj
    out = dict(obj)
    for f in types.get(name, []):
        if f["name"] in out:
            out[f["name"]] = _encode_value(f["type"], out[f["name"]], types)
    return out


def typed_data_json(typed: Mapping) -> str:
    """The eth_signTypedData_v4 dict (what eth-account's ``full_message`` takes) as the JSON OWS accepts:
    ``EIP712Domain`` listed in ``types`` (derived from the domain's fields when missing), large
    uints as even-length hex, bytes as 0x hex. The signed data is unchanged."""
    types = {k: list(v) for k, v in dict(typed.get("types") or {}).items()}
    domain = dict(typed.get("domain") or {})
    if "EIP712Domain" not in types:
        types["EIP712Domain"] = [{"name": n, "type": t} for n, t in _DOMAIN_FIELDS if n in domain]
    doc = {
        "types": types,
        "primaryType": typed.get("primaryType"),
        "domain": _encode_struct("EIP712Domain", domain, types),
        "message": _encode_struct(str(typed.get("primaryType")), dict(typed.get("message") or {}), types),
    }
    return json.dumps(doc, separators=(",", ":"))


def _evm_chain_of(typed: Mapping, default: str) -> str:
    """The chain an EIP-712 document is bound to (its domain's chainId), for the token policy check."""
    cid = (typed.get("domain") or {}).get("chainId")
    try:
        if isinstance(cid, str):
            cid = int(cid, 16) if cid[:2].lower() == "0x" else int(cid)
        if isinstance(cid, int) and not isinstance(cid, bool) and cid > 0:
            return f"eip155:{cid}"
    except ValueError:
        pass
    return default


def _sig_bytes(result: Mapping, size: int) -> bytes:
    sig = bytes.fromhex(str(result.get("signature", "")).removeprefix("0x"))
    if len(sig) != size:
        raise ComputeError(f"OWS returned a {len(sig)}-byte signature, expected {size}.", code="signer_error")
    return sig


class OwsEvmSigner:
    kind = "evm"

    def __init__(self, wallet: OwsWallet, *, chain: str = DEFAULT_EVM_CHAIN) -> None:
        self._wallet = wallet
        self.wallet_id = wallet.id
        self.wallet_name = wallet.name
        # The OWS chain for signatures not bound to a chain (EIP-191, raw hashes): it is what an API
        # token's allowed_chains policy is checked against. Typed data uses its domain's chainId.
        self.chain = chain
        address = wallet.account("eip155:")
        if not address:
            raise ConfigError(f"OWS wallet {wallet.name!r} has no EVM account.", code="ows_no_account")
        self.address: str = address  # EIP-55 checksummed, as OWS stores it

    @classmethod
    def from_settings(cls, settings) -> "OwsEvmSigner":
        """The configured vault's EVM account (``wallets.evm_signer`` cross-checks WALLET_ADDRESS)."""
        return cls(_wallet_from_settings(settings)[0])

    def __repr__(self) -> str:
        return f"OwsEvmSigner({self.address}, wallet={self.wallet_name!r})"

    def sign_message(self, text: str) -> bytes:
        """EIP-191 personal_sign over the UTF-8 text; OWS already returns v = 27/28."""
        res = self._wallet.call("sign_message", self.chain, text)
        return _v27(_sig_bytes(res, 65))

    def sign_typed_data(self, typed: dict) -> bytes:
        chain = _evm_chain_of(typed, self.chain)
        res = self._wallet.call("sign_typed_data", chain, typed_data_json(typed))
        return _v27(_sig_bytes(res, 65))

    def sign_hash(self, digest: bytes, *, chain: str | None = None) -> bytes:
        """Raw secp256k1 signature of a 32-byte digest; OWS gives v = 0/1, returned as 27/28 like EvmSigner.

        ``chain``: the OWS chain for the policy check (e.g. ``eip155:4217`` for a Tempo transaction)."""
        digest = bytes(digest)
        if len(digest) != 32:
            raise ValueError("sign_hash takes a 32-byte digest")
        res = self._wallet.call("sign_hash", chain or self.chain, digest.hex())
        return _v27(_sig_bytes(res, 65))


def _v27(sig: bytes) -> bytes:
    v = sig[64]
    return sig[:64] + bytes([v + 27]) if v in (0, 1) else sig


class OwsSolanaSigner:
    kind = "solana"

    def __init__(self, wallet: OwsWallet) -> None:
        self._wallet = wallet
        self.wallet_id = wallet.id
        self.wallet_name = wallet.name
        address = wallet.account("solana:")
        if not address:
            raise ConfigError(f"OWS wallet {wallet.name!r} has no Solana account.", code="ows_no_account")
        self.address: str = address

    @classmethod
    def from_settings(cls, settings) -> "OwsSolanaSigner":
        """The configured vault's Solana account (``wallets.solana_signer`` cross-checks the address)."""
        return cls(_wallet_from_settings(settings)[0])

    def __repr__(self) -> str:
        return f"OwsSolanaSigner({self.address}, wallet={self.wallet_name!r})"

    def sign_message(self, data: bytes) -> bytes:
        """Raw ed25519 over exactly these bytes (hex-encoded so OWS signs the bytes, not a UTF-8 rendering)."""
        res = self._wallet.call("sign_message", SOLANA_CHAIN, bytes(data).hex(), encoding="hex")
        return _sig_bytes(res, 64)
