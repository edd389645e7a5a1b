#!/usr/bin/env python3
"""Browse regions (data centres) with their city, country and continent. With
--provider or --plan, only the regions where that provider's plans (or that plan)
can be placed, from the plans' locations.

The parser and the command live in x402_compute.commands.catalog: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import catalog

p = catalog.browse_regions_parser()
handler = catalog.browse_regions

if __name__ == "__main__":
    cli.run(p, handler)
