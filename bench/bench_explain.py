"""What the Explain page costs for a new image: every gradient map of every model, and LIME per model.

    .venv/bin/python bench/bench_explain.py [--artifacts DIR] [--run ID] [--lime-samples N] [--images 3]

Loads the run's Keras models once (as the dashboard server does), then for ``--images`` test
images it has not seen before times :func:`pipeline.explain.explain_all` (Grad-CAM, Grad-CAM++ and
SmoothGrad saliency for every model: what the page draws for a new image). The first image pays
for building the visualizers (one linearised clone per model, once per server): it is reported
apart. Then LIME for each model, uncached (``use_cache=False``), at the page's default sample
count (:func:`pipeline.explain_lime.lime_sample_budget`) or ``--lime-samples``.

Prints two tables and the 1-minute load average; writes nothing (the numbers go into BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import markdown_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, default=None)
    ap.add_argument("--run", default=None)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--lime-samples", type=int, default=None)
    ap.add_argument("--skip-lime", action="store_true")
    args = ap.parse_args(argv)
    if args.artifacts:
        os.environ["DEEPFAKE_LENS_ARTIFACTS"] = str(args.artifacts.resolve())
    from pipeline import checking, detectors, explain, explain_lime, images, results

    run = results.load_run(args.run)
    t0 = time.perf_counter()
    models = {n: d for n, d in detectors.load_many(run.path).items() if d.kind == "keras"}  # gradient maps need Keras
    load_s = time.perf_counter() - t0
    names = list(models)
    preds = run.predictions(names[0])
    paths = preds[preds["split"] == "test"]["path"].drop_duplicates().sample(args.images + 1, random_state=0)
    rgbs = [images.load_rgb(p) for p in paths]
    print(f"run {run.run_id}: {', '.join(names)}; models loaded in {load_s:.1f} s; "
          f"load average {os.getloadavg()[0]:.2f}")

    rows = []
    for i, rgb in enumerate(rgbs):
        t0 = time.perf_counter()
        maps = explain.explain_all({n: lm.model for n, lm in models.items()}, rgb,
                                   out_hw=explain.display_size(rgb.shape[:2]))
        maps = [e for per in maps.values() for e in per.values()]
        seconds = time.perf_counter() - t0
        rows.append({"image": "first (builds visualizers)" if i == 0 else f"new image {i}",
                     "maps": len(maps), "seconds": round(seconds, 2), "load avg": round(os.getloadavg()[0], 2)})
    print(markdown_table(rows))
    warm = [r["seconds"] for r in rows[1:]]
    if warm:
        print(f"gradient maps for a new image, warm: median {statistics.median(warm):.2f} s")

    if not args.skip_lime:
        best = checking.best_model(run.summary(), names)
        lime_rows = []
        for name in [best] + [n for n in names if n != best]:
            t0 = time.perf_counter()
            budget, per_image = explain_lime.lime_sample_budget(models[name].model)
            probe_s = time.perf_counter() - t0
            n = args.lime_samples or budget  # the page's default: the time budget's count
            t0 = time.perf_counter()
            res = explain_lime.lime_explain(models[name].model, rgbs[1], num_samples=n, model_name=name,
                                       use_cache=False)
            lime_rows.append({"model": name + (" (page default)" if name == best else ""), "samples": res.num_samples,
                              "ms per sample (estimate)": round(per_image * 1000, 1), "timing probe s": round(probe_s, 2),
                              "seconds": round(time.perf_counter() - t0, 2), "R2": round(res.score, 2),
                              "load avg": round(os.getloadavg()[0], 2)})
        print(markdown_table(lime_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
