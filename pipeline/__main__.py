"""Command line: ``python -m pipeline {train,evaluate,predict,info,experiment,inspect,report} --help``."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipeline import store

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the output


def _fail(message: str, code: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _print_table(df, columns) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(df[[c for c in columns if c in df.columns]].to_string(index=False))


TABLE_COLUMNS = ["model", "scope", "n", "accuracy", "balanced_accuracy", "recall_real", "recall_fake", "precision",
                 "f1", "roc_auc", "eer", "tpr_at_fpr_5pct", "ece", "threshold", "train_seconds", "latency_ms_batch1"]
VERDICT_COLUMNS = ["model", "based_on", "scope", "n", "coverage", "n_real_called_fake", "fpr_decided",
                   "recall_fake_decided", "accuracy_decided", "ece", "brier"]


def cmd_train(args) -> int:
    from pipeline import config_load, run_progress, runner
    from pipeline.progress import TqdmProgress

    cfg = config_load.load(args.config)
    cfg = config_load.apply_overrides(cfg, data=args.data, models=args.models.split(",") if args.models else None,
                                      image_size=args.image_size, epochs=args.epochs, artifacts_dir=args.out)
    progress = TqdmProgress(disable=args.quiet)
    status = run_progress.ProgressFile(cfg.artifacts_dir)  # progress.json: the dashboard's progress bar

    def log(line: str) -> None:
        print(line)
        status.log(line)

    try:
        run_dir = runner.train_run(cfg, force=args.force, progress=run_progress.tee(progress, status), log=log)
    except BaseException as exc:
        status.finish("failed", "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc) or type(exc).__name__)
        raise
    status.finish("complete")
    progress.close()
    import pandas as pd

    summary = pd.read_csv(run_dir / store.SUMMARY)
    print(f"\nrun: {run_dir}")
    _print_table(summary, TABLE_COLUMNS)
    return 0


def _run_of(args):
    """The run ``--run`` names (default: the newest), refused with a message when an older version made it
    (:func:`pipeline.store.check_format`): every command that uses a run's models goes through this."""
    from pipeline.results import resolve_run

    info = resolve_run(args.run, Path(args.artifacts) if args.artifacts else None)
    store.check_format(info.path)
    return info


def cmd_evaluate(args) -> int:
    from pipeline import config, runner
    from pipeline.progress import TqdmProgress
    info = _run_of(args)
    from pipeline.video import cli as video_cli

    try:
        if video_cli.wants_videos(args.data):  # labelled folders of clips: video-level metrics
            return video_cli.evaluate_command(args, info.path)
    except ValueError as exc:
        return _fail(str(exc))
    sources = [config.DataSource(path=str(Path(d).resolve())) for d in args.data]
    try:  # a combined model fitted before a member was retrained, a model the run does not have
        out, summary = runner.evaluate_folders(info.path, sources,
                                               models=args.models.split(",") if args.models else None,
                                               progress=TqdmProgress(disable=args.quiet))
    except ValueError as exc:
        return _fail(str(exc))
    if args.json:
        print(summary.to_json(orient="records", indent=2))
    else:
        print(f"run {info.run_id} on {', '.join(args.data)}; results written to {out}")
        is_verdict = summary["model"] == "verdict"
        _print_table(summary[~is_verdict], TABLE_COLUMNS)
        print("recall_real: real images called real; recall_fake: fakes called fake; balanced_accuracy: their mean "
              "(accuracy hides a model that calls everything one class); ece: expected calibration error after "
              "Platt scaling fitted on the run's validation split")
        if is_verdict.any():
            print("\nthe run's three-way verdict (real / fake / unsure; without the per-image stability check):")
            _print_table(summary[is_verdict], VERDICT_COLUMNS)
    return 0


