"""One in-process EVM chain per sandbox network (eth-tester + py-evm).

Why this shape (shared/reference/local-chains.md §3):
- eth-tester hard-codes chain id 131277322940537 in both the py-evm chain and web3's provider; both are
  patched so `block.chainid`, transaction building and `eth_chainId` all report the real id.
- The test token's runtime is put at the *real* asset address through genesis state and initialised
  there, so a payload signed for the real network's EIP-712 domain verifies unchanged.
- Our own Permit2 subset (contracts/Permit2Lite.sol) and x402 exact proxy
  (contracts/X402ExactPermit2Proxy.sol) are put at their canonical CREATE2 addresses the same way, so the
  x402 Permit2 route (x402.md §5) settles for real: a Permit2 signature made for the real domain is
  redeemed by the proxy, Permit2 spends its unordered nonce and pulls the funds with the owner's
  allowance. Neither has constructor state, so no initialisation is needed. Not implemented there:
  Permit2's AllowanceTransfer, batch transfers, EIP-1271 signers, and the `upto` proxy.
- The pending block's timestamp is refreshed to the wall clock before every call and transaction:
  py-evm fixes it when the previous block is mined, and an idle sandbox would otherwise judge
  `validAfter`/`validBefore` against a stale time (x402 verifiers use the wall clock, local-chains §11.6).
- With a `state_path`, py-evm's key-value store (trie nodes, blocks, receipts, the canonical head) is
  written to SQLite after every write the chain makes (chains/state.py), and a chain found there is
  resumed: balances, nonces, spent EIP-3009 authorizations, permit nonces and Permit2 nonce bitmaps
  survive a restart as on a real chain.
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed
from eth_utils import to_canonical_address, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS

from ..networks import PERMIT2_ADDRESS, X402_EXACT_PERMIT2_PROXY, Network
from .state import PersistentChain, StateFile

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "contracts"
ARTIFACT_PATH = CONTRACTS_DIR / "TestToken.json"

# Native balance given to every account the sandbox itself sends transactions from (gas only).
GAS_FUNDING_WEI = 10**21

# Gas limit of the sandbox's own contract calls (mint, settlements). `_transact` has just simulated the
# call (a revert raises ChainRevert before anything is sent), so web3's estimate -- a binary search that
# runs the call a dozen more times and was over half the cost of building the chains and of every
# settlement -- would only pick a limit. The heaviest call (the Permit2 proxy settle) uses ~140,000 gas.
CALL_GAS = 1_000_000


def _same_second_vm():
    """PragueVM that lets a block share its parent's timestamp.

    py-evm demands strictly increasing block timestamps and eth-tester mines one block per transaction,
    so a burst of N transactions would push chain time N seconds ahead of the wall clock and eventually
    make `block.timestamp < validBefore` fail for payloads the wall-clock checks accept. Real chains put
    many transactions in one block with one timestamp; allowing equal timestamps models exactly that.
    """
    from eth.vm.forks import PragueVM

    class SandboxPragueVM(PragueVM):
        @classmethod
        def validate_header(cls, header, parent_header):
            if parent_header is not None and header.timestamp == parent_header.timestamp:
                parent_header = parent_header.copy(timestamp=parent_header.timestamp - 1)
            return super().validate_header(header, parent_header)

    return SandboxPragueVM


class _TrackedDB(MemoryDB):
    """py-evm's in-memory key-value store, remembering what changed since the last commit."""

    def __init__(self, kv_store: Optional[dict] = None) -> None:
        super().__init__(kv_store)
        self.dirty: dict = {}
        self.deleted: set = set()

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.kv_store[key] = value
        self.dirty[key] = value
        self.deleted.discard(key)

    def __delitem__(self, key: bytes) -> None:
        del self.kv_store[key]
        self.dirty.pop(key, None)
        self.deleted.add(key)


_KV_SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL);"


def load_artifact(name: str = "TestToken") -> dict:
    return json.loads((CONTRACTS_DIR / f"{name}.json").read_text())


