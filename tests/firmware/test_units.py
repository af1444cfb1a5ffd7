"""Every ``firmware/tests/test_*.py`` function, run inside the real MicroPython interpreter.

One pytest case per MicroPython test function; a module runs once per session in one
interpreter, and each case reports its own line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.firmware.micropython import run_unit_module, unit_test_modules, unit_test_names

CASES = [(m, t) for m in unit_test_modules() for t in unit_test_names(m)]
_results: dict[str, dict[str, str]] = {}


@pytest.fixture(scope="session")
def unit_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mpy-units")


@pytest.mark.parametrize(("module", "test"), CASES, ids=[f"{m}::{t}" for m, t in CASES])
def test_firmware_unit(module: str, test: str, unit_tmp: Path) -> None:
    if module not in _results:
        (unit_tmp / module).mkdir(exist_ok=True)
        _results[module] = run_unit_module(module, unit_tmp / module)
    results = _results[module]
    assert "__run__" not in results, results.get("__run__")
    assert test in results, f"{test} did not run:\n{results}"
    assert results[test] == "PASS", results[test]
