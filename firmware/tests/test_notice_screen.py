"""Must-read notices on screen (tack.notice_read, tack.notice_screen), run inside MicroPython:
the list read, the text wrapped and paged, the acknowledgement's receipt, and the modules let
go once nothing is left.

Needs the built font: $TACK_FONT, or firmware/build/font.bin (the pytest driver builds it).
"""

import json
import os
import sys

from tack import catalog
from tack.display import Font

FONT_PATH = os.getenv("TACK_FONT") or "firmware/build/font.bin"
_font = []


def font():
    if not _font:
        _font.append(Font(FONT_PATH))
    return _font[0]


class Obj:
    pass


class FakeOutbox:
    def __init__(self):
        self.items = []

    def append(self, msg_id, kind, payload, frame=None):
        self.items.append((msg_id, kind, payload))

    def __len__(self):
        return len(self.items)


class FakeDevice:
    """What the notice modules use of a tack.device.Device."""

    def __init__(self, panel=False, lang="en"):
        if panel:
            self.panel = True
        self.lang = lang
        self.device_id = "term-1"
        self.data = os.getenv("TACK_TMP") or "/tmp"
        self.notes = None
        self.notes_in = None
        self.mode = 0  # a terminal's idle screen; a panel's: no answer, no book-now choice
        self.msg = self.choice = None
        self.events = []
        self.outbox = FakeOutbox()
        self.display = Obj()
        self.display.font = font()
        hal = self.hal = Obj()
        hal.event = lambda name, fields: self.events.append((name, fields))
        hal.log = lambda text: self.events.append(("log", text))
        state = self.state = Obj()
        state.seq = 0

        def next_seq():
            state.seq += 1
            return state.seq

        state.next_seq = next_seq
        clock = self.clock = Obj()
        clock.now_ms = lambda: 1767225600000
        link = self.link = Obj()
        link.wake = lambda: None

    def t(self, key, *args):
        return catalog.text(self.lang, key, *args)

    def status_line(self):
        return "Online"

    def command(self, payload):
        """A cmd/notice, as the application hands it to the main loop."""
        self.notes_in = payload
        self.resume()

    def press(self, button):
        """A button on the screen as drawn, and what the main loop does next."""
        self.notes.screen(self)
        took = self.notes.on_input(self, "button", button)
        if self.notes_in is not None:
            self.resume()
        return took

    def resume(self):
        """What Device.run does while notes_in holds something (tack.notices)."""
        from tack import notices

        notices.step(self)
        assert self.notes_in is None
        assert "tack.notices" not in sys.modules


def notice(*items):
    return json.dumps({"v": 1, "ts": 1, "items": [
        {"id": i, "title": t, "text": x, "ts": 1, "from": f} for i, t, x, f in items
    ]}).encode()


LONG = " ".join(["Fire drill at 15:00 today: leave by the east stairs."] * 5)


def test_wrap_fits_the_screen_keeps_every_word_and_agrees_with_layout():
    from tack.layout import wrap as layout_wrap
    from tack.notice_read import wrap

    lines = wrap(font(), LONG)
    assert len(lines) > 5, lines
    for line in lines:
        assert font().width(line) <= 292, line
    assert " ".join(lines) == LONG
    zh = "今天下午三点进行消防演习，请从东侧楼梯离开。" * 4
    zh_lines = wrap(font(), zh)
    for line in zh_lines:
        assert font().width(line) <= 292
        assert line[0] not in "，。", line
    assert "".join(zh_lines) == zh
    # The same lines as the full layout code, for Latin, CJK and both mixed.
    for text in (LONG, zh, "Fire drill 消防演习 at 15:00：请从东侧楼梯离开 and meet outside.\nSecond line"):
        assert wrap(font(), text) == layout_wrap(font(), text, 292), text
    assert wrap(font(), "") == [""]
    assert wrap(font(), "A" * 80)[0] == "A" * 36  # a word wider than the line is cut


