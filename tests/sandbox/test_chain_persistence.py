"""The chains keep what they settled across a crash: a sandbox *process* is killed with SIGKILL while
paid requests are in flight on every payment route, restarted on the same state folder (and port),
and every payment that was answered 2xx before the kill is replayed. Each replay must be refused by
the chain's own record: EIP-3009 authorization state, ERC-2612 permit nonce, Permit2 nonce bitmap,
Solana transaction history, Tempo transaction (and the MPP challenge store); no replay moves money.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from eth_account import Account

from tests.helpers import ROOT
from tests.oracle import builders as b

pytest.importorskip("mpp")

PRICE_MICROS = 249_600
BODY = {"plan": "vc2-1c-1gb", "region": "lax", "os_id": 2284, "prepaid_hours": 24}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(state_dir: str, port: int) -> tuple[subprocess.Popen, dict]:
    env_file = os.path.join(state_dir, "sandbox.env")
    proc = subprocess.Popen([sys.executable, "-m", "x402_compute_sandbox", "--port", str(port), "--state-dir", state_dir,
                             "--permit2", "--boot-seconds", "0.3"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            if requests.get(base + "/_sandbox/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"sandbox did not start (exit {proc.poll()})")
        time.sleep(0.2)
    env = dict(line.split("=", 1) for line in open(env_file).read().splitlines() if line and not line.startswith("#"))
    return proc, env


def _rpc(base: str, network: str, method: str, params: list):
    return requests.post(f"{base}/rpc/{network}", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                         timeout=120).json()


def _balance(base: str, network: str, address: str) -> int:
    r = requests.get(base + "/_sandbox/balance", params={"network": network, "address": address}, timeout=120)
    assert r.status_code == 200, r.text
    return int(r.json()["balance"])


class Payer:
    """One payment route, paid in a loop by one wallet: (network, how to answer a 402)."""

    def __init__(self, name: str, network: str, wallet: dict, base: str, env: dict):
        self.name, self.network, self.wallet, self.base, self.env = name, network, wallet, base, env
        self.ok: list[dict] = []          # answered 2xx before the kill: {"headers", "body", "tx"}
        self.unexpected: list = []
        self.permit_nonce = None
        self.in_flight = threading.Event()    # a paid request is on the wire, unanswered

    def address(self) -> str:
        return self.wallet["solana_address"] if self.network == "solana" else self.wallet["evm_address"]

    def pay_headers(self, probe: requests.Response) -> dict:
        if self.name == "tempo":
            from mpp import Challenge
            from mpp.methods.tempo import TempoAccount
            from mpp.methods.tempo import client as tempo_client
            from mpp.runtime import PaymentRuntime
            method = tempo_client.charge(account=TempoAccount.from_key(self.wallet["evm_private_key"]), chain_id=4217,
                                         rpc_url=self.env["TEMPO_RPC_URL"],
                                         currency="0x20C000000000000000000000b9537d11c60E8b50")
            runtime = PaymentRuntime([method])
            ch, m = runtime.match_challenge([Challenge.from_www_authenticate(probe.headers["WWW-Authenticate"])])
            return {"Authorization": asyncio.run(runtime.create_credential(ch, m)).to_authorization()}
        (req,) = [a for a in probe.json()["accepts"] if a["network"] == self.network]
        key, extra = self.wallet["evm_private_key"], req["extra"]
        if self.name == "solana":
            from solders.hash import Hash
            from solders.keypair import Keypair
            from solders.pubkey import Pubkey
            tx = b.svm_transaction(Keypair.from_base58_string(self.wallet["solana_secret_key"]),
                                   fee_payer=Pubkey.from_string(extra["feePayer"]), mint=Pubkey.from_string(req["asset"]),
                                   pay_to=Pubkey.from_string(req["payTo"]), amount=int(req["maxAmountRequired"]),
                                   blockhash=Hash.from_string(extra["recentBlockhash"]))
            inner = b.svm_inner(tx)
        elif self.name == "permit":
            if self.permit_nonce is None:
                out = _rpc(self.base, "megaeth", "eth_call", [{"to": req["asset"], "data": "0x7ecebe00" + self.address()[2:].lower().rjust(64, "0")}, "latest"])
                self.permit_nonce = int(out["result"], 16)
            inner = b.permit_inner(key, spender=req["payTo"], value=int(req["maxAmountRequired"]), nonce=self.permit_nonce,
                                   asset=req["asset"], chain_id=4326, name=extra["name"], version=extra["version"])
            self.permit_nonce += 1
        elif self.name == "permit2":
            inner = b.permit2_inner(key, asset=req["asset"], amount=int(req["maxAmountRequired"]), pay_to=req["payTo"],
                                    chain_id=4326)
        else:   # EIP-3009
            inner = b.eip3009_inner(key, to=req["payTo"], value=int(req["maxAmountRequired"]), asset=req["asset"],
                                    chain_id={"base": 8453, "robinhood": 4663}[self.network], name=extra["name"],
                                    version=extra["version"])
        return {"X-PAYMENT": base64.b64encode(json.dumps(b.v1(req, inner)).encode()).decode()}

    def loop(self, killed: threading.Event) -> None:
        i = 0
        while not killed.is_set():
            i += 1
            body = json.dumps({**BODY, "label": f"{self.name}-{i}", "network": self.network if self.name != "tempo" else None})
            h = {"Content-Type": "application/json"}
            try:
                probe = requests.post(self.base + "/compute/provision", data=body, headers=h, timeout=120)
                if probe.status_code != 402:
                    self.unexpected.append(("probe", probe.status_code, probe.text[:300]))
                    return
                pay = self.pay_headers(probe)
                self.in_flight.set()
                try:
                    r = requests.post(self.base + "/compute/provision", data=body, headers={**h, **pay}, timeout=120)
                finally:
                    self.in_flight.clear()
            except Exception as exc:   # noqa: BLE001 (requests, or pympp's httpx reading /rpc/tempo)
                if not killed.is_set():
                    self.unexpected.append(("error", repr(exc)[:300]))
                return
            if r.status_code == 201:
                self.ok.append({"headers": {**h, **pay}, "body": body, "tx": r.json()["tx_hash"]})
            else:
                self.unexpected.append(("paid", r.status_code, r.text[:300]))
                return


def test_kill_9_under_paid_load_then_every_replay_is_refused(tmp_path):
    state, port = str(tmp_path / "state"), _free_port()
    proc, env = _start(state, port)
    base = env["COMPUTE_BASE_URL"]
    assert base == f"http://127.0.0.1:{port}"
    wallets = [{"evm_private_key": env["PRIVATE_KEY"], "evm_address": env["WALLET_ADDRESS"],
                "solana_secret_key": env["SOLANA_SECRET_KEY"], "solana_address": env["SOLANA_WALLET_ADDRESS"]}]
    # Two more funded test wallets of seed 0, so nonce-ordered routes never share a payer.
    from x402_compute_sandbox import wallets as sw
    for i in (1, 2):
        k = sw.evm_key(0, "test", i)
        wallets.append({"evm_private_key": k, "evm_address": Account.from_key(k).address})
    # The Permit2 payer approves Permit2 on-chain once, with a transaction of its own (eth_sendRawTransaction).
    from web3 import HTTPProvider, Web3
    w3 = Web3(HTTPProvider(base + "/rpc/megaeth"))
    permit2_payer = Account.from_key(wallets[2]["evm_private_key"])
    from x402_compute_sandbox import networks
    asset = Web3.to_checksum_address(networks.get("megaeth").asset)
    approve = {"to": asset, "data": "0x095ea7b3" + b.PERMIT2[2:].lower().rjust(64, "0") + "f" * 64, "value": 0,
               "gas": 100_000, "maxFeePerGas": 2 * 10**9, "maxPriorityFeePerGas": 10**9, "chainId": 4326,
               "nonce": w3.eth.get_transaction_count(permit2_payer.address)}
    h = w3.eth.send_raw_transaction(permit2_payer.sign_transaction(approve).raw_transaction)
    assert w3.eth.get_transaction_receipt(h).status == 1

    payers = [Payer("eip3009", "base", wallets[0], base, env), Payer("eip3009", "robinhood", wallets[0], base, env),
              Payer("solana", "solana", wallets[0], base, env), Payer("tempo", "tempo", wallets[0], base, env),
              Payer("permit", "megaeth", wallets[1], base, env), Payer("permit2", "megaeth", wallets[2], base, env)]
    initial = {(p.network, p.address()): _balance(base, p.network, p.address()) for p in payers}
    killed = threading.Event()
    threads = [threading.Thread(target=p.loop, args=(killed,), daemon=True) for p in payers]
    try:
        for t in threads:
            t.start()
        deadline = time.time() + 300   # generous: a correctness test, on a machine that may be busy
        while time.time() < deadline and not all(len(p.ok) >= 2 for p in payers):
            assert all(not p.unexpected for p in payers), [p.unexpected for p in payers]
            time.sleep(0.02)
        while time.time() < deadline and not any(p.in_flight.is_set() for p in payers):
            time.sleep(0.001)
        in_flight = [p.name for p in payers if p.in_flight.is_set()]
        killed.set()
        os.kill(proc.pid, signal.SIGKILL)                        # while paid requests are on the wire
        proc.wait(timeout=10)
    finally:
        killed.set()
        proc.kill()
        for t in threads:
            t.join(timeout=150)
    assert in_flight, "no paid request was in flight at the kill"
    assert all(not p.unexpected for p in payers), [(p.name, p.network, p.unexpected) for p in payers]
    assert all(len(p.ok) >= 2 for p in payers), [(p.name, p.network, len(p.ok)) for p in payers]

    proc, env2 = _start(state, port)                             # same folder, same port (the MPP realm)
    try:
        assert env2["COMPUTE_BASE_URL"] == base
        kept = {}
        for p in payers:                                         # the chain still holds every acknowledged payment
            now = _balance(base, p.network, p.address())
            amount = PRICE_MICROS * (10**12 if p.network == "megaeth" else 1)
            spent = initial[(p.network, p.address())] - now
            if p.network == "tempo":
                spent -= 5_400 * len(p.ok)                       # the ledger's gas, one call each
            assert spent >= amount * len(p.ok), (p.name, p.network, spent, len(p.ok))
            kept[(p.network, p.address())] = now
        expected = {"eip3009": (402, "invalid_exact_evm_nonce_already_used"),
                    "permit": (402, "invalid_exact_evm_nonce_already_used"),
                    "permit2": (402, "permit2_invalid_nonce"), "solana": (402, "duplicate_settlement"),
                    "tempo": (403, "verification-failed")}
        for p in payers:
            for paid in p.ok:                                    # the identical paid request, sent again
                r = requests.post(base + "/compute/provision", data=paid["body"], headers=paid["headers"], timeout=120)
                status, reason = expected[p.name]
                assert r.status_code == status, (p.name, p.network, r.status_code, r.text[:300])
                doc = r.json()
                got = doc.get("error") if status == 402 else doc.get("type", "")
                assert reason in got, (p.name, p.network, doc)
            if p.name == "tempo":                                # the ledger itself refuses the transaction
                for paid in p.ok:
                    cred = json.loads(base64.urlsafe_b64decode(paid["headers"]["Authorization"].split(" ", 1)[1] + "=="))
                    out = _rpc(base, "tempo", "eth_sendRawTransaction", [cred["payload"]["signature"]])
                    assert out["error"]["code"] == -32003 and "already_known" in out["error"]["message"], out
                    assert _rpc(base, "tempo", "eth_getTransactionReceipt", [paid["tx"]])["result"]["status"] == "0x1"
        for p in payers:                                         # and no replay moved money
            assert _balance(base, p.network, p.address()) == kept[(p.network, p.address())], (p.name, p.network)
    finally:
        proc.kill()                                              # the test is over; its state folder is a tmp dir
        proc.wait(timeout=30)
