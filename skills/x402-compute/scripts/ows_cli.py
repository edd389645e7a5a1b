#!/usr/bin/env python3
"""Manage the Open Wallet Standard (OWS) vault this skill signs with: wallets,
addresses, test signatures and agent API tokens. Uses the Python binding
(pip install open-wallet-standard); no Node or ows binary is needed.

The parser and the command live in x402_compute.commands.ows: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import ows

p = ows.ows_cli_parser()
handler = ows.ows_command

if __name__ == "__main__":
    cli.run(p, handler)
