"""The library's rooms and the direction of its imports (references/layout.md).

Scripts call commands; commands use the payment pipeline, wallets, the client and the leaf
helpers; nothing below the commands imports them back. Checked on the source (ast), with
imports inside functions counted as edges too, so a lazy import cannot hide a wrong direction."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import SCRIPTS

LIB = SCRIPTS / "x402_compute"


def module_name(path: Path) -> str:
    parts = path.relative_to(SCRIPTS).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def from_module(node: ast.ImportFrom, package: str) -> str:
    """The absolute module a ``from ... import`` names (relative levels resolved against ``package``)."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The x402_compute modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("x402_compute")}
        elif isinstance(node, ast.ImportFrom):
            mod = from_module(node, package)
            if not mod.startswith("x402_compute"):
                continue
            out.add(mod)
            for a in node.names:  # "from . import paid" names a module
                if (LIB.parent / (mod + "." + a.name).replace(".", "/")).with_suffix(".py").exists():
                    out.add(f"{mod}.{a.name}")
    return out


def library() -> dict[str, Path]:
    return {module_name(p): p for p in LIB.rglob("*.py")}


def test_nothing_below_the_commands_imports_them():
    mods = library()
    assert "x402_compute.commands.paid" in mods and "x402_compute.payments.reconcile" in mods
    wrong = {
        (name, dep)
        for name, path in mods.items()
        if not name.startswith(("x402_compute.commands", "x402_compute.mcp"))  # the MCP server is a front door, like the scripts
        for dep in imports(path, top_level_only=False)
        if dep.startswith("x402_compute.commands")
    }
    assert not wrong, f"modules outside commands/ import command code: {sorted(wrong)}"


def test_payments_and_wallets_do_not_reach_up_to_the_client_or_the_cli():
    up = ("x402_compute.cli", "x402_compute.api.client", "x402_compute.mcp", "x402_compute.commands")
    wrong = {
        (name, dep)
        for name, path in library().items()
        if name.startswith(("x402_compute.payments", "x402_compute.wallets"))
        for dep in imports(path, top_level_only=False)
        if dep.startswith(up)
    }
    assert not wrong, sorted(wrong)


def test_module_level_imports_have_no_cycle():
    mods = library()
    graph = {name: {d for d in imports(path, top_level_only=True) if d in mods and d != name} for name, path in mods.items()}
    # A package's __init__ is imported on the way to its modules: that edge is not a cycle.
    graph = {n: {d for d in deps if not n.startswith(d + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]) if d in stack else d)
            if d not in state:
                visit(d, stack + [d])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])


def test_every_script_is_its_parser_plus_one_call():
    # p = <commands module>.<script>_parser() and handler = <commands module>.<command>: the command
    # module owns both; nothing else but imports, the docstring and the __main__ call.
    for script in sorted(SCRIPTS.glob("*.py")):
        tree = ast.parse(script.read_text())
        rest = [
            n for n in tree.body
            if not isinstance(n, (ast.Import, ast.ImportFrom))
            and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
            and not (isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))
        ]
        if script.name == "mcp_server.py":
            assert not rest, f"{script.name}: the server is x402_compute.mcp.main"
            continue
        shapes = [(n.targets[0].id, ast.unparse(n.value)) for n in rest if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)]
        assert len(rest) == len(shapes) == 2, f"{script.name}: only p = ... and handler = ..."
        (p_name, p_src), (h_name, h_src) = shapes
        assert p_name == "p" and re.fullmatch(rf"\w+\.{script.stem}_parser\(\)", p_src), f"{script.name}: p = <commands module>.{script.stem}_parser()"
        assert h_name == "handler" and h_src.split(".")[0] == p_src.split(".")[0], f"{script.name}: the handler comes from the parser's module"


def test_nothing_imports_the_scripts():
    # The scripts are entry points only: the library (the MCP server too) takes every parser and
    # handler from commands/, never a script by file path or by name.
    stems = {p.stem for p in SCRIPTS.glob("*.py")}
    for name, path in library().items():
        src = path.read_text()
        assert "spec_from_file_location" not in src and "runpy" not in src, f"{name} loads a file as a module"
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                tops = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                tops = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not tops & stems, f"{name} imports a script: {sorted(tops & stems)}"


def test_the_root_holds_only_the_rooms_and_leaves_layout_md_lists():
    text = (SCRIPTS.parent / "references" / "layout.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `x402_compute/")]
    rooms = {re.match(r"\| `x402_compute/(\w+)/`", r).group(1) for r in rows if re.match(r"\| `x402_compute/(\w+)/`", r)}
    root = next(r for r in rows if r.startswith("| `x402_compute/` (root)"))
    leaves = set(re.findall(r"`(\w+)`", root.split("|")[2]))
    assert {p.name for p in LIB.iterdir() if (p / "__init__.py").is_file()} == rooms
    assert {p.stem for p in LIB.glob("*.py")} - {"__init__"} == leaves



def test_the_payment_flow_is_sans_io_and_the_client_drives_it():
    # The commands build the flow and ComputeClient.drive runs it: nothing in the flow or the
    # options receives the client (or a transport) or sends a request itself.
    for name in ("x402_compute.payments.flow", "x402_compute.payments.options", "x402_compute.payments.model"):
        tree = ast.parse(library()[name].read_text())
        params = {a.arg for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for a in n.args.args + n.args.kwonlyargs}
        assert not params & {"client", "transport"}, f"{name} takes {sorted(params & {'client', 'transport'})}"
        assert not imports(library()[name], top_level_only=False) & {"x402_compute.api.client", "x402_compute.api.http.Transport"}
        called = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert not called & {"send", "request", "urlopen"}, f"{name} sends: {sorted(called & {'send', 'request', 'urlopen'})}"
    flow_src = library()["x402_compute.payments.flow"].read_text()
    assert "def drive" not in flow_src
    client_tree = ast.parse(library()["x402_compute.api.client"].read_text())
    assert "drive" in {n.name for n in ast.walk(client_tree) if isinstance(n, ast.FunctionDef)}


