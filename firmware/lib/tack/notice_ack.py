"""A must-read notice acknowledged: its ``receipt`` event into the outbox (docs/notices.md,
docs/firmware.md "Notices"). Loaded by ``tack.notices`` after the press, with the screen's
code off the heap, and let go at once: a 64 KiB terminal has no room for both.
"""

from tack import codec, why
from tack.outbox import OutboxFull


def send(dev):
    """The person acknowledged the first notice of ``dev.notes_in`` (marked ``ack`` by
    tack.notice_screen): its receipt goes into the outbox, its id is remembered as read, and
    it leaves ``dev.notes_in``. If the receipt cannot be kept, the notice stays unread."""
    fresh = dev.notes_in
    nid = fresh[0].pop("ack") and fresh[0]["id"]
    try:
        msg_id = codec.new_msg_id()
        seq = dev.state.next_seq()
        # The event as codec.encode_event writes it (a test holds the two equal), without the
        # codec's detour through tack.codec_panel and tack.codec_notice. nid is an identifier:
        # decode_notice checked it.
        payload = '{"v":1,"id":"%s","dev":"%s","seq":%d,"ts":%d,"kind":"receipt","body":{"notice":"%s"}}'
        dev.outbox.append(msg_id, "receipt", (payload % (msg_id, dev.device_id, seq, dev.clock.now_ms(), nid)).encode())
    except OutboxFull as exc:
        dev.hal.log(str(exc))
        dev.hal.event("refused", {"why": "outbox_full"})
        return
    except MemoryError:
        dev.hal.log(why("ns_nomem"))
        return
    dev.link.wake()
    sent = getattr(dev, "sent", None)  # a panel says its answer ("Read: thank you") itself
    if sent is not None:
        sent[msg_id] = ("receipt", None)
    dev.hal.event("queued", {"id": msg_id, "seq": seq, "kind": "receipt", "notice": nid})
    dev.notes_read = getattr(dev, "notes_read", []) + [nid]
    dev.notes_in = fresh[1:]
