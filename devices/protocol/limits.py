"""Size and value limits of wire protocol v1, in one place.

Limits are checked before anything is allocated from a peer's numbers. A device on an
ESP32 has tens of kilobytes of heap, so the limits are set by what the firmware can hold.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
# An event envelope is a few hundred bytes; 8 KiB leaves room for later body fields without
# letting a peer make the gateway parse megabytes.
MAX_EVT_BYTES = 8192
MAX_STATE_BYTES = 1024
# Commands to a device (cmd/time, cmd/schedule) are parsed whole on the device: a full
# schedule of 24 bookings fits in 8 KiB, and the device's heap does not fit much more.
MAX_CMD_BYTES = 8192
MAX_ID_CHARS = 64
MAX_DEVICE_ID_CHARS = 32
MAX_SITE_CHARS = 32
MAX_CREDENTIAL_CHARS = 32
# Sequence numbers and times must survive a round trip through JSON numbers on any peer:
# 2**53 is the largest integer a double represents exactly.
MAX_SAFE_INT = 2**53 - 1
# A site's offset from UTC in minutes, as cmd/time carries it (UTC-12:00 ... UTC+14:00).
MIN_TZ_MIN, MAX_TZ_MIN = -720, 840

# Camera frames (evt/frame): a JSON header line, a newline, then the JPEG. A QVGA JPEG of a
# face at reader distance is 10-30 KiB; 64 KiB is what a device streams from flash without
# holding it in RAM, and what the gateway accepts per punch.
MAX_FRAME_BYTES = 65536
MAX_FRAME_HEADER_BYTES = 512
MAX_FRAME_PAYLOAD_BYTES = MAX_FRAME_HEADER_BYTES + 1 + MAX_FRAME_BYTES

# GPS positions travel as integers in 1e-7 degrees (about 1 cm): floats would print
# differently on MicroPython and CPython, and canonical bytes must be the same everywhere.
MAX_LAT_E7 = 900_000_000
MAX_LON_E7 = 1_800_000_000
MAX_GPS_ACC_M = 100_000
MAX_GPS_PROVIDER_CHARS = 16  # "gps", "network", "fused": a name, not a description

# Meeting-room panels.
MAX_BOOKING_CHARS = 64
MAX_BUTTON_MINUTES = 480
MAX_ROOM_CHARS = 64
MAX_TITLE_CHARS = 64
MAX_ORGANISER_CHARS = 64
MAX_SCHEDULE_ITEMS = 24
MAX_ROOM_RULE_MIN = 240  # a schedule's "open" and "rel", as rooms.* config allows

# Must-read notices (cmd/notice) and their receipts (evt/receipt). A device shows its pending
# notices one after another until a person acknowledges each; four is what a panel's or a
# terminal's screen can cycle through without the oldest being forgotten, and four items of
# the longest text still fit MAX_CMD_BYTES.
MAX_NOTICE_ITEMS = 4
MAX_NOTICE_ID_CHARS = 64
MAX_NOTICE_TITLE_CHARS = 64
MAX_NOTICE_TEXT_CHARS = 280
MAX_NOTICE_FROM_CHARS = 64
