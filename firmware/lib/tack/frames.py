"""Camera frames: their SHA-256 and their ``evt/frame`` publish, for a device with a camera.

Imported only when there is a frame to handle, so a terminal without a camera never loads it.
"""

import hashlib
import os
from binascii import hexlify

from tack import codec, why

_CHUNK = 512


def file_sha256(path):
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(buf if n == _CHUNK else buf[:n])
    return hexlify(h.digest()).decode()


def publish(link, msg_id, frame):
    """Send the frame file of outbox message ``msg_id`` on evt/frame, before its punch (both
    QoS 1, so the broker delivers them to the gateway in that order). A frame that is gone
    is logged, and the punch goes without it."""
    try:
        size = os.stat(frame)[6]
    except OSError:
        link.hal.log(why("li_nofram", frame))
        return
    header = codec.frame_header(msg_id, link.dev, size, file_sha256(frame))
    try:
        link.client.publish_parts(link.base + "evt/frame", [header, (frame, 0, size)], 1)
    except ValueError as exc:  # the file vanished between stat and send
        link.hal.log(why("li_frame", frame, exc))
