"""The flash outbox: what survives reopen, power loss and damage, and what a full outbox does."""

import gc
import os

from tack import outbox as outbox_mod
from tack.outbox import Outbox, OutboxFull


def _payload(i, size=150):
    head = b'{"v":1,"id":"m%d","kind":"punch","body":{"card":"' % i
    return head + b"C" * (size - len(head) - 3) + b'"}}'


def _mid(i):
    return "%032x" % (0x5EED0000 + i)


def _opened(tmp, name="ob", **kw):
    gc.collect()  # each Outbox preallocates its index in one piece: give it a tidy heap
    box = Outbox(tmp + "/" + name, **kw)
    report = box.open()
    return box, report


def _size(path):
    return os.stat(path)[6]


def _copy_prefix(src, dst, n):
    """Writes the first n bytes of src to dst, in chunks (no truncate() in MicroPython)."""
    with open(src, "rb") as a, open(dst, "wb") as b:
        while n:
            chunk = a.read(min(n, 256))
            b.write(chunk)
            n -= len(chunk)


def _cut_tail(path, drop):
    _copy_prefix(path, path + ".cut", _size(path) - drop)
    os.remove(path)
    os.rename(path + ".cut", path)


def _flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes((b ^ 0x40,)))


def test_append_read_remove_reopen(tmp):
    box, report = _opened(tmp)
    assert report == {"records": 0, "damaged": 0, "truncated_bytes": 0, "compacted": False}, report
    box.append("a1", "punch", b'{"x":1}')
    box.append("a2", "checkin", b'{"x":2}', frame=tmp + "/f2.jpg")
    box.append("a3", "button", b'{"x":3}')
    assert box.remove("a1") is True, "remove of a present id returns True"
    assert box.remove("a1") is False, "a second remove of the same id returns False"
    assert box.remove("nope") is False, "remove of an unknown id returns False"
    box.close()
    box, report = _opened(tmp)
    assert report["records"] == 2 and report["damaged"] == 0, report
    assert box.ids() == ["a2", "a3"], box.ids()
    assert "a2" in box and "a1" not in box, "membership follows the tombstone"
    assert box.read("a2") == ("checkin", b'{"x":2}', tmp + "/f2.jpg"), box.read("a2")
    assert box.read("a3") == ("button", b'{"x":3}', None), box.read("a3")
    assert box.ids(0, 1) == ["a2"] and len(box) == 2
    try:
        box.read("a1")
        raise AssertionError("read of a removed id must raise KeyError")
    except KeyError:
        pass
    box.close()


def test_order_is_append_order_after_removes_and_reappend(tmp):
    box, _ = _opened(tmp)
    for i in range(10):
        box.append(_mid(i), "punch", _payload(i))
    for i in (0, 4, 9):
        box.remove(_mid(i))
    box.append(_mid(4), "punch", _payload(4))  # an id may come back after its removal
    want = [_mid(i) for i in (1, 2, 3, 5, 6, 7, 8, 4)]
    assert box.ids() == want, box.ids()
    box.close()
    box, _ = _opened(tmp)
    assert box.ids() == want, "reopen keeps the order: %r" % box.ids()
    assert box.read(_mid(4))[1] == _payload(4)
    assert box.ids(2, 3) == want[2:5], "paging through ids"
    box.close()


def test_full_by_records_refuses_new_and_keeps_old(tmp):
    box, _ = _opened(tmp, max_records=5)
    for i in range(5):
        box.append(_mid(i), "punch", _payload(i))
    try:
        box.append(_mid(5), "punch", _payload(5))
        raise AssertionError("a sixth record must raise OutboxFull")
    except OutboxFull as exc:
        assert "full" in str(exc) and "nothing was dropped" in str(exc), str(exc)
    assert box.ids() == [_mid(i) for i in range(5)], "old records stay: %r" % box.ids()
    box.remove(_mid(0))
    box.append(_mid(5), "punch", _payload(5))  # room again after an ack
    box.close()
    box, _ = _opened(tmp, max_records=5)
    assert box.ids() == [_mid(i) for i in range(1, 6)], box.ids()
    box.close()


