"""Benchmark the CLIP encoder's exact int8 arithmetic (``pipeline.clip.EXACT_INT8_SETTING``): what it costs per
image and how far onnxruntime's fast kernel is from it on this CPU. Writes the "clip-exact" section of BENCHMARKS.md.

    .venv/bin/python bench/bench_clip_exact.py [--images 40] [--no-write]

Both sessions run the same file with one intra-op thread, one image per call (as ``pipeline.clip.embed`` does),
alternating image by image so that load from elsewhere falls on both alike. Per image: CPU seconds of the encoder
call (``time.thread_time``), and the cosine between the fast kernel's embedding and the exact one. On CPUs with
VNNI both kernels are exact (cosine 1.000); on AVX2-only CPUs the fast one saturates 16-bit sums (onnxruntime
issue #14642). Images: ``--images`` photos from ../shared/data (every data set in turn), or scikit-image's sample
photos where ../shared is absent.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import markdown_table, write_section  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def _images(n: int) -> tuple[list[np.ndarray], str]:
    from pipeline import images

    sets = sorted(p for p in SHARED.iterdir() if p.is_dir()) if SHARED.is_dir() else []
    if not sets:
        from skimage import data

        samples = [data.astronaut(), data.chelsea(), data.coffee()]
        return [samples[i % len(samples)] for i in range(n)], "scikit-image's sample photos"
    files = [sorted((s / label).glob("*.jpg")) for s in sets for label in ("real", "fake")]
    picked = [path for rank in range(n) for f in files if rank < len(f) for path in [f[rank]]][:n]  # round robin
    names = ", ".join(s.name for s in sets)
    return [images.load_rgb(p) for p in picked], f"{len(picked)} photos of ../shared/data ({names})"


def _cpu_flags() -> set[str]:
    try:
        line = next(line for line in open("/proc/cpuinfo") if line.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


def main() -> None:
    import onnxruntime as ort

    from pipeline import clip

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()

    exact = clip.load_encoder(threads=1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(clip.model_path()), sess_options=opts, providers=["CPUExecutionProvider"])

    def fast(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([clip.OUTPUT_NAME], {clip.INPUT_NAME: x})[0][0], dtype=np.float32)

    pixels, source = _images(args.images)
    inputs = [clip.preprocess(rgb) for rgb in pixels]
    exact(inputs[0]), fast(inputs[0])  # warm-up
    cpu = {"exact": [], "fast": []}
    cosines = []
    load_before = os.getloadavg()[0]
    for x in inputs:
        out = {}
        for name, enc in (("exact", exact), ("fast", fast)):
            t = time.thread_time()
            out[name] = enc(x)
            cpu[name].append(time.thread_time() - t)
        a, b = out["exact"], out["fast"]
        cosines.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    flags = _cpu_flags()
    vnni = sorted(f for f in flags if "vnni" in f) or ["none"]
    rows = [{"kernel": name, "CPU s per image, median": round(float(np.median(v)), 4),
             "p90": round(float(np.quantile(v, 0.9)), 4)} for name, v in cpu.items()]
    cos = np.array(cosines)
    body = (f"`python bench/bench_clip_exact.py --images {args.images}`: {source}, each through both sessions (one "
            f"thread, one image per call, alternating). CPU: VNNI flags {', '.join(vnni)}; avx2 "
            f"{'yes' if 'avx2' in flags else 'no'}. Load average before: {load_before:.1f}.\n\n"
            + markdown_table(rows)
            + f"\n\nCosine of the fast kernel's embedding to the exact one: median {np.median(cos):.3f}, "
              f"min {cos.min():.3f}, max {cos.max():.3f} (1.000 = the same embedding).")
    print(body)
    if not args.no_write:
        write_section("clip-exact",
                      "CLIP encoder: exact int8 arithmetic against the fast kernel (bench/bench_clip_exact.py)", body)


if __name__ == "__main__":
    main()
