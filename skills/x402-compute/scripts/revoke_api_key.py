#!/usr/bin/env python3
"""Revoke a management API key, signed by your wallet. Anything using the key
stops working at once. Needs --yes when not at a terminal."""

from x402_compute import cli
from x402_compute.errors import ComputeError
from x402_compute.validate import api_key_id

p = cli.parser("revoke_api_key.py", __doc__, examples="python scripts/revoke_api_key.py 7b0e9c1d --yes")
p.add_argument("key_id", help="the key's id (from list_api_keys.py), not the key itself")
cli.add_yes(p, "revoke")


def handler(ctx: cli.Context) -> cli.Output:
    kid = api_key_id(ctx.args.key_id)
    try:  # only for the preview and the saved-key check; the DELETE decides
        key = next((k for k in ctx.client.list_api_keys() if isinstance(k, dict) and k.get("id") == kid), {})
    except ComputeError:
        key = {}
    preview = {"key_id": kid, "label": key.get("label"), "key_last4": key.get("key_last4"), "revoked_at": key.get("revoked_at")}
    ctx.confirm(f"Revoke API key {kid} ({preview['label'] or 'no label'}, …{preview['key_last4'] or '????'})? Scripts and agents using it will get 401 from now on.", details=preview)
    r = ctx.client.revoke_api_key(kid)
    data = {"revoked": True, **preview, "response": r}
    saved = ctx.state.saved_api_key()
    last4 = preview["key_last4"] or ""
    if saved and last4 and saved.endswith(last4):
        # Later scripts would keep sending the dead key; say where it is.
        data["warning"] = f"The saved key at {ctx.state.path('api_key')} ends in {last4} and may be this one; delete it if so."
        ctx.progress("warning: " + data["warning"])
    return cli.Output(data, f"revoked API key {kid}")


if __name__ == "__main__":
    cli.run(p, handler)
