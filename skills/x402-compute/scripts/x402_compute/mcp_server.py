"""The MCP server: the scripts' commands as MCP tools, one more front door beside the scripts.

A tool call becomes the argv of the tool's script (built from its snake_case arguments), parsed
by that script's own parser and run by that script's own handler through ``cli.execute``. Only
the Context differs: its ``confirm`` asks the MCP client's human (elicitation) instead of a
terminal, its ``progress`` also sends MCP progress notifications, and its ``sleep`` (the poll
interval of ``--wait``) ends at once when the client cancels. So every check, cap, journal entry
and error is the script's own, and a result's structured content is the script's JSON document.

What this front door adds, because an MCP host is not a human at a terminal:
- spending tools refuse with ``spending_disabled`` (nothing signed, nothing sent) unless the server
  was started with ``COMPUTE_MCP_ALLOW_SPEND=1``;
- with spending on, each payment is shown to the human for approval when the client can ask
  (elicitation), unless it is at most ``COMPUTE_MCP_CONFIRM_ABOVE_USD``;
- destroy and revoke need ``confirm: true``; secrets never leave in a result (the one-time password
  stays in its 0600 file, a new API key is saved and shown as its last four characters);
- flags that would let a model lift a human's limit (``--max-usd``, ``--ignore-unresolved``) or
  point the wallet at another server (``--base-url``, ``--env-file``) are not tool arguments:
  the server's own command line and environment set them;
- an unknown payment outcome (exit 4) is the tool error ``payment_unknown``, which tells the
  model to call ``reconcile`` and never to pay for that order again;
- one paying tool at a time: handlers run in worker threads here, where in the scripts each
  payment has a process of its own.

Handlers block (HTTP, waiting), so each call runs in a worker thread; the event loop only relays.
Over stdio, stdout carries protocol messages only; logs and progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import queue
import re
import secrets
import sys
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, NoReturn

from . import __version__, cli, redact
from .errors import EXIT_PAYMENT_UNKNOWN, ComputeError, ConfigError, ConfirmationRequired, PolicyError, UsageError

SCRIPTS_DIR = Path(__file__).resolve().parent.parent
APPROVAL_TIMEOUT = 600.0  # seconds a payment waits for the human's answer before it is dropped
APPROVAL_KEY = "approve_payment"
APPROVAL_SCHEMA = {
    "type": "object",
    "properties": {
        "approve": {"type": "boolean", "title": "Approve this payment", "description": "Sign and send the payment shown above", "default": False},
    },
    "required": ["approve"],
}
SPENDS_META_KEY = "x402-compute/spends"

# Options every script has that are the server's to set, never the model's.
# The server's own options, applied to every call; never a tool input (a model must not be able to
# send signed or paying requests over plain http: --allow-insecure-http is the human's, at start).
SERVER_OPTIONS = frozenset({"help", "version", "output", "base_url", "env_file", "timeout", "verbose", "allow_insecure_http",
                            # a human's decision, not the server's either: never set over MCP (ssh_exec, --wait-ssh)
                            "allow_private_address"})
# A paying tool never takes these: approval is the server's (spending switch, elicitation), a model
# may not lift the human's cap or skip the unresolved-payment guard, and quoting is its own tool.
PAYING_HIDDEN = frozenset({"quote", "yes", "max_usd", "ignore_unresolved"})
WAIT_OPTIONS = frozenset({"wait", "wait_ssh", "wait_timeout", "poll_interval"})

READ, WRITE, DESTRUCTIVE, SPEND = "read", "write", "destructive", "spend"


# -- the tools ---------------------------------------------------------------------------------


def _script(name: str) -> Callable[[], tuple[argparse.ArgumentParser, Callable]]:
    """A script's parser ``p`` and ``handler`` (the convention every script in scripts/ follows)."""

    def load():
        path = SCRIPTS_DIR / name
        spec = importlib.util.spec_from_file_location(f"_x402_script_{path.stem}", path)
        if spec is None or spec.loader is None or not path.is_file():
            raise FileNotFoundError(path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod.p, mod.handler

    return load


def _wait_command():
    from . import wait

    return wait.parser(), wait.handler


@dataclass
class ToolSpec:
    name: str
    title: str
    source: Callable[[], tuple[argparse.ArgumentParser, Callable]]
    kind: str
    mirrors: str  # what a script user would type, for the description
    fixed: tuple[str, ...] = ()  # flags always passed (e.g. --quote)
    hidden: frozenset[str] = frozenset()  # the script's options that are not tool arguments
    confirm: bool = False  # a `confirm` argument stands for the script's --yes
    idempotent: bool = False
    note: str = ""

    @cached_property
    def command(self) -> tuple[argparse.ArgumentParser, Callable]:
        return self.source()

    @property
    def parser(self) -> argparse.ArgumentParser:
        return self.command[0]

    @property
    def handler(self) -> Callable:
        return self.command[1]

    def actions(self) -> list[argparse.Action]:
        return [
            a
            for a in self.parser._actions
            if a.dest not in SERVER_OPTIONS and a.dest not in self.hidden and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))
        ]

    # -- the input schema, from the script's parser --
    @cached_property
    def input_schema(self) -> dict:
        props: dict[str, dict] = {}
        required: list[str] = []
        titles = {id(a): g.title for g in self.parser._action_groups for a in g._group_actions}
        for a in self.actions():
            props[a.dest] = _property(a, titles.get(id(a)))
            if a.required:
                required.append(a.dest)
        if self.confirm:
            props["confirm"] = {
                "type": "boolean",
                "description": "Must be true to do it (the script's --yes): show the user what the call without it returned, and set it only once they agree.",
            }
        schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            schema["required"] = required
        return schema

    @cached_property
    def description(self) -> str:
        parts = [(self.parser.description or "").strip()]
        groups = [g for g in self.parser._mutually_exclusive_groups if g.required]
        for g in groups:
            names = [a.dest for a in g._group_actions if a.dest in self.input_schema["properties"]]
            if names:
                parts.append(f"Give exactly one of: {', '.join(names)}.")
        if self.note:
            parts.append(self.note)
        parts.append(f"Same as `{self.mirrors}`; the result is that script's JSON document.")
        return "\n\n".join(p for p in parts if p)

    def validate(self, arguments: dict) -> UsageError | None:
        import jsonschema

        validator = jsonschema.Draft202012Validator(self.input_schema)
        errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if not errors:
            # argparse drops a bare "--" even from --flag=-- and after the "--" separator, so the
            # script would see another value than the one sent; no argument means "--" anyway.
            dashes = sorted(k for k, v in arguments.items() if v == "--")
            if dashes:
                return UsageError(f"Invalid arguments for {self.name}: {dashes[0]}: '--' is not a valid value.")
            return None
        e = errors[0]
        where = ".".join(str(x) for x in e.absolute_path) or "arguments"
        message = e.message if len(e.message) <= 300 else e.message[:300] + "…"
        return UsageError(f"Invalid arguments for {self.name}: {where}: {message}", hint=f"See the input schema of {self.name}.")

    def argv(self, arguments: dict, server_argv: list[str]) -> list[str]:
        """The script's command line for these (already validated) arguments.

        Options use the ``--flag=value`` form and positionals follow ``--``, so no value can
        be read as another flag whatever text it holds."""
        opts: list[str] = []
        positionals: list[str] = []
        for a in self.actions():
            value = arguments.get(a.dest)
            if value is None:
                continue
            if not a.option_strings:
                positionals.extend(_text(v, a) for v in value) if isinstance(value, list) else positionals.append(_text(value, a))
            elif isinstance(a, argparse._StoreTrueAction):
                if value:
                    opts.append(_long_flag(a))
            else:
                opts.append(f"{_long_flag(a)}={_text(value, a)}")
        if self.confirm and arguments.get("confirm") is True:
            opts.append("--yes")
        return [*self._server_options(server_argv), "--output", "json", *self.fixed, *opts, *(["--", *positionals] if positionals else [])]

    def _server_options(self, server_argv: list[str]) -> list[str]:
        """The server's ``--flag=value`` options this script has with the same meaning: ssh_exec's
        ``--timeout`` is the remote command's limit, not the server's HTTP deadline, so it is not passed."""
        by_flag = {f: a.dest for a in self.parser._actions for f in a.option_strings}
        out = []
        for opt in server_argv:
            flag = opt.split("=", 1)[0]
            if by_flag.get(flag) == flag[2:].replace("-", "_"):
                out.append(opt)
        return out

    def tool(self):
        import mcp_types as types

        spends = self.kind == SPEND
        annotations = types.ToolAnnotations(
            title=self.title,
            read_only_hint=self.kind == READ,
            # Money leaving the wallet cannot be undone either: clients that ask before destructive
            # tools then ask before paying too.
            destructive_hint=self.kind in (DESTRUCTIVE, SPEND),
            idempotent_hint=self.kind == READ or self.idempotent,
            open_world_hint=True,
        )
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=self.input_schema,
            output_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
            annotations=annotations,
            meta={SPENDS_META_KEY: spends},
        )


