"""Every enrolled template in one NumPy matrix, for 1:1 and 1:N matching in one pass.

Rows are sorted by person, so the closest template of each person is one ``minimum.reduceat``
over contiguous segments. Distances use ``|a-b|^2 = |a|^2 - 2 a.b + |b|^2`` with the row norms
computed once: a query is one matrix-vector product (10,000 x 128 float32 is about 0.1 ms of
arithmetic), never a Python loop.

1:N needs more than "closest under the threshold": at ten thousand faces someone else is
bound to come close (field notes: face_recognition #431), so the best person must also beat the
second-best *person* by ``margin``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.verify.face.image import ENCODING_DIM
from gateway.verify.face.templates import Template


@dataclass(frozen=True, slots=True)
class Match:
    person_id: str | None  # None when nobody is close enough (or clearly enough)
    distance: float  # to the best person's closest template; inf when the gallery is empty
    best_person: str | None  # the closest person, even when refused
    second_distance: float  # the second-closest *other* person; inf if there is none


class Gallery:
    def __init__(self, person_ids: Sequence[str], encodings: npt.ArrayLike) -> None:
        enc = np.asarray(encodings, dtype=np.float32).reshape(-1, ENCODING_DIM)
        ids = np.asarray(list(person_ids), dtype=object)
        if len(ids) != len(enc):
            raise ValueError("one person id per encoding")
        order = np.argsort(ids, kind="stable") if len(ids) else np.zeros(0, dtype=np.intp)
        self._matrix = np.ascontiguousarray(enc[order])
        sorted_ids = ids[order]
        self._sq = np.einsum("ij,ij->i", self._matrix, self._matrix)
        starts = (
            np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
            if len(sorted_ids)
            else np.zeros(0, dtype=np.intp)
        )
        self._starts = starts
        self._people: list[str] = [str(p) for p in sorted_ids[starts]]
        ends = np.r_[starts[1:], len(sorted_ids)] if len(starts) else starts
        self._slices = {
            p: (int(s), int(e)) for p, s, e in zip(self._people, starts, ends, strict=True)
        }

    @classmethod
    def from_templates(cls, templates: Sequence[Template]) -> Gallery:
        return cls([t.person_id for t in templates], [t.encoding for t in templates])

    def __len__(self) -> int:
        return len(self._matrix)

    @property
    def people(self) -> int:
        return len(self._people)

    def has(self, person_id: str) -> bool:
        return person_id in self._slices

    def _distances(
        self, rows: npt.NDArray[np.float32], sq: npt.NDArray[np.float32], q: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        d2 = sq - 2.0 * (rows @ q) + float(q @ q)
        return np.sqrt(np.maximum(d2, 0.0))

    def verify(self, person_id: str, encoding: npt.ArrayLike) -> float:
        """1:1: distance to the person's closest template; inf when they have none."""
        span = self._slices.get(person_id)
        if span is None:
            return float("inf")
        q = np.asarray(encoding, dtype=np.float32)
        s, e = span
        return float(self._distances(self._matrix[s:e], self._sq[s:e], q).min())

    def identify(self, encoding: npt.ArrayLike, *, threshold: float, margin: float) -> Match:
        """1:N: the person whose closest template is within ``threshold`` and ahead of every
        other person by at least ``margin``."""
        if not self._people:
            return Match(None, float("inf"), None, float("inf"))
        q = np.asarray(encoding, dtype=np.float32)
        d = self._distances(self._matrix, self._sq, q)
        per_person = np.minimum.reduceat(d, self._starts)
        if len(per_person) == 1:
            best, second = 0, float("inf")
        else:
            two = np.argpartition(per_person, 1)[:2]
            best = int(two[0] if per_person[two[0]] <= per_person[two[1]] else two[1])
            second = float(per_person[two[1] if best == two[0] else two[0]])
        dist = float(per_person[best])
        who = self._people[best]
        ok = dist <= threshold and second - dist >= margin
        return Match(who if ok else None, dist, who, second)
