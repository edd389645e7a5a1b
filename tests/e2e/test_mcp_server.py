"""The MCP server end to end: `scripts/mcp_server.py` as a subprocess, driven over stdio by the MCP
SDK's own client (and over raw pipes where the wire itself is the claim), against the sandbox,
payments settled on its local chains.

One server process per configuration, shared by the tests of this module (each is a real stdio
session): spending off; spending on with a client that can be asked (protocol 2026-07-28, where
the question rides an InputRequiredResult); spending on with a handshake-era client (2025-11-25,
where the server sends elicitation/create) and a threshold of 0.25 USD; spending on with a client
that cannot be asked.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import anyio
import anyio.from_thread
import jsonschema
import pytest
import requests

from tests.helpers import (
    MCP_TOOLS,
    PLAN,
    REGION,
    SCRIPTS,
    clean_env,
    run_script,
    wait_until,
    wallet_env,
)
from tests.helpers import journal_entries as journal
from tests.helpers import ledger, payee_pins

SERVER = SCRIPTS / "mcp_server.py"
DAY_ATOMIC = 249_600  # $0.0104/h x 24 h, USDC on Base (6 decimals)
SPENDING = {"provision", "extend_instance", "credits_topup", "keepalive"}


class Session:
    """One MCP server process and the SDK client talking to it, usable from synchronous tests."""

    def __init__(self, portal, env: dict, log: Path, *, elicit: bool = True, mode: str = "auto", args: tuple = ()):
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters, stdio_client

        self.portal, self.env, self.log_path = portal, env, log
        self.answers: list[str] = []  # what the "human" answers to the next approval questions
        self.asked: list[str] = []
        self._log = open(log, "w")
        params = StdioServerParameters(command=sys.executable, args=[str(SERVER), *args], env=env)
        client = Client(stdio_client(params, errlog=self._log), mode=mode, elicitation_callback=self._elicit if elicit else None)
        self._cm = portal.wrap_async_context_manager(client)
        self.client = self._cm.__enter__()

    async def _elicit(self, context, params):
        import mcp_types as types

        self.asked.append(params.message)
        answer = self.answers.pop(0) if self.answers else "decline"
        return types.ElicitResult(action=answer, content={"approve": True} if answer == "accept" else None)

    def call(self, name: str, arguments: dict | None = None, *, progress: list | None = None):
        async def record(p, total, message):
            progress.append((p, message))

        fn = functools.partial(self.client.call_tool, name, arguments, progress_callback=record if progress is not None else None)
        return self.portal.call(fn)

    def ok(self, name: str, arguments: dict | None = None, **kw) -> dict:
        r = self.call(name, arguments, **kw)
        assert not r.is_error and r.structured_content["ok"] is True, r.structured_content
        assert json.loads(r.content[0].text) == r.structured_content  # the text block is the same document
        return r.structured_content

    def error(self, name: str, arguments: dict | None, code: str) -> dict:
        r = self.call(name, arguments)
        doc = r.structured_content
        assert r.is_error and doc["ok"] is False and doc["error"]["code"] == code, doc
        return doc

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def close(self) -> None:
        self._cm.__exit__(None, None, None)
        self._log.close()


def usdc(sb, w) -> int:
    return sb.facilitator.balance_of("base", w["evm_address"])


@pytest.fixture(scope="module")
def portal():
    with anyio.from_thread.start_blocking_portal() as portal:
        yield portal


@pytest.fixture(scope="module")
def wallet(sandbox, tools):
    return tools.fresh_wallet(sandbox.facilitator, usd=50)


def _session(request, portal, sandbox, wallet, tmp_path_factory, name, **kw):
    home = tmp_path_factory.mktemp(name)
    extra = kw.pop("extra", {})
    s = Session(portal, wallet_env(sandbox, wallet, home, **extra), home / "server.log", **kw)
    s.home = home
    request.addfinalizer(s.close)
    return s


@pytest.fixture(scope="module")
def off(request, portal, sandbox, wallet, tmp_path_factory):
    return _session(request, portal, sandbox, wallet, tmp_path_factory, "off")


@pytest.fixture(scope="module")
def on(request, portal, sandbox, wallet, tmp_path_factory):
    return _session(request, portal, sandbox, wallet, tmp_path_factory, "on", extra={"COMPUTE_MCP_ALLOW_SPEND": "1"})


@pytest.fixture(scope="module")
def legacy(request, portal, sandbox, wallet, tmp_path_factory):
    return _session(request, portal, sandbox, wallet, tmp_path_factory, "legacy", mode="legacy",
                    extra={"COMPUTE_MCP_ALLOW_SPEND": "1", "COMPUTE_MCP_CONFIRM_ABOVE_USD": "0.25"})


# -- tools and schemas ---------------------------------------------------------------------------


def test_every_tool_is_listed_with_valid_schemas_and_annotations(off):
    tools = {t.name: t for t in off.portal.call(off.client.list_tools).tools}
    assert set(tools) == MCP_TOOLS
    for name, t in tools.items():
        jsonschema.Draft202012Validator.check_schema(t.input_schema)
        jsonschema.Draft202012Validator.check_schema(t.output_schema)
        assert t.input_schema["type"] == "object" and t.input_schema["additionalProperties"] is False
        assert all(p == p.lower() and "-" not in p for p in t.input_schema["properties"]), name  # snake_case
        a = t.annotations
        assert a.read_only_hint is not None and a.destructive_hint is not None, name
        assert t.meta["x402-compute/spends"] is (name in SPENDING), name
        if name in SPENDING:
            assert not a.read_only_hint and a.destructive_hint
    for name in ("browse_plans", "quote_provision", "quote_extend", "quote_topup", "quote_resize", "list_instances", "wait_for_instance", "budget_status"):
        assert tools[name].annotations.read_only_hint is True, name
    for name in ("destroy_instance", "revoke_api_key"):
        assert tools[name].annotations.destructive_hint is True and "confirm" in tools[name].input_schema["properties"]
    # ssh_exec: destructive, not spending; the human's host key decision and local files are not the model's.
    ssh = tools["ssh_exec"]
    assert ssh.annotations.destructive_hint is True and ssh.annotations.read_only_hint is False
    assert ssh.input_schema["properties"]["command"]["type"] == "array" and ssh.input_schema["required"] == ["instance_id", "command"]
    assert {"command_timeout", "max_output", "user", "client"} <= set(ssh.input_schema["properties"])
    assert not {"accept_host_key_change", "stdin_file", "identity"} & set(ssh.input_schema["properties"])
    # What a model must not set: the human's cap and guards, the server's URL and settings, secrets on stdout.
    for name in SPENDING:
        props = tools[name].input_schema["properties"]
        assert not {"max_usd", "ignore_unresolved", "yes", "quote", "base_url", "env_file"} & set(props), name
        assert "confirm_quote" in props, name
    for name in ("quote_provision", "quote_extend", "quote_topup", "quote_resize"):
        assert not {"confirm_quote", "quote", "yes"} & set(tools[name].input_schema["properties"]), name
    assert "quote" not in tools["resize_instance"].input_schema["properties"]  # the dry run is its own read-only tool
    assert "show" not in tools["get_one_time_password"].input_schema["properties"]
    assert not {"show", "save"} & set(tools["create_api_key"].input_schema["properties"])
    # Mirrors the script's flags: provision's parser, minus what the server owns.
    prov = tools["provision"].input_schema
    assert {"plan", "region", "hours", "days", "months", "os_id", "ssh_public_key", "user_data", "network", "pay", "wait", "wait_ssh"} <= set(prov["properties"])
    assert not {"ssh_key_file", "accept_payee_change", "create_recipient_account"} & set(prov["properties"])
    assert prov["required"] == ["plan", "region"]
    assert {"model_id", "mode"} <= set(prov["properties"]) and prov["properties"]["mode"]["enum"] == ["private", "grid"]
    # ai_chat: content in, never a path: the key file is found from the instance id.
    chat = tools["ai_chat"]
    assert chat.input_schema["required"] == ["instance_id", "prompt"] and chat.annotations.read_only_hint is False
    assert not [p for p in chat.input_schema["properties"] if "file" in p or "key" in p or "path" in p]
    assert "exactly one of: hours, days, months" in tools["provision"].description


def test_structured_results_equal_the_scripts_documents(off, sandbox, wallet):
    env = off.env
    code, doc, _ = run_script("browse_plans.py", "--provider", "vultr", "--limit", "3", env=env)
    assert code == 0
    assert off.ok("browse_plans", {"provider": "vultr", "limit": 3}) == doc
    # A failure: the same error document, as a tool error.
    missing = str(uuid.uuid4())
    code, doc, _ = run_script("instance_details.py", missing, env=env)
    assert code == 1 and doc["error"]["code"] == "not_found"
    assert off.error("instance_details", {"instance_id": missing}, "not_found") == doc


def test_malformed_calls_are_errors_not_crashes(off):
    from mcp.shared.exceptions import MCPError

    with pytest.raises(MCPError, match="Unknown tool"):
        off.call("no_such_tool", {})
    off.error("provision", {"plan": PLAN, "region": REGION, "days": "one"}, "usage_error")
    off.error("browse_plans", {"limit": 3, "colour": "red"}, "usage_error")
    off.error("instance_details", {}, "usage_error")
    off.error("quote_provision", {"plan": PLAN, "region": REGION}, "usage_error")  # no duration: the script's own parser says so
    # A value is never read as a flag: this is a bad instance id, not --yes.
    doc = off.error("destroy_instance", {"instance_id": "--yes", "confirm": True}, "usage_error")
    assert "instance" in doc["error"]["message"].lower()
    assert off.ok("browse_regions", {"provider": "vultr"})["count"] > 0  # the session is still fine


def test_ssh_exec_runs_a_command_within_its_bounds(request, off, sandbox, tools, wallet, tmp_path):
    from tests.helpers import ssh_keypair

    key, pub = ssh_keypair(tmp_path)
    iid = tools.provision(sandbox, wallet, ssh_public_key=pub)["order"]["id"]
    off.ok("wait_for_instance", {"instance_id": iid, "wait_ssh": True, "poll_interval": 0.2})
    # The key file is the human's choice when starting the server, never a tool input.
    off = Session(off.portal, off.env, tmp_path / "ssh-server.log", args=("--identity", str(key)))
    request.addfinalizer(off.close)
    base = {"instance_id": iid}
    doc = off.ok("ssh_exec", {**base, "command": ["uname", "-a"]})
    assert doc["stdout"] == subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout
    assert doc["host_key"]["status"] == "matched"  # pinned by wait_for_instance
    # Words stay words, whatever they hold (a "--" or an option-looking word included).
    doc = off.ok("ssh_exec", {**base, "command": ["printf", "%s|", "--", "-x", "a b"], "max_output": 4})
    assert doc["stdout"] == "--|-" and doc["truncated"]["stdout"] is True and doc["bytes"]["stdout"] == 10
    err = off.error("ssh_exec", {**base, "command": ["echo early; sleep 30"], "command_timeout": 2}, "command_timeout")
    assert err["error"]["details"]["stdout"] == "early\n"
    off.error("ssh_exec", {**base, "command": []}, "usage_error")


def test_ai_chat_uses_the_saved_key_and_never_returns_it(off, sandbox, tools, wallet):
    import os

    paid = tools.provision(sandbox, wallet, plan="vcg-a100-1c-2g-6gb", region="ewr", ai_machine={"model_id": "llama-3.2-3b", "mode": "private"})
    iid, key = paid["order"]["id"], paid["order"]["metadata"]["ai"]["api_key"]
    keys = off.home / "state" / "ai-keys"  # where provision.py would have saved it
    for d in (off.home / "state", keys):
        d.mkdir(mode=0o700, exist_ok=True)
    (keys / f"{iid}.key").write_text(key + "\n")
    os.chmod(keys / f"{iid}.key", 0o600)
    off.ok("wait_for_instance", {"instance_id": iid, "poll_interval": 0.2})
    doc = off.ok("ai_chat", {"instance_id": iid, "prompt": "--yes hello", "max_tokens": 50})
    assert doc["reply"] == "llama-3.2-3b (sandbox) heard: --yes hello" and doc["endpoint"].startswith("http://127.0.")
    assert key not in json.dumps(doc) and key not in off.log()


def test_quote_resize_is_a_read_only_dry_run(off, sandbox, tools, wallet):
    iid = tools.provision(sandbox, wallet)["order"]["id"]
    off.ok("wait_for_instance", {"instance_id": iid, "poll_interval": 0.2})
    q = off.ok("quote_resize", {"instance_id": iid, "plan": "vc2-2c-4gb"})["quote"]
    assert (q["action"], q["from_plan"], q["to_plan"], q["sent"]) == ("resize", "vc2-1c-1gb", "vc2-2c-4gb", False)
    assert "vultr_upgrade_only" in q["checks"]
    # Nothing changed on the server: the instance still has its plan.
    assert off.ok("instance_details", {"instance_id": iid})["instance"]["plan"] == "vc2-1c-1gb"
    # A plan of another provider is refused by the same checks the script runs.
    off.error("quote_resize", {"instance_id": iid, "plan": "do:s-1vcpu-2gb"}, "provider_mismatch")


def test_quote_works_and_provision_is_refused_while_spending_is_off(off, sandbox, wallet):
    before = usdc(sandbox, wallet)
    q = off.ok("quote_provision", {"plan": PLAN, "region": REGION, "days": 1})["quote"]
    assert q["amount_atomic"] == str(DAY_ATOMIC) and q["signed"] is False and q["policy"]["ok"] is True
    for name, args in (("provision", {"plan": PLAN, "region": REGION, "days": 1}),
                       ("extend_instance", {"instance_id": str(uuid.uuid4()), "days": 1}),
                       ("credits_topup", {"amount": 5})):
        doc = off.error(name, args, "spending_disabled")
        assert "COMPUTE_MCP_ALLOW_SPEND=1" in doc["error"]["hint"]
    assert usdc(sandbox, wallet) == before and journal(off.home) == []
    assert off.asked == []
    # A quote the policy would refuse is the same tool error as paying, with the quote in it.
    refused = off.error("quote_provision", {"plan": PLAN, "region": REGION, "days": 200}, "spend_cap_exceeded")
    assert refused["error"]["details"]["quote"]["signed"] is False
    budget = off.ok("budget_status", {})
    assert budget["budget"]["spent_usd"] in ("0", "0.00") and budget["budget"]["reserved_usd"] in ("0", "0.00")


# -- paying, with the human asked (2026-07-28: InputRequiredResult) ------------------------------


def test_provision_paid_after_approval_then_wait_details_extend_destroy(on, sandbox, wallet):
    payee = sandbox.facilitator.payee("base")
    before, payee_before = usdc(sandbox, wallet), sandbox.facilitator.balance_of("base", payee)
    on.answers = ["accept"]
    progress: list = []
    doc = on.ok("provision", {"plan": PLAN, "region": REGION, "days": 1, "wait": True, "poll_interval": 0.2}, progress=progress)
    assert len(on.asked) == 1
    question = on.asked[0]
    for fact in ("0.2496", "base", payee, f"{PLAN} in {REGION} for 24 h"):
        assert fact in question, question
    pay, order = doc["payment"], doc["order"]
    assert pay["amount_atomic"] == str(DAY_ATOMIC) and pay["tx_hash"] and pay["payee"] == payee
    # Settled on the local chain: exactly the amount moved, once.
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC
    assert sandbox.facilitator.balance_of("base", payee) == payee_before + DAY_ATOMIC
    assert order["state"] == "running" and order["ip"] and doc["ssh"]["command"]
    messages = [m for _, m in progress]
    assert any("running" in m for m in messages) and any("Paying" in m for m in messages), messages
    assert [p for p, _ in progress] == sorted({p for p, _ in progress})  # strictly increasing
    [entry] = journal(on.home)
    assert entry["status"] == "settled" and entry["order_id"] == order["id"]

    iid = order["id"]
    progress = []
    waited = on.ok("wait_for_instance", {"instance_id": iid, "wait_ssh": True, "poll_interval": 0.2}, progress=progress)
    assert waited["instance"]["state"] == "running" and waited["instance"]["ssh"]["banner"].startswith("SSH-")
    assert any("SSH answers" in m for _, m in progress), progress
    details = on.ok("instance_details", {"instance_id": iid})["instance"]
    assert details["id"] == iid and details["ip"] == order["ip"]

    q = on.ok("quote_extend", {"instance_id": iid, "days": 1})["quote"]
    assert q["amount_atomic"] == str(DAY_ATOMIC)
    on.answers = ["accept"]
    ext = on.ok("extend_instance", {"instance_id": iid, "days": 1})
    assert ext["order"]["hours_added"] == 24 and ext["payment"]["tx_hash"]
    assert usdc(sandbox, wallet) == before - 2 * DAY_ATOMIC and len(on.asked) == 2

    refused = on.error("destroy_instance", {"instance_id": iid}, "confirmation_required")
    assert refused["error"]["details"]["prepaid_time_lost"]["hours"] > 24
    assert on.ok("instance_details", {"instance_id": iid})["instance"]["state"] == "running"
    gone = on.ok("destroy_instance", {"instance_id": iid, "confirm": True})
    assert gone["destroyed"] is True
    assert on.ok("instance_details", {"instance_id": iid})["instance"]["state"] == "destroyed"

    # The budget saw both payments; the approval question showed what was left of it.
    status = on.ok("budget_status", {"window": "7d"})
    assert status["budget"]["spent_usd"].rstrip("0").rstrip(".") == "0.4992"
    assert "Budget left after it" in on.asked[1]
    assert ext["budget"]["spent_usd"] == status["budget"]["spent_usd"]


def test_a_quote_id_from_the_model_is_still_put_to_the_human(on, sandbox, wallet):
    """confirm_quote stands for the human's approval in the scripts; over MCP the model passes it,
    so the human is asked about the recorded quote first, and the flow pays exactly that or nothing."""
    q = on.ok("quote_provision", {"plan": PLAN, "region": REGION, "days": 1, "label": "mcp-quoted"})["quote"]
    before, entries = usdc(sandbox, wallet), len(journal(on.home))
    on.answers = ["decline"]
    on.error("provision", {"plan": PLAN, "region": REGION, "days": 1, "label": "mcp-quoted", "confirm_quote": q["quote_id"]}, "declined_by_user")
    assert q["quote_id"] in on.asked[-1] and "0.2496" in on.asked[-1] and q["payee"].lower() in on.asked[-1].lower()
    assert usdc(sandbox, wallet) == before and len(journal(on.home)) == entries
    on.answers = ["accept"]
    doc = on.ok("provision", {"plan": PLAN, "region": REGION, "days": 1, "label": "mcp-quoted", "confirm_quote": q["quote_id"]})
    assert doc["order"]["label"] == "mcp-quoted" and doc["payment"]["amount_atomic"] == q["amount_atomic"]
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC
    # A paid quote never pays again; terms that differ from a quote are refused before anything
    # is signed, whatever the human said.
    on.error("provision", {"plan": PLAN, "region": REGION, "days": 1, "label": "mcp-quoted", "confirm_quote": q["quote_id"]}, "quote_used")
    q2 = on.ok("quote_provision", {"plan": PLAN, "region": REGION, "days": 1, "label": "mcp-quoted"})["quote"]
    on.answers = ["accept"]
    on.error("provision", {"plan": PLAN, "region": REGION, "days": 2, "label": "mcp-quoted", "confirm_quote": q2["quote_id"]}, "quote_changed")
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC
    on.ok("destroy_instance", {"instance_id": doc["order"]["id"], "confirm": True})


def test_declined_or_dismissed_approval_signs_nothing(on, sandbox, wallet):
    for answer in ("decline", "cancel"):
        before, entries, asked = usdc(sandbox, wallet), len(journal(on.home)), len(on.asked)
        on.answers = [answer]
        doc = on.error("provision", {"plan": PLAN, "region": REGION, "days": 1}, "declined_by_user")
        assert doc["error"]["details"]["answer"] == answer and doc["error"]["details"]["quote"]["amount_atomic"] == str(DAY_ATOMIC)
        assert len(on.asked) == asked + 1
        assert usdc(sandbox, wallet) == before and len(journal(on.home)) == entries


def test_payment_unknown_is_a_tool_error_that_points_to_reconcile(on, sandbox, wallet):
    assert requests.post(sandbox.base_url + "/_sandbox/faults", json={"drop_after_settle": 2}, timeout=5).status_code == 200
    before = usdc(sandbox, wallet)
    on.answers = ["accept"]
    doc = on.error("provision", {"plan": PLAN, "region": REGION, "days": 1, "label": "mcp-unknown"}, "payment_unknown")
    err = doc["error"]
    jid = err["details"]["journal_id"]
    assert err["details"]["reconcile_tool"] == {"name": "reconcile", "arguments": {"journal_id": jid}}
    assert "Never call provision again" in err["message"] and "reconcile" in err["hint"]
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC  # it did settle: only the answer was lost
    found = on.ok("reconcile", {"journal_id": jid})
    assert found["found"] is True and found["order"]["label"] == "mcp-unknown"
    on.ok("destroy_instance", {"instance_id": found["order"]["id"], "confirm": True})


def stopped_polling(session, polls, seen: int, message: str) -> None:
    """No poll after the cancellation while the same server runs other waits of its own to their
    end (their timeout errors are the events): a poller still running would have polled again.
    The first lets a poll that was on the wire at the cancellation land in the log."""
    def another_wait() -> None:
        session.error("wait_for_instance", {"instance_id": str(uuid.uuid4()), "wait_timeout": 1.5, "poll_interval": 0.2}, "wait_timeout")

    another_wait()
    seen = max(seen, polls())
    another_wait()
    assert polls() == seen, message


def test_cancelling_a_wait_stops_the_polling(on, sandbox):
    missing = str(uuid.uuid4())  # never readable: the wait would poll until its timeout

    async def cancelled_wait():
        with anyio.move_on_after(1.5) as scope:
            await on.client.call_tool("wait_for_instance", {"instance_id": missing, "wait_timeout": 120, "poll_interval": 0.2})
        return scope.cancelled_caught

    assert on.portal.call(cancelled_wait) is True
    polls = lambda: on.log().count(missing)  # noqa: E731
    seen = wait_until(lambda: polls() >= 2 and polls(), "the wait's polls in the server log")
    stopped_polling(on, polls, seen, "the cancelled wait kept polling")
    assert on.ok("list_instances", {})["ok"] is True  # the session goes on


def test_cancelling_provision_during_its_wait_keeps_the_paid_machine_and_stops_polling(request, portal, sandbox, make_sandbox, wallet, tmp_path_factory):
    slow = make_sandbox(boot_seconds=600, facilitator=sandbox.facilitator)  # the same chains, machines that do not boot
    home = tmp_path_factory.mktemp("slow")
    s = Session(portal, wallet_env(slow, wallet, home, COMPUTE_MCP_ALLOW_SPEND="1", COMPUTE_MCP_APPROVAL="unattended"), home / "server.log",
                elicit=False, args=("--verbose",))
    s.home = home
    request.addfinalizer(s.close)
    before = usdc(sandbox, wallet)

    async def provision_then_cancel():
        waiting = anyio.Event()

        async def progress(p, total, message):
            if message and message.startswith("Waiting for"):
                waiting.set()

        async with anyio.create_task_group() as tg:
            async def call():
                await s.client.call_tool("provision", {"plan": PLAN, "region": REGION, "days": 1, "wait": True, "poll_interval": 0.2},
                                         progress_callback=progress)
            tg.start_soon(call)
            with anyio.fail_after(60):
                await waiting.wait()
            await anyio.sleep(0.6)
            tg.cancel_scope.cancel()

    s.portal.call(provision_then_cancel)
    # Paid and settled before the wait began; the cancelled call leaves the machine, which is paid for.
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC
    [entry] = journal(home)
    assert entry["status"] == "settled"
    polls = lambda: s.log().count(f"GET {slow.base_url}/compute/instances/{entry['order_id']}")  # noqa: E731  (--verbose logs each request)
    seen = wait_until(lambda: polls() >= 2 and polls(), "the provision's polls in the server log")
    stopped_polling(s, polls, seen, "the cancelled provision kept polling")
    listed = s.ok("list_instances", {})["instances"]
    assert [i["id"] for i in listed] == [entry["order_id"]]
    s.ok("destroy_instance", {"instance_id": entry["order_id"], "confirm": True})


# -- the other client kinds ----------------------------------------------------------------------


def test_handshake_era_client_is_asked_above_the_threshold_only(legacy, sandbox, wallet):
    before = usdc(sandbox, wallet)
    # 0.2496 USD is within COMPUTE_MCP_CONFIRM_ABOVE_USD=0.25, but the payee is not pinned yet: asked.
    legacy.answers = ["accept"]
    doc = legacy.ok("provision", {"plan": PLAN, "region": REGION, "days": 1})
    assert len(legacy.asked) == 1 and "(new)" in legacy.asked[0] and usdc(sandbox, wallet) == before - DAY_ATOMIC
    iid = doc["order"]["id"]
    # The same amount to the payee now pinned: paid without a question.
    legacy.ok("extend_instance", {"instance_id": iid, "days": 1})
    assert len(legacy.asked) == 1 and usdc(sandbox, wallet) == before - 2 * DAY_ATOMIC
    # Two days (0.4992 USD) is above it: asked over elicitation/create, declined, nothing signed.
    legacy.answers = ["decline"]
    legacy.error("extend_instance", {"instance_id": iid, "days": 2}, "declined_by_user")
    assert len(legacy.asked) == 2 and "0.4992" in legacy.asked[1]
    assert usdc(sandbox, wallet) == before - 2 * DAY_ATOMIC
    legacy.answers = ["accept"]
    legacy.ok("extend_instance", {"instance_id": iid, "days": 2})
    assert usdc(sandbox, wallet) == before - 4 * DAY_ATOMIC
    legacy.ok("destroy_instance", {"instance_id": iid, "confirm": True})


def test_a_client_that_cannot_be_asked_gets_approval_unavailable(request, portal, sandbox, wallet, tmp_path_factory):
    """Issue 19.2: spending on and a client without elicitation used to pay with no question at all."""
    s = _session(request, portal, sandbox, wallet, tmp_path_factory, "noask", elicit=False,
                 extra={"COMPUTE_MCP_ALLOW_SPEND": "1", "COMPUTE_MCP_CONFIRM_ABOVE_USD": "100"})
    before = usdc(sandbox, wallet)
    doc = s.error("provision", {"plan": PLAN, "region": REGION, "days": 1}, "approval_unavailable")
    assert doc["error"]["details"]["quote"]["amount_atomic"] == str(DAY_ATOMIC) and "human" in doc["error"]["hint"]
    # The model's own quote id is no approval either.
    q = s.ok("quote_provision", {"plan": PLAN, "region": REGION, "days": 1})["quote"]
    s.error("provision", {"plan": PLAN, "region": REGION, "days": 1, "confirm_quote": q["quote_id"]}, "approval_unavailable")
    s.error("credits_topup", {"amount": 1}, "approval_unavailable")
    assert usdc(sandbox, wallet) == before and journal(s.home) == []


def test_a_client_that_cannot_be_asked_pays_only_when_the_human_set_unattended(request, portal, sandbox, wallet, tmp_path_factory):
    s = _session(request, portal, sandbox, wallet, tmp_path_factory, "noelicit", elicit=False,
                 extra={"COMPUTE_MCP_ALLOW_SPEND": "1", "COMPUTE_REQUIRE_QUOTE": "1", "COMPUTE_MCP_APPROVAL": "unattended"})
    before = usdc(sandbox, wallet)
    # COMPUTE_REQUIRE_QUOTE=1 holds over MCP as outside a terminal: only an approved quote is paid.
    s.error("provision", {"plan": PLAN, "region": REGION, "days": 1}, "quote_required")
    q = s.ok("quote_provision", {"plan": PLAN, "region": REGION, "days": 1})["quote"]
    doc = s.ok("provision", {"plan": PLAN, "region": REGION, "days": 1, "confirm_quote": q["quote_id"], "wait": True, "poll_interval": 0.2})
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC
    # No SSH key: the one-time root password goes to a 0600 file; the result names the file only.
    pw = s.ok("get_one_time_password", {"instance_id": doc["order"]["id"]})
    path = Path(pw["credentials_file"])
    password = path.read_text().split("password=")[1].strip()
    assert pw["password"] is None and len(password) >= 8 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert password not in json.dumps(pw) and password not in s.log()
    s.ok("destroy_instance", {"instance_id": doc["order"]["id"], "confirm": True})
    # Secrets stay in their 0600 files: a saved API key is returned as its last four characters.
    key = s.ok("create_api_key", {"label": "mcp"})
    saved = Path(key["saved_to"])
    assert key["api_key"] is None and len(key["key_last4"]) == 4 and saved.read_text().strip().endswith(key["key_last4"])
    assert oct(saved.stat().st_mode & 0o777) == "0o600"
    assert saved.read_text().strip() not in s.log()
    # A second call would replace the saved key (gone from this machine, valid on the server): refused
    # before anything is created, with a hint for the human; the model has no input to override it.
    minted = len(sandbox.app.store.api_keys_of(sandbox.app.store._one("SELECT owner FROM api_keys WHERE id=?", (key["id"],))[0]))
    refused = s.error("create_api_key", {"label": "again"}, "saved_key_exists")
    assert refused["error"]["details"]["saved_key_id"] == key["id"] and "ask the human" in refused["error"]["hint"]
    s.error("create_api_key", {"label": "again", "replace_saved_key": True}, "usage_error")
    assert saved.read_text().strip().endswith(key["key_last4"])
    assert len(sandbox.app.store.api_keys_of(sandbox.app.store._one("SELECT owner FROM api_keys WHERE id=?", (key["id"],))[0])) == minted


def _pin_other_payee(home: Path) -> str:
    """The state folder remembers another payee for base (in the JSON file of the release before the
    ledger, imported on first use): the sandbox's own now reads as a change."""
    other = "0x" + "77" * 20
    state = home / "state"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    (state / "payees.json").write_text(json.dumps({"base": {"pay_to": other, "pinned_at": "2026-01-01T00:00:00Z"}}))
    return other


