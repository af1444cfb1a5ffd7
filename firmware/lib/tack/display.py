"""The screen: one-bit framebuffers drawn with the Unifont glyph file, a row band at a time.

The layout is 8 rows of 16 px (a Unifont glyph is 16 px high); a headline is drawn at
twice the size over two rows (line breaking for longer texts is tack.layout, loaded by the
screens that need it). framebuf's built-in 8x8 font has no Chinese, so every
character goes through the Font below: 8 px wide for Latin, 16 px for CJK. A character the
font lacks is drawn as a box ("tofu") and counted in `missing_glyphs`, so a test or the
device's status report can tell a screen that is wrong from one that looks right.

Colours are framebuf's: 1 is ink (dark), 0 is paper. The driver that copies `buffer` to
the panel converts if its controller wants the opposite; `save_png` writes black on white.
"""

import framebuf
import struct

from micropython import const

from tack import why

# --- the font ---------------------------------------------------------------------------------
# Glyphs from the font file, one at a time, so a 280 KB font costs about 2 KB of RAM.
#
# The file is written by firmware/tools/build_font.py from GNU Unifont (little-endian):
#
#     header, 16 bytes: magic b"TKF1", version u8 (1), height u8 (16), entry size u16 (6),
#                       glyph count u32, offset of the bitmap area u32
#     table, one 6-byte entry per glyph, sorted by codepoint:
#                       codepoint low u16, codepoint high u8, width u8 (8 or 16),
#                       bitmap offset from the bitmap area in 16-byte units u16
#     bitmaps:          16 bytes (8x16) or 32 bytes (16x16), rows top to bottom,
#                       MSB leftmost, 1 = ink: framebuf.MONO_HLSB as is
#
# A lookup binary-searches the table with seek/read (13 reads for 7,800 glyphs); the last
# 8 glyphs, found or not, stay in a 256-byte cache because a screen repeats characters.

_MAGIC = b"TKF1"
_VERSION = const(1)
_HEADER_BYTES = const(16)
_ENTRY_BYTES = const(6)
_UNIT_BYTES = const(16)
_MAX_GLYPH_BYTES = const(32)
HEIGHT_PX = const(16)
CACHE_GLYPHS = const(8)


class FontError(Exception):
    pass


def codepoints(s):
    """The codepoints of `s`, decoded from its UTF-8 bytes.

    What text drawing iterates instead of the str itself: MicroPython makes every
    character it hands out of a str a qstr, and qstrs are never freed, so drawing names
    character by character would fill the heap a hanzi at a time.
    """
    b = s.encode()
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
        elif c < 0xE0:
            c = (c & 0x1F) << 6 | b[i + 1] & 0x3F
            i += 2
        elif c < 0xF0:
            c = (c & 0x0F) << 12 | (b[i + 1] & 0x3F) << 6 | b[i + 2] & 0x3F
            i += 3
        else:
            c = (c & 0x07) << 18 | (b[i + 1] & 0x3F) << 12 | (b[i + 2] & 0x3F) << 6 | b[i + 3] & 0x3F
            i += 4
        yield c


def tofu_width(cp):
    """Width of the box drawn for a character the font lacks: wide from Hangul Jamo on."""
    return 16 if cp >= 0x1100 else 8


