#!/usr/bin/env python3
"""Reveal an instance's one-time root password (Vultr instances created without
an SSH key). The API reveals it exactly once: it is written to a 0600 file in
your state directory and only the file's path is printed (--show to print it).

The parser and the command live in x402_compute.commands.manage: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import manage

p = manage.get_one_time_password_parser()
handler = manage.get_one_time_password

if __name__ == "__main__":
    cli.run(p, handler)
