"""Real SSH servers for the emulated instances (asyncssh), one per active instance, on loopback.

Each instance listens on its own loopback address (127.0.x.y) and port. The listening socket is
bound at once (so the address and port are known and a client's connection waits in the backlog),
but asyncssh is imported and the server started only when the first connection arrives: a sandbox
whose instances nobody logs into pays nothing for SSH.

What a login gets:
    user        `root` only (what the hosted service's instances use); commands run as the
                sandbox's own OS user, never as root
    auth        the public key given at provision; the one-time password once it was revealed
                (Vultr); a connection from another local OS user is refused (Linux, /proc/net/tcp)
    host key    ed25519, generated per instance, kept in the instance folder (0600) so a restart
                keeps it; `rekey` replaces it (the test-only `ssh/restart` route)
    sessions    exec requests and a shell, with or without a PTY; no port, agent or X11
                forwarding, no subsystems (sftp)
    folder      `<state-dir>/instances/<id>/home` (0700) is the working folder and HOME
    environment a fresh minimal one (PATH, HOME, USER, LOGNAME, SHELL, LANG, TERM with a PTY):
                nothing of the sandbox's own environment leaks into a command
    bounds      each session (a command or a shell) is killed, with its process group, after
                `time_limit` seconds (exit status 124) or once it has written more than
                `output_limit` bytes to stdout and stderr together (exit status 125); a notice goes
                to stderr. At most `max_sessions` sessions per instance at once.

`close` (destroy, expiry, a DigitalOcean resize) stops the listener, ends every connection and
kills every process of the instance before it returns.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import pwd
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from .server import listen_loopback

LOGIN_USER = "root"
HOST_KEY_FILE = "ssh_host_ed25519_key"
HOST_KEY_TYPE = "ssh-ed25519"
SERVER_VERSION = "x402sandbox"          # the banner is "SSH-2.0-x402sandbox"
EXIT_TIME_LIMIT = 124
EXIT_OUTPUT_LIMIT = 125
DEFAULT_TIME_LIMIT = 600.0
DEFAULT_OUTPUT_LIMIT = 8 * 1024 * 1024
DEFAULT_MAX_SESSIONS = 8
LOGIN_TIMEOUT = 30.0
_CHUNK = 64 * 1024


def _private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def ensure_dir(path: str) -> str:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class HostKey:
    path: str
    public_line: str        # "ssh-ed25519 AAAA..." (authorized_keys / known_hosts form)

    @property
    def key_type(self) -> str:
        return self.public_line.split(" ", 1)[0]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_line)


def fingerprint(public_line: str) -> str:
    """OpenSSH's `SHA256:<base64 without padding>` of the public key blob."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def host_key(folder: str, *, new: bool = False) -> HostKey:
    """The instance's ed25519 host key in `folder` (OpenSSH private key format, 0600); created when
    absent or when `new`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    path = os.path.join(ensure_dir(folder), HOST_KEY_FILE)
    key = None
    if not new and os.path.exists(path):
        with open(path, "rb") as fh:
            try:
                key = serialization.load_ssh_private_key(fh.read(), password=None)
            except ValueError:
                key = None   # unreadable: replace it, as a machine would regenerate a broken key
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        key = ed25519.Ed25519PrivateKey.generate()
        _private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                         serialization.NoEncryption()))
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return HostKey(path, pub.decode())


def peer_uid(local: tuple, peer: tuple) -> Optional[int]:
    """The uid owning the client end of an IPv4 loopback TCP connection, from /proc/net/tcp, or None
    when the kernel does not say (not Linux, or the entry is not listed)."""
    def enc(addr: tuple) -> str:
        return socket.inet_aton(addr[0])[::-1].hex().upper() + ":" + f"{addr[1]:04X}"

    want_local, want_remote = enc(peer), enc(local)
    try:
        with open("/proc/net/tcp") as fh:
            next(fh, None)
            for line in fh:
                f = line.split()
                if len(f) > 7 and f[1] == want_local and f[2] == want_remote:
                    return int(f[7])
    except (OSError, ValueError):
        return None
    return None


def _login_shell() -> tuple[str, str]:
    try:
        pw = pwd.getpwuid(os.getuid())
        name, shell = pw.pw_name, pw.pw_shell
    except KeyError:
        name, shell = str(os.getuid()), ""
    if not shell or not os.access(shell, os.X_OK) or shell.endswith(("nologin", "false")):
        shell = "/bin/sh"
    return name, shell


@dataclass
class InstanceSpec:
    """What one instance's server needs; the callables are called on the SSH thread."""
    instance_id: str
    folder: str                                  # <state-dir>/instances/<id>
    authorized_key: Optional[str]                # the OpenSSH public key line given at provision
    check_password: Optional[Callable[[str], bool]] = None

    @property
    def home(self) -> str:
        return os.path.join(self.folder, "home")


