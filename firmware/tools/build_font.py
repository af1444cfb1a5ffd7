"""Build the device font, firmware/build/font.bin, from GNU Unifont.

    python firmware/tools/build_font.py [--hex PATH] [--out PATH]

The terminal and the panel show English and Chinese: the catalogs' strings and the names
the gateway sends (张三, 欧阳娜娜). A whole Unifont is 57,000 glyphs; the device needs the
characters below, read one glyph at a time from flash, so it never holds more than a few
glyphs in RAM:

- printable ASCII, Latin-1 and Latin Extended-A (names such as José, Müller, Łukasz);
- every character of the language files firmware/lib/tack/lang_*.txt (a catalog character
  Unifont lacks is an error, because a screen would show a box);
- all of GB2312 (enumerated through CPython's ``gb2312`` codec): the 6,763 hanzi that cover
  typical Chinese names, plus its punctuation, kana, Greek, Cyrillic and pinyin;
- a few given-name hanzi outside GB2312 (NAME_EXTRAS) and symbols (… — · ✓ ✗ arrows).

Input: ``unifont.hex`` (Debian/Ubuntu package ``unifont``: /usr/share/unifont/unifont.hex).
Each line is ``XXXX:<hex>``: 32 hex digits for an 8x16 glyph, 64 for a 16x16 one.

File format (little-endian; tack/display.py reads it):

    header, 16 bytes
       0  4  magic b"TKF1"
       4  1  format version, 1
       5  1  glyph height in pixels, 16
       6  2  table entry size in bytes, 6
       8  4  glyph count N
      12  4  file offset of the bitmap area (16 + 6 * N)
    table, N entries of 6 bytes, sorted by codepoint (the device binary-searches it)
       0  2  codepoint, low 16 bits
       2  1  codepoint, high 8 bits
       3  1  glyph width in pixels: 8 or 16
       4  2  bitmap offset from the start of the bitmap area, in 16-byte units
    bitmaps, 16 bytes for a width of 8, 32 bytes for 16: rows top to bottom, (width / 8)
       bytes a row, most significant bit leftmost, 1 = ink; this is framebuf.MONO_HLSB,
       so the device blits a glyph as it is read.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1]
# One per language the device speaks: ``key=text`` lines (see tack/catalog.py).
CATALOGS = tuple(sorted((FIRMWARE / "lib" / "tack").glob("lang_*.txt")))
DEFAULT_HEX = Path("/usr/share/unifont/unifont.hex")
DEFAULT_OUT = FIRMWARE / "build" / "font.bin"

MAGIC = b"TKF1"
VERSION = 1
GLYPH_HEIGHT_PX = 16
HEADER = struct.Struct("<4sBBHII")
ENTRY = struct.Struct("<HBBH")
UNIT_BYTES = 16
# The entry's bitmap offset is a u16 count of 16-byte units: 1 MiB of bitmaps at most.
MAX_BITMAP_BYTES = 0xFFFF * UNIT_BYTES

# Hanzi common in given names (and listed in the 2013 general standard character table)
# that GB2312 predates; without them some employees' names would show boxes.
NAME_EXTRAS = "喆堃赟玥珺昇犇垚瑄璟祎彧翀弢旻暐珅瑢璘芃烜燊镕炘琇玙珣璠婳"
# En dash and curly quotes as escapes: they look like ASCII in an editor.
SYMBOLS = "…—\u2013\u2018\u2019\u201c\u201d•·°€™←↑→↓↔⇐⇒✓✗✔✘⚠□■○●△▲☆★※"


class FontBuildError(Exception):
    """The font cannot be built; the message says what to do."""


@dataclass(frozen=True, slots=True)
class BuildReport:
    path: Path
    glyphs: int
    size_bytes: int
    half_width: int
    full_width: int
    unavailable: int  # optional characters (GB2312, symbols) Unifont has no glyph for


def read_catalog(path: Path) -> dict[str, str]:
    """One language file's texts by key, read as the device reads them."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FontBuildError(f"{path}: cannot read the language file: {exc}") from exc
    table: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise FontBuildError(f"{path}:{number}: not key=text: {line!r}")
        if key in table:
            raise FontBuildError(f"{path}: key {key!r} appears twice (the device reads the first)")
        table[key] = value
    return table


def catalog_chars(catalogs: tuple[Path, ...] = CATALOGS) -> dict[str, set[str]]:
    """Every character of each catalog string, by key (all languages together)."""
    by_key: dict[str, set[str]] = {}
    for path in catalogs:
        for key, value in read_catalog(path).items():
            by_key.setdefault(key, set()).update(value)
    return by_key


