"""A tool's JSON input schema, from the argparse actions of its command's parser."""

from __future__ import annotations

import argparse




INLINE_MAX_BYTES = 64 * 1024  # user_data over MCP: inline text, at most this many UTF-8 bytes


def long_flag(a: argparse.Action) -> str:
    return next((s for s in a.option_strings if s.startswith("--")), a.option_strings[0])


def arg_text(value: Any, a: argparse.Action) -> str:
    if a.type is int and isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def inline_property(a: argparse.Action) -> dict:
    return {
        "type": "string",
        "maxLength": INLINE_MAX_BYTES,
        "description": f"the content itself, not a file name: at most {INLINE_MAX_BYTES // 1024} KiB of UTF-8 text (the script's "
        f"{long_flag(a)} reads it from a file); refused if it looks like a private key or a secret of this skill's",
    }


def arg_property(a: argparse.Action, group: str | None = None) -> dict:
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
    flag = long_flag(a) if a.option_strings else None
    # An option without help of its own (--hours) is described by its group ("prepaid period (required; ...)").
    text = (a.help or (group if group not in (None, "options", "positional arguments", "optional arguments") else "") or "").replace("%(default)s", str(a.default))
    if text and a.metavar and flag:
        text = f"{a.metavar}: {text}"
    prop["description"] = (text + (f" (script flag {flag})" if flag else "")).strip()
    if a.default not in (None, False, argparse.SUPPRESS):
        prop["default"] = a.default
    return prop
