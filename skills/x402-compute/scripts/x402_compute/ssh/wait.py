"""``--wait``: block until a paid instance is usable; also the loop of the ``wait_for_instance``
command (``commands/wait.py``), the same wait without a payment before it.

"Running" is the normalised state from ``instances.py`` *and* a real IP (the API shows
0.0.0.0 until the provider has booted the machine). With ``--wait-ssh``, also until the
SSH port answers with an SSH banner (``SSH-``), which is what "usable" means to a user:
a TCP accept alone can come from a half-booted machine or a provider's proxy. Then the
host key: a key-exchange-only probe (``ssh-keyscan``, else asyncssh; no login) reads the key
the machine presents and ``hostkeys.py`` pins it, so this check and every later login
(``ssh_exec.py``) agree on the machine's identity: it must match what the API publishes at
first contact, and the pin afterwards (else exit 3, ``host_key_mismatch`` / ``host_key_changed``).

Polling backs off: the first check is immediate, then 1 s, 2 s, 4 s ... up to the poll
interval, starting again at 1 s whenever the state moves on, so a machine that is ready in
20 s is seen within about a second or two of it rather than up to a whole interval later.

Progress goes to stderr. A timeout raises WaitTimeout (exit 5) carrying the instance id
and expires_at, because the machine exists and is paid for.
"""

from __future__ import annotations

import socket
import time
from typing import Callable

from .. import cmdline
from ..errors import ApiError, ComputeError, NetworkError, NotFound, UsageError, WaitTimeout
from ..instances import normalized_state, public_ip
from . import hostkeys
from .hostkeys import published

BANNER_PREFIX = b"SSH-"
DEFAULT_TIMEOUT = 600.0
DEFAULT_INTERVAL = 5.0
MIN_INTERVAL = 0.1  # a zero interval would poll the API in a tight loop
FIRST_INTERVAL = 1.0  # the first pause; doubled up to the poll interval


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


def check_wait_options(a) -> None:
    """--wait-timeout and --poll-interval, checked before anything is sent (provision checks them
    before it pays: a zero interval would poll the API in a tight loop after the payment)."""
    if not a.wait_timeout > 0:
        raise UsageError("--wait-timeout must be a positive number of seconds.")
    if not a.poll_interval >= MIN_INTERVAL:
        raise UsageError(f"--poll-interval must be at least {MIN_INTERVAL} seconds.")


def backoff(interval: float, first: float = FIRST_INTERVAL):
    """Pauses between polls: ``first``, doubling, capped at ``interval`` (never above it)."""
    pause = min(first, interval)
    while True:
        yield pause
        pause = min(pause * 2, interval)


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
    host_keys=None,
    scan=None,
    pinned: Callable[[dict], None] | None = None,
    address_check: Callable[[str, int], str] | None = None,
) -> tuple[dict, str | None]:
    """(the running order, the SSH banner or None). Raises WaitTimeout.

    With ``ssh``, the host key is pinned too (``host_keys``: a ``hostkeys.HostKeys``, by default
    the client's state folder; ``scan``: the key probe, by default ssh-keyscan or asyncssh);
    ``pinned`` receives the ``host_key`` block. ``address_check(host, port)`` returns the address
    to connect to, or raises (``ssh.run.checked_address``): it runs before any socket to the host."""
    deadline = clock() + timeout
    order: dict = {"id": instance_id}
    last_state = None
    pauses = backoff(interval)
    key_check = _KeyCheck(client, instance_id, host_keys, scan, progress) if ssh else None
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
            if last_state is not None:
                pauses = backoff(interval)  # it moved on: look again soon
            last_state = state
        if state in ("destroyed", "expired", "suspended"):
            raise ComputeError(f"Instance {instance_id} is {state}; it will not become usable.", code="instance_unusable", details={"instance_id": instance_id, "state": state})
        if state == "running" and ip:
            if not ssh:
                return order, None
            port = int(order.get("ssh_port") or 22)
            if address_check is not None:
                ip = address_check(ip, port)
            line = banner(ip, port)
            if line:
                block = key_check(order, ip, port)
                if block is not None:
                    progress(f"SSH answers on {ip}:{port}: {line}")
                    if pinned is not None and block:
                        pinned(block)
                    return order, line
        remaining = deadline - clock()
        if remaining <= 0:
            what = "an SSH banner and host key" if (state == "running" and ip) else "the running state"
            raise WaitTimeout(
                f"Timed out after {timeout:g} s waiting for {what} on instance {instance_id} (now {state}). The machine exists and is paid for.",
                details={"instance_id": instance_id, "state": state, "ip": ip, "expires_at": order.get("expires_at")},
                hint=f"Check again later with {cmdline.command('instance_details.py', instance_id)}; it stays paid until expires_at.",
            )
        sleep(min(next(pauses), max(remaining, 0.05)))


class _KeyCheck:
    """Once SSH answers: read the key the machine presents and pin it (hostkeys.py). Returns the
    ``host_key`` block, ``{}`` when no probe is available (banner only, said on stderr), or None
    while the key exchange does not complete (keep waiting)."""

    def __init__(self, client, instance_id: str, host_keys, scan, progress) -> None:
        self.instance_id = instance_id
        self.keys = host_keys if host_keys is not None else hostkeys.HostKeys(client.settings.state_dir)
        self.scan = scan if scan is not None else hostkeys.scanner()
        self.progress = progress
        self.warned = False

    def __call__(self, order: dict, ip: str, port: int) -> dict | None:
        if self.scan is None:
            if not self.warned:
                self.progress("warning: neither ssh-keyscan nor asyncssh is installed: the host key was not read or pinned")
                self.warned = True
            return {}
        presented = self.scan(ip, port, key_type=published(order).type)
        if not presented:
            self.progress(f"SSH answers on {ip}:{port} but the key exchange did not complete yet")
            return None
        block = self.keys.check(self.instance_id, order, presented)
        self.progress(f"host key {block['fingerprint']} ({block['type']}): {block['status']}, verified by {block['verified_by']}")
        return block
