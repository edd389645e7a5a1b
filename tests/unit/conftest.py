"""Fixtures for the unit tests that talk HTTP: a real loopback server (tests/hostile/stub.py), one
per test module, reset around each test."""

from __future__ import annotations

import pytest

from tests.hostile.stub import HostileAPI


@pytest.fixture(scope="module")
def server():
    with HostileAPI() as api:
        yield api


@pytest.fixture
def api(server):
    """The module's server, with no overrides and nothing recorded yet."""
    server.reset()
    yield server
    server.reset()
