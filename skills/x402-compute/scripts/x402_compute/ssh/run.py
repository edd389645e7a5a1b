"""Run one command on a machine over SSH, within bounds: the system ``ssh`` client when installed,
else asyncssh (imported only here, only when used).

What every run guarantees:
- the host key is checked against the instance's pin file (``hostkeys.py``) under its alias, and
  never updated by the client: ``StrictHostKeyChecking=yes`` / asyncssh's ``known_hosts``;
- no user or system ssh configuration is read (``-F /dev/null`` / ``config=[]``), every option is
  one this module chooses (no agent, X11 or port forwarding, no TTY, no ControlMaster, no
  passwords; the one key offered is the skill's own or ``--identity``: ``IdentitiesOnly=yes``,
  ``IdentityAgent=none``, no default key files / asyncssh ``agent_path=None``, explicit
  ``client_keys``), the host, port and user were validated by the caller, and the argv is a list:
  no shell ever sees a value the server sent;
- stdout and stderr are each kept up to ``cap`` bytes (the rest is read, counted and dropped);
- the command gets ``timeout`` seconds, connection included; then the client is stopped and the
  connection closed. A remote command that ignores its closed connection may keep running on
  the machine: wrap it in ``timeout N ...`` there for a hard limit.

The system client's own messages go to a private log file (``-E``), not to the command's
stderr, which is how a failure of ssh itself (exit 255 with a message) is told apart from a
command that exits 255.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ComputeError, PolicyError

DEFAULT_CAP = 64 * 1024
MAX_CAP = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 120.0
LOG_CAP = 2048
CONNECT_TIMEOUT = 15.0
CLIENTS = ("auto", "openssh", "python")
_CHUNK = 64 * 1024
# What the environment of the system ssh client keeps: where it finds the user's keys and agent.
# No SSH_AUTH_SOCK: the user's agent is never offered to a machine the API names.
_ENV_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SYSTEMROOT")


# -- where a connection may go -----------------------------------------------------------------

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def address_class(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` is no rented machine's public address (``loopback``, ``link-local``, ``private``,
    ``shared (CGNAT)``, ``multicast``, ``reserved``, ``unspecified``), or None for a global unicast
    one. IPv4 inside IPv6 (mapped ``::ffff:a.b.c.d``, 6to4, NAT64) is judged as the IPv4 it names."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if inner is not None:
            return address_class(inner)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT)"
    if any(ip.version == n.version and ip in n for n in _PRIVATE):
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


def loopback_base(base_url: str) -> bool:
    """Whether the API itself is on this machine (the sandbox): then its instances are too."""
    host = (urlsplit(base_url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return address_class(ipaddress.ip_address(host)) == "loopback"
    except ValueError:
        return False


def checked_address(host: str, port: int, *, base_url: str, allow_private: bool = False, resolve=None, what: str = "SSH") -> str:
    """The address to connect to for the server-sent ``host``, refused (``private_address``, exit 3)
    when it, or any address a name resolves to, is loopback, link-local, private, CGNAT, multicast,
    reserved or unspecified: a hostile API must not aim SSH (the model's command, the user's key), or
    ``what`` else connects to the instance (ai_chat's request), at this machine or the user's network. Allowed when the API base URL is itself loopback (the
    sandbox) or the human passed ``--allow-private-address``. A name is resolved once here and the
    checked address is what is connected to, so a second lookup cannot answer differently. No socket
    to the host is opened before this returns."""
    if allow_private or loopback_base(base_url):
        return host
    try:
        addrs = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = (resolve or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            raise ComputeError(f"Could not resolve the instance's address {host} ({type(e).__name__}).", code="ssh_unreachable", retryable=True,
                               details={"host": host}) from None
        addrs = []
        for info in infos:
            try:
                addrs.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
            except ValueError:
                continue
        if not addrs:
            raise ComputeError(f"The instance's address {host} resolves to nothing usable.", code="ssh_unreachable", retryable=True, details={"host": host})
    for ip in addrs:
        kind = address_class(ip)
        if kind is not None:
            shown = str(ip) if str(ip) == host else f"{host} ({ip})"
            raise PolicyError(
                f"The server gave {shown} as the instance's address, a {kind} address: refusing to connect there. A rented "
                f"machine has a public address; a hostile API could aim {what} at this computer or your own network. Nothing was sent to it.",
                code="private_address",
                details={"host": host, "address": str(ip), "class": kind},
                hint="Tell the human. Only if they know that address is their own machine do they run the command themselves with "
                "--allow-private-address (a human's decision, never an automatic retry).",
            )
    return str(addrs[0])


@dataclass(frozen=True)
class Target:
    host: str  # an IP address or DNS name (validated by the caller)
    port: int
    user: str  # a plain POSIX user name (validated by the caller)
    known_hosts: Path  # the instance's pin file
    alias: str  # the name the pins are filed under (HostKeyAlias)
    identity: Path | None = None  # the one private key file offered; None: none (no agent, no default keys)


class Capture:
    """The first ``cap`` bytes of a stream, and how many there were in all."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", "replace")


