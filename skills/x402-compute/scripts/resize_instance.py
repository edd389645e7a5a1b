#!/usr/bin/env python3
"""Resize an instance to another plan (same provider and region). There is
downtime. The prepaid credit is kept and the expiry recomputed for the new
hourly rate. Vultr allows upgrades only; on DigitalOcean a bigger disk is
permanent and needs --confirm-disk-resize. No payment is made.

The parser and the command live in x402_compute.commands.manage: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import manage

p = manage.resize_instance_parser()
handler = manage.resize

if __name__ == "__main__":
    cli.run(p, handler)