def test_a_payee_change_is_always_the_humans_question(request, portal, sandbox, wallet, tmp_path_factory):
    """Issue 19.2/19.3: accept_payee_change was a tool input and a threshold above the amount let the
    model re-pin a new payee by itself. Now the change is put to the human whatever the threshold, and
    refused outright when the client cannot ask, unattended or not."""
    payee = sandbox.facilitator.payee("base")
    blind_home = tmp_path_factory.mktemp("payee-blind")
    other = _pin_other_payee(blind_home)
    blind = Session(portal, wallet_env(sandbox, wallet, blind_home, COMPUTE_MCP_ALLOW_SPEND="1", COMPUTE_MCP_APPROVAL="unattended",
                                       COMPUTE_MCP_CONFIRM_ABOVE_USD="100"), blind_home / "server.log", elicit=False)
    request.addfinalizer(blind.close)
    before = usdc(sandbox, wallet)
    doc = blind.error("provision", {"plan": PLAN, "region": REGION, "days": 1}, "payee_changed")
    assert "human" in doc["error"]["hint"] and doc["error"]["details"]["offered"] == payee
    assert usdc(sandbox, wallet) == before and journal(blind_home) == []

    home = tmp_path_factory.mktemp("payee-ask")
    _pin_other_payee(home)
    s = Session(portal, wallet_env(sandbox, wallet, home, COMPUTE_MCP_ALLOW_SPEND="1", COMPUTE_MCP_CONFIRM_ABOVE_USD="100"), home / "server.log")
    request.addfinalizer(s.close)
    s.answers = ["decline"]
    s.error("provision", {"plan": PLAN, "region": REGION, "days": 1}, "declined_by_user")
    assert len(s.asked) == 1 and payee.lower() in s.asked[0].lower() and "payee changed" in s.asked[0]
    assert usdc(sandbox, wallet) == before and journal(home) == []
    assert payee_pins(home / "state")["base"]["pay_to"] == other
    s.answers = ["accept"]
    paid = s.ok("provision", {"plan": PLAN, "region": REGION, "days": 1})
    assert len(s.asked) == 2 and paid["payment"]["payee"] == payee  # asked once for this payment, then paid
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC
    assert payee_pins(home / "state")["base"]["pay_to"].lower() == payee.lower()
    s.ok("destroy_instance", {"instance_id": paid["order"]["id"], "confirm": True})


