"""The keyring: every AES-256 key that seals data at rest, in one file kept apart from the store.

Whoever copies the store file alone learns nothing personal from it; whoever has the keyring
file too can read everything. So the keyring lives outside the database (``keys.file``, default
``{data_dir}/keyring.json``, mode 0600) and is never inside a backup: an admin keeps a copy of
it somewhere else, and a backup is restorable on a new machine with that copy.

One key is *current* and seals everything new. Older keys stay readable until ``tack keys
rotate`` has moved every row off them; they are then marked *retired* but kept, because
backups made before the rotation are sealed with them. A key id is a hash of the key (the same
derivation the single ``face.key`` file used), so rows written by earlier versions under
``face.key`` name a key this keyring recognises: a legacy ``face.key`` is folded into the
keyring when the keyring is first made, and read beside it while both exist.

The running gateway and ``tack keys rotate`` share the file: the gateway looks at the file's
stamp at most once a second when it seals, and reloads at once when it meets a key id it does
not know, so a rotation needs no restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from devices.protocol.errors import TackError
from gateway.config import TackSettings

log = logging.getLogger(__name__)

FORMAT = "tack-keyring/1"
NONCE_BYTES = 12  # 96 bits, fresh from os.urandom for every seal
RELOAD_CHECK_S = 1.0  # how stale the gateway's view of the file may be when it seals
KEY_BYTES = 32  # AES-256


class KeyringError(TackError):
    """The keyring file is missing a key, unreadable or malformed; the message says the fix."""


class SealError(TackError):
    """A sealed value failed its authentication: altered, corrupted or moved to another row."""


@dataclass(frozen=True, slots=True)
class KeyEntry:
    key_id: str
    key: bytes
    created_ms: int
    retired_ms: int | None = None

    @property
    def retired(self) -> bool:
        return self.retired_ms is not None


def key_id(key: bytes) -> str:
    """A hash of the key, not the key; the derivation of the single ``face.key`` era, so the
    ids its templates carry still match."""
    return hashlib.sha256(b"tack-face-key-id\x00" + key).hexdigest()[:16]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_key() -> KeyEntry:
    key = secrets.token_bytes(KEY_BYTES)
    return KeyEntry(key_id(key), key, now_ms())


class Keyring:
    """The keys of one keyring file; seal with the current one, open with any of them."""

    def __init__(self, path: Path | None, legacy_file: Path | None = None) -> None:
        self.path = path
        self._legacy_file = legacy_file
        self._entries: dict[str, KeyEntry] = {}
        self._aeads: dict[str, AESGCM] = {}
        self._current = ""
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    # -- loading and saving -------------------------------------------------------------

    @classmethod
    def load(cls, path: Path, *, legacy_file: Path | None = None, create: bool = True) -> Keyring:
        """Load ``path``. A missing file is made from ``legacy_file`` (the old single face
        key) when there is one, else from a new random key when ``create``."""
        ring = cls(path, legacy_file)
        if not path.exists():
            legacy = _read_legacy(legacy_file)
            if legacy is None and not create:
                raise KeyringError(
                    f"keyring file {path} does not exist (nor a face key file {legacy_file}): "
                    "create it with `tack keys init` (the gateway also creates it when it "
                    "first starts; `tack faces keygen` makes a face key alone), or set "
                    "keys.file to your copy"
                )
            first = legacy or new_key()
            ring._entries = {first.key_id: first}
            ring._current = first.key_id
            ring.save()
            log.warning(
                "created keyring %s with key %s%s; keep a copy of this file apart from the "
                "store and its backups: without it nothing sealed can be read",
                path,
                first.key_id,
                f" (imported from {legacy_file})" if legacy else "",
            )
        ring.reload()
        return ring

    @classmethod
    def single(cls, key: bytes) -> Keyring:
        """A keyring of one key and no file: what a bare ``face.key`` (``--key-file``) gives."""
        ring = cls(None)
        entry = KeyEntry(key_id(key), key, 0)
        ring._entries = {entry.key_id: entry}
        ring._aeads = {entry.key_id: AESGCM(key)}
        ring._current = entry.key_id
        return ring

    def reload(self) -> None:
        if self.path is None:
            return
        with self._lock:
            entries, current, stamp = _read(self.path)
            legacy = _read_legacy(self._legacy_file)
            if legacy is not None and legacy.key_id not in entries:
                entries[legacy.key_id] = legacy
            self._entries = entries
            self._aeads = {kid: AESGCM(e.key) for kid, e in entries.items()}
            self._current = current
            self._stamp = stamp
            self._checked = time.monotonic()

    def maybe_reload(self) -> None:
        """Reload when the file changed; looks at most once every :data:`RELOAD_CHECK_S`."""
        now = time.monotonic()
        if self.path is None or now - self._checked < RELOAD_CHECK_S:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            return  # keep sealing with what we know; the next open names the problem
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            self.reload()
            log.info("keyring %s reloaded: current key %s", self.path, self._current)

    def save(self) -> None:
        """Write the file atomically (temp file, fsync, rename), readable by its owner only."""
        if self.path is None:
            raise KeyringError("this key came from a single key file; it has no keyring to save")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": FORMAT,
            "current": self._current,
            "keys": [
                {
                    "id": e.key_id,
                    "key": e.key.hex(),
                    "created_ms": e.created_ms,
                    "retired_ms": e.retired_ms,
                }
                for e in self._entries.values()
            ],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        st = os.stat(self.path)
        self._stamp = (st.st_mtime_ns, st.st_size)

    # -- changes made by `tack keys rotate` ----------------------------------------------

    def add_current(self) -> KeyEntry:
        """Make a fresh key the current one and save; the old current key stays readable."""
        entry = new_key()
        self._entries[entry.key_id] = entry
        self._aeads[entry.key_id] = AESGCM(entry.key)
        self._current = entry.key_id
        self.save()
        return entry

    def retire(self, kid: str) -> None:
        entry = self._entries[kid]
        if kid == self._current:
            raise KeyringError(f"key {kid} is the current key and cannot be retired")
        self._entries[kid] = replace(entry, retired_ms=now_ms())
        self.save()

    # -- reading ----------------------------------------------------------------------------

    @property
    def current_id(self) -> str:
        return self._current

    def entries(self) -> list[KeyEntry]:
        return sorted(self._entries.values(), key=lambda e: e.created_ms)

    def active_old_ids(self) -> list[str]:
        """Keys that are neither current nor retired: a rotation has not finished with them."""
        return [e.key_id for e in self.entries() if e.key_id != self._current and not e.retired]

    def knows(self, kid: str) -> bool:
        """Whether ``kid`` is in the keyring, reloading the file once if it is not."""
        try:
            self._known(kid)
        except KeyringError:
            return False
        return True

    def _known(self, kid: str) -> AESGCM:
        aead = self._aeads.get(kid)
        if aead is None:
            # Sealed by another process that has rotated since this one loaded the file.
            self.reload()
            aead = self._aeads.get(kid)
        if aead is None:
            where = f"the keyring file {self.path}" if self.path else "the given key file"
            raise KeyringError(
                f"data is sealed with key {kid}, which is not in {where}; set keys.file to the "
                "keyring that goes with this store (restore your copy)"
            )
        return aead

    # -- sealing ---------------------------------------------------------------------------

    def seal(self, aad: bytes, plain: bytes) -> tuple[str, bytes]:
        """``(key id, nonce + ciphertext + tag)`` under the current key."""
        self.maybe_reload()
        kid = self._current
        nonce = os.urandom(NONCE_BYTES)
        return kid, nonce + self._aeads[kid].encrypt(nonce, plain, aad)

    def unseal(self, kid: str, aad: bytes, sealed: bytes) -> bytes:
        aead = self._known(kid)
        try:
            return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise SealError(
                "a sealed value fails its integrity check: it was altered, corrupted, or "
                "copied from another row"
            ) from exc


def aad(kind: str, *parts: str) -> bytes:
    """Associated data binding a ciphertext to what it belongs to (table and row key)."""
    return "\x00".join(("tack", kind, *parts)).encode()


def _read(path: Path) -> tuple[dict[str, KeyEntry], str, tuple[int, int]]:
    try:
        st = os.stat(path)
        raw = path.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise KeyringError(
            f"keyring file {path} does not exist; set keys.file to your copy of the keyring"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"keyring file {path} cannot be read: {exc}") from exc
    try:
        doc = json.loads(raw)
        if doc.get("format") != FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, expected {FORMAT!r}")
        entries = {}
        for item in doc["keys"]:
            key = bytes.fromhex(item["key"])
            if len(key) != KEY_BYTES:
                raise ValueError(f"a key of {len(key)} bytes (AES-256 needs {KEY_BYTES})")
            entry = KeyEntry(key_id(key), key, int(item["created_ms"]), item.get("retired_ms"))
            if entry.key_id != item["id"]:
                raise ValueError(f"key {item['id']} does not match its id")
            entries[entry.key_id] = entry
        current = str(doc["current"])
        if current not in entries:
            raise ValueError(f"the current key {current} is not among the keys")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeyringError(
            f"keyring file {path} is damaged ({exc}); restore it from your copy"
        ) from exc
    return entries, current, (st.st_mtime_ns, st.st_size)


def _read_legacy(path: Path | None) -> KeyEntry | None:
    if path is None or not path.exists():
        return None
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KeyringError(
            f"face key file {path} cannot be read as a key ({exc}); fix face.key_file or "
            "remove the setting"
        ) from exc
    if len(key) != KEY_BYTES:
        raise KeyringError(f"face key file {path} holds a {len(key)}-byte key, not {KEY_BYTES}")
    return KeyEntry(key_id(key), key, int(path.stat().st_mtime * 1000))


_rings: dict[Path, Keyring] = {}


def keyring_for(settings: TackSettings, *, create: bool = True) -> Keyring:
    """The process's keyring for ``settings``: one instance per file, so every part of the
    gateway sees a rotation at the same moment."""
    path = Path(os.path.abspath(settings.keyring_file))
    ring = _rings.get(path)
    if ring is None:
        ring = Keyring.load(path, legacy_file=settings.face_key_file, create=create)
        _rings[path] = ring
    return ring
