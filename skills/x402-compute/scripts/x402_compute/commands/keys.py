"""Management API keys: create_api_key.py, list_api_keys.py, revoke_api_key.py (creating and
revoking need a wallet signature; the API shows a new key once)."""

from __future__ import annotations

from .. import cli
from ..errors import ComputeError
from ..validate import api_key_id, label


def create_api_key(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    name = label(a.label) if a.label is not None else None
    r = ctx.client.create_api_key(name)
    key = r.get("api_key")
    if not isinstance(key, str) or not key:
        raise ComputeError("The API answered without an api_key.", code="bad_response", details=sorted(r))
    data = {"id": r.get("id"), "label": r.get("label", name), "created_at": r.get("created_at"), "key_last4": key[-4:], "api_key": key if a.show else None, "saved_to": None}
    if a.save:
        data["replaced_saved_key"] = ctx.state.saved_api_key() is not None
        data["saved_to"] = str(ctx.state.save_api_key(key))
        ctx.progress(f"Saved the API key to {data['saved_to']} (mode 0600); scripts use it when COMPUTE_API_KEY is unset.")
    elif not a.show:
        data["warning"] = "The key was neither saved nor shown and cannot be retrieved again; revoke it with revoke_api_key.py and create another with --save or --show."
        ctx.progress("warning: " + data["warning"])
    text = f"API key {data['id']} (…{data['key_last4']}) created" + (f"\nsaved to {data['saved_to']}" if a.save else "") + (f"\nkey: {key}" if a.show else "")
    return cli.Output(data, text)


def list_api_keys(ctx: cli.Context) -> cli.Output:
    rows = [
        {"id": k.get("id"), "label": k.get("label"), "key_last4": k.get("key_last4"), "created_at": k.get("created_at"), "revoked_at": k.get("revoked_at"), "active": not k.get("revoked_at")}
        for k in ctx.client.list_api_keys()
        if isinstance(k, dict)
    ]
    if ctx.args.active:
        rows = [r for r in rows if r["active"]]
    text = cli.table(rows, [("id", "ID"), ("label", "LABEL"), ("key_last4", "LAST4"), ("created_at", "CREATED"), ("revoked_at", "REVOKED")])
    return cli.Output({"count": len(rows), "api_keys": rows}, text)


def revoke_api_key(ctx: cli.Context) -> cli.Output:
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