def test_a_quote_with_an_unchecked_price_is_always_asked(request, portal, sandbox, wallet, tmp_path_factory):
    """A quote recorded without a catalog price check approves no amount: over MCP it is put to the
    human whatever the threshold (refused when the client cannot ask); their yes caps the payment
    at the amount they saw."""
    for elicit, home_name in ((False, "unchecked-blind"), (True, "unchecked-ask")):
        home = tmp_path_factory.mktemp(home_name)
        extra = {"COMPUTE_MCP_ALLOW_SPEND": "1", "COMPUTE_MCP_CONFIRM_ABOVE_USD": "100"}
        if not elicit:
            extra["COMPUTE_MCP_APPROVAL"] = "unattended"
        s = Session(portal, wallet_env(sandbox, wallet, home, **extra), home / "server.log", elicit=elicit)
        request.addfinalizer(s.close)
        q = s.ok("quote_topup", {"amount": 1})["quote"]
        led = ledger(home / "state")
        rec = led.get_quote(q["quote_id"])
        rec["price_checked"] = False  # as a quote of an instance whose plan left the catalog records it
        led.update_quote(q["quote_id"], lambda _: rec)
        before = usdc(sandbox, wallet)
        if not elicit:
            doc = s.error("credits_topup", {"amount": 1, "confirm_quote": q["quote_id"]}, "approval_unavailable")
            assert "catalog" in doc["error"]["message"] and usdc(sandbox, wallet) == before and journal(home) == []
            continue
        s.answers = ["accept"]
        paid = s.ok("credits_topup", {"amount": 1, "confirm_quote": q["quote_id"]})
        assert len(s.asked) == 1 and q["quote_id"] in s.asked[0] and "catalog" in s.asked[0]
        assert paid["payment"]["amount_atomic"] == q["amount_atomic"] and usdc(sandbox, wallet) == before - 1_000_000
        [entry] = journal(home)
        assert entry["status"] == "settled"


