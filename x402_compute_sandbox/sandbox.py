"""The composition root: one `Sandbox` builds the local chains and facilitator, the SQLite store, the
SSH servers, the app and the HTTP server, and starts and stops them together.

Nothing in the package imports this module (only `__main__`, tests and benchmarks do), so the modules
it wires together never import back up: server.py stays the HTTP primitives, app.py the routes
(tests/sandbox/test_import_graph.py keeps the package's import graph free of cycles).
"""
from __future__ import annotations

import os
import threading
from typing import Optional

from .app import App
from .facilitator import Facilitator
from .server import IDLE_TIMEOUT, MAX_CONNECTIONS, REQUEST_TIMEOUT, SandboxHTTPServer, is_loopback
from .ssh import DEFAULT_OUTPUT_LIMIT, DEFAULT_TIME_LIMIT, SshServers
from .store import Store, private_state_dir


class Sandbox:
    """The whole sandbox in one object: local chains + facilitator, SQLite store, app, HTTP server.

    State (orders, keys, nonces, payments, credits, idempotency records) lives in SQLite under
    `state_dir` and survives a restart, and so do the local chains (`state_dir/chains/`, unless a
    `facilitator` is passed in): balances, nonces and spent authorizations carry over like on a
    real chain.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 8402, seed: int = 0,
                 state_dir: str = ".sandbox", boot_seconds: float = 3.0, x402_version: int = 1,
                 recipient_atas: bool = True, auth_skew_seconds: float = 300.0,
                 resize_seconds: Optional[float] = None, facilitator=None, verbose: bool = False,
                 permit2: bool = False, request_timeout: float = REQUEST_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS, ssh_time_limit: Optional[float] = None,
                 ssh_output_limit: Optional[int] = None, stripe: bool = False):
        if not is_loopback(host):
            raise ValueError(f"refusing to bind {host!r}: the sandbox listens on loopback only")
        private_state_dir(state_dir)   # before the chains write their files there
        self._own_facilitator = facilitator is None
        if facilitator is None:
            facilitator = Facilitator(seed=seed, recipient_atas=recipient_atas, permit2=permit2, state_dir=state_dir)
        self.facilitator = facilitator
        self.state_dir = state_dir
        self.store = Store(state_dir)
        ssh = SshServers(time_limit=DEFAULT_TIME_LIMIT if ssh_time_limit is None else ssh_time_limit,
                         output_limit=DEFAULT_OUTPUT_LIMIT if ssh_output_limit is None else ssh_output_limit,
                         verbose=verbose)
        self.app = App(facilitator=facilitator, store=self.store, x402_version=x402_version,
                       boot_seconds=boot_seconds, auth_skew_seconds=auth_skew_seconds,
                       resize_seconds=resize_seconds, ssh=ssh)
        self.stripe = None   # --stripe: MPP card charges against a local Stripe emulation (stripe_mpp.py)
        if stripe:
            from .stripe_mpp import StripeMpp
            self.stripe = StripeMpp.enable(self.app, state_dir)
        self.httpd = SandboxHTTPServer(self.app, host, port, verbose=verbose, request_timeout=request_timeout,
                                       idle_timeout=idle_timeout, max_connections=max_connections)
        self.base_url = self.httpd.base_url
        self.app.base_url = self.base_url
        self._thread = None
        self._served = False

    @property
    def wallets(self) -> list:
        return self.facilitator.test_wallets()

    def env(self) -> dict:
        """The variables a script needs to use this sandbox with the first test wallet."""
        w = self.wallets[0]
        env = {"COMPUTE_BASE_URL": self.base_url,
               "PRIVATE_KEY": w["evm_private_key"], "WALLET_ADDRESS": w["evm_address"],
               "SOLANA_SECRET_KEY": w["solana_secret_key"], "SOLANA_WALLET_ADDRESS": w["solana_address"]}
        for label in self.facilitator.networks():
            env[f"{label.upper()}_RPC_URL"] = f"{self.base_url}/rpc/{label}"
        env["TEMPO_RPC_URL"] = f"{self.base_url}/rpc/tempo"   # the MPP ledger's JSON-RPC (tempo/rpc.py)
        if self.stripe is not None:
            env.update(self.stripe.env())
        return env

    def write_env_file(self, path: str) -> str:
        lines = ["# x402-compute sandbox: test wallets on local chains only (worthless outside it)."]
        lines += [f"{k}={v}" for k, v in self.env().items()]
        # The client's own state (payee pins, journal, saved keys) for this sandbox lives
        # beside it: sandbox payees pinned in the user's real state folder would make the
        # next real payment on that network stop with payee_changed. Only in the file:
        # tests pass env() as the environment and choose their own state folder.
        lines += ["# Client state for this sandbox, kept apart from your real payee pins and journal.",
                  f"X402_COMPUTE_STATE_DIR={os.path.abspath(os.path.join(self.state_dir, 'client-state'))}"]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)   # O_CREAT's mode does not apply to a file that already existed
        return path

    def start(self, background: bool = True) -> "Sandbox":
        self.app.start()
        if background:
            self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                            name="sandbox-http", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._served = True
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self._thread is not None or self._served:
            self.httpd.shutdown()   # returns at once when serve_forever already ended
        self.httpd.server_close()
        self.app.stop()
        if self.stripe is not None:
            self.stripe.close()
        if self._thread:
            self._thread.join(timeout=5)
        self.store.close()
        if self._own_facilitator:
            self.facilitator.close()