class _Limit(Exception):
    def __init__(self, status: int, notice: str):
        super().__init__(notice)
        self.status, self.notice = status, notice


class _Instance:
    """One instance's listener, connections and running processes (all touched on the SSH loop)."""

    def __init__(self, owner: "SshServers", spec: InstanceSpec, sock: socket.socket, key: HostKey):
        self.owner, self.spec, self.sock, self.key = owner, spec, sock, key
        self.acceptor = None
        self.armed = False
        self.closed = False
        self.conns: set = set()
        self.procs: set = set()        # asyncio subprocesses (each leads its own process group)
        self.sessions = 0

    # --- lifecycle (loop thread) ----------------------------------------------------------------
    def arm(self) -> None:
        if self.closed:
            return
        self.armed = True
        self.owner.loop.add_reader(self.sock.fileno(), self._first_connection)

    def _first_connection(self) -> None:
        self.owner.loop.remove_reader(self.sock.fileno())
        self.armed = False
        self.owner.loop.create_task(self._start())

    async def _start(self) -> None:
        import asyncssh   # ~0.4 s the first time, paid only once someone connects

        logging.getLogger("asyncssh").setLevel(logging.DEBUG if self.owner.verbose else logging.CRITICAL)
        if self.closed:
            return
        authorized = None
        if self.spec.authorized_key:
            try:
                authorized = asyncssh.import_public_key(self.spec.authorized_key)
            except (asyncssh.KeyImportError, ValueError) as exc:
                print(f"sandbox ssh: instance {self.spec.instance_id}: provision key not usable ({exc}); "
                      f"public key login disabled", file=sys.stderr)
        try:
            acceptor = await asyncssh.listen(
                sock=self.sock, server_factory=lambda: _server_class()(self, authorized),
                server_host_keys=[self.key.path], process_factory=self._process,
                encoding=None, line_editor=False, allow_pty=True, agent_forwarding=False,
                x11_forwarding=False, rdns_lookup=False, allow_scp=False, login_timeout=LOGIN_TIMEOUT,
                server_version=SERVER_VERSION, gss_kex=False, gss_auth=False)
        except Exception as exc:   # a broken key file or socket: log it, the port stays closed
            print(f"sandbox ssh: instance {self.spec.instance_id}: cannot start: {exc!r}", file=sys.stderr)
            self.sock.close()
            return
        if self.closed:
            acceptor.close()
        else:
            self.acceptor = acceptor

    async def aclose(self) -> None:
        self.closed = True
        if self.armed:
            self.owner.loop.remove_reader(self.sock.fileno())
            self.armed = False
        if self.acceptor is not None:
            self.acceptor.close()
            self.acceptor = None
        for proc in list(self.procs):
            _kill(proc)
        for conn in list(self.conns):
            conn.abort()
        self.conns.clear()
        self.sock.close()   # asyncssh's close has already done it once it was started

    # --- sessions -------------------------------------------------------------------------------
    async def _process(self, process) -> None:
        if self.sessions >= self.owner.max_sessions:
            process.stderr.write(f"sandbox: at most {self.owner.max_sessions} sessions per instance\n".encode())
            process.exit(1)
            return
        self.sessions += 1
        try:
            status = await self._run(process)
        except Exception as exc:   # a bug or a vanished channel: end the session, keep serving
            print(f"sandbox ssh: instance {self.spec.instance_id}: session failed: {exc!r}", file=sys.stderr)
            status = 1
        finally:
            self.sessions -= 1
        if status is None:         # the client went away; nobody to tell
            return
        try:
            if isinstance(status, str):
                process.exit_with_signal(status)
            else:
                process.exit(status)
        except Exception:          # the channel closed meanwhile
            pass

    async def _run(self, process):
        name, shell = _login_shell()
        home = ensure_dir(self.spec.home)
        term = process.get_terminal_type()
        pty = term is not None  # a pty was asked for, even with an empty terminal type (a client without TERM)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "PWD": home, "USER": name,
               "LOGNAME": name, "SHELL": shell, "LANG": "C.UTF-8",
               "X402_SANDBOX_INSTANCE": self.spec.instance_id}
        if term:
            env["TERM"] = term
        command = process.command
        if command is not None:
            argv = [shell, "-c", command]
        else:
            argv = [shell, "-i"] if pty else [shell]
        budget = {"left": self.owner.output_limit}
        runner = self._run_pty if pty else self._run_pipes
        session = asyncio.ensure_future(asyncio.wait_for(runner(process, argv, env, home, budget),
                                                         self.owner.time_limit))
        # A client that disconnects ends its session (and frees the slot) at once.
        gone = asyncio.ensure_future(process.channel.wait_closed())
        await asyncio.wait({session, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not session.done():
            session.cancel()       # its cleanup kills the process group
            try:
                await session
            except BaseException:
                pass
            return None
        try:
            return session.result()
        except (asyncio.TimeoutError, TimeoutError):
            limit = _Limit(EXIT_TIME_LIMIT, f"sandbox: time limit of {self.owner.time_limit:g} s reached; "
                                            "the command was killed")
        except _Limit as exc:
            limit = exc
        self._notice(process, limit.notice)
        return limit.status

    def _notice(self, process, text: str) -> None:
        try:
            process.stderr.write(b"\r\n" + text.encode() + b"\r\n" if process.get_terminal_type() is not None
                                 else text.encode() + b"\n")
        except Exception:   # the channel is already gone
            pass

    async def _spawn(self, argv, env, home, **stdio):
        proc = await asyncio.create_subprocess_exec(*argv, cwd=home, env=env, start_new_session=True,
                                                    close_fds=True, **stdio)
        self.procs.add(proc)
        return proc

    async def _forward(self, data: bytes, writer, budget: dict) -> None:
        if len(data) > budget["left"]:
            data = data[:budget["left"]]
            budget["left"] = 0
            if data:
                writer.write(data)
            raise _Limit(EXIT_OUTPUT_LIMIT, f"sandbox: output limit of {self.owner.output_limit} bytes reached; "
                                            "the command was killed")
        budget["left"] -= len(data)
        writer.write(data)
        await writer.drain()

    async def _run_pipes(self, process, argv, env, home, budget):
        import asyncssh

        PIPE = asyncio.subprocess.PIPE
        proc = await self._spawn(argv, env, home, stdin=PIPE, stdout=PIPE, stderr=PIPE)

        async def pump_in() -> None:
            while True:
                try:
                    data = await process.stdin.read(_CHUNK)
                except asyncssh.TerminalSizeChanged:
                    continue
                except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                    continue
                except (asyncssh.Error, OSError):
                    data = b""
                try:
                    if not data:
                        proc.stdin.close()
                        return
                    proc.stdin.write(data)
                    await proc.stdin.drain()
                except (BrokenPipeError, ConnectionResetError):
                    return

        async def pump_out(stream, writer) -> None:
            while True:
                data = await stream.read(_CHUNK)
                if not data:
                    return
                await self._forward(data, writer, budget)

        tasks = [asyncio.ensure_future(pump_in()), asyncio.ensure_future(pump_out(proc.stdout, process.stdout)),
                 asyncio.ensure_future(pump_out(proc.stderr, process.stderr))]
        try:
            await asyncio.gather(*tasks[1:])
            rc = await proc.wait()
        finally:
            for t in tasks:
                t.cancel()
            _kill(proc)
            self.procs.discard(proc)
        return _status(rc)

    async def _run_pty(self, process, argv, env, home, budget):
        import asyncssh
        import fcntl
        import pty
        import struct
        import termios

        master, slave = pty.openpty()

        def resize(size) -> None:
            cols, rows, xpix, ypix = size
            if cols and rows:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpix, ypix))

        resize(process.term_size)
        try:
            proc = await self._spawn(argv, env, home, stdin=slave, stdout=slave, stderr=slave)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        loop = asyncio.get_running_loop()
        out: asyncio.Queue = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(master, _CHUNK)
            except BlockingIOError:
                return
            except OSError:     # EIO: every slave end is closed (the shell and its children exited)
                data = b""
            if not data:
                loop.remove_reader(master)
            out.put_nowait(data)

        async def pump_in() -> None:
            while True:
                try:
                    data = await process.stdin.read(_CHUNK)
                except asyncssh.TerminalSizeChanged as change:
                    resize((change.width, change.height, change.pixwidth, change.pixheight))
                    continue
                except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                    continue
                except (asyncssh.Error, OSError):
                    return
                if not data:
                    return
                while data:
                    try:
                        n = os.write(master, data)
                        data = data[n:]
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
                    except OSError:
                        return

        loop.add_reader(master, readable)
        feeder = asyncio.ensure_future(pump_in())
        try:
            while True:
                data = await out.get()
                if not data:
                    break
                await self._forward(data, process.stdout, budget)
            rc = await proc.wait()
        finally:
            feeder.cancel()
            loop.remove_reader(master)
            os.close(master)
            _kill(proc)
            self.procs.discard(proc)
        return _status(rc)


