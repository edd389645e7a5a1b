"""The MCP server: the scripts' commands as MCP tools, one more front door beside the scripts.

A tool call becomes the argv of the tool's script (built from its snake_case arguments), parsed
by that script's own parser and run by that script's own handler through ``cli.execute``. Only
the Context differs: its ``confirm`` asks the MCP client's human (elicitation) instead of a
terminal, its ``progress`` also sends MCP progress notifications, and its ``sleep`` (the poll
interval of ``--wait``) ends at once when the client cancels. So every check, cap, journal entry
and error is the script's own, and a result's structured content is the script's JSON document.

What this front door adds, because an MCP host is not a human at a terminal, and the model is
not the human (issue 19):
- spending tools refuse with ``spending_disabled`` (nothing signed, nothing sent) unless the server
  was started with ``COMPUTE_MCP_ALLOW_SPEND=1``;
- with spending on, each payment is the human's to approve, through elicitation. A client that
  cannot ask gets ``approval_unavailable`` (nothing signed) unless the human started the server
  with ``COMPUTE_MCP_APPROVAL=unattended``: then the cap, the budget and the allow-lists are the
  only bounds. ``COMPUTE_MCP_CONFIRM_ABOVE_USD`` skips the question only below it and only to a
  payee already pinned. A payee change, a recipient account created at the wallet's cost, or a
  price the catalog could not check is always asked, and refused when the client cannot ask;
  a ``confirm_quote`` the model passes is shown to the human, never taken as the approval;
- no human-only decision is a tool argument (``cli.HUMAN_ONLY``: ``--yes``, ``--max-usd``,
  ``--accept-payee-change``, ...), nor any option naming a local file (``cli.names_a_path``):
  ``user_data`` is inline text, bounded and refused when it looks like a key or a secret of the
  skill's; the SSH identity is the server's ``--identity`` or the skill's own key;
- ``--http`` serves only requests carrying the server's bearer token (401 before any tool runs);
- destroy and revoke need ``confirm: true``; secrets never leave in a result (the one-time password
  stays in its 0600 file, a new API key is saved and shown as its last four characters);
- options that point the wallet at another server (``--base-url``, ``--env-file``) are not tool
  arguments: the server's own command line and environment set them;
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
import hmac
import importlib.util
import os
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
from .cli import HUMAN_ONLY, names_a_path
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
INLINE_MAX_BYTES = 64 * 1024  # user_data over MCP: inline text, at most this many UTF-8 bytes
TOKEN_FILE_NAME = "mcp-http-token"  # in the state folder, 0600: the --http endpoint's bearer token

# Options every script has that are the server's to set, never the model's.
# The server's own options, applied to every call; never a tool input (a model must not be able to
# send signed or paying requests over plain http: --allow-insecure-http is the human's, at start).
SERVER_OPTIONS = frozenset({"help", "version", "output", "base_url", "env_file", "timeout", "verbose", "allow_insecure_http"})
# A paying tool never takes these: approval is the human's (spending switch, elicitation), and
# quoting is its own tool. (Human-only decisions and paths are left out of every tool anyway.)
PAYING_HIDDEN = frozenset({"quote", "yes", "max_usd", "ignore_unresolved"})
# Refusals the human may lift for one payment when the client can ask them: what the server then
# adds to the script's command line (never a tool input). The quote shown to them is made with it.
HUMAN_DECISIONS = {
    "payee_changed": ("--accept-payee-change", "The payee changed since the last payment on this network: accept the new payee and pay it?"),
    "recipient_token_account_missing": ("--create-recipient-account", "The payee has no token account: create it at your wallet's cost, then pay?"),
    "price_unknown": (None, "The price could not be checked against the catalog: pay exactly the amount shown?"),
}
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
    inline: tuple[str, ...] = ()  # options naming a file whose tool argument is the content itself (user_data)
    confirm: bool = False  # a `confirm` argument stands for the script's --yes
    idempotent: bool = False
    note: str = ""
    # A paying tool that is a dry run unless called with dry_run: false (keepalive): otherwise the
    # call is the script with --dry-run, read-only, allowed with spending off; with it, a paying
    # call under the same rules as every other (spending switch, approval, one payment at a time).
    pay_switch: bool = False

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
        """The script's options that are tool arguments: never one the server owns, one the spec
        hides, a human-only decision, or one naming a local file (unless its content is taken inline)."""
        return [
            a
            for a in self.parser._actions
            if a.dest not in SERVER_OPTIONS and a.dest not in self.hidden and a.dest not in HUMAN_ONLY
            and (a.dest in self.inline or not names_a_path(a.dest, a.metavar))
            and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))
        ]

    # -- the input schema, from the script's parser --
    @cached_property
    def input_schema(self) -> dict:
        props: dict[str, dict] = {}
        required: list[str] = []
        titles = {id(a): g.title for g in self.parser._action_groups for a in g._group_actions}
        for a in self.actions():
            props[a.dest] = _inline_property(a) if a.dest in self.inline else _property(a, titles.get(id(a)))
            if a.required:
                required.append(a.dest)
        if self.pay_switch:  # the script's --dry-run, on unless the call says false
            props["dry_run"] = {
                "type": "boolean",
                "default": True,
                "description": "true (the default): sign and send nothing; show what this run would do and the schedule of payments to "
                "the target. false: pay the extension this run needs (refused unless the human turned spending on; the human may be "
                "asked to approve).",
            }
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

    def for_call(self, arguments: dict) -> "ToolSpec":
        """The spec this call runs under: a pay-switch tool called without dry_run: false is its dry run."""
        from dataclasses import replace

        if self.pay_switch and arguments.get("dry_run") is not False:
            return replace(self, kind=READ, fixed=(*self.fixed, "--dry-run"), pay_switch=False)
        return self

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


def _inline_property(a: argparse.Action) -> dict:
    return {
        "type": "string",
        "maxLength": INLINE_MAX_BYTES,
        "description": f"the content itself, not a file name: at most {INLINE_MAX_BYTES // 1024} KiB of UTF-8 text (the script's "
        f"{_long_flag(a)} reads it from a file); refused if it looks like a private key or a secret of this skill's",
    }


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
            fixed=("--quote",), hidden=quote, inline=("user_data",),
            note="Signs and sends nothing: shows the price, the network, the payee and whether the spend policy allows it. Works with spending disabled.",
        ),
        ToolSpec(
            "provision", "Rent a machine (pays)", _script("provision.py"), SPEND, "provision.py PLAN REGION", hidden=PAYING_HIDDEN,
            inline=("user_data",),
            note="SPENDS MONEY. Refused (spending_disabled) unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1; "
            "the human approves the payment (approval_unavailable when this client cannot ask them). Call quote_provision first "
            "and show the quote; confirm_quote: <its quote_id> is put to the human, then pays exactly those terms or nothing. "
            "If it fails with payment_unknown, call reconcile and never call provision again for that order.",
        ),
        ToolSpec(
            "quote_extend", "Quote an extension", _script("extend_instance.py"), READ, "extend_instance.py ID --quote",
            fixed=("--quote",), hidden=quote, note="Signs and sends nothing. Works with spending disabled.",
        ),
        ToolSpec(
            "extend_instance", "Extend a machine (pays)", _script("extend_instance.py"), SPEND, "extend_instance.py ID", hidden=PAYING_HIDDEN,
            note="SPENDS MONEY. Refused (spending_disabled) unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1. "
            "Call quote_extend first. On payment_unknown, call reconcile; never extend again for that payment.",
        ),
        ToolSpec(
            "keepalive", "Keep a machine alive (pays with dry_run: false)", _script("keepalive.py"), SPEND,
            "keepalive.py ID --for D [--dry-run | --yes]", hidden=PAYING_HIDDEN | {"resume"}, pay_switch=True,
            note="A dry run unless dry_run: false: it shows what this run would do and the schedule of payments to the target (when, "
            "hours, amount each, total) against the limits, and works with spending disabled. With dry_run: false it SPENDS MONEY: at "
            "most one extension per call, refused (spending_disabled) unless the human started this server with "
            "COMPUTE_MCP_ALLOW_SPEND=1, and the human may be asked to approve it. max_total_usd bounds all that this target may pay "
            "across calls. keepalive_stopped means stop and tell the user: only the human resumes it.",
        ),
        ToolSpec("list_instances", "List machines", _script("list_instances.py"), READ, "list_instances.py"),
        ToolSpec("instance_details", "Machine details", _script("instance_details.py"), READ, "instance_details.py ID"),
        ToolSpec(
            "wait_for_instance", "Wait for a machine", _wait_command, READ, "provision.py ... --wait (for an existing instance)",
            note="Sends progress notifications while the machine boots and stops at once when the call is cancelled.",
        ),
        ToolSpec(
            "ssh_exec", "Run a command on a machine", _script("ssh_exec.py"), DESTRUCTIVE, "ssh_exec.py ID -- COMMAND...",
            note="Runs the command on the machine over SSH, as root by default: it can change or delete anything there. The key is the "
            "skill's own (instances made with ssh_key: auto) or the one the human started this server with (--identity). command is a "
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
            "credits_topup", "Buy credits (pays)", _script("credits_topup.py"), SPEND, "credits_topup.py --amount USD", hidden=PAYING_HIDDEN,
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
    unattended: bool = False  # COMPUTE_MCP_APPROVAL=unattended: a client that cannot ask still pays
    state_dir: Path | None = None
    secrets: tuple[str, ...] = ()  # the env file's secret values: never sent inside a model's text

    @classmethod
    def load(cls, args: argparse.Namespace) -> "ServerConfig":
        from .config import load_settings, parse_usd

        # The scripts' own loader: the same environment and --env-file, checked before serving.
        settings = load_settings(env_file=args.env_file, base_url=args.base_url, timeout=args.timeout)
        env = settings.env
        allow = (env.get("COMPUTE_MCP_ALLOW_SPEND") or "").strip().lower()
        if allow not in ("", "0", "1", "true", "false", "yes", "no", "on", "off"):
            raise ConfigError(f"COMPUTE_MCP_ALLOW_SPEND must be 1 (spending on) or 0 (off, the default), got {allow!r}.")
        above = (env.get("COMPUTE_MCP_CONFIRM_ABOVE_USD") or "").strip() or "0"
        approval = (env.get("COMPUTE_MCP_APPROVAL") or "").strip().lower() or "ask"
        if approval not in ("ask", "unattended"):
            raise ConfigError(
                f"COMPUTE_MCP_APPROVAL must be ask (the default: each payment is the human's to approve) or unattended, got {approval!r}.",
                hint="unattended lets a client that cannot ask the human pay: the cap, the budget and the allow-lists are then the only bounds.",
            )
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
        if getattr(args, "identity", None):  # ssh_exec's key: the human's choice at start, never a tool input
            argv.append(f"--identity={args.identity}")
        secret_names = re.compile(r"KEY|SECRET|PASSPHRASE|PASSWORD|TOKEN|MNEMONIC|SEED", re.IGNORECASE)
        known = tuple(v for k, v in settings.env.items()
                      if secret_names.search(k) and not k.upper().endswith("_FILE") and isinstance(v, str) and len(v.strip()) >= 8)
        return cls(allow in ("1", "true", "yes", "on"), parse_usd(above, "COMPUTE_MCP_CONFIRM_ABOVE_USD"), argv,
                   unattended=approval == "unattended", state_dir=settings.state_dir, secrets=known)


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


def quote_terms(fields: dict, payee_status: str | None = None) -> dict:
    """A recorded quote's pinned fields (payments.quotes) in the terms shape approval_message reads."""
    from .money import atomic_to_usd, plain
    from .networks import NETWORKS

    from .payments.policy import STRIPE_CURRENCY_DECIMALS

    net = NETWORKS.get(fields.get("network") or "")
    atomic = str(fields.get("amount_atomic") or "")
    # The amount the quote pins, in its own units (a card charge: the currency's minor units),
    # never the catalog total beside it: that is what is paid, so that is what the human sees.
    decimals, symbol = (net.decimals, net.symbol) if net is not None else (None, None)
    if fields.get("method") == "stripe" and fields.get("asset") in STRIPE_CURRENCY_DECIMALS:
        decimals, symbol = STRIPE_CURRENCY_DECIMALS[fields["asset"]], str(fields["asset"]).upper()
    amount = plain(atomic_to_usd(int(atomic), decimals)) if decimals is not None and atomic.isdigit() else None
    what = " ".join(str(fields[k]) for k in ("action", "plan", "instance_id") if fields.get(k))
    where = f" in {fields['region']}" if fields.get("region") else ""
    hours = f" for {fields['hours']} h" if fields.get("hours") else ""
    return {
        "action": fields.get("action"),
        "summary": f"{what}{where}{hours}",
        "amount_usd": amount,
        "total_usd": fields.get("total_usd"),
        "asset_symbol": symbol,
        "network": fields.get("network") or fields.get("method"),
        "payee": fields.get("payee"),
        "payee_status": payee_status or "unchecked",
        "method": fields.get("method"),
        "login_key": fields.get("login_key"),
        "user_data_sha256": fields.get("user_data_sha256"),
    }


