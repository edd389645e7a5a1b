"""install.sh end to end: build the release archive, serve it on loopback, install into a
clean HOME and DIR, run the installed scripts, refuse a corrupted archive, and upgrade in
place without touching the user's files.

The first install creates a virtual environment and pip-installs requirements.txt; pip uses
the machine's own index configuration (PIP_* variables and pip.conf) and cache, so the
clean HOME points PIP_CACHE_DIR back at the caller's cache.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.slow


def _pip_cache_dir() -> str:
    if os.environ.get("PIP_CACHE_DIR"):
        return os.environ["PIP_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pip")


def install_env(home: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
           or k.startswith("PIP_") or k.lower() in ("http_proxy", "https_proxy", "no_proxy")}
    env["HOME"] = str(home)
    env.setdefault("PIP_CACHE_DIR", _pip_cache_dir())
    env.update(extra or {})
    return env


def run_install(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "install.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "build_release.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=True)
    info = json.loads(proc.stdout)
    return Path(info["archive"]), info


@pytest.fixture(scope="module")
def server(release):
    """A loopback HTTP server for the dist folder, on an ephemeral port."""
    archive, _ = release
    handler = functools.partial(_QuietHandler, directory=str(archive.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def installed(release, server, tmp_path_factory):
    archive, info = release
    base = tmp_path_factory.mktemp("install")
    home, target = base / "home", base / "work" / "x402-compute"
    home.mkdir()
    env = install_env(home)
    t0 = time.monotonic()
    proc = run_install([str(target), "--url", f"{server}/{archive.name}"], env)
    elapsed = time.monotonic() - t0
    print(f"\nfirst install took {elapsed:.1f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"dir": target, "home": home, "env": env, "proc": proc, "info": info, "seconds": elapsed}


def test_install_creates_a_working_venv_and_passes_doctor(installed):
    d = installed["dir"]
    assert (d / "SKILL.md").is_file() and (d / "scripts" / "provision.py").is_file()
    py = d / ".venv" / "bin" / "python"
    assert py.is_file()
    env = {**installed["env"], "X402_COMPUTE_STATE_DIR": str(installed["home"] / "state")}
    proc = subprocess.run([str(py), str(d / "scripts" / "doctor.py"), "--offline"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert {c["name"]: c["status"] for c in doc["checks"]}["dependencies"] == "ok"
    assert "checksum ok" in installed["proc"].stderr and "self-check" in installed["proc"].stderr
    # nothing is left behind beside DIR
    assert [p.name for p in d.parent.iterdir()] == ["x402-compute"]


def test_installed_scripts_work_against_the_sandbox(installed, request):
    try:
        sb = request.getfixturevalue("sandbox")
    except pytest.FixtureLookupError:
        pytest.skip("no sandbox fixture in this checkout")
    d = installed["dir"]
    py = str(d / ".venv" / "bin" / "python")
    env = {**installed["env"], **sb.env, "X402_COMPUTE_STATE_DIR": str(installed["home"] / "sbstate")}
    proc = subprocess.run([py, str(d / "scripts" / "browse_plans.py"), "--limit", "3"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plans = json.loads(proc.stdout)
    assert plans["ok"] and plans["count"] >= 1
    # the full self-check, network included, with the sandbox's wallets
    proc = subprocess.run([py, str(d / "scripts" / "doctor.py")], env=env, capture_output=True, text=True, timeout=120)
    doc = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = {c["name"]: c["status"] for c in doc["checks"]}
    assert status["api"] == status["clock"] == status["evm_wallet"] == status["auth_accepted"] == "ok", doc


def test_corrupted_archive_is_refused_and_nothing_installed(release, server, tmp_path):
    archive, _ = release
    bad_dir = tmp_path / "served"
    bad_dir.mkdir()
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = bad_dir / archive.name
    bad.write_bytes(bytes(data))
    shutil.copy(str(archive) + ".sha256", str(bad) + ".sha256")  # the published checksum of the good one
    home = tmp_path / "home"
    home.mkdir()
    target = tmp_path / "work" / "x402-compute"
    proc = run_install([str(target), "--url", f"file://{bad}"], install_env(home), timeout=120)
    assert proc.returncode == 1
    assert "checksum mismatch" in proc.stderr and "nothing was installed" in proc.stderr
    assert not target.exists()
    assert list((tmp_path / "work").iterdir()) == []  # no temporary folder left either


def test_missing_checksum_and_bad_url_fail_clearly(release, server, tmp_path):
    archive, info = release
    home = tmp_path / "home"
    home.mkdir()
    env = install_env(home)
    lone = tmp_path / "lone" / archive.name
    lone.parent.mkdir()
    shutil.copy(archive, lone)
    proc = run_install([str(tmp_path / "a"), "--url", str(lone)], env, timeout=60)
    assert proc.returncode == 1 and "no published checksum" in proc.stderr and "--sha256" in proc.stderr
    proc = run_install([str(tmp_path / "b"), "--url", f"{server}/nope.tar.gz"], env, timeout=60)
    assert proc.returncode == 1 and "could not download" in proc.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # a non-empty folder that is not an install is never overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "scripts").mkdir()
    proc = run_install([str(other), "--url", str(archive), "--sha256", info["sha256"]], env, timeout=60)
    assert proc.returncode == 1 and "does not hold an x402-compute install" in proc.stderr
    assert [p.name for p in other.iterdir()] == ["scripts"]


def test_rerun_upgrades_in_place_and_keeps_user_files(installed, release):
    archive, info = release
    d = installed["dir"]
    (d / ".env").write_text("COMPUTE_MAX_SPEND_USD=5\n")
    (d / "notes.txt").write_text("mine\n")
    (d / "scripts" / "stale_from_old_version.py").write_text("# removed upstream\n")
    (d / "SKILL.md").write_text("---\nname: x402-compute\ndescription: old\n---\n")
    venv_python = (d / ".venv" / "bin" / "python").resolve()
    venv_id = (d / ".venv").stat().st_ino
    t0 = time.monotonic()
    # this time from a local file:// URL with the checksum given explicitly
    proc = run_install([str(d), "--url", f"file://{archive}", "--sha256", info["sha256"].upper()], installed["env"])
    print(f"\nupgrade took {time.monotonic() - t0:.1f} s", file=sys.stderr)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "upgraded" in proc.stderr and "reusing the virtual environment" in proc.stderr
    assert (d / ".env").read_text() == "COMPUTE_MAX_SPEND_USD=5\n"
    assert (d / "notes.txt").read_text() == "mine\n"
    assert not (d / "scripts" / "stale_from_old_version.py").exists()
    assert "provision GPU instance" in (d / "SKILL.md").read_text()
    assert (d / ".venv").stat().st_ino == venv_id and (d / ".venv" / "bin" / "python").resolve() == venv_python


def test_release_archive_is_reproducible_and_bundle_only(release, tmp_path):
    import tarfile

    archive, info = release

    def build(out: Path) -> dict:
        return json.loads(subprocess.run([sys.executable, str(ROOT / "tools" / "build_release.py"), "--out", str(out)],
                                         capture_output=True, text=True, timeout=120, check=True).stdout)

    # Back to back (the working tree may change between this and the module's first build).
    first, second = build(tmp_path / "1"), build(tmp_path / "2")
    assert first["sha256"] == second["sha256"]
    assert (tmp_path / "1" / archive.name).read_bytes() == (tmp_path / "2" / archive.name).read_bytes()
    line = Path(str(archive) + ".sha256").read_text()
    assert line == f"{info['sha256']}  {archive.name}\n"
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert all(n == "x402-compute" or n.startswith("x402-compute/") for n in names)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "x402-compute/SKILL.md" in names and "x402-compute/requirements.txt" in names
    assert not any("sandbox" in n.split("/")[1] for n in names if "/" in n)
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert len({m.mtime for m in members}) == 1


# -- a tampered or foreign archive (issue 9, class 11) ------------------------------------------------

def _evil_archive(release, out: Path, extra: list) -> tuple[Path, str]:
    """The real release archive plus ``extra`` members: (name, bytes) for a file, (name, "->target") for a
    symlink. Returns the archive and its SHA-256 (as if pinned by someone who was fooled)."""
    import gzip
    import hashlib
    import io
    import tarfile

    archive, _ = release
    raw = io.BytesIO()
    with tarfile.open(archive) as src, tarfile.open(fileobj=raw, mode="w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m) if m.isfile() else None)
        for name, content in extra:
            ti = tarfile.TarInfo(name)
            if isinstance(content, str) and content.startswith("->"):
                ti.type, ti.linkname = tarfile.SYMTYPE, content[2:]
                dst.addfile(ti)
            else:
                ti.size = len(content)
                dst.addfile(ti, io.BytesIO(content))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(gzip.compress(raw.getvalue()))
    return out, hashlib.sha256(out.read_bytes()).hexdigest()


@pytest.mark.parametrize("extra,why", [
    ([("x402-compute/.env", b"PRIVATE_KEY=0xattacker\n")], "not part of the bundle"),
    ([("x402-compute/notes.txt", b"replaced\n")], "not part of the bundle"),
    ([("x402-compute/scripts/evil", "->/etc")], "a link or special file"),
    ([("x402-compute/../escaped.txt", b"x")], "outside the x402-compute folder"),
    ([("other/file.txt", b"x")], "outside the x402-compute folder"),
], ids=["dotenv", "user-file", "symlink", "dotdot", "other-folder"])
def test_an_archive_with_foreign_entries_is_refused_and_user_files_kept(release, tmp_path, extra, why):
    evil, digest = _evil_archive(release, tmp_path / "served" / "x402-compute.tar.gz", extra)
    home = tmp_path / "home"
    home.mkdir()
    target = tmp_path / "work" / "x402-compute"  # an existing install with the user's own files
    target.mkdir(parents=True)
    (target / "SKILL.md").write_text("---\nname: x402-compute\ndescription: old\n---\n")
    (target / ".env").write_text("COMPUTE_MAX_SPEND_USD=5\n")
    (target / "notes.txt").write_text("mine\n")
    proc = run_install([str(target), "--url", str(evil), "--sha256", digest, "--skip-check"], install_env(home), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "not the x402-compute bundle" in proc.stderr and why in proc.stderr and "nothing was installed" in proc.stderr
    assert (target / ".env").read_text() == "COMPUTE_MAX_SPEND_USD=5\n" and (target / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in target.iterdir()) == [".env", "SKILL.md", "notes.txt"]
    assert not (tmp_path / "work" / "escaped.txt").exists()
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["x402-compute"]  # no temporary folder left


def test_a_marker_naming_user_files_never_removes_them(installed, release):
    """The marker lists what a previous install owned; a tampered one cannot make the upgrade
    delete the user's files: only the bundle's own entry names are ever removed."""
    archive, info = release
    d = installed["dir"]
    (d / "notes.txt").write_text("mine\n")
    (d / ".env").write_text("X=1\n")
    marker = d / ".x402-compute-install"
    marker.write_text(marker.read_text() + "notes.txt\n.env\n")
    proc = run_install([str(d), "--url", str(archive), "--sha256", info["sha256"], "--skip-check"], installed["env"])
    assert proc.returncode == 0, proc.stderr
    assert (d / "notes.txt").read_text() == "mine\n" and (d / ".env").read_text() == "X=1\n"
    assert set(marker.read_text().split()) == {"SKILL.md", "requirements.txt", "scripts", "references"}


def test_plain_http_off_this_machine_needs_a_pinned_checksum(release, server, tmp_path):
    archive, info = release
    home = tmp_path / "home"
    home.mkdir()
    env = install_env(home)
    # 0.0.0.0 is not loopback by name, yet Linux delivers it to the test server on 127.0.0.1:
    # nothing leaves the machine.
    off_box = server.replace("127.0.0.1", "0.0.0.0") + "/" + archive.name
    proc = run_install([str(tmp_path / "a"), "--url", off_box], env, timeout=60)
    assert proc.returncode == 1 and "plain http without a pinned checksum" in proc.stderr and "--sha256" in proc.stderr
    assert not (tmp_path / "a").exists()
    # pinned: the download goes ahead (and a wrong pin is then a checksum mismatch, installing nothing)
    proc = run_install([str(tmp_path / "b"), "--url", off_box, "--sha256", "0" * 64], env, timeout=60)
    assert proc.returncode == 1 and "checksum mismatch" in proc.stderr, proc.stderr
    # loopback http needs no pin (the sandbox's own server): it reads <URL>.sha256 as before
    proc = run_install([str(tmp_path / "c"), "--url", f"{server}/nope.tar.gz"], env, timeout=60)
    assert "plain http" not in proc.stderr and "could not download" in proc.stderr


def test_the_installers_entry_list_is_the_bundle(release):
    """install.sh installs only BUNDLE_ENTRIES: the release must carry exactly those."""
    import re
    import tarfile

    archive, _ = release
    listed = set(re.search(r'^BUNDLE_ENTRIES="([^"]+)"', (ROOT / "install.sh").read_text(), re.M).group(1).split())
    with tarfile.open(archive) as tar:
        top = {m.name.split("/")[1] for m in tar.getmembers() if m.name.count("/") >= 1}
    assert top == listed


# -- one reading of a URL (issue 20.7) -----------------------------------------------------------------

# url -> (verdict, host): "loopback" (plain http allowed without a pin), "remote" (plain http needs --sha256),
# "userinfo" (refused: user information hides the real host), "malformed" (refused).
TRICKY_URLS = {
    "http://127.0.0.1:8402/x.tar.gz": ("loopback", "127.0.0.1"),
    "HTTP://LOCALHOST/x.tar.gz": ("loopback", "localhost"),
    "http://[::1]:8080/x.tar.gz": ("loopback", "::1"),
    "http://127.1/x.tar.gz": ("loopback", "127.1"),
    "http://evil.invalid?@127.0.0.1/x.tar.gz": ("remote", "evil.invalid"),   # the query holds the @: curl fetches evil.invalid
    "http://evil.invalid#@127.0.0.1/x.tar.gz": ("remote", "evil.invalid"),
    "http://evil.invalid/@127.0.0.1/x.tar.gz": ("remote", "evil.invalid"),
    "http://127.0.0.1.evil.invalid/x.tar.gz": ("remote", "127.0.0.1.evil.invalid"),
    "http://0x7f.1/x.tar.gz": ("remote", "0x7f.1"),                            # curl may read it as loopback: the safe side
    "http://[::ffff:127.0.0.1]/x.tar.gz": ("remote", "::ffff:127.0.0.1"),
    "http://localhost.evil.invalid:80/x": ("remote", "localhost.evil.invalid"),
    "http://127.0.0.1@evil.invalid/x.tar.gz": ("userinfo", None),
    "http://user:pw@127.0.0.1/x.tar.gz": ("userinfo", None),
    "https://evil.invalid@github.com/x.tar.gz": ("userinfo", None),
    "http://a@b@127.0.0.1/x.tar.gz": ("userinfo", None),
    "http://127.0.0.1\\@evil.invalid/x.tar.gz": ("malformed", None),          # backslash: parsers disagree on it
    "http://127.0.0.1 @evil.invalid/x.tar.gz": ("malformed", None),
    "http://127.0.0.1:99999/x.tar.gz": ("malformed", None),
    "http://127.0.0.1:80:80/x.tar.gz": ("malformed", None),
    "http://127.0.0.1:0x50/x.tar.gz": ("malformed", None),
    "http://[::1/x.tar.gz": ("malformed", None),
    "http://[evil.invalid]/x.tar.gz": ("malformed", None),
    "http://ev%69l.invalid/x.tar.gz": ("malformed", None),
    "http:///x.tar.gz": ("malformed", None),
    "http://127.0.0.1\x01.evil/x": ("malformed", None),                      # a control character
    "http://127.0.0.999/x.tar.gz": ("remote", "127.0.0.999"),                # no address: curl asks DNS (a search domain) for it
    "http://127.300/x.tar.gz": ("remote", "127.300"),
    "http://127.0.0.1./x.tar.gz": ("remote", "127.0.0.1."),
}


def _verdict(url: str) -> tuple[str, str | None]:
    """install.sh's own parse_url and is_loopback_host, run by bash on ``url``."""
    text = (ROOT / "install.sh").read_text()
    funcs = "".join(re.search(rf"^{name}\(\) {{\n.*?^}}\n", text, re.M | re.S).group(0) for name in ("parse_url", "is_loopback_host"))
    script = funcs + '''
parse_url "$1" || { echo "malformed"; exit 0; }
[ -z "$URL_USERINFO" ] || { echo "userinfo"; exit 0; }
if is_loopback_host "$URL_HOST"; then echo "loopback $URL_HOST"; else echo "remote $URL_HOST"; fi
'''
    out = subprocess.run(["bash", "-c", script, "install.sh", url], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    verdict, _, host = out.stdout.strip().partition(" ")
    return verdict, host or None


@pytest.mark.parametrize("url", sorted(TRICKY_URLS), ids=repr)
def test_install_sh_reads_each_url_once_the_way_curl_does(url):
    assert _verdict(url) == TRICKY_URLS[url]


def test_the_issues_url_is_not_taken_for_loopback(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    proc = run_install([str(tmp_path / "a"), "--url", "http://evil.invalid?@127.0.0.1/x.tar.gz"], install_env(home), timeout=60)
    assert proc.returncode == 1 and "plain http without a pinned checksum" in proc.stderr, proc.stderr
    proc = run_install([str(tmp_path / "b"), "--url", "https://user:secret@127.0.0.1/x.tar.gz"], install_env(home), timeout=60)
    assert proc.returncode == 1 and "user information" in proc.stderr and not (tmp_path / "b").exists(), proc.stderr
