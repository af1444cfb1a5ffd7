"""How the CPython test suite runs firmware code on the real MicroPython Unix port."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from simulators.devices.firmware import FIRMWARE, ROOT, micropython_bin

UNIT_TESTS = FIRMWARE / "tests"

__all__ = ["FIRMWARE", "ROOT", "UNIT_TESTS", "micropython_bin", "micropython_env"]


def micropython_env(tmp: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment for a firmware process: the firmware's import path, a scratch directory."""
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join(
        [str(FIRMWARE / "lib"), str(FIRMWARE / "apps"), str(UNIT_TESTS)]
    )
    if tmp is not None:
        env["TACK_TMP"] = str(tmp)
    env.update(extra)
    return env


def unit_test_names(module: str) -> list[str]:
    """The ``test_*`` functions of one firmware test module, read from its source."""
    source = (UNIT_TESTS / f"{module}.py").read_text(encoding="utf-8")
    return re.findall(r"^def (test_\w+)\(", source, flags=re.MULTILINE)


def unit_test_modules() -> list[str]:
    return sorted(p.stem for p in UNIT_TESTS.glob("test_*.py"))


def run_unit_module(module: str, tmp: Path, heap: str | None = None) -> dict[str, str]:
    """Run one module's tests in one interpreter; returns test name -> PASS line or failure."""
    cmd = [micropython_bin()]
    if heap:
        cmd += ["-X", f"heapsize={heap}"]
    cmd += [str(UNIT_TESTS / "runner.py"), module]
    proc = subprocess.run(
        cmd, env=micropython_env(tmp), capture_output=True, text=True, timeout=300, check=False
    )
    results: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^(PASS|FAIL) (test_\w+)(.*)$", line)
        if m:
            results[m.group(2)] = line if m.group(1) == "FAIL" else "PASS"
    if proc.returncode not in (0, 1) or not results:
        results["__run__"] = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    else:
        for name, line in results.items():
            if line != "PASS":
                results[name] = f"{line}\n{proc.stderr}"
    return results
