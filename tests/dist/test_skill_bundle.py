"""The bundle as a skill host sees it: valid under the Agent Skills reference validator,
OpenClaw metadata readable as one-line JSON, and every script, flag, environment
variable, exit code and dev.sh command that SKILL.md, references/ and the README mention
actually exists (flags are looked up in the real --help of the scripts, of every ows_cli.py
subcommand, of install.sh, tools/build_release.py and the sandbox)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

from tests.helpers import BUNDLE, ROOT, SCRIPTS

DOCS = [BUNDLE / "SKILL.md", *sorted((BUNDLE / "references").glob("*.md"))]
README = ROOT / "README.md"
ALL_DOCS = [*DOCS, README]
# Landing in parallel work; while missing they are skipped, not failed.
PLANNED_SCRIPTS: set[str] = set()
PLANNED_ENV: set[str] = set()
ENV_NOT_OURS = {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE",
                "SSL_CERT_DIR", "PIP_INDEX_URL"}
SCRIPT_RE = re.compile(r"\b([a-z_0-9]+\.py)\b")
FLAG_RE = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
ENV_RE = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b")


def frontmatter() -> tuple[dict[str, str], str]:
    text = (BUNDLE / "SKILL.md").read_text()
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    fields = {}
    for line in head.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields, body


def openclaw_metadata() -> dict:
    raw = frontmatter()[0]["metadata"]
    # One line; a single-quoted YAML scalar so that strict YAML parsers (skills-ref) accept it.
    assert raw.startswith("'") and raw.endswith("'"), raw[:40]
    return json.loads(raw[1:-1].replace("''", "'"))


def test_reference_validator_accepts_the_bundle():
    exe = Path(sys.executable).with_name("agentskills")
    if exe.exists():
        proc = subprocess.run([str(exe), "validate", str(BUNDLE)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    else:  # the same check through the library
        from skills_ref.validator import validate

        assert validate(BUNDLE) == []


def test_frontmatter_rules():
    fields, body = frontmatter()
    assert fields["name"] == "x402-compute" == BUNDLE.name
    desc = fields["description"]
    assert len(desc) <= 1024
    for phrase in ("provision GPU instance", "spin up a cloud server", "rent a VPS", "pay with USDC"):
        assert phrase in desc
    assert len((BUNDLE / "SKILL.md").read_text().splitlines()) < 500
    assert "{baseDir}/scripts/provision.py" in body and "pip install -r {baseDir}/requirements.txt" in body


def test_openclaw_metadata_is_one_line_json():
    meta = openclaw_metadata()["openclaw"]
    req = meta["requires"]
    assert req["bins"] == ["python3"]
    assert not req.get("env"), "no variable is required on its own: an API key OR a wallet works"
    declared = {v["name"] for v in meta["envVars"]}
    missing = env_read_by_code() - declared
    assert not missing, f"read by the code but not declared in SKILL.md metadata: {sorted(missing)}"


# -- what the code really has ---------------------------------------------------------------

@lru_cache(maxsize=None)
def env_read_by_code() -> frozenset[str]:
    """Environment variables the bundle reads: literal names, the RPC table, and the *_FILE forms."""
    names: set[str] = set()
    for path in SCRIPTS.rglob("*.py"):
        src = path.read_text()
        names |= set(re.findall(r"""(?:env|environ)(?:\.get)?\s*[\(\[]\s*["']([A-Z][A-Z0-9_]+)["']""", src))
        names |= set(re.findall(r"""["']([A-Z][A-Z0-9_]+)["']\s+in\s+env""", src))
        for base in re.findall(r"""_secret\(\s*env\s*,\s*["']([A-Z][A-Z0-9_]+)["']""", src):
            names |= {base, f"{base}_FILE"}
    from x402_compute import config

    names |= set(config.RPC_ENV.values())
    return frozenset(names)


def mentioned_anywhere_in_code(name: str) -> bool:
    return any(name in p.read_text() for p in SCRIPTS.rglob("*.py"))


@lru_cache(maxsize=None)
def help_text(script: str, sub: str | None = None) -> str:
    args = [sys.executable, str(SCRIPTS / script), *([sub] if sub else []), "--help"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{script} {sub or ''} --help failed: {proc.stderr}"
    return proc.stdout


def install_help() -> str:
    return subprocess.run(["bash", str(ROOT / "install.sh"), "--help"], capture_output=True, text=True, timeout=30).stdout


@lru_cache(maxsize=None)
def tool_help(*args: str) -> str:
    """--help of the repository's other entry points (the sandbox, tools/build_release.py)."""
    proc = subprocess.run([sys.executable, *args, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, f"{' '.join(args)} --help failed: {proc.stderr}"
    return proc.stdout


def ows_subcommands() -> list[str]:
    return re.findall(r"^    ([a-z][a-z-]+)\s{2,}", help_text("ows_cli.py"), re.M)


def known_flags_text() -> str:
    parts = [install_help(), tool_help("-m", "x402_compute_sandbox"), tool_help(str(ROOT / "tools" / "build_release.py"))]
    parts += [help_text(p.name) for p in sorted(SCRIPTS.glob("*.py"))]
    parts += [help_text("ows_cli.py", sub) for sub in ows_subcommands()]
    return "".join(parts)


def doc_commands() -> list[tuple[str, str, list[str], str | None]]:
    """(doc, script, flags, subcommand) for every line that runs a bundle script."""
    out = []
    for doc in ALL_DOCS:
        for line in doc.read_text().splitlines():
            for m in SCRIPT_RE.finditer(line):
                script = m.group(1)
                if script in ("build_release.py", "demo.py", "conftest.py", "helpers.py", "pg.py") or script.startswith(("bench_", "test_")):
                    continue
                rest = line[m.end():]
                rest = re.split(r"`|\||,\s|(?<=\s)or\s|\bthen\b", rest)[0]  # the command ends at the code span / cell / prose
                words = rest.split()
                sub = words[0] if words and re.fullmatch(r"[a-z][a-z-]+", words[0]) and script == "ows_cli.py" else None
                out.append((doc.name, script, FLAG_RE.findall(rest), sub))
    return out


def test_docs_mention_scripts():
    assert {c[1] for c in doc_commands()} >= {"provision.py", "doctor.py", "reconcile.py", "destroy_instance.py"}


@pytest.mark.parametrize("script", sorted({c[1] for c in doc_commands()}))
def test_every_mentioned_script_exists_and_has_its_flags(script):
    if not (SCRIPTS / script).is_file():
        if script in PLANNED_SCRIPTS:
            pytest.skip(f"{script} has not landed yet")
        pytest.fail(f"the docs mention scripts/{script}, which does not exist")
    problems = []
    for doc, s, flags, sub in doc_commands():
        if s != script:
            continue
        text = help_text(script) + (help_text(script, sub) if sub else "")
        problems += [f"{doc}: {script} {sub or ''} {f}" for f in flags if f not in text]
    assert not problems, "flags the docs use but --help does not list: " + "; ".join(problems)


def test_every_flag_in_prose_exists_somewhere():
    """Flags named outside a command line (e.g. `--max-usd` in a sentence) exist in some real --help."""
    known = known_flags_text()
    unknown = set()
    for doc in ALL_DOCS:
        for flag in FLAG_RE.findall(doc.read_text()):
            if flag not in known:
                unknown.add(f"{doc.name}: {flag}")
    assert not unknown, sorted(unknown)


def test_sandbox_flags_are_all_documented():
    """The other direction, for the sandbox: every option it has is in sandbox.md."""
    text = (BUNDLE / "references" / "sandbox.md").read_text()
    flags = set(FLAG_RE.findall(tool_help("-m", "x402_compute_sandbox"))) - {"--help"}
    missing = sorted(f for f in flags if f not in text)
    assert not missing, f"sandbox options missing from sandbox.md: {missing}"


def test_exit_codes_match_the_code():
    from x402_compute import errors

    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    for doc in (BUNDLE / "SKILL.md", README):
        rows = {int(n) for n in re.findall(r"^\| (\d+) \|", doc.read_text(), re.M)}
        assert rows == codes, f"{doc.name}: exit code table {sorted(rows)} != errors.py {sorted(codes)}"


def test_dev_sh_commands_exist():
    commands = set(re.findall(r"^  ([a-z]+)\) ", (ROOT / "dev.sh").read_text(), re.M))
    for doc in ALL_DOCS:
        for cmd in re.findall(r"\bbash dev\.sh ([a-z]+)", doc.read_text()):
            assert cmd in commands, f"{doc.name}: bash dev.sh {cmd} is not a dev.sh command ({sorted(commands)})"


def mentioned_in_repo_tooling(name: str) -> bool:
    """install.sh, tools/, the sandbox: what the README (not the skill) may also describe."""
    files = [ROOT / "install.sh", *(ROOT / "tools").glob("*.py"), *(ROOT / "x402_compute_sandbox").rglob("*.py")]
    return any(name in p.read_text() for p in files)


def test_every_mentioned_env_var_is_read_by_the_code():
    read = env_read_by_code()
    problems = []
    for doc in ALL_DOCS:
        for name in set(ENV_RE.findall(doc.read_text())):
            if name in read or name in ENV_NOT_OURS or not name.isupper():
                continue
            if not re.search(r"(URL|KEY|FILE|ADDRESS|MODE|CHAIN|USD|DIR|HOME|TIMEOUT|DEBUG|WALLET|PATH|PASSPHRASE)$", name):
                continue  # error codes, headers and constants written in capitals
            if mentioned_anywhere_in_code(name):
                continue
            if doc == README and mentioned_in_repo_tooling(name):
                continue
            if name in PLANNED_ENV:
                continue
            problems.append(f"{doc.name}: {name}")
    assert not problems, f"environment variables the docs mention but no code reads: {sorted(problems)}"


def test_references_are_linked_from_skill_md():
    body = frontmatter()[1]
    for ref in sorted((BUNDLE / "references").glob("*.md")):
        assert f"references/{ref.name}" in body, f"{ref.name} is not linked from SKILL.md"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (but - and _), spaces to -."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_links_between_the_docs_resolve():
    """SKILL.md sends the agent into references/ for everything it left out: each relative link
    (and its #anchor) must land on a file of the bundle and a heading in it."""
    docs = [*DOCS, README]
    problems = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists():
                problems.append(f"{doc.name}: {target} (no such file)")
                continue
            if anchor and dest.suffix == ".md":
                anchors = {_anchor(h) for h in re.findall(r"^#+\s+(.+)$", dest.read_text(), re.M)}
                if anchor not in anchors:
                    problems.append(f"{doc.name}: {target} (no such heading)")
    assert not problems, problems
