"""The device's screens as a person sees them: every catalog string, names, PNG snapshots.

Text is drawn by the firmware's own display code in the real MicroPython interpreter with
the font the build tool makes from GNU Unifont; CPython only checks the results.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import Any

import png  # type: ignore[import-untyped]
import pytest

from devices.protocol.reasons import ReasonCode
from tests.firmware.conftest import CATALOGS, build_font
from tests.firmware.micropython import ROOT, micropython_bin, micropython_env

UNIFONT_HEX = Path("/usr/share/unifont/unifont.hex")
WIDTH, HEIGHT = 296, 128
# The panel's flash holds the font next to two firmware images; 400 KB is its share.
FONT_BUDGET_BYTES = 400_000

RENDER_CATALOG = """
import json, sys
from tack import catalog
from tack.display import Display, Font
from tack.layout import missing, wrap

def sample_args(template):
    args = []
    i = template.find("%")
    while i >= 0:
        args.append(12 if template[i + 1 : i + 2] == "d" else "10:30")
        i = template.find("%", i + 2)
    return tuple(args)

lang = sys.argv[1]
with open(sys.argv[3]) as f:
    table = json.load(f)
font = Font(sys.argv[2])
d = Display(font=font)
for key in sorted(table):
    s = catalog.text(lang, key, *sample_args(table[key]))
    d.clear()
    before = d.missing_glyphs
    lines = wrap(font, s, d.width - 4)
    for row, line in enumerate(lines[:8]):
        d.line(row, line)
    ink = sum(bin(b).count("1") for b in d.buffer)
    print(json.dumps({"key": key, "text": s, "missing": missing(font, s),
                      "boxes": d.missing_glyphs - before, "lines": len(lines), "ink": ink}))
"""

RENDER_SCREEN = """
import sys
from tack.display import Display, Font
from tack.layout import wrap

d = Display(font=Font(sys.argv[1]))
d.line(0, "会议室 A301", big=True)
d.line(2, "空闲至 10:30", align="center", invert=True)
d.line(3, "Free until 10:30", align="right")
for row, line in enumerate(wrap(d.font, sys.argv[4], 292)):
    d.line(4 + row, line)
d.fb.hline(0, 127, 296, 1)
d.save_png(sys.argv[2])
with open(sys.argv[3], "wb") as f:
    f.write(d.buffer)
print(d.missing_glyphs)
"""

# Fullwidth colon and commas, as Chinese text has them.
SCHEDULE = "下一场\uff1a欧阳娜娜 Weekly sync\uff0c14:00-15:00\uff0c请刷卡签到"

RENDER_NAMES = """
import json, sys
from tack.display import Display, Font
from tack.layout import missing

font = Font(sys.argv[1])
d = Display(font=font)
for name in json.loads(sys.argv[2]):
    d.clear()
    before = d.missing_glyphs
    end = d.text(0, 0, name)
    ink = sum(bin(b).count("1") for b in d.buffer)
    print(json.dumps({"name": name, "missing": missing(font, name),
                      "boxes": d.missing_glyphs - before, "width": end, "ink": ink}))
"""

WRITE_PNG = """
import sys
from tack import png

w, h = int(sys.argv[2]), int(sys.argv[3])
stride = (w + 7) // 8
buf = bytearray(stride * h)
for i in range(len(buf)):
    buf[i] = (i * 37 + (i >> 5)) & 0xFF
png.write(sys.argv[1], w, h, buf)
with open(sys.argv[1] + ".raw", "wb") as f:
    f.write(buf)
