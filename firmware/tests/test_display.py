"""Font lookup, text layout and PNG output, run inside MicroPython.

Needs the built font: $TACK_FONT, or firmware/build/font.bin from the working directory
(`python firmware/tools/build_font.py`; the pytest driver builds it when it is missing).
"""

import gc
import os

from tack.display import Display, Font, FontError, INK, MARGIN_PX
from tack.layout import missing, wrap

FONT_PATH = os.getenv("TACK_FONT") or "firmware/build/font.bin"
# Unifont's "A", rows top to bottom (stable since Unifont 1.0).
UNIFONT_A = bytes.fromhex("0000000018242442427E424242420000")
PRIVATE_USE = 0xE000  # never in the font
_font = []


def font():
    if not _font:
        try:
            _font.append(Font(FONT_PATH))
        except FontError as exc:
            raise AssertionError("%s (set TACK_FONT to a built font)" % exc)
    return _font[0]


def display():
    gc.collect()  # each test draws on a fresh 4.7 KB buffer; a device makes one at boot
    return Display(font=font())


def glyph(f, cp):
    """(width, bitmap) of a codepoint, None when the font lacks it."""
    buf = bytearray(32)
    w = f.glyph_into(cp, buf)
    return (w, bytes(buf[: w * 2])) if w else None


def ink_in(d, x, y, w, h):
    n = 0
    for yy in range(y, y + h):
        for xx in range(x, x + w):
            n += d.fb.pixel(xx, yy)
    return n


def test_glyph_lookup_reads_the_right_bitmaps():
    f = font()
    assert glyph(f, ord("A")) == (8, UNIFONT_A), "A is %r" % (glyph(f, ord("A")),)
    w, bits = glyph(f, ord("张"))
    assert w == 16 and len(bits) == 32, "张 is %d px, %d bytes" % (w, len(bits))
    assert bits != bytes(32), "张 has an empty bitmap"
    assert glyph(f, ord(" ")) == (8, bytes(16)), "space: %r" % (glyph(f, 0x20),)
    # The ends of the table and codepoints outside it (binary search bounds).
    assert glyph(f, 0x1F) is None, "control character found"
    assert glyph(f, PRIVATE_USE) is None, "private-use character found"
    assert glyph(f, 0x10FFFF) is None, "U+10FFFF found"
    assert glyph(f, ord("～")) is not None, "fullwidth tilde (GB2312) missing"
    assert f.count > 7000, "only %d glyphs: GB2312 alone has 7445" % f.count


def test_glyph_cache_stays_bounded():
    f = Font(FONT_PATH, cache_glyphs=8)
    try:
        first = glyph(f, ord("张"))
        for cp in range(0x4E00, 0x4E00 + 100):
            glyph(f, cp)
        assert len(f._owner) == 8, "cache grew to %d glyphs" % len(f._owner)
        assert glyph(f, ord("张")) == first, "张 read differently after eviction"
    finally:
        f.close()


def test_width_and_missing():
    f = font()
    assert f.width("A张") == 24, "A张 is %d px" % f.width("A张")
    assert f.width("") == 0
    text = "A\ue000张\ue000\ue001"
    assert missing(f, text) == [0xE000, 0xE001], "missing: %r" % missing(f, text)
    assert missing(f, "张三 欧阳娜娜 Müller") == [], "names lack glyphs"
    # A missing wide character still takes a wide cell, so layout does not collapse.
    assert f.width("\ue000") == 16, "tofu width %d" % f.width("\ue000")


def test_wrap_breaks_between_cjk_characters():
    d = display()
    lines = wrap(d.font, "请刷卡或输入工号请刷卡或输入工号", 100)  # 6 CJK characters a line
    assert lines == ["请刷卡或输入", "工号请刷卡或", "输入工号"], "got %r" % (lines,)


def test_wrap_mixed_cjk_and_latin():
    d = display()
    text = "打卡成功，欢迎张三。Welcome back to the office, 今天是星期一（周一）。"
    for max_px in (60, 100, 150, 292):
        lines = wrap(d.font, text, max_px)
        for line in lines:
            assert d.font.width(line) <= max_px, "%r wider than %d" % (line, max_px)
            assert line[:1] not in "，。）", "%r starts with closing punctuation" % line
            assert line[-1:] != "（", "%r ends with an opening bracket" % line
            assert line == line.strip(), "%r has edge spaces" % line
        joined = "".join(lines).replace(" ", "")
        assert joined == text.replace(" ", ""), "text changed at %d px: %r" % (max_px, lines)
    lines = wrap(d.font, text, 150)
    assert "Welcome" in " ".join(lines), "a Latin word was cut: %r" % (lines,)


