#!/usr/bin/env python3
"""Browse operating system images; the os_id goes to provision.py --os-id.

Images differ by provider: Vultr ids are small numbers (2284 = Ubuntu 24.04),
DigitalOcean ids are large provider image ids."""

from x402_compute import cli, plans
from x402_compute.commands import catalog


p = cli.parser(
    "browse_os.py",
    __doc__,
    examples="python scripts/browse_os.py\npython scripts/browse_os.py --provider vultr --family ubuntu",
)
p.add_argument("--provider", choices=sorted(plans.PROVIDER_ALIASES), help="vultr or digitalocean (do)")
p.add_argument("--family", help="only images of this family (e.g. ubuntu, debian)")


handler = catalog.browse_os


if __name__ == "__main__":
    cli.run(p, handler)
