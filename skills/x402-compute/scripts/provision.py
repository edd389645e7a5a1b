#!/usr/bin/env python3
"""Rent a VPS or GPU machine and pay for a prepaid period over HTTP 402 (x402).

Checks the plan, region and OS against the catalog, reads the 402's offers, refuses
anything above the spend cap, the catalog price or to a changed payee, signs one
payment, and prints the order, the payment (with tx hash) and how to SSH in."""

from x402_compute import cli
from x402_compute.commands import paid

p = cli.parser(
    "provision.py",
    __doc__,
    examples=(
        "python scripts/provision.py vc2-1c-1gb lax --days 1 --ssh-key auto --quote\n"
        "# show the quote to the human; once they approve, pay exactly that quote:\n"
        "python scripts/provision.py vc2-1c-1gb lax --days 1 --ssh-key auto --confirm-quote <quote_id> --wait-ssh\n"
        "python scripts/provision.py vcg-a100-1c-2g-6gb lax --months 1 --ssh-key-file ~/.ssh/id_ed25519.pub --quote\n"
        "# the human at a terminal may skip the quote (--yes is their shortcut):\n"
        "python scripts/provision.py do:s-1vcpu-1gb nyc3 --days 2 --ssh-key-file ~/.ssh/id_ed25519.pub --network solana --yes\n"
        "python scripts/provision.py vcg-a100-1c-2g-6gb lax --days 1 --model-id llama-3.2-3b --mode private --quote"
    ),
)
p.add_argument("plan", help="plan id from browse_plans.py (e.g. vc2-1c-1gb, do:s-1vcpu-1gb)")
p.add_argument("region", help="region id in the plan's locations (e.g. lax, nyc3)")
paid.add_duration_options(p, what="prepaid period")
g = p.add_argument_group("machine")
g.add_argument("--os-id", type=int, help="OS image id from browse_os.py (default: Ubuntu 24.04 of the plan's provider)")
g.add_argument("--label", help="instance label (default: x402-<journal id prefix>, used by reconcile.py)")
g.add_argument("--hostname", help="hostname the machine gets (default: the provider's)")
g.add_argument("--ssh-key", choices=("auto",), help="auto: use the skill's own ed25519 key pair (created once in the state folder, private key 0600, never printed) and put -i in the ssh block; use it when the human has no key of their own")
g.add_argument("--ssh-public-key", metavar="KEY", help="SSH public key text (DigitalOcean needs a key: this, --ssh-key-file or --ssh-key auto)")
g.add_argument("--ssh-key-file", metavar="PATH", help="file holding the SSH public key (e.g. ~/.ssh/id_ed25519.pub)")
g.add_argument("--user-data", metavar="FILE", help="cloud-init user data file run at first boot")
paid.add_ai_machine_options(p)
paid.add_payment_options(p)
paid.add_wait_options(p)

handler = paid.provision

if __name__ == "__main__":
    cli.run(p, handler)
