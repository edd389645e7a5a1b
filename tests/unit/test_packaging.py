"""pyproject.toml must ship every package of the library and the sandbox:
a subpackage added without a line there installs fine from a checkout and
breaks only for pip users."""

from pathlib import Path

import tomllib

from tests.helpers import ROOT, SCRIPTS


def _packages(base: Path, prefix: str) -> set[str]:
    return {
        ".".join([prefix, *p.parent.relative_to(base).parts]) if p.parent != base else prefix
        for p in base.rglob("__init__.py")
        if "node_modules" not in p.parts and "__pycache__" not in p.parts
    }


def test_pyproject_lists_every_package():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    expected = _packages(SCRIPTS / "x402_compute", "x402_compute") | _packages(ROOT / "x402_compute_sandbox", "x402_compute_sandbox")
    assert expected <= listed, f"missing from pyproject.toml: {sorted(expected - listed)}"
    for pkg in listed:
        if pkg.startswith("x402_compute.") or pkg == "x402_compute":
            assert (ROOT / cfg["package-dir"][pkg]).is_dir(), pkg


def test_bundle_requirements_match_pyproject_runtime_deps():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bundle = [
        line.strip()
        for line in (SCRIPTS.parent / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    # The bundle also installs the optional features; pyproject offers them as extras.
    extras = {d for group in project["optional-dependencies"].values() for d in group}
    normalise = lambda d: d.replace(" ", "").replace("'", '"')
    assert {normalise(d) for d in bundle} == {normalise(d) for d in project["dependencies"]} | {
        normalise(d) for d in extras if d.startswith(("pympp", "open-wallet-standard", "mcp"))
    }