def test_a_notice_is_shown_paged_and_acknowledged_with_ok():
    dev = FakeDevice()
    dev.command(notice(("n-1", "Fire drill", LONG, "Facilities")))
    assert dev.notes is not None
    rows = dev.notes.screen(dev)
    assert rows[0][1] == "Fire drill"
    assert rows[-1][1] == "Facilities · Online"
    assert rows[-2][1].startswith("Page 1 of 2"), rows
    # Only OK on a terminal: a card (or another key) is the terminal's, and the notice steps
    # aside, off the heap, until the terminal is idle again.
    assert not dev.notes.on_input(dev, "card", "C0001")
    assert dev.notes is None and "tack.notice_screen" not in sys.modules
    assert dev.notes_in == dev.data + "/notices.json"  # on flash, not on the heap
    dev.resume()
    assert dev.notes.screen(dev)[0][1] == "Fire drill"
    assert dev.press("ok")  # page 2
    rows = dev.notes.screen(dev)
    assert rows[-2][1] == "Press OK when read", rows
    assert dev.outbox.items == []
    assert dev.press("ok")
    (msg_id, kind, payload), = dev.outbox.items
    sent = json.loads(payload)
    assert (kind, sent["kind"], sent["body"]) == ("receipt", "receipt", {"notice": "n-1"})
    assert dev.notes is None
    assert dev.notes_read == ["n-1"]
    for name in ("tack.notice_screen", "tack.notice_read", "tack.codec_notice", "tack.codec_panel", "tack.layout"):
        assert name not in sys.modules, name
    # The bytes the codec writes for the same event.
    from tack import codec

    assert payload == codec.encode_event(msg_id, "term-1", 1, 1767225600000, "receipt", {"notice": "n-1"})


def test_an_acknowledged_notice_stays_hidden_until_the_gateway_drops_it():
    dev = FakeDevice()
    dev.command(notice(("n-1", "", "One", None), ("n-2", "", "Two", None)))
    assert dev.notes.screen(dev)[0][1] == "Notice (2)"
    dev.press("ok")
    assert [i["id"] for i in dev.notes.items] == ["n-2"]
    # The gateway's list from before the receipt: n-1 stays hidden.
    dev.command(notice(("n-1", "", "One", None), ("n-2", "", "Two", None)))
    assert [i["id"] for i in dev.notes.items] == ["n-2"]
    assert dev.notes_read == ["n-1"]
    dev.command(notice(("n-2", "", "Two", None)))
    assert not hasattr(dev, "notes_read")
    dev.press("ok")
    assert dev.notes is None
    dev.command(b'{"v":1,"ts":2,"items":[]}')
    assert dev.notes is None and not hasattr(dev, "notes_read")
    assert "tack.notice_screen" not in sys.modules


def test_on_a_panel_any_button_acknowledges_and_the_hint_says_so():
    dev = FakeDevice(panel=True, lang="zh")
    dev.command(notice(("n-9", "停电通知", "周六全天停电。", "行政部")))
    rows = dev.notes.screen(dev)
    assert rows[-2][1] == "阅读后请按任意键"
    assert dev.press("book")
    assert dev.outbox.items[0][1] == "receipt"
    assert dev.notes is None


def test_an_empty_or_unreadable_list_changes_nothing_shown():
    dev = FakeDevice()
    dev.command(b"")
    assert dev.notes is None
    dev.command(notice(("n-1", "T", "Text", None)))
    dev.command(b'{"v":1}')  # no items: refused, the notice stays
    assert dev.notes.items[0]["id"] == "n-1"
    assert any(e[0] == "log" for e in dev.events)
    assert dev.notes.screen(dev)[0][1] == "T"
    dev.press("ok")
    assert dev.notes is None


def test_the_notice_waits_while_the_application_has_something_more_urgent():
    dev = FakeDevice()
    dev.mode = 2  # the terminal shows a punch's verdict
    dev.screen = lambda: [(1, "verdict", {})]
    dev.command(notice(("n-1", "T", "Text", None)))
    assert dev.notes.screen(dev) == [(1, "verdict", {})]
    assert not dev.press("ok"), "not on screen: OK is not for it"
    dev.mode = 0
    assert dev.notes.screen(dev)[0][1] == "T"
    assert dev.press("ok")
    assert dev.notes is None
    panel = FakeDevice(panel=True)
    panel.msg, panel.choice = "Sending…", None
    panel.screen = lambda: [(6, "Sending…", {})]
    panel.command(notice(("n-2", "P", "Text", None)))
    assert panel.notes.screen(panel) == [(6, "Sending…", {})]
    panel.msg = None
    assert panel.notes.screen(panel)[0][1] == "P"
