"""Drives tack.outbox from outside: the power-loss test kills it, the benchmark times it.

    micropython outbox_driver.py write PATH ROUND [KEEP]   append/remove until killed, logging
    micropython outbox_driver.py check PATH ROUND   reopen, list what is there, prove it writable
    micropython outbox_driver.py bench PATH         append/remove rates, heap, bytes per record

``write`` prints ``a ID`` before an append and ``A ID`` once it returned (the record is then
durable), ``r ID``/``R ID`` around a remove and ``c``/``C`` around an explicit compaction, one
line each, flushed, so the killer knows which steps completed. It keeps at most KEEP messages
(default 25; removing the oldest, as acks would) and compacts every 11 appends, so a kill lands
in every phase: mid-append, mid-tombstone and mid-compaction (long ones with a large KEEP).
"""

import gc
import json
import sys
import time

from tack.outbox import Outbox



def _payload(mid):
    return b'{"v":1,"id":"%s","kind":"punch","body":{"card":"04A1B2C3%s"}}' % (
        mid.encode(),
        b"0" * 60,
    )


def _say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def write(path, round_no, keep):
    box = Outbox(path)
    box.compact_min_bytes = 2048
    box.open()
    n = 0
    while True:
        mid = "w%sx%d" % (round_no, n)
        _say("a " + mid)
        box.append(mid, "punch", _payload(mid))
        _say("A " + mid)
        if len(box) > keep:
            old = box.ids(0, 1)[0]
            _say("r " + old)
            box.remove(old)
            _say("R " + old)
        if n % 11 == 10:
            _say("c")
            box.compact()
            _say("C")
        n += 1


def check(path, round_no):
    box = Outbox(path)
    report = box.open()
    _say("report " + json.dumps(report))
    # In pages: a list of 400 ids alone would not fit a 64 KB heap on a 64-bit port.
    for start in range(0, len(box), 50):
        for mid in box.ids(start, 50):
            name, payload, _ = box.read(mid)
            if name != "punch" or payload != _payload(mid):
                _say("bad " + mid)
            _say("I " + mid)
    probe = "probe%s" % round_no
    box.append(probe, "punch", _payload(probe))
    box.close()
    box.open()
    if box.ids(len(box) - 1) != [probe] or not box.remove(probe):
        _say("bad probe")
    box.close()
    _say("OK")


def bench(path):
    gc.collect()
    base = gc.mem_alloc()
    box = Outbox(path)
    box.open()
    payload = b"p" * 150
    t = time.ticks_us()
    for i in range(500):
        box.append("%032x" % (0xC0FFEE00 + i), "punch", payload)
    append_us = time.ticks_diff(time.ticks_us(), t)
    size = box.bytes_used()
    box.close()
    gc.collect()
    t = time.ticks_us()
    box.open()
    open_us = time.ticks_diff(time.ticks_us(), t)
    gc.collect()
    heap = gc.mem_alloc() - base
    box.compact_min_bytes = 1 << 30  # time removes alone
    t = time.ticks_us()
    for _ in range(500):
        box.remove(box.ids(0, 1)[0])
    remove_us = time.ticks_diff(time.ticks_us(), t)
    print(
        json.dumps(
            {
                "append_per_s": 500 * 1000000 // append_us,
                "remove_per_s": 500 * 1000000 // remove_us,
                "open_500_ms": open_us // 1000,
                "heap_500_live_bytes": heap,
                "file_bytes_per_150b_record": size // 500,
                "tombstone_bytes": (box.bytes_used() - size) // 500,
            }
        )
    )
    box.close()


def main(argv):
    if len(argv) >= 4 and argv[1] == "write":
        write(argv[2], argv[3], int(argv[4]) if len(argv) > 4 else 25)
    elif len(argv) >= 4 and argv[1] == "check":
        check(argv[2], argv[3])
    elif len(argv) >= 3 and argv[1] == "bench":
        bench(argv[2])
    else:
        print(__doc__)
        return 2
    return 0


sys.exit(main(sys.argv))
