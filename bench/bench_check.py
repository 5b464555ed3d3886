"""CPU and wall time of one photo check (``pipeline.checking.check_files``: face finding, every model,
the combined model and the three-way verdict with its stability check), one check at a time and
several at once on threads of one process (as the dashboard's sessions run them). Prints a table;
writes nothing.

    .venv/bin/python bench/bench_check.py [--artifacts DIR] [--photos 12] [--concurrent 1 4] [--seed 0]

Photos: ``--photos`` faces drawn at random (``--seed``) from ``../shared/data/manifest.csv``, every one
new to the encoder's memory (:func:`pipeline.clip.forget_recent` before each round); the models are
loaded and warmed on two other faces first. CPU = the process's CPU time (all threads) over the
round, divided by the photos; wall = the round's wall time divided by the photos (for concurrent
checks the throughput, not a single check's latency). Give the 1-minute load average with the
numbers: the cores may be shared.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.common import markdown_table  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def shared_faces(n: int, seed: int) -> list[Path]:
    """``n`` face files drawn at random from ../shared/data (SystemExit when it is absent)."""
    import numpy as np

    manifest = SHARED / "manifest.csv"
    if not manifest.is_file():
        raise SystemExit(f"no faces at {SHARED}: this benchmark needs ../shared/data beside the repository")
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = np.random.default_rng(seed)
    return [SHARED / rows[i]["path"] for i in rng.choice(len(rows), n, replace=False)]


def one_round(files: list[Path], setup, concurrent: int) -> dict:
    """Check ``files`` on ``concurrent`` threads (each its share, one file per call); CPU and wall per photo."""
    from pipeline import checking, clip

    clip.forget_recent()
    shares = [files[k::concurrent] for k in range(concurrent)]
    verdicts: list[str] = []

    def work(share):
        for f in share:
            for check in checking.check_files([f], setup.models, combiner=setup.combiner, policy=setup.policy):
                verdicts.extend(face.verdict["verdict"] for face in check.faces if face.verdict)

    threads = [threading.Thread(target=work, args=(s,)) for s in shares]
    load = os.getloadavg()[0]
    c0, t0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return {"concurrent checks": concurrent, "photos": len(files), "faces judged": len(verdicts),
            "CPU s per photo": round(cpu / len(files), 3), "wall s per photo": round(wall / len(files), 3),
            "load at start": round(load, 2), "load at end": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, default=None,
                    help="artifacts folder (default $DEEPFAKE_LENS_ARTIFACTS or artifacts/): the run the pages show")
    ap.add_argument("--run", type=Path, default=None, help="a run folder (overrides --artifacts)")
    ap.add_argument("--photos", type=int, default=12)
    ap.add_argument("--concurrent", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from pipeline import checking, runs

    run = args.run if args.run is not None else runs.latest_run(args.artifacts).path
    files = shared_faces(args.photos + 2, args.seed)
    t0 = time.perf_counter()
    setup = checking.load_check_setup(Path(run))
    checking.check_files(files[:2], setup.models, combiner=setup.combiner, policy=setup.policy)  # warm
    print(f"run {Path(run).name}: models loaded and warmed in {time.perf_counter() - t0:.1f} s; "
          f"problems: {setup.problems or 'none'}", flush=True)
    rows = [one_round(files[2:], setup, c) for c in args.concurrent]
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
