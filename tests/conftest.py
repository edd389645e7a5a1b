"""Shared fixtures: the sandbox compute API on 127.0.0.1, in a background thread.

`sandbox` (session scope) — one server for the whole run; tests must not assume it is empty
(use fresh wallets or API keys, or filter by the ids they created). It exposes:
    .base_url     "http://127.0.0.1:<ephemeral port>"
    .facilitator  the in-process facilitator (balances, funding, payees)
    .wallets      funded test wallets: [{"evm_private_key","evm_address","solana_secret_key","solana_address"}…]
    .env          the env-file variables as a dict (COMPUTE_BASE_URL, PRIVATE_KEY, …, *_RPC_URL),
                  ready to merge into a subprocess environment
    .state_dir    the temporary state directory
    .app, .sandbox  the App and the Sandbox objects (for white-box checks)

`make_sandbox(**opts)` (function scope) — more servers for one test, stopped at its end. Options are
those of `x402_compute_sandbox.sandbox.Sandbox` (x402_version=2, recipient_atas=False,
auth_skew_seconds=…, boot_seconds=…, state_dir=… to restart on an existing state, facilitator=…
to reuse chains). Returns the same kind of handle, plus `.stop()` for restart tests.

Imports of the sandbox happen inside the fixtures so that collecting other tests stays cheap.
"""
from __future__ import annotations

import shutil
import tempfile

import pytest


class SandboxHandle:
    def __init__(self, sb):
        self.sandbox = sb
        self.app = sb.app
        self.base_url = sb.base_url
        self.facilitator = sb.facilitator
        self.wallets = sb.wallets
        self.env = sb.env()
        self.state_dir = sb.state_dir
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.sandbox.stop()

    def __repr__(self) -> str:
        return f"<SandboxHandle {self.base_url} state={self.state_dir}>"


def _start(state_dir: str, **opts) -> SandboxHandle:
    from x402_compute_sandbox.sandbox import Sandbox

    opts.setdefault("host", "127.0.0.1")
    opts.setdefault("port", 0)
    opts.setdefault("boot_seconds", 0.3)
    sb = Sandbox(state_dir=state_dir, **opts)
    sb.start(background=True)
    return SandboxHandle(sb)


@pytest.fixture(scope="session")
def sandbox():
    state_dir = tempfile.mkdtemp(prefix="x402-sandbox-")
    handle = _start(state_dir)
    try:
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def make_sandbox():
    handles, dirs = [], []

    def factory(**opts) -> SandboxHandle:
        state_dir = opts.pop("state_dir", None)
        if state_dir is None:
            state_dir = tempfile.mkdtemp(prefix="x402-sandbox-")
            dirs.append(state_dir)
        h = _start(state_dir, **opts)
        handles.append(h)
        return h

    try:
        yield factory
    finally:
        for h in handles:
            h.stop()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


