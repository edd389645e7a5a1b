"""references/api-reference.md's "What the scripts print" against what the scripts print.

The section lists, per script, every output field as a path (`plans[].gpu_fraction`,
`instance.ssh`). Here the scripts run against the sandbox through the scenarios an agent meets
(catalog, quote, paid provision with and without a key, waiting, list, details, extend, resize
with and without --quote, destroy, credits), and their JSON is walked: every documented field
must appear in some run, and every field a run prints must be documented. A field documented as
"as in `<script>` `<path>`" is checked against that other entry (the ssh block, plan rows); one
documented as the API's answer "unchanged" is not looked into. "Every script" lists the
top-level fields all scripts print."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest

from tests.helpers import BUNDLE, clean_env, run_script

API_MD = BUNDLE / "references" / "api-reference.md"
EVERY = "*"  # fields of "### Every script": printed by each script
ALIAS_RE = re.compile(r"as in `([a-z_]+\.py)` `([^`]+)`")
ROW_RE = re.compile(r"^\| `([a-z_][a-z0-9_.\[\]]*)` \| (.*) \|$")


def documented() -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], tuple[str, str]], set[tuple[str, str]]]:
    """(fields, aliases, opaque) from api-reference.md: fields maps (script, path) to its meaning."""
    text = API_MD.read_text()
    section = text.split("\n## What the scripts print\n", 1)[1].split("\n## ", 1)[0]
    fields: dict[tuple[str, str], str] = {}
    script = None
    for line in section.splitlines():
        m = re.match(r"^### (?:`([a-z_]+\.py)`|(Every script))$", line)
        if m:
            script = m.group(1) or EVERY
            continue
        m = ROW_RE.match(line)
        if m and script:
            key = (script, m.group(1))
            assert key not in fields, f"api-reference.md documents {key} twice"
            fields[key] = m.group(2)
    aliases = {k: (m.group(1), m.group(2)) for k, v in fields.items() if (m := ALIAS_RE.search(v))}
    opaque = {k for k, v in fields.items() if "unchanged" in v}
    return fields, aliases, opaque


class Observed:
    """Every (script, path) the runs printed, aliases followed to the entry they point to."""

    def __init__(self) -> None:
        self.fields, self.aliases, self.opaque = documented()
        self.seen: dict[tuple[str, str], set[str]] = defaultdict(set)  # -> where it was seen

    def add(self, script: str, doc: dict, where: str) -> dict:
        assert doc.get("ok") is True, (script, where, doc)
        for k, v in doc.items():
            self._walk(EVERY if (EVERY, k) in self.fields else script, k, v, f"{script} {where}")
        return doc

    def _walk(self, ns: str, path: str, value, where: str) -> None:
        self.seen[(ns, path)].add(where)
        if (ns, path) in self.opaque:
            return
        if (ns, path) in self.aliases:
            ns, path = self.aliases[(ns, path)]
            if not path.endswith("[]"):  # `plans[]` names one element of `plans`: its fields are what count
                self.seen[(ns, path)].add(where)
        if isinstance(value, dict):
            for k, v in value.items():
                self._walk(ns, f"{path}.{k}", v, where)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    for k, v in item.items():
                        self._walk(ns, f"{path}[].{k}", v, where)


def test_the_section_parses_and_covers_the_fields_the_issue_names():
    fields, aliases, opaque = documented()
    names = {path.rsplit(".", 1)[-1] for _, path in fields}
    assert {"ram_mb", "hourly_usd", "state", "hours_left", "ssh", "payment", "gpu_fraction"} <= names
    assert ("list_instances.py", "instances[].ssh") in aliases  # list rows carry the ssh block
    assert all((s, p.removesuffix("[]")) in fields for s, p in aliases.values()), "an alias points to an undocumented entry"
    assert ("instance_details.py", "instance.raw") in opaque
    assert (EVERY, "ok") in fields


@pytest.fixture
def wallet(sandbox, tools):
    return tools.fresh_wallet(sandbox.facilitator, usd=50)


def test_documented_fields_are_exactly_what_the_scripts_print(sandbox, wallet, tmp_path, make_sandbox):
    env = dict(sandbox.env)
    env.update({"PRIVATE_KEY": wallet["evm_private_key"], "WALLET_ADDRESS": wallet["evm_address"]})
    env = clean_env(env, home=tmp_path)
    env.pop("SOLANA_SECRET_KEY", None), env.pop("SOLANA_WALLET_ADDRESS", None)
    obs = Observed()

    def run(script, *args, where=""):
        code, doc, err = run_script(script, *args, env=env, timeout=120)
        assert code == 0, (script, args, doc, err)
        return obs.add(script, doc, where or " ".join(args))

    run("browse_plans.py")
    run("browse_plans.py", "--continent", "europe", "--gpu")
    run("browse_regions.py")
    run("browse_os.py")
    run("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--quote")
    gpu = run("provision.py", "vcg-a100-1c-2g-6gb", "ewr", "--days", "1", "--quote")["quote"]  # the sandbox's 2 GB A100 slice
    assert gpu["gpu_fraction"] == 0.025 and "1/40 of an A100 (2 GB VRAM)" in gpu["summary"]
    wait = ("--wait-timeout", "60", "--poll-interval", "0.3")
    keyed = run("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--ssh-key", "auto", "--yes", "--wait-ssh", *wait)
    pw = run("provision.py", "vc2-1c-2gb", "ewr", "--days", "1", "--yes", "--wait", *wait)
    a, b = keyed["order"]["id"], pw["order"]["id"]
    assert keyed["ssh"]["identity_file"] and pw["ssh"]["auth"] == "password"
    ai_machine = ("vcg-a100-1c-2g-6gb", "ewr", "--days", "1", "--model-id", "llama-3.2-3b", "--mode", "private")
    run("provision.py", *ai_machine, "--quote")
    llm = run("provision.py", *ai_machine, "--yes", "--wait", *wait)
    assert llm["ai"]["models"] == ["llama-3.2-3b"]
    run("ai_chat.py", llm["order"]["id"], "hello")
    run("list_instances.py")
    run("instance_details.py", b)
    run("extend_instance.py", a, "--days", "1", "--quote")
    run("extend_instance.py", a, "--days", "1", "--yes")
    run("resize_instance.py", b, "vc2-2c-4gb", "--quote")
    run("resize_instance.py", b, "vc2-2c-4gb")
    run("destroy_instance.py", a, "--yes")
    run("credits_balance.py")
    run("credits_topup.py", "--amount", "1", "--quote")
    run("credits_topup.py", "--amount", "1", "--yes")
    run("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--use-credits", "--yes")  # paid from those credits
    run("budget.py")
    run("budget.py", "--by", "instance", "--csv")
    # Cleanup: a pattern that matches nothing, then every live machine of this wallet, then the leftovers.
    run("destroy_instance.py", "--label", "no-such-*", "--yes")
    run("destroy_instance.py", "--all", "--yes", "--forget-local")
    run("destroy_instance.py", "--forget-destroyed")
    # by card, against a sandbox that offers card charges (--stripe), with only its STRIPE_* test values
    card = make_sandbox(stripe=True)
    card_env = clean_env({k: card.env[k] for k in ("COMPUTE_BASE_URL", "STRIPE_SECRET_KEY", "STRIPE_PAYMENT_METHOD", "STRIPE_API_BASE")},
                         home=tmp_path / "card")
    code, doc, err = run_script("provision.py", "vc2-1c-1gb", "lax", "--days", "1", "--pay", "stripe", "--yes", env=card_env, timeout=120)
    assert code == 0, (doc, err)
    obs.add("provision.py", doc, "--pay stripe --yes")

    undocumented = sorted(f"{s}: {p} (printed by {', '.join(sorted(obs.seen[(s, p)]))})" for s, p in obs.seen if (s, p) not in obs.fields)
    assert not undocumented, "printed but not documented in api-reference.md 'What the scripts print': " + "; ".join(undocumented)
    never = sorted(f"{s}: {p}" for s, p in obs.fields if (s, p) not in obs.seen)
    assert not never, "documented in api-reference.md but never printed: " + "; ".join(never)