def _pin_status(state_dir, fields: dict) -> str | None:
    """Whether a quote's payee is the one pinned for its network now: pinned, changed or new."""
    from .payments.policy import PayeePins

    network, payee = fields.get("network"), fields.get("payee")
    if not isinstance(network, str) or not isinstance(payee, str):
        return None
    rec = PayeePins(state_dir).load().get(network)
    old = rec.get("pay_to") if isinstance(rec, dict) else rec
    if not isinstance(old, str):
        return "new"
    return "pinned" if PayeePins._same(network, old, payee) else "changed"


def _decision_reason(code: str, details: Any) -> str:
    """What the human is asked to decide, in a few words, from the refusal's details."""
    d = details if isinstance(details, dict) else {}
    if code == "payee_changed":
        return f"the payee for {d.get('network')} changed from {d.get('pinned')} to {d.get('offered')}"
    if code == "recipient_token_account_missing":
        return f"it first creates the payee's token account at your wallet's cost ({d.get('create_total_sol')} SOL)"
    return "its price could not be checked against the catalog"


def _grant_key(terms: dict) -> tuple:
    """What the human approved, to recognise the same payment when it comes to be paid."""
    payee = terms.get("payee")
    return (_amount_usd(terms), terms.get("network"), payee.lower() if isinstance(payee, str) else payee)