class Font:
    def __init__(self, path, cache_glyphs=CACHE_GLYPHS):
        try:
            f = open(path, "rb")
        except OSError:
            raise FontError(
                why("fo_missing", path)
            )
        header = f.read(_HEADER_BYTES)
        if len(header) != _HEADER_BYTES or header[:4] != _MAGIC:
            f.close()
            raise FontError(why("fo_magic", path))
        version, height, entry, count, bitmaps = struct.unpack_from("<BBHII", header, 4)
        if version != _VERSION or height != HEIGHT_PX or entry != _ENTRY_BYTES:
            f.close()
            raise FontError(
                why("fo_version", path, version, height, _VERSION)
            )
        self.path = path
        self.count = count
        self._f = f
        self._bitmaps = bitmaps
        self._entry = bytearray(_ENTRY_BYTES)
        # Cache: the last few lookups, found or not, in one preallocated slab so a cache
        # miss allocates nothing that stays. Slot i holds a bitmap at i * 32 and its width
        # (0: the font lacks it); the oldest slot is reused first (FIFO is enough for a
        # screen, whose characters repeat within a redraw).
        self._slab = bytearray(cache_glyphs * _MAX_GLYPH_BYTES)
        self._view = memoryview(self._slab)
        self._widths = bytearray(cache_glyphs)
        # Slot -> codepoint, searched in order: a list of small ints costs a quarter of the
        # heap a dict from codepoint to slot would.
        self._owner = [-1] * cache_glyphs
        self._next = 0

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    def glyph_into(self, cp, dest):
        """Copy a glyph's bitmap to the start of `dest`; returns its width, 0 when missing.

        A copy into the caller's buffer allocates nothing to keep (tack.layout.missing()
        tells which characters of a text the font lacks).
        """
        slot = self._slot(cp)
        width = self._widths[slot]
        if width:
            start = slot * _MAX_GLYPH_BYTES
            dest[0 : width * 2] = self._view[start : start + width * 2]
        return width

    def _slot(self, cp):
        owner = self._owner
        if cp in owner:
            return owner.index(cp)
        slot = self._next
        self._next = (slot + 1) % len(owner)
        owner[slot] = cp
        self._widths[slot] = 0  # until the read below succeeds
        # Binary-search the table for `cp`; read its bitmap into the slot.
        f = self._f
        if f is None:
            raise FontError(why("fo_closed", self.path))
        entry = self._entry
        lo = 0
        hi = self.count - 1
        while lo <= hi:
            mid = (lo + hi) >> 1
            f.seek(_HEADER_BYTES + mid * _ENTRY_BYTES)
            f.readinto(entry)
            here = entry[0] | (entry[1] << 8) | (entry[2] << 16)
            if here < cp:
                lo = mid + 1
            elif here > cp:
                hi = mid - 1
            else:
                width = entry[3]
                f.seek(self._bitmaps + (entry[4] | (entry[5] << 8)) * _UNIT_BYTES)
                start = slot * _MAX_GLYPH_BYTES
                if f.readinto(self._view[start : start + width * 2]) != width * 2:
                    raise FontError(why("fo_trunc", self.path))
                self._widths[slot] = width
                break
        return slot

    def char_width(self, cp):
        """Pixels a character takes: its glyph, a box when missing, 0 for a control character."""
        if cp < 0x20:
            return 0
        return self._widths[self._slot(cp)] or tofu_width(cp)

    def width(self, text):
        w = 0
        for cp in codepoints(text):
            w += self.char_width(cp)
        return w


# --- the screen --------------------------------------------------------------------------------

INK = const(1)
PAPER = const(0)
# The panel: 296x128, 8 rows of 16 px. A device draws it a band at a time (tack.device): a
# Display as high as one band (BAND_PX: a headline's two rows) rather than the whole screen.
SCREEN_W = const(296)
SCREEN_H = const(128)
BAND_PX = const(32)
ROW_PX = const(16)
MARGIN_PX = const(2)
ELLIPSIS = "…"

# Nibble -> byte with each bit doubled (0b1010 -> 0b11001100): for the 2x headline.
_DOUBLE = b"\x00\x03\x0c\x0f\x30\x33\x3c\x3f\xc0\xc3\xcc\xcf\xf0\xf3\xfc\xff"