"""


def run_mpy(tmp: Path, script: str, *args: str) -> str:
    path = tmp / "script.py"
    path.write_text(script, encoding="utf-8")
    proc = subprocess.run(
        [micropython_bin(), "-X", "heapsize=256K", str(path), *args],
        env=micropython_env(tmp),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"MicroPython failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def read_font(path: Path) -> tuple[dict[int, bytes], int]:
    """Decode a font file (format: firmware/tools/build_font.py) with CPython."""
    data = path.read_bytes()
    magic, version, height, entry_size, count, bitmaps = struct.unpack_from("<4sBBHII", data)
    assert (magic, version, height, entry_size) == (b"TKF1", 1, 16, 6)
    assert bitmaps == 16 + 6 * count
    glyphs: dict[int, bytes] = {}
    previous = -1
    for i in range(count):
        lo, hi, width, unit = struct.unpack_from("<HBBH", data, 16 + 6 * i)
        cp = lo | hi << 16
        assert cp > previous, f"table not sorted at entry {i} (U+{cp:04X})"
        assert width in (8, 16), f"U+{cp:04X} is {width} px wide"
        previous = cp
        start = bitmaps + unit * 16
        glyphs[cp] = data[start : start + width * 2]
    return glyphs, len(data)


def unifont_bitmap(cp: int) -> bytes:
    prefix = f"{cp:04X}:"
    with UNIFONT_HEX.open(encoding="ascii") as lines:
        for line in lines:
            if line.startswith(prefix):
                return bytes.fromhex(line.strip().split(":")[1])
    raise AssertionError(f"U+{cp:04X} not in {UNIFONT_HEX}")


def catalogs() -> dict[str, dict[str, str]]:
    """Each language's texts by key, parsed here from its ``key=text`` lines."""
    tables: dict[str, dict[str, str]] = {}
    for path in CATALOGS:
        table: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#"):
                key, sep, value = line.partition("=")
                assert sep, f"{path.name}: {line!r} is not key=text"
                assert key not in table, f"{path.name}: {key!r} appears twice"
                table[key] = value
        tables[path.stem.removeprefix("lang_")] = table
    return tables


def gb2312() -> set[int]:
    found = set()
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                found.add(ord(bytes((hi, lo)).decode("gb2312")))
            except UnicodeDecodeError:
                continue
    return found


# -- the build tool ----------------------------------------------------------------------


def test_font_tool_builds_the_subset(tmp_path: Path) -> None:
    out = tmp_path / "font.bin"
    proc = build_font(out)
    assert proc.returncode == 0, proc.stderr
    glyphs, size = read_font(out)
    assert f"{len(glyphs)} glyphs" in proc.stdout, proc.stdout
    assert size < FONT_BUDGET_BYTES, f"font is {size} bytes"
    needed = set(range(0x20, 0x7F)) | gb2312()
    for table in catalogs().values():
        needed |= {ord(ch) for text in table.values() for ch in text}
    lacking = sorted(needed - set(glyphs))
    assert not lacking, "not in the font: " + " ".join(f"U+{cp:04X}" for cp in lacking[:20])
    for ch in "A张娜…✓":
        assert glyphs[ord(ch)] == unifont_bitmap(ord(ch)), f"{ch} differs from unifont.hex"
    assert len(glyphs[ord("A")]) == 16
    assert len(glyphs[ord("张")]) == 32


def test_font_tool_says_how_to_get_unifont(tmp_path: Path) -> None:
    out = tmp_path / "font.bin"
    proc = build_font(out, "--hex", str(tmp_path / "no-such.hex"))
    assert proc.returncode == 1
    assert "apt-get install unifont" in proc.stderr, proc.stderr
    assert "--hex" in proc.stderr, proc.stderr
    assert not out.exists()


def test_font_tool_refuses_a_catalog_it_cannot_draw(tmp_path: Path) -> None:
    en, zh = tmp_path / "lang_en.txt", tmp_path / "lang_zh.txt"
    en.write_text("ready=Tap card\n", encoding="utf-8")
    zh.write_text("ready=请刷卡\ue000\n", encoding="utf-8")
    out = tmp_path / "font.bin"
    proc = build_font(out, "--catalog", str(en), "--catalog", str(zh))
    assert proc.returncode == 1
    assert "U+E000" in proc.stderr, proc.stderr
    assert "'ready'" in proc.stderr, "the error does not name the catalog key"
    assert not out.exists()


# -- the catalogs, drawn -----------------------------------------------------------------