def _with(argv: list[str], extra: list[str]) -> list[str]:
    """``argv`` with ``extra`` options added before the positionals' ``--``."""
    if "--" in argv:
        i = argv.index("--")
        return [*argv[:i], *extra, *argv[i:]]
    return [*argv, *extra]


def approval_message(question: str, terms: dict, own_key: str | None = None) -> str:
    """What the human approves: what, how long, amount, network, payee, budget left; for a new
    machine also the SSH key that gets root on it (``own_key``: the skill's own key's fingerprint)
    and the digest of the user data it runs at first boot."""
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
    if terms.get("action") == "provision" or terms.get("login_key") or terms.get("user_data_sha256"):
        key = terms.get("login_key")
        whose = " (this skill's own key)" if key and key == own_key else " (a key given in the call, not this skill's own)" if key else ""
        add("Root login", f"SSH key {key}{whose}" if key else "no SSH key (a one-time root password)")
        if terms.get("user_data_sha256"):
            add("User data run at first boot", f"sha256 {terms['user_data_sha256']}")
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

    def cap(self, amount_usd: str) -> None:
        """The amount the human approved becomes this payment's cap (the --max-usd they would type)."""
        self.args.max_usd = str(amount_usd)
        self._settings = None  # loaded again, with that cap
        self._client = None

    def progress(self, message: str) -> None:
        super().progress(message)  # the server's log (stderr), as the scripts do
        self._run.report(redact.scrub(message))

    def sleep(self, seconds: float) -> None:
        self._run.sleep(seconds)

    def content_of(self, value: str, flag: str) -> str:
        """Over MCP an option like --user-data carries the content itself, never a file name: bounded,
        and refused when it looks like a private key or one of this skill's own secrets (a model
        must not be able to send the wallet's key away inside a machine's cloud-init)."""
        name = flag.lstrip("-").replace("-", "_")
        size = len(value.encode("utf-8"))
        if size > INLINE_MAX_BYTES:
            raise UsageError(f"{name} is {size} bytes; over MCP it is inline text of at most {INLINE_MAX_BYTES} bytes.", code="input_too_large",
                             hint="Shorten it (fetch larger files from the machine itself once it runs).")
        why = redact.secret_like(value, self._run.app.config.secrets)
        if why:
            raise PolicyError(
                f"Refused to send {name}: {why}. Nothing was sent.",
                code="secret_in_input",
                details={"input": name},
                hint="Never put keys, tokens or passphrases into a machine's user data. If the machine needs a secret, the human provides it themselves.",
            )
        return value

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
        self._granted: tuple | None = None  # the payment the human approved in an escalation's question
        self._escalated = False

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
                if out.exit_code != 0:
                    out = self.escalate(out.doc) or out
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
        """--confirm-quote stands for the human's approval of that quote in the scripts. Over MCP
        the model passes it, so it is a reference to what the human is now asked about, never the
        approval itself: the recorded quote goes through ``approve`` (same rules as any payment),
        and the flow then pays only terms identical to it, or nothing. A quote whose price was not
        checked is always asked; approved, its amount becomes this payment's cap (the --max-usd
        the human would have typed)."""
        from .payments.quotes import Quotes

        rec = Quotes(ctx.settings.state_dir).load(ctx.args.confirm_quote)  # the handler's own check, earlier
        terms = quote_terms(rec["fields"], _pin_status(ctx.settings.state_dir, rec["fields"]))
        unchecked = rec.get("price_checked") is False
        if _grant_key(terms) != self._granted:
            self.approve(f"Pay quote {rec['quote_id']} exactly as quoted?", terms,
                         always_ask="its price could not be checked against the catalog" if unchecked else None)
        if unchecked and terms.get("amount_usd") is not None:
            ctx.cap(terms["amount_usd"])

    def escalate(self, doc: dict) -> "cli.Outcome | None":
        """A refusal only the human may lift (HUMAN_DECISIONS), on a client that can ask them:
        quote the same call with the human's flag, put that quote to them, and on their yes pay
        exactly it. Never without elicitation: the refusal then stands, its hint addressed to them."""
        err = doc.get("error") if isinstance(doc, dict) else None
        code = err.get("code") if isinstance(err, dict) else None
        if self.spec.kind != SPEND or code not in HUMAN_DECISIONS or not self.can_elicit or self._escalated:
            return None
        self._escalated = True
        flag, question = HUMAN_DECISIONS[code]
        base = [x for x in self.argv if not x.startswith("--confirm-quote=")]
        extra = [flag] if flag else []
        quoted = cli.execute(self.spec.parser, self.spec.handler, _with(base, ["--quote", *extra]), context=lambda args: McpContext(args, self))
        q = quoted.doc.get("quote") if quoted.doc.get("ok") else None
        if not isinstance(q, dict) or not q.get("quote_id"):
            return quoted if quoted.doc.get("ok") is False else None
        self._granted = None
        try:
            self.approve(question, q, always_ask=_decision_reason(code, err.get("details")))
        except ComputeError as e:
            return cli.Outcome({"ok": False, "error": e.to_dict()}, None, e.exit_code)
        self._granted = _grant_key(quote_terms(q, q.get("payee_status")))
        pay = [f"--confirm-quote={q['quote_id']}", *extra]
        return cli.execute(self.spec.parser, self._handler, _with(base, pay), context=lambda args: McpContext(args, self))

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

    def approve(self, question: str, terms: dict, *, always_ask: str | None = None) -> None:
        """Go ahead with a payment, or raise. Spending itself was switched on by the human
        (COMPUTE_MCP_ALLOW_SPEND); each payment is then theirs to approve through elicitation.
        Without a client that can ask: approval_unavailable, unless the human started the server
        with COMPUTE_MCP_APPROVAL=unattended. COMPUTE_MCP_CONFIRM_ABOVE_USD skips the question
        only below it and only to a payee already pinned. ``always_ask`` (or a recipient account
        created at the wallet's cost) is asked whatever the threshold, and refused without a client
        that can ask, unattended or not."""
        if self._granted is not None and self._granted == _grant_key(terms):
            self.report("The user approved this payment already (the question before it)")
            return
        side_cost = isinstance(terms.get("recipient_account"), dict) and terms["recipient_account"].get("create")
        special = always_ask or ("it creates the payee's token account at your wallet's cost" if side_cost else None)
        if not self.can_elicit:
            if special is None and self.app.config.unattended:
                self.report(f"Paying without a question (COMPUTE_MCP_APPROVAL=unattended; the client cannot ask the user): {question}")
                return
            raise PolicyError(
                ("This payment needs the human's answer (" + special + "), and this MCP client cannot ask them. "
                 if special else "This MCP client cannot ask the human to approve the payment (no elicitation). ")
                + "Nothing was signed.",
                code="approval_unavailable",
                details={"quote": terms, "always_asked": special},
                hint="Show the user the quote and ask them to pay it themselves (the script at a terminal), or to use an MCP client "
                "that supports elicitation"
                + ("." if special else "; only the human may start this server with COMPUTE_MCP_APPROVAL=unattended."),
            )
        amount = _amount_usd(terms)
        pinned = terms.get("payee_status") == "pinned" or terms.get("method") == "credits"
        if special is None and pinned and amount is not None and amount <= self.app.config.confirm_above_usd:
            self.report(f"Paying without a question: {amount} USD to the pinned payee is within COMPUTE_MCP_CONFIRM_ABOVE_USD={self.app.config.confirm_above_usd}")
            return
        self._ask(question + (f" Note: {special}." if special else ""), terms)

    def _ask(self, question: str, terms: dict) -> None:
        from .sshkeys import own_fingerprint
        from .state import State

        own = own_fingerprint(State(self.app.config.state_dir)) if self.app.config.state_dir else None
        self._post(("ask", (redact.scrub(approval_message(question, terms, own)), APPROVAL_SCHEMA)))
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
A hint naming a script flag that is also an argument of the tool (--days) means that argument in snake_case (days); a script name (instance_details.py) means the tool of that name. A flag that is no tool argument (--max-usd, --accept-payee-change, --ignore-unresolved, --yes, ...) is a decision only the human takes: tell the user what the hint says, never look for a way around it.
Spending tools (provision, extend_instance, credits_topup) are refused with spending_disabled unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1: tell the user, never look for another way to pay. Each payment is put to the human for approval; declined_by_user means stop, approval_unavailable means this client cannot ask them: show the quote and let the human pay it themselves.
Quote first (quote_provision, quote_extend, quote_topup) and show the quote; confirm_quote: <quote_id> pays exactly it, once, after the human approves it.
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
        spec = spec.for_call(arguments)
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
        "started with COMPUTE_MCP_ALLOW_SPEND=1; then the client's user approves each payment through\n"
        "elicitation. A client that cannot ask gets approval_unavailable (nothing signed) unless you\n"
        "start the server with COMPUTE_MCP_APPROVAL=unattended: the cap, the budget and the\n"
        "allow-lists are then the only bounds. Payments up to COMPUTE_MCP_CONFIRM_ABOVE_USD (default 0)\n"
        "to an already pinned payee are not asked about; a payee change, a recipient account creation\n"
        "or an unchecked price always is. No tool input is a decision of yours (--max-usd,\n"
        "--accept-payee-change, ...) or a local file. stdout carries only MCP messages; logs go to stderr.\n\n"
        "--http serves only requests with the header Authorization: Bearer <token>: the token is read\n"
        "from --token-file, else created once in the state folder (0600); its path is printed on stderr.",
        examples="python scripts/mcp_server.py\nCOMPUTE_MCP_ALLOW_SPEND=1 python scripts/mcp_server.py --env-file ~/.x402-compute.env\n"
        "python scripts/mcp_server.py --http 8765    # token: <state folder>/mcp-http-token\n"
        "python scripts/mcp_server.py --http 8765 --token-file ~/.config/x402-compute/mcp-token",
        output=False,
        exit_codes="exit codes: 0 stopped, 2 usage or configuration error before serving (one JSON document on stdout, as for every script), 130 interrupted",
    )
    p.add_argument("--http", type=int, metavar="PORT", help="serve Streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio (0 = any free port)")
    p.add_argument("--token-file", metavar="PATH",
                   help="with --http: the bearer token clients must send (Authorization: Bearer <token>), read from this file "
                   "(not readable by group or others); default: a random token created once at <state folder>/mcp-http-token (0600)")
    p.add_argument("--identity", metavar="FILE",
                   help="private key file ssh_exec logs in with (default: the skill's own key for instances made with ssh_key: auto, "
                   "and the only key offered: never the SSH agent or the default keys); never a tool input")
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
        if args.token_file and args.http is None:
            raise UsageError("--token-file is for --http (stdio needs no token).")
        config = ServerConfig.load(args)
        token, token_path = http_token(args.token_file, config.state_dir) if args.http is not None else (None, None)
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
            print(f"x402-compute MCP server: clients send Authorization: Bearer <the token in {token_path}>", file=sys.stderr, flush=True)
            _serve_http(app, args.http, token)
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


