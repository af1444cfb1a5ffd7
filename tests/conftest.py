"""Shared fixtures; each fixture module is owned by the part it serves."""

from __future__ import annotations

import itertools
import os

import pytest

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.gateway",
    "tests.fixtures.backend",
    "tests.fixtures.ack_responder",
]

_sites = itertools.count(1)


@pytest.fixture
def site() -> str:
    """A site name unique to this test, so tests sharing a broker never see each other."""
    return f"t{os.getpid()}x{next(_sites)}"