@dataclass
class Run:
    client: str  # "openssh" | "asyncssh"
    stdout: Capture
    stderr: Capture
    exit_status: int | None = None
    signal: str | None = None  # the remote signal's name, when the client reports it (asyncssh)
    timed_out: bool = False
    duration_s: float = 0.0
    failure: str | None = None  # ssh itself failed: "host_key" | "auth" | "connect" | "ssh"
    log: str = ""  # the client's own messages (capped; may quote the server)
    connected: bool = field(default=True)


def pick_client(name: str = "auto") -> str:
    """``openssh`` or ``python`` for ``name``; a ComputeError when that client is missing."""
    if name not in CLIENTS:
        raise ValueError(name)
    if name in ("auto", "openssh") and shutil.which("ssh"):
        return "openssh"
    if name in ("auto", "python"):
        if importlib.util.find_spec("asyncssh") is not None:
            return "python"
    raise ComputeError(
        "No SSH client is available" + (" (the system ssh client was asked for)." if name == "openssh" else "."),
        code="ssh_client_missing",
        hint="Install the OpenSSH client (e.g. apt-get install openssh-client) or the Python package asyncssh (pip install -r requirements.txt).",
    )


def run(client: str, target: Target, command: str, *, stdin: Path | None = None, timeout: float = DEFAULT_TIMEOUT, cap: int = DEFAULT_CAP) -> Run:
    return (run_openssh if client == "openssh" else run_asyncssh)(target, command, stdin=stdin, timeout=timeout, cap=cap)


# -- the system client ---------------------------------------------------------------------------