def _long_flag(a: argparse.Action) -> str:
    return next((s for s in a.option_strings if s.startswith("--")), a.option_strings[0])


def _text(value: Any, a: argparse.Action) -> str:
    if a.type is int and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _property(a: argparse.Action, group: str | None = None) -> dict:
    if isinstance(a, argparse._StoreTrueAction):
        prop: dict[str, Any] = {"type": "boolean"}
    elif a.type is int:
        prop = {"type": "integer"}
    elif a.type is float:
        prop = {"type": "number"}
    elif isinstance(getattr(a.type, "json_schema", None), dict):  # a checked type that says what it takes
        prop = dict(a.type.json_schema)
    elif a.type is None and a.nargs == "*" and not a.option_strings:  # ssh_exec's COMMAND words
        prop = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    elif a.type is None and a.nargs in (None, "?"):
        # USD amounts are decimal text in the scripts (exact); a JSON number is accepted too.
        prop = {"anyOf": [{"type": "string"}, {"type": "number"}]} if a.metavar == "USD" else {"type": "string"}
    else:  # not used by any exposed script; refuse rather than guess
        raise TypeError(f"no JSON Schema mapping for option {a.dest!r} ({a!r})")
    if a.choices is not None:
        prop["enum"] = list(a.choices)
    flag = _long_flag(a) if a.option_strings else None
    # An option without help of its own (--hours) is described by its group ("prepaid period (required; ...)").
    text = (a.help or (group if group not in (None, "options", "positional arguments", "optional arguments") else "") or "").replace("%(default)s", str(a.default))
    if text and a.metavar and flag:
        text = f"{a.metavar}: {text}"
    prop["description"] = (text + (f" (script flag {flag})" if flag else "")).strip()
    if a.default not in (None, False, argparse.SUPPRESS):
        prop["default"] = a.default
    return prop


