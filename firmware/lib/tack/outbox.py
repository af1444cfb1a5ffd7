"""The device's flash outbox: events wait here until the gateway has acknowledged them.

A message leaves the outbox only when the app calls ``remove()`` after the gateway's
application-level ack (protocol section 5: ``accepted``, ``duplicate`` or a final rejection).
Power loss, a reboot or a lost connection never lose a message that ``append()`` returned for,
and the resend carries the same bytes, so the gateway can answer ``duplicate``.

File format (version 1)
-----------------------
One append-only log file, no file header; it is a sequence of records::

    offset size
    0      2    magic  F5 B1      (0xF5 never occurs in UTF-8, so never inside a JSON payload)
    2      1    type   0x41 "A" = append, 0x54 "T" = tombstone
    3      2    length of data, unsigned little-endian (at most _MAX_DATA)
    5      4    CRC-32 (binascii.crc32) over the type byte, the two length bytes and data, LE
    9      len  data

    append data:    id_len u8, id (ASCII), name_len u8, name, frame_len u8, frame path, payload
    tombstone data: id_len u8, id

The second magic byte is the format version: a later format changes it, and this code treats
such records as damage. A tombstone names an earlier append; a tombstone whose id is not live
(its append was damaged, or the id was never there) is ignored. An append for an id that is
already live is ignored too (the first one keeps its place).

Recovery (``open()``)
---------------------
- A record that is short or fails its CRC at the end of the file is a write torn by power loss:
  the bytes are dropped and counted in ``truncated_bytes``.
- A bad record in the middle is skipped by searching forward for the next magic that starts a
  record with a valid CRC; each skipped stretch counts once in ``damaged`` (it held at least
  one record). A later valid record is never dropped. If the damaged bytes held a tombstone,
  its message comes back and is resent: the gateway answers ``duplicate`` and the app removes it.
- Either repair rewrites the file (compaction), since MicroPython cannot truncate a file.
- Compaction writes ``<path>.tmp`` and renames it over ``<path>``. A leftover ``<path>.tmp``
  means a crash during compaction: if ``<path>`` still exists, **the old file wins** (the rename
  had not happened, so the temporary file may be incomplete) and the temporary file is deleted.
  If ``<path>`` is missing, the crash came between deleting the old file and renaming the new
  one (only on file systems whose rename will not replace, such as FAT; littlefs and POSIX
  replace atomically), which happens only after the new file was complete: **the temporary
  file wins** and is renamed into place.

Full outbox
-----------
``append()`` refuses a new message with ``OutboxFull`` when it would exceed ``max_records``
live messages or make the file larger than ``max_bytes`` (after compacting away dead bytes, if
there are any). Old messages are never dropped to make room: they are records people are
waiting for, while the new event is still in front of the person, who can be told to try later.
Compaction needs free flash for a temporary copy of the live records (at most ``max_bytes``).

RAM: per live message the index keeps 10 bytes (CRC-32 of the id, offset, record size) in one
``bytearray`` that grows 8 entries at a time; ids, names and payloads are read back from the
file when needed.
"""

import gc
import binascii
import os
import struct

from micropython import const

from tack import unload, why
from tack.codec import valid_id

_M0 = const(0xF5)
_M1 = const(0xB1)
_T_APPEND = const(0x41)
_T_TOMB = const(0x54)
_HDR = const(9)  # magic 2, type 1, length 2, crc 4
_ENTRY = const(10)  # index entry: id crc32 u32, offset u32, record size u16
_GROW = const(80)  # the index grows 8 entries at a time
_CHUNK = const(512)
MAX_ID = const(64)
MAX_NAME = const(32)
MAX_FRAME = const(255)
MAX_PAYLOAD = const(8192)
_MAX_DATA = const(3 + 64 + 32 + 255 + 8192)


class OutboxFull(Exception):
    """The new message was refused; every older one is still there (see "Full outbox")."""


def _ident(value, what, limit):
    """Encode an identifier (protocol section 3), or explain what is wrong with it."""
    if not valid_id(value, limit):
        raise ValueError(why("ob_ident", what, value, limit))
    return value.encode()


