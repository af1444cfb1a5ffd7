"""Text layout a screen needs only sometimes: line breaking, and glyph coverage for tests.

Kept out of tack.display, which every device loads: the terminal's and the panel's screens
fit each text on one row (``Display.line`` ends it with "…"), so this code is loaded only by
a screen that wraps text, and by the tests and tools that check the catalogs and names.
"""

# A character that must not begin a line (it belongs to the text before it) and one that
# must not end a line (it belongs to the text after it).
_NO_START = "，。、：；！？）》」』】〕〉…,.:;!?)]}%"
_NO_END = "（《「『【〔〈([{"


def _wide(cp):
    """CJK and other wide scripts: a line may break before or after any such character."""
    return cp >= 0x2E80


def wrap(font, s, max_px):
    """Lines of `s` no wider than `max_px` drawn with `font` (a tack.display.Font), broken at
    spaces or between CJK characters.

    A newline forces a break. Closing punctuation (，。) never starts a line and an
    opening bracket never ends one; a word wider than a line is cut between characters.
    """
    lines = []  # type: list[str]
    for para in s.split("\n"):
        _wrap_para(font, para, max_px, lines)
    return lines


def _wrap_para(font, para, max_px, lines):
    line = ""
    line_w = 0
    space = ""
    space_w = 0
    for word, is_space in _tokens(para):
        w = font.width(word)
        if is_space:
            if line:
                space = word
                space_w = w
            continue
        if line and line_w + space_w + w <= max_px:
            line = line + space + word
            line_w += space_w + w
        else:
            if line:
                lines.append(line)
            line = ""
            line_w = 0
            if w > max_px:
                # Too wide for any line: cut between characters; the rest goes on.
                for ch in word:
                    cw = font.char_width(ord(ch))
                    if line and line_w + cw > max_px:
                        lines.append(line)
                        line = ""
                        line_w = 0
                    line += ch
                    line_w += cw
            else:
                line = word
                line_w = w
        space = ""
        space_w = 0
    if line or not lines:
        lines.append(line)


def _tokens(para):
    """Split a paragraph into (text, is_space) pieces; a line may break between pieces.

    A run of spaces is one piece, a run of Latin letters, digits and punctuation is one
    piece, each CJK character is its own piece; punctuation that must not start a line
    stays with the piece before it, an opening bracket with the piece after it.
    """
    out = []
    cur = ""
    prev = ""
    for ch in para:
        if cur and _breakable(prev, ch):
            out.append((cur, prev == " "))
            cur = ""
        cur += ch
        prev = ch
    if cur:
        out.append((cur, prev == " "))
    return out


def _breakable(prev, ch):
    if prev == " " or ch == " ":
        return prev != ch
    if ch in _NO_START or prev in _NO_END:
        return False
    return _wide(ord(prev)) or _wide(ord(ch))


def missing(font, text):
    """Codepoints of `text` the font has no glyph for, each once, in order."""
    out = []
    buf = bytearray(32)
    for ch in text:
        cp = ord(ch)
        if cp >= 0x20 and cp not in out and not font.glyph_into(cp, buf):
            out.append(cp)
    return out
