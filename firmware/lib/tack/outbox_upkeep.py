"""The outbox's occasional work: reading its file at start-up, and compaction.

``Outbox.open()`` and ``Outbox.compact()`` import this module for the call and unload it
after, so its code needs no heap while the device runs. It works on the outbox's file,
buffer and index directly (the record format and the recovery rules are in tack/outbox.py's
docstring; the constants below are that format's).
"""

import binascii
import os
import struct

from micropython import const

from tack import outbox, why

_HDR = const(9)
_CHUNK = const(512)
_T_APPEND = const(0x41)
_T_TOMB = const(0x54)
_MAX_ID = const(64)
_MAX_DATA = const(3 + 64 + 32 + 255 + 8192)
_ENTRY = const(10)


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def recover(box):
    """Recover and index the outbox's file; see Outbox.open()."""
    path = box.path
    tmp = path + ".tmp"
    if _exists(tmp):
        if _exists(path):
            os.remove(tmp)  # the rename never happened: the old file is complete
        else:
            os.rename(tmp, path)  # the old file was already gone: tmp is complete
    if not _exists(path):
        open(path, "wb").close()
    box._f = open(path, "r+b")
    box._idx[0:] = b""
    box._live = 0
    end = os.stat(path)[6]
    damaged, truncated = scan(box, end)
    box._size = end - truncated
    compacted = False
    if damaged or truncated or box._worth_compacting():
        try:
            compact(box)
            compacted = True
        except OSError:
            # No room for the rewrite: appends go at the end of the valid data and
            # overwrite a torn tail; the next open() tries again.
            pass
    return {"records": len(box), "damaged": damaged, "truncated_bytes": truncated, "compacted": compacted}


def scan(box, end):
    """Index the valid records of the first ``end`` bytes; returns (damaged stretches, bytes
    of a torn tail). A later tombstone removes its append; a repeated append is ignored."""
    damaged = 0
    bad_at = -1
    pos = 0
    while pos < end:
        rec = _check(box, pos, end)
        if rec is None:
            if bad_at < 0:
                bad_at = pos
            pos = _next_magic(box, pos + 1, end)
            continue
        if bad_at >= 0:
            damaged += 1
            bad_at = -1
        kind, size, idb = rec
        i = box._find(idb)
        if kind == _T_APPEND:
            if i < 0:
                box._add(idb, pos, size)
                box._live += size
        elif i >= 0:
            box._drop(i)
        pos += size
    return damaged, (end - bad_at if bad_at >= 0 else 0)


def _check(box, pos, end):
    """The record at ``pos`` as (type, size, id bytes), or None if none valid starts there."""
    if end - pos < _HDR:
        return None
    f = box._f
    buf = box._buf
    mv = box._mv
    f.seek(pos)
    if f.readinto(mv[:_HDR]) != _HDR or buf[0] != 0xF5 or buf[1] != 0xB1:
        return None
    kind = buf[2]
    length, crc = struct.unpack_from("<HI", buf, 3)
    if kind != _T_APPEND and kind != _T_TOMB:
        return None
    if length < 2 or length > _MAX_DATA or pos + _HDR + length > end:
        return None
    c = binascii.crc32(mv[2:5])
    n = min(length, _CHUNK)
    if f.readinto(mv[:n]) != n:
        return None
    il = buf[0]
    if il < 1 or il > _MAX_ID:
        return None
    if kind == _T_TOMB:
        if length != 1 + il:
            return None
    else:
        p = box._meta_len(n)
        if p is None or p > length:
            return None
    idb = bytes(mv[1 : 1 + il])
    c = binascii.crc32(mv[:n], c)
    left = length - n
    while left:
        n = min(left, _CHUNK)
        if f.readinto(mv[:n]) != n:
            return None
        c = binascii.crc32(mv[:n], c)
        left -= n
    if c != crc:
        return None
    return kind, _HDR + length, idb


def _next_magic(box, pos, end):
    """Where the next record may start after damage: the next magic F5 B1, or ``end``."""
    f = box._f
    buf = box._buf
    while end - pos >= 2:
        f.seek(pos)
        n = f.readinto(box._mv[: min(_CHUNK, end - pos)])
        if n < 2:
            break
        i = buf.find(b"\xf5\xb1", 0, n)
        if i >= 0:
            return pos + i
        pos += n - 1  # the magic may straddle two chunks
    return end


def compact(box):
    """Copy the live records to ``<path>.tmp`` and rename it over the file; see Outbox.compact()."""
    f = box._file()
    tmp = box.path + ".tmp"
    outbox._remove_quiet(tmp)
    out = open(tmp, "wb")
    mv = box._mv
    try:
        for i in range(len(box)):
            off, left = box._entry(i)
            f.seek(off)
            while left:
                n = f.readinto(mv[: min(left, _CHUNK)])
                if not n:
                    raise OSError(why("ob_ended", off))
                out.write(mv[:n])
                left -= n
        out.flush()
        out.close()
    except (OSError, MemoryError):  # the old file and the index are untouched
        out.close()
        outbox._remove_quiet(tmp)
        raise
    f.close()
    box._f = None
    # From here the file is opened again at its next use, whatever fails: opening it needs
    # heap, and a full heap must put that off rather than leave the outbox closed.
    box._reopen = True
    try:
        outbox._replace(tmp, box.path)
    except (OSError, MemoryError):
        # Not renamed (the copy is still there): the old file and the index still agree.
        # Renamed before the error: carry on below with the new file.
        if _exists(tmp) or not _exists(box.path):
            if _exists(box.path):
                outbox._remove_quiet(tmp)
            else:  # half a FAT rename: only open() at the next boot knows what to keep
                box._reopen = False
            raise
    pos = 0
    for i in range(len(box)):
        struct.pack_into("<I", box._idx, i * _ENTRY + 4, pos)
        pos += box._entry(i)[1]
    box._size = pos
    box._live = pos
    # Last, and put off on a full heap: the index already matches the new file, so a
    # MemoryError here leaves an outbox that opens its file at its next use.
    box._reopen = True
    box._file()
