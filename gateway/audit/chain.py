"""The audit log as a hash chain.

Each entry's hash covers its own fields and the hash of the entry before it, so editing an
entry, deleting one from the middle or reordering them breaks every hash from there on. Deleting
the newest entries leaves a shorter chain that is still whole, so the gateway also keeps a *head
file* outside the database (``{data_dir}/audit.head``): the id and hash of the newest entry it
wrote. The file may lag the database (it is written after the commit, and a crash in between
loses nothing: the entry is in the chain), but the database must never be behind it.

What this does not stop: someone who can write both the database and the head file and who
recomputes every hash. Exported copies and backups taken earlier are the answer to that; see
docs/security.md.

Details must never hold a secret or personal data (a password, a face image, a card number):
keys that look like secrets are refused outright rather than written and regretted.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from gateway.store.database import write_transaction
from gateway.store.records import now_ms

GENESIS = "0" * 64
_SECRET_WORDS = ("password", "secret", "token", "passphrase", "private_key", "image", "template")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ts_ms: int
    actor: str
    action: str
    target: str
    detail: dict[str, object]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "ts_ms": self.ts_ms,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class AuditProblem:
    entry_id: int
    what: str


@dataclass(slots=True)
class VerifyResult:
    checked: int = 0
    problems: list[AuditProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def entry_hash(
    prev_hash: str, entry_id: int, ts_ms: int, actor: str, action: str, target: str, detail: str
) -> str:
    """The chain's hash: SHA-256 over the previous hash and a canonical JSON of the fields."""
    fields = json.dumps(
        [entry_id, ts_ms, actor, action, target, detail], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256((prev_hash + fields).encode()).hexdigest()


def _check_detail(detail: Mapping[str, object]) -> str:
    for key in detail:
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ValueError(
                f"audit detail key {key!r} looks like a secret or personal data; the audit log "
                "records that something changed, never the secret itself"
            )
    return json.dumps(dict(detail), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class AuditLog:
    """Append to, read and verify the chain in the store ``db``; ``head_file`` anchors its end."""

    def __init__(self, db: aiosqlite.Connection, head_file: Path | None) -> None:
        self._db = db
        self._head_file = head_file

    async def append(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: Mapping[str, object] | None = None,
    ) -> AuditEntry:
        """Record one action in a transaction of its own."""
        async with write_transaction(self._db, f"auditing {action}"):
            entry = await self.append_in_transaction(actor, action, target, detail)
        self._write_head(entry)
        return entry

    @contextlib.asynccontextmanager
    async def recording(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: Mapping[str, object] | None = None,
    ) -> AsyncIterator[None]:
        """A write transaction whose changes commit together with their audit entry, or not at
        all: an admin action is never done without its record, nor recorded without being done.
        """
        async with write_transaction(self._db, action):
            yield
            entry = await self.append_in_transaction(actor, action, target, detail)
        self._write_head(entry)

    async def append_in_transaction(
        self,
        actor: str,
        action: str,
        target: str = "",
        detail: Mapping[str, object] | None = None,
    ) -> AuditEntry:
        """Append inside the caller's ``write_transaction`` (which holds the write lock, so no
        other writer can slip an entry in between reading the head and adding to it). The head
        file is not written here: the next :meth:`append` or :meth:`recording` moves it on
        (the head may lag the log, never lead it)."""
        detail_json = _check_detail(detail or {})
        async with self._db.execute(
            "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1"
        ) as cur:
            row = await cur.fetchone()
        entry_id, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS)
        ts = now_ms()
        digest = entry_hash(prev, entry_id, ts, actor, action, target, detail_json)
        await self._db.execute(
            "INSERT INTO audit_log (id, ts_ms, actor, action, target, detail, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (entry_id, ts, actor, action, target, detail_json, prev, digest),
        )
        detail_back = json.loads(detail_json)
        return AuditEntry(entry_id, ts, actor, action, target, detail_back, prev, digest)

    def _write_head(self, entry: AuditEntry) -> None:
        if self._head_file is None:
            return
        self._head_file.parent.mkdir(parents=True, exist_ok=True)
        lock = self._head_file.with_name(self._head_file.name + ".lock")
        with lock.open("a") as held:
            # Read, compare and replace under a lock: two processes must not leave the head
            # at the older of their entries.
            fcntl.flock(held, fcntl.LOCK_EX)
            current = read_head(self._head_file)
            if current is not None and current[0] >= entry.id:
                return  # another process got further; the head only moves forward
            tmp = self._head_file.with_name(f"{self._head_file.name}.{os.getpid()}.tmp")
            tmp.write_text(f"{entry.id} {entry.hash}\n", encoding="ascii")
            os.replace(tmp, self._head_file)

    async def entries(
        self,
        *,
        since_ms: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        where: list[str] = []
        args: list[object] = []
        if since_ms is not None:
            where.append("ts_ms >= ?")
            args.append(since_ms)
        if actor is not None:
            where.append("actor = ?")
            args.append(actor)
        if action is not None:
            where.append("action = ?")
            args.append(action)
        sql = "SELECT id, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        async with self._db.execute(sql, args) as cur:
            return [_entry(r) for r in await cur.fetchall()]

    async def verify(self) -> VerifyResult:
        """Walk the whole chain; name every entry that does not fit and a missing tail."""
        result = VerifyResult()
        prev, expected_id = GENESIS, 1
        async with self._db.execute(
            "SELECT id, ts_ms, actor, action, target, detail, prev_hash, hash FROM audit_log"
            " ORDER BY id"
        ) as cur:
            async for row in cur:
                entry_id = int(row[0])
                result.checked += 1
                if entry_id != expected_id:
                    result.problems.append(
                        AuditProblem(entry_id, f"entries {expected_id}..{entry_id - 1} are missing")
                    )
                if str(row[6]) != prev:
                    result.problems.append(
                        AuditProblem(entry_id, "does not follow the entry before it")
                    )
                digest = entry_hash(
                    str(row[6]), entry_id, int(row[1]), row[2], row[3], row[4], row[5]
                )
                if digest != row[7]:
                    result.problems.append(
                        AuditProblem(entry_id, "was changed after it was written")
                    )
                prev, expected_id = str(row[7]), entry_id + 1
        head = read_head(self._head_file) if self._head_file is not None else None
        if head is None and self._head_file is not None and result.checked:
            result.problems.append(
                AuditProblem(
                    expected_id - 1,
                    f"the head file {self._head_file} is missing: whether newest entries were "
                    "deleted cannot be told (compare with an exported copy)",
                )
            )
        elif head == (0, ""):
            result.problems.append(
                AuditProblem(0, f"the head file {self._head_file} is unreadable or was altered")
            )
        elif head is not None:
            head_id, head_hash = head
            if head_id >= expected_id:
                result.problems.append(
                    AuditProblem(
                        head_id,
                        f"the log ends at entry {expected_id - 1} but the head file says entry "
                        f"{head_id} was written: newest entries were deleted",
                    )
                )
            else:
                async with self._db.execute(
                    "SELECT hash FROM audit_log WHERE id = ?", (head_id,)
                ) as cur:
                    head_row = await cur.fetchone()
                if head_row is not None and head_row[0] != head_hash:
                    result.problems.append(
                        AuditProblem(head_id, "differs from the hash the head file kept for it")
                    )
        return result


def read_head(path: Path) -> tuple[int, str] | None:
    try:
        text = path.read_text(encoding="ascii").split()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return (0, "")  # unreadable: verify reports the mismatch rather than trusting nothing
    if len(text) != 2 or not text[0].isdigit():
        return (0, "")
    return int(text[0]), text[1]


def _entry(row: aiosqlite.Row | tuple[Any, ...]) -> AuditEntry:
    return AuditEntry(
        int(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        json.loads(str(row[5])),
        str(row[6]),
        str(row[7]),
    )


def export_jsonl(entries: list[AuditEntry]) -> str:
    return "".join(
        json.dumps(e.as_dict(), ensure_ascii=False, separators=(",", ":")) + "\n" for e in entries
    )


def export_csv(entries: list[AuditEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "ts_ms", "actor", "action", "target", "detail", "prev_hash", "hash"])
    for e in entries:
        writer.writerow(
            [
                e.id,
                e.ts_ms,
                e.actor,
                e.action,
                e.target,
                json.dumps(e.detail, ensure_ascii=False, sort_keys=True, separators=(",", ":")),
                e.prev_hash,
                e.hash,
            ]
        )
    return out.getvalue()