def _tools() -> tuple[ToolSpec, ...]:
    quote = frozenset({"yes", "max_usd", "ignore_unresolved", "quote", "confirm_quote"}) | WAIT_OPTIONS
    return (
        ToolSpec("browse_plans", "Browse plans", _script("browse_plans.py"), READ, "browse_plans.py"),
        ToolSpec("browse_regions", "Browse regions", _script("browse_regions.py"), READ, "browse_regions.py"),
        ToolSpec("browse_os", "Browse OS images", _script("browse_os.py"), READ, "browse_os.py"),
        ToolSpec(
            "quote_provision", "Quote a machine", _script("provision.py"), READ, "provision.py PLAN REGION --quote",
            fixed=("--quote",), hidden=quote,
            note="Signs and sends nothing: shows the price, the network, the payee and whether the spend policy allows it. Works with spending disabled.",
        ),
        ToolSpec(
            "provision", "Rent a machine (pays)", _script("provision.py"), SPEND, "provision.py PLAN REGION --yes", hidden=PAYING_HIDDEN,
            note="SPENDS MONEY. Refused (spending_disabled) unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1; "
            "the human may be asked to approve the payment. Call quote_provision first; confirm_quote: <its quote_id> then pays "
            "exactly those terms or nothing. If it fails with payment_unknown, call reconcile and never call provision again for that order.",
        ),
        ToolSpec(
            "quote_extend", "Quote an extension", _script("extend_instance.py"), READ, "extend_instance.py ID --quote",
            fixed=("--quote",), hidden=quote, note="Signs and sends nothing. Works with spending disabled.",
        ),
        ToolSpec(
            "extend_instance", "Extend a machine (pays)", _script("extend_instance.py"), SPEND, "extend_instance.py ID --yes", hidden=PAYING_HIDDEN,
            note="SPENDS MONEY. Refused (spending_disabled) unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1. "
            "Call quote_extend first. On payment_unknown, call reconcile; never extend again for that payment.",
        ),
        ToolSpec("list_instances", "List machines", _script("list_instances.py"), READ, "list_instances.py"),
        ToolSpec("instance_details", "Machine details", _script("instance_details.py"), READ, "instance_details.py ID"),
        ToolSpec(
            "wait_for_instance", "Wait for a machine", _wait_command, READ, "provision.py ... --wait (for an existing instance)",
            note="Sends progress notifications while the machine boots and stops at once when the call is cancelled.",
        ),
        ToolSpec(
            "ssh_exec", "Run a command on a machine", _script("ssh_exec.py"), DESTRUCTIVE, "ssh_exec.py ID -- COMMAND...",
            hidden=frozenset({"accept_host_key_change", "stdin_file"}),
            note="Runs the command on the machine over SSH, as root by default: it can change or delete anything there. command is a "
            "list of words: one word is a shell command line, several are passed as exactly those words. Bounded by timeout (default "
            "120 s, then the error command_timeout with the output so far) and max_output per stream; a non-zero exit_status is still a "
            "result. The host key is pinned on first contact; host_key_changed or host_key_mismatch means stop and tell the user.",
        ),
        ToolSpec(
            "ai_chat", "Chat with an AI Machine", _script("ai_chat.py"), WRITE, "ai_chat.py ID PROMPT",
            note="Sends one chat completion to the instance's own OpenAI-compatible endpoint (http://<its ip>:<port>/v1, read from "
            "its record) with the API key provision saved for it; the key never appears in the result. It is plain http to the "
            "machine's IP: do not send secrets in the prompt. Bounded by reply_timeout (default 120 s) and 1 MiB of answer.",
        ),
        ToolSpec(
            "quote_resize", "Quote a resize", _script("resize_instance.py"), READ, "resize_instance.py ID PLAN --quote",
            fixed=("--quote",), hidden=frozenset({"yes", "quote"}),
            note="The checks, the old and new expiry, the credit carried over and the downtime; calls nothing that changes the machine.",
        ),
        ToolSpec("resize_instance", "Resize a machine", _script("resize_instance.py"), DESTRUCTIVE, "resize_instance.py ID PLAN",
                 hidden=frozenset({"yes", "quote"}), note="Call quote_resize first to see what the change means."),
        ToolSpec(
            "destroy_instance", "Destroy a machine", _script("destroy_instance.py"), DESTRUCTIVE, "destroy_instance.py ID --yes",
            hidden=frozenset({"yes"}), confirm=True, idempotent=True,
            note="Without confirm: true nothing is destroyed and the error's details show what would be lost.",
        ),
        ToolSpec(
            "get_one_time_password", "Reveal the root password", _script("get_one_time_password.py"), WRITE, "get_one_time_password.py ID",
            hidden=frozenset({"show"}),
            note="Over MCP the password is never returned: credentials_file names the 0600 file that holds it; give that path to the user.",
        ),
        ToolSpec(
            "create_api_key", "Create an API key", _script("create_api_key.py"), WRITE, "create_api_key.py --save",
            fixed=("--save",), hidden=frozenset({"save", "show"}),
            note="Over MCP the key is always saved (0600, used by later calls when COMPUTE_API_KEY is unset) and only its last four characters are returned.",
        ),
        ToolSpec("list_api_keys", "List API keys", _script("list_api_keys.py"), READ, "list_api_keys.py"),
        ToolSpec(
            "revoke_api_key", "Revoke an API key", _script("revoke_api_key.py"), DESTRUCTIVE, "revoke_api_key.py KEY_ID --yes",
            hidden=frozenset({"yes"}), confirm=True, idempotent=True,
        ),
        ToolSpec("credits_balance", "Credit balance", _script("credits_balance.py"), READ, "credits_balance.py"),
        ToolSpec(
            "quote_topup", "Quote a credits top-up", _script("credits_topup.py"), READ, "credits_topup.py --amount USD --quote",
            fixed=("--quote",), hidden=quote, note="Signs and sends nothing. Works with spending disabled.",
        ),
        ToolSpec(
            "credits_topup", "Buy credits (pays)", _script("credits_topup.py"), SPEND, "credits_topup.py --amount USD --yes", hidden=PAYING_HIDDEN,
            note="SPENDS MONEY. Refused (spending_disabled) unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1.",
        ),
        ToolSpec("budget_status", "Spend budget", _script("budget.py"), READ, "budget.py"),
        ToolSpec(
            "reconcile", "Reconcile a payment", _script("reconcile.py"), WRITE, "reconcile.py [JOURNAL_ID]", idempotent=True,
            note="Never signs. resend: true re-sends the identical stored payment with the same Idempotency-Key (never a second charge).",
        ),
    )


