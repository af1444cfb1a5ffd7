"""The hardware layer on an ESP32-class board.

Wiring is configured under ``pins`` in config.json (pin numbers are the board's GPIO numbers)::

    {"card_uart": [1, 16, 17],          UART id, rx, tx: an RDM6300-style 125 kHz reader
     "gps_uart": [2, 4, 5],             UART id, rx, tx: any NMEA GPS at 9600 baud
     "spi": [1, 18, 23],                SPI id, sck, mosi
     "epd": [15, 27, 26, 25],           cs, dc, rst, busy of a 2.9" SSD1680 e-paper (128x296)
     "buttons": {"book": 32, "release": 33, "extend": 34, "checkin": 35},
     "keypad": [[13, 12, 14, 2], [19, 21, 22, 0]],   rows, cols of a 4x4 keypad (0-9, # = enter, * = clear,
                                        A = the leave key; # with nothing typed = OK)
     "led": [25, 26, 27]}               a panel's RGB LED: red, green, blue GPIOs (high = on); or
     "neopixel": 4                      the data pin of one WS2812 (the ``neopixel`` module)

Every part is optional: a panel has no card reader, a terminal may have no keypad. The camera
is the ``camera`` module of ESP32-CAM MicroPython builds when it is present.
"""

import time

import machine

_KEYS = "123A456B789C*0#D"
# LED colours as (r, g, b) for a WS2812; a GPIO LED lights each channel that is not 0 (amber is
# red and green together).
_RGB = {"green": (0, 64, 0), "red": (64, 0, 0), "amber": (64, 24, 0), "off": (0, 0, 0)}
_DEBOUNCE_MS = 40


class BoardHal:
    name = "board"

    def __init__(self, cfg):
        pins = cfg["pins"] or {}
        self._card = _uart(pins.get("card_uart"), 9600)
        self._gps = _uart(pins.get("gps_uart"), 9600)
        self.has_gps = self._gps is not None
        self.has_camera = True  # capture() finds out whether the build has the camera module
        self._card_buf = b""
        self._gps_tail = b""
        self._buttons = []
        for name, num in (pins.get("buttons") or {}).items():
            pin = machine.Pin(num, machine.Pin.IN, machine.Pin.PULL_UP)
            self._buttons.append((name, pin, ButtonState(time.ticks_ms())))
        self._keypad = None
        if pins.get("keypad"):
            rows, cols = pins["keypad"]
            self._keypad = (
                [machine.Pin(r, machine.Pin.OUT, value=1) for r in rows],
                [machine.Pin(c, machine.Pin.IN, machine.Pin.PULL_UP) for c in cols],
            )
        self._typed = ""
        self._last_key = None
        # A panel's status LED: three GPIOs (red, green, blue), or one WS2812.
        self._led = [machine.Pin(p, machine.Pin.OUT, value=0) for p in pins.get("led") or ()]
        self._pixel = None
        if pins.get("neopixel") is not None:
            import neopixel

            self._pixel = neopixel.NeoPixel(machine.Pin(pins["neopixel"]), 1)
        self._epd = None
        if pins.get("spi") and pins.get("epd"):
            sid, sck, mosi = pins["spi"]
            spi = machine.SPI(sid, baudrate=4000000, sck=machine.Pin(sck), mosi=machine.Pin(mosi))
            self._epd = SSD1680(spi, *pins["epd"])

    def fds(self):
        return []

    def read_inputs(self):
        events = []
        card = self._read_card()
        if card:
            events.append(("card", card))
        now = time.ticks_ms()
        for name, pin, st in self._buttons:
            level = pin.value()
            if level != st.level and time.ticks_diff(now, st.changed) > _DEBOUNCE_MS:
                st.level = level
                st.changed = now
                if level == 0:
                    events.append(("button", name))
        key = self._scan_key()
        if key != self._last_key:
            self._last_key = key
            if key == "#" and self._typed:
                events.append(("emp", "E" + self._typed))
                self._typed = ""
            elif key == "#":  # nothing typed: OK, which acknowledges a must-read notice
                events.append(("button", "ok"))
            elif key == "*":
                self._typed = ""
            elif key == "A":  # the terminal's leave key, as a wired button named "leave" is
                events.append(("button", "leave"))
            elif key is not None and key.isdigit() and len(self._typed) < 16:
                self._typed += key
        return events

    def _read_card(self):
        # RDM6300 frame: STX, 10 hex digits (version byte + 4-byte card), 2 hex checksum, ETX.
        if self._card is None or not self._card.any():
            return None
        self._card_buf = (self._card_buf + self._card.read())[-28:]
        start = self._card_buf.find(b"\x02")
        if start < 0 or len(self._card_buf) < start + 14:
            return None
        frame = self._card_buf[start + 1 : start + 13]
        self._card_buf = self._card_buf[start + 14 :]
        try:
            data = bytes(int(frame[i : i + 2], 16) for i in range(0, 12, 2))
        except ValueError:
            return None
        check = 0
        for b in data[:5]:
            check ^= b
        if check != data[5]:
            return None
        return frame[2:10].decode().upper()

    def _scan_key(self):
        if self._keypad is None:
            return None
        rows, cols = self._keypad
        found = None
        for r, row in enumerate(rows):
            row.value(0)
            for c, col in enumerate(cols):
                if col.value() == 0:
                    found = _KEYS[r * 4 + c]
            row.value(1)
        return found

    def read_gps_lines(self):
        if self._gps is None or not self._gps.any():
            return []
        data = self._gps_tail + self._gps.read()
        lines = data.split(b"\n")
        self._gps_tail = lines.pop()[-128:]
        out = []
        for ln in lines:
            try:
                out.append(ln.decode().strip())
            except UnicodeError:
                pass
        return out

    def capture(self, path, max_bytes):
        try:
            import camera  # type: ignore[import-not-found]  # ESP32-CAM builds only
        except ImportError:
            return 0
        frame = camera.capture()
        if not frame:
            return 0
        if len(frame) > max_bytes:
            return -1
        view = memoryview(frame)
        with open(path, "wb") as f:
            for i in range(0, len(frame), 512):
                f.write(view[i : i + 512])
        return len(frame)

    def band(self, display, y, height):
        if self._epd is not None:
            if y == 0:
                self._epd.begin()
            self._epd.band(display.buffer, display.width, y, height)

    def show(self, display, lines):
        if self._epd is not None:
            self._epd.refresh()

    def led(self, colour):
        """The panel's LED: ``green`` (free), ``red`` (busy), ``amber`` (check-in open), ``off``."""
        rgb = _RGB.get(colour, (0, 0, 0))
        for pin, level in zip(self._led, rgb):
            pin.value(1 if level else 0)
        if self._pixel is not None:
            self._pixel[0] = rgb
            self._pixel.write()

    def event(self, name, fields):
        pass

    def log(self, text):
        print(text)

    def sleep_ms(self, ms):
        time.sleep_ms(ms)