class Display:
    def __init__(self, width=296, height=128, font=None):
        if font is None:
            raise ValueError(why("di_font"))
        self.width = width
        self.height = height
        self.rows = height // ROW_PX
        self.font = font
        self.buffer = bytearray(((width + 7) // 8) * height)
        self.fb = framebuf.FrameBuffer(self.buffer, width, height, framebuf.MONO_HLSB)
        self.missing_glyphs = 0
        # One glyph at a time is copied here and blitted; the views share the bytes.
        self._glyph = bytearray(32)
        self._glyph16 = framebuf.FrameBuffer(self._glyph, 16, 16, framebuf.MONO_HLSB)
        self._glyph8 = framebuf.FrameBuffer(self._glyph, 8, 16, framebuf.MONO_HLSB)
        self._big = bytearray(128)  # a glyph at twice the size (its views: see text())
        # Palette for inverted text: glyph paper -> ink, glyph ink -> paper.
        self._invert = framebuf.FrameBuffer(bytearray(1), 2, 1, framebuf.MONO_HLSB)
        self._invert.pixel(0, 0, INK)
        self._invert.pixel(1, 0, PAPER)

    # -- primitives ---------------------------------------------------------------------

    def clear(self, color=PAPER):
        self.fb.fill(color)

    def save_png(self, path):
        from tack import png  # only a Unix run writes screenshots: a board never loads it

        png.write(path, self.width, self.height, self.buffer, INK)

    # -- text ---------------------------------------------------------------------------

    def text(self, x, y, s, invert=False, scale=1):
        """Draw `s` with its top-left corner at (x, y); returns the x after the text.

        Glyph cells are painted whole (paper behind the ink, or the reverse when `invert`),
        so text drawn over old text replaces it. Control characters are skipped.
        """
        font = self.font
        palette = self._invert if invert else None
        if scale != 1:  # made per headline, not kept: two views cost more than they save
            big32 = framebuf.FrameBuffer(self._big, 32, 32, framebuf.MONO_HLSB)
            big16 = framebuf.FrameBuffer(self._big, 16, 32, framebuf.MONO_HLSB)
        for cp in codepoints(s):
            if cp < 0x20:
                continue
            w = font.glyph_into(cp, self._glyph)
            if not w:  # a box ("tofu") in the character's place, and counted
                w = tofu_width(cp) * scale
                h = ROW_PX * scale
                self.missing_glyphs += 1
                self.fb.fill_rect(x, y, w, h, INK if invert else PAPER)
                self.fb.rect(x + 1, y + 2, w - 2, h - 3, PAPER if invert else INK)
                x += w
                continue
            if scale == 1:
                src = self._glyph16 if w == 16 else self._glyph8
            else:
                # Every bit doubled across and every row twice, into the big glyph buffer.
                bits = self._glyph
                out = self._big
                row_bytes = w >> 3
                o = i = 0
                for _ in range(ROW_PX):
                    for _ in range(row_bytes):
                        hi = _DOUBLE[bits[i] >> 4]
                        lo = _DOUBLE[bits[i] & 15]
                        out[o] = out[o + 2 * row_bytes] = hi
                        out[o + 1] = out[o + 2 * row_bytes + 1] = lo
                        o += 2
                        i += 1
                    o += 2 * row_bytes
                src = big32 if w == 16 else big16
            self.fb.blit(src, x, y, -1, palette)
            x += w * scale
        return x

    def line(self, row, s, align="left", invert=False, big=False):
        """Draw one layout row (0 at the top, 16 px each; `big` takes two rows at 2x).

        The row is cleared first (filled with ink when `invert`) and text that does not fit
        ends in "…". Returns the x after the text.
        """
        if align != "left" and align != "center" and align != "right":
            raise ValueError(why("di_align", align))
        scale = 2 if big else 1
        last = self.rows - scale
        if row < 0 or row > last:
            raise ValueError(why("di_row", row, last))
        y = row * ROW_PX
        self.fb.fill_rect(0, y, self.width, ROW_PX * scale, INK if invert else PAPER)
        room = self.width - 2 * MARGIN_PX
        s = self.ellipsize(s, room // scale)
        w = self.font.width(s) * scale
        if align == "center":
            x = (self.width - w) // 2
        elif align == "right":
            x = self.width - MARGIN_PX - w
        else:
            x = MARGIN_PX
        return self.text(x, y, s, invert, scale)

    # -- measuring ----------------------------------------------------------------------

    def ellipsize(self, s, max_px):
        """`s` if it fits in `max_px`, else as much of it as fits followed by "…"."""
        font = self.font
        if font.width(s) <= max_px:
            return s
        room = max_px - font.width(ELLIPSIS)
        if room < 0:
            return ""
        w = 0
        end = 0  # bytes of s that fit
        for cp in codepoints(s):
            cw = font.char_width(cp)
            if w + cw > room:
                break
            w += cw
            end += 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
        return s.encode()[:end].decode().rstrip() + ELLIPSIS