# -- settings ----------------------------------------------------------------------------------


@dataclass
class ServerConfig:
    allow_spend: bool = False
    confirm_above_usd: Decimal = Decimal(0)
    script_argv: list[str] = field(default_factory=list)  # the server's --env-file/--base-url/... for every call

    @classmethod
    def load(cls, args: argparse.Namespace) -> "ServerConfig":
        from .config import load_settings, parse_usd

        # The scripts' own loader: the same environment and --env-file, checked before serving.
        env = load_settings(env_file=args.env_file, base_url=args.base_url, timeout=args.timeout).env
        allow = (env.get("COMPUTE_MCP_ALLOW_SPEND") or "").strip().lower()
        if allow not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError(f"COMPUTE_MCP_ALLOW_SPEND must be 1 (spending on) or 0 (off, the default), got {allow!r}.")
        above = (env.get("COMPUTE_MCP_CONFIRM_ABOVE_USD") or "").strip() or "0"
        argv: list[str] = []
        if args.env_file:
            argv.append(f"--env-file={args.env_file}")
        if args.base_url:
            argv.append(f"--base-url={args.base_url}")
        if args.timeout is not None:
            argv.append(f"--timeout={args.timeout}")
        if args.verbose:
            argv.append("--verbose")
        if args.allow_insecure_http:
            argv.append("--allow-insecure-http")
        return cls(allow in ("1", "true", "yes", "on"), parse_usd(above, "COMPUTE_MCP_CONFIRM_ABOVE_USD"), argv)


# -- one tool call, run in a worker thread ----------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _clean(text: Any) -> str:
    """Server-supplied text shown to the human in the client's dialog: no control characters."""
    return _CONTROL.sub("?", str(text))


def _amount_usd(terms: dict) -> Decimal | None:
    for key in ("amount_usd", "total_usd"):
        try:
            if terms.get(key) is not None:
                return Decimal(str(terms[key]))
        except InvalidOperation:
            return None
    return None


