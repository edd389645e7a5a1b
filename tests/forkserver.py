"""Start bundle scripts as real processes without paying the interpreter's import bill each time.

A test run starts a bundle script several hundred times; most of each start was importing the
third-party libraries (requests, eth-account, solders, ...: ~0.35 of ~0.45 CPU-s on the CI box).
One helper process per pytest worker imports only those, then forks a fresh child per run. The
child is a real process: its own pid, environment, working directory, stdin/stdout/stderr file
descriptors and exit status (a signal shows as a negative return code, as with subprocess), and it
ends through Python's normal shutdown (atexit, non-daemon threads, flushing). The bundle's own
package is *not* preloaded: every run imports x402_compute afresh, so an import the script forgot
still fails as it would for the user, and nothing one run caches reaches the next.

What a preloaded child cannot reproduce, `run` leaves to a plain subprocess: an environment that
sets PYTHON* variables or another locale than the helper's (both are read at interpreter start),
and the whole mechanism when X402_TEST_SUBPROCESS=1 (to compare) or fork/AF_UNIX is missing.
Tests that look at what a script imports run their own `python -c` probes and are unaffected.
"""

from __future__ import annotations

import atexit
import io
import json
import locale
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

# Imported once in the helper; each child still imports them by name (from sys.modules).
PRELOAD = ("requests", "dotenv", "base58", "eth_account", "eth_account.messages", "solders.keypair",
           "solders.pubkey", "nacl.signing")
_LOCALE_VARS = ("LANG", "LC_ALL", "LC_CTYPE")

# The helper. Its loop returns only in a forked grandchild, which then runs the script as `__main__`
# at the top level: an uncaught exception, SystemExit and interpreter shutdown go exactly as in
# `python script.py`. The intermediate child waits for it and reports the status to the caller.
_SERVER = r"""
import json, os, runpy, select, signal, socket, struct, sys
sys.path[0] = sys.argv[1]                      # as for `python <scripts>/<name>.py`
for _m in json.loads(sys.argv[3]):
    try:
        __import__(_m)
    except ImportError:
        pass


def _serve(path):
    parent = os.getppid()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(path)
    srv.listen(64)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        if os.getppid() != parent:                 # the pytest worker is gone
            os._exit(0)
        if not select.select([srv], [], [], 1.0)[0]:
            continue
        conn, _ = srv.accept()
        if os.fork() != 0:
            conn.close()
            continue
        # handler: receive the request, fork the script's process, report its pid and status
        srv.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
        req = json.loads(msg)
        pid = os.fork()
        if pid == 0:
            conn.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            for fd in fds:
                if fd > 2:
                    os.close(fd)
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            return req
        for fd in fds:
            os.close(fd)
        conn.send(struct.pack("!q", pid))
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        try:
            conn.send(struct.pack("!q", code))
        finally:
            os._exit(0)


_req = _serve(sys.argv[2])
import io
sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=sys.stdin.encoding, errors=sys.stdin.errors)
sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding=sys.stdout.encoding,
                              errors=sys.stdout.errors)
sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding=sys.stderr.encoding,
                              errors="backslashreplace", line_buffering=True)
sys.argv = _req["argv"]
del _req, _serve, _m
runpy.run_path(sys.argv[0], run_name="__main__")
"""


class _Server:
    def __init__(self, scripts: str):
        self.dir = tempfile.mkdtemp(prefix="x402-fork-")
        self.path = os.path.join(self.dir, "s")
        self.env = dict(os.environ)
        self.env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVER, scripts, self.path, json.dumps(PRELOAD)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=self.env)
        if self.proc.stdout.readline() != b"ready\n":
            raise RuntimeError("the script fork helper did not start")
        atexit.register(self.close)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass

    def usable_for(self, env: dict) -> bool:
        return (self.proc.poll() is None and not any(k.startswith("PYTHON") for k in env)
                and all(env.get(k) == self.env.get(k) for k in _LOCALE_VARS))


_servers: dict[str, _Server] = {}   # one per scripts folder (it is the child's sys.path[0])
_lock = threading.Lock()


def _get(scripts: str) -> _Server | None:
    if os.environ.get("X402_TEST_SUBPROCESS") == "1" or not hasattr(os, "fork") or not hasattr(socket, "send_fds"):
        return None
    with _lock:
        server = _servers.get(scripts)
        if server is None or server.proc.poll() is not None:
            server = _servers[scripts] = _Server(scripts)
        return server


def _decode(raw: bytes) -> str:
    # what subprocess's text mode does: the locale's encoding, universal newlines
    return io.TextIOWrapper(io.BytesIO(raw), encoding=locale.getpreferredencoding(False)).read()


def run(script: str, args: list[str], *, env: dict, input: str | None, timeout: float) -> subprocess.CompletedProcess:
    """Like ``subprocess.run([sys.executable, script, *args], env=env, input=input, capture_output=True,
    text=True, timeout=timeout)``, the process forked from the helper when it can be."""
    argv = [sys.executable, script, *args]
    server = _get(os.path.dirname(script))
    if server is None or not server.usable_for(env):
        return subprocess.run(argv, env=env, input=input, capture_output=True, text=True, timeout=timeout)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as inp:
        if input is not None:
            inp.write(input.encode(locale.getpreferredencoding(False)))
            inp.seek(0)
        stdin_fd = inp.fileno() if input is not None else 0
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            conn.connect(server.path)
            req = {"argv": [script, *args], "env": env, "cwd": os.getcwd()}
            socket.send_fds(conn, [json.dumps(req).encode()], [stdin_fd, out.fileno(), err.fileno()])
            conn.settimeout(timeout)
            (pid,) = struct.unpack("!q", conn.recv(8))
            try:
                data = conn.recv(8)
            except socket.timeout:
                os.kill(pid, 9)
                conn.settimeout(30)
                conn.recv(8)
                out.seek(0), err.seek(0)
                raise subprocess.TimeoutExpired(argv, timeout, output=out.read(), stderr=err.read()) from None
            if len(data) != 8:
                raise RuntimeError(f"the script fork helper lost {script}")
            (code,) = struct.unpack("!q", data)
        finally:
            conn.close()
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(argv, code, _decode(out.read()), _decode(err.read()))
