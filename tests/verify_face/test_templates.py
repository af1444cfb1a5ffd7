"""Templates at rest: sealed with AES-256-GCM under a key file, and refused when tampered with."""

from __future__ import annotations

import os
from pathlib import Path

import aiosqlite
import numpy as np
import pytest

from gateway.verify.face.errors import FaceKeyError, FaceTemplateError
from gateway.verify.face.keys import create_key_file, key_id, load_key
from gateway.verify.face.templates import TemplateCipher, TemplateStore

rng = np.random.default_rng(7)


def vec() -> np.ndarray:
    return rng.normal(0, 0.1, 128)


async def test_round_trip_keeps_every_value(db: aiosqlite.Connection, key: bytes) -> None:
    store = TemplateStore(db, key)
    a, b = vec(), vec()
    await store.add("p-putin", [a, b], source="cli")
    loaded = await store.load()
    assert loaded.damaged == []
    assert [t.person_id for t in loaded.templates] == ["p-putin", "p-putin"]
    assert np.array_equal(loaded.templates[0].encoding, a)
    assert np.array_equal(loaded.templates[1].encoding, b)


async def test_the_store_file_holds_no_plain_encoding(db: aiosqlite.Connection, key: bytes) -> None:
    a = vec()
    await TemplateStore(db, key).add("p-putin", [a], source="cli")
    async with db.execute("SELECT nonce, ciphertext FROM face_templates") as cur:
        row = await cur.fetchone()
    assert row is not None
    blob = bytes(row[0]) + bytes(row[1])
    assert a.astype("<f8").tobytes() not in bytes(blob)
    assert len(blob) == 12 + 1024 + 16  # nonce, 128 float64, GCM tag


async def test_tampered_template_is_detected_and_skipped(
    db: aiosqlite.Connection, key: bytes
) -> None:
    store = TemplateStore(db, key)
    [bad, good] = await store.add("p-putin", [vec(), vec()], source="cli")
    async with db.execute("SELECT ciphertext FROM face_templates WHERE id = ?", (bad,)) as cur:
        (ct,) = await cur.fetchone()  # type: ignore[misc]
    flipped = bytearray(ct)
    flipped[100] ^= 0x01
    await db.execute("UPDATE face_templates SET ciphertext = ? WHERE id = ?", (bytes(flipped), bad))
    loaded = await store.load()
    assert loaded.damaged == [bad]
    assert [t.template_id for t in loaded.templates] == [good]


async def test_template_moved_to_another_person_fails_its_check(
    db: aiosqlite.Connection, key: bytes
) -> None:
    store = TemplateStore(db, key)
    [tid] = await store.add("p-putin", [vec()], source="cli")
    await db.execute("UPDATE face_templates SET person_id = 'p-chirac' WHERE id = ?", (tid,))
    assert (await store.load()).damaged == [tid]


def test_cipher_refuses_a_tampered_blob_with_a_clear_error(key: bytes) -> None:
    cipher = TemplateCipher(key)
    sealed = bytearray(cipher.seal("p-1", "cli", vec()))
    sealed[-1] ^= 0x80
    with pytest.raises(FaceTemplateError, match="integrity check"):
        cipher.open("p-1", "cli", bytes(sealed))


async def test_wrong_key_file_is_named_not_reported_as_damage(
    db: aiosqlite.Connection, key: bytes, tmp_path: Path
) -> None:
    await TemplateStore(db, key).add("p-putin", [vec()], source="cli")
    other = tmp_path / "other.key"
    create_key_file(other)
    with pytest.raises(FaceKeyError, match="wrong file") as err:
        await TemplateStore(db, load_key(other)).load()
    assert key_id(key) in err.value.message


def test_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FaceKeyError, match="tack faces keygen"):
        load_key(tmp_path / "absent.key")


@pytest.mark.parametrize(
    ("content", "expected"),
    [("00" * 16, "16-byte key"), ("zz" * 32, "hexadecimal"), ("", "0-byte key")],
)
def test_malformed_key_file_is_explained(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "face.key"
    path.write_text(content)
    with pytest.raises(FaceKeyError, match=expected):
        load_key(path)


def test_keygen_writes_an_owner_only_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k" / "face.key"
    kid = create_key_file(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert key_id(load_key(path)) == kid
    with pytest.raises(FaceKeyError, match="already exists"):
        create_key_file(path)
    assert create_key_file(path, overwrite=True) != kid


async def test_replace_drops_only_the_same_source(db: aiosqlite.Connection, key: bytes) -> None:
    store = TemplateStore(db, key)
    await store.add("p-putin", [vec()], source="cli")
    await store.add("p-putin", [vec(), vec()], source="roster")
    await store.add("p-putin", [vec()], source="roster", replace=True)
    sources = sorted(t.source for t in (await store.load()).templates)
    assert sources == ["cli", "roster"]