def gb2312_chars() -> set[str]:
    """The characters of GB2312, decoded pair by pair (rows 0xA1-0xF7, cells 0xA1-0xFE)."""
    chars: set[str] = set()
    for hi in range(0xA1, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.add(bytes((hi, lo)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    return chars


def required_codepoints(catalogs: tuple[Path, ...] = CATALOGS) -> dict[int, str]:
    """Codepoints the font must have, with why (for the error message)."""
    need: dict[int, str] = {cp: "printable ASCII" for cp in range(0x20, 0x7F)}
    for key, chars in catalog_chars(catalogs).items():
        for ch in chars:
            if ord(ch) >= 0x20:
                need.setdefault(ord(ch), f"catalog key {key!r}")
    return need


def optional_codepoints() -> set[int]:
    wanted = set(range(0xA0, 0x180))  # Latin-1 supplement, Latin Extended-A
    wanted.update(ord(c) for c in gb2312_chars())
    wanted.update(ord(c) for c in NAME_EXTRAS + SYMBOLS)
    return wanted


def read_hex(path: Path, wanted: set[int]) -> dict[int, bytes]:
    """The bitmaps of the wanted codepoints present in a unifont.hex file."""
    if not path.is_file():
        raise FontBuildError(
            f"{path} not found: install GNU Unifont (`apt-get install unifont`) "
            "or pass --hex PATH to a unifont.hex file"
        )
    glyphs: dict[int, bytes] = {}
    with path.open(encoding="ascii") as lines:
        for number, line in enumerate(lines, 1):
            code, sep, bits = line.strip().partition(":")
            if not sep:
                continue
            try:
                cp = int(code, 16)
                bitmap = bytes.fromhex(bits)
            except ValueError as exc:
                raise FontBuildError(f"{path}:{number}: not a unifont.hex line") from exc
            if cp not in wanted:
                continue
            if len(bitmap) not in (16, 32):
                raise FontBuildError(
                    f"{path}:{number}: U+{cp:04X} has {len(bitmap)} bytes, expected 16 or 32"
                )
            glyphs[cp] = bitmap
    return glyphs


def encode(glyphs: dict[int, bytes]) -> bytes:
    """The font file for these glyphs (format in the module docstring)."""
    table = bytearray()
    bitmaps = bytearray()
    for cp in sorted(glyphs):
        bitmap = glyphs[cp]
        if len(bitmaps) > MAX_BITMAP_BYTES:
            raise FontBuildError(f"{len(glyphs)} glyphs: the format holds 1 MiB of bitmaps")
        table += ENTRY.pack(cp & 0xFFFF, cp >> 16, len(bitmap) // 2, len(bitmaps) // UNIT_BYTES)
        bitmaps += bitmap
    count = len(glyphs)
    header = HEADER.pack(
        MAGIC, VERSION, GLYPH_HEIGHT_PX, ENTRY.size, count, HEADER.size + ENTRY.size * count
    )
    return header + bytes(table) + bytes(bitmaps)


def build(
    hex_path: Path = DEFAULT_HEX, out: Path = DEFAULT_OUT, catalogs: tuple[Path, ...] = CATALOGS
) -> BuildReport:
    """Write the font file atomically (a reader never sees half a font)."""
    required = required_codepoints(catalogs)
    optional = optional_codepoints()
    glyphs = read_hex(hex_path, set(required) | optional)
    lacking = sorted(cp for cp in required if cp not in glyphs)
    if lacking:
        detail = ", ".join(f"U+{cp:04X} {chr(cp)!r} ({required[cp]})" for cp in lacking[:10])
        raise FontBuildError(
            f"{hex_path} has no glyph for {len(lacking)} character(s) the screens need: "
            f"{detail}; change the catalog text or use a fuller unifont.hex"
        )
    data = encode(glyphs)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".font-", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the font is not
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    half = sum(1 for b in glyphs.values() if len(b) == 16)
    return BuildReport(
        path=out,
        glyphs=len(glyphs),
        size_bytes=len(data),
        half_width=half,
        full_width=len(glyphs) - half,
        unavailable=len((set(required) | optional) - set(glyphs)),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--hex", type=Path, default=DEFAULT_HEX, help="unifont.hex to read")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="font file to write")
    parser.add_argument(
        "--catalog",
        type=Path,
        action="append",
        help="a language file (lang_xx.txt) whose characters must render; repeat for each "
        "(default: every firmware/lib/tack/lang_*.txt)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        report = build(args.hex, args.out, tuple(args.catalog or CATALOGS))
    except FontBuildError as exc:
        print(f"build_font: {exc}", file=sys.stderr)
        return 1
    print(
        f"{report.path}: {report.glyphs} glyphs ({report.half_width} 8x16, "
        f"{report.full_width} 16x16), {report.size_bytes} bytes, "
        f"{report.unavailable} optional characters not in Unifont, "
        f"{time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