def quote_terms(fields: dict) -> dict:
    """A recorded quote's pinned fields (payments.quotes) in the terms shape approval_message reads."""
    from .money import atomic_to_usd, plain
    from .networks import NETWORKS

    net = NETWORKS.get(fields.get("network") or "")
    amount = None
    if net is not None and str(fields.get("amount_atomic") or "").isdigit():
        amount = plain(atomic_to_usd(int(fields["amount_atomic"]), net.decimals))
    what = " ".join(str(fields[k]) for k in ("action", "plan", "instance_id") if fields.get(k))
    where = f" in {fields['region']}" if fields.get("region") else ""
    hours = f" for {fields['hours']} h" if fields.get("hours") else ""
    return {
        "summary": f"{what}{where}{hours}",
        "amount_usd": amount,
        "total_usd": fields.get("total_usd"),
        "asset_symbol": net.symbol if net is not None else None,
        "network": fields.get("network") or fields.get("method"),
        "payee": fields.get("payee"),
        "payee_status": "as quoted",
    }


def approval_message(question: str, terms: dict) -> str:
    """What the human approves: what, how long, amount, network, payee, budget left."""
    lines = [question]

    def add(label: str, value: Any) -> None:
        if value not in (None, ""):
            lines.append(f"{label}: {value}")

    add("What", terms.get("summary"))
    add("Hours", terms.get("hours"))
    amount = terms.get("amount_usd") or terms.get("total_usd")
    add("Amount", f"{amount} {terms.get('asset_symbol') or 'USD'}" if amount is not None else None)
    add("Network", terms.get("network") or terms.get("method"))
    if terms.get("payee"):
        add("Payee", f"{terms['payee']} ({terms.get('payee_status') or 'unchecked'})")
    budget = terms.get("budget")
    if isinstance(budget, dict) and budget.get("remaining_usd") is not None:
        add("Budget left after it", f"{budget['remaining_usd']} of {budget.get('limit_usd')} USD per {budget.get('window')}")
    elif isinstance(budget, dict):
        add("Budget", "off (COMPUTE_BUDGET_USD=off)")
    ra = terms.get("recipient_account")
    if isinstance(ra, dict) and ra.get("create"):
        add("Also", f"creates the payee's token account at your cost of {ra.get('create_total_sol')} SOL")
    lines.append("Approve to sign and send this payment; decline and nothing is signed.")
    return _clean("\n".join(str(x) for x in lines))


class McpContext(cli.Context):
    """The scripts' Context, with the terminal replaced by the MCP client."""

    def __init__(self, args: argparse.Namespace, run: "Run") -> None:
        super().__init__(args)
        self._run = run

    @staticmethod
    def interactive() -> bool:
        return False

    def progress(self, message: str) -> None:
        super().progress(message)  # the server's log (stderr), as the scripts do
        self._run.report(redact.scrub(message))

    def sleep(self, seconds: float) -> None:
        self._run.sleep(seconds)

    def confirm(self, question: str, *, details: Any = None, flag: str = "--yes") -> None:
        if self._run.spec.kind == SPEND:
            self._run.approve(question, details if isinstance(details, dict) else {})
            return
        if getattr(self.args, "yes", False):
            return
        raise ConfirmationRequired(
            f"{question} Confirmation needed: call {self._run.spec.name} again with confirm: true.",
            details=details,
            hint="Nothing was done. Show these details to the user and call again with confirm: true only once they agree.",
        )


