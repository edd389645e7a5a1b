"""Run the x402-compute sandbox: the compute API on loopback, payments settled on local chains.

    python -m x402_compute_sandbox [--host 127.0.0.1] [--port 8402] [--seed 0]
        [--state-dir .sandbox] [--boot-seconds 3] [--x402-version 1|2] [--env-file PATH]
        [--no-recipient-atas] [--permit2] [--auth-skew-seconds 300] [--verbose]
        [--request-timeout 10] [--idle-timeout 30] [--max-connections 64]
        [--ssh-time-limit 600] [--ssh-output-limit 8388608] [--stripe]

State (orders, API keys, nonces, payments, credits, idempotency records) persists in SQLite under
--state-dir, and so do the local chains (--state-dir/chains/): balances, nonces, spent authorizations
and transaction history carry over a restart like on a real chain. Delete the folder to start from
genesis again. Test wallets and the sandbox's payees derive from --seed.
"""
from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m x402_compute_sandbox", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (127.0.0.0/8 or ::1 only)")
    p.add_argument("--port", type=int, default=8402, help="port (0 = any free port)")
    p.add_argument("--seed", type=int, default=0, help="seed of the deterministic test wallets and payees")
    p.add_argument("--state-dir", default=".sandbox", help="directory of the SQLite state (kept across restarts)")
    p.add_argument("--boot-seconds", type=float, default=3.0, help="time an instance takes to become active")
    p.add_argument("--x402-version", type=int, choices=(1, 2), default=1,
                   help="402 challenge format: 1 = JSON body (production), 2 = PAYMENT-REQUIRED header")
    p.add_argument("--env-file", default=None, help="where to write the env file (default: <state-dir>/sandbox.env)")
    p.add_argument("--no-recipient-atas", action="store_true",
                   help="do not create the payee's Solana token account (tests the missing-ATA case)")
    p.add_argument("--permit2", action="store_true",
                   help="advertise MegaETH as assetTransferMethod permit2 (the x402 SDK route) instead of "
                        "the x402layer direct ERC-2612 permit")
    p.add_argument("--auth-skew-seconds", type=float, default=300.0,
                   help="accepted X-Auth-Timestamp clock skew (nonces are remembered for twice as long)")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.add_argument("--request-timeout", type=float, default=10.0,
                   help="seconds a request may take to arrive in full once its first byte is in (slow clients get 408)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="seconds a keep-alive connection may wait between requests")
    p.add_argument("--max-connections", type=int, default=64,
                   help="connections served at once (one thread each); more wait, then get 503")
    p.add_argument("--ssh-time-limit", type=float, default=600.0,
                   help="seconds an SSH command or shell on an instance may run before it is killed (exit 124)")
    p.add_argument("--ssh-output-limit", type=int, default=8 * 1024 * 1024,
                   help="bytes an SSH command or shell may write before it is killed (exit 125)")
    p.add_argument("--stripe", action="store_true",
                   help="also offer MPP card charges (method stripe) on paid routes, verified by pympp against a "
                        "local Stripe emulation on 127.0.0.1; writes test STRIPE_* values into the env file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from . import networks as nets
    from .chains.state import StateMismatch
    from .sandbox import Sandbox
    from .server import is_loopback
    from .store import StateDirError, private_state_dir
    if not is_loopback(args.host):
        print(f"error: --host {args.host} is not a loopback address; the sandbox binds 127.0.0.0/8 or ::1 only",
              file=sys.stderr)
        return 2
    if (args.request_timeout <= 0 or args.idle_timeout <= 0 or args.max_connections < 1
            or args.ssh_time_limit <= 0 or args.ssh_output_limit < 1):
        print("error: --request-timeout, --idle-timeout, --ssh-time-limit and --ssh-output-limit must be positive "
              "and --max-connections at least 1", file=sys.stderr)
        return 2
    try:
        private_state_dir(args.state_dir)
    except StateDirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("x402-compute sandbox: building local chains (a few seconds)...", file=sys.stderr)
    try:
        sb = Sandbox(host=args.host, port=args.port, seed=args.seed, state_dir=args.state_dir,
                     boot_seconds=args.boot_seconds, x402_version=args.x402_version,
                     recipient_atas=not args.no_recipient_atas, auth_skew_seconds=args.auth_skew_seconds,
                     verbose=args.verbose, permit2=args.permit2, request_timeout=args.request_timeout,
                     idle_timeout=args.idle_timeout, max_connections=args.max_connections,
                     ssh_time_limit=args.ssh_time_limit, ssh_output_limit=args.ssh_output_limit,
                     stripe=args.stripe)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except StateMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env_file = args.env_file or os.path.join(args.state_dir, "sandbox.env")
    sb.write_env_file(env_file)
    sb.start(background=False)
    bar = "=" * 72
    lines = [bar, "x402-compute sandbox (local chains; nothing here is real money)",
             f"  base URL        {sb.base_url}",
             f"  x402 challenge  v{args.x402_version}",
             f"  state           {os.path.abspath(args.state_dir)} (SQLite; persists across restarts)",
             f"  chains          {', '.join(nets.LABELS)} and the Tempo ledger: "
             + ("resumed from the state folder" if sb.facilitator.restored else "new, from genesis"),
             f"  env file (0600) {os.path.abspath(env_file)}  <- private keys are only in this file",
             "  test wallets (funded with 1000 USD of stablecoin on every network):"]
    for i, w in enumerate(sb.wallets):
        lines.append(f"    [{i}] evm {w['evm_address']}  solana {w['solana_address']}")
    if sb.stripe is not None:
        lines.append(f"  stripe          MPP card charges; Stripe emulation at {sb.stripe.emulator.api_base} "
                     "(test key and card in the env file)")
    lines += [f"  use it:          set -a; . {env_file}; set +a", bar]
    print("\n".join(lines), file=sys.stderr, flush=True)
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
