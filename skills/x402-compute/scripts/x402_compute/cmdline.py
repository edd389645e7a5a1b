"""The commands the scripts print for someone to run next (an error's hint, a ``reconcile`` field,
a plan's steps, --help's examples): one place renders them all.

A printed command must work as printed, whoever runs it and from wherever: an agent whose
working folder is not the bundle, or whose ``python`` is another interpreter (no venv, no
dependencies), would get a failing ``python scripts/reconcile.py <id>``. So a command is the
interpreter running now and the absolute path of the bundle's script, then its arguments, each
quoted for a POSIX shell (paths may hold spaces). An argument is never a server's unchecked word:
callers pass ids they validated (an instance UUID, a journal's hex id), and a control character
(a newline would end the command early; an escape would drive a terminal) is refused here.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

# The bundle's scripts folder: this package's parent (scripts/x402_compute/ -> scripts/), resolved
# once at import, before anything could change the working folder.
SCRIPTS_DIR = Path(__file__).resolve().parent.parent
_SCRIPT = re.compile(r"[a-z][a-z0-9_]*\.py")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# How --help examples are written in the source (the docs' form, for a reader in the bundle folder).
_EXAMPLE = re.compile(r"\bpython scripts/([a-z][a-z0-9_]*\.py)\b")


def interpreter() -> str:
    """The Python running now (a venv's own, not whatever ``python`` means on PATH)."""
    return sys.executable or "python3"


def script_path(script: str) -> Path:
    if not _SCRIPT.fullmatch(script):
        raise ValueError(f"not a script name: {script!r}")
    return SCRIPTS_DIR / script


def argv(script: str, *args: object) -> list[str]:
    """The command as an argv list: interpreter, the script's absolute path, then ``args``."""
    out = [interpreter(), str(script_path(script))]
    for a in args:
        text = str(a)
        if _CONTROL.search(text):
            raise ValueError(f"a control character in an argument of a printed {script} command")
        out.append(text)
    return out


def command(script: str, *args: object) -> str:
    """The command as one line for a POSIX shell: every part quoted (``shlex.quote``)."""
    return shlex.join(argv(script, *args))


def examples(text: str) -> str:
    """--help examples written as ``python scripts/<name>.py ...`` with each command's start
    rendered by ``command`` (the rest of a line is the example's own shell text)."""
    return _EXAMPLE.sub(lambda m: command(m.group(1)), text)
