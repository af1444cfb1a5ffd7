"""``tack bridge run`` as a command: configuration errors read as messages, not tracebacks."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cloud_bridge.cli import EXIT_CONFIG, app


def test_bad_config_prints_the_config_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[bridge]\nbatch_size = 0\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == EXIT_CONFIG
    assert "bridge.batch_size" in result.output
    assert "Traceback" not in result.output


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "absent.toml")])
    assert result.exit_code == EXIT_CONFIG
    assert "does not exist" in result.output


def test_disabled_bridge_exits_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "off.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[bridge]\nenabled = false\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["run", "--config", str(config)])
    assert result.exit_code == 0
    assert "enabled is false" in result.output
