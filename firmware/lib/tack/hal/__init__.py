"""The hardware layer: the only code that knows whether it runs on a board or on a PC.

Both implementations offer the same small contract, so the applications never touch a pin, a
UART or a file that stands in for one:

- ``fds()``: objects the main loop can register with ``select.poll`` (empty on a board, where
  the loop wakes on a short timeout instead);
- ``read_inputs()``: a list of ``(kind, value)`` tuples since the last call, where kind is
  ``"card"`` (a card number), ``"emp"`` (an employee number typed on the keypad), ``"button"``
  (``book``, ``release``, ``extend``, ``checkin``, ``cancel``; ``leave``, the terminal's leave
  key; ``ok``, which acknowledges a must-read notice) or ``"quit"`` (Unix only);
- ``read_gps_lines()``: NMEA sentences received since the last call, as ``str`` lines;
  ``has_gps`` is False when there is no GPS at all (the NMEA reader is then never loaded and
  this is not called);
- ``capture(path, max_bytes)``: take a camera frame, write its JPEG bytes to ``path`` in chunks,
  return the size, ``0`` when there is no camera or no frame, ``-1`` when the frame is larger
  than ``max_bytes`` (nothing is written then); not called when ``has_camera`` is False;
- ``band(display, y, height)``: the top ``height`` px of ``display.buffer`` are the screen's
  rows ``y`` to ``y + height - 1``; a new screen comes as bands from the top down to
  ``tack.display.SCREEN_H``, then
- ``show(display, lines)``: the screen is complete (put it on the panel); ``lines`` is the same
  screen as text, for logs and tests;
- ``led(colour)`` (a meeting-room panel only): its status LED, ``green`` (free), ``red``
  (busy), ``amber`` (check-in open) or ``off`` (Unix: an ``EVT led`` line; board: an RGB LED on
  three GPIOs or one WS2812, ``pins.led`` / ``pins.neopixel``);
- ``event(name, fields)``: a machine-readable line about what the device did (Unix: stdout,
  read by the test suite; board: the serial log);
- ``log(text)``: a line for people.

The Unix HAL reads inputs from stdin, NMEA from a file that a GPS simulator appends to, frames
from a JPEG file, and writes the screen to a PNG file. The board HAL drives an ESP32-class
board: a UART card reader, a UART GPS, buttons on pins, an SSD1680 e-paper over SPI and an
optional camera module.
"""


def make(cfg):
    if cfg["hal"] == "board":
        from tack.hal.board import BoardHal

        return BoardHal(cfg)
    if cfg["gps_path"] or cfg["camera_path"] or cfg["app"] == "meeting_panel":
        from tack.hal.unix_sensors import UnixSensorHal

        return UnixSensorHal(cfg)
    from tack.hal.unix import UnixHal

    return UnixHal(cfg)
