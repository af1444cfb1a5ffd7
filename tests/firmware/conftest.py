"""Fixtures for the firmware tests: the device font, built from GNU Unifont when needed.

``font_bin`` is the path of a built ``firmware/build/font.bin``. A fresh clone has no
``build/`` directory, so the font is (re)built once per session when it is missing or older
than its tool or a language file. Firmware unit modules (``firmware/tests/test_*.py``) that
mention ``TACK_FONT`` get the font built and ``TACK_FONT`` pointing at it before
MicroPython runs them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.micropython import FIRMWARE, UNIT_TESTS

FONT_TOOL = FIRMWARE / "tools" / "build_font.py"
# The language files the font must cover (tack/lang_*.txt, read by the font tool).
CATALOGS = tuple(sorted((FIRMWARE / "lib" / "tack").glob("lang_*.txt")))
FONT_BIN = FIRMWARE / "build" / "font.bin"


def build_font(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the font tool (as a person would) writing to `out`; extra CLI arguments after."""
    return subprocess.run(
        [sys.executable, str(FONT_TOOL), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _stale(font: Path) -> bool:
    if not font.exists():
        return True
    built = font.stat().st_mtime
    return any(src.stat().st_mtime > built for src in (FONT_TOOL, *CATALOGS))


@pytest.fixture(scope="session")
def font_bin() -> Path:
    if _stale(FONT_BIN):
        proc = build_font(FONT_BIN)
        if proc.returncode != 0:
            pytest.fail(f"cannot build the device font:\n{proc.stderr}", pytrace=False)
    return FONT_BIN


def _uses_font(module: str) -> bool:
    path = UNIT_TESTS / f"{module}.py"
    return path.exists() and "TACK_FONT" in path.read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _font_for_firmware_units(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Build the font before tests/firmware/test_units.py runs a module that reads it."""
    callspec = getattr(request.node, "callspec", None)
    module = callspec.params.get("module") if callspec is not None else None
    if isinstance(module, str) and _uses_font(module):
        font: Path = request.getfixturevalue("font_bin")
        monkeypatch.setenv("TACK_FONT", str(font))
