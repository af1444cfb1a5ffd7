"""The meeting-room panel: the room's now and next, its LED, check-in, book now, extend, end.

The gateway publishes the room's schedule, retained, on ``cmd/schedule``; the panel keeps the
last one on flash (replaced atomically), so after a reboot without network it still shows the
day. What the room is doing now is the panel's own reading of that schedule and its clock
(``tack.room``): free (green LED), busy (red), check-in open and not done (amber), "starts in
N min" from 15 minutes before a start. A card, or the Check in button, checks in to the booking
whose check-in is open (``evt/checkin``); Book, Extend and End send ``evt/button``. Book cycles
the length, 15 → 30 → 45 → 60 minutes, one press each, and the booking is sent once the buttons
are left alone for ``verdict_show_ms``. Everything goes through the outbox, so a press made
offline waits there and the gateway resolves it on reconnect; its answer is shown in the
panel's language from the ack's reason (the gateway's English text only for what the panel
has no words for). Offline, the status line says since when.
"""

import os
import time

from tack import codec, room, why
from tack.device import Device, OutboxFull
from tack.schedule import decode_schedule


class MeetingPanel(Device):
    panel = True  # for tack.notice_screen: any button acknowledges a notice

    def __init__(self, cfg, hal):
        super().__init__(cfg, hal)
        self.path = self.data + "/schedule.json"
        self.schedule = self._load()
        self.msg = None  # an answer or a refusal, on screen until msg_until
        self.msg_until = time.ticks_ms()
        self.checked = {}  # booking id -> True once the gateway accepted our check-in
        self.sent = {}  # msg id -> (kind of press, booking id): what an ack answers
        self.choice = None  # book now: the length chosen so far (minutes), until choice_until
        self.choice_until = time.ticks_ms()
        self.colour = None  # what the LED shows
        self.offline_at = None  # Unix ms the link was first seen down (None: online)

    # --- schedule -----------------------------------------------------------------------------

    def _load(self):
        for path in (self.path, self.path + ".tmp"):
            try:
                with open(path, "rb") as f:
                    return decode_schedule(f.read())
            except (OSError, codec.ProtocolError):
                continue
        return None

    def on_command(self, name, payload):
        if name == "notice":  # must-read notices: for the main loop (tack.notices)
            self.notes_in = payload
            return
        if name != "schedule":
            self.hal.log(why("pa_cmd", name))
            return
        schedule = decode_schedule(payload)  # ProtocolError: the link logs it
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(payload)
        os.rename(tmp, self.path)
        self.schedule = schedule
        self.checked = {}  # the schedule says who checked in now
        self.hal.event("schedule", {"items": len(schedule["items"]), "dropped": schedule["dropped"]})

    # --- inputs -------------------------------------------------------------------------------

    def on_input(self, kind, value):
        current, _, pending, _ = room.state(self.schedule, self.clock.now_ms(), self.checked)
        if kind == "card" or (kind == "button" and value == "checkin"):
            target = pending or current
            if target is None:
                self.say(self.t("no_checkin"))
                return
            self._send("checkin", {"booking": target["id"]})
        elif kind == "button" and value == "book":
            # Each press moves to the next length; sent when the buttons are left alone.
            self.choice = room.next_length(self.choice)
            self.choice_until = time.ticks_add(time.ticks_ms(), self.verdict_show_ms)
        elif kind == "button" and (value == "extend" or value == "release" or value == "cancel"):
            body = {"button": value}
            if value == "extend":
                body["minutes"] = room.EXTEND_MIN
            target = current or pending
            if target is not None:
                body["booking"] = target["id"]
            self._send("button", body)

    def _send(self, kind, body):
        msg_id = codec.new_msg_id()
        seq = self.state.next_seq()
        payload = codec.encode_event(msg_id, self.device_id, seq, self.clock.now_ms(), kind, body)
        try:
            self.outbox.append(msg_id, kind, payload)
        except OutboxFull as exc:
            self.hal.log(str(exc))
            self.say(self.t("outbox_full"))
            return
        self.sent[msg_id] = (body.get("button") or kind, body.get("booking"))
        self.link.wake()
        self.say(self.t("sending") if self.link.connected else self.t("saved_waiting", len(self.outbox)))
        self.hal.event("queued", {"id": msg_id, "seq": seq, "kind": kind, "body": body})

    def on_ack(self, ack, action):
        if action == "keep":  # transient: the outbox sends it again
            return
        what, booking = self.sent.pop(ack["msg_id"], (None, None))
        v = ack.get("verdict") or {}
        at = v.get("at") or ""
        if ack["reason"] == "ok" or ack["reason"] == "duplicate":
            if what == "checkin" and booking is not None:
                self.checked[booking] = True
            key = "done_" + (what or "")
            text = self.t(key, at) if at else self.t(key)
            if text == key or "%" in text:  # no words of ours (or no time to put in them)
                text = v.get("text") or self.t("accepted")
        else:
            key = "reason_" + ack["reason"]
            text = self.t(key)
            if text == key:
                text = v.get("text") or ack["reason"]
            elif at:
                text = "%s (%s)" % (text, at)
        self.say(text)

    def say(self, text):
        self.msg = text
        self.msg_until = time.ticks_add(time.ticks_ms(), self.verdict_show_ms)

    # --- screen -------------------------------------------------------------------------------

    def tick(self, now):
        if self.msg is not None and time.ticks_diff(now, self.msg_until) > 0:
            self.msg = None
        if self.choice is not None and time.ticks_diff(now, self.choice_until) > 0:
            minutes = self.choice
            self.choice = None
            self._send("button", {"button": "book", "minutes": minutes})
        if self.link.connected:
            self.offline_at = None
        elif self.offline_at is None:
            self.offline_at = self.clock.now_ms()
        colour = room.state(self.schedule, self.clock.now_ms(), self.checked)[3]
        if colour != self.colour:
            self.colour = colour
            self.hal.led(colour)

    def status_line(self):
        line = super().status_line()
        if self.offline_at is not None:
            since = self.t("offline_since", self.clock.hhmm(self.offline_at))
            line = line.replace(self.t("offline"), since, 1)
        return line

    def screen(self):
        now = self.clock.now_ms()
        sched = self.schedule
        name = sched["room"] if sched and sched["room"] else self.device_id
        rows = [(0, "%s  %s" % (self.t("room", name), self.clock.hhmm()), {"invert": True})]
        if sched is None:
            rows.append((1, self.t("no_schedule"), {"big": True}))
        else:
            current, nxt, pending, _ = room.state(sched, now, self.checked)
            if current is not None:
                rows.append((1, self._title(current), {"big": True}))
                rows.append((3, self.t("busy_until", self.clock.hhmm(current["end"])), {}))
            else:
                rows.append((1, self.t("free"), {"big": True}))
                if nxt is None:
                    rows.append((3, self.t("no_meetings"), {}))
                else:
                    rows.append((3, self.t("free_until", self.clock.hhmm(nxt["start"])), {}))
            if pending is not None:
                rows.append((4, self.t("check_in_open"), {}))
            elif current is not None:
                rows.append((4, self.t("checked_in"), {}))
            if nxt is not None:
                soon = room.starts_in(nxt, now)
                if soon is not None:
                    when = self.t("starts_in", soon)
                else:
                    when = "%s %s" % (self.t("next"), self.clock.hhmm(nxt["start"]))
                rows.append((5, "%s: %s" % (when, self._title(nxt)), {}))
        if self.choice is not None:
            rows.append((6, self.t("book_choice", self.choice), {"invert": True}))
        elif self.msg:
            rows.append((6, self.msg, {"invert": True}))
        rows.append((7, self.status_line(), {}))
        return rows

    def _title(self, item):
        """A booking's title, or "Booked" in privacy mode (and for a booking with none)."""
        if self.schedule["priv"] or not item["title"]:
            return self.t("booked")
        return item["title"]


def start(cfg, hal):
    return MeetingPanel(cfg, hal)