def _remove_quiet(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _replace(src, dst):
    """Rename ``src`` over ``dst``; atomic on POSIX and littlefs, a two-step fallback elsewhere."""
    try:
        os.rename(src, dst)
    except OSError:
        # FAT refuses to rename over an existing file. open() treats "tmp present, path
        # missing" as a complete new file, so this order is safe.
        os.remove(dst)
        os.rename(src, dst)


class Outbox:
    # Auto-compaction waits until the file is at least this big, so a nearly empty outbox
    # does not rewrite flash after every ack. Tests may lower it on the instance.
    compact_min_bytes = 16 * 1024

    def __init__(self, path, max_records=500, max_bytes=256 * 1024):
        if max_records < 1 or max_bytes < _HDR + _MAX_DATA:
            raise ValueError(why("ob_limits", _HDR + _MAX_DATA))
        self.path = path
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._f = None
        # The file was closed for a compaction's rename and not opened again yet (a heap too
        # full for the file object): the next use opens it.
        self._reopen = False
        self._size = 0  # end of the last valid record: where the next one goes
        self._live = 0  # bytes of live append records
        self._buf = bytearray(_CHUNK)
        self._mv = memoryview(self._buf)
        # Grown in steps as records arrive and never shrunk (slice deletion keeps capacity):
        # few moves in a small heap, and an outbox that never fills never holds a full index.
        self._idx = bytearray()
        self._cap = 0
        self._ent = bytearray(_ENTRY)  # one index entry, packed in place

    # -- opening and recovery ------------------------------------------------------------

    def open(self):
        """Open the file, recover it (see "Recovery") and index it; returns a report:
        ``{"records", "damaged", "truncated_bytes", "compacted"}``."""
        if self._f is not None:
            self.close()
        from tack import outbox_upkeep  # once a boot: its code is loaded for it

        try:
            return outbox_upkeep.recover(self)
        finally:
            del outbox_upkeep
            unload("tack.outbox_upkeep")

    def _meta_len(self, n):
        """Length of an append's id/name/frame prefix held in buf[:n], or None if it overruns."""
        buf = self._buf
        p = 1 + buf[0]
        if p >= n:
            return None
        p += 1 + buf[p]
        if p >= n:
            return None
        p += 1 + buf[p]
        return p if p <= n else None

    # -- the index -----------------------------------------------------------------------

    def _entry(self, i):
        """(offset, size) of live record number ``i``."""
        return struct.unpack_from("<IH", self._idx, i * _ENTRY + 4)

    def _find(self, idb):
        """Index of the live record with id ``idb``, or -1; the file confirms a CRC match."""
        key = struct.pack("<I", binascii.crc32(idb))
        idx = self._idx
        start = 0
        while True:
            p = idx.find(key, start)
            if p < 0:
                return -1
            if p % _ENTRY == 0 and self._id_bytes(p // _ENTRY) == idb:
                return p // _ENTRY
            start = p + 1

    def _id_bytes(self, i):
        off = self._entry(i)[0]
        f = self._file()
        f.seek(off + _HDR)
        n = f.readinto(self._mv[: 1 + MAX_ID])
        il = self._buf[0]
        return bytes(self._mv[1 : 1 + il]) if 1 + il <= n else b""

    def _reserve(self):
        """Room in the index for one more entry, taken before a record is written: a heap too
        full for it then fails the append with nothing on flash, instead of a record written
        and missing from the index until the next boot."""
        idx = self._idx
        n = len(idx)
        if n == self._cap:
            idx.extend(bytes(_GROW))
            idx[n:] = b""
            self._cap = n + _GROW

    def _add(self, idb, off, size):
        self._reserve()
        ent = self._ent
        struct.pack_into("<IIH", ent, 0, binascii.crc32(idb), off, size)
        self._idx.extend(ent)  # within the reserved room: no allocation

    def _drop(self, i):
        size = self._entry(i)[1]
        self._idx[i * _ENTRY : (i + 1) * _ENTRY] = b""
        self._live -= size

    def _worth_compacting(self):
        return self._size - self._live > self._live and self._size >= self.compact_min_bytes

    def _file(self):
        f = self._f
        if f is None:
            if not self._reopen:
                raise RuntimeError(why("ob_closed", self.path))
            try:
                f = open(self.path, "r+b")
            except MemoryError:
                gc.collect()  # what a compaction left behind is garbage by now
                f = open(self.path, "r+b")
            self._f = f
            self._reopen = False
        return f

    # -- the public API ------------------------------------------------------------------

    def append(self, msg_id, name, payload, frame=None):
        self._file()
        idb = _ident(msg_id, "msg_id", MAX_ID)
        nb = _ident(name, "name", MAX_NAME)
        if not isinstance(payload, (bytes, bytearray)) or not 1 <= len(payload) <= MAX_PAYLOAD:
            raise ValueError(why("ob_payload", MAX_PAYLOAD))
        fb = b""
        if frame is not None:
            fb = frame.encode() if isinstance(frame, str) else b""
            if not 1 <= len(fb) <= MAX_FRAME:
                raise ValueError(why("ob_frame", MAX_FRAME))
        if self._find(idb) >= 0:
            raise ValueError(why("ob_dup", msg_id))
        n = len(self)
        if n >= self.max_records:
            raise OutboxFull(
                why("ob_full", n, self.max_records)
            )
        meta = bytes((len(idb),)) + idb + bytes((len(nb),)) + nb + bytes((len(fb),)) + fb
        length = len(meta) + len(payload)
        size = _HDR + length
        if self._size + size > self.max_bytes and self._size > self._live:
            try:
                self.compact()
            except MemoryError:
                pass  # the file is as it was: the check below refuses the punch on screen
        if self._size + size > self.max_bytes:
            raise OutboxFull(
                why("ob_fullb", n, self._size, self.max_bytes)
            )
        crc = binascii.crc32(struct.pack("<BH", _T_APPEND, length))
        crc = binascii.crc32(payload, binascii.crc32(meta, crc))
        off = self._size
        self._reserve()
        f = self._file()
        f.seek(off)
        f.write(struct.pack("<BBBHI", _M0, _M1, _T_APPEND, length, crc) + meta)
        f.write(payload)
        f.flush()
        self._size = off + size
        self._live += size
        self._add(idb, off, size)

    def remove(self, msg_id):
        self._file()
        if not isinstance(msg_id, str) or not 1 <= len(msg_id) <= MAX_ID:
            return False
        idb = msg_id.encode()
        i = self._find(idb)
        if i < 0:
            return False
        try:
            frame = self._record(i)[2]
        except ValueError:
            frame = None  # went bad on flash since open(): it must still be removable
        data = bytes((len(idb),)) + idb
        crc = binascii.crc32(data, binascii.crc32(struct.pack("<BH", _T_TOMB, len(data))))
        f = self._file()
        f.seek(self._size)
        f.write(struct.pack("<BBBHI", _M0, _M1, _T_TOMB, len(data), crc) + data)
        f.flush()
        self._size += _HDR + len(data)
        self._drop(i)
        if frame:
            # After the tombstone: a crash in between leaves an orphan file, never a
            # message whose frame is gone.
            _remove_quiet(frame)
        if self._worth_compacting():
            try:
                self.compact()
            except (OSError, MemoryError):
                # The tombstone is durable and the old file intact; compaction is tried again
                # on the next remove. Out of memory in a busy moment (a drain of many acks) is
                # housekeeping put off, not a reason to stop the device.
                pass
        return True

    def __len__(self):
        return len(self._idx) // _ENTRY

    def __contains__(self, msg_id):
        if self._f is None and not self._reopen:
            return False
        if not isinstance(msg_id, str) or not 1 <= len(msg_id) <= MAX_ID:
            return False
        return self._find(msg_id.encode()) >= 0

    def ids(self, start=0, count=None):
        """Ids oldest first. Each id is a new str (about 100 bytes of heap for 32 characters
        on a 64-bit port), so on a small heap page through a long outbox with start/count."""
        self._file()
        end = len(self) if count is None else min(len(self), start + count)
        return [self._id_bytes(i).decode() for i in range(start, end)]

    def read(self, msg_id):
        """(name, payload, frame path or None). KeyError if absent; ValueError if the record
        went bad on flash since open() (its CRC no longer matches): remove() it."""
        self._file()
        i = self._find(msg_id.encode()) if isinstance(msg_id, str) else -1
        if i < 0:
            raise KeyError(msg_id)
        name, meta_len, frame, length, crc = self._record(i)
        off = self._entry(i)[0]
        c = binascii.crc32(struct.pack("<BH", _T_APPEND, length))
        c = binascii.crc32(self._mv[:meta_len], c)
        f = self._file()
        f.seek(off + _HDR + meta_len)
        payload = f.read(length - meta_len)
        if binascii.crc32(payload, c) != crc:
            raise ValueError(why("ob_damaged", msg_id))
        return name, payload, frame

    def _record(self, i):
        """Reads an append's header and prefix into buf: (name, meta_len, frame, length, crc)."""
        off = self._entry(i)[0]
        f = self._file()
        f.seek(off)
        f.readinto(self._mv[:_HDR])
        length, crc = struct.unpack_from("<HI", self._buf, 3)
        n = f.readinto(self._mv[: min(length, _CHUNK)])
        p = self._meta_len(n)
        if p is None:
            raise ValueError(why("ob_damat", off))
        buf = self._buf
        q = 2 + buf[0]
        name = bytes(self._mv[q : q + buf[q - 1]]).decode()
        q += buf[q - 1] + 1
        fl = buf[q - 1]
        frame = bytes(self._mv[q : q + fl]).decode() if fl else None
        return name, p, frame, length, crc

    def compact(self):
        """Rewrite the file with the live records only (a copy, then a rename: see "Recovery")."""
        from tack import outbox_upkeep  # occasional work: its code is loaded for it

        try:
            outbox_upkeep.compact(self)
        finally:
            del outbox_upkeep
            unload("tack.outbox_upkeep")

    def bytes_used(self):
        """Size of the log file: live records plus dead ones not yet compacted away."""
        return self._size

    def close(self):
        self._reopen = False
        f = self._f
        if f is not None:
            self._f = None
            f.close()