def test_catalog_has_a_text_for_every_reason_code() -> None:
    tables = catalogs()
    assert sorted(tables) == ["en", "zh"], f"language files: {sorted(tables)}"
    assert tables["en"].keys() == tables["zh"].keys(), (
        f"only EN: {sorted(tables['en'].keys() - tables['zh'].keys())}, "
        f"only ZH: {sorted(tables['zh'].keys() - tables['en'].keys())}"
    )
    lacking = [code.value for code in ReasonCode if f"reason_{code.value}" not in tables["en"]]
    assert not lacking, f"no catalog text for reason codes {lacking}"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_catalog_string_renders(lang: str, font_bin: Path, tmp_path: Path) -> None:
    # A file, not an argument: the Unix port aborts on a command line of a few KB.
    table = tmp_path / "table.json"
    table.write_text(json.dumps(catalogs()[lang]), encoding="utf-8")
    results = json_lines(run_mpy(tmp_path, RENDER_CATALOG, lang, str(font_bin), str(table)))
    assert len(results) == len(catalogs()[lang]), "not every key was drawn"
    problems = []
    for r in results:
        if r["missing"] or r["boxes"]:
            chars = " ".join(f"{chr(cp)!r} U+{cp:04X}" for cp in r["missing"])
            problems.append(f"{r['key']}: {r['text']!r} lacks {chars} ({r['boxes']} boxes)")
        if "%" in r["text"]:
            problems.append(f"{r['key']}: {r['text']!r} left a placeholder unformatted")
        if r["lines"] > 2:
            problems.append(f"{r['key']}: {r['text']!r} needs {r['lines']} rows, 2 at most")
        if r["ink"] == 0:
            problems.append(f"{r['key']}: {r['text']!r} drew nothing")
    assert not problems, f"{lang} catalog:\n" + "\n".join(problems)


# -- PNG snapshots -----------------------------------------------------------------------


def decode_png(path: Path) -> tuple[int, int, list[list[int]], dict[str, Any]]:
    width, height, rows, info = png.Reader(filename=str(path)).read()
    return width, height, [list(row) for row in rows], info


def test_screen_png_has_the_drawn_pixels(font_bin: Path, tmp_path: Path) -> None:
    shot, raw = tmp_path / "screen.png", tmp_path / "screen.raw"
    out = run_mpy(tmp_path, RENDER_SCREEN, str(font_bin), str(shot), str(raw), SCHEDULE)
    assert out.strip() == "0", f"boxes drawn for missing glyphs: {out}"
    width, height, rows, info = decode_png(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    assert info["greyscale"], info
    assert info["bitdepth"] == 1, info
    assert not info["alpha"], info
    buffer = raw.read_bytes()
    stride = (WIDTH + 7) // 8
    wrong = [
        (x, y)
        for y in range(HEIGHT)
        for x in range(WIDTH)
        if rows[y][x] != (0 if buffer[y * stride + x // 8] & (0x80 >> (x % 8)) else 1)
    ]
    assert not wrong, f"{len(wrong)} pixels differ from the framebuffer, first {wrong[:5]}"
    black = sum(row.count(0) for row in rows)
    assert 2_000 < black < WIDTH * HEIGHT // 2, f"{black} black pixels: not black text on white"
    assert rows[HEIGHT - 1].count(0) == WIDTH, "the bottom rule is missing"
    assert rows[40].count(0) > WIDTH // 2, "the inverted row is not white on black"


@pytest.mark.parametrize(("width", "height"), [(250, 122), (8, 1), (1, 300)])
def test_png_of_any_size_decodes(width: int, height: int, tmp_path: Path) -> None:
    shot = tmp_path / "odd.png"
    run_mpy(tmp_path, WRITE_PNG, str(shot), str(width), str(height))
    got_w, got_h, rows, _ = decode_png(shot)  # pypng checks the CRCs and the zlib Adler-32
    assert (got_w, got_h) == (width, height)
    buffer = (tmp_path / "odd.png.raw").read_bytes()
    stride = (width + 7) // 8
    for y, row in enumerate(rows):
        want = [0 if buffer[y * stride + x // 8] & (0x80 >> (x % 8)) else 1 for x in range(width)]
        assert row == want, f"row {y} differs"


# -- names -------------------------------------------------------------------------------


NAMES = ["张三", "欧阳娜娜", "李喆", "王堃", "司马懿", "José Müller", "Łukasz Nowak"]


def test_names_render_without_missing_glyphs(font_bin: Path, tmp_path: Path) -> None:
    results = json_lines(run_mpy(tmp_path, RENDER_NAMES, str(font_bin), json.dumps(NAMES)))
    assert [r["name"] for r in results] == NAMES
    for r in results:
        assert r["missing"] == [], f"{r['name']} lacks {r['missing']}"
        assert r["boxes"] == 0, f"{r['name']}: {r['boxes']} boxes drawn"
        assert r["ink"] > 20 * len(r["name"].replace(" ", "")), f"{r['name']} barely drawn"
    assert results[1]["width"] == 64, "欧阳娜娜 is four 16 px characters"
