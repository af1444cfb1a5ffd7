"""Face templates at rest: each 128-d encoding sealed with AES-256-GCM in table ``face_templates``.

A template is 128 little-endian float64s (1,024 bytes) encrypted under a fresh 96-bit nonce, with
the keyring's current key (gateway/security/keyring.py; a bare ``face.key`` is a keyring of one).
The associated data binds the ciphertext to its person and source, so a row copied onto another
person fails its check just as a flipped bit does. An encoding is not a photo, but it is
biometric data: whoever holds the store file without the key file learns nothing from it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiosqlite
import numpy as np
import numpy.typing as npt

from gateway.security.keyring import NONCE_BYTES, Keyring, SealError
from gateway.security.sealed_fields import template_aad
from gateway.store.database import write_transaction
from gateway.store.records import now_ms
from gateway.store.roster import bump_version
from gateway.verify.face.errors import FaceKeyError, FaceTemplateError
from gateway.verify.face.image import ENCODING_DIM

log = logging.getLogger(__name__)
# Bumped on every change, so a verifier in another process (the gateway, when the bridge or the
# CLI enrols) knows to reload its gallery.
TEMPLATES_VERSION_KEY = "face.templates.version"


@dataclass(frozen=True, slots=True)
class Template:
    template_id: int
    person_id: str
    source: str
    encoding: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class LoadResult:
    templates: list[Template]
    damaged: list[int]  # template ids that failed their integrity check


def as_keyring(keys: bytes | Keyring) -> Keyring:
    return keys if isinstance(keys, Keyring) else Keyring.single(keys)


class TemplateCipher:
    def __init__(self, keys: bytes | Keyring) -> None:
        self.keyring = as_keyring(keys)

    @property
    def key_id(self) -> str:
        return self.keyring.current_id

    def seal_with_id(
        self, person_id: str, source: str, encoding: npt.NDArray[np.float64]
    ) -> tuple[str, bytes]:
        """``(key id, nonce + ciphertext)`` under the keyring's current key."""
        vec = np.asarray(encoding, dtype="<f8")
        if vec.shape != (ENCODING_DIM,):
            raise ValueError(f"a face encoding has {ENCODING_DIM} values, not {vec.shape}")
        return self.keyring.seal(template_aad(person_id, source), vec.tobytes())

    def seal(self, person_id: str, source: str, encoding: npt.NDArray[np.float64]) -> bytes:
        return self.seal_with_id(person_id, source, encoding)[1]

    def open(
        self, person_id: str, source: str, sealed: bytes, kid: str | None = None
    ) -> npt.NDArray[np.float64]:
        try:
            plain = self.keyring.unseal(kid or self.key_id, template_aad(person_id, source), sealed)
        except SealError as exc:
            raise FaceTemplateError(
                f"a face template of {person_id} fails its integrity check: it was altered or "
                "corrupted on disk; enrol the person again"
            ) from exc
        return np.frombuffer(plain, dtype="<f8").astype(np.float64)


class TemplateStore:
    def __init__(self, db: aiosqlite.Connection, keys: bytes | Keyring) -> None:
        self._db = db
        self._cipher = TemplateCipher(keys)

    @property
    def key_id(self) -> str:
        return self._cipher.key_id

    async def add(
        self,
        person_id: str,
        encodings: list[npt.NDArray[np.float64]],
        *,
        source: str,
        replace: bool = False,
    ) -> list[int]:
        """Store ``encodings`` for the person; with ``replace``, first drop the person's
        templates of the same ``source`` (a roster re-sync replaces, never piles up)."""
        rows = []
        for enc in encodings:
            kid, sealed = self._cipher.seal_with_id(person_id, source, enc)
            rows.append((kid, sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]))
        ids: list[int] = []
        async with write_transaction(self._db, f"storing face templates of {person_id}"):
            if replace:
                await self._db.execute(
                    "DELETE FROM face_templates WHERE person_id = ? AND source = ?",
                    (person_id, source),
                )
            for kid, nonce, ct in rows:
                cur = await self._db.execute(
                    "INSERT INTO face_templates (person_id, source, key_id, nonce, ciphertext,"
                    " created_ts_ms) VALUES (?, ?, ?, ?, ?, ?)",
                    (person_id, source, kid, nonce, ct, now_ms()),
                )
                ids.append(int(cur.lastrowid or 0))
            await _bump(self._db)
        return ids

    async def remove(self, person_id: str) -> int:
        async with write_transaction(self._db, f"removing face templates of {person_id}"):
            cur = await self._db.execute(
                "DELETE FROM face_templates WHERE person_id = ?", (person_id,)
            )
            await _bump(self._db)
            return cur.rowcount

    async def version(self) -> str | None:
        async with self._db.execute(
            "SELECT value FROM kv WHERE key = ?", (TEMPLATES_VERSION_KEY,)
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row else None

    async def counts(self) -> dict[str, int]:
        async with self._db.execute(
            "SELECT person_id, COUNT(*) FROM face_templates GROUP BY person_id ORDER BY person_id"
        ) as cur:
            return {str(r[0]): int(r[1]) for r in await cur.fetchall()}

    async def load(self) -> LoadResult:
        """Decrypt every template. A wrong key file is an error; a damaged row is skipped,
        logged and reported, so one bad row does not shut the door on everyone else."""
        async with self._db.execute(
            "SELECT id, person_id, source, key_id, nonce, ciphertext FROM face_templates"
            " ORDER BY person_id, id"
        ) as cur:
            rows = await cur.fetchall()
        foreign = sorted(k for k in {str(r[3]) for r in rows} if not self._cipher.keyring.knows(k))
        if foreign:
            raise FaceKeyError(
                f"the face templates were sealed with key {', '.join(foreign)}, but the "
                f"key file holds key {self.key_id}: face.key_file points at the wrong file "
                "(restore the right one, or remove the templates and enrol again)"
            )
        templates: list[Template] = []
        damaged: list[int] = []
        for tid, person_id, source, kid, nonce, ct in rows:
            try:
                enc = self._cipher.open(
                    str(person_id), str(source), bytes(nonce) + bytes(ct), str(kid)
                )
            except FaceTemplateError as exc:
                log.error("template %d skipped: %s", tid, exc.message)
                damaged.append(int(tid))
                continue
            templates.append(Template(int(tid), str(person_id), str(source), enc))
        return LoadResult(templates, damaged)


async def _bump(db: aiosqlite.Connection) -> None:
    await bump_version(db, TEMPLATES_VERSION_KEY)
