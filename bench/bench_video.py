"""Benchmark the video check: seconds per 10-second 1080p clip at the default sampling (goal <= 10 s,
issue 21) and the throughput of the scoring step; writes the "video" section of BENCHMARKS.md.

    .venv/bin/python bench/bench_video.py [--run RUN [--run RUN ...]] [--reps 3]

Clips: the 10-second 1080p DFDC clip of ../shared/videos (real footage, with audio) when present, a
10-second 1080p clip made here with PyAV from ../shared face photos (two faces, 30 frames/s), and a
10-minute 640x360 clip at 2 frames/s (keyframe every 2 s) to show that the default sampling costs a
long clip what it costs a short one. Each clip is analysed once to warm up (TensorFlow graphs, the
MTCNN detector), then ``--reps`` times; the table gives the median. Models: every Keras model of the
run and its combined model, as ``python -m pipeline predict`` uses them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import REPO, markdown_table, write_section  # noqa: E402

SHARED = REPO.parent / "shared"
DFDC_CLIP = SHARED / "videos" / "fake" / "3d96706a7e6b.mp4"


def _faces():
    import numpy as np
    from PIL import Image

    files = sorted((SHARED / "data" / "faces140k" / "real").glob("*.jpg"))[:2]
    if len(files) == 2:
        return [np.asarray(Image.open(f).convert("RGB")) for f in files]
    rng = np.random.default_rng(0)  # no shared data: smooth blobs (no face will be found, timing still holds)
    return [rng.integers(80, 180, (256, 256, 3), dtype=np.uint8) for _ in range(2)]


def make_clips(folder: Path) -> dict[str, Path]:
    from video_clips import blank_frames, face_frames, write_clip

    clips = {}
    if DFDC_CLIP.is_file():
        clips["DFDC clip, 1920x1080, 10.0 s, 29.97 fps (shared/videos)"] = DFDC_CLIP
    made = folder / "faces_1080p_10s.mp4"
    write_clip(made, face_frames(_faces(), n_frames=300, size=(1080, 1920), side=420, step=2,
                                 spots=[(300, 330), (1150, 300)]), fps=30)
    clips["two pasted faces, 1920x1080, 10 s, 30 fps (made here)"] = made
    long = folder / "long_360p_10min.mp4"
    write_clip(long, blank_frames(1200, size=(360, 640)), fps=2, gop=4)
    clips["faceless, 640x360, 10 min, 2 fps (made here)"] = long
    return clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", help="run id, prefix or folder; repeat for several (default: the newest run)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    from pipeline import detectors
    from pipeline.detectors import combined as ensemble
    from pipeline.results import resolve_run
    from pipeline.video import decode, scoring

    rows, described = [], []
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        clips = make_clips(Path(tmp))
        for ref in args.run or [None]:
            info = resolve_run(ref)
            models = detectors.load_many(info.path)
            try:
                combiner = ensemble.load_combiner(info.path, keras_models=models)
            except (ValueError, KeyError, OSError) as exc:
                print(f"note: no combined model ({exc})")
                combiner = None
            described.append(f"`{info.run_id}`: " + ", ".join(models)
                             + (f" + {combiner.name}" if combiner is not None else " (log-odds vote)"))
            for label, clip in clips.items():
                scoring.analyse_video(clip, models, combiner)  # warm-up
                runs = [scoring.analyse_video(clip, models, combiner) for _ in range(args.reps)]
                total = [sum(v for k, v in r.seconds.items() if k != "faces_scored") for r in runs]
                med = runs[sorted(range(len(runs)), key=lambda i: total[i])[len(runs) // 2]]
                s = med.seconds
                rows.append({
                    "run": info.run_id, "clip": label, "sampled frames": len(med.frames),
                    "faces scored": s["faces_scored"], "total s (median)": statistics.median(total),
                    "decode s": s["decode"], "find faces s": s["faces"], "score s": s["score"],
                    "scoring faces/s": (s["faces_scored"] / s["score"]) if s["score"] and s["faces_scored"] else None,
                    "scoring frames/s": (len(med.frames) / s["score"]) if s["score"] and s["faces_scored"] else None,
                    "verdict": med.verdict})
                print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    body = (f"Runs (models): {'; '.join(described)}. Default sampling ({decode.Sampling().rule}), frames decoded "
            f"to at most {decode.DEFAULT_MAX_SIDE} px, faces found by MTCNN on a 640 px copy; median of {args.reps} "
            f"warm runs. Goal (issue 21): a 10-second 1080p clip in <= 10 s. \"score\" is every model and the combined "
            f"model on every face crop in one batch; its frames/s counts sampled frames. Load average during the "
            f"measurement: {load:.1f} on {os.cpu_count()} cores (other jobs were running: the times are upper bounds "
            f"of a quiet machine's).\n\n"
            + markdown_table(rows) + "\n")
    print(body)
    if not args.no_write:
        write_section("video", "Video check (pipeline.video)", body)


if __name__ == "__main__":
    main()
