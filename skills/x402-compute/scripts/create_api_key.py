#!/usr/bin/env python3
"""Create a management API key (x402c_...), signed by your wallet. The API shows
the key once: --save stores it in a 0600 file that later scripts use
automatically (when COMPUTE_API_KEY is unset); --show prints it. Otherwise
only its last four characters are printed.
"""

from x402_compute import cli
from x402_compute.commands import keys

p = cli.parser(
    "create_api_key.py",
    __doc__,
    examples='python scripts/create_api_key.py --label "my-agent" --save\npython scripts/create_api_key.py --label ci --show',
)
p.add_argument("--label", help="a name to recognise the key by")
p.add_argument("--save", action="store_true", help="store the key in the state directory (mode 0600) for later scripts")
p.add_argument("--show", action="store_true", help="print the full key on stdout (it cannot be shown again)")


handler = keys.create_api_key


if __name__ == "__main__":
    cli.run(p, handler)
