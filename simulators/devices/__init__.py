"""Simulated devices: clock-in terminals that speak protocol v1 over a real MQTT broker.

They stand in for the MicroPython firmware when CI or a demo needs many devices: same topics,
same envelope, same outbox rules (a message leaves the device only on the gateway's ack).
"""

from simulators.devices.fleet import (
    FleetConfig,
    FleetError,
    FleetReport,
    FleetSnapshot,
    fleet_device_ids,
    planned_punches,
    run_fleet,
)
from simulators.devices.outbox import Outbox, OutboxEntry, OutboxError, new_msg_id
from simulators.devices.terminal import (
    PunchHandle,
    Terminal,
    TerminalClosedError,
    TerminalConfig,
    TerminalStats,
)

__all__ = [
    "FleetConfig",
    "FleetError",
    "FleetReport",
    "FleetSnapshot",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "PunchHandle",
    "Terminal",
    "TerminalClosedError",
    "TerminalConfig",
    "TerminalStats",
    "fleet_device_ids",
    "new_msg_id",
    "planned_punches",
    "run_fleet",
]
