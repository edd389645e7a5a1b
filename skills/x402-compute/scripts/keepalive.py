#!/usr/bin/env python3
"""Keep an instance alive until a target time: one check and at most one paid extension per run
(schedule it with cron or your agent's scheduler). Extends when the hours left drop below
--min-hours-left, in whole prepaid blocks, through the normal payment pipeline (spend cap,
budget, quote, journal); stops at the target, at the first refusal and at an unknown payment
outcome; never pays twice for the same window. Prints what it did and when it next needs to act.

The parser and the command live in x402_compute.commands.keepalive: this file is the entry point."""

from x402_compute import cli
from x402_compute.commands import keepalive

p = keepalive.keepalive_parser()
handler = keepalive.keepalive

if __name__ == "__main__":
    cli.run(p, handler)
