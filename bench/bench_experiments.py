"""Benchmark of pipeline.experiments on ../shared/data: search, robustness per model, generalisation matrix.

    python bench/bench_experiments.py [--run RUN] [--reduced] [--extra-models tuned_cnn,custom_cnn]

Works on a scratch copy of a trained run (default: the latest run in artifacts/), so the run
itself is left as it is; the decoded-image cache of artifacts/ is reused. Settings are those of
configs/default.toml's [experiments] section; ``--reduced`` shrinks the search budget (for a busy
machine) and says so in the section. ``--extra-models`` trains more small models into the scratch
copy first (3 epochs, at most 1,500 training images each), so the robustness sweep compares
several models even when the run has only one. Writes the "experiments" section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from bench.common import markdown_table, write_section  # noqa: E402
from pipeline import artifacts, config, config_load, experiments  # noqa: E402
from pipeline.experiments import steps  # noqa: E402
from pipeline.results import resolve_run  # noqa: E402


def scratch_copy(run_dir: Path, root: Path) -> Path:
    out = root / run_dir.name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for f in ("run.json", "manifest.parquet", "skipped.csv", "summary.csv"):
        if (run_dir / f).exists():
            shutil.copy2(run_dir / f, out / f)
    for m in (run_dir / "models").iterdir():
        if (m / "done.json").exists():
            shutil.copytree(m, out / "models" / m.name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", help="trained run (default: latest)")
    ap.add_argument("--reduced", action="store_true", help="smaller search budget (busy machine)")
    ap.add_argument("--extra-models", default="", help="comma-separated models to train into the scratch copy")
    ap.add_argument("--scratch", default="/tmp/deepfake_lens_bench_experiments")
    args = ap.parse_args()

    info = resolve_run(args.run)
    default = config_load.load("default")
    run_cfg = config_load.from_json_dict(artifacts.read_json(info.path / "run.json")["config"])
    run_dir = scratch_copy(info.path, Path(args.scratch))
    exp = default.experiments
    notes = []
    if args.reduced:
        exp = dataclasses.replace(exp, search_max_trials=2, search_epochs=1, search_max_train_images=800,
                                  search_final_epochs=2)
        notes.append(f"**Reduced search budget** (the shared 2-core machine was busy): {exp.search_max_trials} "
                     f"trials x {exp.search_epochs} epochs on {exp.search_max_train_images} training images, best "
                     f"retrained for {exp.search_final_epochs} epochs, instead of the default "
                     f"{default.experiments.search_max_trials} x {default.experiments.search_epochs} on "
                     f"{default.experiments.search_max_train_images} and {default.experiments.search_final_epochs}.")
    cfg = dataclasses.replace(run_cfg, experiments=exp, artifacts_dir=str(info.path.parent))
    log = lambda m: print(m, flush=True)  # noqa: E731
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    rows = []

    extra = [m for m in args.extra_models.split(",") if m]
    if extra:
        from pipeline import data, runner

        x = data.load_arrays(manifest, 64, artifacts.cache_dir(cfg.artifacts_dir))
        for name in extra:
            spec = dataclasses.replace(default.model(name) if name in default.model_names else config.ModelSpec(name),
                                       image_size=64, epochs=3, max_train_images=1500)
            t = time.perf_counter()
            runner.train_one(spec, cfg, run_dir, manifest, x)
            rows.append({"step": f"train {name} (3 epochs, 1,500 images, for the sweep)",
                         "seconds": time.perf_counter() - t})
        notes.append(f"Models {', '.join(extra)} were trained for this benchmark only (64 px, 3 epochs, at most "
                     "1,500 training images): far from converged, compare their robustness relative to their clean AUC.")
        cfg = dataclasses.replace(cfg, models=cfg.models + tuple(
            config.ModelSpec(name=n, image_size=64) for n in extra if n not in cfg.model_names))

    # --- search
    t = time.perf_counter()
    steps.run("search", cfg, run_dir, log=log)
    rows.append({"step": f"search ({exp.search_tuner}, {exp.search_max_trials} trials x {exp.search_epochs} epochs, "
                         f"{exp.search_image_size} px) + retrain best {exp.search_final_epochs} epochs",
                 "seconds": time.perf_counter() - t})
    trials = pd.read_csv(experiments.latest_dir(run_dir, "search") / "trials.csv")

    # --- robustness, one model at a time (each call decodes and perturbs the test images itself)
    from pipeline.experiments import crossdataset, robustness

    models = sorted(robustness._models(cfg, run_dir), key=lambda m: m != "searched_cnn")  # see _models
    for m in models:
        one = dataclasses.replace(cfg, models=tuple(s for s in cfg.models if s.name == m) or
                                  (config.ModelSpec(name=m),))
        t = time.perf_counter()
        robustness.run_robustness(one, run_dir, log=log)
        rows.append({"step": f"robustness sweep: {m} ({len(robustness.sweep_levels(exp))} levels)",
                     "seconds": time.perf_counter() - t})
    robustness.run_robustness(cfg, run_dir, log=log)  # combines the cached per-model results
    table = pd.read_csv(experiments.latest_dir(run_dir, "robustness") / "robustness.csv")
    n_test = artifacts.read_json(experiments.latest_dir(run_dir, "robustness") / "settings.json")["n_test"]

    # --- generalisation matrix
    t = time.perf_counter()
    steps.run("crossdataset", cfg, run_dir, log=log)
    rows.append({"step": f"generalisation matrix ({exp.model}, {exp.image_size} px, {exp.crossdataset_epochs} epochs, "
                         f"<= {exp.max_train_images} training images per dataset)",
                 "seconds": time.perf_counter() - t})
    matrix = pd.read_csv(experiments.latest_dir(run_dir, "crossdataset") / "matrix.csv")

    # --- ensemble
    t = time.perf_counter()
    steps.run("ensemble", cfg, run_dir, log=log)
    rows.append({"step": "ensemble (mean + stacked)", "seconds": time.perf_counter() - t})

    rob = robustness.drop_table(table, "all")
    steadiest = robustness.most_robust(rob)
    rob = rob.sort_values("mean drop").reset_index()
    auc = matrix.pivot(index="train_on", columns="test_on", values="roc_auc").reset_index()
    findings = crossdataset.transfer_findings(matrix)
    best = trials.iloc[0].to_dict() if len(trials) else {}
    body = "\n\n".join([
        f"Run `{info.run_id}` ({len(manifest)} images; test split {int((manifest['split'] == 'test').sum())}), "
        f"settings of `configs/default.toml` [experiments]. Command: `python bench/bench_experiments.py"
        f"{' --reduced' if args.reduced else ''}{' --extra-models ' + args.extra_models if extra else ''}`.",
        *notes,
        "### Time\n\n" + markdown_table([{**r, "seconds": round(r["seconds"], 1)} for r in rows], ["step", "seconds"]),
        f"### Search\n\nBest of {len(trials)} trials: " + ", ".join(f"{k} {best.get(k)}" for k in
                                                                  ("blocks", "filters", "kernel_size", "dense_units",
                                                                   "dropout", "pooling", "learning_rate")) +
        f" (validation AUC {best.get('val_auc', float('nan')):.3f}).",
        f"### Robustness (pooled test subsample of {n_test} images; AUC drop = clean AUC - AUC, mean over levels)\n\n"
        + markdown_table(rob.round(3).to_dict(orient="records")) +
        (f"\n\nMost robust (smallest mean AUC drop among the models above chance on clean images): **{steadiest}**."
         if steadiest else "\n\nNo model beats chance on clean images by more than sampling noise."),
        "### Generalisation matrix (test AUC; rows: trained on, columns: tested on)\n\n"
        + markdown_table(auc.round(3).to_dict(orient="records")) +
        "".join(f"\n\n{line}" for line in findings),
    ])
    write_section("experiments", "Experiments: search, robustness, generalisation", body)
    print(body)


if __name__ == "__main__":
    main()