def _config_path(path: Path) -> str:
    """A file path as an ``ssh -o`` value: ``%`` doubled (ssh expands %-tokens in these options),
    and double-quoted when it holds a space or a quote (ssh splits option values like a shell)."""
    text = str(path).replace("%", "%%")
    if any(c.isspace() or c in "\"'\\" for c in text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def pin_options(known_hosts: Path, alias: str) -> list[tuple[str, str]]:
    """What makes the system client check the instance's pin and nothing else: the one place these
    options are built, for ssh_exec's runs and for the ``ssh`` block scripts print."""
    return [("StrictHostKeyChecking", "yes"), ("UserKnownHostsFile", _config_path(known_hosts)),
            ("GlobalKnownHostsFile", "/dev/null"), ("HostKeyAlias", alias)]


def login_argv(host: str, port: int, user: str, *, known_hosts: Path, alias: str, identity: Path | None = None, ssh: str = "ssh") -> list[str]:
    """The interactive login the scripts print (``ssh.argv``): the pin options, the key with
    IdentitiesOnly, then the port and ``user@host``. Host, port and user were validated by the caller."""
    argv = [ssh]
    for k, v in pin_options(known_hosts, alias):
        argv += ["-o", f"{k}={v}"]
    if identity is not None:
        argv += ["-i", str(identity).replace("%", "%%"), "-o", "IdentitiesOnly=yes"]  # ssh expands %-tokens in -i too
    return argv + ([] if port == 22 else ["-p", str(port)]) + [f"{user}@{host}"]


def openssh_argv(t: Target, command: str, *, log_file: Path, connect_timeout: float = CONNECT_TIMEOUT, ssh: str = "ssh") -> list[str]:
    opts = [
        ("BatchMode", "yes"),
        *pin_options(t.known_hosts, t.alias),
        ("UpdateHostKeys", "no"),
        ("CheckHostIP", "no"),
        ("ConnectTimeout", str(max(1, int(connect_timeout)))),
        ("ServerAliveInterval", "15"),
        ("ServerAliveCountMax", "3"),
        ("LogLevel", "ERROR"),
        ("ForwardAgent", "no"),
        ("ForwardX11", "no"),
        ("ClearAllForwardings", "yes"),
        ("PermitLocalCommand", "no"),
        ("ControlMaster", "no"),
        ("ControlPath", "none"),
        ("RequestTTY", "no"),
        ("PasswordAuthentication", "no"),
        ("KbdInteractiveAuthentication", "no"),
        # Only the skill's own key or the --identity given: no agent, no default key files.
        ("IdentityAgent", "none"),
        ("IdentitiesOnly", "yes"),
        ("IdentityFile", _config_path(t.identity) if t.identity is not None else "none"),
    ]
    argv = [ssh, "-F", "/dev/null", "-E", str(log_file), "-T"]
    for k, v in opts:
        argv += ["-o", f"{k}={v}"]
    # "--" ends ssh's options for good: nothing after the host (the command) is read as one.
    return argv + ["-p", str(t.port), "-l", t.user, "--", t.host, command]


def _classify(log: str) -> str:
    low = log.lower()
    if "host key verification failed" in low or "remote host identification has changed" in low or "host key for" in low:
        return "host_key"
    if "permission denied" in low or "too many authentication failures" in low:
        return "auth"
    if any(s in low for s in ("connection refused", "timed out", "no route to host", "could not resolve", "network is unreachable",
                               "connection closed", "connection reset", "kex_exchange_identification")):
        return "connect"
    return "ssh"


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_openssh(t: Target, command: str, *, stdin: Path | None = None, timeout: float = DEFAULT_TIMEOUT, cap: int = DEFAULT_CAP) -> Run:
    out, err = Capture(cap), Capture(cap)
    res = Run("openssh", out, err)
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    with tempfile.TemporaryDirectory(prefix="x402-ssh-") as tmp:  # 0700: the client's log is ours alone
        log_file = Path(tmp) / "ssh.log"
        argv = openssh_argv(t, command, log_file=log_file, connect_timeout=min(CONNECT_TIMEOUT, timeout), ssh=shutil.which("ssh") or "ssh")
        start = time.monotonic()
        deadline = start + timeout
        stdin_f = open(stdin, "rb") if stdin is not None else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(argv, stdin=stdin_f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
        finally:
            if stdin is not None:
                stdin_f.close()
        try:
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ, out)
            sel.register(proc.stderr, selectors.EVENT_READ, err)
            open_streams = 2
            while open_streams:
                left = deadline - time.monotonic()
                if left <= 0:
                    res.timed_out = True
                    break
                for key, _ in sel.select(min(left, 1.0)):
                    chunk = os.read(key.fd, _CHUNK)
                    if chunk:
                        key.data.feed(chunk)
                    else:
                        sel.unregister(key.fileobj)
                        open_streams -= 1
            sel.close()
            if not res.timed_out:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    res.timed_out = True
            if res.timed_out:
                _stop(proc)
        except BaseException:
            _stop(proc)
            raise
        finally:
            proc.stdout.close()
            proc.stderr.close()
        res.duration_s = round(time.monotonic() - start, 3)
        try:
            with open(log_file, "rb") as f:
                res.log = f.read(LOG_CAP).decode("utf-8", "replace").strip()
        except FileNotFoundError:
            res.log = ""
    if res.timed_out:
        return res
    rc = proc.returncode
    if rc == 255 and res.log:
        res.failure = _classify(res.log)
        res.connected = res.failure not in ("host_key", "auth", "connect")
    else:
        res.exit_status = rc
    return res


# -- the Python client ---------------------------------------------------------------------------


def run_asyncssh(t: Target, command: str, *, stdin: Path | None = None, timeout: float = DEFAULT_TIMEOUT, cap: int = DEFAULT_CAP) -> Run:
    import asyncio

    import asyncssh  # only a login pays for the import

    out, err = Capture(cap), Capture(cap)
    res = Run("asyncssh", out, err, connected=False)

    async def pump(stream, capture: Capture) -> None:
        while True:
            chunk = await stream.read(_CHUNK)
            if not chunk:
                return
            capture.feed(chunk)

    async def session() -> None:
        opts: dict = {
            "port": t.port,
            "username": t.user,
            "known_hosts": [str(t.known_hosts)],
            "host_key_alias": t.alias,
            "config": [],
            "connect_timeout": min(CONNECT_TIMEOUT, timeout),
            "password_auth": False,
            "kbdint_auth": False,
            "agent_forwarding": False,
            # Only the skill's own key or the --identity given: no agent, no default key files.
            "agent_path": None,
            "client_keys": [str(t.identity)] if t.identity is not None else [],
        }
        async with asyncssh.connect(t.host, **opts) as conn:
            res.connected = True
            proc = await conn.create_process(command, stdin=str(stdin) if stdin is not None else asyncssh.DEVNULL, encoding=None)
            await asyncio.gather(pump(proc.stdout, out), pump(proc.stderr, err))
            await proc.wait()
            res.exit_status = proc.exit_status if proc.exit_signal is None else None
            if proc.exit_signal is not None:
                res.signal = str(proc.exit_signal[0])

    start = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(session(), timeout))
    except asyncssh.HostKeyNotVerifiable as e:
        res.failure, res.log = "host_key", str(e)[:LOG_CAP]
    except asyncssh.PermissionDenied as e:
        res.failure, res.log = "auth", str(e)[:LOG_CAP]
    except (asyncio.TimeoutError, TimeoutError) as e:
        if res.connected:
            res.timed_out = True
        else:
            res.failure, res.log = "connect", f"no connection within {timeout:g} s ({type(e).__name__})"
    except OSError as e:
        res.failure, res.log = "connect", str(e)[:LOG_CAP]
    except (asyncssh.Error, ValueError, asyncssh.KeyImportError) as e:
        res.failure, res.log = ("connect" if not res.connected else "ssh"), str(e)[:LOG_CAP]
    res.duration_s = round(time.monotonic() - start, 3)
    if res.failure and res.connected and res.failure == "connect":
        res.failure = "ssh"
    return res
