#!/usr/bin/env python3
"""Build the release archive of the skill bundle: dist/x402-compute-<version>.tar.gz
and its checksum file (sha256sum format), which install.sh verifies.

The archive holds the bundle folder only (skills/x402-compute/ as x402-compute/)
and is reproducible: entries sorted, fixed mtime (SOURCE_DATE_EPOCH or a constant),
owner 0:0 with no names, normalised modes, no caches or local state.

    python tools/build_release.py [--out dist]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE = ROOT / "skills" / "x402-compute"
PREFIX = "x402-compute"
DEFAULT_MTIME = 1704067200  # 2024-01-01T00:00:00Z; any fixed value makes builds repeatable
# Never shipped: caches, virtual environments, local secrets and install bookkeeping.
EXCLUDE_NAMES = {"__pycache__", ".venv", ".env", ".DS_Store", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".clawhub", ".x402-compute-install"}
EXCLUDE_SUFFIXES = (".pyc", ".pyo", ".swp", "~")


def bundle_version() -> str:
    text = (BUNDLE / "scripts" / "x402_compute" / "__init__.py").read_text()
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.M)
    if not m:
        sys.exit("build_release: no __version__ in x402_compute/__init__.py")
    return m.group(1)


def bundle_files() -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(BUNDLE, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDE_NAMES)
        for name in sorted(filenames):
            if name in EXCLUDE_NAMES or name.endswith(EXCLUDE_SUFFIXES):
                continue
            out.append(Path(dirpath) / name)
    return out


def _info(name: str, *, is_dir: bool, executable: bool, size: int, mtime: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    ti.mode = 0o755 if (is_dir or executable) else 0o644
    ti.size = 0 if is_dir else size
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def build_tar(mtime: int) -> bytes:
    files = bundle_files()
    # every ancestor directory of every file, so the archive unpacks with sane directory modes
    dirs = {PREFIX}
    for p in files:
        parts = p.relative_to(BUNDLE).parts[:-1]
        dirs.update("/".join((PREFIX, *parts[: i + 1])) for i in range(len(parts)))
    entries: list[tuple[str, Path | None]] = [(d, None) for d in dirs]
    entries += [(f"{PREFIX}/{p.relative_to(BUNDLE).as_posix()}", p) for p in files]
    entries.sort(key=lambda e: e[0])

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in entries:
            if path is None:
                tar.addfile(_info(name, is_dir=True, executable=True, size=0, mtime=mtime))
                continue
            if path.is_symlink():
                sys.exit(f"build_release: refusing to ship a symlink: {path}")
            data = path.read_bytes()
            executable = bool(path.stat().st_mode & 0o111)
            tar.addfile(_info(name, is_dir=False, executable=executable, size=len(data), mtime=mtime), io.BytesIO(data))
    return raw.getvalue()


def gzip_bytes(data: bytes, mtime: int) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=mtime) as gz:
        gz.write(data)
    return out.getvalue()


def build(out_dir: Path) -> dict:
    version = bundle_version()
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH") or DEFAULT_MTIME)
    archive = gzip_bytes(build_tar(mtime), mtime)
    digest = hashlib.sha256(archive).hexdigest()
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{PREFIX}-{version}.tar.gz"
    (out_dir / name).write_bytes(archive)
    (out_dir / f"{name}.sha256").write_text(f"{digest}  {name}\n")
    return {"version": version, "archive": str(out_dir / name), "sha256": digest, "bytes": len(archive)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "dist"), help="output directory (default: dist/ at the repository root)")
    args = ap.parse_args(argv)
    print(json.dumps(build(Path(args.out))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
