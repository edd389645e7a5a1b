#!/usr/bin/env python3
"""Destroy an instance, or several: every live machine of this wallet (--all) or those whose
label matches a pattern (--label). Irreversible: the disk is deleted and the unused prepaid
time is lost (one summary of it is shown before asking). Needs --yes when not at a terminal.
Prints the instance as it is afterwards (state destroyed, ip null).

The parser and the command live in x402_compute.commands.manage: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import manage

p = manage.destroy_instance_parser()
handler = manage.destroy

if __name__ == "__main__":
    cli.run(p, handler)