# --- signing helpers for the server tests (independent of the sandbox's own verification code) -----
class Tools:
    """Build what a client sends: X-Auth-* headers and x402 payment headers.

    Payload construction uses the hand-written eth-account/solders builders of tests/oracle/builders.py
    (independent of both the sandbox and the x402 SDK).
    """

    @staticmethod
    def b64(obj) -> str:
        import base64
        import json
        return base64.b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode()

    @staticmethod
    def unb64(value: str):
        import base64
        import json
        return json.loads(base64.b64decode(value))

    @staticmethod
    def auth_message(chain, address, method, path, body, ts, nonce) -> str:
        import hashlib
        return "\n".join(["X402-COMPUTE-AUTH", "v1", chain, address, method, path,
                          hashlib.sha256(body).hexdigest(), str(ts), nonce])

    @classmethod
    def evm_auth(cls, key: str, method: str, path: str, body: bytes = b"", *, chain: str = "base",
                 ts=None, nonce=None, address=None) -> dict:
        import time
        import uuid

        from eth_account import Account
        from eth_account.messages import encode_defunct
        ts = int(time.time() * 1000) if ts is None else ts
        nonce = nonce or uuid.uuid4().hex
        address = address or Account.from_key(key).address.lower()
        msg = cls.auth_message(chain, address, method, path, body, ts, nonce)
        sig = Account.sign_message(encode_defunct(text=msg), private_key=key).signature
        return {"X-Auth-Address": address, "X-Auth-Chain": chain, "X-Auth-Signature": "0x" + bytes(sig).hex(),
                "X-Auth-Timestamp": str(ts), "X-Auth-Nonce": nonce, "X-Auth-Sig-Encoding": "hex"}

    @classmethod
    def solana_auth(cls, secret_b58: str, method: str, path: str, body: bytes = b"", *, ts=None, nonce=None) -> dict:
        import base64
        import time
        import uuid

        from solders.keypair import Keypair
        kp = Keypair.from_base58_string(secret_b58)
        ts = int(time.time() * 1000) if ts is None else ts
        nonce = nonce or uuid.uuid4().hex
        msg = cls.auth_message("solana", str(kp.pubkey()), method, path, body, ts, nonce)
        sig = base64.b64encode(bytes(kp.sign_message(msg.encode()))).decode()
        return {"X-Auth-Address": str(kp.pubkey()), "X-Auth-Chain": "solana", "X-Auth-Signature": sig,
                "X-Auth-Timestamp": str(ts), "X-Auth-Nonce": nonce, "X-Auth-Sig-Encoding": "base64"}

    @staticmethod
    def payload_for(req: dict, wallet: dict, facilitator, *, version: int = 1, value=None, to=None,
                    valid_before=None) -> dict:
        """A signed x402 PaymentPayload answering one `accepts` entry (v1 or v2) with `wallet`."""
        from tests.oracle import builders as b
        from x402_compute_sandbox import networks as nets
        net = nets.get(req["network"])
        amount = int(req["maxAmountRequired"] if version == 1 else req["amount"])
        value = amount if value is None else value
        pay_to = to or req["payTo"]
        if net.kind == "svm":
            from solders.hash import Hash
            from solders.keypair import Keypair
            from solders.pubkey import Pubkey
            tx = b.svm_transaction(Keypair.from_base58_string(wallet["solana_secret_key"]),
                                   fee_payer=Pubkey.from_string(req["extra"]["feePayer"]),
                                   mint=Pubkey.from_string(req["asset"]), pay_to=Pubkey.from_string(pay_to),
                                   amount=value, blockhash=Hash.from_string(req["extra"]["recentBlockhash"]))
            inner = b.svm_inner(tx)
        elif net.transfer_method == "permit":
            nonce = facilitator.chain(net.label).nonces(wallet["evm_address"])
            inner = b.permit_inner(wallet["evm_private_key"], spender=pay_to, value=value, nonce=nonce,
                                   asset=req["asset"], chain_id=net.chain_id, name=req["extra"]["name"],
                                   version=req["extra"]["version"], deadline=valid_before)
        else:
            inner = b.eip3009_inner(wallet["evm_private_key"], to=pay_to, value=value, asset=req["asset"],
                                    chain_id=net.chain_id, name=req["extra"]["name"],
                                    version=req["extra"]["version"], valid_before=valid_before)
        return b.v1(req, inner) if version == 1 else b.v2(req, inner)

    @staticmethod
    def fresh_wallet(facilitator, usd: int = 100) -> dict:
        """A new random wallet funded with `usd` of stablecoin on every network (and SOL for nothing: the
        sandbox's fee payer pays Solana fees)."""
        import os

        import base58
        from eth_account import Account
        from solders.keypair import Keypair
        key = "0x" + os.urandom(32).hex()
        kp = Keypair()
        w = {"evm_private_key": key, "evm_address": Account.from_key(key).address,
             "solana_secret_key": base58.b58encode(bytes(kp)).decode(), "solana_address": str(kp.pubkey())}
        for label in facilitator.networks():
            net = facilitator.network(label)
            owner = w["solana_address"] if net.kind == "svm" else w["evm_address"]
            facilitator.fund(label, owner, usd * 10 ** net.decimals)
        return w


    @classmethod
    def challenge(cls, resp, version: int = 1) -> list:
        """The `accepts` list of a 402 (v1 body or v2 PAYMENT-REQUIRED header)."""
        assert resp.status_code == 402, (resp.status_code, resp.text)
        if version == 1:
            return resp.json()["accepts"]
        return cls.unb64(resp.headers["PAYMENT-REQUIRED"])["accepts"]

    @classmethod
    def paid_post(cls, sb, path: str, body, wallet: dict, *, network: str = "base", headers=None,
                  retry_headers=None, version: int = 1, header_name=None, idempotency_key=None):
        """Unpaid probe (must be 402) then the paid retry; returns (probe, paid response, payload).

        The retry carries `retry_headers` (default: the probe's headers minus X-Auth-*, whose nonce the
        probe consumed) plus the payment header.
        """
        import json

        import requests
        raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        h = {"Content-Type": "application/json", **(headers or {})}
        probe = requests.post(sb.base_url + path, data=raw, headers=h, timeout=30)
        accepts = cls.challenge(probe, version)
        req = next(a for a in accepts if sb.facilitator.network(a["network"]).label == network)
        payload = cls.payload_for(req, wallet, sb.facilitator, version=version)
        if retry_headers is None:
            retry_headers = {k: v for k, v in h.items() if not k.startswith("X-Auth-")}
        rh = {"Content-Type": "application/json", **retry_headers}
        rh[header_name or ("X-PAYMENT" if version == 1 else "PAYMENT-SIGNATURE")] = cls.b64(payload)
        if idempotency_key:
            rh["Idempotency-Key"] = idempotency_key
        paid = requests.post(sb.base_url + path, data=raw, headers=rh, timeout=60)
        return probe, paid, payload

    @classmethod
    def provision(cls, sb, wallet: dict, *, plan="vc2-1c-1gb", region="lax", os_id=2284, hours=24,
                  network="base", headers=None, **extra) -> dict:
        """A paid provision that must succeed; returns the response JSON."""
        body = {"plan": plan, "region": region, "os_id": os_id, "label": "t", "prepaid_hours": hours,
                "network": network, **extra}
        _, paid, _ = cls.paid_post(sb, "/compute/provision", body, wallet, network=network, headers=headers)
        assert paid.status_code == 201, paid.text
        return paid.json()

    @classmethod
    def api_key(cls, sb, wallet: dict, label: str = "test") -> str:
        """Create an API key for the wallet (signature auth) and return it."""
        import json

        import requests
        raw = json.dumps({"label": label}).encode()
        h = cls.evm_auth(wallet["evm_private_key"], "POST", "/compute/api-keys", raw)
        r = requests.post(sb.base_url + "/compute/api-keys", data=raw,
                          headers={"Content-Type": "application/json", **h}, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()["api_key"]


@pytest.fixture(scope="session")
def tools():
    return Tools


# --- a real PostgreSQL server for the shared-ledger tests (tests/pg.py) ----------------------------
@pytest.fixture(scope="session")
def pg_port():
    """The port of the session's PostgreSQL (started once, shared by the xdist workers); skipped
    only where the machine has no PostgreSQL server binaries or no psycopg."""
    import os

    from tests import pg

    pytest.importorskip("psycopg")
    if pg.bin_dir() is None:
        pytest.skip("no PostgreSQL server here (initdb); CI installs one (.ci/run)")
    server = pg.Server(pg.shared_root(os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"))
    worker = os.environ.get("PYTEST_XDIST_WORKER") or "main"
    port = server.acquire(worker)
    try:
        yield port
    finally:
        server.release(worker)


@pytest.fixture
def ledger_url(pg_port):
    """A fresh, empty ledger on the session's PostgreSQL (its own schema)."""
    from tests import pg

    return pg.fresh_schema(pg_port)


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_env(request):
    """The environment selecting each ledger engine: {} (SQLite in the state folder) or
    COMPUTE_LEDGER_URL of a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return {}
    return {"COMPUTE_LEDGER_URL": request.getfixturevalue("ledger_url")}
