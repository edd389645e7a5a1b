#!/usr/bin/env python3
"""Create a management API key (x402c_...), signed by your wallet. The API shows
the key once: --save stores it in a 0600 file that later scripts use
automatically (when COMPUTE_API_KEY is unset); --show prints it. Otherwise
only its last four characters are printed.

The parser and the command live in x402_compute.commands.keys: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import keys

p = keys.create_api_key_parser()
handler = keys.create_api_key

if __name__ == "__main__":
    cli.run(p, handler)
