"""``tack notices`` through Typer's CliRunner, on a store file and no running gateway: what an
admin types, what it prints, and the errors for what cannot be sent."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import load_settings
from gateway.notices import store
from gateway.store import open_database
from gateway.store.devices import Device, DeviceType, add_device, revoke_device


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tack.toml"
    path.write_text(f'site = "hq"\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")

    async def seed() -> None:
        settings = load_settings(path)
        db = await open_database(settings.db_path)
        try:
            for dev, kind in (
                ("term-1", DeviceType.CLOCK_TERMINAL),
                ("term-2", DeviceType.CLOCK_TERMINAL),
                ("term-old", DeviceType.CLOCK_TERMINAL),
                ("room-101", DeviceType.MEETING_PANEL),
            ):
                await add_device(db, Device(dev, "hq", kind))
            await revoke_device(db, "term-old")
        finally:
            await db.close()

    asyncio.run(seed())
    return path


def tack(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["notices", *args, "--config", str(config)])
    return result.exit_code, result.output


def _sent_id(out: str) -> str:
    match = re.search(r"notice (n-[0-9a-f]{8}) sent to", out)
    assert match, out
    return match.group(1)


def _receipt(config: Path, notice_id: str, device_id: str, by: str | None) -> None:
    async def main() -> None:
        db = await open_database(load_settings(config).db_path)
        try:
            await store.record_receipt(
                db, notice_id=notice_id, device_id=device_id, device_ts_ms=1, by=by, msg_id="m1"
            )
        finally:
            await db.close()

    asyncio.run(main())


def test_send_list_and_show(config: Path) -> None:
    code, out = tack(
        config,
        "send",
        "--to",
        "term-1,room-101",
        "--title",
        "Drill",
        "--text",
        "Fire drill at 3",
        "--from",
        "Facilities",
    )
    assert code == 0, out
    nid = _sent_id(out)
    assert "2 device(s): term-1, room-101" in out

    code, out = tack(config)
    assert code == 0, out
    assert out.count(nid) == 2
    assert "2 unread" in out
    assert "not yet" in out  # no gateway has published it yet

    _receipt(config, nid, "term-1", "C0001")
    code, out = tack(config)
    assert "1 unread" in out
    assert "room-101" in out
    assert "term-1" not in out

    code, out = tack(config, "show", nid)
    assert code == 0, out
    assert "Fire drill at 3" in out
    assert "Facilities" in out
    assert "read on 1 of 2 device(s)" in out
    row = next(line for line in out.splitlines() if "term-1" in line)
    assert "C0001" in row
    assert "pending" in row
    row = next(line for line in out.splitlines() if "room-101" in line)
    assert "not yet" in row


def test_send_to_all_terminals_skips_revoked_and_panels(config: Path) -> None:
    code, out = tack(config, "send", "--all-terminals", "--text", "Badge renewal this week")
    assert code == 0, out
    assert "2 device(s): term-1, term-2" in out
    code, out = tack(config, "send", "--all-panels", "--text", "Rooms close at 20:00")
    assert code == 0, out
    assert "1 device(s): room-101" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "term-9", "--text", "x"], "unknown device(s) 'term-9'"),
        (["--to", "term-old", "--text", "x"], "'term-old' are revoked"),
        (["--to", "term-1", "--text", "   "], "text is empty"),
        (["--to", "term-1", "--text", "x" * 281], "281 characters; a device shows at most 280"),
        (["--to", "term-1", "--text", "x", "--title", "t" * 65], "title is 65 characters"),
        (["--to", "term-1", "--text", "x", "--from", "f" * 65], "at most 64"),
        (["--text", "x"], "say where it goes"),
        (["--to", ",", "--text", "x"], "name at least one device"),
    ],
    ids=[
        "unknown",
        "revoked",
        "empty",
        "too_long",
        "long_title",
        "long_sender",
        "nowhere",
        "empty_to",
    ],
)
def test_send_refuses_with_a_clear_error(config: Path, args: list[str], message: str) -> None:
    code, out = tack(config, "send", *args)
    assert code != 0
    assert message in " ".join(out.split()), out
    code, out = tack(config)
    assert "0 unread" in out  # nothing half-sent


def test_show_unknown_notice(config: Path) -> None:
    code, out = tack(config, "show", "n-00000000")
    assert code == 1
    assert "no notice 'n-00000000'" in out


def test_status_counts_unread_notices_and_the_write_backs_waiting(config: Path) -> None:
    """``tack status`` says what waits for the backend besides records: receipts, room changes."""
    from gateway.rooms import store as room_store

    code, out = tack(config, "send", "--to", "term-1,term-2", "--text", "Fire drill at 3")
    assert code == 0, out
    _receipt(config, _sent_id(out), "term-1", None)

    async def queue_room_change() -> None:
        db = await open_database(load_settings(config).db_path)
        try:
            change = room_store.Change("k-1", "checkin", "bk-1", "r-1", {"at": 1})
            await room_store.queue_once(db, [change])
        finally:
            await db.close()

    asyncio.run(queue_room_change())
    result = CliRunner().invoke(app, ["status", "--config", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in result.output.splitlines()
        if line.count("│") >= 3
    }
    assert rows["notices unread (see tack notices)"] == "1"
    assert rows["notice receipts to the backend"] == "1 pending, 0 sent, 0 refused"
    assert rows["room changes to the backend"] == "1 pending, 0 sent, 0 refused"
