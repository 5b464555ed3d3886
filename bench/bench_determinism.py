"""Benchmark deterministic training: does the same config train the same models, and at what cost?

Trains the `default` config's Keras models (no embeddings, combined models or experiments; ``train`` still fits
its verdict on the best of them, in the whole-run times) into fresh scratch folders, each training run in its own
process, ``--repeats`` times with TensorFlow's op determinism on (``pipeline.training.seed_training``, what
``train`` does) and as many times with it off (the seeds alone, what ``train`` did before 2026-11-30). Prints, per model, the training seconds of
every repeat, the test ROC-AUC and whether the repeats' test predictions are identical (a SHA-256 of the
float32 scores), and writes the "determinism" section of BENCHMARKS.md.

    .venv/bin/python bench/bench_determinism.py [--config default] [--repeats 2] [--no-write]

The decoded-image cache of ``artifacts/`` is shared (linked), so the timings are of training alone; about
2.5 minutes a repeat on 2 cores for `default`.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.common import REPO, markdown_table, write_section  # noqa: E402

MARK = "BENCH_DETERMINISM "


def child(config: str, out: Path, deterministic: bool) -> None:
    """One training run in this process; prints one JSON line per model."""
    import pandas as pd

    from pipeline import config as config_mod, config_load, runner, training

    if not deterministic:  # the seeds alone, as before op determinism was switched on
        os.environ.pop("TF_DETERMINISTIC_OPS", None)  # before TensorFlow is imported: it would switch it on
        import keras

        training.seed_training = keras.utils.set_random_seed
    cfg = config_load.load(REPO / "configs" / f"{config}.toml")
    out.mkdir(parents=True, exist_ok=True)
    cache = REPO / "artifacts" / "cache"  # the decoded-image cache (artifacts.cache_dir), linked, not copied
    if cache.is_dir() and not (out / "cache").exists():
        (out / "cache").symlink_to(cache)
    keras_models = tuple(m for m in cfg.models if m.kind == "keras")
    cfg = dataclasses.replace(cfg, name=f"det-{config}", artifacts_dir=str(out), models=keras_models,
                              verdict=config_mod.VerdictConfig(),
                              embeddings=dataclasses.replace(cfg.embeddings, enabled=False),
                              experiments=dataclasses.replace(cfg.experiments, robustness=False, crossdataset=False))
    run_dir = runner.train_run(cfg, log=lambda _: None)
    for spec in keras_models:
        metrics = json.loads((run_dir / "models" / spec.name / "metrics.json").read_text())
        p = pd.read_parquet(run_dir / "models" / spec.name / "predictions.parquet")
        test = p[p["split"] == "test"]["p_fake"].to_numpy(dtype="float32")
        print(MARK + json.dumps({"model": spec.name, "seconds": metrics["train_seconds"],
                                 "auc": metrics["scopes"]["all"]["roc_auc"],
                                 "sha": hashlib.sha256(test.tobytes()).hexdigest()[:12]}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.config, Path(args.child[1]), args.child[0] == "on")
        return 0
    results: dict[str, list[list[dict]]] = {"on": [], "off": []}
    walls: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="bench-determinism-") as tmp:
        for i in range(args.repeats):
            for mode in ("off", "on"):  # alternating, so a busy spell of the machine hits both
                start = time.perf_counter()
                done = subprocess.run([sys.executable, __file__, "--config", args.config, "--child", mode,
                                       str(Path(tmp) / f"{mode}{i}")], capture_output=True, text=True)
                walls[mode].append(time.perf_counter() - start)
                if done.returncode:
                    print(done.stderr[-3000:])
                    return done.returncode
                results[mode].append([json.loads(line[len(MARK):]) for line in done.stdout.splitlines()
                                      if line.startswith(MARK)])
                print(f"{mode} #{i + 1}: {walls[mode][-1]:.0f} s", flush=True)
    rows = []
    for j, first in enumerate(results["on"][0]):
        row = {"model": first["model"]}
        for mode in ("off", "on"):
            runs = [r[j] for r in results[mode]]
            row[f"train s, determinism {mode}"] = ", ".join(f"{r['seconds']:.1f}" for r in runs)
            row[f"test ROC-AUC, {mode}"] = ", ".join(f"{r['auc']:.3f}" for r in runs)
            row[f"same predictions, {mode}"] = "yes" if len({r["sha"] for r in runs}) == 1 else "no"
        rows.append(row)
    total = {mode: [sum(m["seconds"] for m in run) for run in results[mode]] for mode in ("off", "on")}
    rows.append({"model": "all (training seconds)", **{f"train s, determinism {mode}": ", ".join(
        f"{t:.0f}" for t in total[mode]) for mode in ("off", "on")}})
    def seconds(mode: str) -> str:
        return ", ".join(f"{w:.0f} s" for w in walls[mode])

    body = (f"`python bench/bench_determinism.py --config {args.config} --repeats {args.repeats}`: the config's "
            f"Keras models trained {args.repeats} times with TensorFlow's op determinism on "
            f"(`pipeline.training.seed_training`, what `train` does) and {args.repeats} times with the seeds alone "
            f"(off, what `train` did before), each run in a fresh process from the same config, data, split and "
            f"seed; runs alternate off/on.\n\n" + markdown_table(rows)
            + f"\n\nWhole runs (process start, data loading and evaluation included): off {seconds('off')}; "
            f"on {seconds('on')}.")
    print(body)
    if not args.no_write:
        write_section("determinism", f"Deterministic training (`{args.config}`'s Keras models)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
