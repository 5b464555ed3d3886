"""Command line: ``python -m pipeline {train,evaluate,predict,info,experiment} --help``."""
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
    from pipeline.video import cli as video_cli

    try:
        if video_cli.wants_videos(args.data):  # labelled folders of clips: video-level metrics
            return video_cli.evaluate_command(args, info.path)
    except ValueError as exc:
        return _fail(str(exc))
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
    from pipeline.experiments import ensemble
    from pipeline.results import resolve_run

    info = resolve_run(args.run, Path(args.artifacts) if args.artifacts else None)
    combiner = None
    if args.model in ensemble.COMBINERS:  # the combined model alone
        models = {}
        try:
            combiner = ensemble.load_combiner(info.path, args.model)
        except ValueError as exc:
            return _fail(str(exc))
    else:
        models = inference.load_run_models(info.path, [args.model] if args.model else None)
        if not args.model:  # every Keras model and the run's combined model (routed, else stacked)
            try:
                combiner = ensemble.load_combiner(info.path, keras_models=models)
            except (ValueError, KeyError, OSError) as exc:
                print(f"note: the run's combined model is left out: {exc.args[0] if exc.args else exc}",
                      file=sys.stderr)
    out_dir = Path(args.out) if args.out else None
    if args.explain and out_dir is None:
        out_dir = Path("explanations")
    jsonl = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        jsonl = open(out_dir / "predictions.jsonl", "w", encoding="utf-8")
    failures = 0
    stems: set[str] = set()

    def emit(record: dict) -> None:
        line = json.dumps(record)
        print(line)
        if jsonl is not None:
            jsonl.write(line + "\n")

    from pipeline.video import cli as video_cli

    videos, image_files = video_cli.split_files(args.files)
    try:
        failures += video_cli.predict_files(videos, models, combiner, args, emit)  # per track + per video
        for file in image_files:
            try:
                rgb = images.load_rgb(file)
            except images.ImageError as exc:
                failures += 1
                emit({"file": file, "error": str(exc)})
                continue
            # (label, extra fields, pixels) per scored region: the whole image, or each face
            regions: list[tuple[str, dict, object]] = [("", {}, rgb)]
            if args.crop_faces:
                from pipeline import checking

                check = checking.check_image(Path(file).name, rgb, {}, crop_faces=True, whole_image_if_no_face=True)
                if check.detected:
                    regions = [(f"__face{i}", {"face": i, "box": list(face.crop_box),
                                               "face_confidence": round(face.confidence, 4)}, face.crop)
                               for i, face in enumerate(check.detected, 1)]
                else:
                    regions = [("", {"face": None, "note": checking.WHOLE_IMAGE_NOTE}, rgb)]
            stem = Path(file).stem
            if stem in stems:
                stem = f"{stem}-{len(stems)}"
            stems.add(stem)
            for suffix, extra, pixels in regions:
                arrays = inference.score_arrays([pixels], models)
                records = inference.score_rgb([pixels], models, arrays)[0]
                if combiner is not None:
                    records.append(ensemble.score_combined(combiner, [pixels], known=arrays)[0])
                for record in records:
                    if args.explain and record["model"] in models:  # a combined model has no single map
                        record["explanation"] = str(_write_explanation(
                            out_dir / f"{stem}{suffix}__{record['model']}__{args.explain.replace('++', 'pp')}.png",
                            models[record["model"]], pixels, args.explain, record, info.path, args.lime_samples,
                            args.quiet))
                    emit({"file": file, **extra, **record})
    finally:
        if jsonl is not None:
            jsonl.close()
    if out_dir is not None:
        print(f"wrote {out_dir / 'predictions.jsonl'}" + (" and the overlay PNGs" if args.explain else ""),
              file=sys.stderr)
    if failures:
        print(f"{failures} of {len(args.files)} file(s) could not be scored", file=sys.stderr)
    return 1 if failures else 0


def _write_explanation(path: Path, lm, rgb, method: str, record: dict, run_dir: Path, lime_samples: int,
                       quiet: bool) -> Path:
    """The overlay PNG (with a colour bar and a title) of one image, model and method."""
    from PIL import Image

    from pipeline import explain
    from pipeline.progress import TqdmProgress

    title = f"{lm.name} | p(fake) {record['p_fake']:.3f} -> {record['verdict']}"
    if method == "lime":
        res = explain.lime_explain(lm.model, rgb, num_samples=lime_samples, run_dir=run_dir, model_name=lm.name,
                                   progress=TqdmProgress(disable=quiet, leave=False))
        image = explain.with_colorbar(explain.overlay(rgb, res.heatmap, 0.6, signed=True), signed=True,
                                      title=f"LIME | {title}")
    else:
        exp = explain.heatmap(lm.model, rgb, method)
        if exp.note:
            print(f"note: {exp.note}", file=sys.stderr)
        image = explain.with_colorbar(explain.overlay(rgb, exp.heatmap, 0.45), title=f"{exp.label} | {title}")
    Image.fromarray(image).save(path)
    return path


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