class Run:
    """One tool call: the script's handler in a thread, and the channel back to the event loop.

    The thread posts ("progress", text), ("tick", None), ("ask", (message, schema)) and
    ("done", document) events; the request handler relays progress and answers "ask" by
    eliciting (or, on protocol 2026-07-28, by returning an InputRequiredResult and resuming
    when the client retries with the answer)."""

    def __init__(self, app: "McpApp", spec: ToolSpec, argv: list[str], *, can_elicit: bool, digest: str) -> None:
        import anyio
        import anyio.lowlevel

        self.app, self.spec, self.argv, self.can_elicit, self.digest = app, spec, argv, can_elicit, digest
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self._answers: queue.Queue = queue.Queue()
        self._send, self._recv = anyio.create_memory_object_stream(math.inf)
        self._loop = anyio.lowlevel.current_token()
        self._last = spec.name
        self._started = time.monotonic()
        self._notified = 0
        self._spend_lock_held = False

    # -- thread side --
    def start(self) -> None:
        # Not a daemon: a payment in flight at shutdown finishes and is journalled.
        threading.Thread(target=self._work, name=f"mcp-{self.spec.name}", daemon=False).start()

    def _work(self) -> None:
        # The secrets this call loads and sends are scrubbed from what it reports, then forgotten.
        with redact.scope():
            try:
                if self.spec.kind == SPEND:
                    self._acquire_spend_lock()
                out = cli.execute(self.spec.parser, self._handler, self.argv, context=lambda args: McpContext(args, self))
            except KeyboardInterrupt:
                err = ComputeError("Interrupted.", code="interrupted")
                out = cli.Outcome({"ok": False, "error": err.to_dict()}, None, 130)
            except BaseException as e:  # noqa: BLE001 - the request must get an answer whatever happened
                err = ComputeError(f"Internal error: {type(e).__name__}: {e}", code="internal_error")
                out = cli.Outcome({"ok": False, "error": err.to_dict()}, None, 1)
            finally:
                self._release_spend_lock()
            doc = cli.document(out.doc)
        if out.exit_code == EXIT_PAYMENT_UNKNOWN:
            doc = _payment_unknown(self.spec, doc)
        self.finished.set()
        self._post(("done", doc))

    def _handler(self, ctx: "McpContext"):
        if self.spec.kind == SPEND and getattr(ctx.args, "confirm_quote", None):
            self._approve_quote(ctx)
        return self.spec.handler(ctx)

    def _approve_quote(self, ctx: "McpContext") -> None:
        """--confirm-quote stands for the human's approval of that quote, so the payment flow asks
        nothing more. Over MCP the model passes it: when the client can ask, the human approves the
        recorded quote here first (same rules as any payment), and the flow then pays only terms
        identical to it, or nothing."""
        from .payments.quotes import Quotes

        rec = Quotes(ctx.settings.state_dir).load(ctx.args.confirm_quote)  # the handler's own check, earlier
        self.approve(f"Pay quote {rec['quote_id']} exactly as quoted?", quote_terms(rec["fields"]))

    def _acquire_spend_lock(self) -> None:
        told = False
        while not self.app.spend_lock.acquire(timeout=0.2):
            if self.cancelled.is_set():
                raise KeyboardInterrupt
            if not told:
                self.report("Waiting for another payment of this server to finish (one paying tool at a time)")
                told = True
        self._spend_lock_held = True

    def _release_spend_lock(self) -> None:
        if self._spend_lock_held:
            self._spend_lock_held = False
            self.app.spend_lock.release()

    def _post(self, item: tuple) -> None:
        import anyio.from_thread

        try:
            anyio.from_thread.run_sync(self._send.send_nowait, item, token=self._loop)
        except Exception:  # the event loop is gone (server shutting down): nobody to tell
            pass

    def report(self, message: str) -> None:
        self._last = message
        self._post(("progress", message))

    def sleep(self, seconds: float) -> None:
        # Only the wait loop sleeps, and only after any payment is done: another payment may start.
        self._release_spend_lock()
        self._post(("tick", None))
        if self.cancelled.wait(max(0.0, seconds)):
            raise KeyboardInterrupt  # what Ctrl-C raises in a script: the document says "interrupted"

    def approve(self, question: str, terms: dict) -> None:
        """Go ahead with a payment, or raise ``declined_by_user``. Spending itself was switched
        on by the human (COMPUTE_MCP_ALLOW_SPEND); this asks them about this payment when the
        client can ask, unless it is within COMPUTE_MCP_CONFIRM_ABOVE_USD."""
        if not self.can_elicit:
            self.report(f"Paying without a question: the MCP client cannot ask the user (spending is on): {question}")
            return
        amount = _amount_usd(terms)
        side_cost = isinstance(terms.get("recipient_account"), dict) and terms["recipient_account"].get("create")
        if amount is not None and amount <= self.app.config.confirm_above_usd and not side_cost:
            self.report(f"Paying without a question: {amount} USD is within COMPUTE_MCP_CONFIRM_ABOVE_USD={self.app.config.confirm_above_usd}")
            return
        self._post(("ask", (redact.scrub(approval_message(question, terms)), APPROVAL_SCHEMA)))
        try:
            action, content = self._answers.get(timeout=APPROVAL_TIMEOUT)
        except queue.Empty:
            action, content = "timeout", None
        if action == "accept" and isinstance(content, dict) and content.get("approve") is True:
            self.report("The user approved the payment")
            return
        why = {
            "decline": "The user declined the payment",
            "cancel": "The user dismissed the approval request",
            "timeout": f"No answer to the approval request within {APPROVAL_TIMEOUT:g} s",
            "accept": "The user did not tick 'approve'",
        }.get(action, "The payment was not approved")
        raise PolicyError(
            f"{why}; nothing was signed or sent.",
            code="declined_by_user",
            details={"answer": action, "quote": terms},
            hint="Do not call this tool again for the same purchase unless the user asks for it.",
        )

    # -- event-loop side --
    def answer(self, action: str, content: dict | None) -> None:
        self._answers.put((action, content))

    def cancel(self) -> None:
        self.cancelled.set()
        self._answers.put(("cancel", None))

    async def next_event(self, ctx) -> tuple[str, Any]:
        while True:
            kind, value = await self._recv.receive()
            if kind == "progress" or kind == "tick":
                await self._notify(ctx, value if kind == "progress" else f"{self._last} ({time.monotonic() - self._started:.0f} s)")
                continue
            return kind, value

    async def _notify(self, ctx, message: str) -> None:
        self._notified += 1
        try:
            await ctx.session.report_progress(self._notified, None, message)
        except Exception:  # a client that went away must not stop the command
            pass


def _can_elicit(ctx) -> bool:
    caps = ctx.session.client_capabilities
    el = getattr(caps, "elicitation", None)
    # An empty elicitation capability means form mode (the only mode before 2025-11-25).
    return el is not None and (el.form is not None or el.url is None)


def _digest(name: str, arguments: dict) -> str:
    return hashlib.sha256(json.dumps([name, arguments], sort_keys=True, default=str).encode()).hexdigest()


