#!/usr/bin/env python3
"""Check that this machine is ready: Python and packages, configured credentials
(keys match their addresses), secret-file permissions, API reachability and clock skew.

Prints one JSON report {ok, checks: [{name, status, detail}], ...}; status is
ok, warn, fail or skip. Exits 0 when nothing failed, 1 otherwise. Secrets are
never shown: addresses only, API keys as their last four characters.
"""

from x402_compute import cli
from x402_compute.doctor import FAIL, run_checks

p = cli.parser(
    "doctor.py",
    __doc__,
    examples="python scripts/doctor.py\npython scripts/doctor.py --offline -o text",
)
p.add_argument("--offline", action="store_true", help="skip the checks that need the network (API, clock skew, credentials accepted)")


def handler(ctx: cli.Context) -> cli.Output:
    report = run_checks(lambda: ctx.settings, lambda: ctx.client, offline=ctx.args.offline)
    rows = report["checks"]
    text = cli.table(rows, [("status", "STATUS"), ("name", "CHECK"), ("detail", "DETAIL")])
    if report["healthy"]:
        return cli.Output(report, text)
    failed = [c["name"] for c in rows if c["status"] == FAIL]
    error = {
        "code": "doctor_failed",
        "message": f"{len(failed)} check(s) failed: {', '.join(failed)}.\n{text}",
        "status": None,
        "details": None,
        "retryable": False,
        "hint": "Fix what each failed check says, then run doctor.py again.",
    }
    return cli.Output({**report, "ok": False, "error": error}, text, exit_code=1)


if __name__ == "__main__":
    cli.run(p, handler)
