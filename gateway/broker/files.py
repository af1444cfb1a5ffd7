"""Writing the broker's files so that Mosquitto never reads half of one.

Each file is written beside its final name and renamed over it: a reload that races the write
sees the old file or the new one, never a torn password file that would lock every device out.
The mode is set when the file is created, so a secret is never readable by others even for the
moment between creating and ``chmod``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, mode: int) -> bool:
    """Replace ``path`` with ``data`` (created with ``mode``); ``False`` if it already held it."""
    raw = data.encode() if isinstance(data, str) else data
    with contextlib.suppress(FileNotFoundError):
        if path.read_bytes() == raw and (path.stat().st_mode & 0o777) == mode:
            return False
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have taken bits the caller asked for
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True
