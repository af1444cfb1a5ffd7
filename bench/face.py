"""The face check's figures: encoding time per image, 1:N search over 10,000 templates, and
pair accuracy, FAR and FRR on the shared labelled set at the configured operating point.

- Encoding: decode + quality gates + HOG detection + dlib's 128-d encoding, one image at a time
  in one process after a warm-up image (what one worker does per frame), and the throughput of
  the real pool (``face.workers`` processes) over the same images.
- 1:N: the real encodings plus synthesised people up to 10,000 templates. Each synthetic person
  is a real encoding moved by Gaussian noise of about 0.68 in norm, as far as two different
  real people typically are; real people are enrolled with one image and probed with their
  others. Target: <= 2 ms per query.
- Accuracy: ``tack faces evaluate`` on ``../shared/data/faces`` (ROC and histograms in
  ``bench/face-eval/``). Without that folder (a fresh clone has no ``../shared/``) the
  accuracy part is skipped, by name, and the timings use the project's own test photos.

Writes ``bench/face.json`` and ``bench/face.md``. Run with ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.config import FaceSettings
from gateway.verify.face.evaluate import encode_all, evaluate, load_labelled
from gateway.verify.face.gallery import Gallery
from gateway.verify.face.image import analyse
from gateway.verify.face.pool import EncoderPool
from gateway.verify.face.verifier import limits_from

HERE = Path(__file__).parent
PROJECT = HERE.parent
SHARED = PROJECT.parent / "shared" / "data" / "faces"
OWN = PROJECT / "tests" / "data" / "faces"
RESULTS = HERE / "face.json"
TABLE = HERE / "face.md"
EVAL_DIR = HERE / "face-eval"


def pool_throughput(files: list[Path], workers: int) -> float:
    import asyncio

    pool = EncoderPool(workers=workers, queue=len(files))
    pool.start()
    datas = [f.read_bytes() for f in files]

    async def run() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(pool.analyse(d) for d in datas))
        return len(datas) / (time.perf_counter() - t0)

    try:
        return asyncio.run(run())
    finally:
        pool.close()


def one_to_n(
    files: list[str],
    person: dict[str, str],
    enc: dict[str, np.ndarray],
    size: int,
    settings: FaceSettings,
    rng: np.random.Generator,
) -> dict[str, Any]:
    by_person: dict[str, list[str]] = {}
    for f in files:
        if f in enc:
            by_person.setdefault(person[f], []).append(f)
    enrolled = {p: fs[0] for p, fs in by_person.items()}
    probes = [(p, f) for p, fs in by_person.items() for f in fs[1:]]
    ids = list(enrolled)
    rows = [enc[f] for f in enrolled.values()]
    seeds = np.stack([enc[f] for f in enc])
    n_synth = max(size - len(rows), 0)
    synth = seeds[rng.integers(0, len(seeds), n_synth)] + rng.normal(0, 0.06, (n_synth, 128))
    gallery = Gallery(ids + [f"synthetic-{i}" for i in range(n_synth)], np.vstack([rows, synth]))
    queries = [enc[f] for _, f in probes] or [rows[0]]
    for q in queries[:5]:  # warm the caches
        gallery.identify(q, threshold=settings.threshold_1n, margin=settings.margin_1n)
    times: list[float] = []
    right = wrong = refused = 0
    rounds = max(1, 2000 // len(queries))
    for _ in range(rounds):
        for (who, _f), q in zip(probes, queries, strict=False):
            t0 = time.perf_counter()
            m = gallery.identify(q, threshold=settings.threshold_1n, margin=settings.margin_1n)
            times.append(time.perf_counter() - t0)
            if _ == 0:
                if m.person_id == who:
                    right += 1
                elif m.person_id is None:
                    refused += 1
                else:
                    wrong += 1
    ms = sorted(t * 1000 for t in times)
    return {
        "templates": len(gallery),
        "people": gallery.people,
        "queries": len(ms),
        "ms_per_query_median": statistics.median(ms),
        "ms_per_query_p99": ms[int(len(ms) * 0.99) - 1],
        "target_ms": 2.0,
        "probes": len(probes),
        "identified": right,
        "refused": refused,
        "misidentified": wrong,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=SHARED, help="labelled face folder")
    parser.add_argument("--templates", type=int, default=10_000)
    args = parser.parse_args()
    settings = FaceSettings()
    limits = limits_from(settings)
    folder: Path = args.faces
    have_shared = (folder / "manifest.csv").is_file()
    if not have_shared:
        print(
            f"face bench: the labelled face set is absent at {folder.resolve()} "
            f"(expected manifest.csv there); accuracy, FAR and FRR are NOT measured, and the "
            f"timings use the project's own photos in {OWN}"
        )
        folder = OWN
    data = load_labelled(folder)
    analyse((folder / data.files[0]).read_bytes(), limits)  # load the models
    encoded = encode_all(data, limits)
    secs = sorted(encoded.seconds)
    paths = [folder / f for f in data.files]
    throughput = pool_throughput(paths, settings.workers)
    search = one_to_n(
        data.files,
        data.person,
        encoded.encodings,
        args.templates,
        settings,
        np.random.default_rng(20251127),
    )
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "folder": str(folder),
        "encoding": {
            "images": len(secs) + 1,
            "median_s": statistics.median(secs),
            "mean_s": statistics.fmean(secs),
            "p90_s": secs[int(len(secs) * 0.9) - 1] if len(secs) >= 10 else max(secs),
            "max_s": max(secs),
            "pool_workers": settings.workers,
            "pool_images_per_s": throughput,
        },
        "one_to_n": search,
        "accuracy": None,
    }
    if have_shared:
        report = evaluate(folder, EVAL_DIR, encoded=encoded)
        cfg = report["sweep"]
        at_cfg = next(r for r in cfg if abs(r["threshold"] - settings.threshold) < 1e-9)
        result["accuracy"] = {
            "chosen_threshold": report["threshold"],
            "configured_threshold": settings.threshold,
            "at_configured": at_cfg,
            "all_pairs_at_chosen": report["all_pairs_at_threshold"],
            "blocks": report["blocks"],
            "one_to_n_loo": report["one_to_n"],
            "plots": report["plots"],
        }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    TABLE.write_text(table(result), encoding="utf-8")
    print(TABLE.read_text(encoding="utf-8"))
    return 0


def table(r: dict[str, Any]) -> str:
    e, s, a = r["encoding"], r["one_to_n"], r["accuracy"]
    lines = [
        f"# Face bench ({r['machine']['cpus']} CPUs, Python {r['machine']['python']})",
        "",
        f"Images: {r['folder']}",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| encoding per image, median / p90 / max | {e['median_s'] * 1000:.0f} / "
        f"{e['p90_s'] * 1000:.0f} / {e['max_s'] * 1000:.0f} ms ({e['images']} images) |",
        f"| pool throughput ({e['pool_workers']} processes) | {e['pool_images_per_s']:.1f} "
        "images/s |",
        f"| 1:N query over {s['templates']:,} templates ({s['people']:,} people), median / p99 "
        f"| {s['ms_per_query_median']:.3f} / {s['ms_per_query_p99']:.3f} ms (target <= 2 ms) |",
        f"| 1:N probes identified / refused / wrong | {s['identified']} / {s['refused']} / "
        f"{s['misidentified']} of {s['probes']} |",
    ]
    if a is None:
        lines.append("| pair accuracy, FAR, FRR | not measured: the shared face set is absent |")
    else:
        c = a["at_configured"]
        lines += [
            f"| threshold chosen from the data / configured | {a['chosen_threshold']} / "
            f"{a['configured_threshold']} |",
            f"| pairs.csv at the configured threshold: accuracy, FAR, FRR | "
            f"{c['accuracy']:.2%}, {c['far']:.2%} ({c['false_accepts']}/{c['n_diff']}), "
            f"{c['frr']:.2%} ({c['false_rejects']}/{c['n_same']}) |",
            f"| every pair of the manifest: FAR | {a['all_pairs_at_chosen']['far']:.3%} "
            f"({a['all_pairs_at_chosen']['false_accepts']}/{a['all_pairs_at_chosen']['n_diff']}) |",
        ]
        for name, b in a["blocks"].items():
            lines.append(
                f"| block {name}: accuracy, false accepts, false rejects | {b['accuracy']:.2%}, "
                f"{b['false_accepts']}, {b['false_rejects']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
