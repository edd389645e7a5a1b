"""The output contract shared by every script.

- Exactly one JSON document on stdout: ``{"ok": true, ...}`` or
  ``{"ok": false, "error": {"code", "message", "status", "details", "retryable"}}``.
- Human-readable text with ``--output text``, and by default when stdout is a terminal.
- Logs and progress go to stderr.
- Text meant for a terminal (``--output text``, tables, progress lines, prompts) has every
  control character (ESC of ANSI/OSC sequences, CR, BEL, C1) and bidirectional override shown
  escaped (``\x1b``): a server string can never drive the terminal. JSON stays byte-faithful.
- Exit codes: 0 ok, 1 API or runtime error, 2 usage, 3 refused by policy or needs
  confirmation, 4 payment outcome unknown, 5 wait timed out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, NoReturn

from . import __version__, cmdline
from .config import load_settings
from .errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ComputeError,
    ConfirmationRequired,
    UsageError,
)
from .redact import scrub
from .state import State

# asyncssh (imported only for SSH) still names DSA key types, and cryptography 51+ warns about each
# on import: ten lines on the stderr of every SSH command (and doctor), nothing a user can act on.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh\.")

# Decisions only the human takes (issue 19): approving a payment without a question, lifting the
# cap, accepting a new payee or host key, creating a recipient's account at the wallet's cost,
# ignoring an unresolved payment, allowing plain http or a private address, a permanent disk
# resize, resuming a stopped keepalive, printing a secret, deleting what guards machines not just
# destroyed by this call (--forget-destroyed: host-key pins, saved keys and passwords of every
# instance the server merely lists as destroyed; were one live, the model would have reset its
# host key trust and lost keys shown once), replacing the saved API key (--replace-saved-key: the
# old key would be gone from this machine while still valid on the server). They are flags a
# person types at a terminal (or settings they wrote), never an MCP tool input, and a hint that
# names one is addressed to the human ("ask the human to run ..."). The one list: the MCP server
# leaves these out of every tool, and a test holds every tool schema against it.
HUMAN_ONLY = frozenset({
    "yes",
    "max_usd",
    "accept_payee_change",
    "create_recipient_account",
    "accept_host_key_change",
    "ignore_unresolved",
    "allow_insecure_http",
    "allow_private_address",
    "confirm_disk_resize",
    "resume",
    "show",
    "forget_destroyed",
    "replace_saved_key",
})
# An option naming a local file or folder: a tool input that names one lets the model read (and
# send away) any file the user can read, so a tool takes content instead, bounded and checked.
PATH_METAVARS = frozenset({"PATH", "FILE", "DIR", "FOLDER"})
_PATH_NAME = re.compile(r"(^|_)(path|paths|file|files|dir|dirs|directory|folder|identity)(_|$)")


def names_a_path(name: str, metavar: Any = None) -> bool:
    """Whether an option (its dest or property name, and metavar) names a local file or folder."""
    return bool(_PATH_NAME.search(str(name).lower())) or str(metavar or "").upper() in PATH_METAVARS


def human_only_flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


EXIT_CODES_HELP = "exit codes: 0 ok, 1 API/runtime error, 2 usage, 3 refused by policy or needs confirmation, 4 payment outcome unknown, 5 wait timed out, 130 interrupted"


# Every C0 control but newline and tab, DEL and C1, and the invisible bidirectional controls
# that reorder what a line appears to say: shown as \xNN / \uNNNN instead of acting on the
# terminal. Escaping ESC alone disarms a whole ANSI/OSC sequence: the rest is plain text.
_TERMINAL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x00, 0x09), *range(0x0b, 0x20), *range(0x7f, 0xa0)]}
_TERMINAL_ESCAPES.update({c: f"\\u{c:04x}" for c in [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]})
_CELL_ESCAPES = {**_TERMINAL_ESCAPES, 0x0A: "\\n", 0x09: "\\t"}


def terminal_safe(text: str, *, one_line: bool = False) -> str:
    """``text`` as a terminal may show it (see the module docstring); ``one_line`` also escapes
    newlines and tabs (a table cell, a prompt)."""
    return str(text).translate(_CELL_ESCAPES if one_line else _TERMINAL_ESCAPES)


class _Parser(argparse.ArgumentParser):
    """Every script's parser (subcommands included: argparse builds them with this class).

    No prefix matching (``allow_abbrev=False``): argparse would take ``--accept`` for
    ``--accept-payee-change`` and ``--ign`` for ``--ignore-unresolved``, so a flag the human
    alone should type could be reached by a word that merely starts it. An abbreviation is a
    usage error naming the flags it could have meant."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        self._refuse_abbreviations(sys.argv[1:] if args is None else list(args))
        return super().parse_known_args(args, namespace)

    def _refuse_abbreviations(self, args: list[str]) -> None:
        """Before argparse reads anything (a missing required option would otherwise be the
        error shown), name the full flags an abbreviated one starts. A parser with subcommands
        leaves the words after the subcommand to that subcommand's parser."""
        commands = {c for a in self._actions if isinstance(a, argparse._SubParsersAction) for c in a.choices}
        known = sorted(self._option_string_actions)
        for word in args:
            if word == "--" or word in commands:
                break
            if not isinstance(word, str) or not word.startswith("--") or len(word) < 3:
                continue
            flag = word.split("=", 1)[0]
            if flag in self._option_string_actions:
                continue
            meant = [f for f in known if f.startswith(flag)]
            if meant:
                theirs = [f for f in meant if f[2:].replace("-", "_") in HUMAN_ONLY]
                raise UsageError(
                    f"{flag} is not a flag of {self.prog}; flags are never abbreviated. Did you mean {' or '.join(meant)}?",
                    code="usage_error",
                    details={"flag": flag, "did_you_mean": meant},
                    hint=f"Spell the flag out in full ({' or '.join(meant)}); run {self.prog} --help for usage."
                    + (f" {' / '.join(theirs)}: the human's decision only; never add it yourself, ask the human to run the command." if theirs else ""),
                )

    def error(self, message: str) -> NoReturn:  # argparse would print usage text and exit 2
        if message.startswith("argument --network") and "'tempo'" in message:
            raise UsageError(message, hint="Tempo (USDC.e) is paid with MPP: use --pay mpp without --network.")
        raise UsageError(message, hint=f"Run {self.prog} --help for usage.")


