#!/usr/bin/env python3
"""Check that this machine is ready: Python and packages, configured credentials
(keys match their addresses), secret-file permissions, API reachability and clock skew.

Prints one JSON report {ok, checks: [{name, status, detail}], ...}; status is
ok, warn, fail or skip. Exits 0 when nothing failed, 1 otherwise. Secrets are
never shown: addresses only, API keys as their last four characters.
"""

from x402_compute import cli
from x402_compute.commands import doctor

p = cli.parser(
    "doctor.py",
    __doc__,
    examples="python scripts/doctor.py\npython scripts/doctor.py --offline -o text",
)
p.add_argument("--offline", action="store_true", help="skip the checks that need the network (API, clock skew, credentials accepted)")


handler = doctor.doctor


if __name__ == "__main__":
    cli.run(p, handler)