def test_full_by_bytes_compacts_first_then_refuses(tmp):
    limit = 9000 + 4 * 200
    box, _ = _opened(tmp, max_bytes=limit)
    box.compact_min_bytes = 1 << 30  # only the full-outbox path may compact here
    box.append("big", "punch", b"x" * 8000)
    n = 0
    try:
        while True:
            box.append(_mid(n), "punch", _payload(n))
            n += 1
    except OutboxFull as exc:
        assert "bytes" in str(exc), str(exc)
    assert box.bytes_used() <= limit, "the file stays within max_bytes"
    assert n >= 4 and len(box) == n + 1, (n, len(box))
    box.remove("big")  # dead bytes now: appends compact instead of refusing
    m = n
    try:
        while True:
            box.append(_mid(m), "punch", _payload(m))
            m += 1
    except OutboxFull:
        pass
    assert m - n > 30, "only %d more fitted: the removed record was not reclaimed" % (m - n)
    assert box.bytes_used() <= limit and box.ids() == [_mid(i) for i in range(m)], box.ids()
    box.close()


def test_torn_tail_is_truncated_and_reported(tmp):
    box, _ = _opened(tmp)
    for i in range(5):
        box.append(_mid(i), "punch", _payload(i))
    box.close()
    path = tmp + "/ob"
    _cut_tail(path, 7)
    box, report = _opened(tmp)
    assert report["truncated_bytes"] > 0 and report["damaged"] == 0, report
    assert report["records"] == 4 and report["compacted"], report
    assert box.ids() == [_mid(i) for i in range(4)], box.ids()
    box.append(_mid(4), "punch", _payload(4))  # the file is usable again
    box.close()
    box, report = _opened(tmp)
    assert report["truncated_bytes"] == 0 and report["damaged"] == 0, report
    assert box.ids() == [_mid(i) for i in range(5)], box.ids()
    assert box.read(_mid(4))[1] == _payload(4)
    box.close()


def test_bad_crc_in_last_record_counts_as_torn(tmp):
    box, _ = _opened(tmp)
    for i in range(3):
        box.append(_mid(i), "punch", _payload(i))
    box.close()
    path = tmp + "/ob"
    _flip(path, _size(path) - 2)
    box, report = _opened(tmp)
    assert report["records"] == 2 and report["truncated_bytes"] > 100, report
    assert box.ids() == [_mid(0), _mid(1)], box.ids()
    box.close()


def test_damaged_middle_record_is_skipped_later_ones_kept(tmp):
    box, _ = _opened(tmp)
    starts = []
    for i in range(6):
        starts.append(box.bytes_used())
        box.append(_mid(i), "punch", _payload(i))
    box.close()
    path = tmp + "/ob"
    _flip(path, starts[2] + 60)  # inside record 2's payload
    _flip(path, starts[4])  # record 4's magic
    box, report = _opened(tmp)
    assert report["damaged"] == 2 and report["truncated_bytes"] == 0, report
    assert report["records"] == 4 and report["compacted"], report
    want = [_mid(i) for i in (0, 1, 3, 5)]
    assert box.ids() == want, box.ids()
    for i in (0, 1, 3, 5):
        assert box.read(_mid(i))[1] == _payload(i), "record %d intact" % i
    box.close()
    box, report = _opened(tmp)
    assert report["damaged"] == 0 and box.ids() == want, (report, box.ids())
    box.close()


def test_damaged_length_field_does_not_swallow_later_records(tmp):
    box, _ = _opened(tmp)
    starts = []
    for i in range(4):
        starts.append(box.bytes_used())
        box.append(_mid(i), "punch", _payload(i))
    box.close()
    _flip(tmp + "/ob", starts[1] + 4)  # high byte of record 1's length: claims ~16 KB more
    box, report = _opened(tmp)
    assert report["damaged"] == 1, report
    assert box.ids() == [_mid(0), _mid(2), _mid(3)], box.ids()
    box.close()


def test_damaged_tombstone_brings_the_message_back_for_a_resend(tmp):
    box, _ = _opened(tmp)
    box.append("keep", "punch", b"k")
    box.append("gone", "punch", b"g")
    at = box.bytes_used()
    box.remove("gone")
    box.append("last", "punch", b"l")
    box.close()
    _flip(tmp + "/ob", at + 12)  # inside the tombstone's id
    box, report = _opened(tmp)
    assert report["damaged"] == 1, report
    assert box.ids() == ["keep", "gone", "last"], box.ids()
    box.close()


