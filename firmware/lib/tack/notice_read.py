"""Must-read notices: reading a ``cmd/notice`` and wrapping its texts for tack.notice_screen
(docs/firmware.md, "Notices"). A module of its own, loaded for that and let go at once, so
that the list's reader (``tack.codec_notice``) and the screen's code are never on a 64 KiB
terminal's heap together.

``tack.notices`` calls ``read(dev)`` from the main loop with the payload in
``dev.notes_in``: the list is read, what this device already acknowledged is left out (see
tack.notice_screen), and the rest replaces the payload in ``dev.notes_in``; this module and
the reader are then let go before ``notice_screen.show`` loads. On a heap too full for a
step, ``MemoryError`` leaves ``dev.notes_in`` as far as it got for a later pass.
"""

import gc

from micropython import const

from tack import codec, unload, why

_WIDTH = const(292)  # the screen less its margins (tack.display)
_NO_START = "，。、：；！？）》」』】…,.:;!?)]}%"  # never at the start of a line


def read(dev):
    """Read the payload in ``dev.notes_in`` into the list of unread notices there (None: an
    unreadable list, which changes nothing shown)."""
    from tack.codec_notice import decode_notice

    try:
        data = decode_notice(dev.notes_in)
    except codec.ProtocolError as exc:  # keep what was shown
        dev.hal.log(why("li_badcmd", "notice", exc.reason, exc))
        dev.notes_in = None
        return
    finally:
        del decode_notice
        unload("tack.codec_notice")
    ids = [it["id"] for it in data["items"]]
    # Acknowledged here: hidden while the gateway's list still has them; forgotten once not.
    read = [i for i in getattr(dev, "notes_read", ()) if i in ids]
    if read:
        dev.notes_read = read
    elif hasattr(dev, "notes_read"):
        del dev.notes_read
    fresh = [it for it in data["items"] if it["id"] not in read]
    dev.hal.event("notice", {"ids": [it["id"] for it in fresh], "dropped": data["dropped"]})
    data = None
    for it in fresh:  # each text as the screen's lines, once
        gc.collect()
        try:
            it["text"] = wrap(dev.display.font, it["text"])
        except MemoryError:  # a heap too full even for that: one line, cut short with "…"
            it["text"] = [it["text"]]
    dev.notes_in = fresh


def wrap(font, text):
    """The lines of ``text`` as the screen shows them: broken at spaces, or between wide (CJK)
    characters, but never before closing punctuation. tack.layout.wrap's rules in a few lines:
    that module and its token lists need more heap than a 64 KiB terminal has beside a
    notice."""
    out = []
    for para in text.split("\n"):
        line = ""
        w = 0
        cut = 0  # characters of `line` before the last place it may break
        for ch in para:
            cw = font.char_width(ord(ch))
            wide = ord(ch) >= 0x2E80
            if w + cw > _WIDTH and line.strip() and ch != " ":
                if ch in _NO_START:  # the character before goes down with it
                    cut = len(line) - 1
                elif wide or not cut:
                    cut = len(line)
                out.append(line[:cut].rstrip())
                line = line[cut:].lstrip()
                w = font.width(line)
                cut = 0
            line += ch
            w += cw
            if ch == " " or wide:
                cut = len(line)
        out.append(line.rstrip())
    return out
