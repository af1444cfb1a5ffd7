"""Who has the store open: a lock file beside it, so a restore never swaps a store under a
running gateway.

The gateway (and a bridge run on its own, `tack bridge run`) holds a *shared* ``flock`` on
``{store}.lock`` for as long as it runs (several may share a store; none of them stops
another). A restore takes the lock *exclusively* without waiting: it fails at once while any of
them holds it, and one that starts during a restore fails to start instead of opening a
half-replaced file. The kernel drops the lock when the process ends, however it ends, so a
killed gateway never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from devices.protocol.errors import TackError


class StoreBusyError(TackError):
    """The store is in use by a gateway (or a restore); the message says what to do."""


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


class SharedStoreLock:
    """Held by a running gateway; released by :meth:`release` or by the process ending."""

    def __init__(self, db_path: Path) -> None:
        path = lock_path(db_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._fd)
            raise StoreBusyError(
                f"the store {db_path} is being restored from a backup ({path} is locked); "
                "start the gateway again when `tack backup restore` has finished"
            ) from exc

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1


@contextlib.contextmanager
def exclusive_store_lock(db_path: Path) -> Iterator[None]:
    """Hold the store for a restore; refuse at once when a gateway has it open."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreBusyError(
                f"a gateway is running on the store {db_path} (it, or a `tack bridge run`, holds "
                f"{path}); stop it (Ctrl-C or `systemctl stop tack-gateway`) and run the restore "
                "again: nothing was replaced"
            ) from exc
        yield
    finally:
        os.close(fd)
