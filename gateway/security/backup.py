"""Encrypted store backups: made online while the gateway writes, checked whole before a restore.

A backup is one file, ``tack-YYYYmmddTHHMMSSZ-<ms>.tbak`` in ``backup.dir``:

    magic "TACKBAK1\\n" | manifest length (4 bytes, big-endian) | manifest (JSON)
    | chunks: length (4 bytes) + AES-256-GCM ciphertext and tag, each one MiB of the store

The manifest is in the clear so ``tack backup list`` needs no key; it names the format, the
time, the Tack and schema versions, the keyring key and the size and SHA-256 of the store inside.
The store is sealed under a fresh random data key, and that data key is sealed under the
keyring's current key (``wrapped_key``): restoring needs the keyring file, which is never in
the backup. The wrapped key is bound to the rest of the manifest, and each chunk's nonce is its
index and its associated data the manifest's SHA-256, the index and a last-chunk flag, so a
changed manifest (even one that claims no chunks at all), a flipped byte, chunks swapped,
dropped or cut short, and bytes appended all fail before anything is replaced.

The copy comes from SQLite's online backup API on a connection of its own: a WAL reader sees
one consistent snapshot and never blocks the gateway's writers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices.protocol.errors import TackError
from gateway.audit.chain import AuditLog
from gateway.config import TackSettings
from gateway.security.keyring import Keyring, KeyringError, SealError, aad, keyring_for, now_ms
from gateway.security.store_lock import exclusive_store_lock
from gateway.store import open_database
from gateway.store.schema import SCHEMA_VERSION

log = logging.getLogger(__name__)

MAGIC = b"TACKBAK1\n"
FORMAT_VERSION = 1
CHUNK_BYTES = 1 << 20
SUFFIX = ".tbak"
_LEN = struct.Struct(">I")
_MAX_MANIFEST = 64 * 1024
_TAG_BYTES = 16
_MANIFEST_KEYS = (
    "format",
    "name",
    "created_ms",
    "schema_version",
    "key_id",
    "wrapped_key",
    "db_sha256",
    "db_size",
    "chunks",
)


class BackupError(TackError):
    """A backup that cannot be made, read or restored; the message names what is wrong."""


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """One backup file. ``sha256`` and ``db_size`` are those of the store inside; ``size`` is
    the file's."""

    path: Path
    created_ms: int
    size: int
    sha256: str
    db_size: int
    key_id: str
    schema_version: int
    tack_version: str


@dataclass(frozen=True, slots=True)
class RestoreResult:
    info: BackupInfo
    replaced: Path | None  # where the store that was replaced now lies


def tack_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tack-edge")
    except PackageNotFoundError:
        return "unknown"


# -- create ---------------------------------------------------------------------------------


async def create_backup(settings: TackSettings, *, actor: str) -> BackupInfo:
    """Back the store up into ``backup.dir`` and audit it as ``backup.create``."""
    keyring = keyring_for(settings)
    info = await asyncio.to_thread(_create, settings.db_path, settings.backup_dir, keyring)
    db = await open_database(settings.db_path)
    try:
        await AuditLog(db, settings.audit_head_file).append(
            actor,
            "backup.create",
            info.path.name,
            {"size": info.size, "db_sha256": info.sha256, "key_id": info.key_id},
        )
    finally:
        await db.close()
    log.info("backup %s written (%d bytes, key %s)", info.path, info.size, info.key_id)
    return info


