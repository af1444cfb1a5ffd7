"""1:1 and 1:N matching over every template at once."""

from __future__ import annotations

import numpy as np

from gateway.verify.face.gallery import Gallery

rng = np.random.default_rng(11)


def people(n: int, per: int = 2) -> tuple[list[str], np.ndarray, np.ndarray]:
    centres = rng.normal(0, 0.09, (n, 128))  # about 1.4 apart, like different people
    ids = [f"p{i}" for i in range(n) for _ in range(per)]
    enc = np.repeat(centres, per, axis=0) + rng.normal(0, 0.015, (n * per, 128))
    return ids, enc, centres


def test_one_to_n_finds_each_of_a_thousand_people() -> None:
    ids, enc, centres = people(1000)
    order = rng.permutation(len(ids))  # the gallery must not depend on input order
    g = Gallery([ids[i] for i in order], enc[order])
    assert len(g) == 2000
    assert g.people == 1000
    for i in rng.choice(1000, 50, replace=False):
        probe = centres[i] + rng.normal(0, 0.015, 128)
        m = g.identify(probe, threshold=0.6, margin=0.05)
        assert m.person_id == f"p{i}"
        assert m.distance < m.second_distance


def test_one_to_n_refuses_a_stranger_and_an_ambiguous_face() -> None:
    ids, enc, centres = people(50)
    g = Gallery(ids, enc)
    stranger = rng.normal(0, 0.09, 128)
    m = g.identify(stranger, threshold=0.6, margin=0.0)
    assert m.person_id is None
    assert m.best_person is not None
    between = (centres[3] + centres[4]) / 2  # equally close to two people
    assert g.identify(between, threshold=2.0, margin=0.05).person_id is None
    assert g.identify(between, threshold=2.0, margin=0.0).person_id in {"p3", "p4"}


def test_one_to_one_uses_the_persons_closest_template_only() -> None:
    ids, enc, centres = people(20, per=3)
    g = Gallery(ids, enc)
    own = g.verify("p5", centres[5])
    other = g.verify("p6", centres[5])
    assert own < 0.3 < other
    assert abs(own - np.linalg.norm(enc[15:18] - centres[5], axis=1).min()) < 1e-4
    assert g.verify("nobody", centres[5]) == float("inf")


def test_empty_gallery_matches_nobody() -> None:
    g = Gallery([], np.zeros((0, 128)))
    m = g.identify(np.zeros(128), threshold=0.6, margin=0.0)
    assert m.person_id is None
    assert m.distance == float("inf")