def test_read_detects_damage_after_open(tmp):
    box, _ = _opened(tmp)
    box.append("a", "punch", b"0123456789" * 2)
    box.append("b", "punch", b"0123456789" * 20)
    _flip(tmp + "/ob", 11)  # a's name length: its prefix now runs past the record
    _flip(tmp + "/ob", 29 + 9 + 100)  # in b's payload
    for mid in ("a", "b"):
        try:
            box.read(mid)
            raise AssertionError("read(%r) must notice bytes that no longer match" % mid)
        except ValueError as exc:
            assert "damaged" in str(exc), str(exc)
        assert box.remove(mid), "a damaged record can still be removed"
    box.close()


def test_compaction_keeps_exactly_the_live_records_and_shrinks(tmp):
    box, _ = _opened(tmp)
    box.compact_min_bytes = 1 << 30
    for i in range(40):
        box.append(_mid(i), "punch", _payload(i), frame=("/f%d.jpg" % i) if i % 3 == 0 else None)
    for i in range(0, 40, 2):
        box.remove(_mid(i))
    before = _size(tmp + "/ob")
    box.compact()
    after = _size(tmp + "/ob")
    want = [_mid(i) for i in range(1, 40, 2)]
    assert after < before // 2, (before, after)
    assert box.bytes_used() == after, "bytes_used() is the file size"
    assert box.ids() == want, box.ids()
    box.append("post", "punch", b"p")  # appends land after the compacted data
    box.close()
    box, report = _opened(tmp)
    assert report["damaged"] == 0 and report["truncated_bytes"] == 0, report
    assert box.ids() == want + ["post"], box.ids()
    for i in range(1, 40, 2):
        frame = ("/f%d.jpg" % i) if i % 3 == 0 else None
        assert box.read(_mid(i)) == ("punch", _payload(i), frame), i
    box.close()


def test_auto_compaction_when_dead_exceeds_live(tmp):
    box, _ = _opened(tmp)
    box.compact_min_bytes = 2048
    for i in range(30):
        box.append(_mid(i), "punch", _payload(i))
    peak = box.bytes_used()
    for i in range(25):
        box.remove(_mid(i))
    assert box.bytes_used() < peak // 2, (peak, box.bytes_used())
    assert box.ids() == [_mid(i) for i in range(25, 30)], box.ids()
    box.close()


def test_open_compacts_when_worthwhile(tmp):
    box, _ = _opened(tmp)
    box.compact_min_bytes = 1 << 30
    for i in range(120):  # over the default compact_min_bytes (16 KB)
        box.append(_mid(i), "punch", _payload(i))
    for i in range(118):
        box.remove(_mid(i))
    big = box.bytes_used()
    box.close()
    box, report = _opened(tmp)
    assert report["compacted"] and report["records"] == 2, report
    assert box.bytes_used() < big // 4, (big, box.bytes_used())
    box.close()


class _Crash(Exception):
    pass


def test_crash_before_rename_old_file_wins(tmp):
    box, _ = _opened(tmp)
    for i in range(10):
        box.append(_mid(i), "punch", _payload(i))
    box.remove(_mid(3))
    saved = outbox_mod._replace

    def crash(src, dst):
        raise _Crash()

    outbox_mod._replace = crash
    try:
        box.compact()
        raise AssertionError("the simulated crash did not happen")
    except _Crash:
        pass
    finally:
        outbox_mod._replace = saved
    assert _size(tmp + "/ob.tmp") > 0, "the crash left the temporary file"
    _cut_tail(tmp + "/ob.tmp", 40)  # and it may even be incomplete
    box2, report = _opened(tmp)
    want = [_mid(i) for i in range(10) if i != 3]
    assert box2.ids() == want, box2.ids()
    assert report["damaged"] == 0 and report["truncated_bytes"] == 0, report
    try:
        os.stat(tmp + "/ob.tmp")
        raise AssertionError("the leftover temporary file must be deleted")
    except OSError:
        pass
    box2.close()


def test_crash_after_old_file_removed_new_file_wins(tmp):
    box, _ = _opened(tmp)
    for i in range(10):
        box.append(_mid(i), "punch", _payload(i))
    box.remove(_mid(0))
    saved = outbox_mod._replace

    def crash(src, dst):  # the FAT fallback, dying between its two steps
        os.remove(dst)
        raise _Crash()

    outbox_mod._replace = crash
    try:
        box.compact()
    except _Crash:
        pass
    finally:
        outbox_mod._replace = saved
    box2, report = _opened(tmp)
    assert box2.ids() == [_mid(i) for i in range(1, 10)], box2.ids()
    assert _size(tmp + "/ob") > 0 and report["damaged"] == 0, report
    box2.append("more", "punch", b"m")
    assert box2.ids()[-1] == "more"
    box2.close()


