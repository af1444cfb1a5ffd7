"""``tack sim fleet --firmware N``: real MicroPython terminals against the gateway."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from simulators.mosquitto import Mosquitto

pytestmark = pytest.mark.slow


async def _tack(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_fleet_of_firmware_terminals_delivers_every_punch(
    gateway_factory: Callable[..., Any],
    mosquitto: Mosquitto,
    site: str,
    tmp_path: Path,
    font_bin: Path,
) -> None:
    devices = ["fw-001", "fw-002", "fw-003"]
    gw = await gateway_factory(devices=devices)
    report = tmp_path / "report.json"
    code, out, err = await _tack(
        "sim", "fleet", "--firmware", "3", "--prefix", "fw-", "--site", site,
        "--port", str(mosquitto.port), "--rate", "10", "--duration", "2",
        "--cards", "C0001,C0002", "--state-dir", str(tmp_path / "fleet"),
        "--report", str(report),
    )  # fmt: skip
    assert code == 0, out + err
    assert "MicroPython terminals" in err
    data = json.loads(report.read_text())
    assert data["undelivered"] == 0
    assert data["accepted"] == data["sent"] == 20
    with sqlite3.connect(gw.settings.db_path) as db:
        per_device = dict(db.execute("SELECT device_id, count(*) FROM records GROUP BY 1"))
    assert per_device == {"fw-001": 7, "fw-002": 7, "fw-003": 6}


async def test_fleet_refuses_a_bad_heap_size() -> None:
    code, _out, err = await _tack("sim", "fleet", "--firmware", "1", "--heap", "lots")
    assert code == 2
    assert "--heap must be a size like 64K" in err