def cmd_predict(args) -> int:
    from pipeline import checking
    from pipeline.progress import TqdmProgress
    info = _run_of(args)
    try:
        setup = checking.load_check_setup(info.path, args.model)
    except ValueError as exc:
        return _fail(str(exc))
    for problem in setup.problems:
        print(f"note: {problem}", file=sys.stderr)
    out_dir = Path(args.out) if args.out else None
    if args.explain and out_dir is None:
        out_dir = Path("explanations")
    jsonl = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        jsonl = open(out_dir / "predictions.jsonl", "w", encoding="utf-8")
    failures = 0
    stems: set[str] = set()
    report_maps: dict | None = {} if args.report else None  # --report: the explanation overlays per face

    def emit(record: dict) -> None:
        line = json.dumps(record)
        print(line)
        if jsonl is not None:
            jsonl.write(line + "\n")

    from pipeline.video import cli as video_cli

    videos, image_files = video_cli.split_files(args.files)
    failures += video_cli.predict_files(videos, setup.models, setup.combiner, args, emit,
                                        policy=setup.policy)  # per track + per video
    checks = checking.check_files(image_files, setup.models, crop_faces=not args.whole_image,
                                  whole_image_if_no_face=args.score_without_face, combiner=setup.combiner,
                                  policy=setup.policy, progress=TqdmProgress(disable=args.quiet, leave=False))
    try:
        for file, check in zip(image_files, checks):
            if not check.ok:
                failures += 1
                emit({"file": file, "error": check.error})
                continue
            if not check.faces:
                emit({"file": file, "face": None, "verdict": None, "note": check.note})
                continue
            stem = Path(file).stem
            if stem in stems:
                stem = f"{stem}-{len(stems)}"
            stems.add(stem)
            for face in check.faces:
                extra = ({"face": None, "note": check.note} if face.index == 0 and check.note else
                         {"face": face.index or None,
                          **({"box": list(face.box), "face_confidence": round(face.confidence, 4)}
                             if face.box is not None else {})})
                suffix = f"__face{face.index}" if face.index else ""
                for record in face.scores + ([face.combined] if face.combined is not None else []):
                    det = setup.models.get(record["model"]) or (
                        setup.combiner if setup.combiner is not None and record["model"] == setup.combiner.name
                        else None)
                    if args.explain and det is not None and (args.explain == "occlusion" or det.kind == "keras"):
                        # gradient maps and LIME need a Keras graph; occlusion needs only predict_proba
                        record["explanation"] = str(_write_explanation(
                            out_dir / f"{stem}{suffix}__{record['model']}__{args.explain.replace('++', 'pp')}.png",
                            det, face.crop, args.explain, record, info.path,
                            args.lime_samples, args.quiet))
                    emit({"file": file, **extra, **record})
                    if report_maps is not None and record.get("explanation"):
                        report_maps.setdefault((check.name, face.index), []).append(
                            (f"{record['model']}: {args.explain}", _read_rgb(record["explanation"])))
                if face.verdict is not None:
                    emit({"file": file, **extra, **checking.verdict_record(face.verdict)})
    finally:
        if jsonl is not None:
            jsonl.close()
    if out_dir is not None:
        print(f"wrote {out_dir / 'predictions.jsonl'}" + (" and the overlay PNGs" if args.explain else ""),
              file=sys.stderr)
    if report_maps is not None:
        from pipeline.report.check_report import write_check_report

        try:
            print(f"wrote {write_check_report(args.report, checks, run=info, explanations=report_maps, title='Check report (python -m pipeline predict)')}", file=sys.stderr)
        except OSError as exc:
            return _fail(f"cannot write the report {args.report}: {exc.strerror or exc}")
    if failures:
        print(f"{failures} of {len(args.files)} file(s) could not be scored", file=sys.stderr)
    return 1 if failures else 0


def _read_rgb(path: str):
    from pipeline import images

    return images.load_rgb(path)