class ButtonState:
    """Debounce: the last stable level (1 = released, pulled up) and when it changed."""

    def __init__(self, now):
        self.level = 1
        self.changed = now


def _uart(spec, baud):
    if not spec:
        return None
    uid, rx, tx = spec
    return machine.UART(uid, baudrate=baud, rx=rx, tx=tx, timeout=0)


class SSD1680:
    """A 2.9" 128x296 e-paper. The app draws landscape (296x128); rows are rotated on the way."""

    def __init__(self, spi, cs, dc, rst, busy):
        self.spi = spi
        self.cs = machine.Pin(cs, machine.Pin.OUT, value=1)
        self.dc = machine.Pin(dc, machine.Pin.OUT, value=0)
        self.rst = machine.Pin(rst, machine.Pin.OUT, value=1)
        self.busy = machine.Pin(busy, machine.Pin.IN)

    def _cmd(self, c, data=None):
        self.dc.value(0)
        self.cs.value(0)
        self.spi.write(bytes([c]))
        self.cs.value(1)
        if data:
            self.dc.value(1)
            self.cs.value(0)
            self.spi.write(bytes(data))
            self.cs.value(1)

    def _wait(self):
        deadline = time.ticks_add(time.ticks_ms(), 5000)
        while self.busy.value() and time.ticks_diff(deadline, time.ticks_ms()) > 0:
            time.sleep_ms(10)

    def begin(self):
        """Wake the panel for a new picture (its RAM is then written band by band)."""
        self.rst.value(0)
        time.sleep_ms(10)
        self.rst.value(1)
        self._wait()
        self._cmd(0x12)
        self._wait()
        self._cmd(0x01, [0x27, 0x01, 0x00])
        self._cmd(0x11, [0x03])  # x then y increment
        self._cmd(0x3C, [0x05])
        self._cmd(0x18, [0x80])

    def band(self, buf, width, y0, height):
        """Write landscape rows y0.. y0+height-1 (a multiple of 8 px, at a multiple of 8).

        Panel RAM is 128 wide (16 bytes a row) by 296 tall; landscape x becomes panel y and
        landscape y panel column 127 - y, so the band is a window a few bytes wide."""
        stride = (width + 7) // 8
        first = (127 - (y0 + height - 1)) >> 3  # panel RAM byte columns of the band
        last = (127 - y0) >> 3
        self._cmd(0x44, [first, last])
        self._cmd(0x45, [0x00, 0x00, 0x27, 0x01])
        self._cmd(0x4E, [first])
        self._cmd(0x4F, [0x00, 0x00])
        self._cmd(0x24)
        row = bytearray(last - first + 1)
        self.dc.value(1)
        self.cs.value(0)
        for x in range(width):
            for i in range(len(row)):
                row[i] = 0xFF
            for y in range(height):
                if buf[y * stride + (x >> 3)] & (0x80 >> (x & 7)):
                    yy = 127 - (y0 + y)
                    row[(yy >> 3) - first] &= ~(0x80 >> (yy & 7))
            self.spi.write(row)
        self.cs.value(1)

    def refresh(self):
        self._cmd(0x22, [0xF7])
        self._cmd(0x20)
        self._wait()
