"""wait_for_instance (an MCP tool): block until an existing instance is usable, as ``provision.py
--wait`` does after paying. The waiting itself is ``ssh/wait.py``."""

from __future__ import annotations

import argparse

from .. import cli
from ..cli import Output
from ..instances import detail
from ..ssh import run as sshrun
from ..ssh import wait as waiting
from ..validate import instance_id


def wait_for_instance_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "wait_for_instance",
        "Block until an instance is running with a public IP and, with --wait-ssh, until its SSH port answers "
        "with an SSH banner and its host key is pinned; prints the instance as instance_details.py does. Never pays: the machine is "
        "already paid for, and a timeout (exit 5) leaves it running until expires_at.",
    )
    p.add_argument("instance_id", help="the instance UUID (from provision or list_instances.py)")
    p.add_argument("--wait-ssh", action="store_true", help="also wait until SSH answers with a banner, and pin its host key (exit 3 if it is not the published or pinned one)")
    p.add_argument("--wait-timeout", type=float, default=waiting.DEFAULT_TIMEOUT, metavar="SECONDS", help="give up waiting after this long (default 600)")
    p.add_argument("--poll-interval", type=float, default=waiting.DEFAULT_INTERVAL, metavar="SECONDS", help="seconds between status checks (default 5)")
    return p


def wait_for_instance(ctx) -> Output:
    a = ctx.args
    iid = instance_id(a.instance_id)
    waiting.check_wait_options(a)
    ctx.progress(f"Waiting for {iid} (timeout {a.wait_timeout:g} s)")
    host_key: dict = {}
    # An MCP tool: never --allow-private-address (the human's flag): a private address is refused
    # unless the API itself is on this machine.
    order, banner = waiting.wait_for_instance(ctx.client, iid, timeout=a.wait_timeout, interval=a.poll_interval, ssh=a.wait_ssh, progress=ctx.progress,
                                      sleep=ctx.sleep, pinned=host_key.update,
                                      address_check=lambda h, p: sshrun.checked_address(h, p, base_url=ctx.settings.base_url))
    d = detail(order)
    if banner and d["ssh"]:
        d["ssh"]["banner"] = banner
    ssh = d["ssh"]
    return Output({"instance": d, **({"host_key": host_key} if host_key else {})}, f"instance {iid}: {d['state']} at {d['ip']}" + (f"\nssh: {ssh['command']}" if ssh else ""))
