#!/usr/bin/env python3
"""Manage the Open Wallet Standard (OWS) vault this skill signs with: wallets,
addresses, test signatures and agent API tokens. Uses the Python binding
(pip install open-wallet-standard); no Node or ows binary is needed.

Secrets never go through argv: passphrases come from OWS_PASSPHRASE /
OWS_PASSPHRASE_FILE or a hidden prompt, imported keys from a named environment
variable or stdin. Mnemonics and API tokens are printed only when asked for or
when there is no other way to hand them over (a new token is shown once).

Settings: OWS_WALLET (default --wallet), OWS_VAULT_PATH (default --vault;
else ~/.ows), OWS_PASSPHRASE or OWS_PASSPHRASE_FILE (passphrase or ows_key_ token).
"""

from __future__ import annotations

import argparse

from x402_compute import cli
from x402_compute.commands import ows

p = cli.parser(
    "ows_cli.py",
    __doc__,
    examples="""python scripts/ows_cli.py wallet-create --name agent
OWS_PASSPHRASE=... python scripts/ows_cli.py wallet-import --name me --private-key-env PRIVATE_KEY --solana-key-env SOLANA_SECRET_KEY
python scripts/ows_cli.py address --wallet agent
python scripts/ows_cli.py key-create --name bot --wallet agent --allow-chain base --allow-chain solana --expires-at 2026-12-31 --save
python scripts/ows_cli.py key-list
python scripts/ows_cli.py key-revoke --id <key-id> --yes""",
)
p.add_argument("--vault", metavar="PATH", help="OWS vault root (default: OWS_VAULT_PATH, else ~/.ows)")

# Options accepted after the subcommand too; SUPPRESS keeps a value given before it.
common = argparse.ArgumentParser(add_help=False)
common.add_argument("--vault", metavar="PATH", default=argparse.SUPPRESS, help="OWS vault root (default: OWS_VAULT_PATH, else ~/.ows)")
common.add_argument("--output", "-o", choices=("json", "text"), default=argparse.SUPPRESS, help="json (default when piped) or text")
common.add_argument("--env-file", metavar="PATH", default=argparse.SUPPRESS, help="read settings from this .env file")

sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)


def _cmd(name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, parents=[common])


def _wallet_opt(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--wallet", "-w", metavar="W", help="wallet name or id (default: OWS_WALLET)")


_cmd("wallet-list", "List the wallets in the vault with their EVM and Solana addresses.")

sp = _cmd("wallet-create", "Create a wallet from a fresh BIP-39 mnemonic (encrypted in the vault).")
sp.add_argument("--name", required=True)
sp.add_argument("--words", type=int, choices=(12, 24), default=12)
sp.add_argument("--show-mnemonic", action="store_true", help="print the mnemonic once (for an offline backup); otherwise it never leaves the vault")
sp.add_argument("--no-passphrase", action="store_true", help="allow an empty passphrase when OWS_PASSPHRASE is unset and there is no terminal")

sp = _cmd("wallet-import", "Import a mnemonic or private key(s) from an environment variable or stdin (never argv).")
sp.add_argument("--name", required=True)
sp.add_argument("--mnemonic-env", metavar="VAR", help="environment variable holding a BIP-39 mnemonic")
sp.add_argument("--private-key-env", metavar="VAR", help="variable holding a key: 64-hex secp256k1 (EVM), or a Solana keypair/seed (base58 or JSON byte array)")
sp.add_argument("--solana-key-env", metavar="VAR", help="variable holding the Solana key (base58/JSON keypair, or 64-hex seed); with --private-key-env both accounts are yours")
sp.add_argument("--stdin", action="store_true", help="read one mnemonic or key from stdin")
sp.add_argument("--no-passphrase", action="store_true", help="allow an empty passphrase when OWS_PASSPHRASE is unset and there is no terminal")

sp = _cmd("address", "Show a wallet's EVM and/or Solana address (no passphrase needed).")
_wallet_opt(sp)
sp.add_argument("--chain", choices=("evm", "solana"), help="only this address")

sp = _cmd("sign-message", "Sign a message with a vault key (EIP-191 on EVM, raw ed25519 on Solana).")
_wallet_opt(sp)
sp.add_argument("--message", "-m", required=True, help="the message (UTF-8 text, or hex with --encoding hex)")
sp.add_argument("--chain", default="evm", help="evm (= Base, eip155:8453; default), solana, or an OWS chain / CAIP-2 id such as eip155:4217")
sp.add_argument("--encoding", choices=("utf8", "hex"), default="utf8")

sp = _cmd("key-create", "Create an agent API token (ows_key_…) for wallets; it stands in for the passphrase.")
sp.add_argument("--name", required=True)
sp.add_argument("--wallet", "-w", action="append", metavar="W", help="wallet name or id; repeatable (default: OWS_WALLET)")
sp.add_argument("--policy", action="append", default=[], metavar="P", help="id of an existing OWS policy; repeatable")
sp.add_argument("--allow-chain", action="append", default=[], metavar="C", help=f"only these chains ({ows.CHAIN_NAMES} or CAIP-2); repeatable; creates an allowed_chains policy")
sp.add_argument("--expires-at", metavar="ISO", help="expiry, e.g. 2026-12-31 or 2026-12-31T18:00:00Z (no zone = UTC)")
sp.add_argument("--save", nargs="?", const="", metavar="PATH", help="write the token to a new 0600 file instead of printing it (default file: <state dir>/ows-keys/<key id>.token)")

_cmd("key-list", "List API tokens (metadata only; tokens are never stored in clear).")

sp = _cmd("key-revoke", "Revoke an API token; agents using it can no longer sign.")
sp.add_argument("--id", required=True, help="key id (or its unique name)")
cli.add_yes(sp, "revoke")


handler = ows.ows_command


if __name__ == "__main__":
    cli.run(p, handler)
