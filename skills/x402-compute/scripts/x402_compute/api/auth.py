"""Management authentication: ``X-API-Key``, or the six signed ``X-Auth-*``
headers over the nine-line message (reference: compute-api.md §7).

The body that is hashed must be byte-for-byte the body that is sent; callers
pass the exact bytes (``encode_body``) to both.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
import uuid
from typing import Any, Callable, Protocol

from ..errors import ConfigError
from ..networks import NETWORKS
from ..redact import register
from ..state import State
from ..wallets import evm_signer, solana_signer

AUTH_PREFIX = "X402-COMPUTE-AUTH"
AUTH_VERSION = "v1"


def encode_body(obj: Any) -> bytes:
    """Compact JSON in insertion order: the exact bytes hashed and sent."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def auth_message(chain: str, address: str, method: str, path: str, body: bytes, timestamp_ms: str, nonce: str) -> str:
    if "?" in path or "://" in path:
        raise ValueError("the signed path is the path only, without scheme, host or query")
    return "\n".join(
        [
            AUTH_PREFIX,
            AUTH_VERSION,
            chain,
            address,
            method.upper(),
            path,
            hashlib.sha256(body).hexdigest(),
            timestamp_ms,
            nonce,
        ]
    )


class Auth(Protocol):
    identity: str

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]: ...


class NoAuth:
    identity = "none"
    label = "none"

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {}


class ApiKeyAuth:
    identity = "api-key"

    def __init__(self, key: str, *, label: str = "api-key") -> None:
        register(key)
        self._key = key
        self.label = label  # "api-key", or "management-key" for an instance's own key from an MPP provision

    @property
    def last4(self) -> str:
        return self._key[-4:]

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {"X-API-Key": self._key}


