"""Forensic bench timings: ``python bench/bench_forensics.py`` (writes the "forensics" section of BENCHMARKS.md).

One 1024 x 1024 photo-like JPEG (quality 90, made here: noise smoothed at three scales plus a gradient, so
JPEG treats it like a photo), every view of ``pipeline.forensics.inspect_image`` timed separately and
together (median of ``--repeats`` runs after one warm-up). Goal: all views <= 1 s. Also the same image as
HEIC, and the dataset shortcut audit on ../shared/data when it is there (file headers of every image, then
the file-facts baseline).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, markdown_table, write_section  # noqa: E402
from pipeline import forensics, images  # noqa: E402
from pipeline.forensics import jpeg, metadata, provenance, views  # noqa: E402

GOAL_SECONDS = 1.0


def photo(size: int = 1024, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3), np.float32)
    for sigma, amp in ((1, 12), (3, 25), (10, 40)):
        img += ndimage.gaussian_filter(rng.normal(0, 1, (size, size, 3)), (sigma, sigma, 0)) * amp * sigma ** 0.5
    img += np.mgrid[0:size, 0:size][1][..., None] / size * 80 + 90
    return np.clip(img, 0, 255).astype(np.uint8)


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up (tables, imports)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = ap.parse_args()

    rgb = photo()
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    heic = io.BytesIO()
    Image.fromarray(rgb).save(heic, "HEIF", quality=85)
    r = args.repeats
    with Image.open(io.BytesIO(data)) as im:
        rows = [
            {"step": "decode (pipeline.images.load_rgb)", "seconds": median_time(lambda: images.load_rgb(data), r)},
            {"step": "error level analysis (q90)", "seconds": median_time(lambda: views.error_level_analysis(rgb), r)},
            {"step": "noise residual + local variance", "seconds": median_time(lambda: views.noise_residual(rgb), r)},
            {"step": "2-D spectrum + azimuthal average", "seconds": median_time(lambda: views.spectrum(rgb), r)},
            {"step": "JPEG facts + ghosts (35 re-saves of a 512 px crop)",
             "seconds": median_time(lambda: jpeg.jpeg_facts(data, rgb), r)},
            {"step": "metadata (EXIF/XMP/IPTC)", "seconds": median_time(lambda: metadata.read_metadata(im), r)},
            {"step": "C2PA read (c2pa-python, offline)",
             "seconds": median_time(lambda: provenance.read_provenance(data, "JPEG"), r)},
        ]
    total = median_time(lambda: forensics.inspect_image(data), r)
    rows.append({"step": "**all views: inspect_image(JPEG, 1024x1024)**", "seconds": total})
    rows.append({"step": "all views: inspect_image(HEIC, 1024x1024)",
                 "seconds": median_time(lambda: forensics.inspect_image(heic.getvalue()), r)})
    for row in rows:
        row["ms"] = round(row.pop("seconds") * 1000, 1)
    body = [f"One 1024x1024 photo-like image ({len(data) / 1e3:.0f} kB JPEG q90), median of {r} runs after a "
            f"warm-up. Goal: all views <= {GOAL_SECONDS:.0f} s: **{'met' if total <= GOAL_SECONDS else 'NOT met'}** "
            f"({total:.2f} s). Load average when measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
            "(a shared machine: single steps vary by +-30%).", "", markdown_table(rows, ["step", "ms"])]

    shared = REPO.parent / "shared" / "data" / "manifest.csv"
    if shared.is_file():
        import pandas as pd

        from pipeline.forensics import audit

        listing = pd.read_csv(shared)
        manifest = pd.DataFrame({"dataset": listing["dataset"], "label": listing["label"],
                                 "y": (listing["label"] == "fake").astype(int),
                                 "path": [str(shared.parent / p) for p in listing["path"]]})
        start = time.perf_counter()
        facts = audit.collect_facts(manifest)
        t_facts = time.perf_counter() - start
        start = time.perf_counter()
        base = audit.baseline_auc(facts)
        t_base = time.perf_counter() - start
        body += ["", f"Shortcut audit on ../shared/data ({len(manifest):,} images): file headers {t_facts:.1f} s, "
                     f"file-facts baseline (random forest, 5 folds per dataset) {t_base:.1f} s; cached in the run "
                     "folder after the first time.", "",
                 markdown_table([{"dataset": b.dataset, "n": b.n, "file-facts ROC-AUC": round(b.roc_auc, 3),
                                  "shortcut": "yes" if b.shortcut else "no",
                                  "differences": "; ".join(b.differences) or "none"}
                                 for b in base.itertuples(index=False)])]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        write_section("forensics", "Forensic bench (all views of one photo) and the shortcut audit", text)


if __name__ == "__main__":
    main()