def _payment_unknown(spec: ToolSpec, doc: dict) -> dict:
    err = dict(doc.get("error") or {})
    details = dict(err.get("details") or {}) if isinstance(err.get("details"), dict) else {"details": err.get("details")}
    jid = details.get("journal_id")
    never = f"Never call {spec.name} again for this order: that would sign a second payment."
    err["code"] = "payment_unknown"
    err["message"] = f"{err.get('message', '')} {never}".strip()
    err["hint"] = f"Call the reconcile tool with journal_id {jid!r}: it looks the order up and asks the chain; resend: true re-sends the same signed payment, never a new one. {never}"
    details["reconcile_tool"] = {"name": "reconcile", "arguments": {"journal_id": jid}}
    err["details"] = details
    return {**doc, "error": err}


# -- the server --------------------------------------------------------------------------------

INSTRUCTIONS = """\
Rent VPS and GPU machines paid per prepaid hour in stablecoins (x402 / MPP).
Flow: browse_plans (and browse_regions, browse_os) -> quote_provision -> provision (wait: true, or wait_for_instance) -> instance_details / list_instances -> extend_instance or destroy_instance.
Every result is the JSON document of the matching script in scripts/: {"ok": true, ...}, or a tool error {"ok": false, "error": {"code", "message", "hint", ...}}.
A hint naming a script flag (--days) means the tool argument of the same name in snake_case (days); a script name (instance_details.py) means the tool of that name.
Spending tools (provision, extend_instance, credits_topup) are refused with spending_disabled unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1: tell the user, never look for another way to pay. The human may be asked to approve each payment; declined_by_user means stop.
The spend cap, the rolling budget (budget_status shows it), allow-lists, price checks and payee pinning are the human's settings: report refusals (spend_cap_exceeded, budget_exceeded, network_not_allowed, instance_limit, ...) with their figures, never try to get around them.
payment_unknown: the payment went out and its outcome is unknown. Call reconcile with the journal_id; never call the paying tool again for that order.
destroy_instance and revoke_api_key need confirm: true: ask the user first.
"""


class McpApp:
    def __init__(self, config: ServerConfig, tools: tuple[ToolSpec, ...] | None = None) -> None:
        self.config = config
        self.spend_lock = threading.Lock()
        self.tools: dict[str, ToolSpec] = {}
        for spec in tools if tools is not None else _tools():
            try:
                spec.input_schema  # loads the script and maps its parser
            except FileNotFoundError as e:
                print(f"x402-compute mcp: tool {spec.name} left out: {e} is missing", file=sys.stderr)
                continue
            self.tools[spec.name] = spec
        self._parked: dict[str, Run] = {}
        self._runs: set[Run] = set()

    def server(self):
        from mcp.server.lowlevel.server import Server

        return Server(
            "x402-compute",
            version=__version__,
            title="x402-compute",
            instructions=INSTRUCTIONS,
            lifespan=self._lifespan,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            get_tool_input_schema=lambda name: self.tools[name].input_schema if name in self.tools else None,
        )

    @asynccontextmanager
    async def _lifespan(self, _server):
        try:
            yield {}
        finally:
            for run in list(self._runs):  # stop waits and pending approvals; payments in flight finish
                run.cancel()

    async def _list_tools(self, ctx, params):
        import mcp_types as types

        return types.ListToolsResult(tools=[spec.tool() for spec in self.tools.values()])

    async def _call_tool(self, ctx, params):
        import anyio
        from mcp.shared.exceptions import MCPError
        from mcp_types import INVALID_PARAMS

        if params.request_state is not None:
            return await self._resume(ctx, params)
        spec = self.tools.get(params.name)
        if spec is None:
            raise MCPError(INVALID_PARAMS, f"Unknown tool: {params.name!r}")
        arguments = params.arguments or {}
        bad = spec.validate(arguments)
        if bad is not None:
            return self._error(bad)
        if spec.kind == SPEND and not self.config.allow_spend:
            return self._error(
                PolicyError(
                    f"Spending is disabled on this MCP server: {spec.name} was refused and nothing was signed or sent.",
                    code="spending_disabled",
                    hint="Show the user the quote (quote_provision / quote_extend) and ask them to turn spending on by "
                    "restarting the server with COMPUTE_MCP_ALLOW_SPEND=1 in its environment. Do not look for another way to pay.",
                )
            )
        run = Run(self, spec, spec.argv(arguments, self.config.script_argv), can_elicit=_can_elicit(ctx), digest=_digest(params.name, arguments))
        self._runs.add(run)
        run.start()
        try:
            return await self._drive(ctx, run)
        except anyio.get_cancelled_exc_class():
            run.cancel()
            raise

    async def _resume(self, ctx, params):
        """The 2026-07-28 retry of a call that asked for approval: hand the answer to its parked thread."""
        import anyio
        import mcp_types as types

        run = self._parked.pop(params.request_state, None)
        if run is None or run.spec.name != params.name or run.digest != _digest(params.name, params.arguments or {}):
            if run is not None:
                run.cancel()  # a retry for other arguments does not approve this payment
            return self._error(
                PolicyError(
                    "That approval request is unknown or was answered already; nothing was signed.",
                    code="approval_expired",
                    hint="Call the tool again without request state.",
                )
            )
        reply = (params.input_responses or {}).get(APPROVAL_KEY)
        if isinstance(reply, types.ElicitResult):
            run.answer(reply.action, reply.content)
        else:
            run.answer("cancel", None)
        try:
            return await self._drive(ctx, run)
        except anyio.get_cancelled_exc_class():
            run.cancel()
            raise

    async def _drive(self, ctx, run: Run):
        import mcp_types as types
        from mcp_types.version import MODERN_PROTOCOL_VERSIONS

        while True:
            kind, value = await run.next_event(ctx)
            if kind == "done":
                self._runs.discard(run)
                return _tool_result(value)
            message, schema = value
            if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                # 2026-07-28 forbids server-to-client requests: the question rides the result and
                # the thread stays parked until the client retries with the answer.
                for token, parked in list(self._parked.items()):
                    if parked.finished.is_set():
                        del self._parked[token]
                token = secrets.token_urlsafe(32)
                self._parked[token] = run
                ask = types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))
                return types.InputRequiredResult(input_requests={APPROVAL_KEY: ask}, request_state=token)
            try:
                reply = await ctx.session.elicit_form(message, schema, related_request_id=ctx.request_id)
                run.answer(reply.action, reply.content)
            except Exception as e:  # the client could not ask: treat as not approved
                print(f"x402-compute mcp: elicitation failed ({type(e).__name__}: {e}); the payment is not approved", file=sys.stderr)
                run.answer("cancel", None)

    @staticmethod
    def _error(e: ComputeError):
        return _tool_result(cli.document({"ok": False, "error": e.to_dict()}))