def _write_explanation(path: Path, lm, rgb, method: str, record: dict, run_dir: Path, lime_samples: int,
                       quiet: bool) -> Path:
    """The overlay PNG (with a colour bar and a title) of one image, model and method."""
    from PIL import Image

    from pipeline import explain, explain_lime
    from pipeline.progress import TqdmProgress

    title = f"{lm.name} | p(fake) {record['p_fake']:.3f} -> {record['verdict']}"
    if method == "occlusion":
        from pipeline.occlusion import occlusion_map

        res = occlusion_map(lm, rgb)
        image = explain.with_colorbar(explain.overlay(rgb, res.heatmap, 0.6, signed=True), signed=True,
                                      title=f"occlusion (largest drop {res.max_drop:.3f}) | {title}")
    elif method == "lime":
        res = explain_lime.lime_explain(lm.model, rgb, num_samples=lime_samples, run_dir=run_dir, model_name=lm.name,
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
            "file_shortcut_audit": _shortcut_audit(run),
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
        if r["file_shortcut_audit"]:
            print("  file shortcut audit (file facts only, no pixels; cross-validated ROC-AUC): " + "; ".join(
                f"{a['dataset']} {a['roc_auc'] if a['roc_auc'] is not None else 'n/a'}"
                + (" SHORTCUT (" + ", ".join(a["differences"]) + ")" if a["shortcut"] else "")
                for a in r["file_shortcut_audit"]))
        print(f"  {r['path']}")
    return 0


def _shortcut_audit(run) -> list[dict]:
    """Per dataset: the file-facts-only ROC-AUC of pipeline.forensics.audit (cached in the run folder)."""
    try:
        from pipeline.forensics import audit

        base = audit.for_run(run).baseline
    except Exception as exc:  # noqa: BLE001 - info must list runs even when their data is gone
        print(f"note: run {run.run_id}: the file shortcut audit could not be computed ({exc})", file=sys.stderr)
        return []
    return [{"dataset": r.dataset, "roc_auc": None if r.roc_auc != r.roc_auc else round(float(r.roc_auc), 3),
             "shortcut": bool(r.shortcut), "differences": list(r.differences)} for r in base.itertuples(index=False)]


def cmd_report(args) -> int:
    """The run report (one self-contained HTML file) and, on request, one model card file per model."""
    from pipeline.progress import TqdmProgress
    from pipeline.report import write_model_cards, write_run_report
    from pipeline.results import load_run

    run = load_run(args.run, Path(args.artifacts) if args.artifacts else None)
    progress = TqdmProgress(disable=args.quiet)
    target = args.out or f"report-{run.run_id}.html"
    try:
        out = write_run_report(run, target, progress)
        print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MB)")
        if args.model_cards:
            target = args.model_cards
            cards = write_model_cards(run, args.model_cards)
            print(f"wrote {len(cards)} model card(s) to {Path(args.model_cards)}")
    except OSError as exc:
        return _fail(f"cannot write {target}: {exc.strerror or exc}")
    finally:
        progress.close()
    return 0


def cmd_experiment(args) -> int:
    """Run an experiment of pipeline.experiments on a trained run (settings: the config's [experiments])."""
    import dataclasses

    from pipeline import artifacts, config_load, runner
    from pipeline.experiments import steps
    from pipeline.progress import TqdmProgress
    if args.run:
        info = _run_of(args)
        run_dir = info.path
        cfg = config_load.from_json_dict(artifacts.read_json(run_dir / store.RUN_JSON)["config"])
        cfg = dataclasses.replace(cfg, artifacts_dir=str(run_dir.parent))
        if args.config:  # the run's models and data, this config's experiment settings
            other = config_load.load(args.config)
            cfg = dataclasses.replace(cfg, experiments=other.experiments, strategy=other.strategy)
    else:
        cfg = config_load.load(args.config or "default")
        if args.artifacts:
            cfg = dataclasses.replace(cfg, artifacts_dir=str(Path(args.artifacts).resolve()))
        run_id, run_dir, _, _ = runner.prepare(cfg)
        if not (run_dir / store.MANIFEST).exists():
            return _fail(f"run {run_id} of config {cfg.name!r} is not trained yet; train it first: "
                         f"python -m pipeline train --config {args.config or 'default'}")
    progress = TqdmProgress(disable=args.quiet)
    try:
        out = steps.run(args.name, cfg, run_dir, force=args.force, progress=progress)
    except (ValueError, RuntimeError) as exc:
        return _fail(str(exc), 1)
    finally:
        progress.close()
    print(f"\nrun: {run_dir}" + (f"\nresults: {out}" if out else ""))
    return 0


