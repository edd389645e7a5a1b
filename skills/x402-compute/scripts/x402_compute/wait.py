"""``--wait``: block until a paid instance is usable; also the ``wait_for_instance`` command of the
MCP server (``parser`` and ``handler`` below), the same loop without a payment before it.

"Running" is the normalised state from ``instances.py`` *and* a real IP (the API shows
0.0.0.0 until the provider has booted the machine). With ``--wait-ssh``, also until the
SSH port answers with an SSH banner (``SSH-``), which is what "usable" means to a user:
a TCP accept alone can come from a half-booted machine or a provider's proxy.

Progress goes to stderr. A timeout raises WaitTimeout (exit 5) carrying the instance id
and expires_at, because the machine exists and is paid for.
"""

from __future__ import annotations

import socket
import time
from typing import Callable

from .errors import ApiError, ComputeError, NetworkError, NotFound, WaitTimeout
from .instances import normalized_state, public_ip

BANNER_PREFIX = b"SSH-"
DEFAULT_TIMEOUT = 600.0
DEFAULT_INTERVAL = 5.0
MIN_INTERVAL = 0.1  # a zero interval would poll the API in a tight loop


def ssh_banner(host: str, port: int, timeout: float = 3.0) -> str | None:
    """The server's identification line (RFC 4253 §4.2) if it starts with ``SSH-``, else None.

    Servers may send other lines before the version line, so read up to 1 KiB of lines."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            buf = b""
            while len(buf) < 1024:
                chunk = s.recv(256)
                if not chunk:
                    break
                buf += chunk
                *lines, buf_tail = buf.split(b"\n")
                for line in lines:
                    if line.startswith(BANNER_PREFIX):
                        return line.rstrip(b"\r").decode("ascii", "replace")
            return None
    except OSError:
        return None


def wait_for_instance(
    client,
    instance_id: str,
    *,
    timeout: float = 600.0,
    interval: float = 5.0,
    ssh: bool = False,
    progress: Callable[[str], None] = lambda m: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    banner: Callable[[str, int], str | None] = ssh_banner,
) -> tuple[dict, str | None]:
    """(the running order, the SSH banner or None). Raises WaitTimeout."""
    deadline = clock() + timeout
    order: dict = {"id": instance_id}
    last_state = None
    while True:
        try:
            order = client.get_instance(instance_id) or order
        except (NetworkError, NotFound) as e:  # a new order may not be readable yet; keep polling
            progress(f"waiting: {e.message}")
        except ApiError as e:
            if e.retryable:
                progress(f"waiting: {e.message}")
            else:
                raise
        state = normalized_state(order)
        ip = public_ip(order)
        if state != last_state:
            progress(f"instance {instance_id}: {state}" + (f" at {ip}" if ip else ""))
            last_state = state
        if state in ("destroyed", "expired", "suspended"):
            raise ComputeError(f"Instance {instance_id} is {state}; it will not become usable.", code="instance_unusable", details={"instance_id": instance_id, "state": state})
        if state == "running" and ip:
            if not ssh:
                return order, None
            port = int(order.get("ssh_port") or 22)
            line = banner(ip, port)
            if line:
                progress(f"SSH answers on {ip}:{port}: {line}")
                return order, line
        remaining = deadline - clock()
        if remaining <= 0:
            what = "an SSH banner" if (state == "running" and ip) else "the running state"
            raise WaitTimeout(
                f"Timed out after {timeout:g} s waiting for {what} on instance {instance_id} (now {state}). The machine exists and is paid for.",
                details={"instance_id": instance_id, "state": state, "ip": ip, "expires_at": order.get("expires_at")},
                hint=f"Check again later with instance_details.py {instance_id}; it stays paid until expires_at.",
            )
        sleep(min(interval, max(remaining, 0.05)))


# -- the command: wait for an existing instance -------------------------------------------------


def parser():
    from .cli import parser as make

    p = make(
        "wait_for_instance",
        "Block until an instance is running with a public IP and, with --wait-ssh, until its SSH port answers "
        "with an SSH banner; prints the instance as instance_details.py does. Never pays: the machine is "
        "already paid for, and a timeout (exit 5) leaves it running until expires_at.",
    )
    p.add_argument("instance_id", help="the instance UUID (from provision or list_instances.py)")
    p.add_argument("--wait-ssh", action="store_true", help="also wait until SSH answers with a banner")
    p.add_argument("--wait-timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS", help="give up waiting after this long (default 600)")
    p.add_argument("--poll-interval", type=float, default=DEFAULT_INTERVAL, metavar="SECONDS", help="seconds between status checks (default 5)")
    return p


def handler(ctx):
    from .cli import Output
    from .errors import UsageError
    from .instances import detail
    from .validate import instance_id

    a = ctx.args
    iid = instance_id(a.instance_id)
    if not a.wait_timeout > 0:
        raise UsageError("--wait-timeout must be a positive number of seconds.")
    if not a.poll_interval >= MIN_INTERVAL:
        raise UsageError(f"--poll-interval must be at least {MIN_INTERVAL} seconds.")
    ctx.progress(f"Waiting for {iid} (timeout {a.wait_timeout:g} s)")
    order, banner = wait_for_instance(ctx.client, iid, timeout=a.wait_timeout, interval=a.poll_interval, ssh=a.wait_ssh, progress=ctx.progress, sleep=ctx.sleep)
    d = detail(order)
    if banner and d["ssh"]:
        d["ssh"]["banner"] = banner
    ssh = d["ssh"]
    return Output({"instance": d}, f"instance {iid}: {d['state']} at {d['ip']}" + (f"\nssh: {ssh['command']}" if ssh else ""))
