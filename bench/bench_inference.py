"""Benchmark single-image inference and explanations of a run: warm check latency per model, Grad-CAM,
Grad-CAM++, SmoothGrad saliency, LIME at 1000 samples and MTCNN face detection; writes the
"inference" section of BENCHMARKS.md.

    .venv/bin/python bench/bench_inference.py [--run RUN] [--untrained mobilenet,custom_cnn] [--lime-samples 1000]

``--run``: run id / folder (default: the newest run with a finished Keras model). ``--untrained``: also time
registry models built with random weights at their default input size (same compute as a trained
one), for models the run has not finished yet. Goals (issue 4): check <= 100 ms for MobileNet,
<= 50 ms for the small CNNs; Grad-CAM <= 0.5 s.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import REPO, markdown_table, write_section  # noqa: E402

SMALL_CNNS = {"baseline_cnn", "custom_cnn", "tuned_cnn", "searched_cnn"}


def p50(fn, reps: int, warm: int = 2) -> float:
    for _ in range(warm):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def _photo():
    """A real face (../shared/data) or a synthetic one; and a 640x420 photo with two faces pasted."""
    import numpy as np
    from PIL import Image

    from pipeline.images import load_rgb

    files = sorted((REPO.parent / "shared" / "data" / "faces140k" / "real").glob("*.jpg"))[:2]
    if len(files) == 2:
        faces = [load_rgb(f) for f in files]
    else:
        rng = np.random.default_rng(0)
        faces = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(2)]
    canvas = np.full((420, 640, 3), 210, np.uint8)
    for face, (x, y) in zip(faces, [(60, 50), (400, 200)]):
        canvas[y:y + 160, x:x + 160] = np.asarray(Image.fromarray(face).resize((160, 160)))
    return faces[0], canvas, len(files) == 2


def _pick_run(ref: str | None):
    from pipeline import results

    if ref:
        return results.resolve_run(ref)
    for info in results.list_runs():
        if any((info.path / "models" / m / "model.keras").is_file() for m in info.complete_models):
            return info
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="run id or folder (default: newest run with a finished Keras model)")
    ap.add_argument("--untrained", default="", help="comma-separated registry models to time with random weights")
    ap.add_argument("--lime-samples", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--no-write", action="store_true", help="print only, do not update BENCHMARKS.md")
    args = ap.parse_args()

    import tensorflow as tf

    from pipeline import detectors, explain, explain_lime, faces
    from pipeline.detectors import keras_model
    from pipeline.config import ModelSpec
    from pipeline.models import REGISTRY, build_model

    rgb, canvas, real_faces = _photo()
    info = _pick_run(args.run)
    models: dict[str, tuple[keras_model.KerasDetector, str]] = {}
    if info is not None:
        names = [m for m in info.complete_models if (info.path / "models" / m / "model.keras").is_file()]
        for name, lm in detectors.load_many(info.path, names).items():
            models[name] = (lm, "trained")
    for name in [n for n in args.untrained.split(",") if n]:
        size = REGISTRY[name].default_image_size
        models[f"{name}"] = (keras_model.KerasDetector(name, build_model(ModelSpec(name=name, image_size=size)), 0.5, size),
                             "random weights")
    if not models:
        print("no model to time: train a run first (python -m pipeline train) or pass --untrained", file=sys.stderr)
        return 2

    rows = []
    for name, (lm, kind) in models.items():
        print(f"timing {name} ({kind}, {lm.image_size} px)…", flush=True)
        check = p50(lambda: lm.score([rgb]), args.reps, warm=3)
        row = {"model": name, "weights": kind, "input px": lm.image_size, "check p50 ms": check,
               "goal ms": 100 if "mobilenet" in name else (50 if name in SMALL_CNNS else None)}
        t = time.perf_counter()
        explain.heatmap(lm.model, rgb, "gradcam")  # builds the visualizers (clones the model)
        row["Grad-CAM first call s"] = time.perf_counter() - t
        for method in explain.METHODS:
            reps = max(3, args.reps // 3)
            row[f"{explain.METHOD_LABELS[method]} p50 ms"] = p50(lambda: explain.heatmap(lm.model, rgb, method), reps, 1)
        t = time.perf_counter()
        explain_lime.lime_explain(lm.model, rgb, num_samples=args.lime_samples, use_cache=False)
        row[f"LIME {args.lime_samples} s"] = time.perf_counter() - t
        rows.append(row)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)

    t = time.perf_counter()
    found = faces.detect_faces(canvas)
    first = time.perf_counter() - t
    face_ms = p50(lambda: faces.detect_faces(canvas), max(5, args.reps // 3), 1)
    face_small = p50(lambda: faces.detect_faces(rgb), max(5, args.reps // 3), 1)

    cols = ["model", "weights", "input px", "check p50 ms", "goal ms", "Grad-CAM p50 ms", "Grad-CAM++ p50 ms",
            "Saliency (SmoothGrad) p50 ms", f"LIME {args.lime_samples} s", "Grad-CAM first call s"]
    table = markdown_table(rows, cols)
    print(table)
    print(f"face detection (MTCNN): 640x420 photo with 2 faces p50 {face_ms:.0f} ms ({len(found)} found; first call "
          f"{first:.1f} s incl. building the detector), 256x256 face crop p50 {face_small:.0f} ms")
    busy = ""
    try:
        load1 = os.getloadavg()[0]
        if load1 > 1.0:
            busy = (f" The 1-minute load average was {load1:.1f} when this ran (another job, e.g. training, was "
                    f"sharing the 2 cores): numbers are pessimistic.")
    except OSError:
        pass
    body = (
        f"`bench/bench_inference.py`: run `{info.run_id if info else '-'}`; TensorFlow {tf.__version__}; "
        f"test image a {'real 256x256 face (faces140k)' if real_faces else 'random 256x256 image'}. "
        f"*check* = one decoded image resized and scored by one model through `predict_on_batch` (warm, "
        f"median of {args.reps}); Grad-CAM/Grad-CAM++/SmoothGrad (10 noisy samples) via tf-keras-vis on "
        f"one image, warm (the first call builds the linearised clone); LIME = `{args.lime_samples}` samples, SLIC "
        f"~50 segments, batches of {explain_lime.LIME_BATCH}, no cache. *random weights*: models the run had not "
        f"finished, timed with untrained weights at their default size (same compute).{busy}\n\n"
        f"{table}\n\n"
        f"Face detection (MTCNN, `mtcnn` package): a 640x420 photo with 2 faces, p50 **{face_ms:.0f} ms** "
        f"({len(found)} found); a 256x256 face crop p50 {face_small:.0f} ms; first call {first:.1f} s (builds "
        f"the detector). Goals: check <= 100 ms (MobileNet), <= 50 ms (small CNNs); Grad-CAM <= 0.5 s.")
    if not args.no_write:
        write_section("inference", "Single-image check and explanations", body)
        print("wrote the inference section of BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
