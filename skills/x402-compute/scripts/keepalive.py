#!/usr/bin/env python3
"""Keep an instance alive until a target time: one check and at most one paid extension per run
(schedule it with cron or your agent's scheduler). Extends when the hours left drop below
--min-hours-left, in whole prepaid blocks, through the normal payment pipeline (spend cap,
budget, quote, journal); stops at the target, at the first refusal and at an unknown payment
outcome; never pays twice for the same window. Prints what it did and when it next needs to act."""

from x402_compute import cli
from x402_compute.commands import paid
from x402_compute.commands import keepalive
from x402_compute.instances import MIN_HOURS_LEFT

p = cli.parser(
    "keepalive.py",
    __doc__,
    examples=(
        "python scripts/keepalive.py 3f2c9a1e-0000-4000-8000-000000000000 --for 3d --max-total-usd 2 --dry-run\n"
        "# show the human what it would pay; only once they agreed to the deadline and the amount,\n"
        "# --yes with their amounts (--max-usd, --max-total-usd) is their standing approval for the runs that follow:\n"
        "python scripts/keepalive.py 3f2c9a1e-0000-4000-8000-000000000000 --until 2030-01-31T18:00:00Z --yes --max-usd 2 --max-total-usd 5\n"
        "# crontab: every hour, keep it alive for 3 days from the first run\n"
        "0 * * * * python /path/to/scripts/keepalive.py 3f2c9a1e-0000-4000-8000-000000000000 --for 3d --yes --max-usd 2 --max-total-usd 5"
    ),
)
p.add_argument("instance_id", help="instance (order) id from list_instances.py")
g = p.add_argument_group("target (required)").add_mutually_exclusive_group(required=True)
g.add_argument("--until", metavar="ISO8601", help="keep it alive until this time (e.g. 2030-01-31T18:00:00Z; no offset means UTC)")
g.add_argument("--for", dest="for_", metavar="DURATION", help="keep it alive this long from the first run with this value (36h, 3d, 2w); recorded, so repeated runs keep that target")
k = p.add_argument_group("keepalive")
k.add_argument("--min-hours-left", type=float, default=MIN_HOURS_LEFT, metavar="HOURS", help="extend when fewer hours than this are left (default 6)")
k.add_argument("--block-hours", type=int, default=keepalive.BLOCK_HOURS, metavar="HOURS", help="extend in whole blocks of this many hours (default and minimum 24)")
k.add_argument("--max-total-usd", metavar="USD", help="the most all runs for this target may pay in all, counted from the journal across runs; "
               "a run whose extension would go over is refused (keepalive_total_exceeded, exit 3) before anything is signed")
k.add_argument("--dry-run", action="store_true", help="say what this run would do and print the schedule of payments to the target "
               "(when, hours, amount each, total) against the limits; send nothing but reads")
k.add_argument("--resume", action="store_true", help="clear a recorded stop (after the human fixed its cause) and run")
paid.add_payment_options(p, unresolved=False)
handler = keepalive.keepalive

if __name__ == "__main__":
    cli.run(p, handler)