def _tool_result(doc: dict):
    import mcp_types as types

    text = json.dumps(doc, ensure_ascii=False)
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], structured_content=doc, is_error=doc.get("ok") is not True)


# -- the command -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "mcp_server.py",
        "Serve every x402-compute command as an MCP tool, over stdio (default) or Streamable HTTP\n"
        "on 127.0.0.1. Settings come from the environment or --env-file exactly as for the scripts.\n\n"
        "Spending tools (provision, extend_instance, credits_topup) are refused until the server is\n"
        "started with COMPUTE_MCP_ALLOW_SPEND=1; then the client's user is asked to approve each\n"
        "payment when the client supports elicitation (payments up to COMPUTE_MCP_CONFIRM_ABOVE_USD,\n"
        "default 0, are not asked about). stdout carries only MCP messages; logs go to stderr.",
        examples="python scripts/mcp_server.py\nCOMPUTE_MCP_ALLOW_SPEND=1 python scripts/mcp_server.py --env-file ~/.x402-compute.env\n"
        "python scripts/mcp_server.py --http 8765",
        output=False,
        exit_codes="exit codes: 0 stopped, 2 usage or configuration error before serving (one JSON document on stdout, as for every script), 130 interrupted",
    )
    p.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio (0 = any free port)")
    return p


def _fail(e: ComputeError, code: int = 2) -> NoReturn:
    # Before serving, the script contract holds: one JSON document on stdout. Hosts show a
    # server's stderr, not what it wrote on stdout before the protocol began, so say it there too.
    doc = cli.document({"ok": False, "error": e.to_dict()})
    print(f"x402-compute mcp: not started: {doc['error']['message']}" + (f" ({doc['error']['hint']})" if doc["error"].get("hint") else ""), file=sys.stderr, flush=True)
    print(cli.dumps(doc), flush=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> NoReturn:
    try:
        args = parser().parse_args(argv)
        if args.http is not None and not 0 <= args.http <= 65535:
            raise UsageError(f"--http takes a port number 0-65535, got {args.http}.")
        config = ServerConfig.load(args)
    except ComputeError as e:
        _fail(e)
    try:
        import anyio  # noqa: F401
        import mcp  # noqa: F401
    except ImportError as e:
        _fail(ConfigError(f"The MCP server needs the mcp package: {e}.", code="missing_dependency", hint="pip install -r requirements.txt (beside SKILL.md)."))
    app = McpApp(config)
    try:
        if args.http is None:
            _serve_stdio(app)
        else:
            _serve_http(app, args.http)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)


def _serve_stdio(app: McpApp) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    server = app.server()

    async def serve():
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(serve)


def _serve_http(app: McpApp, port: int) -> None:
    import uvicorn

    host = "127.0.0.1"  # never another interface: the tools hold a wallet
    starlette_app = app.server().streamable_http_app(host=host)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            for s in self.servers:
                for sock in s.sockets:
                    print(f"x402-compute MCP server: http://{host}:{sock.getsockname()[1]}/mcp", file=sys.stderr, flush=True)

    Server(uvicorn.Config(starlette_app, host=host, port=port, log_level="warning", lifespan="on")).run()
