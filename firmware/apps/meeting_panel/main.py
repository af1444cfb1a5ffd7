"""The meeting-room panel (first cut): the room's schedule on screen, check-in and buttons.

The gateway publishes the room's schedule, retained, on ``cmd/schedule``; the panel keeps the
last one on flash (replaced atomically), so after a reboot without network it still shows the
day. A card tapped during a meeting checks the meeting in (``evt/checkin``); the buttons send
``evt/button``. Both go through the same outbox as a terminal's punches. The flows around them
(no-show release, reminders, ad-hoc booking rules) belong to the gateway.
"""

import json
import os
import time

from tack import codec, why
from tack.device import Device, OutboxFull
from tack.schedule import decode_schedule

_ADHOC_MIN = 15


class MeetingPanel(Device):
    def __init__(self, cfg, hal):
        super().__init__(cfg, hal)
        self.path = self.data + "/schedule.json"
        self.schedule = self._load()
        self.notice = None
        self.notice_until = time.ticks_ms()
        self.checked = {}  # booking id -> True once the gateway accepted our check-in

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
        if name != "schedule":
            self.hal.log(why("pa_cmd", name))
            return
        schedule = decode_schedule(payload)  # ProtocolError: the link logs it
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(payload)
        os.rename(tmp, self.path)
        self.schedule = schedule
        self.hal.event("schedule", {"items": len(schedule["items"]), "dropped": schedule["dropped"]})

    def now_next(self, now_ms):
        current = nxt = None
        if self.schedule:
            for item in self.schedule["items"]:
                if item["start"] <= now_ms < item["end"]:
                    current = item
                elif item["start"] > now_ms and nxt is None:
                    nxt = item
        return current, nxt

    # --- inputs -------------------------------------------------------------------------------

    def on_input(self, kind, value):
        current, _ = self.now_next(self.clock.now_ms())
        if kind == "card" or (kind == "button" and value == "checkin"):
            if current is None:
                self._notice(self.t("no_meetings"))
                return
            self._send("checkin", {"booking": current["id"]})
        elif kind == "button":
            body = {"button": value}
            if value == "book":
                body["minutes"] = _ADHOC_MIN
            elif current is not None:
                body["booking"] = current["id"]
            self._send("button", body)

    def _send(self, kind, body):
        msg_id = codec.new_msg_id()
        seq = self.state.next_seq()
        payload = codec.encode_event(msg_id, self.device_id, seq, self.clock.now_ms(), kind, body)
        try:
            self.outbox.append(msg_id, kind, payload)
        except OutboxFull as exc:
            self.hal.log(str(exc))
            self._notice(self.t("outbox_full"))
            return
        self.link.wake()
        self.hal.event("queued", {"id": msg_id, "seq": seq, "kind": kind})

    def on_ack(self, ack, action):
        v = ack.get("verdict") or {}
        if ack["reason"] == "ok" or ack["reason"] == "duplicate":
            self._notice(v.get("text") or self.t("checked_in"))
        else:
            self._notice(self.t("reason_" + ack["reason"]))

    def _notice(self, text):
        self.notice = text
        self.notice_until = time.ticks_add(time.ticks_ms(), self.verdict_show_ms)

    # --- screen -------------------------------------------------------------------------------

    def tick(self, now):
        if self.notice is not None and time.ticks_diff(now, self.notice_until) > 0:
            self.notice = None

    def screen(self):
        tz = self.tz_offset_min
        now = self.clock.now_ms()
        room = self.schedule["room"] if self.schedule else self.device_id
        rows = [(0, "%s  %s" % (self.t("room", room), self.clock.hhmm(tz_min=tz)), {"invert": True})]
        if self.schedule is None:
            rows.append((1, self.t("no_schedule"), {"big": True}))
        else:
            current, nxt = self.now_next(now)
            if current is not None:
                rows.append((1, current["title"], {"big": True}))
                rows.append((3, self.t("busy_until", self.clock.hhmm(current["end"], tz)), {}))
                if current.get("in") or self.checked.get(current["id"]):
                    rows.append((4, self.t("checked_in"), {}))
                else:
                    rows.append((4, self.t("check_in"), {}))
            elif nxt is not None:
                rows.append((1, self.t("free"), {"big": True}))
                rows.append((3, self.t("free_until", self.clock.hhmm(nxt["start"], tz)), {}))
            else:
                rows.append((1, self.t("free"), {"big": True}))
                rows.append((3, self.t("no_meetings"), {}))
            if nxt is not None:
                rows.append((5, "%s: %s %s" % (self.t("next"), self.clock.hhmm(nxt["start"], tz), nxt["title"]), {}))
        if self.notice:
            rows.append((6, self.notice, {"invert": True}))
        rows.append((7, self.status_line(), {}))
        return rows


def start(cfg, hal):
    return MeetingPanel(cfg, hal)
