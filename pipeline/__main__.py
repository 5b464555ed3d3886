"""Command line: ``python -m pipeline {train,evaluate,predict,info} --help``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the output


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _print_table(df, columns) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(df[[c for c in columns if c in df.columns]].to_string(index=False))


TABLE_COLUMNS = ["model", "scope", "n", "accuracy", "precision", "recall", "f1", "roc_auc", "average_precision",
                 "threshold", "train_seconds", "latency_ms_batch1"]


def cmd_train(args) -> int:
    from pipeline import config, runner
    from pipeline.progress import TqdmProgress

    cfg = config.load(args.config)
    cfg = config.apply_overrides(cfg, data=args.data, models=args.models.split(",") if args.models else None,
                                 image_size=args.image_size, epochs=args.epochs, artifacts_dir=args.out)
    progress = TqdmProgress(disable=args.quiet)
    run_dir = runner.train_run(cfg, force=args.force, progress=progress)
    progress.close()
    import pandas as pd

    summary = pd.read_csv(run_dir / "summary.csv")
    print(f"\nrun: {run_dir}")
    _print_table(summary, TABLE_COLUMNS)
    return 0


def cmd_evaluate(args) -> int:
    from pipeline import config, runner
    from pipeline.progress import TqdmProgress
    from pipeline.results import resolve_run

    info = resolve_run(args.run, Path(args.artifacts) if args.artifacts else None)
    sources = [config.DataSource(path=str(Path(d).resolve())) for d in args.data]
    out, summary = runner.evaluate_folders(info.path, sources, models=args.models.split(",") if args.models else None,
                                           progress=TqdmProgress(disable=args.quiet))
    if args.json:
        print(summary.to_json(orient="records", indent=2))
    else:
        print(f"run {info.run_id} on {', '.join(args.data)}; results written to {out}")
        _print_table(summary, TABLE_COLUMNS)
    return 0


def cmd_predict(args) -> int:
    from pipeline import images, inference
    from pipeline.results import resolve_run

    info = resolve_run(args.run, Path(args.artifacts) if args.artifacts else None)
    models = inference.load_run_models(info.path, [args.model] if args.model else None)
    failures = 0
    for file in args.files:
        try:
            rgb = images.load_rgb(file)
        except images.ImageError as exc:
            failures += 1
            print(json.dumps({"file": file, "error": str(exc)}))
            continue
        for record in inference.score_rgb([rgb], models)[0]:
            print(json.dumps({"file": file, **record}))
    if failures:
        print(f"{failures} of {len(args.files)} file(s) could not be scored", file=sys.stderr)
    return 1 if failures else 0


def cmd_info(args) -> int:
    from pipeline.results import list_runs, load_run

    runs = list_runs(Path(args.artifacts) if args.artifacts else None)
    if not runs:
        print("no runs yet: build one with `python -m pipeline train` (see README)")
        return 0
    records = []
    for info in runs:
        run = load_run(info)
        summary = run.summary()
        pooled = summary[summary["scope"] == "all"].sort_values("roc_auc", ascending=False)
        best = pooled.iloc[0].to_dict() if len(pooled) else {}
        ds = run.run_json.get("data_summary", {})
        records.append({
            "run_id": info.run_id, "config": info.config_name, "created": info.created, "status": info.status,
            "path": str(info.path), "models": info.models, "complete_models": info.complete_models,
            "images": ds.get("n_images"), "datasets": ds.get("datasets"), "skipped": ds.get("n_skipped"),
            "best_model": best.get("model"), "best_auc": best.get("roc_auc"), "best_accuracy": best.get("accuracy"),
        })
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    for r in records:
        print(f"{r['run_id']}  [{r['status']}]  config={r['config']}  created={r['created']}")
        print(f"  data: {r['images']} images, datasets {', '.join(r['datasets'] or [])}, {r['skipped']} skipped")
        print(f"  models ({len(r['complete_models'])}/{len(r['models'])} trained): {', '.join(r['models'])}")
        if r["best_model"]:
            print(f"  best (pooled test AUC): {r['best_model']}  AUC {r['best_auc']:.4f}  accuracy {r['best_accuracy']:.4f}")
        print(f"  {r['path']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline", description="Deepfake Lens: train, evaluate and use "
                                "deepfake face detectors. Results go to artifacts/ and the dashboard.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train the models a config names (cached: unchanged reruns load)")
    t.add_argument("--config", default="default", help="config file or name in configs/ (default: default)")
    t.add_argument("--data", action="append", help="labelled image folder (repeat for several); overrides the config")
    t.add_argument("--models", help="comma-separated registry model names; overrides the config")
    t.add_argument("--image-size", type=int, help="input size in pixels for every model")
    t.add_argument("--epochs", type=int, help="epochs for every model")
    t.add_argument("--out", help="artifacts folder (default: artifacts/)")
    t.add_argument("--force", action="store_true", help="retrain even if the run is cached")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="score a trained run on other labelled folders, without retraining")
    e.add_argument("--data", action="append", required=True, help="labelled image folder (repeat for several)")
    e.add_argument("--run", help="run id, unique prefix or folder (default: latest)")
    e.add_argument("--models", help="comma-separated models of the run (default: all)")
    e.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="score image files; prints one JSON object per image and model")
    r.add_argument("files", nargs="+", help="image files (JPEG, PNG, WebP, BMP)")
    r.add_argument("--run", help="run id, unique prefix or folder (default: latest)")
    r.add_argument("--model", help="one model of the run (default: all)")
    r.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    r.set_defaults(func=cmd_predict)

    i = sub.add_parser("info", help="list runs with their config, data and best model")
    i.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "artifacts", None):
        os.environ["DEEPFAKE_LENS_ARTIFACTS"] = str(Path(args.artifacts).resolve())
    from pipeline.config import ConfigError
    from pipeline.data import DataError
    from pipeline.images import ImageError

    known = [ConfigError, DataError, ImageError, FileNotFoundError, KeyError]
    try:
        from pipeline.results import RunNotFound
        known.append(RunNotFound)
        from pipeline.models import WeightsUnavailableError
        known.append(WeightsUnavailableError)
    except ImportError:
        pass
    try:
        return args.func(args)
    except tuple(known) as exc:
        return _fail(exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted; finished models are kept and a rerun continues where this one stopped", 130)


if __name__ == "__main__":
    sys.exit(main())
