"""The hardware layer on the MicroPython Unix port: files, pipes and stdout stand in for sensors.

Inputs come from stdin, one per line: ``card 04A1B2C3``, ``emp E1001``, ``button book``
(``button leave`` is the terminal's leave key), ``quit``. The GPS and the camera are files (``gps_path``, ``camera_path``; see
tack.hal.unix_sensors, which only a device that has them loads). The screen goes to
``screen_png`` (when set; written band by band, as it is drawn) and, as text, to stdout as an
``EVT`` line, which is how the test suite sees what a person would see.
"""

import json
import sys

from tack import why


class UnixHal:
    name = "unix"

    def __init__(self, cfg):
        self.screen_png = cfg["screen_png"]
        # The GPS and camera stand-ins are tack.hal.unix_sensors, loaded only when configured.
        self.has_gps = self.has_camera = False
        self._stdin_open = True

    def fds(self):
        return [sys.stdin] if self._stdin_open else []

    def read_inputs(self):
        line = sys.stdin.readline()
        if not line:
            self._stdin_open = False
            return [("quit", "")]
        parts = line.split()
        if not parts:
            return []
        kind = parts[0]
        value = parts[1] if len(parts) > 1 else ""
        if kind == "card" or kind == "emp" or kind == "button" or kind == "quit":
            return [(kind, value)]
        self.log(why("ha_input", line.strip()))
        return []

    def band(self, display, y, height):
        if self.screen_png:
            if y == 0:
                from tack import png
                from tack.display import SCREEN_H

                self._png = png.Writer(self.screen_png, display.width, SCREEN_H)
            self._png.rows(display.buffer, height)

    def show(self, display, lines):
        if self.screen_png:
            self._png.close()
            del self._png
        self.event("screen", {"lines": lines})

    def event(self, name, fields):
        fields["e"] = name
        out = sys.stdout  # written in pieces: no copy of the whole line on the heap
        out.write("EVT ")
        json.dump(fields, out)
        out.write("\n")

    def log(self, text):
        sys.stdout.write("LOG " + text + "\n")

    def sleep_ms(self, ms):
        import time

        time.sleep_ms(ms)
