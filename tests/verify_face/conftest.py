"""Fixtures of the face tests: the project's own photos, a real SQLite store, a real key file
and one pool of real encoding processes shared by the whole session (each loads dlib's models)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosqlite
import cv2
import numpy as np
import pytest

from gateway.store import open_database
from gateway.store.roster import Person, upsert_people
from gateway.verify.face.keys import create_key_file, load_key
from gateway.verify.face.pool import EncoderPool

FACES = Path(__file__).parents[1] / "data" / "faces"
PUTIN = [FACES / f"vladimir_putin/Vladimir_Putin_{n}.jpg" for n in ("0001", "0002", "0010")]
CHIRAC = [FACES / f"jacques_chirac/Jacques_Chirac_{n}.jpg" for n in ("0002", "0004")]
SALLEY = [FACES / f"john_salley/{n}.jpg" for n in ("000179_02159509", "000183_02159543")]
MULTI = FACES / "_multi/Arnold_Schwarzenegger_0005.jpg"

PEOPLE = [
    Person("p-putin", "Vladimir Putin", card="C1"),
    Person("p-chirac", "Jacques Chirac", card="C2"),
    Person("p-salley", "John Salley", card="C3"),
]


def jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf.tobytes())


def pixels(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    assert img is not None, path
    return img


@pytest.fixture(scope="session")
def pool() -> Iterator[EncoderPool]:
    p = EncoderPool(workers=2, queue=8)
    p.start()
    yield p
    p.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "face.key"
    create_key_file(path)
    return path


@pytest.fixture
def key(key_file: Path) -> bytes:
    return load_key(key_file)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_database(tmp_path / "tack.db")
    await upsert_people(conn, PEOPLE)
    yield conn
    await conn.close()
