"""ai_chat.py: one chat completion on an AI Machine (a private ``--model-id ... --mode private``
instance), with the API key saved when it was provisioned.

The endpoint is read from the instance record and must be the instance's own address
(``aimachines.endpoint_of``); the key file is found from the checked instance id, never named by
the caller. Nothing here pays."""

from __future__ import annotations

import argparse

from .. import aimachines, cli, cmdline
from ..errors import ComputeError, UsageError
from ..instances import normalized_state, public_ip
from ..ssh.run import checked_address
from ..validate import instance_id

DEFAULT_MAX_TOKENS = 512
DEFAULT_REPLY_TIMEOUT = 120.0
MAX_REPLY_TIMEOUT = 600.0


def add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance_id", help="the AI Machine's instance UUID (from list_instances.py)")
    p.add_argument("prompt", help=f"the user message (at most {aimachines.MAX_PROMPT_CHARS} characters)")
    g = p.add_argument_group("chat")
    g.add_argument("--system", metavar="TEXT", help="a system message sent before the prompt")
    g.add_argument("--model", metavar="ID", help="model name to ask for (default: the machine's model_id)")
    g.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N", help=f"longest reply, in tokens (default {DEFAULT_MAX_TOKENS}; 1 to 32768)")
    g.add_argument("--reply-timeout", type=float, default=DEFAULT_REPLY_TIMEOUT, metavar="SECONDS",
                   help=f"give up waiting for the whole reply after this long (default {DEFAULT_REPLY_TIMEOUT:g}, at most {MAX_REPLY_TIMEOUT:g}); exit 1, code ai_timeout")
    g.add_argument("--allow-private-address", action="store_true",
                   help="a human's decision only: send even though the server gave a loopback, private, link-local, CGNAT, multicast or "
                   "reserved address as the machine's (allowed without it when the API base URL is itself loopback, as for the sandbox)")


def _text(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise UsageError(f"{what} is empty.")
    if len(value) > aimachines.MAX_PROMPT_CHARS:
        raise UsageError(f"{what} is {len(value)} characters, more than the {aimachines.MAX_PROMPT_CHARS} this script sends.")
    return value


def _reply(doc) -> dict:
    """The first choice of a chat completion: content, finish_reason; ``ai_bad_response`` otherwise."""
    choices = doc.get("choices") if isinstance(doc, dict) else None
    first = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    message = first.get("message") if first else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise ComputeError("The machine's answer is not an OpenAI chat completion (no choices[0].message.content).", code="ai_bad_response")
    finish = first.get("finish_reason")
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    counts = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    counts = {k: v if isinstance(v, int) and not isinstance(v, bool) else None for k, v in counts.items()}
    model = doc.get("model")
    return {
        "reply": content,
        "finish_reason": finish if isinstance(finish, str) and len(finish) <= 64 else None,
        "usage": counts if any(v is not None for v in counts.values()) else None,
        "model": model if isinstance(model, str) and len(model) <= 256 else None,
    }


def chat(ctx: cli.Context) -> cli.Output:
    a = ctx.args
    iid = instance_id(a.instance_id)
    prompt = _text(a.prompt, "The prompt")
    system = _text(a.system, "--system")
    model = aimachines.model_id(a.model) if a.model is not None else None
    if not 1 <= a.max_tokens <= 32768:
        raise UsageError("--max-tokens must be from 1 to 32768.")
    if not 0 < a.reply_timeout <= MAX_REPLY_TIMEOUT:
        raise UsageError(f"--reply-timeout must be more than 0 and at most {MAX_REPLY_TIMEOUT:g} seconds.")

    order = ctx.client.get_instance(iid)
    if not aimachines.is_ai_machine(order):
        raise ComputeError(f"Instance {iid} is not an AI Machine (its record has no metadata.ai).", code="not_an_ai_machine",
                           hint="Provision one with provision.py <gpu plan> <region> --model-id <model> --mode private.")
    state = normalized_state(order)
    e = aimachines.endpoint_of(order)
    if state != "running" or not e["endpoint"]:
        why = f"it is {state}" if state != "running" else e["unavailable"]
        raise ComputeError(f"The AI endpoint of {iid} is not usable: {why}. Nothing was sent.", code="ai_endpoint_unavailable",
                           retryable=state == "provisioning", details={"state": state, "reason": why},
                           hint=f"Wait for it (wait_for_instance / {cmdline.command('instance_details.py', iid)}) and try again." if state == "provisioning" else None)
    # The address is the server's word: never this computer or the user's network (as ssh_exec), checked before
    # any socket; the request then goes to the checked address, so a second name lookup cannot answer otherwise.

    host = public_ip(order)
    addr = checked_address(host, e["port"], base_url=ctx.settings.base_url, allow_private=bool(a.allow_private_address), what="this request")
    if addr != host:
        e["endpoint"] = f"http://{'[' + addr + ']' if ':' in addr else addr}:{e['port']}/v1"
    key = aimachines.saved_key(ctx.state, iid)
    if key is None:
        raise ComputeError(
            f"No API key for {iid} is saved in this state folder ({aimachines.key_file(ctx.state, iid)}). Nothing was sent.",
            code="ai_key_missing",
            hint="The service shows the key once, to the run that provisioned the machine: run this where that state folder is.",
        )
    asked = model or e["model_id"] or "default"
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    ctx.progress(f"POST {e['endpoint']}/chat/completions (plain http to the machine's IP)")
    doc = aimachines.exchange(e["endpoint"], key, "POST", "/chat/completions", timeout=a.reply_timeout,
                              body={"model": asked, "messages": messages, "max_tokens": a.max_tokens, "stream": False})
    r = _reply(doc)
    data = {
        "instance_id": iid,
        "endpoint": e["endpoint"],
        "model": r["model"] or asked,
        "reply": r["reply"],
        "finish_reason": r["finish_reason"],
        "usage": r["usage"],
        "transport": aimachines.PLAIN_HTTP_NOTE,
    }
    return cli.Output(data, r["reply"])


# -- ai_chat.py: its parser (the script and the MCP server both build it here) ------

AI_CHAT_HELP = """Send one chat completion to an AI Machine (an instance provisioned with --model-id ID --mode
private) and print the reply as JSON: reply, finish_reason, usage, model, endpoint.

The endpoint is the instance's own http://<ip>:<port>/v1, read from its record; the API key is
the one provision.py saved (0600) in the state folder, sent only to that endpoint. That is plain
http to the machine's IP: the prompt, the reply and the key cross the network unencrypted."""


def ai_chat_parser() -> argparse.ArgumentParser:
    p = cli.parser(
        "ai_chat.py",
        AI_CHAT_HELP,
        examples=(
            "python scripts/ai_chat.py 3f1c2a9e-0000-4000-8000-000000000001 \"Say hello in five words\"\n"
            "python scripts/ai_chat.py 3f1c2a9e-0000-4000-8000-000000000001 \"Summarise: ...\" --system \"Be brief\" --max-tokens 200"
        ),
    )
    add_options(p)
    return p