def test_a_new_way_of_paying_touches_no_line_of_the_flow():
    # Every option is registered in options.REGISTRY; the flow names none of them (credits, the
    # one that needs no 402, aside) and branches on no method or network name.
    import sys

    sys.path.insert(0, str(SCRIPTS))
    from x402_compute.payments import options

    registered = options.REGISTRY.entries()
    assert {(n, s) for n, s, _ in registered} >= {("eip155:*", "exact"), ("solana:*", "exact"), ("tempo", "charge"), ("stripe", "charge")}
    names = {cls.__name__ for _, _, cls in registered} | {"X402Option", "MppOption", "StripeOption"}
    tree = ast.parse(library()["x402_compute.payments.flow"].read_text())
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not used & names, f"flow.py names {sorted(used & names)}"
    rails = {"x402", "mpp", "stripe", "tempo", "solana", "base", "megaeth", "robinhood"} | {n for n, _, _ in registered}
    compared = {c.value for n in ast.walk(tree) if isinstance(n, ast.Compare) for c in [n.left, *n.comparators] if isinstance(c, ast.Constant)}
    compared |= {e.value for n in ast.walk(tree) if isinstance(n, ast.Compare) for c in n.comparators if isinstance(c, (ast.Tuple, ast.List, ast.Set)) for e in c.elts if isinstance(e, ast.Constant)}
    assert not compared & rails, f"flow.py branches on {sorted(compared & rails)}"
    # Every registered option has the whole interface.
    members = [m for m in vars(options.PaymentOption) if not m.startswith("_")] + ["method", "network"]
    for _, _, cls in registered:
        assert callable(getattr(cls, "offered", None)), cls
        missing = [m for m in members if not hasattr(cls, m)]
        assert not missing, f"{cls.__name__} lacks {missing}"
    missing = [m for m in members if not hasattr(options.CreditsOption, m)]
    assert not missing, f"CreditsOption lacks {missing}"


def test_the_registry_matches_like_x402s_clients():
    import sys

    sys.path.insert(0, str(SCRIPTS))
    from x402_compute.payments.options import REGISTRY, MppOption, Registry, SvmX402Option, X402Option

    assert REGISTRY.find("eip155:8453", "exact") is X402Option
    assert REGISTRY.find("eip155:4326", "exact") is X402Option
    assert REGISTRY.find("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp", "exact") is SvmX402Option
    assert REGISTRY.find("eip155:8453", "upto") is None
    assert REGISTRY.find("tempo", "charge") is MppOption
    assert REGISTRY.find("tempo", "session") is None
    assert REGISTRY.find("cosmos:hub", "exact") is None
    r: Registry[str] = Registry()
    r.register("eip155:*", "exact", "family")
    r.register("eip155:4326", "exact", "megaeth")
    assert (r.find("eip155:4326", "exact"), r.find("eip155:1", "exact")) == ("megaeth", "family")  # the exact entry wins


# Lazy (function-level) imports keep heavy dependencies out of --help and the read-only commands,
# and are for nothing else: a third-party package on this list or a costly stdlib module, or a
# library module whose module-level imports pull one of them in. Everything else is imported at the
# top of its module, where the reader and the cycle test see it.
HEAVY = {
    "eth_account", "eth_keys", "eth_utils", "eth_hash", "coincurve", "solders", "base58", "nacl",  # signing
    "mpp", "pytempo", "attrs", "ows",  # MPP and OWS
    "http", "ssl", "requests", "urllib3", "httpx", "dotenv", "jsonschema",  # HTTP (http.client + ssl: ~25 ms), settings, schemas
    "mcp", "mcp_types", "anyio", "uvicorn", "starlette",  # the MCP server
    "asyncssh", "psycopg", "asyncio", "sqlite3",  # SSH, the ledger
}
# The lazy imports that break a module-level import cycle instead (module, what it imports).
CYCLE_BREAKERS = {
    ("x402_compute.payments.journal", "x402_compute.payments.policy"),  # the payee comparison; policy imports the journal
}


def _resolve(node: ast.AST, package: str) -> set[str]:
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    mod = from_module(node, package)
    out = set()
    for a in node.names:
        full = f"{mod}.{a.name}"
        out.add(full if (LIB.parent / full.replace(".", "/")).with_suffix(".py").exists() or (LIB.parent / full.replace(".", "/") / "__init__.py").exists() else mod)
    return out


def _package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rsplit(".", 1)[0]


def test_lazy_imports_are_only_for_heavy_dependencies():
    mods = library()
    top = {name: {t for n in ast.parse(p.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))
                  for t in _resolve(n, _package(name, p))} for name, p in mods.items()}
    heavy: dict[str, bool] = {}

    def is_heavy(target: str, seen: tuple = ()) -> bool:
        if not target.startswith("x402_compute"):
            return target.split(".")[0] in HEAVY
        if target not in mods or target in seen:
            return False
        if target not in heavy:
            heavy[target] = any(is_heavy(d, seen + (target,)) for d in top[target] if d != target)
        return heavy[target]

    counted, wrong = 0, []
    for name, path in mods.items():
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    for target in _resolve(node, _package(name, path)):
                        counted += 1
                        if not is_heavy(target) and (name, target) not in CYCLE_BREAKERS:
                            wrong.append(f"{name}:{node.lineno} imports {target} inside a function")
    assert counted > len(CYCLE_BREAKERS) and not wrong, "light imports belong at the top of the module:\n" + "\n".join(sorted(set(wrong)))
