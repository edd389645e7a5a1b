"""The MCP tools' contract with the scripts, without a server: each tool's input schema mirrors its
script's parser (minus the options the server owns), and the argv built from any arguments the
schema accepts parses, with the script's own parser, back to exactly those values: whatever text a
model sends, it never turns into another flag."""

from __future__ import annotations

import argparse
import re

import jsonschema
import pytest

from tests.helpers import SCRIPTS
from hypothesis import given, settings
from hypothesis import strategies as st
from x402_compute import mcp as mcp_server
from x402_compute import redact
from x402_compute.cli import HUMAN_ONLY, names_a_path
from x402_compute.mcp import SERVER_OPTIONS, approval_message

SPECS = {s.name: s for s in mcp_server.all_tools() if (SCRIPTS / (s.mirrors.split()[0])).is_file() or s.name == "wait_for_instance"}
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
    paths = {a.dest for a in spec.parser._actions if names_a_path(a.dest, a.metavar)} - set(spec.inline)
    assert props == dests - SERVER_OPTIONS - spec.hidden - HUMAN_ONLY - paths
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


@pytest.mark.parametrize("fields, shown", [
    ({"method": "stripe", "network": "stripe", "asset": "usd", "amount_atomic": "25", "payee": "profile_x", "total_usd": "0.2496"}, "Amount: 0.25 USD"),
    ({"method": "mpp", "network": "tempo", "amount_atomic": "249600", "payee": "0x" + "ab" * 20, "total_usd": "0.2496"}, "Amount: 0.2496 USDC.e"),
    ({"method": "x402", "network": "base", "amount_atomic": "249600", "payee": "0x" + "ab" * 20, "total_usd": "0.2"}, "Amount: 0.2496 USDC"),
])
def test_a_confirmed_quote_is_shown_with_the_amount_that_is_paid(fields, shown):
    """confirm_quote puts the recorded quote to the human: the amount shown is the one the quote
    pins (the card charge's cents, not the catalog total beside it), and the threshold reads it."""
    terms = mcp_server.quote_terms({"action": "provision", **fields})
    msg = approval_message("Pay quote 0123456789abcdef exactly as quoted?", terms)
    assert shown in msg.splitlines(), msg
    assert mcp_server.approved_usd(terms) == __import__("decimal").Decimal(shown.split()[1])


# -- issue 19: no human-only decision and no local path is a tool input ------------------------------

# Said independently of the code's own list, as the issue names them.
NAMED_HUMAN_ONLY = {"accept_payee_change", "create_recipient_account", "accept_host_key_change", "ignore_unresolved",
                    "allow_insecure_http", "max_usd", "allow_private_address", "yes"}
PATHLIKE = re.compile(r"path|file|dir|folder|identity", re.IGNORECASE)


def test_the_human_only_list_names_every_decision_the_issue_names():
    assert NAMED_HUMAN_ONLY <= HUMAN_ONLY


def test_replacing_the_saved_api_key_is_the_humans():
    """create_api_key is always --save over MCP: with --replace-saved-key a tool input, the model
    could drop the human's saved key from this machine."""
    assert "replace_saved_key" in HUMAN_ONLY
    spec = next(s for s in mcp_server.all_tools() if s.name == "create_api_key")
    assert "replace_saved_key" in {a.dest for a in spec.parser._actions}
    assert "replace_saved_key" not in spec.input_schema["properties"]


@pytest.mark.parametrize("spec", mcp_server.all_tools(), ids=lambda s: s.name)
def test_no_tool_schema_carries_a_human_only_input_or_a_path(spec):
    """Every tool, including ones added later: walked from the tool list, not from this file."""
    props = spec.input_schema["properties"]
    assert not set(props) & HUMAN_ONLY, (spec.name, set(props) & HUMAN_ONLY)
    for name, prop in props.items():
        text = (prop.get("description") or "").upper()
        if name in spec.inline:  # the content itself, bounded
            assert prop["type"] == "string" and prop["maxLength"] <= 64 * 1024 and "NOT A FILE NAME" in text, (spec.name, name)
            continue
        assert not PATHLIKE.search(name), (spec.name, name)
        assert not re.match(r"(PATH|FILE|DIR|FOLDER)\b", text), (spec.name, name, prop)
    # The script's own options reaching this tool: none human-only, none naming a file.
    for a in spec.actions():
        assert a.dest not in HUMAN_ONLY and (a.dest in spec.inline or not names_a_path(a.dest, a.metavar)), (spec.name, a.dest)


def test_a_new_tool_with_human_only_or_path_options_leaves_them_out():
    """The rule is structural: a script added tomorrow with such options exposes none of them."""
    def source():
        p = argparse.ArgumentParser()
        p.add_argument("--accept-payee-change", action="store_true")
        p.add_argument("--allow-private-address", action="store_true")
        p.add_argument("--config-path", metavar="X")
        p.add_argument("--log", metavar="FILE")
        p.add_argument("--note")
        return p, lambda ctx: {}

    spec = mcp_server.ToolSpec("probe", "Probe", source, mcp_server.READ, "probe.py")
    assert set(spec.input_schema["properties"]) == {"note"}


@pytest.mark.parametrize("text", [
    "#!/bin/sh\necho 0x" + "ab" * 32 + " > /root/k",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n",
    "key=[" + ",".join(["7"] * 64) + "]",
])
def test_user_data_that_looks_like_a_key_is_refused(text):
    assert redact.secret_like(text) is not None


def test_a_base58_solana_secret_key_and_a_known_secret_are_refused():
    import base58

    assert redact.secret_like("SOL=" + base58.b58encode(bytes(range(1, 65))).decode()) is not None
    assert redact.secret_like("token: x402c_abcdefghijklmnop", ["x402c_abcdefghijklmnop"]) is not None
    assert redact.secret_like("#cloud-config\npackages: [nginx]\nruncmd: [sha256sum " + "ab" * 32 + "]\n") is None


def _literal_text(node) -> str:
    """The literal parts of a string expression (constants, f-string pieces, + concatenations)."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal_text(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + _literal_text(node.right)
    if isinstance(node, ast.IfExp):
        return _literal_text(node.body) + " " + _literal_text(node.orelse)
    return ""


def test_every_hint_naming_a_human_only_flag_addresses_the_human():
    """A hint the model reads must not tell it to add --accept-payee-change (and the like) itself."""
    import ast
    from pathlib import Path

    flags = {"--" + d.replace("_", "-") for d in HUMAN_ONLY if d != "yes"}
    lib = Path(mcp_server.__file__).parent.parent
    seen = 0
    for path in sorted(lib.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for kw in node.keywords:
                if kw.arg != "hint":
                    continue
                text = _literal_text(kw.value)
                named = [f for f in flags if f in text]
                if named:
                    seen += 1
                    assert "human" in text.lower(), (path.name, node.lineno, named, text)
    assert seen >= 5  # the cap, the payee, the recipient account, the unresolved payment, plain http
    # The server's instructions do not map such a flag to a tool argument.
    instructions = mcp_server.INSTRUCTIONS
    sentence = next(x for x in instructions.split(". ") if "--max-usd" in x)
    assert "human" in sentence and "--accept-payee-change" in sentence
