"""The firmware's messages file against the code that uses it (``tack.why(key, *args)``).

A message the code asks for and the file lacks would reach a person as a bare key; one with
fewer placeholders than arguments would fall back the same way. Both are caught here, from
the sources, without running the firmware.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.firmware.micropython import FIRMWARE

MESSAGES = FIRMWARE / "lib" / "tack" / "messages.txt"
# A %-directive, as MicroPython's % operator reads it ("%%" is a literal percent sign).
_DIRECTIVE = re.compile(r"%(?:%|[-+ #0]*\d*(?:\.\d+)?[sdrxXcoiuf])")


def messages() -> dict[str, str]:
    found: dict[str, str] = {}
    for number, line in enumerate(MESSAGES.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        key, _, text = line.partition(" ")
        assert text, f"messages.txt:{number}: {line!r} is not 'key text'"
        assert key not in found, f"messages.txt:{number}: {key} appears twice"
        assert len(key) <= 10, f"messages.txt:{number}: key {key} is over 10 characters"
        found[key] = text
    return found


def placeholders(text: str) -> int:
    return sum(1 for d in _DIRECTIVE.findall(text) if d != "%%")


def uses() -> list[tuple[str, str, int]]:
    """(where, key pattern, argument count) of every why() call in the firmware."""
    found = []
    for path in sorted((FIRMWARE / "lib").rglob("*.py")) + sorted(
        (FIRMWARE / "apps").rglob("*.py")
    ):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id != "why" or not node.args:
                continue
            first = node.args[0]
            where = f"{path.relative_to(FIRMWARE)}:{node.lineno}"
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((where, first.value, len(node.args) - 1))
            else:  # a key made at run time, such as "mq_rc%d" % rc: every literal it can be
                consts = [n.value for n in ast.walk(first) if isinstance(n, ast.Constant)]
                for value in consts:
                    if isinstance(value, str):
                        found.append((where, value.replace("%d", r"\d*") + "$", len(node.args) - 1))
    return found


def test_every_message_the_code_asks_for_is_there_with_its_placeholders() -> None:
    table = messages()
    problems = []
    for where, key, nargs in uses():
        keys = [k for k in table if re.fullmatch(key, k)] if key.endswith("$") else [key]
        if not keys or any(k not in table for k in keys):
            problems.append(f"{where}: no message {key!r} in messages.txt")
            continue
        for k in keys:
            wants = placeholders(table[k])
            if wants != nargs:
                problems.append(f"{where}: {k} has {wants} placeholders, the code passes {nargs}")
    assert not problems, "\n".join(problems)


def test_no_message_is_left_unused() -> None:
    patterns = [key if key.endswith("$") else re.escape(key) + "$" for _, key, _ in uses()]
    unused = [k for k in messages() if not any(re.match(p, k) for p in patterns)]
    assert not unused, f"messages nothing asks for: {unused}"


def test_the_build_ships_the_messages(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(FIRMWARE / "tools" / "compile.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    shipped = tmp_path / "tack" / "messages.txt"
    assert shipped.read_bytes() == MESSAGES.read_bytes(), "messages.txt is not beside tack/*.mpy"