class SignatureAuth:
    """Signs each request afresh: a nonce is consumed even when the answer is a 402."""

    identity = "signature"

    def __init__(
        self,
        signer: Any,
        chain: str,
        *,
        clock: Callable[[], float] = time.time,
        nonce_factory: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.signer = signer
        self.chain = chain
        self._clock = clock
        self._nonce = nonce_factory

    @property
    def label(self) -> str:
        """Which credential signs, as the scripts' ``auth`` field says it: ``wallet:base``,
        ``wallet:solana`` or ``ows:<wallet>``."""
        name = getattr(self.signer, "wallet_name", None)
        return f"ows:{name}" if name is not None else f"wallet:{self.chain}"

    @property
    def address(self) -> str:
        # EVM addresses are sent lower-cased (proven against production).
        return self.signer.address.lower() if self.chain != "solana" else self.signer.address

    def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        ts = str(int(self._clock() * 1000))
        nonce = self._nonce()
        msg = auth_message(self.chain, self.address, method, path, body, ts, nonce)
        if self.chain == "solana":
            sig = base64.b64encode(self.signer.sign_message(msg.encode("utf-8"))).decode("ascii")
            encoding = "base64"
        else:
            sig = "0x" + self.signer.sign_message(msg).hex()
            encoding = "hex"
        return {
            "X-Auth-Address": self.address,
            "X-Auth-Chain": self.chain,
            "X-Auth-Signature": sig,
            "X-Auth-Timestamp": ts,
            "X-Auth-Nonce": nonce,
            "X-Auth-Sig-Encoding": encoding,
        }


def signature_auth(settings, chain: str | None = None) -> SignatureAuth:
    """Signed headers from the configured wallet of ``chain`` (default: the auth chain)."""
    chain = chain or settings.auth_chain or "base"
    signer = solana_signer(settings) if chain == "solana" else evm_signer(settings)
    return SignatureAuth(signer, chain)


def management_auth(settings, *, require_signature: bool = False) -> Auth:
    """The API key when one is configured, else wallet signatures.

    ``require_signature``: creating and revoking API keys accept only signatures.
    """
    if settings.api_key and not require_signature and settings.auth_mode in ("auto", "api-key"):
        return ApiKeyAuth(settings.api_key)
    if settings.auth_mode == "api-key" and not require_signature:
        raise missing_api_key()
    return signature_auth(settings)


def missing_api_key() -> ConfigError:
    """The one error of ``COMPUTE_AUTH_MODE=api-key`` with no key configured: raised before anything
    is sent, never a fall-back to a wallet signature (the human chose the key over the wallet)."""
    return ConfigError("COMPUTE_AUTH_MODE=api-key but no API key is configured.", hint="Set COMPUTE_API_KEY.")


class AuthResolver:
    """Who signs a request, decided in one place.

    It owns the account-wide credential (an API key, else the wallet of ``COMPUTE_AUTH_CHAIN``), the
    per-instance management key an MPP provision returned, the wallet that paid for an instance
    (an x402 order belongs to the paying wallet: the paid request carries no management auth), and
    the rules for the unpaid probe and the paid request of a payment. Auth objects are built once
    and reused; the state folder is read here and nowhere else in the client.
    """

    def __init__(self, settings, state=None) -> None:
        self.settings = settings
        self.state = state if state is not None else State(settings.state_dir)
        self._default: Auth | None = None
        self._signature: Auth | None = None
        self._chain: dict[str, Auth] = {}
        self._new_order_probe: Auth | None = None

    def identified(self, auth: Auth) -> "AuthResolver":
        """This resolver, except that the unpaid probe of a new order is signed by ``auth`` (the
        wallet that will pay) instead of going unsigned. A grid AI Machine needs it: the service
        refuses a paying wallet without the SGL stake, before the 402 when the request names the
        wallet, else only after settling the payment. The paid request stays unsigned as ever."""
        twin = copy.copy(self)
        twin._new_order_probe = auth
        return twin

    # -- the account-wide credential ------------------------------------------------------------
    def default(self) -> Auth:
        """The API key when one is configured, else wallet signatures; ConfigError when neither."""
        if self._default is None:
            self._default = management_auth(self.settings)
        return self._default

    def signature(self) -> Auth:
        """Wallet signatures only (creating and revoking API keys accept nothing else)."""
        if self._signature is None:
            self._signature = management_auth(self.settings, require_signature=True)
        return self._signature

    def for_chain(self, chain: str) -> Auth:
        if chain not in self._chain:
            self._chain[chain] = signature_auth(self.settings, chain)
        return self._chain[chain]

    def listing(self) -> list[Auth]:
        """Every identity whose instances a listing must show: with raw EVM and Solana keys and no
        API key, each wallet owns what it paid for, so both are asked."""
        auths = [self.default()]
        s = self.settings
        if not s.api_key and s.private_key and s.solana_secret_key and not s.env.get("COMPUTE_AUTH_CHAIN"):
            auths.append(self.for_chain("base" if (s.auth_chain or "base") == "solana" else "solana"))
        return auths

    # -- one instance ---------------------------------------------------------------------------
    def for_instance(self, instance_id: str | None) -> Auth:
        """An instance's own management key (from an MPP provision) when no account-wide credential
        is configured; the wallet that paid for it when that is not the default signer; else the default."""
        if not instance_id:
            return self.default()
        s = self.settings
        if not s.api_key:
            key = self.state.instance_key(instance_id)
            if key and not (s.private_key or s.solana_secret_key or s.ows_wallet):
                return ApiKeyAuth(key, label="management-key")
            owner = self.state.owner(instance_id)
            if owner and owner["chain"] != (s.auth_chain or "base") and self._has_wallet(owner["chain"]):
                return self.for_chain(owner["chain"])
        return self.default()

    def _has_wallet(self, chain: str) -> bool:
        s = self.settings
        return bool(s.solana_secret_key if chain == "solana" else s.private_key) or bool(s.ows_wallet)

    def remember_owner(self, instance_id: str, network: str, payer: str) -> None:
        """Record that the wallet which paid on ``network`` owns ``instance_id``."""
        net = NETWORKS.get(network)
        if net and instance_id and payer:
            self.state.remember_owner(instance_id, "solana" if net.family == "svm" else "base", payer)

    # -- a payment's two requests ---------------------------------------------------------------
    def probe(self, instance_id: str | None, *, required: bool) -> Auth:
        """The unpaid request: the instance's credential when the call concerns one (extend), the
        account's when the paid request needs an identity (``required``: a top-up); an API key
        always (the order binds to it); otherwise, and when nothing is configured, no auth."""
        try:
            auth = self.for_instance(instance_id)
        except ConfigError:
            if required:
                raise
            auth = NoAuth()
        if not isinstance(auth, ApiKeyAuth) and not required and not instance_id:
            # A new order (provision) binds to whoever pays, and the paid request carries no
            # signature: signing the probe too would only hand the server one more header it
            # could replay for minutes (the signed message does not name the host), and cost a
            # signature. Unless the order needs the paying wallet known up front (``identified``).
            return self._new_order_probe or NoAuth()
        return auth

    def paid(self, probe_auth: Auth, *, needs_identity: bool) -> Auth:
        """The request that carries an on-chain payment, by default (a payment option with its own
        rule, e.g. credits or MPP, decides in ``payments.options``):

        - an API key goes on both requests (the order binds to it);
        - otherwise signature auth is dropped (the probe spent its nonce; the payment names the
          payer, who then owns the order), unless the call needs an identity: then fresh headers.
        """
        if isinstance(probe_auth, ApiKeyAuth):
            return probe_auth
        if needs_identity and not isinstance(probe_auth, NoAuth):
            return probe_auth
        return NoAuth()
