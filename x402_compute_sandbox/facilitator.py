"""The sandbox's embedded x402 facilitator: verify and settle `exact` payments on local chains.

Every check a real facilitator makes is made here for real: signatures are recovered off-chain with
eth-account *and* enforced on-chain by the token (py-evm executes it); Solana transactions are inspected
instruction by instruction, co-signed by our fee payer and executed by LiteSVM's SPL token program.
Nothing moves unless every check passes. Reason codes are the x402 ones (shared/reference/x402.md §11) so
clients that map reasons by substring behave as they would against production.

This module owns the chains, the test wallets and payees, the requirements it advertises, the x402
envelope checks (version, requirement, v2 `accepted` echo) and the replay guard; each route's own
checks live in a verifier module of `schemes/` (x402.md §4–§9, compute-api.md §8):
- base, robinhood, arc: EIP-3009 `transferWithAuthorization` (schemes/evm_eip3009.py);
- megaeth: the x402layer direct ERC-2612 permit (spender = payTo), settled by `permit` + `transferFrom`
  sent by the payee, whose key the facilitator holds (schemes/evm_permit.py); with `permit2=True` the
  requirement advertises `assetTransferMethod: "permit2"`. x402 Permit2 payloads (any EVM network)
  settle through our own Permit2 subset and x402 exact proxy, placed at their canonical addresses
  (schemes/evm_permit2.py);
- solana: a partially signed SPL `TransferChecked` transaction, fee payer = ours (schemes/svm_exact.py).
"""
from __future__ import annotations

import threading
from typing import Any, Optional

from . import networks as nets
from . import wallets
from .networks import Network
from .schemes import PaymentRejected, evm_eip3009, evm_permit, evm_permit2, reject, svm_exact, uint
from .schemes._evm import address
from .wallets import TEST_WALLET_COUNT, TEST_WALLET_USD

TEST_WALLET_SOL_LAMPORTS = 10**9


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
                chain._transact_raw({"to": address(owner, "owner"), "value": int(amount_atomic)})

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
            reject("invalid_payload", "payment payload and requirement must be JSON objects")
        version = payload.get("x402Version")
        if version not in (1, 2):
            reject("invalid_x402_version", "x402Version must be 1 or 2")
        if req.get("scheme") != "exact":
            reject("unsupported_scheme", "only the exact scheme is supported")
        try:
            net = nets.get(req.get("network"))
        except (KeyError, TypeError):
            reject("invalid_network", f"unknown network {req.get('network')!r}")
        if req.get("asset") != net.asset:
            reject("invalid_payment_requirements", "requirement asset is not this network's stablecoin")
        if req.get("payTo") != self.payee(net.label):
            reject("invalid_payment_requirements", "requirement payTo is not this sandbox's payee")

        if version == 1:
            if payload.get("scheme") != "exact":
                reject("unsupported_scheme", "payload scheme must be exact")
            if payload.get("network") != req.get("network"):
                reject("network_mismatch", "payload network differs from the requirement's")
            amount = uint(req.get("maxAmountRequired"), "maxAmountRequired", "invalid_payment_requirements")
        else:
            accepted = payload.get("accepted")
            if not isinstance(accepted, dict):
                reject("invalid_payload", "v2 payload lacks `accepted`")
            self._check_accepted_echo(accepted, req)
            amount = uint(req.get("amount"), "amount", "invalid_payment_requirements")
        if amount < net.min_payment_atomic:
            reject("below_network_minimum", f"direct payments on {net.label} must be at least "
                   f"{net.min_payment_atomic} atomic units of {net.symbol}; pay with credits instead")
        inner = payload.get("payload")
        if not isinstance(inner, dict):
            reject("invalid_payload", "payload.payload must be an object")

        chain = self.chains[net.label]   # the route's verifier (schemes/), by network and payload
        if net.kind == "svm":
            ctx = svm_exact.verify(chain, net, inner, req, amount, fee_payer_key=self._fee_payer, settled=self._settled)
        elif "permit2Authorization" in inner:
            ctx = evm_permit2.verify(chain, net, payload, inner, req, amount)
        elif net.transfer_method == "permit":
            ctx = evm_permit.verify(chain, net, inner, req, amount)
        else:
            ctx = evm_eip3009.verify(chain, net, inner, req, amount)
        if ctx["fingerprint"] in self._settled:
            reject("duplicate_settlement" if net.kind == "svm" else "invalid_exact_evm_nonce_already_used",
                   "this payment was already settled", ctx["payer"])
        ctx["amount"] = amount
        return ctx

    @staticmethod
    def _check_accepted_echo(accepted: dict, req: dict) -> None:
        """x402 v2: `accepted` must repeat the requirement exactly (x402.md §2.3)."""
        if accepted.get("scheme") != req.get("scheme"):
            reject("unsupported_scheme", "accepted.scheme differs from the requirement")
        if accepted.get("network") != req.get("network"):
            reject("network_mismatch", "accepted.network differs from the requirement")
        for key in ("amount", "asset", "payTo", "maxTimeoutSeconds"):
            if accepted.get(key) != req.get(key) or type(accepted.get(key)) is not type(req.get(key)):
                reject("invalid_payment_requirements", f"accepted.{key} does not echo the requirement")
        req_extra = req.get("extra") or {}
        acc_extra = accepted.get("extra") or {}
        if not isinstance(acc_extra, dict):
            reject("invalid_payment_requirements", "accepted.extra must be an object")
        for key, value in req_extra.items():
            if key == "recentBlockhash":   # a construction hint that may legitimately be refreshed
                continue
            if acc_extra.get(key) != value:
                reject("invalid_payment_requirements", f"accepted.extra.{key} does not echo the requirement")
