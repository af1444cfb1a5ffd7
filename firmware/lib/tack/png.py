"""A framebuffer as a 1-bit grayscale PNG, so a screen can be looked at off the device.

MicroPython's deflate module cannot compress, so the image data is a zlib stream of
*stored* deflate blocks (no compression: a 296x128 screen is a 5 KB file). The zlib
checksum (Adler-32) is computed here; chunk CRCs come from binascii.crc32. Rows are
streamed to the file in chunks of about 512 bytes: nothing the size of the image is
ever built in RAM.
"""

import binascii
import struct

from micropython import const

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ADLER_MOD = const(65521)
_BLOCK_MAX = const(65535)  # a stored deflate block holds at most this many bytes
_CHUNK_BYTES = const(512)


def _adler(a, b, data, start, end):
    # Reduced once per call (one row): for rows up to 2 KB, b stays below 2**30, a small
    # int on a 32-bit port; a wider row is still right, only slower (big ints).
    for i in range(start, end):
        a += data[i]
        b += a
    return a % _ADLER_MOD, b % _ADLER_MOD


class Writer:
    """A PNG written as its rows come, top to bottom: the device draws its screen a band at a
    time (tack.device), so no image the size of the screen is ever in RAM.

    ``rows(buf, n)`` adds the next ``n`` rows from the start of a MONO_HLSB buffer ``width``
    pixels wide; ``close()`` after the last of the ``height`` rows. ``ink`` is the bit value
    that is dark (framebuf colour 1 by default): it comes out black on white, as on the panel.
    """

    def __init__(self, path, width, height, ink=1):
        self.stride = (width + 7) // 8
        self.height = height
        self._row_bytes = self.stride + 1  # filter byte 0 ("none") then the pixels
        self._per_block = _BLOCK_MAX // self._row_bytes
        if self._per_block < 1:
            raise ValueError("width %d is too wide for this writer" % width)
        blocks = (height + self._per_block - 1) // self._per_block
        idat_len = 2 + 5 * blocks + self._row_bytes * height + 4  # zlib header, blocks, Adler-32
        self._invert = 0xFF if ink else 0x00
        self._out = bytearray(self._row_bytes * max(1, _CHUNK_BYTES // self._row_bytes))
        self._used = 0
        self._row = 0
        self._a, self._b = 1, 0
        f = self._f = open(path, "wb")
        f.write(_SIGNATURE)
        _chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        f.write(struct.pack(">I", idat_len))
        f.write(b"IDAT")
        self._crc = _put(f, binascii.crc32(b"IDAT"), b"\x78\x01")  # zlib, no dictionary

    def rows(self, buf, n):
        stride = self.stride
        out = self._out
        for r in range(n):
            if self._row % self._per_block == 0:  # a stored deflate block starts here
                self._flush()
                size = min(self._per_block, self.height - self._row) * self._row_bytes
                last = self._row + self._per_block >= self.height
                self._crc = _put(self._f, self._crc, struct.pack("<BHH", 1 if last else 0, size, size ^ 0xFFFF))
            pos = self._used
            out[pos] = 0
            src = r * stride
            for i in range(stride):
                out[pos + 1 + i] = buf[src + i] ^ self._invert
            self._a, self._b = _adler(self._a, self._b, out, pos, pos + self._row_bytes)
            self._used = pos + self._row_bytes
            self._row += 1
            if self._used + self._row_bytes > len(out):
                self._flush()

    def _flush(self):
        if self._used:
            self._crc = _put(self._f, self._crc, memoryview(self._out)[: self._used])
            self._used = 0

    def close(self):
        self._flush()
        f = self._f
        crc = _put(f, self._crc, struct.pack(">I", (self._b << 16) | self._a))
        f.write(struct.pack(">I", crc & 0xFFFFFFFF))
        _chunk(f, b"IEND", b"")
        f.close()


def write(path, width, height, buf, ink=1):
    """Write a whole MONO_HLSB buffer (rows of ceil(width / 8) bytes, MSB leftmost) to `path`."""
    stride = (width + 7) // 8
    if len(buf) < stride * height:
        raise ValueError(
            "buffer has %d bytes, %dx%d needs %d" % (len(buf), width, height, stride * height)
        )
    w = Writer(path, width, height, ink)
    w.rows(buf, height)
    w.close()


def _put(f, crc, data):
    f.write(data)
    return binascii.crc32(data, crc)


def _chunk(f, kind, data):
    f.write(struct.pack(">I", len(data)))
    f.write(kind)
    f.write(data)
    f.write(struct.pack(">I", binascii.crc32(data, binascii.crc32(kind)) & 0xFFFFFFFF))
