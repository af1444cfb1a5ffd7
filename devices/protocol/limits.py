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
MAX_ID_CHARS = 64
MAX_DEVICE_ID_CHARS = 32
MAX_SITE_CHARS = 32
MAX_CREDENTIAL_CHARS = 32
# Sequence numbers and times must survive a round trip through JSON numbers on any peer:
# 2**53 is the largest integer a double represents exactly.
MAX_SAFE_INT = 2**53 - 1
