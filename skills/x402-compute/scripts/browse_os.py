#!/usr/bin/env python3
"""Browse operating system images; the os_id goes to provision.py --os-id.

Images differ by provider: Vultr ids are small numbers (2284 = Ubuntu 24.04),
DigitalOcean ids are large provider image ids."""

from x402_compute import cli, plans

# DigitalOcean image ids are 9-digit numbers, Vultr's a few thousand: used only
# when the API's record carries no provider field.
_DO_ID_FLOOR = 1_000_000

p = cli.parser(
    "browse_os.py",
    __doc__,
    examples="python scripts/browse_os.py\npython scripts/browse_os.py --provider vultr --family ubuntu",
)
p.add_argument("--provider", choices=sorted(plans.PROVIDER_ALIASES), help="vultr or digitalocean (do)")
p.add_argument("--family", help="only images of this family (e.g. ubuntu, debian)")


def _provider(o: dict) -> str | None:
    if isinstance(o.get("provider"), str) and o["provider"]:
        return o["provider"].lower()
    oid = o.get("id")
    return None if not isinstance(oid, int) else ("digitalocean" if oid >= _DO_ID_FLOOR else "vultr")


def handler(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    want = plans.PROVIDER_ALIASES.get(a.provider or "")
    rows = [
        {"id": o.get("id"), "name": o.get("name"), "family": o.get("family"), "arch": o.get("arch"), "provider": _provider(o)}
        for o in ctx.client.os_options()
        if isinstance(o, dict)
    ]
    if want:
        rows = [r for r in rows if r["provider"] == want]
    if a.family:
        rows = [r for r in rows if a.family.lower() in str(r["family"] or "").lower()]
    text = cli.table(rows, [("id", "OS ID"), ("name", "NAME"), ("family", "FAMILY"), ("arch", "ARCH"), ("provider", "PROVIDER")])
    return cli.Output({"count": len(rows), "os_options": rows}, text)


if __name__ == "__main__":
    cli.run(p, handler)