def http_token(token_file: str | None, state_dir: Path | None) -> tuple[str, Path]:
    """The bearer token of the --http endpoint and the file holding it: ``--token-file``, else
    ``<state>/mcp-http-token``, created once (0600) with a random token. Every local user and
    process can reach a loopback port; only who can read this file can use the wallet through it."""
    from .state import ensure_dir

    if token_file:
        path = Path(token_file).expanduser()
        try:
            st = path.stat()
            text = path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"Cannot read --token-file {path}: {e.strerror}.") from None
        if st.st_mode & 0o077:
            raise ConfigError(f"--token-file {path} can be read by others ({oct(st.st_mode & 0o777)}).", code="unsafe_token_file",
                              hint=f"chmod 600 {path}")
        if len(text) < 16 or any(c.isspace() for c in text):
            raise ConfigError(f"--token-file {path} must hold one token of at least 16 characters, no spaces.")
        return text, path
    if state_dir is None:
        raise ConfigError("No state folder for the HTTP token; pass --token-file.")
    path = Path(state_dir) / TOKEN_FILE_NAME
    ensure_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path} can be read by others ({oct(path.stat().st_mode & 0o777)}).", code="unsafe_token_file",
                              hint=f"chmod 600 {path}, or delete it to create a new token.") from None
        text = path.read_text().strip()
        if len(text) < 16:
            raise ConfigError(f"{path} does not hold a usable token.", hint=f"Delete {path} to create a new one.") from None
        return text, path
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, path