def test_user_data_is_inline_text_and_key_like_content_is_refused(on, sandbox, wallet):
    """Issue 19.3: quote_provision took user_data as a path and sent the env file or ~/.ssh/id_* away."""
    env_file = on.home / "secrets.env"
    env_file.write_text(f"PRIVATE_KEY={wallet['evm_private_key']}\n")
    q = on.ok("quote_provision", {"plan": PLAN, "region": REGION, "days": 1, "user_data": str(env_file)})["quote"]
    assert q["signed"] is False  # the text "/…/secrets.env" itself, not the file: nothing was read
    for text in (f"#!/bin/sh\necho {wallet['evm_private_key']}", wallet["solana_secret_key"],
                 "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"):
        doc = on.error("quote_provision", {"plan": PLAN, "region": REGION, "days": 1, "user_data": text}, "secret_in_input")
        assert wallet["evm_private_key"][2:] not in json.dumps(doc)
    on.error("quote_provision", {"plan": PLAN, "region": REGION, "days": 1, "user_data": "x" * (64 * 1024 + 1)}, "usage_error")
    tools = {t.name: t for t in on.portal.call(on.client.list_tools).tools}
    for t in tools.values():
        props = t.input_schema["properties"]
        assert not {"accept_payee_change", "create_recipient_account", "max_usd", "ignore_unresolved", "identity",
                    "ssh_key_file", "stdin_file", "accept_host_key_change", "yes"} & set(props), (t.name, sorted(props))


