"""The sandbox's embedded x402 facilitator: verify and settle `exact` payments on local chains.

Every check a real facilitator makes is made here for real: signatures are recovered off-chain with
eth-account *and* enforced on-chain by the token (py-evm executes it); Solana transactions are inspected
instruction by instruction, co-signed by our fee payer and executed by LiteSVM's SPL token program.
Nothing moves unless every check passes. Reason codes are the x402 ones (shared/reference/x402.md §11) so
clients that map reasons by substring behave as they would against production.

Routes per network (x402.md §4–§9, compute-api.md §8):
- base, robinhood: EIP-3009 `transferWithAuthorization`;
- megaeth: the x402layer direct ERC-2612 permit (spender = payTo), settled by `permit` + `transferFrom`
  sent by the payee, whose key the facilitator holds; with `permit2=True` the requirement advertises
  `assetTransferMethod: "permit2"`. x402 Permit2 payloads (any EVM network) settle through our own
  Permit2 subset and x402 exact proxy, placed at their canonical addresses (see `_verify_permit2`);
- solana: a partially signed SPL `TransferChecked` transaction, fee payer = ours.
"""
from __future__ import annotations

import base64
import re
import threading
import time
from typing import Any, Optional

from . import networks as nets
from .networks import Network, PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY
from . import wallets

# x402 verifiers demand this much remaining validity (Python SDK: validBefore >= now + 6 s).
VALIDITY_BUFFER_SECONDS = 6
# Solana compute price cap: 5 lamports per CU = 5,000,000 micro-lamports (x402.md §9.2).
MAX_CU_PRICE_MICROLAMPORTS = 5_000_000
TEST_WALLET_COUNT = 3
TEST_WALLET_USD = 1_000   # whole dollars of stablecoin per test wallet per network
TEST_WALLET_SOL_LAMPORTS = 10**9

_UINT_RE = re.compile(r"^[0-9]+$")
_HEX_RE = re.compile(r"^0x[0-9a-fA-F]*$")
_NONCE_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")

