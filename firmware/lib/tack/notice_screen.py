"""Must-read notices on screen (docs/notices.md; docs/firmware.md, "Notices"), on both devices.

``cmd/notice`` (retained) lists the device's unread notices, oldest first. The oldest one is
shown full screen, its text wrapped and paged, until a person acknowledges it: ``button ok``
on a terminal (keypad ``#`` with nothing typed), any button on a panel. The acknowledgement
sends a ``receipt`` event through the outbox, so one made offline is delivered on reconnect.

The notice is hidden at once, not when the receipt's ack comes back (the person has read it;
offline, the ack could be hours away). Its id is remembered (``dev.notes_read``) until a list
from the gateway no longer has it, so a list published before the receipt arrived does not
bring it back. After a reboot with the receipt still waiting in the outbox, the retained list
may show it again until the gateway's next list, which comes as soon as the receipt is in.

Loaded by ``tack.notices`` once ``tack.notice_read`` has read a ``cmd/notice`` (and wrapped
the texts), and unloaded as soon as nothing is left to show: a terminal with no notice holds
none of this. A 64 KiB terminal has about 5 KB to spare, so this module only shows: reading
and wrapping are ``tack.notice_read``'s, the receipt ``tack.notice_ack``'s, each loaded for a
moment with this module off the heap. On a terminal, a card or another key puts the notices
aside (on flash, off the heap, which the punch needs) until the terminal is idle again. While
notices are up, this module is ``dev.notes``, its state in its globals.
"""

import json
import sys

from micropython import const

from tack import unload

_ROWS = const(5)  # rows 1-5 hold the text; more is paged
_IDLE = const(0)  # the terminal's screen mode _IDLE (clock_terminal/main.py)

# The unread notices, not acknowledged here, oldest first, each text wrapped into lines; the
# page shown; the screen but its status line (made when the notice or the page changes); and
# whether the notice is on screen now (only then does it take a key).
items = []  # type: list[dict]
page = 0
rows = None  # type: list | None
shown = False


def screen(dev):
    """What ``Device.render`` draws while there is a notice: the notice, unless the
    application has something more urgent up (a terminal's punch, its answer or a prompt; a
    panel's answer to a press or its book-now choice), which shows first."""
    global rows, shown
    panel = getattr(dev, "panel", False)
    shown = dev.msg is None and dev.choice is None if panel else dev.mode == _IDLE
    if not shown:
        return dev.screen()
    item = items[0]
    if rows is None:
        lines = item["text"]
        pages = (len(lines) + _ROWS - 1) // _ROWS
        title = item["title"] or dev.t("notice_title")
        if len(items) > 1:
            title = "%s (%d)" % (title, len(items))
        made = [(0, title, {"invert": True})]  # type: list
        for i, line in enumerate(lines[page * _ROWS : page * _ROWS + _ROWS]):
            made.append((1 + i, line, {}))
        if page + 1 < pages:
            hint = dev.t("notice_more", page + 1, pages)
        else:
            hint = dev.t("notice_any" if panel else "notice_ok")
        made.append((6, hint, {"invert": True}))
        rows = made
    status = dev.status_line()
    return rows + [(7, "%s · %s" % (item["from"], status) if item["from"] else status, {})]


def on_input(dev, kind, value):
    """True when the input was for the notice on screen: the next page, or the
    acknowledgement. On a terminal, a card or any key but OK goes to the terminal, and the
    notice steps aside until the terminal is idle again (``tack.notices``)."""
    global page, rows
    if not getattr(dev, "panel", False) and not (kind == "button" and value == "ok"):
        # Put aside on flash, not in RAM: the punch needs every byte of a small heap.
        path = dev.data + "/notices.json"
        with open(path, "w") as f:
            json.dump(items, f)
        dev.notes_in = path
        show(dev, [])
        return False
    if not shown or kind != "button":
        return False
    if (page + 1) * _ROWS < len(items[0]["text"]):
        page += 1
        rows = None
        return True
    # Acknowledged: tack.notices sends the receipt (tack.notice_ack) with this code off the
    # heap, then shows what is left.
    items[0]["ack"] = True
    dev.notes_in = items
    show(dev, [])
    return True


def show(dev, fresh):
    """Show ``fresh``, the unread notices (tack.notice_read), or let go of this code."""
    global items, page, rows
    if not fresh:
        dev.notes = None
        items = []
        unload("tack.notice_screen")
        return
    if not items or items[0]["id"] != fresh[0]["id"]:
        page = 0
    items = fresh
    rows = None
    dev.notes = sys.modules[__name__]
