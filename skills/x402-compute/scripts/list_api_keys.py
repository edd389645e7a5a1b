#!/usr/bin/env python3
"""List your management API keys (last four characters only; the API never returns full keys)."""

from x402_compute import cli

p = cli.parser("list_api_keys.py", __doc__, examples="python scripts/list_api_keys.py\npython scripts/list_api_keys.py --active")
p.add_argument("--active", action="store_true", help="hide revoked keys")


def handler(ctx: cli.Context) -> cli.Output:
    rows = [
        {"id": k.get("id"), "label": k.get("label"), "key_last4": k.get("key_last4"), "created_at": k.get("created_at"), "revoked_at": k.get("revoked_at"), "active": not k.get("revoked_at")}
        for k in ctx.client.list_api_keys()
        if isinstance(k, dict)
    ]
    if ctx.args.active:
        rows = [r for r in rows if r["active"]]
    text = cli.table(rows, [("id", "ID"), ("label", "LABEL"), ("key_last4", "LAST4"), ("created_at", "CREATED"), ("revoked_at", "REVOKED")])
    return cli.Output({"count": len(rows), "api_keys": rows}, text)


if __name__ == "__main__":
    cli.run(p, handler)
