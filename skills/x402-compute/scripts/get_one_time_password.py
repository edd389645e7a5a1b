#!/usr/bin/env python3
"""Reveal an instance's one-time root password (Vultr instances created without
an SSH key). The API reveals it exactly once: it is written to a 0600 file in
your state directory and only the file's path is printed (--show to print it).
"""

from x402_compute import cli
from x402_compute.errors import ComputeError, Conflict
from x402_compute.instances import public_ip, ssh_block
from x402_compute.validate import instance_id

p = cli.parser(
    "get_one_time_password.py",
    __doc__,
    examples="python scripts/get_one_time_password.py 3f1c2a9e-0000-4000-8000-000000000001\npython scripts/get_one_time_password.py 3f1c2a9e-0000-4000-8000-000000000001 --show",
)
p.add_argument("instance_id", help="the instance UUID (from list_instances.py)")
p.add_argument("--show", action="store_true", help="also print the password on stdout")


def handler(ctx: cli.Context) -> cli.Output:
    iid = instance_id(ctx.args.instance_id)
    saved = ctx.state.path("credentials", f"{iid}.txt")
    try:
        body = ctx.client.reveal_password(iid)
    except Conflict as e:
        where = f"the file from the first call is at {saved}" if saved.exists() else f"the file from the first call would be at {saved}, if it was made here"
        e.code = "password_already_revealed"
        e.message = f"The one-time password was already revealed; it cannot be shown again: {where}."
        e.hint = "Use the saved file; without it, redeploy the instance, or provision the next one with an SSH key (--ssh-key-file)."
        e.details = {"credentials_file": str(saved) if saved.exists() else None, "server": e.details}
        raise
    access = body.get("access") if isinstance(body.get("access"), dict) else body
    user, ip, password = access.get("username") or "root", public_ip(access), access.get("password")
    if not password:
        raise ComputeError("The API answered without a password.", code="bad_response", details=sorted(access))
    path = ctx.state.save_credentials(iid, f"username={user}\nip={ip}\npassword={password}\n")
    ctx.progress(f"Saved the one-time password to {path} (mode 0600). It cannot be fetched again.")
    # The reveal answer has no SSH port (the sandbox's machines are not on 22): take the ssh
    # block from the instance itself. The password is already saved, so a failure here is harmless.
    try:
        ssh = ssh_block(ctx.client.get_instance(iid))
    except ComputeError:
        ssh = None
    if ssh is None and ip:
        ssh = ssh_block({"ip_address": ip})
    if ssh:
        ssh = {**{k: v for k, v in ssh.items() if k != "note"}, "auth": "password"}  # the note says to run this script
    data = {"instance_id": iid, "username": user, "ip": ip, "credentials_file": str(path), "ssh": ssh, "password": password if ctx.args.show else None}
    text = f"credentials saved to {path}\nssh: {ssh['command'] if ssh else f'{user}@{ip}'}" + (f"\npassword: {password}" if ctx.args.show else "")
    return cli.Output(data, text)


if __name__ == "__main__":
    cli.run(p, handler)
