#!/usr/bin/env python3
"""Check that this machine is ready: Python and packages, configured credentials
(keys match their addresses), secret-file permissions, API reachability and clock skew.

The parser and the command live in x402_compute.commands.doctor: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import doctor

p = doctor.doctor_parser()
handler = doctor.doctor

if __name__ == "__main__":
    cli.run(p, handler)
