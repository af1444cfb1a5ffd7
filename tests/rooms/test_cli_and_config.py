"""``tack devices add --room`` / ``tack devices room`` and the ``[rooms]`` configuration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import ConfigError, load_settings


def _room_of(db: Path, device: str) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT room_id FROM devices WHERE device_id = ?", (device,)).fetchone()
    return None if row is None else row[0]


def test_a_panel_is_given_its_room_and_moved(tmp_path: Path) -> None:
    config = tmp_path / "tack.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n', encoding="utf-8")
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "devices",
            "add",
            "panel-1",
            "--type",
            "meeting_panel",
            "--room",
            "r-1",
            "--config",
            str(config),
        ],
    )
    assert added.exit_code == 0, added.output
    assert _room_of(tmp_path / "tack.db", "panel-1") == "r-1"
    moved = runner.invoke(app, ["devices", "room", "panel-1", "r-2", "--config", str(config)])
    assert moved.exit_code == 0, moved.output
    assert _room_of(tmp_path / "tack.db", "panel-1") == "r-2"
    cleared = runner.invoke(app, ["devices", "room", "panel-1", "-", "--config", str(config)])
    assert cleared.exit_code == 0
    assert _room_of(tmp_path / "tack.db", "panel-1") is None
    missing = runner.invoke(app, ["devices", "room", "nope", "r-2", "--config", str(config)])
    assert missing.exit_code == 1
    assert "no device 'nope'" in missing.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[rooms]\nrelease_after_min = 0\n", "rooms.release_after_min"),
        ("[rooms]\nbook_now_min = [15, 900]\n", "rooms.book_now_min"),
        ('[[rooms.room]]\nid = "r 1"\n', "rooms.room.0.id"),
        ('[[rooms.room]]\nid = "r1"\n[[rooms.room]]\nid = "r1"\n', "rooms.room"),
        ('[[rooms.room]]\nid = "r1"\nrelease = 3\n', "rooms.room.0.release: not an option"),
    ],
)
def test_bad_room_config_names_the_option(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "tack.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert expected in info.value.message


def test_room_overrides_fall_back_to_the_defaults(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from gateway.rooms import RoomService

    path = tmp_path / "tack.toml"
    path.write_text(
        '[rooms]\ncheckin_open_min = 3\n[[rooms.room]]\nid = "r1"\nrelease_after_min = 20\n',
        encoding="utf-8",
    )
    rooms = load_settings(path).rooms
    service = RoomService(None, rooms, ZoneInfo("UTC"), clock=lambda: 0)  # type: ignore[arg-type]
    assert (service.rules("r1").checkin_open_min, service.rules("r1").release_after_min) == (3, 20)
    assert (service.rules("r2").checkin_open_min, service.rules("r2").release_after_min) == (3, 10)