class ChainRevert(Exception):
    """A call or transaction reverted; `reason` is the token's revert string when there is one."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _reason(exc: Exception) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    return msg.replace("execution reverted: ", "").replace("execution reverted", "").strip() or type(exc).__name__


def _b32(value: Union[str, bytes]) -> bytes:
    if isinstance(value, str):
        value = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    if len(value) != 32:
        raise ValueError("expected 32 bytes")
    return value


class EvmChain(PersistentChain):
    """A local chain with the test token at `network.asset`; every method is thread-safe."""

    def __init__(self, network: Network, *, gas_accounts: Iterable[str] = (), token_initialize: bool = True,
                 permit2: bool = True, state_path: Optional[str] = None, seed: int = 0):
        if network.kind != "evm":
            raise ValueError(f"{network.label} is not an EVM network")
        self.network = network
        self.chain_id: int = network.chain_id
        self.asset: str = to_checksum_address(network.asset)
        self._lock = threading.RLock()
        self._depth = 0
        artifact = load_artifact()
        self.state = StateFile(state_path, seed=seed, schema=_KV_SCHEMA, tables=("kv",))
        self.restored = self.state.restored

        # One eth-tester key (it signs the sandbox's own transactions) plus the token and gas accounts.
        state = PyEVMBackend.generate_genesis_state(num_accounts=1)
        state[to_canonical_address(self.asset)] = {
            "balance": 0, "nonce": 1, "storage": {},
            "code": bytes.fromhex(artifact["deployedBytecode"][2:]),
        }
        # Permit2 and the x402 exact proxy sit at the same CREATE2 address on every real chain, so they are
        # placed on every sandbox EVM chain (only MegaETH's requirement uses them today).
        p2_artifact, proxy_artifact = load_artifact("Permit2Lite"), load_artifact("X402ExactPermit2Proxy")
        if permit2:
            for addr, art in ((PERMIT2_ADDRESS, p2_artifact), (X402_EXACT_PERMIT2_PROXY, proxy_artifact)):
                state[to_canonical_address(addr)] = {
                    "balance": 0, "nonce": 1, "storage": {}, "code": bytes.fromhex(art["deployedBytecode"][2:])}
        for addr in gas_accounts:
            state[to_canonical_address(addr)] = {"balance": GAS_FUNDING_WEI, "nonce": 0, "storage": {}, "code": b""}
        self.backend = PyEVMBackend(genesis_state=state, vm_configuration=((0, _same_second_vm()),))
        self._kv: Optional[_TrackedDB] = None
        if self.restored:
            # Resume the chain found in the state file: same class, its database, its canonical head.
            self._kv = _TrackedDB(dict(self.state.db.execute("SELECT k, v FROM kv")))
            self.backend.chain = type(self.backend.chain)(AtomicDB(self._kv))
        elif state_path is not None:
            atomic = self.backend.chain.chaindb.db
            self._kv = _TrackedDB(atomic.wrapped_db.kv_store)
            self._kv.dirty = dict(self._kv.kv_store)        # the genesis itself is new
            atomic.wrapped_db = self._kv
        self.backend.chain.chain_id = self.chain_id                  # CHAINID opcode, tx building
        self.tester = EthereumTester(self.backend)
        # web3 shares one module-level endpoint table between providers; patch a private copy, or every
        # tester chain in the process would report the chain id of the last one built.
        endpoints = {ns: dict(table) for ns, table in API_ENDPOINTS.items()}
        chain_id = self.chain_id
        endpoints["eth"]["chainId"] = lambda *a, **k: chain_id                     # eth_chainId
        self.provider = EthereumTesterProvider(self.tester, api_endpoints=endpoints)
        self.w3 = Web3(self.provider)
        # web3's validation middleware caches the chain id per provider *class*, so with several tester
        # chains in one process it compares against another chain's id; eth-tester ignores tx chain ids anyway.
        self.w3.middleware_onion.remove("validation")
        self.operator = self.w3.eth.accounts[0]                       # pays gas for settlements
        self.token = self.w3.eth.contract(address=self.asset, abi=artifact["abi"])
        self.permit2 = self.w3.eth.contract(address=to_checksum_address(PERMIT2_ADDRESS), abi=p2_artifact["abi"])
        self.proxy = self.w3.eth.contract(address=to_checksum_address(X402_EXACT_PERMIT2_PROXY),
                                          abi=proxy_artifact["abi"])
        self._keys: dict[str, str] = {}
        if token_initialize and not self.restored:
            self._transact(self.token.functions.initialize(
                network.eip712_name, network.eip712_version, network.symbol, network.decimals,
                0, "0x0000000000000000000000000000000000000000",
            ))
        with self._atomic():
            pass                                                   # the genesis, when it is new

    # ---- persistence ---------------------------------------------------------------------------
    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """Group writes; when the outermost group ends, what changed is saved in one SQLite transaction.

        Saved on error too: a failed write may still have moved the chain (a reverted-to snapshot, a
        mined failing transaction), and what the chain holds in memory is the truth to keep.
        """
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._commit()

    def _commit(self) -> None:
        kv = self._kv
        if kv is None or not (kv.dirty or kv.deleted):
            return
        with self.state.tx() as db:
            db.executemany("INSERT OR REPLACE INTO kv(k, v) VALUES (?,?)", kv.dirty.items())
            db.executemany("DELETE FROM kv WHERE k=?", [(k,) for k in kv.deleted])
        kv.dirty, kv.deleted = {}, set()

    # ---- plumbing ------------------------------------------------------------------------------
    def refresh_time(self) -> int:
        """Move the pending block's timestamp to the wall clock (never before its parent's); return it."""
        with self._lock:
            chain = self.backend.chain
            parent_ts = chain.get_canonical_head().timestamp
            ts = max(int(time.time()), parent_ts)
            if chain.header.timestamp != ts:
                chain.header = chain.header.copy(timestamp=ts)
            return ts

    def pending_timestamp(self) -> int:
        return self.backend.chain.header.timestamp

    def register_key(self, private_key: str) -> str:
        """Let the chain send transactions for this key (the MegaETH payee calls transferFrom)."""
        acct = Account.from_key(private_key)
        with self._lock:
            if acct.address not in self._keys:
                self._keys[acct.address] = private_key
                if self.w3.eth.get_balance(acct.address) == 0:
                    self._transact_raw({"to": acct.address, "value": GAS_FUNDING_WEI})
        return acct.address

    def _transact_raw(self, tx: dict) -> str:
        with self._atomic():
            self.refresh_time()
            tx = {"from": self.operator, "gas": 100_000, **tx}
            return self.w3.eth.send_transaction(tx).to_0x_hex()

    def _call(self, fn, sender: Optional[str] = None):
        with self._lock:
            self.refresh_time()
            try:
                return fn.call({"from": sender or self.operator}, block_identifier="pending")
            except (ContractLogicError, TransactionFailed) as exc:
                raise ChainRevert(_reason(exc)) from exc

    def _transact(self, fn, sender: Optional[str] = None) -> str:
        """Simulate, then send; raise ChainRevert with the token's reason instead of mining a failure."""
        with self._atomic():
            sender = sender or self.operator
            self._call(fn, sender)
            try:
                if sender == self.operator:
                    tx_hash = fn.transact({"from": sender, "gas": CALL_GAS})
                else:
                    key = self._keys.get(to_checksum_address(sender))
                    if key is None:
                        raise ChainRevert(f"no key registered for {sender}")
                    tx = fn.build_transaction({
                        "from": sender, "nonce": self.w3.eth.get_transaction_count(sender, "pending"),
                        "chainId": self.chain_id, "gas": CALL_GAS,
                    })
                    signed = Account.sign_transaction(tx, key)
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (ContractLogicError, TransactionFailed) as exc:
                raise ChainRevert(_reason(exc)) from exc
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)
            if receipt["status"] != 1:
                raise ChainRevert("transaction_failed")
            return tx_hash.to_0x_hex()

    # ---- reads -----------------------------------------------------------------------------------
    def balance_of(self, owner: str) -> int:
        return self._call(self.token.functions.balanceOf(to_checksum_address(owner)))

    def allowance(self, owner: str, spender: str) -> int:
        return self._call(self.token.functions.allowance(to_checksum_address(owner), to_checksum_address(spender)))

    def nonces(self, owner: str) -> int:
        return self._call(self.token.functions.nonces(to_checksum_address(owner)))

    def authorization_state(self, authorizer: str, nonce: Union[str, bytes]) -> bool:
        return self._call(self.token.functions.authorizationState(to_checksum_address(authorizer), _b32(nonce)))

    def domain_separator(self) -> bytes:
        return self._call(self.token.functions.DOMAIN_SEPARATOR())

    def token_info(self) -> dict:
        f = self.token.functions
        return {"name": self._call(f.name()), "version": self._call(f.version()),
                "symbol": self._call(f.symbol()), "decimals": self._call(f.decimals())}

    # ---- writes ----------------------------------------------------------------------------------
    def mint(self, to: str, amount: int) -> str:
        return self._transact(self.token.functions.mint(to_checksum_address(to), int(amount)))

    def _twa_fn(self, auth: dict, signature: Union[bytes, str, tuple]):
        args = (
            to_checksum_address(auth["from"]), to_checksum_address(auth["to"]), int(auth["value"]),
            int(auth["validAfter"]), int(auth["validBefore"]), _b32(auth["nonce"]),
        )
        if isinstance(signature, tuple):        # (v, r, s) overload
            v, r, s = signature
            fn = self.token.get_function_by_signature(
                "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)")
            return fn(*args, int(v), _b32(r), _b32(s))
        if isinstance(signature, str):
            signature = bytes.fromhex(signature[2:] if signature.startswith("0x") else signature)
        fn = self.token.get_function_by_signature(
            "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)")
        return fn(*args, bytes(signature))

    def simulate_transfer_with_authorization(self, auth: dict, signature) -> None:
        """eth_call the transfer; raises ChainRevert with the token's reason when it would fail."""
        self._call(self._twa_fn(auth, signature))

    def transfer_with_authorization(self, auth: dict, signature) -> str:
        """`signature`: 65 bytes / 0x-hex (bytes overload) or a (v, r, s) tuple (v,r,s overload)."""
        return self._transact(self._twa_fn(auth, signature))

    def _permit_fn(self, owner: str, spender: str, value: int, deadline: int, v: int, r, s):
        return self.token.functions.permit(
            to_checksum_address(owner), to_checksum_address(spender), int(value), int(deadline),
            int(v), _b32(r), _b32(s))

    def simulate_permit(self, owner, spender, value, deadline, v, r, s) -> None:
        self._call(self._permit_fn(owner, spender, value, deadline, v, r, s))

    def permit(self, owner: str, spender: str, value: int, deadline: int, v: int, r, s) -> str:
        return self._transact(self._permit_fn(owner, spender, value, deadline, v, r, s))

    def transfer_from(self, spender: str, owner: str, to: str, value: int) -> str:
        """`spender` sends the transaction; its key must have been registered."""
        return self._transact(self.token.functions.transferFrom(
            to_checksum_address(owner), to_checksum_address(to), int(value)), sender=to_checksum_address(spender))

    def permit_and_transfer_from(self, owner: str, spender: str, value: int, deadline: int, v: int, r, s,
                                 to: Optional[str] = None) -> tuple[str, str]:
        """The x402layer MegaETH route: the payee redeems the permit, then pulls the funds."""
        with self._atomic():                                         # both saved together, or neither
            snapshot = self.tester.take_snapshot()
            permit_tx = self.permit(owner, spender, value, deadline, v, r, s)
            try:
                transfer_tx = self.transfer_from(spender, owner, to or spender, value)
            except ChainRevert:
                # Never leave a dangling allowance behind a failed payment.
                self.tester.revert_to_snapshot(snapshot)
                raise
            return permit_tx, transfer_tx

    # ---- Permit2 + x402 exact proxy (x402.md §5) --------------------------------------------------------
    def has_permit2(self) -> bool:
        return len(self.w3.eth.get_code(self.proxy.address)) > 0 and len(self.w3.eth.get_code(self.permit2.address)) > 0

    def permit2_nonce_used(self, owner: str, nonce: int) -> bool:
        """Permit2's unordered nonces: bit `nonce & 255` of bitmap word `nonce >> 8`."""
        nonce = int(nonce)
        word = self._call(self.permit2.functions.nonceBitmap(to_checksum_address(owner), nonce >> 8))
        return bool((word >> (nonce & 0xFF)) & 1)

    @staticmethod
    def _permit2_args(p2: dict, signature: bytes) -> tuple:
        """(permit, owner, witness, signature) for the proxy, from a payload's `permit2Authorization`."""
        permit = ((to_checksum_address(p2["permitted"]["token"]), int(p2["permitted"]["amount"])),
                  int(p2["nonce"]), int(p2["deadline"]))
        witness = (to_checksum_address(p2["witness"]["to"]), int(p2["witness"]["validAfter"]))
        return permit, to_checksum_address(p2["from"]), witness, bytes(signature)

    def _proxy_fn(self, p2: dict, signature: bytes, permit2612: Optional[tuple]):
        args = self._permit2_args(p2, signature)
        if permit2612 is None:
            return self.proxy.functions.settle(*args)
        value, deadline, v, r, s = permit2612
        return self.proxy.functions.settleWithPermit((int(value), int(deadline), _b32(r), _b32(s), int(v)), *args)

    def simulate_permit2_settle(self, p2: dict, signature: bytes, permit2612: Optional[tuple] = None) -> None:
        """eth_call `proxy.settle` (or `settleWithPermit` when `permit2612` = (value, deadline, v, r, s))."""
        self._call(self._proxy_fn(p2, signature, permit2612))

    def permit2_settle(self, p2: dict, signature: bytes, permit2612: Optional[tuple] = None,
                       sender: Optional[str] = None) -> str:
        """Send the proxy call from `sender` (default: the operator, the facilitator's funded account)."""
        return self._transact(self._proxy_fn(p2, signature, permit2612), sender=sender)

    def approve(self, owner: str, spender: str, value: int) -> str:
        """The owner approves `spender` on the token; the owner's key must have been registered."""
        return self._transact(self.token.functions.approve(to_checksum_address(spender), int(value)),
                              sender=to_checksum_address(owner))

    # ---- standard reads and the one write of the JSON-RPC view (rpc.py formats them) -------------------
    def receipt(self, tx_hash: str) -> Optional[dict]:
        """eth-tester's receipt (snake_case), or None while no block holds the transaction."""
        return self._mined(self.tester.get_transaction_receipt, tx_hash)

    def transaction(self, tx_hash: str) -> Optional[dict]:
        return self._mined(self.tester.get_transaction_by_hash, tx_hash)

    def _mined(self, read, tx_hash: str) -> Optional[dict]:
        from eth_tester.exceptions import TransactionNotFound
        with self._lock:
            try:
                return read(tx_hash)
            except TransactionNotFound:
                return None

    def block_timestamp(self, number: int) -> int:
        with self._lock:
            return self.tester.get_block_by_number(number)["timestamp"]

    def logs(self, from_block, to_block, address, topics) -> list:
        """eth-tester's log filter over mined blocks: blocks as ints or tags, address a string or list,
        topics positional (None = any, a list = any of)."""
        with self._lock:
            return list(self.tester.get_logs(from_block=from_block, to_block=to_block, address=address,
                                             topics=topics))

    def transaction_count(self, address: str, block="latest") -> int:
        with self._lock:
            return self.w3.eth.get_transaction_count(to_checksum_address(address), block)

    def send_raw_transaction(self, raw: bytes) -> str:
        """Include a signed transaction (mined at once, like every transaction here).

        A node refuses a transaction signed for another chain and, by default, one without replay
        protection (pre-EIP-155); py-evm checks neither for typed transactions, so it is done here.
        A transaction that reverts is mined with status 0, as on a real chain.
        """
        got = raw_transaction_chain_id(raw)
        if got is None:
            raise ChainRevert("only replay-protected (EIP-155 or typed) transactions are accepted")
        if got != self.chain_id:
            raise ChainRevert(f"invalid chain id {got}: this chain is {self.chain_id}")
        with self._atomic():
            self.refresh_time()
            try:
                return self.tester.send_raw_transaction("0x" + raw.hex())
            except (ValueError, TransactionFailed) as exc:     # eth-tester's ValidationError is a ValueError
                raise ChainRevert(str(exc)) from exc


def raw_transaction_chain_id(raw: bytes) -> Optional[int]:
    """The chain id a signed transaction commits to (None: a pre-EIP-155 legacy transaction).

    Typed transactions (EIP-2718 type < 0x7f) carry it as their first RLP field; legacy ones in v
    (EIP-155: v = 35 + 2 * chain_id + parity). Raises ValueError on bytes that are no transaction.
    """
    import rlp
    if not raw:
        raise ValueError("empty transaction")
    try:
        if raw[0] < 0x7F:
            fields = rlp.decode(raw[1:])
            return int.from_bytes(fields[0], "big")
        fields = rlp.decode(raw)
    except rlp.exceptions.DecodingError as exc:
        raise ValueError(f"not an RLP transaction: {exc}") from None
    if not isinstance(fields, list) or len(fields) != 9:
        raise ValueError("a legacy transaction is an RLP list of 9 fields")
    v = int.from_bytes(fields[6], "big")
    return (v - 35) // 2 if v >= 35 else None
