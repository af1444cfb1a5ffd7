"""Protocol v1 facts a running device does not need: topic names and the table of limits.

Tests and tools import this to compare the firmware with the reference (``devices.protocol``);
the applications do not, so none of it takes heap on a device. The topics a device uses are
built once by ``tack.link``.
"""

from tack import codec, codec_panel
from tack.codec import MAX_SAFE_INT, ProtocolError, valid_id

PROTOCOL_VERSION = 1
MAX_EVT_BYTES = 8192
MAX_STATE_BYTES = 1024
MAX_CMD_BYTES = 8192
MAX_FRAME_BYTES = 65536
MAX_FRAME_HEADER_BYTES = 512
MAX_ID_CHARS = 64
MAX_DEVICE_ID_CHARS = 32
MAX_SITE_CHARS = 32
MAX_BOOKING_CHARS = 64
MAX_BUTTON_MINUTES = 480
MAX_SCHEDULE_ITEMS = 24
MAX_LAT_E7 = 900000000
MAX_LON_E7 = 1800000000
MAX_GPS_ACC_M = 100000

# The codec's word lists as tuples (and MAX_SAFE_INT, re-exported with the other limits).
def reasons():
    """Every reason code, in order (tack/reasons.txt): read when asked, not held."""
    with open(codec.__file__.rsplit("/", 1)[0] + "/reasons.txt") as f:
        return tuple(line.strip() for line in f if line.strip())
TRANSIENT = tuple(codec.TRANSIENT.split())
BUTTONS = tuple(codec_panel.BUTTONS.split())
KINDS = tuple(codec_panel.KINDS.split())
QUERIES = tuple(codec_panel.QUERIES.split())

_TOPIC_KINDS = ("evt", "cmd", "state")


def topic(site, dev, kind, name):
    """``tack/v1/{site}/{dev}/{kind}/{name}``; ValueError for a part that would make it
    ambiguous (a wildcard, a slash, an empty level)."""
    if not valid_id(site, MAX_SITE_CHARS):
        raise ValueError("site %r must be 1-32 of A-Z a-z 0-9 _ -" % (site,))
    if not valid_id(dev, MAX_DEVICE_ID_CHARS):
        raise ValueError("device id %r must be 1-32 of A-Z a-z 0-9 _ -" % (dev,))
    if kind not in _TOPIC_KINDS:
        raise ValueError("topic kind %r must be evt, cmd or state" % (kind,))
    if not valid_id(name, MAX_SITE_CHARS):
        raise ValueError("topic name %r must be 1-32 of A-Z a-z 0-9 _ -" % (name,))
    return "tack/v1/%s/%s/%s/%s" % (site, dev, kind, name)


def parse_topic(value):
    """``(site, dev, kind, name)``, or ProtocolError ``bad_topic``."""
    parts = value.split("/")
    if len(parts) != 6 or parts[0] != "tack" or parts[1] != "v1":
        raise ProtocolError("bad_topic", None, "topic %r is not tack/v1/{site}/{dev}/{kind}/{name}" % (value,))
    site, dev, kind, name = parts[2], parts[3], parts[4], parts[5]
    if kind not in _TOPIC_KINDS:
        raise ProtocolError("bad_topic", None, "topic %r: level 5 must be evt, cmd or state" % (value,))
    if not (valid_id(site, MAX_SITE_CHARS) and valid_id(dev, MAX_DEVICE_ID_CHARS) and valid_id(name, MAX_SITE_CHARS)):
        raise ProtocolError("bad_topic", None, "topic %r: site, device id and name must be 1-32 of A-Z a-z 0-9 _ -" % (value,))
    return site, dev, kind, name
