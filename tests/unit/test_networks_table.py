"""The network table (x402_compute.networks.NETWORKS) is the one place for per-network facts:
config, the scheme choice, the policy's minimum and doctor derive from it, and no other module
of the library spells a list of networks (references/layout.md, "Adding a network")."""

from __future__ import annotations

import ast
import dataclasses
from decimal import Decimal

import pytest
from x402_compute import config
from x402_compute.errors import PolicyError
from x402_compute.networks import NETWORKS, X402_NETWORKS
from x402_compute.payments.model import Offer
from x402_compute.payments.policy import Limits, check_offer
from x402_compute.payments.schemes import scheme_for

from tests.helpers import SCRIPTS

LIB = SCRIPTS / "x402_compute"


def test_per_network_constants_derive_from_the_table():
    assert X402_NETWORKS == tuple(k for k, n in NETWORKS.items() if n.x402)
    assert config.PAYMENT_NETWORKS == (*NETWORKS, "stripe")
    assert config.DEFAULT_RPC_URLS == {k: n.rpc_default for k, n in NETWORKS.items()}
    assert config.RPC_ENV == {k: f"{k.upper()}_RPC_URL" for k in NETWORKS}
    assert config.EVM_AUTH_CHAINS == tuple(k for k, n in NETWORKS.items() if n.auth_chain == "base")
    for k, n in NETWORKS.items():
        assert n.key == k
        assert n.family in ("evm", "svm", "tempo")
        assert n.x402 == bool(n.schemes), f"{k}: an x402 network names its schemes, another names none"
        if n.family in ("evm", "tempo"):
            assert n.caip2 == f"eip155:{n.chain_id}"
        assert (n.eip712_name is None) == (n.transfer not in ("eip3009", "permit"))
        assert n.min_payment_atomic >= 0


def test_auth_chain_comes_from_the_table():
    for k, n in NETWORKS.items():
        env = {"COMPUTE_AUTH_CHAIN": k}
        if n.auth_chain:
            assert config.load_settings(environ=env).auth_chain == n.auth_chain
        else:
            with pytest.raises(config.ConfigError):
                config.load_settings(environ=env)


def _network_lists(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Tuples, lists and sets of string constants naming two or more table networks."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in NETWORKS]
            if len(names) >= 2:
                found.append((node.lineno, names))
    return found


def test_no_module_but_the_table_lists_networks():
    """A second list of networks is what made adding one touch six files."""
    wrong = []
    for path in sorted(LIB.rglob("*.py")):
        if path.name == "networks.py" and path.parent == LIB:
            continue
        tree = ast.parse(path.read_text())
        wrong += [f"{path.relative_to(LIB)}:{line} {names}" for line, names in _network_lists(tree)]
        # A network the code treats like any other is never named outside the table.
        wrong += [f"{path.relative_to(LIB)}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and n.value in ("robinhood", "megaeth")]
    assert not wrong, wrong


def _offer(key: str, amount: int) -> Offer:
    net = NETWORKS[key]
    return Offer(version=1, scheme="exact", network=key, key=key, amount=amount, asset=net.asset,
                 pay_to="0x209693Bc6afc0C5328bA36FaF03C514EF312287C", max_timeout_seconds=300, extra={}, raw={})


def test_a_table_minimum_is_refused_before_signing(monkeypatch):
    base = NETWORKS["base"]
    monkeypatch.setitem(NETWORKS, "base", dataclasses.replace(base, min_payment_atomic=2_000_000, min_payment_hint="use credits"))
    limits = Limits(Decimal("25"), "default", None)
    with pytest.raises(PolicyError) as e:
        check_offer(_offer("base", 1_999_999), limits)
    assert (e.value.code, e.value.exit_code, e.value.hint) == ("below_network_minimum", 3, "use credits")
    assert e.value.details["minimum_usd"] == "2" and e.value.details["amount_usd"] == "1.999999"
    check_offer(_offer("base", 2_000_000), limits)  # exactly the minimum is paid


def test_scheme_choice_reads_the_table(monkeypatch):
    assert scheme_for(_offer("base", 1)) == "evm_eip3009"
    assert scheme_for(_offer("megaeth", 1)) == "evm_permit"
    assert scheme_for(_offer("solana", 1)) == "svm_exact"
    # Tempo is in the table but is not an x402 network: no x402 scheme signs there.
    with pytest.raises(Exception) as e:
        scheme_for(_offer("tempo", 1))
    assert e.value.code == "unsupported_network"
    monkeypatch.setitem(NETWORKS, "base", dataclasses.replace(NETWORKS["base"], x402=False, schemes=()))
    with pytest.raises(Exception) as e:
        scheme_for(_offer("base", 1))
    assert e.value.code == "unsupported_network"