def _create(db_path: Path, backup_dir: Path, keyring: Keyring) -> BackupInfo:
    if not db_path.exists():
        raise BackupError(f"there is no store at {db_path} to back up (check store.path)")
    backup_dir.mkdir(parents=True, exist_ok=True)
    created = now_ms()
    stamp = dt.datetime.fromtimestamp(created / 1000, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = backup_dir / f"tack-{stamp}-{created % 1000:03d}{SUFFIX}"
    # The plain copy sits beside the store (as private as the store itself), never in the
    # backup folder, and only until it is sealed.
    with _private_temp(db_path.parent, ".tack-backup-") as plain:
        src = sqlite3.connect(db_path)
        try:
            dst = sqlite3.connect(plain)
            try:
                src.backup(dst)  # one step: a single consistent read snapshot
                schema = int(dst.execute("PRAGMA user_version").fetchone()[0])
                dst.execute("PRAGMA journal_mode = DELETE")
            finally:
                dst.close()
        finally:
            src.close()
        db_sha, db_size = _digest(plain)
        data_key = AESGCM.generate_key(bit_length=256)
        manifest: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "name": target.name,
            "created_ms": created,
            "tack_version": tack_version(),
            "schema_version": schema,
            "db_sha256": db_sha,
            "db_size": db_size,
            "chunk_bytes": CHUNK_BYTES,
            "chunks": _chunk_count(db_size),
        }
        kid, wrapped = keyring.seal(_key_aad(manifest), data_key)
        manifest["key_id"] = kid
        manifest["wrapped_key"] = wrapped.hex()
        head = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        part = target.with_name(target.name + ".part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as out, plain.open("rb") as inp:
                out.write(MAGIC + _LEN.pack(len(head)) + head)
                aead = AESGCM(data_key)
                m_hash = hashlib.sha256(head).digest()
                total = manifest["chunks"]
                for index in range(total):
                    chunk = inp.read(CHUNK_BYTES)
                    sealed = aead.encrypt(
                        _nonce(index), chunk, _chunk_aad(m_hash, index, index == total - 1)
                    )
                    out.write(_LEN.pack(len(sealed)) + sealed)
                out.flush()
                os.fsync(out.fileno())
            os.replace(part, target)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    _fsync_dir(backup_dir)
    return _info(target, manifest)


# -- list and prune -------------------------------------------------------------------------


def list_backups(settings: TackSettings) -> list[BackupInfo]:
    """Backups in ``backup.dir``, newest first; files whose header cannot be read are logged
    and left out (``tack backup verify FILE`` says what is wrong with one)."""
    folder = settings.backup_dir
    if not folder.is_dir():
        return []
    out: list[BackupInfo] = []
    for path in folder.glob(f"*{SUFFIX}"):
        try:
            with path.open("rb") as f:
                manifest, _ = _read_manifest(f, path)
        except (BackupError, OSError) as exc:
            log.warning("skipping %s: %s", path, exc)
            continue
        out.append(_info(path, manifest))
    out.sort(key=lambda b: (b.created_ms, b.path.name), reverse=True)
    return out


async def prune_backups(settings: TackSettings, *, actor: str) -> list[Path]:
    """Delete all but the newest ``backup.keep`` backups; audited as ``backup.prune``."""
    doomed = list_backups(settings)[settings.backup.keep :]
    for info in doomed:
        info.path.unlink(missing_ok=True)
    if doomed:
        db = await open_database(settings.db_path)
        try:
            await AuditLog(db, settings.audit_head_file).append(
                actor,
                "backup.prune",
                str(settings.backup_dir),
                {"deleted": [i.path.name for i in doomed], "kept": settings.backup.keep},
            )
        finally:
            await db.close()
    return [i.path for i in doomed]


# -- verify and restore ---------------------------------------------------------------------


def backup_keyring(settings: TackSettings) -> Keyring:
    """The keyring a backup is opened with; never a new one made up on the spot."""
    if not settings.keyring_file.exists() and not settings.face_key_file.exists():
        raise BackupError(
            f"there is no keyring at {settings.keyring_file}: a backup opens only with the "
            "keyring it was made with; copy your saved keyring file there (or set keys.file "
            "to it) and run this again. Nothing was replaced"
        )
    return keyring_for(settings, create=False)


def verify_backup(path: Path, keyring: Keyring, work_dir: Path) -> BackupInfo:
    """Check everything a restore would check, without touching the store. The decrypted copy
    is written to ``work_dir`` (the store's folder: as private as the store) and removed."""
    with _private_temp(work_dir, ".tack-verify-") as tmp:
        return _decrypt_checked(path, keyring, tmp)


async def restore_backup(
    settings: TackSettings, path: Path, *, actor: str, progress: Callable[[str], None] | None = None
) -> RestoreResult:
    """Verify ``path`` completely, then swap it in for the store; the replaced store is kept as
    ``{store}.replaced-<time>`` (with its -wal and -shm). Audited as ``backup.restore`` in the
    restored store."""
    say = progress or (lambda _m: None)
    keyring = backup_keyring(settings)
    db_path = settings.db_path
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with _private_temp(db_path.parent, ".tack-restore-") as plain:
        say(f"checking {path.name}: manifest, key, every chunk, checksum, integrity")
        info = await asyncio.to_thread(_decrypt_checked, path, keyring, plain)
        say("backup is sound; replacing the store")
        with exclusive_store_lock(db_path):
            replaced = _swap_in(plain, db_path)
    head = settings.audit_head_file
    old_head = None
    if head.exists():
        # The restored chain ends earlier than the head file says; the old anchor is kept
        # beside the replaced store, and the restore entry starts the new one.
        old_head = head.with_name(f"{head.name}.before-restore-{now_ms()}")
        os.replace(head, old_head)
    db = await open_database(db_path)
    try:
        await AuditLog(db, head).append(
            actor,
            "backup.restore",
            path.name,
            {
                "backup_created_ms": info.created_ms,
                "db_sha256": info.sha256,
                "replaced": str(replaced) if replaced else None,
                "old_audit_head": str(old_head) if old_head else None,
            },
        )
    finally:
        await db.close()
    return RestoreResult(info, replaced)


def _swap_in(plain: Path, db_path: Path) -> Path | None:
    replaced: Path | None = None
    if db_path.exists():
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        replaced = db_path.with_name(f"{db_path.name}.replaced-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            side = Path(str(db_path) + suffix)
            if side.exists():
                os.replace(side, Path(str(replaced) + suffix))
    os.replace(plain, db_path)
    _fsync_dir(db_path.parent)
    return replaced


def _decrypt_checked(path: Path, keyring: Keyring, out_path: Path) -> BackupInfo:
    try:
        f = path.open("rb")
    except FileNotFoundError as exc:
        raise BackupError(f"backup {path} does not exist (see `tack backup list`)") from exc
    with f:
        manifest, head = _read_manifest(f, path)
        if manifest["format"] != FORMAT_VERSION:
            raise BackupError(
                f"backup {path.name} has format {manifest['format']}; this Tack reads format "
                f"{FORMAT_VERSION}: restore it with the Tack version that made it "
                f"({manifest.get('tack_version')})"
            )
        schema = int(manifest["schema_version"])
        if schema > SCHEMA_VERSION:
            raise BackupError(
                f"backup {path.name} holds a store of schema {schema}, newer than this Tack "
                f"knows ({SCHEMA_VERSION}); upgrade Tack to {manifest.get('tack_version')} or "
                "later before restoring it"
            )
        kid = str(manifest["key_id"])
        try:
            wrapped = bytes.fromhex(str(manifest["wrapped_key"]))
            data_key = keyring.unseal(kid, _key_aad(manifest), wrapped)
        except KeyringError as exc:
            raise BackupError(
                f"backup {path.name} is sealed with key {kid}, which the keyring "
                f"{keyring.path} does not hold: set keys.file to the keyring of the machine "
                "that made it (a wrong key; nothing was replaced)"
            ) from exc
        except (SealError, ValueError) as exc:
            raise BackupError(
                f"backup {path.name}: its key does not open under key {kid} of {keyring.path}: "
                "the manifest was altered or the keyring holds a different key with that id; "
                "nothing was replaced"
            ) from exc
        aead = AESGCM(data_key)
        m_hash = hashlib.sha256(head).digest()
        total = int(manifest["chunks"])
        if (
            total != _chunk_count(int(manifest["db_size"]))
            or manifest["chunk_bytes"] != CHUNK_BYTES
        ):
            raise BackupError(
                f"backup {path.name}: its manifest gives {total} chunks for a store of "
                f"{manifest['db_size']} bytes: it was altered; nothing was replaced"
            )
        digest = hashlib.sha256()
        size = 0
        fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for index in range(total):
                sealed = _read_chunk(f, path, index, total)
                try:
                    chunk = aead.decrypt(
                        _nonce(index), sealed, _chunk_aad(m_hash, index, index == total - 1)
                    )
                except InvalidTag as exc:
                    raise BackupError(
                        f"backup {path.name} is damaged: chunk {index + 1} of {total} fails its "
                        "authentication (a changed byte, or the manifest was edited); nothing "
                        "was replaced"
                    ) from exc
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if f.read(1):
            raise BackupError(
                f"backup {path.name} has bytes after its last chunk: it was altered; nothing "
                "was replaced"
            )
    if size != manifest["db_size"] or digest.hexdigest() != manifest["db_sha256"]:
        raise BackupError(
            f"backup {path.name}: the store inside does not match the manifest's size and "
            "SHA-256; nothing was replaced"
        )
    _check_store(out_path, path, schema)
    return _info(path, manifest)


def _check_store(plain: Path, path: Path, schema: int) -> None:
    conn = sqlite3.connect(f"file:{plain}?mode=ro", uri=True)
    try:
        result = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise BackupError(
            f"backup {path.name} decrypts to something that is not a SQLite store ({exc})"
        ) from exc
    finally:
        conn.close()
    if result != ["ok"]:
        raise BackupError(
            f"backup {path.name}: the store inside fails SQLite's integrity check "
            f"({'; '.join(result[:3])}); nothing was replaced"
        )
    if version != schema:
        raise BackupError(
            f"backup {path.name}: the store is schema {version} but the manifest says {schema}"
        )


def _read_manifest(f: BinaryIO, path: Path) -> tuple[dict[str, Any], bytes]:
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupError(f"{path} is not a Tack backup (it does not start with {MAGIC!r})")
    raw_len = f.read(_LEN.size)
    if len(raw_len) != _LEN.size:
        raise BackupError(f"backup {path.name} is truncated inside its header")
    (length,) = _LEN.unpack(raw_len)
    if length > _MAX_MANIFEST:
        raise BackupError(f"backup {path.name} has a damaged header (manifest of {length} bytes)")
    head = f.read(length)
    if len(head) != length:
        raise BackupError(f"backup {path.name} is truncated inside its manifest")
    try:
        manifest = json.loads(head)
    except ValueError as exc:
        raise BackupError(f"backup {path.name} has a damaged manifest ({exc})") from exc
    missing = [k for k in _MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise BackupError(f"backup {path.name} has a damaged manifest (no {', '.join(missing)})")
    return manifest, head


def _read_chunk(f: BinaryIO, path: Path, index: int, total: int) -> bytes:
    raw = f.read(_LEN.size)
    if len(raw) != _LEN.size:
        raise BackupError(
            f"backup {path.name} is truncated: it ends after chunk {index} of {total}; "
            "nothing was replaced"
        )
    (length,) = _LEN.unpack(raw)
    if length > CHUNK_BYTES + _TAG_BYTES:
        raise BackupError(f"backup {path.name} is damaged at chunk {index + 1} (bad length)")
    sealed = f.read(length)
    if len(sealed) != length:
        raise BackupError(
            f"backup {path.name} is truncated: chunk {index + 1} of {total} is cut short; "
            "nothing was replaced"
        )
    return sealed


def _info(path: Path, m: dict[str, Any]) -> BackupInfo:
    return BackupInfo(
        path=path,
        created_ms=int(m["created_ms"]),
        size=path.stat().st_size,
        sha256=str(m["db_sha256"]),
        db_size=int(m["db_size"]),
        key_id=str(m["key_id"]),
        schema_version=int(m["schema_version"]),
        tack_version=str(m.get("tack_version", "unknown")),
    )


def _chunk_count(db_size: int) -> int:
    return max(1, -(-db_size // CHUNK_BYTES))


def _key_aad(manifest: dict[str, Any]) -> bytes:
    """What the wrapped data key is bound to: the whole manifest but the key's own id and
    wrapping (a changed id names a key that does not open it anyway), so an edited manifest
    (fewer chunks, another size or date) no longer opens the key."""
    rest = {k: v for k, v in manifest.items() if k not in ("wrapped_key", "key_id")}
    body = json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
    return aad("backup-key", hashlib.sha256(body).hexdigest())


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + index.to_bytes(8, "big")


def _chunk_aad(manifest_hash: bytes, index: int, last: bool) -> bytes:
    return b"tack-backup-chunk\x00" + manifest_hash + index.to_bytes(8, "big") + bytes([last])


def _digest(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(CHUNK_BYTES):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


class _private_temp:  # noqa: N801 - used as a context manager, reads like one
    """A path for a private (0600) temporary file in ``folder``, removed on the way out."""

    def __init__(self, folder: Path, prefix: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, dir=folder)
        os.close(fd)
        self.path = Path(name)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