def cmd_experiment(args) -> int:
    """Run an experiment of pipeline.experiments on a trained run (settings: the config's [experiments])."""
    import dataclasses

    from pipeline import artifacts, config, experiments, runner
    from pipeline.progress import TqdmProgress
    from pipeline.results import resolve_run

    if args.run:
        info = resolve_run(args.run, Path(args.artifacts) if args.artifacts else None)
        run_dir = info.path
        cfg = config.from_json_dict(artifacts.read_json(run_dir / "run.json")["config"])
        cfg = dataclasses.replace(cfg, artifacts_dir=str(run_dir.parent))
        if args.config:  # the run's models and data, this config's experiment settings
            other = config.load(args.config)
            cfg = dataclasses.replace(cfg, experiments=other.experiments, strategy=other.strategy)
    else:
        cfg = config.load(args.config or "default")
        if args.artifacts:
            cfg = dataclasses.replace(cfg, artifacts_dir=str(Path(args.artifacts).resolve()))
        run_id, run_dir, _, _ = runner.prepare(cfg)
        if not (run_dir / "manifest.parquet").exists():
            return _fail(f"run {run_id} of config {cfg.name!r} is not trained yet; train it first: "
                         f"python -m pipeline train --config {args.config or 'default'}")
    if args.members:
        cfg = dataclasses.replace(cfg, experiments=dataclasses.replace(
            cfg.experiments, ensemble_members=tuple(args.members.split(","))))
    progress = TqdmProgress(disable=args.quiet)
    try:
        out = experiments.run(args.name, cfg, run_dir, force=args.force, progress=progress)
    except (ValueError, RuntimeError) as exc:
        return _fail(str(exc), 1)
    finally:
        progress.close()
    print(f"\nrun: {run_dir}" + (f"\nresults: {out}" if out else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pipeline.video import cli as video_cli

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
    e.add_argument("--data", action="append", required=True,
                   help="labelled image folder, or labelled folder of videos (repeat for several)")
    e.add_argument("--run", help="run id, unique prefix or folder (default: latest)")
    e.add_argument("--models", help="comma-separated models of the run (default: all)")
    e.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    video_cli.add_arguments(e)
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser(
        "predict", help="score image files; prints one JSON object per image and model",
        description="Prints one JSON object per image (per face with --crop-faces) and model: file, model, "
                    "p_fake, threshold, verdict (a file that cannot be read: file, error). When the run has a "
                    "combined model (ensemble_routed, else ensemble_stacked) one more object per image has "
                    "model = its name, its p_fake at its own threshold and verdict (the run's verdict), "
                    "members ({member: p_fake}) and looks_like (ensemble_routed: the router's "
                    "{dataset: probability}; ensemble_stacked: null).")
    r.add_argument("files", nargs="+", help="image files (JPEG, PNG, WebP, BMP) or video files (one JSON object "
                                            "per face track and one per video: README, Video)")
    r.add_argument("--run", help="run id, unique prefix or folder (default: latest)")
    r.add_argument("--model", help="one Keras model of the run, or ensemble_routed / ensemble_stacked (default: "
                                   "every Keras model and the run's combined model)")
    r.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    r.add_argument("--explain", choices=["gradcam", "gradcam++", "saliency", "lime"],
                   help="also write an overlay PNG per image and Keras model showing what the model looked at "
                        "(not for the combined model)")
    r.add_argument("--out", help="folder for predictions.jsonl and the overlay PNGs (default with --explain: "
                                 "./explanations)")
    r.add_argument("--crop-faces", action="store_true",
                   help="detect faces (MTCNN) and score each face crop; no face found: the whole image")
    r.add_argument("--lime-samples", type=int, default=1000, help="LIME perturbed samples (default: 1000)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    video_cli.add_arguments(r)
    r.set_defaults(func=cmd_predict)

    x = sub.add_parser("experiment", help="search, ablation, ensemble, robustness, cross-dataset on a trained run")
    x.add_argument("name", choices=["search", "ablation", "ensemble", "robustness", "crossdataset", "all"])
    x.add_argument("--run", help="run id, unique prefix or folder (default: the run of --config)")
    x.add_argument("--config", help="config whose [experiments] settings to use (default: default; with --run: "
                                    "the run's own)")
    x.add_argument("--members", help="comma-separated ensemble members, or all (overrides the config)")
    x.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    x.add_argument("--force", action="store_true", help="recompute even if cached")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(func=cmd_experiment)

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
        from pipeline.results import ArtifactError, RunNotFound
        known += [RunNotFound, ArtifactError]
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