def test_two_paying_calls_at_once_never_overrun_the_budget(request, portal, sandbox, wallet, tmp_path_factory):
    """Handlers run in threads of one process here (each script payment has a process of its own):
    two provisions sent together with a budget for one: one settles, the other is budget_exceeded."""
    s = _session(request, portal, sandbox, wallet, tmp_path_factory, "budget", elicit=False,
                 extra={"COMPUTE_MCP_ALLOW_SPEND": "1", "COMPUTE_BUDGET_USD": "0.3", "COMPUTE_MCP_APPROVAL": "unattended"})
    before = usdc(sandbox, wallet)

    async def both():
        results = []

        async def one(label):
            results.append(await s.client.call_tool("provision", {"plan": PLAN, "region": REGION, "days": 1, "label": label}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "mcp-budget-a")
            tg.start_soon(one, "mcp-budget-b")
        return results

    results = s.portal.call(both)
    codes = sorted("ok" if not r.is_error else r.structured_content["error"]["code"] for r in results)
    assert codes == ["budget_exceeded", "ok"], [r.structured_content for r in results]
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC
    paid = next(r.structured_content for r in results if not r.is_error)
    s.ok("destroy_instance", {"instance_id": paid["order"]["id"], "confirm": True})


# -- the wire ------------------------------------------------------------------------------------


@pytest.mark.parametrize("setting", [{"COMPUTE_MCP_ALLOW_SPEND": "maybe"}, {"COMPUTE_MCP_CONFIRM_ABOVE_USD": "lots"}, {"COMPUTE_MCP_APPROVAL": "yolo"}])
def test_a_bad_setting_stops_the_server_before_serving_with_one_json_document(tmp_path, setting):
    proc = subprocess.run([sys.executable, str(SERVER)], env=clean_env(setting, home=tmp_path), input="",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["error"]["code"] == "config_error" and next(iter(setting)) in doc["error"]["message"]
    assert next(iter(setting)) in proc.stderr  # where hosts show it


def test_stdout_carries_only_protocol_messages(sandbox, wallet, tmp_path):
    """Raw pipes, no SDK: every stdout line is one JSON-RPC message; logs (--verbose HTTP lines,
    progress) go to stderr; a garbage line does not stop the session."""
    env = wallet_env(sandbox, wallet, tmp_path)
    proc = subprocess.Popen([sys.executable, str(SERVER), "--verbose"], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def send(msg):
        proc.stdin.write((msg if isinstance(msg, str) else json.dumps(msg)) + "\n")
        proc.stdin.flush()

    def read_until(rid):
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, f"server closed stdout: {proc.stderr.read()[-2000:]}"
            lines.append(line)
            msg = json.loads(line)
            if msg.get("id") == rid:
                return lines, msg

    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}})
        out, init = read_until(1)
        assert init["result"]["serverInfo"]["name"] == "x402-compute"
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send("this is not json")
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "quote_provision", "arguments": {"plan": PLAN, "region": REGION, "days": 1}, "_meta": {"progressToken": "q"}}})
        more, res = read_until(2)
        out += more
        assert res["result"]["structuredContent"]["quote"]["amount_atomic"] == str(DAY_ATOMIC)
        send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "browse_plans", "arguments": {"limit": "x"}}})
        more, res = read_until(3)
        out += more
        assert res["result"]["isError"] is True
    finally:
        proc.stdin.close()  # end of the session: the server exits
        proc.wait(timeout=30)
    rest, err = proc.stdout.read(), proc.stderr.read()
    out += [line for line in rest.splitlines(keepends=True) if line.strip()]
    for line in out:
        msg = json.loads(line)
        assert msg["jsonrpc"] == "2.0" and line.endswith("\n"), line
    assert "/compute/provision" in err  # --verbose HTTP log on stderr, not stdout
    assert wallet["evm_private_key"][2:] not in "".join(out) + err
    assert proc.returncode == 0, err[-2000:]


