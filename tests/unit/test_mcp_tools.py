"""The MCP tools' contract with the scripts, without a server: each tool's input schema mirrors its
script's parser (minus the options the server owns), and the argv built from any arguments the
schema accepts parses, with the script's own parser, back to exactly those values: whatever text a
model sends, it never turns into another flag."""

from __future__ import annotations

import argparse

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from x402_compute import mcp_server
from x402_compute.mcp_server import SERVER_OPTIONS, approval_message

SPECS = {s.name: s for s in mcp_server._tools() if (mcp_server.SCRIPTS_DIR / (s.mirrors.split()[0])).is_file() or s.name == "wait_for_instance"}
SERVER_ARGV = ["--env-file=/tmp/x.env", "--base-url=http://127.0.0.1:1", "--timeout=5.0", "--verbose"]

# Text as a model may send it: flags, '=', '--', spaces, quotes, non-ASCII, newlines.
TEXT = st.one_of(st.sampled_from(["--yes", "-y", "--", "-", "--max-usd=999", "a=b", "--quote x", "é ü 中", "line\nbreak"]),
                 st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40))


def value_for(prop: dict):
    if "enum" in prop:
        return st.sampled_from(prop["enum"])
    t = prop.get("type")
    if "pattern" in prop:
        return st.from_regex(prop["pattern"], fullmatch=True)
    if t == "array":
        return st.lists(TEXT, min_size=prop.get("minItems", 0), max_size=4)
    if t in ("integer", "number") and ("minimum" in prop or "maximum" in prop):
        lo, hi = prop.get("minimum", -10**6), prop.get("maximum", 10**6)
        return st.integers(min_value=lo, max_value=hi) if t == "integer" else st.floats(min_value=lo, max_value=hi, allow_nan=False)
    if t == "boolean":
        return st.booleans()
    if t == "integer":
        return st.integers(min_value=-10**6, max_value=10**6)
    if t == "number":
        return st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
    if "anyOf" in prop:
        return st.one_of(TEXT, st.integers(min_value=0, max_value=10**6))
    return TEXT


@pytest.mark.parametrize("name", sorted(SPECS))
def test_schema_mirrors_the_scripts_parser(name):
    spec = SPECS[name]
    schema = spec.input_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    props = set(schema["properties"]) - {"confirm"}
    dests = {a.dest for a in spec.parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction))}
    assert props == dests - SERVER_OPTIONS - spec.hidden
    assert not props & SERVER_OPTIONS
    for a in spec.parser._actions:
        if a.dest in props:
            assert schema["properties"][a.dest]["description"], (name, a.dest)
            assert (a.dest in schema.get("required", [])) == bool(a.required), (name, a.dest)


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_any_valid_arguments_reach_the_script_unchanged(name, data):
    spec = SPECS[name]
    props = spec.input_schema["properties"]
    exclusive = {a.dest for g in spec.parser._mutually_exclusive_groups for a in g._group_actions}
    chosen_exclusive = data.draw(st.sampled_from(sorted(exclusive & set(props)))) if exclusive & set(props) else None
    args = {}
    for key, prop in props.items():
        required = key in spec.input_schema.get("required", [])
        if key in exclusive:
            if key == chosen_exclusive:
                args[key] = data.draw(value_for(prop))
            continue
        if required or data.draw(st.booleans()):
            args[key] = data.draw(value_for(prop))
    if "--" in args.values():  # argparse would drop it: refused up front
        assert spec.validate(args).code == "usage_error"
        return
    assert spec.validate(args) is None
    argv = spec.argv(args, SERVER_ARGV)
    ns = spec.parser.parse_args(argv)
    for a in spec.parser._actions:
        if a.dest not in args:
            continue
        want = args[a.dest]
        got = getattr(ns, a.dest)
        if a.type is float:
            assert got == pytest.approx(float(want)), (a.dest, want, got)
        elif hasattr(a.type, "json_schema"):  # a checked type: the script gets what it makes of the text
            assert got == a.type(str(int(want) if isinstance(want, float) and want.is_integer() else want)), (a.dest, want, got)
        elif isinstance(want, list):
            assert got == want, (a.dest, want, got)
        elif a.type is None and not isinstance(a, argparse._StoreTrueAction):
            assert got == str(want), (a.dest, want, got)
        else:
            assert got == want, (a.dest, want, got)
    # The server's settings, the fixed flags, and nothing the model did not ask for.
    assert ns.env_file == "/tmp/x.env" and ns.base_url == "http://127.0.0.1:1" and ns.verbose
    # The HTTP deadline reaches every script that has one; ssh_exec's --timeout is the remote command's limit.
    if any(a.dest == "timeout" for a in spec.parser._actions):
        assert ns.timeout == 5.0
    else:
        # ssh_exec: its --timeout is the remote command's limit, and the server's HTTP deadline never
        # becomes it (the model may itself ask for 5.0 s, so look at the value, not at the argv's text).
        for a in spec.parser._actions:
            if "--timeout" in a.option_strings and a.dest not in args:
                assert getattr(ns, a.dest) == a.default, (a.dest, getattr(ns, a.dest))
    assert ns.output == "json"
    if "quote" in vars(ns):
        assert ns.quote is ("--quote" in spec.fixed)
    if "yes" in vars(ns):
        assert ns.yes is (args.get("confirm") is True)
    for hidden in ("max_usd", "ignore_unresolved", "show"):
        if hidden in vars(ns) and hidden in spec.hidden:
            assert getattr(ns, hidden) in (None, False)


def test_invalid_arguments_are_usage_errors_naming_the_argument():
    spec = SPECS["provision"]
    for bad, where in (({"plan": "p", "region": "r", "days": "1"}, "days"), ({"plan": "p", "region": "r", "max_usd": 1000}, "arguments"),
                       ({"region": "r"}, "arguments"), ({"plan": 1, "region": "r"}, "plan")):
        err = spec.validate(bad)
        assert err is not None and err.code == "usage_error" and f": {where}:" in err.message, (bad, err.message)


def test_approval_message_states_the_terms_without_control_characters():
    terms = {"summary": "vc2-1c-1gb in lax for 24 h", "hours": 24, "amount_usd": "0.2496", "asset_symbol": "USDC", "network": "base",
             "payee": "0xPayee\x1b]8;;evil\x07", "payee_status": "new", "budget": {"remaining_usd": "49.75", "limit_usd": "50", "window": "24h"}}
    msg = approval_message("Pay 0.2496 USDC on base?", terms)
    for fact in ("vc2-1c-1gb in lax for 24 h", "Hours: 24", "0.2496 USDC", "Network: base", "(new)", "Budget left after it: 49.75 of 50 USD per 24h"):
        assert fact in msg, msg
    assert "\x1b" not in msg and "\x07" not in msg