class BearerGate:
    """ASGI middleware in front of the MCP app: an HTTP request without ``Authorization: Bearer
    <token>`` is answered 401 before it reaches the app (no session, no tool); the comparison is
    constant-time. The app's own Host and Origin checks (DNS rebinding) still run behind it."""

    def __init__(self, app, token: str) -> None:
        self.app = app
        self.expected = token.encode()

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http":
            got = b""
            for name, value in scope.get("headers") or []:
                if name.lower() == b"authorization":
                    got = value
                    break
            # RFC 9110 §11.1: the scheme name is case-insensitive ("bearer" is Bearer); the token is not.
            scheme, _, credential = got.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential.strip(b" "), self.expected):
                body = json.dumps({"error": "unauthorized", "message": "This MCP endpoint needs the header Authorization: Bearer <token> "
                                   "(the token file's path is printed on the server's stderr)."}).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="x402-compute"'),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _serve_http(app: McpApp, port: int, token: str) -> None:
    import uvicorn

    host = "127.0.0.1"  # never another interface: the tools hold a wallet
    starlette_app = BearerGate(app.server().streamable_http_app(host=host), token)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            for s in self.servers:
                for sock in s.sockets:
                    print(f"x402-compute MCP server: http://{host}:{sock.getsockname()[1]}/mcp", file=sys.stderr, flush=True)

    Server(uvicorn.Config(starlette_app, host=host, port=port, log_level="warning", lifespan="on")).run()
