"""The clock-in terminal: a card or an employee number in, the gateway's verdict on screen.

A punch is written to the outbox before anything is sent, with the GPS fix and the camera
frame when the terminal has them; the screen then says "Sending…" while online or "Saved, N
waiting" while offline, and shows the verdict when the gateway's ack for that punch arrives.
When the outbox is full the punch is refused on screen ("Storage full: punch NOT saved"):
older punches are never dropped to make room.

The leave key (input ``button leave``) asks instead: for about 10 s the next card or number sends
a ``query`` for the person's leave balance rather than a punch, and the ack's verdict shows the
balance. That code is ``tack.query``, loaded only then; it also says the answer (it hands the
link an ack handler of its own until the answer is in).

Must-read notices (``cmd/notice``) are shown by ``tack.notices`` from the main loop when the
screen is idle; OK (``button ok``, keypad ``#``) acknowledges one, and a card punches as usual
(the notice steps aside until the verdict has been shown).
"""

import os
import time

from micropython import const

from tack import codec, why
from tack.device import Device, OutboxFull

_IDLE = const(0)
_PENDING = const(1)
_VERDICT = const(2)
_NOTICE = const(3)
_ASK = const(4)  # the leave key was pressed: the next credential asks, it does not punch


class ClockTerminal(Device):
    def __init__(self, cfg, hal):
        super().__init__(cfg, hal)
        self.gps = None  # the NMEA reader costs heap: loaded only when there is a GPS
        if hal.has_gps:
            from tack.nmea import GpsReader

            gps_max_age_ms = cfg["gps_max_age_ms"]  # a local of the key's name: no str copy
            self.gps = GpsReader(max_age_ms=gps_max_age_ms)
        self.max_frame_bytes = cfg["max_frame_bytes"]
        if hal.has_camera:
            try:
                os.mkdir(self.data + "/frames")
            except OSError:
                pass
        self.mode = _NOTICE if self.damaged else _IDLE
        self.mode_until = time.ticks_add(time.ticks_ms(), self.verdict_show_ms)
        self.current = None  # msg id of the punch (or query) the person at the door waits for
        self.verdict = None  # (ok, name, text)
        self.notice = self.t("outbox_repaired", self.damaged) if self.damaged else ""

    # --- inputs -------------------------------------------------------------------------------

    def on_input(self, kind, value):
        # A card or number punches, unless the leave key came just before it. The leave key
        # (a button) and the card after it are tack.query's, which unloads itself when done.
        if kind != "button" and self.mode != _ASK:
            self.punch(kind, value)
            return
        from tack import query

        query.on_input(self, kind, value)

    def punch(self, kind, credential):
        if not codec.valid_id(credential, 32):
            # A misread card: nothing the gateway could store. Say so, keep nothing.
            self.hal.event("refused", {"why": "bad_credential"})
            self.notice = self.t("reason_invalid_value")
            self._show(_NOTICE, None)
            return
        msg_id = codec.new_msg_id()
        body = {kind: credential}
        fix = self.gps.fix(time.ticks_ms()) if self.gps else None
        if fix is not None:
            body["gps"] = fix
        frame = None  # (path, size, sha256) of the camera frame
        if self.hal.has_camera:
            path = "%s/frames/%s.jpg" % (self.data, msg_id)
            size = self.hal.capture(path, self.max_frame_bytes)
            if size == -1:
                self.hal.log(why("te_bigfram"))
            elif size > 0:
                from tack.frames import file_sha256

                frame = (path, size, file_sha256(path))
                body["photo"] = {"len": size, "sha256": frame[2]}
        seq = self.state.next_seq()
        try:
            payload = codec.encode_event(msg_id, self.device_id, seq, self.clock.now_ms(), "punch", body)
        except ValueError as exc:
            # A sensor gave something out of the protocol's range: the punch still counts.
            self.hal.log(why("te_nogps", exc))
            if frame is not None:
                os.remove(frame[0])
                frame = None
            body = {kind: credential}
            payload = codec.encode_event(msg_id, self.device_id, seq, self.clock.now_ms(), "punch", body)
        try:
            self.outbox.append(msg_id, "punch", payload, frame[0] if frame else None)
        except OutboxFull as exc:
            if frame is not None:
                os.remove(frame[0])
            self.hal.event("refused", {"why": "outbox_full", "seq": seq})
            self.hal.log(str(exc))
            self._show(_NOTICE, None)
            self.notice = self.t("outbox_full")
            return
        self.current = msg_id
        self.link.wake()
        self.hal.event("queued", {"id": msg_id, "seq": seq, "outbox": len(self.outbox)})
        self._show(_PENDING, None)

    # --- acks ---------------------------------------------------------------------------------

    def on_ack(self, ack, action):
        if ack["msg_id"] != self.current or action == "keep":
            return
        v = ack.get("verdict") or {}
        # Said in the terminal's language: what an accepted punch meant (cls, min, at), or
        # the reason code; the gateway's English text only where this firmware has no words.
        cls = v.get("cls")
        if cls:
            key = "verdict_" + cls
            at = v.get("at") or ""
            text = self.t(key, v["min"], at) if "min" in v else self.t(key, at)
        else:
            key = "reason_" + ack["reason"]
            text = self.t(key)
        if text == key:
            text = v.get("text") or ack["reason"]
        if v.get("leave"):
            text += self.t("verdict_leave")
        self.verdict = (bool(v.get("ok")), v.get("name"), text)
        self.current = None
        self._show(_VERDICT, None)

    def say(self, text):
        self.notice = text
        self.current = None
        self._show(_NOTICE, None)

    def on_command(self, name, payload):
        if name == "notice":  # must-read notices: for the main loop (tack.notices)
            self.notes_in = payload
            return
        self.hal.log(why("te_cmd", name))

    # --- screen -------------------------------------------------------------------------------

    def _show(self, mode, _):
        self.mode = mode
        self.mode_until = time.ticks_add(time.ticks_ms(), self.verdict_show_ms)

    def tick(self, now):
        if self.gps:
            for line in self.hal.read_gps_lines():
                self.gps.feed_line(line, now)
        if self.mode >= _VERDICT and time.ticks_diff(now, self.mode_until) > 0:  # _NOTICE, _ASK
            self.mode = _IDLE
        if self.mode == _PENDING and self.current not in self.outbox:
            self.mode = _IDLE

    def screen(self):
        clock = self.clock.hhmm()
        rows = [(0, "%s  %s" % (self.device_id, clock), {"invert": True})]
        if self.mode == _VERDICT and self.verdict is not None:
            ok, name, text = self.verdict
            rows.append((1, ("✓ " if ok else "✗ ") + (name or text), {"big": True}))
            rows.append((4, text if name else (self.t("accepted") if ok else self.t("refused")), {}))
        elif self.mode == _PENDING:
            if self.link.connected:
                rows.append((1, self.t("sending"), {"big": True}))
            else:
                rows.append((1, self.t("saved_waiting", len(self.outbox)), {"big": True}))
        elif self.mode >= _NOTICE:  # or _ASK, whose prompt is the notice
            rows.append((1, self.notice, {}))
            if self.notice == self.t("outbox_full"):
                rows.append((3, self.t("outbox_full_hint"), {}))
        else:
            rows.append((1, self.t("ready"), {"big": True}))
        gps = self.t("gps_fix") if self.gps and self.gps.fix(time.ticks_ms()) else self.t("gps_none")
        rows.append((7, "%s · %s" % (self.status_line(), gps), {}))
        return rows


def start(cfg, hal):
    return ClockTerminal(cfg, hal)
