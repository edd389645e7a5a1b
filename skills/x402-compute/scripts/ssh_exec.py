#!/usr/bin/env python3
"""Run one command on an instance over SSH and print one JSON document: exit_status, stdout and
stderr (each capped, with truncated flags), duration_s, and the host key the machine presented
(pinned in the state folder on first contact; a later change is refused, exit 3).

The parser and the command live in x402_compute.commands.remote: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import remote

p = remote.ssh_exec_parser()
handler = remote.ssh_exec

if __name__ == "__main__":
    cli.run(p, handler)
