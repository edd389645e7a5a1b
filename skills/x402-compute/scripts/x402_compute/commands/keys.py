"""Management API keys: create_api_key.py, list_api_keys.py, revoke_api_key.py (creating and
revoking need a wallet signature; the API shows a new key once)."""

from __future__ import annotations

import argparse

from .. import cli, cmdline
from ..errors import ComputeError, PolicyError, UsageError
from ..instances import iso, parse_time
from ..validate import api_key_id, label


def _saved_key_in_the_way(ctx: cli.Context) -> dict | None:
    """The key ``--save`` would replace (``{"id", "last4", "file"}``), or None when none is saved.

    Replacing it is the human's decision (``--replace-saved-key``, never an MCP tool input): the
    key stays valid on the server but this machine would no longer have it. Checked before the
    key is created, so a refusal leaves no key on the server that nobody holds."""
    saved = ctx.state.saved_api_key()
    if saved is None:
        return None
    old = {"id": ctx.state.saved_api_key_id(), "last4": saved[-4:], "file": str(ctx.state.path("api_key"))}
    if ctx.args.replace_saved_key:
        return old
    raise PolicyError(
        f"An API key is already saved in {old['file']} (id {old['id'] or 'unknown'}, ...{old['last4']}) and later calls use it; "
        "--save would replace it and this machine would lose it (it stays valid on the server). Nothing was created.",
        code="saved_key_exists",
        details={"saved_key_file": old["file"], "saved_key_id": old["id"], "saved_key_last4": old["last4"]},
        hint="There is no need for another key: the saved one is used. Replacing it is the human's decision only: ask the human to "
        f"run {cmdline.command('create_api_key.py', '--save', '--replace-saved-key')} themselves (the output names the replaced key's id, to revoke it).",
    )