def test_wrap_cuts_a_word_longer_than_the_line_and_keeps_newlines():
    d = display()
    lines = wrap(d.font, "ABCDEFGHIJKL", 40)  # 5 Latin characters a line
    assert lines == ["ABCDE", "FGHIJ", "KL"], "got %r" % (lines,)
    assert wrap(d.font, "Room 4\n会议室", 292) == ["Room 4", "会议室"]
    assert wrap(d.font, "", 100) == [""]


def test_ellipsize():
    d = display()
    assert d.ellipsize("Free", 100) == "Free"
    short = d.ellipsize("存储已修复：丢弃3条损坏记录", 100)
    assert short.endswith("…") and d.font.width(short) <= 100, "got %r" % short
    assert short.startswith("存储已修复"), "got %r" % short
    assert d.ellipsize("Hello", 4) == "", "nothing fits in 4 px"


def test_text_draws_glyphs_and_returns_the_end():
    d = display()
    end = d.text(10, 20, "A张")
    assert end == 10 + 24, "ended at %d" % end
    # The top row of Unifont's A is blank, its crossbar (row 9) is solid from x+1 to x+6.
    assert ink_in(d, 10, 20, 8, 1) == 0, "ink above the A"
    assert ink_in(d, 11, 29, 6, 1) == 6, "A's crossbar not drawn"
    assert ink_in(d, 18, 20, 16, 16) > 20, "张 not drawn"
    assert d.missing_glyphs == 0


def test_missing_glyphs_are_boxes_and_counted():
    d = display()
    d.line(3, "工号\ue000\ue123")
    assert d.missing_glyphs == 2, "counted %d" % d.missing_glyphs
    box_x = MARGIN_PX + 32  # after two CJK glyphs
    assert ink_in(d, box_x, 48, 16, 16) > 20, "no visible box for a missing glyph"
    d.text(0, 0, "\ue000")
    assert d.missing_glyphs == 3


def test_line_alignment_and_invert():
    d = display()
    end = d.line(0, "Now", align="right")
    assert end == d.width - MARGIN_PX, "right-aligned text ends at %d" % end
    d.line(2, "Free", align="center", invert=True)
    band = ink_in(d, 0, 32, d.width, 16)
    assert band > d.width * 16 * 3 // 4, "inverted row is mostly paper (%d ink)" % band
    assert ink_in(d, 0, 16, d.width, 16) == 0, "row 1 was touched"
    try:
        d.line(8, "off screen")
    except ValueError:
        pass
    else:
        raise AssertionError("row 8 accepted on an 8-row screen")


def test_big_line_is_twice_the_size():
    d = display()
    small = Display(width=16, height=16, font=font())
    small.text(0, 0, "会")
    d.line(0, "会", big=True)
    for y in range(16):
        for x in range(16):
            want = small.fb.pixel(x, y)
            got = d.fb.pixel(MARGIN_PX + 2 * x + 1, 2 * y + 1)
            assert got == want, "pixel (%d,%d) of the 2x glyph differs" % (x, y)


def test_long_line_is_ellipsized():
    d = display()
    d.line(5, "Storage repaired: 3 damaged record(s) dropped")
    assert d.font.width("…") > 0
    assert ink_in(d, d.width - 12, 80, 12, 16) < 40, "text runs to the screen edge"


def test_png_written_with_signature(tmp):
    d = display()
    d.line(0, "打卡成功", big=True)
    path = tmp + "/screen.png"
    d.save_png(path)
    size = os.stat(path)[6]
    with open(path, "rb") as f:
        head = f.read(24)
        f.seek(size - 12)
        tail = f.read(12)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "no PNG signature: %r" % head[:8]
    assert head[12:16] == b"IHDR", "first chunk %r" % head[12:16]
    assert int.from_bytes(head[16:20], "big") == 296, "width"
    assert int.from_bytes(head[20:24], "big") == 128, "height"
    assert tail[4:8] == b"IEND", "does not end with IEND"
    # Stored (uncompressed) rows: one filter byte + 37 bytes a row, plus framing.
    assert 128 * 38 < size < 128 * 38 + 120, "unexpected size %d" % size


def test_display_fits_in_a_small_heap():
    gc.collect()
    before = gc.mem_alloc()
    f = Font(FONT_PATH)
    d = Display(font=f)
    for row in range(8):
        d.line(row, "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可")
    gc.collect()
    used = gc.mem_alloc() - before
    f.close()
    # 4.7 KB of framebuffer, 1 KB of glyph cache; the 280 KB font stays on flash.
    assert used < 10 * 1024, "a font and a drawn screen hold %d bytes of heap" % used
    assert len(d.buffer) == 296 * 128 // 8
