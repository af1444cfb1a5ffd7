"""A DingTalk-style backend simulator served over real HTTP, for tests, the demo and CI."""

from simulators.backend.app import create_app
from simulators.backend.server import BackendServer, serve_forever
from simulators.backend.state import BackendState, Errcode, Faults, Leave, demo_roster

__all__ = [
    "BackendServer",
    "BackendState",
    "Errcode",
    "Faults",
    "Leave",
    "create_app",
    "demo_roster",
    "serve_forever",
]
