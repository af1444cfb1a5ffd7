"""Stand-ins for hardware only some devices have, for the Unix hardware layer: a GPS and a
camera (loaded only when the config names them) and a meeting-room panel's LED (loaded for a
panel), so a terminal without them carries none of this code.

GPS sentences are read from ``gps_path``, a file a GPS simulator appends NMEA lines to (read
from where the last call stopped, like a UART). The camera is ``camera_path``, a JPEG file
copied in chunks as the frame. The LED is an ``EVT {"e": "led", "colour": …}`` line.
"""

import os

from tack.hal.unix import UnixHal

_CHUNK = 512


class UnixSensorHal(UnixHal):
    def __init__(self, cfg):
        super().__init__(cfg)
        self.gps_path = cfg["gps_path"]
        self.camera_path = cfg["camera_path"]
        self.has_gps = bool(self.gps_path)
        self.has_camera = bool(self.camera_path)
        self._gps_pos = 0
        self._gps_tail = ""

    def read_gps_lines(self):
        path = self.gps_path
        if not path:
            return []
        try:
            size = os.stat(path)[6]
        except OSError:
            return []
        if size < self._gps_pos:  # the trace was replaced: start again
            self._gps_pos = 0
        if size == self._gps_pos:
            return []
        with open(path) as f:
            f.seek(self._gps_pos)
            data = f.read(min(size - self._gps_pos, 2048))
        self._gps_pos += len(data)
        data = self._gps_tail + data
        lines = data.split("\n")
        self._gps_tail = lines.pop()
        return [ln.strip() for ln in lines if ln.strip()]

    def led(self, colour):
        # A panel's status LED (green, red, amber, off): an EVT line the tests read.
        self.event("led", {"colour": colour})

    def capture(self, path, max_bytes):
        src = self.camera_path
        if not src:
            return 0
        try:
            size = os.stat(src)[6]
        except OSError:
            return 0
        if size > max_bytes:
            return -1
        buf = bytearray(_CHUNK)
        with open(src, "rb") as fin, open(path, "wb") as fout:
            while True:
                n = fin.readinto(buf)
                if not n:
                    break
                fout.write(buf if n == _CHUNK else buf[:n])
        return size
