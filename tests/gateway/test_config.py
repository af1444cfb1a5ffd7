"""Configuration: documented in one place, and bad values explained, not traced back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from gateway.config import ConfigError, TackSettings, load_settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def _options(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _options(ann, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_option_is_documented_with_its_environment_variable() -> None:
    doc = DOC.read_text()
    for option in _options(TackSettings):
        env = "TACK_" + option.replace(".", "__").upper()
        assert f"| `{option}` |" in doc, f"{option} missing from docs/configuration.md"
        assert f"`{env}`" in doc, f"{env} missing from docs/configuration.md"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tack.toml"
    path.write_text('site = "a"\n[mqtt]\nport = 1884\n')
    monkeypatch.setenv("TACK_MQTT__PORT", "1999")
    settings = load_settings(path)
    assert (settings.site, settings.mqtt.port) == ("a", 1999)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ("[mqtt]\nprot = 1\n", "mqtt.prot: not an option"),
        ('site = "a/b"\n', "site"),
        ("[store]\nsynchronous = 'sometimes'\n", "store.synchronous"),
        ("this is not toml", "not valid TOML"),
        ("[retention]\nrecords_days = 2\n", "retention.records_days"),
    ],
)
def test_bad_config_names_the_option(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "tack.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert expected in info.value.message


def test_cli_reports_bad_config_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "tack.toml"
    path.write_text("[mqtt]\nport = 70000\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "status", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "mqtt.port" in proc.stderr
    assert "TACK_MQTT__PORT" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_reports_a_missing_config_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "status", "--config", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