def cmd_inspect(args) -> int:
    """The forensic bench on image files (pipeline.forensics): views as PNGs, facts as JSON."""
    from pipeline.forensics.cli import run_inspect

    return run_inspect(args.files, as_json=args.json, out_dir=args.out, ela_quality=args.ela_quality,
                       include_gps=args.gps, trust_anchors=args.trust_anchors, quiet=args.quiet)


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
        "predict", help="check image or video files; prints one JSON object per face and model, and the verdict",
        description="The same check as the dashboard's Check page: finds the faces (numbered left to right), "
                    "frames each as the training images were framed, and prints one JSON object per face and "
                    "model: file, face, box, model, p_fake (raw), threshold, verdict. When the run has a combined "
                    "model (ensemble_routed, else ensemble_stacked) one more object has its p_fake, members and "
                    "looks_like. Last per face: model = \"verdict\", the run's three-way verdict (fake / real / "
                    "unsure) with its calibrated p_fake, threshold, reasons and headline. A file without a face: "
                    "verdict null and a note; an unreadable file: file, error. Video files: one JSON object per "
                    "face track and one per video (README, Video).")
    r.add_argument("files", nargs="+", help="image files (JPEG, PNG, WebP, BMP, HEIC, AVIF) or video files (one "
                                            "JSON object per face track and one per video: README, Video)")
    r.add_argument("--run", help="run id, unique prefix or folder (default: latest)")
    r.add_argument("--model", help="one Keras model of the run, or ensemble_routed / ensemble_stacked (default: "
                                   "every Keras model and the run's combined model)")
    r.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    r.add_argument("--explain", choices=["gradcam", "gradcam++", "saliency", "lime", "occlusion"],
                   help="also write an overlay PNG per image and model showing what the model looked at: gradient "
                        "maps and LIME for Keras models; occlusion (a 7x7 grid of grey patches) for every detector, "
                        "also CLIP and the combined model")
    r.add_argument("--out", help="folder for predictions.jsonl and the overlay PNGs (default with --explain: "
                                 "./explanations)")
    r.add_argument("--crop-faces", action="store_true", help="(the default now; kept for old scripts)")
    r.add_argument("--whole-image", action="store_true",
                   help="score each file whole, as given, without looking for faces")
    r.add_argument("--score-without-face", action="store_true",
                   help="when no face is found, score the whole image anyway (the detectors judge faces)")
    r.add_argument("--lime-samples", type=int, default=1000, help="LIME perturbed samples (default: 1000)")
    r.add_argument("--report", metavar="FILE", help="also write a check report: one self-contained HTML file "
                                                    "with the verdicts, reasons, crops and overlays")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    video_cli.add_arguments(r)
    r.set_defaults(func=cmd_predict)

    rp = sub.add_parser("report", help="one self-contained HTML report of a run (and model cards), from its files")
    rp.add_argument("--run", help="run id, unique prefix or folder (default: latest)")
    rp.add_argument("--out", help="the HTML file to write (default: ./report-<run id>.html)")
    rp.add_argument("--model-cards", metavar="DIR", help="also write one model card per model to DIR/<model>.html")
    rp.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    rp.add_argument("--quiet", action="store_true", help="no progress bars")
    rp.set_defaults(func=cmd_report)

    x = sub.add_parser("experiment", help="search, ablation, robustness, cross-dataset on a trained run (the combined "
                                          "model is part of the run: [verdict] members, built by train)")
    x.add_argument("name", choices=["search", "ablation", "robustness", "crossdataset", "all"])
    x.add_argument("--run", help="run id, unique prefix or folder (default: the run of --config)")
    x.add_argument("--config", help="config whose [experiments] settings to use (default: default; with --run: "
                                    "the run's own)")
    x.add_argument("--artifacts", help="artifacts folder (default: artifacts/)")
    x.add_argument("--force", action="store_true", help="recompute even if cached")
    x.add_argument("--quiet", action="store_true", help="no progress bars")
    x.set_defaults(func=cmd_experiment)

    f = sub.add_parser("inspect", help="forensic views and facts of image files (ELA, noise, spectrum, JPEG, "
                                       "metadata, C2PA); magnifying glasses, not verdicts")
    f.add_argument("files", nargs="+", help="image files (JPEG, PNG, WebP, BMP, GIF, TIFF, HEIC, AVIF)")
    f.add_argument("--json", action="store_true", help="one JSON object of facts per file")
    f.add_argument("--out", help="folder for <name>__<view>.png and <name>.json per file")
    f.add_argument("--ela-quality", type=int, default=90, help="JPEG quality of error level analysis (default: 90)")
    f.add_argument("--gps", action="store_true", help="show GPS coordinates from EXIF (hidden by default)")
    f.add_argument("--trust-anchors", help="local PEM file of C2PA trust anchors (nothing is fetched online)")
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_inspect)

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

    known = [ConfigError, DataError, ImageError, FileNotFoundError, KeyError, store.StaleRunError]
    try:
        from pipeline.results import ArtifactError, RunNotFound
        known += [RunNotFound, ArtifactError]
    except ImportError:
        pass
    try:
        return args.func(args)
    except tuple(known) as exc:
        return _fail(exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc))
    except Exception as exc:  # missing ImageNet weights: only once pipeline.models (TensorFlow) is in
        models = sys.modules.get("pipeline.models")  # use; importing it here would start TensorFlow for every command
        if models is not None and isinstance(exc, models.WeightsUnavailableError):
            return _fail(str(exc))
        clip = sys.modules.get("pipeline.clip")  # the CLIP detector's encoder file missing or different
        if clip is not None and isinstance(exc, clip.ClipWeightsError):
            return _fail(str(exc))
        raise
    except KeyboardInterrupt:
        return _fail("interrupted; finished models are kept and a rerun continues where this one stopped", 130)


if __name__ == "__main__":
    sys.exit(main())