def _http_server(env: dict, *args: str):
    proc = subprocess.Popen([sys.executable, str(SERVER), "--http", "0", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while not any("http://" in x for x in lines) and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
    url = next(x for x in lines if "http://" in x).split("server: ", 1)[1].strip()
    return proc, url, "".join(lines)


def _authed_client(url: str, token: str):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    return Client(streamable_http_client(url, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})))


def test_streamable_http_on_loopback_needs_the_bearer_token(portal, sandbox, wallet, tmp_path):
    """Issue 19.4: another local user provisioned, destroyed and ran ssh_exec through the open
    endpoint. Now a request without the token (or with a wrong one) is 401 before any tool runs."""
    env = wallet_env(sandbox, wallet, tmp_path, COMPUTE_MCP_ALLOW_SPEND="1", COMPUTE_MCP_APPROVAL="unattended")
    proc, url, said = _http_server(env)
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp"), said
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        token_file = tmp_path / "state" / "mcp-http-token"
        token = token_file.read_text().strip()
        assert oct(token_file.stat().st_mode & 0o777) == "0o600" and len(token) >= 32
        assert str(token_file) in said and token not in said  # the path on stderr, never the token
        before = usdc(sandbox, wallet)
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "provision", "arguments": {"plan": PLAN, "region": REGION, "days": 1}}}
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        for auth in (None, "Bearer wrong-token-of-some-length", f"Bearer {token}x", f"Basic {token}", token):
            headers = {**accept, **({"Authorization": auth} if auth else {})}
            for body in (init, call):
                r = requests.post(url, json=body, headers=headers, timeout=5)
                assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), (auth, r.status_code, r.text)
                assert token not in r.text
        assert usdc(sandbox, wallet) == before and journal(tmp_path) == []
        # The scheme name is case-insensitive (RFC 9110 §11.1); the token is not.
        r = requests.post(url, json=init, headers={**accept, "Authorization": f"bearer {token}"}, timeout=5)
        assert r.status_code == 200, (r.status_code, r.text)
        r = requests.post(url, json=init, headers={**accept, "Authorization": f"Bearer {token.upper()}"}, timeout=5)
        assert token.upper() == token or r.status_code == 401

        async def use():
            async with _authed_client(url, token) as c:
                names = {t.name for t in (await c.list_tools()).tools}
                r = await c.call_tool("browse_plans", {"limit": 2})
                return names, r

        names, r = portal.call(use)
        assert names == MCP_TOOLS
        assert r.structured_content["ok"] is True and r.structured_content["count"] == 2
        # Bound to loopback only, and a page on another origin cannot drive it, token or not (DNS rebinding).
        import socket

        with pytest.raises(OSError):
            socket.create_connection((_non_loopback_address(), port), timeout=2).close()
        r = requests.post(url, json=init, headers={**accept, "Authorization": f"Bearer {token}", "Host": "evil.example",
                                                   "Origin": "http://evil.example"}, timeout=5)
        assert r.status_code in (403, 421), r.status_code
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    # The token survives a restart (created once); --token-file names another one.
    mine = tmp_path / "my-token"
    mine.write_text("my-own-token-0123456789\n")
    mine.chmod(0o644)
    bad = subprocess.run([sys.executable, str(SERVER), "--http", "0", "--token-file", str(mine)], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["code"] == "unsafe_token_file"
    mine.chmod(0o600)
    proc, url, said = _http_server(env, "--token-file", str(mine))
    try:
        assert str(mine) in said and "my-own-token" not in said
        assert requests.post(url, json=init, headers={**accept, "Authorization": f"Bearer {token}"}, timeout=5).status_code == 401

        async def use_own():
            async with _authed_client(url, "my-own-token-0123456789") as c:
                return (await c.call_tool("budget_status", {})).structured_content

        assert portal.call(use_own)["ok"] is True
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert token_file.read_text().strip() == token


def _non_loopback_address() -> str:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
            addr = s.getsockname()[0]
        except OSError:
            addr = ""
    if not addr or addr.startswith("127."):
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    return addr


# -- keepalive: a dry run unless pay: true, then a paying tool like the others -----------------------


def test_keepalive_is_a_dry_run_unless_pay_and_then_asks_like_any_payment(off, on, sandbox, tools, wallet):
    iid = tools.provision(sandbox, wallet, hours=24)["order"]["id"]
    before = usdc(sandbox, wallet)
    schema = next(t for t in off.portal.call(off.client.list_tools).tools if t.name == "keepalive").input_schema
    assert schema["properties"]["dry_run"]["default"] is True and not {"resume", "yes", "max_usd"} & set(schema["properties"])
    # Spending off: the dry run works and shows the schedule; paying is refused, nothing signed.
    doc = off.ok("keepalive", {"instance_id": iid, "for_": "3d", "min_hours_left": 30, "max_total_usd": "1"})
    assert doc["action"] == "would_extend" and doc["schedule"]["count"] >= 1 and doc["schedule"]["limits"]["max_total_usd"] == "1"
    off.error("keepalive", {"instance_id": iid, "for_": "3d", "min_hours_left": 30, "dry_run": False}, "spending_disabled")
    assert usdc(sandbox, wallet) == before and not [e for e in journal(off.home) if e["kind"] == "extend"]
    # Spending on: pay: true is put to the human like every payment; declined, nothing is signed.
    asked = len(on.asked)
    on.answers = ["decline"]
    on.error("keepalive", {"instance_id": iid, "for_": "3d", "min_hours_left": 30, "dry_run": False}, "declined_by_user")
    assert usdc(sandbox, wallet) == before and len(on.asked) == asked + 1
    on.answers = ["accept"]
    doc = on.ok("keepalive", {"instance_id": iid, "for_": "3d", "min_hours_left": 30, "dry_run": False, "max_total_usd": "1"})
    assert doc["action"] == "extended" and doc["payment"]["tx_hash"] and len(on.asked) == asked + 2
    assert usdc(sandbox, wallet) == before - DAY_ATOMIC and "0.2496" in on.asked[-1]


def test_destroy_by_label_over_mcp_needs_confirm_and_shows_one_summary(off, sandbox, tools, wallet):
    label = f"mcp-{uuid.uuid4().hex[:6]}"
    ids = {tools.provision(sandbox, wallet, hours=24, label=f"{label}-{i}")["order"]["id"] for i in range(2)}
    refused = off.error("destroy_instance", {"label": f"{label}-*"}, "confirmation_required")
    summary = refused["error"]["details"]
    assert {i["id"] for i in summary["instances"]} == ids and 47 < summary["prepaid_time_lost"]["hours"] <= 48
    assert all(sandbox.app.store.get_order(i)["status"] != "destroyed" for i in ids)
    doc = off.ok("destroy_instance", {"label": f"{label}-*", "confirm": True, "forget_local": True})
    assert doc["count"] == 2 and {r["id"] for r in doc["results"]} == ids
    assert all(sandbox.app.store.get_order(i)["status"] == "destroyed" for i in ids)