def _status(rc: int):
    """An exit status, or the signal name (without SIG) when the process was killed by one."""
    if rc >= 0:
        return rc
    try:
        return signal.Signals(-rc).name[3:]
    except ValueError:
        return 128 - rc


def _kill(proc) -> None:
    """SIGKILL the process group the session leads (its children too)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


_SERVER_CLASS = None


def _server_class():
    """asyncssh.SSHServer subclass, built on first use so importing this module stays cheap."""
    global _SERVER_CLASS
    if _SERVER_CLASS is not None:
        return _SERVER_CLASS
    import asyncssh

    class _Server(asyncssh.SSHServer):
        def __init__(self, inst: _Instance, authorized):
            self.inst, self.authorized = inst, authorized
            self.conn = None

        def connection_made(self, conn) -> None:
            self.conn = conn
            if self.inst.closed:
                conn.abort()
                return
            self.inst.conns.add(conn)
            # Commands run as the sandbox's own OS user: only that user may connect.
            sockname, peername = conn.get_extra_info("sockname"), conn.get_extra_info("peername")
            uid = peer_uid(sockname[:2], peername[:2]) if sockname and peername else None
            if uid is not None and uid != os.getuid():
                print(f"sandbox ssh: refused a connection from uid {uid} to instance {self.inst.spec.instance_id} "
                      f"(only uid {os.getuid()} may log in)", file=sys.stderr)
                conn.abort()

        def connection_lost(self, exc) -> None:
            self.inst.conns.discard(self.conn)

        def begin_auth(self, username: str) -> bool:
            return True

        def public_key_auth_supported(self) -> bool:
            return self.authorized is not None

        def validate_public_key(self, username: str, key) -> bool:
            return (username == LOGIN_USER and self.authorized is not None
                    and key.public_data == self.authorized.public_data)

        def password_auth_supported(self) -> bool:
            return self.inst.spec.check_password is not None

        def validate_password(self, username: str, password: str) -> bool:
            check = self.inst.spec.check_password
            return username == LOGIN_USER and check is not None and bool(check(password))

    _SERVER_CLASS = _Server
    return _Server


class SshServers:
    """Every instance's SSH server; one asyncio loop thread, started with the first instance."""

    def __init__(self, *, time_limit: float = DEFAULT_TIME_LIMIT, output_limit: int = DEFAULT_OUTPUT_LIMIT,
                 max_sessions: int = DEFAULT_MAX_SESSIONS, verbose: bool = False):
        if time_limit <= 0 or output_limit <= 0 or max_sessions <= 0:
            raise ValueError("SSH time limit, output limit and session count must be positive")
        self.time_limit, self.output_limit, self.max_sessions = float(time_limit), int(output_limit), int(max_sessions)
        self.verbose = verbose
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._instances: dict[str, _Instance] = {}

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self.loop is None:
                self.loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self.loop.run_forever, name="sandbox-ssh", daemon=True)
                self._thread.start()
            return self.loop

    def _call(self, fn, timeout: float = 10.0):
        """Run fn() (sync or a coroutine function) on the SSH loop and wait for it."""
        async def run():
            res = fn()
            if asyncio.iscoroutine(res):
                res = await res
            return res
        return asyncio.run_coroutine_threadsafe(run(), self._ensure_loop()).result(timeout)

    def open(self, spec: InstanceSpec, ip: str, port: int = 0, *, new_host_key: bool = False) -> tuple[str, int, HostKey]:
        """Listen for `spec`'s instance on (ip, port): the same port when it is free, else any port
        on ip, else any port on 127.0.0.1. Returns (ip, port, host key)."""
        self.close(spec.instance_id)
        key = host_key(spec.folder, new=new_host_key)
        ensure_dir(spec.home)
        sock = listen_loopback((ip, port), (ip, 0), ("127.0.0.1", 0))
        sock.setblocking(False)
        inst = _Instance(self, spec, sock, key)
        with self._lock:
            self._instances[spec.instance_id] = inst
        self._call(inst.arm)
        host, bound = sock.getsockname()[:2]
        return host, bound, key

    def close(self, instance_id: str) -> None:
        with self._lock:
            inst = self._instances.pop(instance_id, None)
        if inst is not None:
            self._call(inst.aclose)

    def is_open(self, instance_id: str) -> bool:
        with self._lock:
            return instance_id in self._instances

    def shutdown(self) -> None:
        for iid in list(self._instances):
            try:
                self.close(iid)
            except Exception as exc:   # keep closing the others
                print(f"sandbox ssh: closing {iid}: {exc!r}", file=sys.stderr)
        with self._lock:
            loop, thread = self.loop, self._thread
            self.loop = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not None:
                thread.join(timeout=5)
            if not loop.is_running():
                loop.close()