def test_frame_file_deleted_on_remove(tmp):
    frame = tmp + "/shot.jpg"
    with open(frame, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0jpeg")
    box, _ = _opened(tmp)
    box.append("p1", "checkin", b"{}", frame=frame)
    box.append("p2", "checkin", b"{}", frame=tmp + "/never-written.jpg")
    assert os.stat(frame)[6] == 8
    assert box.remove("p1")
    try:
        os.stat(frame)
        raise AssertionError("remove() must delete the message's frame file")
    except OSError:
        pass
    assert box.remove("p2"), "a frame file that is already gone does not stop remove()"
    box.close()


def test_bad_input_is_refused(tmp):
    box, _ = _opened(tmp)
    bad = [
        ("", "punch", b"x", None),
        ("x" * 65, "punch", b"x", None),
        ("has space", "punch", b"x", None),
        ("-lead", "punch", b"x", None),
        (123, "punch", b"x", None),
        ("ok", "", b"x", None),
        ("ok", "p/q", b"x", None),
        ("ok", "punch", b"", None),
        ("ok", "punch", "text", None),
        ("ok", "punch", b"x" * 8193, None),
        ("ok", "punch", b"x", ""),
        ("ok", "punch", b"x", "/" + "f" * 255),
    ]
    for args in bad:
        try:
            box.append(*args)
            raise AssertionError("append%r must raise ValueError" % (args,))
        except ValueError:
            pass
    box.append("x" * 64, "punch", b"x" * 8192)
    box.append("dup", "punch", b"1")
    try:
        box.append("dup", "punch", b"2")
        raise AssertionError("a second append of a live id must raise")
    except ValueError as exc:
        assert "already" in str(exc), str(exc)
    assert len(box) == 2 and box.read("dup")[1] == b"1"
    assert box.remove(None) is False and (None in box) is False
    box.close()
    try:
        box.append("late", "punch", b"x")
        raise AssertionError("append on a closed outbox must raise")
    except RuntimeError as exc:
        assert "open()" in str(exc), str(exc)


def test_file_overhead_per_record(tmp):
    box, _ = _opened(tmp)
    mid = _mid(1)
    box.append(mid, "punch", _payload(1))
    used = box.bytes_used()
    assert used == 150 + 9 + 3 + len(mid) + 5, used  # header 9, three length bytes, id, name
    box.remove(mid)
    assert box.bytes_used() - used == 9 + 1 + len(mid), "a tombstone is header + id"
    box.close()


def _fill(box, n):
    for i in range(n):
        box.append(_mid(i), "punch", _payload(i))


def test_500_records_fit_a_small_heap(tmp):
    gc.collect()
    base = gc.mem_alloc()
    box, _ = _opened(tmp)
    _fill(box, 500)
    gc.collect()
    used = gc.mem_alloc() - base
    assert used < 12 * 1024, "500 live records take %d bytes of heap" % used
    box.close()
    gc.collect()
    box, report = _opened(tmp)
    gc.collect()
    used = gc.mem_alloc() - base
    assert report["records"] == 500, report
    assert used < 12 * 1024, "500 records reopened take %d bytes of heap" % used
    assert box.ids(0, 1) == [_mid(0)] and box.read(_mid(499))[1] == _payload(499)
    print("heap for 500 live records: %d bytes; file %d bytes" % (used, box.bytes_used()))
    box.close()


def test_1000_append_remove_cycles_keep_heap_bounded(tmp):
    box, _ = _opened(tmp)
    box.compact_min_bytes = 4096
    for i in range(20):
        box.append("keep%d" % i, "punch", _payload(i))
    gc.collect()
    base = gc.mem_alloc()
    top = 0
    biggest_file = 0
    for i in range(1000):
        mid = _mid(i)
        box.append(mid, "punch", _payload(i))
        assert box.read(mid)[1] == _payload(i)
        assert box.remove(mid)
        biggest_file = max(biggest_file, box.bytes_used())
        if i % 50 == 0:
            gc.collect()
            top = max(top, gc.mem_alloc() - base)
    gc.collect()
    grown = gc.mem_alloc() - base
    assert grown < 2048 and top < 4096, "heap grew by %d (peak %d)" % (grown, top)
    assert biggest_file < 3 * 4096 + 4000, "compaction keeps the file small: %d" % biggest_file
    assert box.ids() == ["keep%d" % i for i in range(20)], box.ids()
    box.close()
    box, report = _opened(tmp)
    assert report["records"] == 20 and report["damaged"] == 0, report
    box.close()


def test_out_of_memory_while_compacting_puts_it_off_and_loses_nothing(tmp):
    # A drain of many acks is when the heap is fullest: compaction (a module loaded, a copy
    # made) failing for memory must leave the outbox as it was and be tried again later.
    box, _ = _opened(tmp)
    box.compact_min_bytes = 2048
    for i in range(30):
        box.append(_mid(i), "punch", _payload(i))
    real = outbox_mod._replace
    calls = []

    def before_rename(src, dst):
        calls.append("before")
        raise MemoryError("memory allocation failed")

    def after_rename(src, dst):
        calls.append("after")
        real(src, dst)
        raise MemoryError("memory allocation failed")

    try:
        outbox_mod._replace = before_rename
        for i in range(20):
            assert box.remove(_mid(i)), "a remove must not fail because compaction did"
        assert calls, "compaction was not attempted"
        assert box.ids() == [_mid(i) for i in range(20, 30)], box.ids()
        grown = box.bytes_used()
        outbox_mod._replace = after_rename
        box.remove(_mid(20))
        assert "after" in calls, calls
        assert box.bytes_used() < grown, "renamed before the error: the compaction stands"
    finally:
        outbox_mod._replace = real
    for i in range(21, 25):
        box.remove(_mid(i))
    assert box.ids() == [_mid(i) for i in range(25, 30)], box.ids()
    box.close()
    again, _ = _opened(tmp)
    assert again.ids() == [_mid(i) for i in range(25, 30)], again.ids()
    for i in range(25, 30):
        assert again.read(_mid(i))[1] == _payload(i), "record %d intact" % i
    again.close()


def test_out_of_memory_opening_the_compacted_file_puts_that_off_too(tmp):
    # The last step of a compaction opens the new file: a heap too full for the file object
    # must not leave the outbox closed (every later call would fail until a reboot).
    import builtins

    box, _ = _opened(tmp)
    box.compact_min_bytes = 2048
    for i in range(30):
        box.append(_mid(i), "punch", _payload(i))
    real = builtins.open
    failed = []

    def full_heap(path, mode="r"):
        if mode == "r+b" and not failed:
            failed.append(path)
            raise MemoryError("memory allocation failed")
        return real(path, mode)

    try:
        builtins.open = full_heap
        for i in range(20):
            assert box.remove(_mid(i)), "a remove must not fail because compaction did"
    finally:
        builtins.open = real
    assert failed, "the reopen was not reached"
    assert _mid(25) in box, "the outbox still answers for what it holds"
    assert box.ids() == [_mid(i) for i in range(20, 30)], box.ids()
    box.append(_mid(30), "punch", _payload(30))
    assert box.read(_mid(30))[1] == _payload(30)
    box.close()
    again, _ = _opened(tmp)
    assert again.ids() == [_mid(i) for i in range(20, 31)], again.ids()
    again.close()


class _FullHeap(bytearray):
    """An index whose next growth finds no heap."""

    def extend(self, data):
        raise MemoryError("memory allocation failed, allocating 80 bytes")


def test_an_append_without_heap_for_its_index_writes_nothing(tmp):
    # The index grows before the record is written: a heap too full for it refuses the punch
    # (the device says "try again") rather than leaving a record on flash the index lacks.
    box, _ = _opened(tmp)
    for i in range(8):  # one growth step: the index is full now
        box.append(_mid(i), "punch", _payload(i))
    used = box.bytes_used()
    full = _FullHeap(box._idx)
    box._idx, box._cap = full, len(full)
    try:
        box.append(_mid(8), "punch", _payload(8))
    except MemoryError:
        pass
    else:
        raise AssertionError("the append went through without room in its index")
    assert box.bytes_used() == used, "nothing was written"
    box._idx = bytearray(full)
    box.append(_mid(8), "punch", _payload(8))  # the heap is back: it goes through
    box.close()
    again, report = _opened(tmp)
    assert again.ids() == [_mid(i) for i in range(9)], again.ids()
    assert report["damaged"] == 0, report
    again.close()
