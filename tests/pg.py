"""A real PostgreSQL server for the ledger tests, started by the suite itself.

``initdb`` + ``pg_ctl`` from the machine's PostgreSQL (``/usr/lib/postgresql/*/bin`` or PATH) in a
temporary folder, listening on 127.0.0.1 only, trust authentication. One server per test session,
shared by the xdist workers: the first worker to take the lock starts it and records its port; each
worker registers itself, and the last one to leave stops it.

PostgreSQL refuses to run as root (``initdb: cannot be run as root``). The accepted way is to run it
as an unprivileged user: as root, every PostgreSQL command here runs as ``nobody`` through
``setpriv`` (util-linux), and the data folder is chowned to it.

Tests get a fresh schema each (``url(schema)``: the connection's ``search_path``), far cheaper than a
database each.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote


def bin_dir() -> Path | None:
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(cand).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _as_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.info = root / "server.json"
        self.lock = root / "lock"
        self.bin = bin_dir()
        self.fsync = False  # the tests' data is thrown away; a bench turns it on

    def _opts(self, port: int) -> str:
        return (f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' -c max_connections=200"
                + ("" if self.fsync else " -c fsync=off"))

    @contextmanager
    def _locked(self):
        fd = os.open(self.lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(_as_user([str(self.bin / args[0]), *args[1:]]), capture_output=True, text=True, check=check, timeout=120)

    def _owned(self, path: Path) -> None:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(path, nobody.pw_uid, nobody.pw_gid)

    def acquire(self, worker: str) -> int:
        """Start the server if no worker has; register ``worker``; return the port."""
        with self._locked():
            info = json.loads(self.info.read_text()) if self.info.exists() else None
            if info is None:
                self.root.chmod(0o755)
                if self.data.exists():
                    shutil.rmtree(self.data)
                self.data.mkdir()
                self._owned(self.data)
                self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
                port = _free_port()
                self._run("pg_ctl", "-D", str(self.data), "-o", self._opts(port), "-l", str(self.data / "log"), "-w", "-t", "60", "start")
                info = {"port": port, "workers": []}
            info["workers"].append(worker)
            self.info.write_text(json.dumps(info))
            return info["port"]

    def release(self, worker: str) -> None:
        with self._locked():
            info = json.loads(self.info.read_text())
            info["workers"].remove(worker)
            if info["workers"]:
                self.info.write_text(json.dumps(info))
                return
            self.stop()
            self.info.unlink()
            shutil.rmtree(self.data, ignore_errors=True)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)

    def start_again(self, port: int) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._opts(port), "-l", str(self.data / "log"), "-w", "-t", "60", "start")


def shared_root(session_key: str) -> Path:
    """A folder every worker of this session finds (under /tmp: PostgreSQL runs as nobody, who cannot
    enter root's 0700 pytest folders)."""
    root = Path(tempfile.gettempdir()) / f"x402-pg-{hashlib.sha256(session_key.encode()).hexdigest()[:12]}"
    root.mkdir(mode=0o755, exist_ok=True)
    return root


def url(port: int, schema: str | None = None) -> str:
    base = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return base + (f"?options={quote(f'-csearch_path={schema}')}" if schema else "")


def fresh_schema(port: int) -> str:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(url(port), autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {name}")
    return url(port, name)