_EIP712_DOMAIN = [
    {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"},
]
_TWA_TYPE = [
    {"name": "from", "type": "address"}, {"name": "to", "type": "address"},
    {"name": "value", "type": "uint256"}, {"name": "validAfter", "type": "uint256"},
    {"name": "validBefore", "type": "uint256"}, {"name": "nonce", "type": "bytes32"},
]
_PERMIT_TYPE = [
    {"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
_PERMIT2_TYPES = {
    "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "chainId", "type": "uint256"},
                     {"name": "verifyingContract", "type": "address"}],
    "PermitWitnessTransferFrom": [
        {"name": "permitted", "type": "TokenPermissions"}, {"name": "spender", "type": "address"},
        {"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"},
        {"name": "witness", "type": "Witness"}],
    "TokenPermissions": [{"name": "token", "type": "address"}, {"name": "amount", "type": "uint256"}],
    "Witness": [{"name": "to", "type": "address"}, {"name": "validAfter", "type": "uint256"}],
}

# Revert strings of the token (FiatToken wording) -> x402 reason codes.
_REVERT_REASONS = (
    ("authorization is expired", "invalid_exact_evm_payload_authorization_valid_before"),
    ("authorization is not yet valid", "invalid_exact_evm_payload_authorization_valid_after"),
    ("authorization is used or canceled", "invalid_exact_evm_nonce_already_used"),
    ("permit is expired", "invalid_exact_evm_payload_authorization_valid_before"),
    ("exceeds balance", "invalid_exact_evm_insufficient_balance"),
    ("invalid signature", "invalid_exact_evm_payload_signature"),
)


class PaymentRejected(Exception):
    """Internal: a check failed. `reason` is the x402 code, `message` the human explanation."""

    def __init__(self, reason: str, message: str = "", payer: Optional[str] = None):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason
        self.payer = payer


def _reject(reason: str, message: str = "", payer: Optional[str] = None):
    raise PaymentRejected(reason, message, payer)


# Revert strings of Permit2Lite / X402ExactPermit2Proxy (named after the real contracts' custom errors)
# and of the token, as met on the Permit2 route -> x402 reason codes (x402 SDK names where it has them).
_PERMIT2_REVERT_REASONS = (
    ("InvalidNonce", "permit2_invalid_nonce"),
    ("SignatureExpired", "permit2_deadline_expired"),
    ("PaymentTooEarly", "permit2_not_yet_valid"),
    ("InvalidSigner", "invalid_permit2_signature"),
    ("InvalidSignature", "invalid_permit2_signature"),
    ("InvalidAmount", "invalid_permit2_amount"),
    ("InvalidDestination", "permit2_invalid_destination"),
    ("InvalidOwner", "permit2_invalid_owner"),
    ("Permit2612AmountMismatch", "permit2_2612_amount_mismatch"),
    ("exceeds allowance", "permit2_allowance_required"),
    ("exceeds balance", "permit2_insufficient_balance"),
)


def _revert_to_reason(revert: str) -> str:
    low = revert.lower()
    for needle, code in _REVERT_REASONS:
        if needle in low:
            return code
    return "invalid_exact_evm_transaction_simulation_failed"


def _permit2_revert_to_reason(revert: str) -> str:
    for needle, code in _PERMIT2_REVERT_REASONS:
        if needle in revert:   # case-sensitive: "InvalidSignature" must not match the token's "invalid signature"
            return code
    return "invalid_exact_evm_transaction_simulation_failed"


def _uint(value: Any, field: str, reason: str = "invalid_payload") -> int:
    """Atomic amounts and times arrive as decimal strings; ints are tolerated, floats never."""
    if isinstance(value, bool):
        _reject(reason, f"{field} must be a decimal string")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and _UINT_RE.match(value):
        return int(value)
    _reject(reason, f"{field} must be a non-negative integer as a decimal string")


def _hexbytes(value: Any, field: str, reason: str = "invalid_payload") -> bytes:
    if not isinstance(value, str) or not _HEX_RE.match(value) or len(value) % 2:
        _reject(reason, f"{field} must be 0x-prefixed hex")
    return bytes.fromhex(value[2:])


def _address(value: Any, field: str) -> str:
    from eth_utils import is_address, to_checksum_address
    if not isinstance(value, str) or not is_address(value):
        _reject("invalid_payload", f"{field} is not an EVM address")
    return to_checksum_address(value)


class Facilitator:
    """Local chains plus a facilitator that verifies and settles x402 `exact` payments on them."""

    def __init__(self, seed: int = 0, *, recipient_atas: bool = True, permit2: bool = False,
                 state_dir: Optional[str] = None):
        """`state_dir`: keep the chains in `<state_dir>/chains/` (chains/state.py) and resume them on the
        next start, like real chains; None: in memory, gone with the process."""
        import os

        from .chains.evm import EvmChain
        from .chains.svm import SvmChain

        def state_path(label: str) -> Optional[str]:
            return os.path.join(state_dir, "chains", f"{label}.sqlite3") if state_dir else None

        self.seed = seed
        self.permit2 = permit2
        self.recipient_atas = recipient_atas
        self._lock = threading.RLock()
        self._settled: dict[tuple, str] = {}   # replay guard: payment fingerprint -> transaction

        # One merchant identity across all networks, deterministic from the seed.
        self._payee_wallet = wallets.wallet(seed, "payee")
        self._fee_payer = wallets.solana_keypair(seed, "solana-fee-payer")
        self._test_wallets = [wallets.wallet(seed, "test", i) for i in range(TEST_WALLET_COUNT)]

        gas_accounts = [self._payee_wallet.evm_address] + [w.evm_address for w in self._test_wallets]
        self.chains: dict[str, Any] = {}
        for label, net in nets.NETWORKS.items():
            if net.kind == "evm":
                self.chains[label] = EvmChain(net, gas_accounts=gas_accounts, state_path=state_path(label), seed=seed)
            else:
                self.chains[label] = SvmChain(net, self._fee_payer, state_path=state_path(label), seed=seed)
        # The MegaETH route has the payee call transferFrom, so its key is registered on every EVM chain.
        for label, net in nets.NETWORKS.items():
            if net.kind == "evm":
                self.chains[label].register_key(self._payee_wallet.evm_private_key)

        svm = self.chains["solana"]
        if recipient_atas:
            svm.create_ata(self._payee_wallet.solana_address)
        # Genesis funding, once per chain: a resumed chain keeps the balances it had.
        for label, net in nets.NETWORKS.items():
            chain = self.chains[label]
            if chain.restored:
                continue
            for w in self._test_wallets:
                self.fund(label, self._owner_for(net, w), TEST_WALLET_USD * 10**net.decimals)
                if net.kind == "svm":
                    chain.airdrop_sol(w.solana_address, TEST_WALLET_SOL_LAMPORTS)
            chain.mark_initialized()

    @property
    def restored(self) -> bool:
        """Whether the chains were resumed from a state folder (rather than built from genesis)."""
        return all(c.restored for c in self.chains.values())

    def close(self) -> None:
        for chain in self.chains.values():
            chain.close()

    # ---- identity and funding ---------------------------------------------------------------------
    @staticmethod
    def _owner_for(net: Network, w: "wallets.SandboxWallet") -> str:
        return w.solana_address if net.kind == "svm" else w.evm_address

    def networks(self) -> list[str]:
        return list(nets.LABELS)

    def network(self, network: str) -> Network:
        return nets.get(network)

    def chain(self, network: str):
        return self.chains[nets.get(network).label]

    def payee(self, network: str) -> str:
        return self._owner_for(nets.get(network), self._payee_wallet)

    def fee_payer(self) -> str:
        return str(self._fee_payer.pubkey())

    def test_wallets(self) -> list[dict]:
        return [w.as_dict() for w in self._test_wallets]

    def balance_of(self, network: str, owner: str) -> int:
        with self._lock:
            return self.chain(network).balance_of(owner)

    def fund(self, network: str, owner: str, amount_atomic: int) -> None:
        """Test faucet for the network's stablecoin (atomic units)."""
        if not isinstance(amount_atomic, int) or isinstance(amount_atomic, bool) or amount_atomic < 0:
            raise ValueError("amount_atomic must be a non-negative int")
        with self._lock:
            chain = self.chain(network)
            if nets.get(network).kind == "svm":
                chain.mint_to(owner, amount_atomic)
            else:
                chain.mint(owner, amount_atomic)

    def native_fund(self, network: str, owner: str, amount_atomic: int) -> None:
        """Gas coin faucet: wei on the EVM chains, lamports on Solana."""
        with self._lock:
            chain = self.chain(network)
            if nets.get(network).kind == "svm":
                chain.airdrop_sol(owner, amount_atomic)
            else:
                chain._transact_raw({"to": _address(owner, "owner"), "value": int(amount_atomic)})

    # ---- requirements -----------------------------------------------------------------------------
    def requirement(self, network: str, *, amount_usd_micros: int, resource: str, description: str,
                    version: int = 1, max_timeout_seconds: int = 300) -> dict:
        net = nets.get(network)
        amount = str(net.atomic_from_usd_micros(amount_usd_micros))
        if net.kind == "svm":
            extra = {"feePayer": self.fee_payer(),
                     "recentBlockhash": str(self.chains[net.label].latest_blockhash())}
        else:
            extra = {"name": net.eip712_name, "version": net.eip712_version}
            if net.transfer_method == "permit" and self.permit2:
                extra["assetTransferMethod"] = "permit2"
        if version == 1:
            return {"scheme": "exact", "network": net.label, "maxAmountRequired": amount,
                    "resource": resource, "description": description, "mimeType": "application/json",
                    "payTo": self.payee(net.label), "asset": net.asset,
                    "maxTimeoutSeconds": max_timeout_seconds, "extra": extra}
        if version == 2:
            return {"scheme": "exact", "network": net.caip2, "amount": amount, "asset": net.asset,
                    "payTo": self.payee(net.label), "maxTimeoutSeconds": max_timeout_seconds, "extra": extra}
        raise ValueError("x402 version must be 1 or 2")

    # ---- verify / settle ----------------------------------------------------------------------------
    def verify(self, payment_payload: dict, requirement: dict) -> dict:
        with self._lock:
            try:
                ctx = self._verify_guarded(payment_payload, requirement)
            except PaymentRejected as rej:
                return {"isValid": False, "invalidReason": rej.reason, "invalidMessage": rej.message,
                        "payer": rej.payer}
            return {"isValid": True, "invalidReason": None, "payer": ctx["payer"]}

    def settle(self, payment_payload: dict, requirement: dict) -> dict:
        with self._lock:
            network_out = requirement.get("network", "") if isinstance(requirement, dict) else ""
            amount_out = ""
            try:
                ctx = self._verify_guarded(payment_payload, requirement)
                amount_out = str(ctx["amount"])
                try:
                    tx = ctx["settle"]()
                except PaymentRejected:
                    raise
                except Exception as exc:   # a bug or chain fault mid-settlement: report, never crash the server
                    raise PaymentRejected("unexpected_settle_error", repr(exc), ctx["payer"]) from exc
                self._settled[ctx["fingerprint"]] = tx
            except PaymentRejected as rej:
                return {"success": False, "errorReason": rej.reason, "errorMessage": rej.message,
                        "transaction": "", "network": network_out, "payer": rej.payer, "amount": amount_out}
            return {"success": True, "errorReason": None, "transaction": tx, "network": network_out,
                    "payer": ctx["payer"], "amount": amount_out}

    def _verify_guarded(self, payload: dict, req: dict) -> dict:
        """Odd JSON (wrong types, missing keys) is a refused payment, not an exception for the server."""
        try:
            return self._verify(payload, req)
        except PaymentRejected:
            raise
        except Exception as exc:
            raise PaymentRejected("invalid_payload", f"malformed payment: {exc!r}") from exc

    def _verify(self, payload: dict, req: dict) -> dict:
        """All checks; returns a context with `payer`, `amount`, `fingerprint` and a `settle` callable."""
        if not isinstance(payload, dict) or not isinstance(req, dict):
            _reject("invalid_payload", "payment payload and requirement must be JSON objects")
        version = payload.get("x402Version")
        if version not in (1, 2):
            _reject("invalid_x402_version", "x402Version must be 1 or 2")
        if req.get("scheme") != "exact":
            _reject("unsupported_scheme", "only the exact scheme is supported")
        try:
            net = nets.get(req.get("network"))
        except (KeyError, TypeError):
            _reject("invalid_network", f"unknown network {req.get('network')!r}")
        if req.get("asset") != net.asset:
            _reject("invalid_payment_requirements", "requirement asset is not this network's stablecoin")
        if req.get("payTo") != self.payee(net.label):
            _reject("invalid_payment_requirements", "requirement payTo is not this sandbox's payee")

        if version == 1:
            if payload.get("scheme") != "exact":
                _reject("unsupported_scheme", "payload scheme must be exact")
            if payload.get("network") != req.get("network"):
                _reject("network_mismatch", "payload network differs from the requirement's")
            amount = _uint(req.get("maxAmountRequired"), "maxAmountRequired", "invalid_payment_requirements")
        else:
            accepted = payload.get("accepted")
            if not isinstance(accepted, dict):
                _reject("invalid_payload", "v2 payload lacks `accepted`")
            self._check_accepted_echo(accepted, req)
            amount = _uint(req.get("amount"), "amount", "invalid_payment_requirements")
        inner = payload.get("payload")
        if not isinstance(inner, dict):
            _reject("invalid_payload", "payload.payload must be an object")

        if net.kind == "svm":
            ctx = self._verify_svm(net, inner, req, amount)
        elif "permit2Authorization" in inner:
            ctx = self._verify_permit2(net, payload, inner, req, amount)
        elif net.transfer_method == "permit":
            ctx = self._verify_permit(net, inner, req, amount)
        else:
            ctx = self._verify_eip3009(net, inner, req, amount)
        if ctx["fingerprint"] in self._settled:
            _reject("duplicate_settlement" if net.kind == "svm" else "invalid_exact_evm_nonce_already_used",
                    "this payment was already settled", ctx["payer"])
        ctx["amount"] = amount
        return ctx

    @staticmethod
    def _check_accepted_echo(accepted: dict, req: dict) -> None:
        """x402 v2: `accepted` must repeat the requirement exactly (x402.md §2.3)."""
        if accepted.get("scheme") != req.get("scheme"):
            _reject("unsupported_scheme", "accepted.scheme differs from the requirement")
        if accepted.get("network") != req.get("network"):
            _reject("network_mismatch", "accepted.network differs from the requirement")
        for key in ("amount", "asset", "payTo", "maxTimeoutSeconds"):
            if accepted.get(key) != req.get(key) or type(accepted.get(key)) is not type(req.get(key)):
                _reject("invalid_payment_requirements", f"accepted.{key} does not echo the requirement")
        req_extra = req.get("extra") or {}
        acc_extra = accepted.get("extra") or {}
        if not isinstance(acc_extra, dict):
            _reject("invalid_payment_requirements", "accepted.extra must be an object")
        for key, value in req_extra.items():
            if key == "recentBlockhash":   # a construction hint that may legitimately be refreshed
                continue
            if acc_extra.get(key) != value:
                _reject("invalid_payment_requirements", f"accepted.extra.{key} does not echo the requirement")

    # ---- EVM: EIP-3009 --------------------------------------------------------------------------------
    def _check_domain(self, net: Network, req: dict) -> None:
        extra = req.get("extra") or {}
        if not extra.get("name") or not extra.get("version"):
            _reject("missing_eip712_domain", "requirement extra lacks the EIP-712 name/version")
        if extra["name"] != net.eip712_name:
            _reject("invalid_exact_evm_token_name_mismatch", "extra.name is not the token's EIP-712 name")
        if extra["version"] != net.eip712_version:
            _reject("invalid_exact_evm_token_version_mismatch", "extra.version is not the token's EIP-712 version")

    def _domain(self, net: Network) -> dict:
        return {"name": net.eip712_name, "version": net.eip712_version, "chainId": net.chain_id,
                "verifyingContract": net.asset}

    @staticmethod
    def _recover(typed: dict, signature: bytes) -> Optional[str]:
        from eth_account import Account
        from eth_account.messages import encode_typed_data
        try:
            return Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
        except Exception:
            return None

    def _verify_eip3009(self, net: Network, inner: dict, req: dict, amount: int) -> dict:
        from eth_utils import to_checksum_address
        self._check_domain(net, req)
        auth = inner.get("authorization")
        if not isinstance(auth, dict):
            _reject("invalid_payload", "EIP-3009 payload needs `authorization`")
        for key in ("from", "to", "value", "validAfter", "validBefore", "nonce"):
            if key not in auth:
                _reject("invalid_payload", f"authorization.{key} is missing")
        payer = _address(auth["from"], "authorization.from")
        to = _address(auth["to"], "authorization.to")
        value = _uint(auth["value"], "authorization.value")
        valid_after = _uint(auth["validAfter"], "authorization.validAfter")
        valid_before = _uint(auth["validBefore"], "authorization.validBefore")
        if not isinstance(auth["nonce"], str) or not _NONCE_RE.match(auth["nonce"]):
            _reject("invalid_payload", "authorization.nonce must be 0x + 64 hex digits", payer)
        nonce = auth["nonce"]
        sig = _hexbytes(inner.get("signature"), "signature", "invalid_exact_evm_payload_signature")
        if len(sig) != 65:
            _reject("invalid_exact_evm_payload_signature", "signature must be 65 bytes (r, s, v)", payer)

        if to != to_checksum_address(req["payTo"]):
            _reject("invalid_exact_evm_payload_recipient_mismatch", "authorization.to is not payTo", payer)
        if value != amount:
            _reject("invalid_exact_evm_payload_authorization_value_mismatch",
                    f"authorization.value {value} != required {amount}", payer)
        now = int(time.time())
        if valid_before < now + VALIDITY_BUFFER_SECONDS:
            _reject("invalid_exact_evm_payload_authorization_valid_before", "authorization expired or about to", payer)
        if valid_after > now:
            _reject("invalid_exact_evm_payload_authorization_valid_after", "authorization is not yet valid", payer)
        typed = {"types": {"EIP712Domain": _EIP712_DOMAIN, "TransferWithAuthorization": _TWA_TYPE},
                 "primaryType": "TransferWithAuthorization", "domain": self._domain(net),
                 "message": {"from": payer, "to": to, "value": value, "validAfter": valid_after,
                             "validBefore": valid_before, "nonce": bytes.fromhex(nonce[2:])}}
        if self._recover(typed, sig) != payer:
            _reject("invalid_exact_evm_payload_signature",
                    "signature does not recover to authorization.from on this network's EIP-712 domain", payer)
        chain = self.chains[net.label]
        if chain.authorization_state(payer, nonce):
            _reject("invalid_exact_evm_nonce_already_used", "authorization nonce already used", payer)
        if chain.balance_of(payer) < value:
            _reject("invalid_exact_evm_insufficient_balance", "payer balance below the amount", payer)
        chain_auth = {"from": payer, "to": to, "value": value, "validAfter": valid_after,
                      "validBefore": valid_before, "nonce": nonce}
        vrs = (sig[64], sig[:32], sig[32:64])
        from .chains.evm import ChainRevert
        try:   # the token is the final judge: simulate exactly what settle will send
            chain.simulate_transfer_with_authorization(chain_auth, vrs)
        except ChainRevert as exc:
            _reject(_revert_to_reason(exc.reason), f"token simulation reverted: {exc.reason}", payer)

        def settle() -> str:
            try:
                return chain.transfer_with_authorization(chain_auth, vrs)
            except ChainRevert as exc:
                _reject(_revert_to_reason(exc.reason), f"settlement reverted: {exc.reason}", payer)

        return {"payer": payer, "fingerprint": (net.label, "eip3009", payer, nonce.lower()), "settle": settle}

    # ---- EVM: direct ERC-2612 permit (MegaETH, x402layer route) ----------------------------------------
    def _verify_permit(self, net: Network, inner: dict, req: dict, amount: int) -> dict:
        """Payload: {"signature": 65-byte hex} or {"v","r","s"}, plus
        {"authorization": {"owner","spender","value","nonce","deadline"}}; spender must be payTo."""
        from eth_utils import to_checksum_address
        self._check_domain(net, req)
        auth = inner.get("authorization")
        if not isinstance(auth, dict):
            _reject("invalid_payload", "permit payload needs `authorization`")
        for key in ("owner", "spender", "value", "nonce", "deadline"):
            if key not in auth:
                _reject("invalid_payload", f"authorization.{key} is missing")
        payer = _address(auth["owner"], "authorization.owner")
        spender = _address(auth["spender"], "authorization.spender")
        value = _uint(auth["value"], "authorization.value")
        nonce = _uint(auth["nonce"], "authorization.nonce")
        deadline = _uint(auth["deadline"], "authorization.deadline")
        if "signature" in inner:
            sig = _hexbytes(inner["signature"], "signature", "invalid_exact_evm_payload_signature")
            if len(sig) != 65:
                _reject("invalid_exact_evm_payload_signature", "signature must be 65 bytes (r, s, v)", payer)
            v, r, s = sig[64], sig[:32], sig[32:64]
        elif all(k in inner for k in ("v", "r", "s")):
            v = _uint(inner["v"], "v", "invalid_exact_evm_payload_signature")
            r = _hexbytes(inner["r"], "r", "invalid_exact_evm_payload_signature")
            s = _hexbytes(inner["s"], "s", "invalid_exact_evm_payload_signature")
            if len(r) != 32 or len(s) != 32 or v > 255:
                _reject("invalid_exact_evm_payload_signature", "r and s must be 32 bytes, v one byte", payer)
            sig = r + s + bytes([v])
        else:
            _reject("invalid_payload", "permit payload needs `signature` or `v`, `r`, `s`", payer)

        pay_to = to_checksum_address(req["payTo"])
        if spender != pay_to:
            _reject("invalid_exact_evm_payload_recipient_mismatch", "permit spender is not payTo", payer)
        if value != amount:
            _reject("invalid_exact_evm_payload_authorization_value_mismatch",
                    f"permit value {value} != required {amount}", payer)
        if deadline < int(time.time()) + VALIDITY_BUFFER_SECONDS:
            _reject("invalid_exact_evm_payload_authorization_valid_before", "permit deadline passed or too close", payer)
        chain = self.chains[net.label]
        onchain_nonce = chain.nonces(payer)
        typed = {"types": {"EIP712Domain": _EIP712_DOMAIN, "Permit": _PERMIT_TYPE},
                 "primaryType": "Permit", "domain": self._domain(net),
                 "message": {"owner": payer, "spender": spender, "value": value, "nonce": nonce,
                             "deadline": deadline}}
        if self._recover(typed, sig) != payer:
            _reject("invalid_exact_evm_payload_signature",
                    "permit signature does not recover to the owner on this network's EIP-712 domain", payer)
        if nonce < onchain_nonce:
            _reject("invalid_exact_evm_nonce_already_used", f"permit nonce {nonce} already used", payer)
        if nonce > onchain_nonce:
            _reject("invalid_exact_evm_payload_signature",
                    f"permit nonce {nonce} is not the owner's next nonce ({onchain_nonce})", payer)
        if chain.balance_of(payer) < value:
            _reject("invalid_exact_evm_insufficient_balance", "payer balance below the amount", payer)
        from .chains.evm import ChainRevert
        try:
            chain.simulate_permit(payer, spender, value, deadline, v, r, s)
        except ChainRevert as exc:
            _reject(_revert_to_reason(exc.reason), f"permit simulation reverted: {exc.reason}", payer)

        def settle() -> str:
            try:
                _permit_tx, transfer_tx = chain.permit_and_transfer_from(payer, spender, value, deadline, v, r, s)
            except ChainRevert as exc:
                _reject(_revert_to_reason(exc.reason), f"settlement reverted: {exc.reason}", payer)
            return transfer_tx   # the transaction that moved the funds

        return {"payer": payer, "fingerprint": (net.label, "permit", payer, nonce), "settle": settle}

    # ---- EVM: Permit2 + x402ExactPermit2Proxy ----------------------------------------------------------
    def _verify_permit2(self, net: Network, payload: dict, inner: dict, req: dict, amount: int) -> dict:
        """Checks an x402 Permit2 payload (x402.md §5.4) and settles it through the proxy on our chain.

        Off-chain: the Permit2 signature (domain without version), spender = the exact proxy, deadline and
        validAfter, token/amount/recipient, balance. On-chain (eth_call): the Permit2 nonce is unused, the
        eip2612GasSponsoring permit (when the Permit2 allowance is missing) really verifies on the token
        (the x402 SDK checks only its fields), and the exact proxy call settle will send succeeds.
        Settlement is sent from the facilitator's own funded account: `proxy.settle(...)` when the owner
        has already approved Permit2, otherwise `proxy.settleWithPermit(...)` with the extension's permit.
        The proxy and Permit2 are our own minimal contracts (contracts/Permit2Lite.sol,
        contracts/X402ExactPermit2Proxy.sol) at the canonical addresses; they implement only the
        SignatureTransfer witness path (no AllowanceTransfer, batch transfers or EIP-1271 signers), and the
        erc20ApprovalGasSponsoring extension is not supported.
        """
        from eth_utils import to_checksum_address
        self._check_domain(net, req)
        p2 = inner.get("permit2Authorization")
        if not isinstance(p2, dict) or not isinstance(p2.get("permitted"), dict) or not isinstance(p2.get("witness"), dict):
            _reject("invalid_payload", "permit2Authorization is malformed")
        payer = _address(p2.get("from"), "permit2Authorization.from")
        sig = _hexbytes(inner.get("signature"), "signature", "invalid_permit2_signature")
        token = _address(p2["permitted"].get("token"), "permitted.token")
        value = _uint(p2["permitted"].get("amount"), "permitted.amount")
        spender = _address(p2.get("spender"), "spender")
        nonce = _uint(p2.get("nonce"), "nonce")
        deadline = _uint(p2.get("deadline"), "deadline")
        to = _address(p2["witness"].get("to"), "witness.to")
        valid_after = _uint(p2["witness"].get("validAfter"), "witness.validAfter")
        typed = {"types": _PERMIT2_TYPES, "primaryType": "PermitWitnessTransferFrom",
                 "domain": {"name": "Permit2", "chainId": net.chain_id, "verifyingContract": PERMIT2_ADDRESS},
                 "message": {"permitted": {"token": token, "amount": value}, "spender": spender,
                             "nonce": nonce, "deadline": deadline,
                             "witness": {"to": to, "validAfter": valid_after}}}
        if len(sig) != 65 or self._recover(typed, sig) != payer:
            _reject("invalid_permit2_signature", "Permit2 signature does not recover to `from`", payer)
        if spender != to_checksum_address(X402_EXACT_PERMIT2_PROXY):
            _reject("invalid_permit2_spender", "spender is not the x402 exact Permit2 proxy", payer)
        now = int(time.time())
        if deadline < now + VALIDITY_BUFFER_SECONDS:
            _reject("permit2_deadline_expired", "Permit2 deadline passed or too close", payer)
        if valid_after > now:
            _reject("permit2_not_yet_valid", "witness.validAfter is in the future", payer)
        if token != to_checksum_address(net.asset):
            _reject("permit2_token_mismatch", "permitted.token is not the asset", payer)
        if value != amount:
            _reject("permit2_amount_mismatch", f"permitted.amount {value} != required {amount}", payer)
        if to != to_checksum_address(req["payTo"]):
            _reject("invalid_permit2_recipient_mismatch", "witness.to is not payTo", payer)
        from .chains.evm import ChainRevert
        chain = self.chains[net.label]
        # First on-chain check, so a replay is named as such even after its permit and balance are spent.
        if chain.permit2_nonce_used(payer, nonce):
            _reject("permit2_invalid_nonce", f"Permit2 nonce {nonce} already used or invalidated", payer)
        if chain.balance_of(payer) < value:
            _reject("permit2_insufficient_balance", "payer balance below the amount", payer)
        ext = ((payload.get("extensions") or {}).get("eip2612GasSponsoring") or {}).get("info")
        permit_args = None
        if chain.allowance(payer, PERMIT2_ADDRESS) < value:
            if not isinstance(ext, dict):
                _reject("permit2_allowance_required", "no Permit2 allowance and no eip2612GasSponsoring permit", payer)
            if (_address(ext.get("from"), "eip2612.from") != payer
                    or _address(ext.get("asset"), "eip2612.asset") != to_checksum_address(net.asset)
                    or _address(ext.get("spender"), "eip2612.spender") != to_checksum_address(PERMIT2_ADDRESS)):
                _reject("invalid_payload", "eip2612GasSponsoring from/asset/spender do not match", payer)
            e_value = _uint(ext.get("amount"), "eip2612.amount")
            e_deadline = _uint(ext.get("deadline"), "eip2612.deadline")
            e_sig = _hexbytes(ext.get("signature"), "eip2612.signature", "invalid_exact_evm_payload_signature")
            if len(e_sig) != 65 or e_value < value:
                _reject("invalid_payload", "eip2612GasSponsoring permit is malformed or too small", payer)
            permit_args = (payer, PERMIT2_ADDRESS, e_value, e_deadline, e_sig[64], e_sig[:32], e_sig[32:64])
            try:   # unlike the x402 SDK, check the extension's permit signature for real
                chain.simulate_permit(*permit_args)
            except ChainRevert as exc:
                _reject(_revert_to_reason(exc.reason), f"eip2612 permit simulation reverted: {exc.reason}", payer)

        # Normalised fields (checksummed, ints), so the chain call sends exactly what was checked above.
        checked = {"from": payer, "permitted": {"token": token, "amount": value}, "nonce": nonce,
                   "deadline": deadline, "witness": {"to": to, "validAfter": valid_after}}
        # (value, deadline, v, r, s) for settleWithPermit; None = the allowance is in place, plain settle.
        permit2612 = None if permit_args is None else (permit_args[2], permit_args[3], *permit_args[4:])
        try:   # the contracts are the final judge: simulate exactly what settle will send
            chain.simulate_permit2_settle(checked, sig, permit2612)
        except ChainRevert as exc:
            _reject(_permit2_revert_to_reason(exc.reason), f"proxy simulation reverted: {exc.reason}", payer)

        def settle() -> str:
            try:
                return chain.permit2_settle(checked, sig, permit2612)
            except ChainRevert as exc:
                _reject(_permit2_revert_to_reason(exc.reason), f"settlement reverted: {exc.reason}", payer)

        return {"payer": payer, "fingerprint": (net.label, "permit2", payer, nonce), "settle": settle}

    # ---- Solana ---------------------------------------------------------------------------------------
    def _verify_svm(self, net: Network, inner: dict, req: dict, amount: int) -> dict:
        from solders.message import to_bytes_versioned
        from solders.pubkey import Pubkey
        from solders.signature import Signature
        from solders.transaction import VersionedTransaction
        from .chains.svm import (COMPUTE_BUDGET_PROGRAM_ID, LIGHTHOUSE_PROGRAM_ID, MEMO_PROGRAM_ID,
                                 TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID, SvmError)

        chain = self.chains[net.label]
        extra = req.get("extra") or {}
        fee_payer = self._fee_payer.pubkey()
        if not extra.get("feePayer"):
            _reject("invalid_exact_svm_payload_missing_fee_payer", "requirement extra lacks feePayer")
        if extra["feePayer"] != str(fee_payer):
            _reject("fee_payer_not_managed_by_facilitator", "extra.feePayer is not this facilitator's key")
        raw_b64 = inner.get("transaction")
        try:
            raw = base64.b64decode(raw_b64, validate=True)
            tx = VersionedTransaction.from_bytes(raw)
        except Exception:
            _reject("invalid_exact_svm_payload_transaction_could_not_be_decoded",
                    "payload.transaction is not a base64 serialized VersionedTransaction")
        msg = tx.message
        keys = list(msg.account_keys)
        if getattr(msg, "address_table_lookups", None):
            _reject("invalid_exact_svm_payload_transaction_could_not_be_decoded",
                    "address lookup tables are not supported")
        if not keys or keys[0] != fee_payer:
            _reject("fee_payer_not_managed_by_facilitator", "the transaction's fee payer is not extra.feePayer")
        ixs = list(msg.instructions)
        if not 3 <= len(ixs) <= 6:
            _reject("invalid_exact_svm_payload_transaction_instructions_length",
                    f"{len(ixs)} instructions; expected 3 to 6")

        def program(ix) -> Pubkey:
            return keys[ix.program_id_index]

        def accounts(ix) -> list:
            return [keys[i] for i in bytes(ix.accounts)]

        cu_limit, cu_price, transfer = ixs[0], ixs[1], ixs[2]
        d = bytes(cu_limit.data)
        if program(cu_limit) != COMPUTE_BUDGET_PROGRAM_ID or len(d) != 5 or d[0] != 2:
            _reject("invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction",
                    "instruction 1 must be SetComputeUnitLimit")
        d = bytes(cu_price.data)
        if program(cu_price) != COMPUTE_BUDGET_PROGRAM_ID or len(d) != 9 or d[0] != 3:
            _reject("invalid_exact_svm_payload_transaction_instructions_compute_price_instruction",
                    "instruction 2 must be SetComputeUnitPrice")
        if int.from_bytes(d[1:], "little") > MAX_CU_PRICE_MICROLAMPORTS:
            _reject("invalid_exact_svm_payload_transaction_instructions_compute_price_instruction_too_high",
                    "compute unit price above 5 lamports/CU")
        d = bytes(transfer.data)
        t_accounts = accounts(transfer)
        if (program(transfer) not in (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID) or len(d) != 10 or d[0] != 12
                or len(t_accounts) < 4):
            _reject("invalid_exact_svm_payload_no_transfer_instruction", "instruction 3 must be TransferChecked")
        source, mint, destination, authority = t_accounts[:4]
        payer = str(authority)
        if str(mint) != net.asset:
            _reject("invalid_exact_svm_payload_mint_mismatch", "TransferChecked mint is not the asset", payer)
        mint_program, mint_decimals = chain.mint_info()
        if program(transfer) != mint_program:
            _reject("invalid_exact_svm_payload_mint_mismatch", "transfer uses another token program than the mint's", payer)
        pay_to = Pubkey.from_string(req["payTo"])
        if destination != chain.ata(pay_to):
            _reject("invalid_exact_svm_payload_recipient_mismatch", "destination is not ATA(payTo, asset)", payer)
        value = int.from_bytes(d[1:9], "little")
        if value < amount:
            _reject("invalid_exact_svm_payload_amount_insufficient", f"amount {value} < required {amount}", payer)
        if value != amount:
            _reject("invalid_exact_svm_payload_amount_mismatch", f"amount {value} != required {amount}", payer)
        if d[9] != mint_decimals:
            _reject("invalid_exact_svm_payload_mint_mismatch", f"decimals {d[9]} != mint decimals {mint_decimals}", payer)

        memos = []
        ordinal = {3: "fourth", 4: "fifth", 5: "sixth"}
        for i, ix in enumerate(ixs[3:], start=3):
            if program(ix) == MEMO_PROGRAM_ID:
                memos.append(bytes(ix.data))
            elif program(ix) != LIGHTHOUSE_PROGRAM_ID:
                _reject(f"invalid_exact_svm_payload_unknown_{ordinal[i]}_instruction",
                        f"instruction {i + 1} is neither Memo nor Lighthouse", payer)
        if len(memos) > 1:
            _reject("invalid_exact_svm_payload_memo_count", "at most one memo", payer)
        if extra.get("memo") is not None:
            if len(memos) != 1:
                _reject("invalid_exact_svm_payload_memo_count", "extra.memo requires exactly one memo", payer)
            if memos[0] != str(extra["memo"]).encode():
                _reject("invalid_exact_svm_payload_memo_mismatch", "memo differs from extra.memo", payer)

        if fee_payer in (authority, source) or any(fee_payer in accounts(ix) for ix in ixs):
            _reject("invalid_exact_svm_payload_transaction_fee_payer_transferring_funds",
                    "the fee payer appears in an instruction's accounts", payer)

        # The payer's signature: authority must be a required signer and its slot must verify.
        n_signers = msg.header.num_required_signatures
        signer_keys = keys[:n_signers]
        if authority not in signer_keys or len(tx.signatures) != n_signers:
            _reject("invalid_exact_svm_payload_signature", "the transfer authority did not sign", payer)
        message_bytes = to_bytes_versioned(msg)
        for idx, key in enumerate(signer_keys):
            if idx == 0:
                continue   # our slot, filled in below
            if not tx.signatures[idx].verify(key, message_bytes):
                _reject("invalid_exact_svm_payload_signature", f"signature of {key} does not verify", payer)
        if n_signers > 2:
            _reject("invalid_exact_svm_payload_signature", "only the fee payer and the payer may sign", payer)

        src_acct = chain.token_account(source)
        if src_acct is None or src_acct.mint != chain.mint or src_acct.owner != authority:
            _reject("invalid_exact_svm_payload_sender_ata_not_found", "source is not the payer's token account", payer)
        if chain.token_account(destination) is None:
            _reject("invalid_exact_svm_payload_receiver_ata_not_found",
                    "the recipient's associated token account does not exist (x402 v2 requires it to exist)", payer)
        if src_acct.amount < amount:
            _reject("insufficient_funds", f"payer holds {src_acct.amount} < {amount}", payer)

        fee_sig = self._fee_payer.sign_message(message_bytes)
        signed = VersionedTransaction.populate(msg, [fee_sig] + list(tx.signatures[1:]))
        fingerprint = (net.label, "svm", str(tx.signatures[1] if n_signers > 1 else Signature.default()))
        if chain.processed(str(fee_sig)):   # the chain's own history, kept across restarts
            _reject("duplicate_settlement", "this transaction was already processed", payer)
        if fingerprint not in self._settled:
            try:
                chain.simulate(signed)
            except SvmError as exc:
                _reject("transaction_simulation_failed", f"simulation failed: {exc.reason}", payer)

        def settle() -> str:
            try:
                return chain.send(signed)
            except SvmError as exc:
                _reject("transaction_failed", f"execution failed: {exc.reason}", payer)

        return {"payer": payer, "fingerprint": fingerprint, "settle": settle}
