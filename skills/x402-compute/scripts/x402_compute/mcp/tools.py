"""The MCP tools table: each tool a command's parser and handler (from commands/), its kind and the
inputs the model may give."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from ..cli import HUMAN_ONLY, names_a_path
from ..commands import ai, budget, catalog, credits, doctor, keepalive, keys, manage, ows, paid, reconcile, remote, wait
from ..errors import UsageError
from .approval import SPENDS_META_KEY
from .schemas import arg_property, arg_text, inline_property, long_flag

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


def _command(parser: Callable[[], argparse.ArgumentParser], handler: Callable) -> Callable[[], tuple[argparse.ArgumentParser, Callable]]:
    """A command's parser and handler, from ``commands/`` (the scripts build the same pair there)."""
    return lambda: (parser(), handler)


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
            props[a.dest] = inline_property(a) if a.dest in self.inline else arg_property(a, titles.get(id(a)))
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
                positionals.extend(arg_text(v, a) for v in value) if isinstance(value, list) else positionals.append(arg_text(value, a))
            elif isinstance(a, argparse._StoreTrueAction):
                if value:
                    opts.append(long_flag(a))
            else:
                opts.append(f"{long_flag(a)}={arg_text(value, a)}")
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


def all_tools() -> tuple[ToolSpec, ...]:
    quote = frozenset({"yes", "max_usd", "ignore_unresolved", "quote", "confirm_quote"}) | WAIT_OPTIONS
    return (
        ToolSpec("browse_plans", "Browse plans", _command(catalog.browse_plans_parser, catalog.browse_plans), READ, "browse_plans.py"),
        ToolSpec("browse_regions", "Browse regions", _command(catalog.browse_regions_parser, catalog.browse_regions), READ, "browse_regions.py"),
        ToolSpec("browse_os", "Browse OS images", _command(catalog.browse_os_parser, catalog.browse_os), READ, "browse_os.py"),
        ToolSpec(
            "quote_provision", "Quote a machine", _command(paid.provision_parser, paid.provision), READ, "provision.py PLAN REGION --quote",
            fixed=("--quote",), hidden=quote, inline=("user_data",),
            note="Signs and sends nothing: shows the price, the network, the payee and whether the spend policy allows it. Works with spending disabled.",
        ),
        ToolSpec(
            "provision", "Rent a machine (pays)", _command(paid.provision_parser, paid.provision), SPEND, "provision.py PLAN REGION", hidden=PAYING_HIDDEN,
            inline=("user_data",),
            note="SPENDS MONEY. Refused (spending_disabled) unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1; "
            "the human approves the payment (approval_unavailable when this client cannot ask them). Call quote_provision first "
            "and show the quote; confirm_quote: <its quote_id> is put to the human, then pays exactly those terms or nothing. "
            "If it fails with payment_unknown, call reconcile and never call provision again for that order.",
        ),
        ToolSpec(
            "quote_extend", "Quote an extension", _command(paid.extend_instance_parser, paid.extend), READ, "extend_instance.py ID --quote",
            fixed=("--quote",), hidden=quote, note="Signs and sends nothing. Works with spending disabled.",
        ),
        ToolSpec(
            "extend_instance", "Extend a machine (pays)", _command(paid.extend_instance_parser, paid.extend), SPEND, "extend_instance.py ID", hidden=PAYING_HIDDEN,
            note="SPENDS MONEY. Refused (spending_disabled) unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1. "
            "Call quote_extend first. On payment_unknown, call reconcile; never extend again for that payment.",
        ),
        ToolSpec(
            "keepalive", "Keep a machine alive (pays with dry_run: false)", _command(keepalive.keepalive_parser, keepalive.keepalive), SPEND,
            "keepalive.py ID --for D [--dry-run | --yes]", hidden=PAYING_HIDDEN | {"resume"}, pay_switch=True,
            note="A dry run unless dry_run: false: it shows what this run would do and the schedule of payments to the target (when, "
            "hours, amount each, total) against the limits, and works with spending disabled. With dry_run: false it SPENDS MONEY: at "
            "most one extension per call, refused (spending_disabled) unless the human started this server with "
            "COMPUTE_MCP_ALLOW_SPEND=1, and the human may be asked to approve it. max_total_usd bounds all that this target may pay "
            "across calls. keepalive_stopped means stop and tell the user: only the human resumes it.",
        ),
        ToolSpec("list_instances", "List machines", _command(manage.list_instances_parser, manage.list_instances), READ, "list_instances.py"),
        ToolSpec("instance_details", "Machine details", _command(manage.instance_details_parser, manage.instance_details), READ, "instance_details.py ID"),
        ToolSpec(
            "wait_for_instance", "Wait for a machine", _command(wait.wait_for_instance_parser, wait.wait_for_instance), READ, "provision.py ... --wait (for an existing instance)",
            note="Sends progress notifications while the machine boots and stops at once when the call is cancelled.",
        ),
        ToolSpec(
            "ssh_exec", "Run a command on a machine", _command(remote.ssh_exec_parser, remote.ssh_exec), DESTRUCTIVE, "ssh_exec.py ID -- COMMAND...",
            note="Runs the command on the machine over SSH, as root by default: it can change or delete anything there. The key is the "
            "skill's own (instances made with ssh_key: auto) or the one the human started this server with (--identity). command is a "
            "list of words: one word is a shell command line, several are passed as exactly those words. Bounded by timeout (default "
            "120 s, then the error command_timeout with the output so far) and max_output per stream; a non-zero exit_status is still a "
            "result. The host key is pinned on first contact; host_key_changed or host_key_mismatch means stop and tell the user.",
        ),
        ToolSpec(
            "ai_chat", "Chat with an AI Machine", _command(ai.ai_chat_parser, ai.chat), WRITE, "ai_chat.py ID PROMPT",
            note="Sends one chat completion to the instance's own OpenAI-compatible endpoint (http://<its ip>:<port>/v1, read from "
            "its record) with the API key provision saved for it; the key never appears in the result. It is plain http to the "
            "machine's IP: do not send secrets in the prompt. Bounded by reply_timeout (default 120 s) and 1 MiB of answer.",
        ),
        ToolSpec(
            "quote_resize", "Quote a resize", _command(manage.resize_instance_parser, manage.resize), READ, "resize_instance.py ID PLAN --quote",
            fixed=("--quote",), hidden=frozenset({"yes", "quote"}),
            note="The checks, the old and new expiry, the credit carried over and the downtime; calls nothing that changes the machine.",
        ),
        ToolSpec("resize_instance", "Resize a machine", _command(manage.resize_instance_parser, manage.resize), DESTRUCTIVE, "resize_instance.py ID PLAN",
                 hidden=frozenset({"yes", "quote"}), note="Call quote_resize first to see what the change means."),
        ToolSpec(
            "destroy_instance", "Destroy a machine", _command(manage.destroy_instance_parser, manage.destroy), DESTRUCTIVE, "destroy_instance.py ID --yes",
            hidden=frozenset({"yes"}), confirm=True, idempotent=True,
            note="Without confirm: true nothing is destroyed and the error's details show what would be lost.",
        ),
        ToolSpec(
            "get_one_time_password", "Reveal the root password", _command(manage.get_one_time_password_parser, manage.get_one_time_password), WRITE, "get_one_time_password.py ID",
            hidden=frozenset({"show"}),
            note="Over MCP the password is never returned: credentials_file names the 0600 file that holds it; give that path to the user.",
        ),
        ToolSpec(
            "create_api_key", "Create an API key", _command(keys.create_api_key_parser, keys.create_api_key), WRITE, "create_api_key.py --save",
            fixed=("--save",), hidden=frozenset({"save", "show"}),
            note="Over MCP the key is always saved (0600, used by later calls when COMPUTE_API_KEY is unset) and only its last four characters are returned. "
                 "With a key already saved it refuses (saved_key_exists) and creates nothing: replacing the saved key is the human's decision.",
        ),
        ToolSpec("list_api_keys", "List API keys", _command(keys.list_api_keys_parser, keys.list_api_keys), READ, "list_api_keys.py"),
        ToolSpec(
            "revoke_api_key", "Revoke an API key", _command(keys.revoke_api_key_parser, keys.revoke_api_key), DESTRUCTIVE, "revoke_api_key.py KEY_ID --yes",
            hidden=frozenset({"yes"}), confirm=True, idempotent=True,
        ),
        ToolSpec("credits_balance", "Credit balance", _command(credits.credits_balance_parser, credits.balance), READ, "credits_balance.py"),
        ToolSpec(
            "quote_topup", "Quote a credits top-up", _command(paid.credits_topup_parser, paid.topup), READ, "credits_topup.py --amount USD --quote",
            fixed=("--quote",), hidden=quote, note="Signs and sends nothing. Works with spending disabled.",
        ),
        ToolSpec(
            "credits_topup", "Buy credits (pays)", _command(paid.credits_topup_parser, paid.topup), SPEND, "credits_topup.py --amount USD", hidden=PAYING_HIDDEN,
            note="SPENDS MONEY. Refused (spending_disabled) unless the human started this server with COMPUTE_MCP_ALLOW_SPEND=1.",
        ),
        ToolSpec("budget_status", "Spend budget", _command(budget.budget_parser, budget.budget_status), READ, "budget.py"),
        ToolSpec(
            "reconcile", "Reconcile a payment", _command(reconcile.reconcile_parser, reconcile.reconcile), WRITE, "reconcile.py [JOURNAL_ID]", idempotent=True,
            note="Never signs. resend: true re-sends the identical stored payment with the same Idempotency-Key (never a second charge).",
        ),
    )
