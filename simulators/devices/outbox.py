"""A terminal's durable outbox: the simulator's stand-in for the firmware's flash outbox.

A punch is written here, committed and fsync'd, *before* it is published, and it leaves only
when the gateway acknowledges it. The sequence counter and the boot counter live in the same
file and the same transactions, so a crash can neither reuse a ``seq`` nor lose a punch.

This is synchronous ``sqlite3`` on purpose: the terminal is driven from paho's network thread
and from caller threads, never from an event loop; async callers go through ``to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from devices.protocol import Envelope, ReasonCode, TackError, encode_event

OUTBOX_FILENAME = "terminal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
"""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_msg_id() -> str:
    """A 26-character, time-sortable id (48-bit milliseconds + 80 random bits, Crockford base32).

    Time-sortable so gateway logs and the store list a device's messages in the order they were
    made, even across reboots where ``seq`` alone says nothing about wall time.
    """
    value = (int(time.time() * 1000) & (2**48 - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class OutboxError(TackError):
    """The outbox file could not be read or written (disk full, permissions, corruption)."""

    reason_code = ReasonCode.STORE_UNAVAILABLE


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    seq: int
    msg_id: str
    kind: str
    payload: bytes
    created_ms: int


class Outbox:
    """One device's outbox file in ``state_dir``. Safe to call from several threads."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / OUTBOX_FILENAME
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: every write below opens its own explicit transaction.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk when it returns, which is the whole point of an outbox.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _meta(self, key: str, default: int) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def bump_boot(self) -> int:
        """Count one more start-up and return it; presence carries it so stale wills are spotted."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                boot = self._meta("boot", 0) + 1
                self._set_meta("boot", boot)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"cannot update the boot counter in {self.path}: {exc}") from exc
        return boot

    @property
    def next_seq(self) -> int:
        with self._lock:
            return self._meta("next_seq", 1)

    def append(self, make: Callable[[int, int], Envelope]) -> OutboxEntry:
        """Allocate the next ``seq``, build the envelope with it and store both in one commit.

        ``make(seq, created_ms)`` builds the envelope; allocating and storing in one transaction
        means a crash between the two can never hand out a ``seq`` twice.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = self._meta("next_seq", 1)
                created_ms = int(time.time() * 1000)
                envelope = make(seq, created_ms)
                payload = encode_event(envelope)
                self._db.execute(
                    "INSERT INTO outbox (seq, msg_id, kind, payload, created_ms) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (seq, envelope.msg_id, envelope.kind, payload, created_ms),
                )
                self._set_meta("next_seq", seq + 1)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"cannot append to outbox {self.path}: {exc}") from exc
            except Exception:
                self._rollback()  # ``make`` refused its input: nothing may stay half-written
                raise
        return OutboxEntry(seq, envelope.msg_id, envelope.kind, payload, created_ms)

    def remove(self, msg_id: str) -> bool:
        """Drop an acknowledged message; False when it was not (or no longer) there."""
        with self._lock:
            try:
                cur = self._db.execute("DELETE FROM outbox WHERE msg_id = ?", (msg_id,))
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot remove {msg_id} from outbox {self.path}: {exc}") from exc
            return cur.rowcount > 0

    def pending(self) -> list[OutboxEntry]:
        """Every message still waiting for its ack, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT seq, msg_id, kind, payload, created_ms FROM outbox ORDER BY seq"
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
        return [OutboxEntry(int(s), str(m), str(k), bytes(p), int(c)) for s, m, k, p, c in rows]

    def depth(self) -> int:
        with self._lock:
            try:
                row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read outbox {self.path}: {exc}") from exc
        return int(row[0])

    def _rollback(self) -> None:
        # The original error is the one worth reporting; the caller raises it.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
