#!/usr/bin/env python3
"""Create a management API key (x402c_...), signed by your wallet. The API shows
the key once: --save stores it in a 0600 file that later scripts use
automatically (when COMPUTE_API_KEY is unset); --show prints it. Otherwise
only its last four characters are printed.
"""

from x402_compute import cli
from x402_compute.errors import ComputeError
from x402_compute.validate import label

p = cli.parser(
    "create_api_key.py",
    __doc__,
    examples='python scripts/create_api_key.py --label "my-agent" --save\npython scripts/create_api_key.py --label ci --show',
)
p.add_argument("--label", help="a name to recognise the key by")
p.add_argument("--save", action="store_true", help="store the key in the state directory (mode 0600) for later scripts")
p.add_argument("--show", action="store_true", help="print the full key on stdout (it cannot be shown again)")


def handler(ctx: cli.Context) -> cli.Output:
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


if __name__ == "__main__":
    cli.run(p, handler)
