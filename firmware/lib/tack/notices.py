"""Must-read notices on both devices (docs/notices.md; docs/firmware.md, "Notices"): the steps,
taken from the device's main loop, when ``dev.notes_in`` holds something to do.

- a ``cmd/notice`` payload (bytes): tack.notice_read reads it and wraps the texts;
- the unread notices with the first marked ``ack`` (a person acknowledged it on
  tack.notice_screen): tack.notice_ack sends its receipt;
- the unread notices (read, left after an acknowledgement, or put aside on flash for a punch:
  then ``notes_in`` is that file's path): tack.notice_screen shows them, or is let go when
  none is left.

Each module is loaded for its step and let go before the next, and this one is loaded only
for the step: a 64 KiB terminal has about 5 KB to spare beside its punches, too little for
them together. Even so, a 64 KiB terminal has too little room for a notice beside its punches
(80 KiB is enough on the 64-bit Unix port): with less than 8 KB free the notice is not shown, a log line says why, and
it stays unread at the gateway (``tack notices`` lists it). On a heap too full for a step,
``dev.notes_in`` keeps what is left to do for a later pass of the loop.
"""

import gc
import json
import time

from micropython import const

from tack import unload, why

_MIN_FREE = const(8192)  # bytes of heap free the notice steps need (measured: about 6 KB)
_TRIES = const(5)  # a heap short of that is looked at again this many times...
_RETRY_MS = const(2000)  # ...this far apart: right after a connect it is busiest...
_RETRY_HEAP = const(70 * 1024)  # ...on a heap this big; a smaller one never has the room


def step(dev):
    """One step; this module is let go after it."""
    try:
        gc.collect()
        if dev.notes is None and gc.mem_free() < _MIN_FREE:
            # Short of heap: on a big enough heap it may be the moment (a cmd/notice comes in
            # with the connect, its code and cmd/time), so look again a few times, keeping the
            # payload. Still short, or a heap that is small anyway (a 64 KiB terminal, which
            # must not hold the payload while punches need the room): said in the log, and the
            # notice stays unread at the gateway rather than the device running out of memory
            # at the door.
            if dev.notes_tries < _TRIES and gc.mem_free() + gc.mem_alloc() >= _RETRY_HEAP:
                dev.notes_tries += 1
                dev.notes_wait = time.ticks_add(time.ticks_ms(), _RETRY_MS)
                return
            dev.hal.log(why("ns_small", gc.mem_free()))
            dev.notes_in = None
            dev.notes_tries = 0
            dev.notes_wait = None
            return
        dev.notes_tries = 0
        dev.notes_wait = None
        if type(dev.notes_in) is str:  # put aside on flash for a punch (tack.notice_screen)
            with open(dev.notes_in) as f:
                dev.notes_in = json.load(f)
        if type(dev.notes_in) is not list:  # read it first, then let the reader go
            gc.collect()
            from tack import notice_read

            notice_read.read(dev)
            del notice_read
            unload("tack.notice_read")
            if dev.notes_in is None:  # unreadable: what is shown stays
                return
        elif "ack" in dev.notes_in[0]:
            gc.collect()
            from tack import notice_ack

            notice_ack.send(dev)
            del notice_ack
            unload("tack.notice_ack")
        gc.collect()
        if dev.notes_in or dev.notes is not None:
            from tack import notice_screen

            notice_screen.show(dev, dev.notes_in)
        dev.notes_in = None
    except MemoryError:
        if dev.notes is None:
            unload("tack.notice_screen")
        unload("tack.codec_notice")
        unload("tack.notice_read")
        unload("tack.notice_ack")
    finally:
        unload("tack.notices")
