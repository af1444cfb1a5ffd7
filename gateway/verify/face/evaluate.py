"""Measure the face check on a labelled folder and choose its operating point from the data.

The folder has ``manifest.csv`` (``file,person``, paths relative to the folder) and optionally
``pairs.csv`` (``file_a,file_b,same``); without it every pair of manifest images is used.
``sources.csv`` with a ``block`` column, when present, splits the figures per block (the shared
set's README asks for that: its blocks are not equally hard).

Figures: pair accuracy, FAR (different-person pairs accepted) and FRR (same-person pairs
refused) at each threshold; the ROC and the distance histograms as PNG; and 1:N open-set
identification, leave-one-out (each image against all the others) and leave-one-person-out
(each person's images against everyone else, so the only right answer is "unknown").

The operating point: the threshold with the best accuracy on the pairs among those whose FAR is
at most ``max_far`` both on the pairs and on every different-person pair of the manifest (a far
larger sample of impostors); within the range of thresholds that tie, its middle, which leaves
the most room on both sides for distances that move between dlib builds.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from devices.protocol.errors import TackError
from gateway.verify.face.gallery import Gallery
from gateway.verify.face.image import Analysis, QualityLimits, analyse

THRESHOLDS = np.round(np.arange(0.30, 0.80001, 0.005), 3)


class DatasetError(TackError):
    """The folder is not a labelled face set this command can read."""


@dataclass
class Labelled:
    root: Path
    files: list[str]
    person: dict[str, str]
    pairs: list[tuple[str, str, bool]]
    block: dict[str, str] = field(default_factory=dict)


def load_labelled(root: Path) -> Labelled:
    manifest = root / "manifest.csv"
    if not root.is_dir():
        raise DatasetError(f"face set folder {root} does not exist")
    if not manifest.is_file():
        raise DatasetError(f"{manifest} is missing: a labelled face folder has manifest.csv")
    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "person"} <= set(rows[0]):
        raise DatasetError(f"{manifest} needs the columns file,person")
    person = {r["file"]: r["person"] for r in rows}
    files = list(person)
    pairs_csv = root / "pairs.csv"
    if pairs_csv.is_file():
        with pairs_csv.open(newline="", encoding="utf-8") as f:
            pairs = [
                (r["file_a"], r["file_b"], r["same"].strip() == "1") for r in csv.DictReader(f)
            ]
    else:
        pairs = [(a, b, person[a] == person[b]) for a, b in itertools.combinations(files, 2)]
    block: dict[str, str] = {}
    sources = root / "sources.csv"
    if sources.is_file():
        with sources.open(newline="", encoding="utf-8") as f:
            block = {r["file"]: r.get("block", "") for r in csv.DictReader(f) if r.get("block")}
    return Labelled(root, files, person, pairs, block)


@dataclass
class Encoded:
    encodings: dict[str, npt.NDArray[np.float64]]
    failed: dict[str, str]  # file -> reason code and detail
    seconds: list[float]  # detection + encoding time per image, decoding included


def encode_all(data: Labelled, limits: QualityLimits | None = None) -> Encoded:
    lim = limits or QualityLimits()
    out: dict[str, npt.NDArray[np.float64]] = {}
    failed: dict[str, str] = {}
    seconds: list[float] = []
    for i, name in enumerate(data.files):
        raw = (data.root / name).read_bytes()
        t0 = time.perf_counter()
        a: Analysis = analyse(raw, lim)
        if i > 0:  # the first one loads the models
            seconds.append(time.perf_counter() - t0)
        if a.ok and a.encoding is not None:
            out[name] = a.encoding
        else:
            failed[name] = f"{a.reason}: {a.detail}"
    return Encoded(out, failed, seconds)


@dataclass(frozen=True)
class Rates:
    threshold: float
    n_same: int
    n_diff: int
    accuracy: float
    far: float
    frr: float
    false_accepts: int
    false_rejects: int


def rates(d: npt.NDArray[np.float64], same: npt.NDArray[np.bool_], t: float) -> Rates:
    n_same, n_diff = int(same.sum()), int((~same).sum())
    fa = int(((d <= t) & ~same).sum())
    fr = int(((d > t) & same).sum())
    total = max(n_same + n_diff, 1)
    return Rates(
        float(t),
        n_same,
        n_diff,
        (total - fa - fr) / total,
        fa / max(n_diff, 1),
        fr / max(n_same, 1),
        fa,
        fr,
    )


def pair_distances(
    pairs: Sequence[tuple[str, str, bool]], enc: dict[str, npt.NDArray[np.float64]]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], list[tuple[str, str, bool]]]:
    used = [p for p in pairs if p[0] in enc and p[1] in enc]
    d = np.array([float(np.linalg.norm(enc[a] - enc[b])) for a, b, _ in used])
    same = np.array([s for _, _, s in used], dtype=bool)
    return d, same, used


def choose_threshold(
    d: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_],
    impostors: npt.NDArray[np.float64],
    max_far: float,
) -> float:
    best_acc, best = -1.0, [float(THRESHOLDS[0])]
    for t in THRESHOLDS:
        r = rates(d, same, float(t))
        far_all = float((impostors <= t).mean()) if len(impostors) else 0.0
        if r.far > max_far or far_all > max_far:
            continue
        if r.accuracy > best_acc + 1e-12:
            best_acc, best = r.accuracy, [float(t)]
        elif abs(r.accuracy - best_acc) <= 1e-12:
            best.append(float(t))
    # the middle of the longest contiguous run of tied thresholds
    runs: list[list[float]] = [[best[0]]]
    for t in best[1:]:
        if t - runs[-1][-1] <= 0.0051:
            runs[-1].append(t)
        else:
            runs.append([t])
    run = max(runs, key=len)
    return round((run[0] + run[-1]) / 2, 3)


def identification(
    data: Labelled, enc: dict[str, npt.NDArray[np.float64]], threshold: float, margin: float
) -> dict[str, Any]:
    """Open-set 1:N, leave-one-out and leave-one-person-out, at one (threshold, margin)."""
    files = [f for f in data.files if f in enc]
    people = [data.person[f] for f in files]
    matrix = np.stack([enc[f] for f in files]) if files else np.zeros((0, 128))
    right = wrong = refused_genuine = genuine = 0
    for i, f in enumerate(files):
        others = [j for j in range(len(files)) if j != i]
        if not any(people[j] == people[i] for j in others):
            continue  # nobody to recognise: counted in the leave-one-person-out part
        genuine += 1
        g = Gallery([people[j] for j in others], matrix[others])
        m = g.identify(enc[f], threshold=threshold, margin=margin)
        if m.person_id == people[i]:
            right += 1
        elif m.person_id is None:
            refused_genuine += 1
        else:
            wrong += 1
    impostor = accepted_impostor = 0
    for who in sorted(set(people)):
        rest = [j for j in range(len(files)) if people[j] != who]
        g = Gallery([people[j] for j in rest], matrix[rest])
        for i in (k for k in range(len(files)) if people[k] == who):
            impostor += 1
            if g.identify(matrix[i], threshold=threshold, margin=margin).person_id is not None:
                accepted_impostor += 1
    return {
        "threshold": threshold,
        "margin": margin,
        "genuine_probes": genuine,
        "identified": right,
        "identification_rate": right / max(genuine, 1),
        "misidentified": wrong,
        "refused": refused_genuine,
        "impostor_probes": impostor,
        "impostors_accepted": accepted_impostor,
        "open_set_far": accepted_impostor / max(impostor, 1),
    }


def choose_one_to_n(
    data: Labelled,
    enc: dict[str, npt.NDArray[np.float64]],
    ceiling: float,
    margins: Sequence[float],
    max_far: float,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """1:N operating point: at most the 1:1 threshold; the most people identified with an
    open-set FAR of at most ``max_far``; on a tie the widest margin, then the middle of the
    run of thresholds (the field notes warn that 1:N at scale needs the stricter side)."""
    grid = [round(float(t), 3) for t in np.arange(0.40, ceiling + 1e-9, 0.01)]
    results = [identification(data, enc, t, m) for m in margins for t in grid]
    ok = [r for r in results if r["open_set_far"] <= max_far] or results
    best_id = max(r["identified"] for r in ok)
    top = [r for r in ok if r["identified"] == best_id]
    widest = max(r["margin"] for r in top)
    ts = sorted(r["threshold"] for r in top if r["margin"] == widest)
    runs: list[list[float]] = [[ts[0]]]
    for t in ts[1:]:
        if t - runs[-1][-1] <= 0.0101:
            runs[-1].append(t)
        else:
            runs.append([t])
    run = max(runs, key=len)
    mid = run[len(run) // 2]
    chosen = next(r for r in top if r["margin"] == widest and r["threshold"] == mid)
    return chosen, results


def plot(
    out: Path,
    d: npt.NDArray[np.float64],
    same: npt.NDArray[np.bool_],
    impostors: npt.NDArray[np.float64],
    threshold: float,
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    ts = np.linspace(0.2, 1.0, 801)
    far = np.array([(d[~same] <= t).mean() for t in ts])
    far_all = np.array([(impostors <= t).mean() for t in ts]) if len(impostors) else far
    tar = np.array([(d[same] <= t).mean() for t in ts])
    at = rates(d, same, threshold)

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    floor = 1e-5
    ax.plot(np.maximum(far, floor), tar, label="pairs.csv impostors")
    ax.plot(np.maximum(far_all, floor), tar, "--", label="all different-person pairs")
    ax.plot(
        max(at.far, floor), 1 - at.frr, "o", color="black", label=f"operating point {threshold}"
    )
    ax.set_xscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(0.9, 1.001)
    ax.set_xlabel("false accept rate (FAR, log scale; 0 drawn at 1e-5)")
    ax.set_ylabel("true accept rate (1 - FRR)")
    ax.set_title("Face verification ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    roc = out / "roc.png"
    fig.savefig(roc)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    bins = [float(b) for b in np.linspace(0.0, 1.2, 61)]
    ax.hist(d[same], bins=bins, alpha=0.6, label=f"same person ({int(same.sum())})")
    ax.hist(d[~same], bins=bins, alpha=0.6, label=f"different people ({int((~same).sum())})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlabel("Euclidean distance between 128-d encodings")
    ax.set_ylabel("pairs")
    ax.set_title("Distance histogram (pairs)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    hist = out / "distances.png"
    fig.savefig(hist)
    plt.close(fig)
    return [roc, hist]


def evaluate(
    root: Path,
    out: Path,
    *,
    max_far: float = 0.001,
    margins: Sequence[float] = (0.0, 0.02, 0.05, 0.08),
    limits: QualityLimits | None = None,
    encoded: Encoded | None = None,
) -> dict[str, Any]:
    """Measure, choose, plot; write ``report.json`` beside the plots and return it.
    ``encoded`` reuses encodings a caller already has (the benchmark)."""
    data = load_labelled(root)
    encoded = encoded or encode_all(data, limits)
    enc = encoded.encodings
    d, same, used = pair_distances(data.pairs, enc)
    if not len(d) or same.all() or not same.any():
        raise DatasetError(f"{root}: need both same-person and different-person pairs to measure")
    impostors = np.array(
        [
            float(np.linalg.norm(enc[a] - enc[b]))
            for a, b in itertools.combinations(sorted(enc), 2)
            if data.person[a] != data.person[b]
        ]
    )
    threshold = choose_threshold(d, same, impostors, max_far)
    at = rates(d, same, threshold)
    all_pairs_same = np.array(
        [
            float(np.linalg.norm(enc[a] - enc[b]))
            for a, b in itertools.combinations(sorted(enc), 2)
            if data.person[a] == data.person[b]
        ]
    )
    all_d = np.r_[all_pairs_same, impostors]
    all_same = np.r_[np.ones(len(all_pairs_same), bool), np.zeros(len(impostors), bool)]
    blocks: dict[str, Any] = {}
    for b in sorted({data.block.get(a, "") for a, _, _ in used} - {""}):
        mask = np.array([data.block.get(a) == b for a, _, _ in used])
        r = rates(d[mask], same[mask], threshold)
        blocks[b] = asdict(r) | {
            "same_median": float(np.median(d[mask & same])) if (mask & same).any() else None,
            "same_max": float(np.max(d[mask & same])) if (mask & same).any() else None,
            "diff_min": float(np.min(d[mask & ~same])) if (mask & ~same).any() else None,
        }
    errors = [
        {"file_a": a, "file_b": b, "same": s, "distance": round(float(x), 4)}
        for (a, b, s), x in zip(used, d, strict=True)
        if (x <= threshold) != s
    ]
    one_to_n, grid_1n = choose_one_to_n(data, enc, threshold, margins, max_far)
    sweep = [asdict(rates(d, same, float(t))) for t in THRESHOLDS]
    pngs = plot(out, d, same, impostors, threshold)
    secs = np.array(encoded.seconds) if encoded.seconds else np.zeros(1)
    report: dict[str, Any] = {
        "folder": str(root),
        "images": len(data.files),
        "encoded": len(enc),
        "failed": encoded.failed,
        "pairs_used": len(used),
        "pairs_skipped": len(data.pairs) - len(used),
        "max_far": max_far,
        "threshold": threshold,
        "at_threshold": asdict(at),
        "at_0_6": asdict(rates(d, same, 0.6)),
        "all_pairs_at_threshold": asdict(rates(all_d, all_same, threshold)),
        "blocks": blocks,
        "errors": errors,
        "one_to_n": one_to_n,
        "one_to_n_at_1_1_threshold": [r for r in grid_1n if r["threshold"] == threshold],
        "encode_seconds": {
            "median": float(np.median(secs)),
            "mean": float(secs.mean()),
            "p90": float(np.percentile(secs, 90)),
            "max": float(secs.max()),
        },
        "sweep": sweep,
        "plots": [str(p) for p in pngs],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report