def create_api_key(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    name = label(a.label) if a.label is not None else None
    if a.replace_saved_key and not a.save:
        raise UsageError("--replace-saved-key goes with --save.",
                         hint=f"It is the human's decision only: the human runs {cmdline.command('create_api_key.py', '--save', '--replace-saved-key')}.")
    replacing = _saved_key_in_the_way(ctx) if a.save else None
    r = ctx.client.create_api_key(name)
    key = r.get("api_key")
    if not isinstance(key, str) or not key:
        raise ComputeError("The API answered without an api_key.", code="bad_response", details=sorted(r))
    data = {"id": r.get("id"), "label": r.get("label", name), "created_at": r.get("created_at"), "key_last4": key[-4:], "api_key": key if a.show else None, "saved_to": None}
    if a.save:
        kid = r.get("id") if isinstance(r.get("id"), str) else None
        try:
            kid = api_key_id(kid) if kid else None
        except ComputeError:
            kid = None  # a malformed id from the server is not written anywhere
        try:
            data["saved_to"] = str(ctx.state.save_api_key(key, kid, replace=replacing is not None))
        except ComputeError as e:
            if e.code != "file_exists":
                raise
            # Another run saved a key between the check and now: that one is kept, this one is not shown.
            raise ComputeError(
                f"Another run saved an API key in {ctx.state.path('api_key')} while this one was created; that key was kept. "
                f"The new key {data['id']} (...{data['key_last4']}) was not saved and cannot be shown again.",
                code="saved_key_exists",
                details={"created_key_id": data["id"], "created_key_last4": data["key_last4"]},
                hint=(f"Revoke the unsaved key (after showing the human): {cmdline.command('revoke_api_key.py', kid, '--yes')}." if kid else
                      "Revoke the unsaved key (after showing the human) with revoke_api_key.py; list_api_keys.py shows its id."),
            ) from None
        data["replaced_saved_key"] = replacing is not None
        data["replaced_saved_key_id"] = replacing["id"] if replacing else None
        data["replaced_saved_key_last4"] = replacing["last4"] if replacing else None
        ctx.progress(f"Saved the API key to {data['saved_to']} (mode 0600); scripts use it when COMPUTE_API_KEY is unset.")
        if replacing:
            data["warning"] = (f"The previously saved key (id {replacing['id'] or 'unknown'}, ...{replacing['last4']}) was replaced and is no longer on "
                               "this machine; it stays valid on the server: revoke it with revoke_api_key.py if nothing else uses it.")
            ctx.progress("warning: " + data["warning"])
    elif not a.show:
        data["warning"] = "The key was neither saved nor shown and cannot be retrieved again; revoke it with revoke_api_key.py and create another with --save or --show."
        ctx.progress("warning: " + data["warning"])
    text = f"API key {data['id']} (…{data['key_last4']}) created" + (f"\nsaved to {data['saved_to']}" if a.save else "") + (f"\nkey: {key}" if a.show else "")
    if data.get("replaced_saved_key"):
        text += f"\n{data['warning']}"
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


def _revoked_at(ctx, kid: str, answer: dict) -> str | None:
    """The revocation time: the DELETE's answer when it carries one, else the key's record read
    back (the hosted API answers "API key revoked" without a time); None when neither says."""
    when = parse_time(answer.get("revoked_at")) if isinstance(answer, dict) else None
    if when is None:
        try:
            rec = next((k for k in ctx.client.list_api_keys() if isinstance(k, dict) and k.get("id") == kid), {})
        except ComputeError:
            rec = {}
        when = parse_time(rec.get("revoked_at"))
    return iso(when) if when else None


def revoke_api_key(ctx: cli.Context) -> cli.Output:
    kid = api_key_id(ctx.args.key_id)
    try:  # only for the preview and the saved-key check; the DELETE decides
        key = next((k for k in ctx.client.list_api_keys() if isinstance(k, dict) and k.get("id") == kid), {})
    except ComputeError:
        key = {}
    preview = {"key_id": kid, "label": key.get("label"), "key_last4": key.get("key_last4"), "revoked_at": key.get("revoked_at")}
    ctx.confirm(f"Revoke API key {kid} ({preview['label'] or 'no label'}, …{preview['key_last4'] or '????'})? Scripts and agents using it will get 401 from now on.", details=preview)
    r = ctx.client.revoke_api_key(kid)
    data = {"revoked": True, **preview, "revoked_at": _revoked_at(ctx, kid, r), "saved_key_removed": False, "saved_key_path": None, "response": r}
    last4 = preview["key_last4"] if isinstance(preview["key_last4"], str) else ""
    saved, saved_id = ctx.state.saved_api_key(), ctx.state.saved_api_key_id()
    # The saved key is this one when its recorded id says so, or (saved before ids were kept) its
    # last four characters match; a saved key with another id is another key.
    if saved and (saved_id == kid or (saved_id is None and last4 and saved.endswith(last4))):
        data["saved_key_path"] = str(ctx.state.remove_saved_api_key())
        data["saved_key_removed"] = True
        ctx.progress(f"Removed the saved key {data['saved_key_path']} (it was this one); later scripts sign with the wallet.")
    env_key = ctx.settings.api_key if ctx.settings.api_key_source in ("COMPUTE_API_KEY", "COMPUTE_API_KEY_FILE") else None
    if env_key and last4 and env_key.endswith(last4):
        data["warning"] = f"{ctx.settings.api_key_source} ends in {last4} and may be this key: unset it, or requests will be refused."
        ctx.progress("warning: " + data["warning"])
    text = f"revoked API key {kid}" + (f" at {data['revoked_at']}" if data["revoked_at"] else "")
    if data["saved_key_removed"]:
        text += f"\nremoved the saved key {data['saved_key_path']}"
    return cli.Output(data, text)


# -- create_api_key.py: its parser (the script and the MCP server both build it here) ------

CREATE_API_KEY_HELP = """Create a management API key (x402c_...), signed by your wallet. The API shows
the key once: --save stores it in a 0600 file that later scripts use
automatically (when COMPUTE_API_KEY is unset); --show prints it. Otherwise
only its last four characters are printed. With a key already saved, --save
refuses (nothing is created) unless the human adds --replace-saved-key.
"""


def create_api_key_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "create_api_key.py",
        CREATE_API_KEY_HELP,
        examples='python scripts/create_api_key.py --label "my-agent" --save\npython scripts/create_api_key.py --label ci --show',
    )
    p.add_argument("--label", help="a name to recognise the key by")
    p.add_argument("--save", action="store_true", help="store the key in the state directory (mode 0600) for later scripts")
    p.add_argument("--show", action="store_true", help="print the full key on stdout (it cannot be shown again)")
    p.add_argument("--replace-saved-key", action="store_true",
                   help="the human's decision only: with --save, replace a key already saved here (without it, --save refuses, "
                        "exit 3 saved_key_exists, before any key is created); the replaced key's id is printed so it can be revoked")
    return p


# -- list_api_keys.py: its parser (the script and the MCP server both build it here) ------

LIST_API_KEYS_HELP = """List your management API keys (last four characters only; the API never returns full keys)."""


def list_api_keys_parser() -> argparse.ArgumentParser:
    p = cli.parser("list_api_keys.py", LIST_API_KEYS_HELP, examples="python scripts/list_api_keys.py\npython scripts/list_api_keys.py --active")
    p.add_argument("--active", action="store_true", help="hide revoked keys")
    return p


# -- revoke_api_key.py: its parser (the script and the MCP server both build it here) ------

REVOKE_API_KEY_HELP = """Revoke a management API key, signed by your wallet. Anything using the key
stops working at once. Needs --yes when not at a terminal."""


def revoke_api_key_parser() -> argparse.ArgumentParser:
    p = cli.parser("revoke_api_key.py", REVOKE_API_KEY_HELP, examples="python scripts/revoke_api_key.py 7b0e9c1d --yes")
    p.add_argument("key_id", help="the key's id (from list_api_keys.py), not the key itself")
    cli.add_yes(p, "revoke")
    return p