@dataclass
class Output:
    data: dict
    text: str | None = None
    exit_code: int = EXIT_OK


def parser(prog: str, description: str, *, examples: str | None = None, output: bool = True, exit_codes: str = EXIT_CODES_HELP,
           http_timeout: bool = True) -> argparse.ArgumentParser:
    """The common options every script has. ``http_timeout=False``: the script's own ``--timeout``
    means something else (ssh_exec.py: the command's limit); HTTP then uses COMPUTE_TIMEOUT."""
    epilog = (("examples:\n" + cmdline.examples(examples.rstrip()) + "\n\n") if examples else "") + exit_codes
    p = _Parser(prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("common options")
    if output:  # every script; not the MCP server, whose stdout is the protocol
        g.add_argument("--output", "-o", choices=("json", "text"), help="json (default when piped) or text (default at a terminal)")
    g.add_argument("--base-url", metavar="URL", help="API base URL (default: COMPUTE_BASE_URL or https://compute.x402layer.cc)")
    g.add_argument("--env-file", metavar="PATH", help="read settings from this .env file (variables already in the environment win; never read implicitly)")
    if http_timeout:
        g.add_argument("--timeout", type=float, metavar="SECONDS", help="deadline for each HTTP exchange, connect to last byte (default: COMPUTE_TIMEOUT, else 30)")
    g.add_argument("--verbose", "-v", action="store_true", help="log HTTP requests to stderr")
    g.add_argument("--allow-insecure-http", action="store_true",
                   help="lab setups only: allow signed, paying or chain requests over plain http:// to a host other than this machine (refused by default)")
    g.add_argument("--version", action="version", version=f"x402-compute {__version__}")
    return p


def add_yes(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--yes", "-y", action="store_true", help=f"{what} without asking (required when not at a terminal)")


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._settings = None
        self._client = None

    @property
    def settings(self):
        if self._settings is None:
            self._settings = load_settings(
                env_file=getattr(self.args, "env_file", None),
                base_url=getattr(self.args, "base_url", None),
                max_usd=getattr(self.args, "max_usd", None),
                timeout=getattr(self.args, "timeout", None),
                allow_insecure_http=bool(getattr(self.args, "allow_insecure_http", False)),
            )
        return self._settings

    @property
    def client(self):
        if self._client is None:
            from .api.client import ComputeClient

            self._client = ComputeClient(self.settings, verbose=bool(getattr(self.args, "verbose", False)))
        return self._client

    def auth_used(self) -> str:
        """Which credential the run's requests carried (``none`` when it sent none)."""
        return self._client.auth_used if self._client is not None else "none"

    @property
    def state(self):
        return State(self.settings.state_dir)

    @staticmethod
    def interactive() -> bool:
        return sys.stdin.isatty() and sys.stderr.isatty()

    def progress(self, message: str) -> None:
        print(terminal_safe(scrub(message)), file=sys.stderr, flush=True)

    def content_of(self, value: str, flag: str) -> str:
        """The text of the file an option names (``--user-data FILE``). The MCP server's Context
        takes the text itself instead: a tool input never names a file to read."""
        try:
            return Path(value).expanduser().read_text()
        except OSError as e:
            raise UsageError(f"Cannot read {flag} file {value}: {e.strerror}.") from None

    def sleep(self, seconds: float) -> None:
        """Pause between polls (``--wait``); another front door (the MCP server) makes it cancellable."""
        time.sleep(seconds)

    def confirm(self, question: str, *, details: Any = None, flag: str = "--yes") -> None:
        """Go ahead if ``--yes`` was given or the user says yes at a terminal; else raise."""
        if getattr(self.args, "yes", False):
            return
        if not self.interactive():
            raise ConfirmationRequired(
                f"{question} Confirmation needed: re-run with {flag}.",
                details=details,
                hint=f"Not at a terminal, so nothing was done. Show the human what error.details lists; {flag} is their answer: add it only once they agree.",
            )
        sys.stderr.write(terminal_safe(scrub(question), one_line=True) + " [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise ConfirmationRequired("Cancelled at the prompt; nothing was done.", code="cancelled")


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        # Numbers the API sent as JSON numbers go back out as numbers (parsed as
        # Decimal only so our own arithmetic is exact). Amounts we compute are
        # emitted as strings or integer atomic units by the code that makes them.
        return int(o) if o == o.to_integral_value() else float(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, bytes):
        return o.hex()
    return str(o)


def dumps(obj: Any, pretty: bool = False) -> str:
    return json.dumps(obj, indent=2 if pretty else None, default=_json_default, ensure_ascii=False)


def _mode(args: argparse.Namespace | None) -> str:
    out = getattr(args, "output", None) if args is not None else None
    if out:
        return out
    return "text" if sys.stdout.isatty() else "json"


def _emit(doc: dict, text: str | None, mode: str) -> None:
    # Last line of defence: no secret this process loaded or sent reaches the output, whatever
    # path put it there (a server echoing our headers, a library error quoting a key).
    doc = scrub(doc)
    text = scrub(text) if text is not None else None
    if mode == "text":
        if doc.get("ok") is False:
            err = doc["error"]
            lines = [f"error ({err['code']}): {err['message']}"]
            if err.get("hint"):
                lines.append(f"hint: {err['hint']}")
            print(terminal_safe("\n".join(lines)), file=sys.stderr)
            return
        print(terminal_safe(text if text is not None else dumps(doc, pretty=True)))
        return
    print(dumps(doc))


@dataclass
class Outcome:
    """What one command produced: the JSON document (not yet scrubbed), its text form, the exit code."""

    doc: dict
    text: str | None
    exit_code: int
    args: argparse.Namespace | None = None


def execute(
    p: argparse.ArgumentParser,
    handler: Callable[[Context], Output | dict],
    argv: list[str] | None = None,
    *,
    context: Callable[[argparse.Namespace], Context] = Context,
) -> Outcome:
    """Parse ``argv`` with the script's parser, run its handler, map every outcome to one document.

    ``run`` prints it; the MCP server (``mcp_server.py``) returns it as a tool result, so both
    front doors share the parsing, the handler and the error mapping."""
    args = None
    try:
        args = p.parse_args(argv)
        ctx = context(args)
        result = handler(ctx)
        out = result if isinstance(result, Output) else Output(result)
        data = {"ok": True, **out.data}
        data.setdefault("auth", ctx.auth_used())
        return Outcome(data, out.text, out.exit_code, args)
    except ComputeError as e:
        return Outcome({"ok": False, "error": e.to_dict()}, None, e.exit_code, args)
    except KeyboardInterrupt:
        err = ComputeError("Interrupted.", code="interrupted")
        return Outcome({"ok": False, "error": err.to_dict()}, None, EXIT_INTERRUPTED, args)
    except SystemExit:
        raise  # --help / --version
    except Exception as e:  # a bug: still one JSON document, no traceback on stdout
        if os.environ.get("X402_COMPUTE_DEBUG") or getattr(args, "verbose", False):
            sys.stderr.write(terminal_safe(scrub(traceback.format_exc())))
        err = ComputeError(f"Internal error: {type(e).__name__}: {e}", code="internal_error")
        return Outcome({"ok": False, "error": err.to_dict()}, None, EXIT_ERROR, args)


def document(doc: dict) -> dict:
    """The document exactly as the scripts print it (secrets scrubbed, Decimals as JSON numbers), as data."""
    return json.loads(dumps(scrub(doc)))


def run(p: argparse.ArgumentParser, handler: Callable[[Context], Output | dict], argv: list[str] | None = None) -> NoReturn:
    out = execute(p, handler, argv)
    _emit(out.doc, out.text, _mode(out.args))
    sys.stdout.flush()
    sys.exit(out.exit_code)


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A plain text table for humans; machines read the JSON."""
    if not rows:
        return "(none)"
    cells = [[("" if r.get(k) is None else terminal_safe(r.get(k), one_line=True)) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (_, h) in enumerate(columns)]
    head = "  ".join(h.ljust(w) for (_, h), w in zip(columns, widths)).rstrip()
    body = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join([head, *body])
