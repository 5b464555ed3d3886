"""The video part of ``python -m pipeline predict`` and ``python -m pipeline evaluate`` (the
subcommands in ``pipeline/cli/`` hand video files and folders of videos to these functions).

``predict CLIP ...`` prints one JSON object per face track (``kind`` = "track") and one for the clip
(``kind`` = "video"): see :func:`pipeline.video.scoring.track_records` and
:func:`~pipeline.video.scoring.video_record`. ``evaluate --data FOLDER`` on a labelled folder of clips
prints video-level ROC-AUC, accuracy, balanced accuracy and per-class recall for the default rule and
the DeepfakeBench convention (:mod:`pipeline.video.evaluate`) and writes them to
``<run>/evaluations/videos-<folder>-<hash>/``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.video import decode, scoring


def add_arguments(parser) -> None:
    """The sampling and verdict options, on the ``predict`` and ``evaluate`` parsers."""
    g = parser.add_argument_group("video files (MP4, MOV, M4V, WebM, AVI, MKV)")
    g.add_argument("--frames", type=int, default=decode.DEFAULT_FRAMES,
                   help=f"frames sampled evenly over each clip (default: {decode.DEFAULT_FRAMES})")
    g.add_argument("--every", type=float, metavar="SECONDS",
                   help="sample one frame every SECONDS instead (capped by --max-frames)")
    g.add_argument("--max-frames", type=int, default=decode.DEFAULT_MAX_FRAMES,
                   help=f"cap of --every (default: {decode.DEFAULT_MAX_FRAMES})")
    g.add_argument("--rule", choices=scoring.RULES, default=scoring.DEFAULT_RULE,
                   help="per-track aggregate of the face probabilities (default: mean)")
    g.add_argument("--band", type=float, default=scoring.DEFAULT_BAND,
                   help=f"unsure when a track's aggregate is within this of the threshold (default: {scoring.DEFAULT_BAND})")
    g.add_argument("--min-faces", type=int, default=scoring.DEFAULT_MIN_FACES,
                   help=f"unsure when the deciding track has fewer faces (default: {scoring.DEFAULT_MIN_FACES})")
    g.add_argument("--face-confidence", type=_probability, default=None, metavar="P",
                   help="MTCNN's minimum face confidence (default: 0.9, as for photos; lower finds more faces in "
                        "dark or small footage, and more false ones)")


def _probability(text: str) -> float:
    import argparse

    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 < p <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in (0, 1]")
    return p


def sampling_from(args) -> decode.Sampling:
    return decode.Sampling(n_frames=args.frames, every_seconds=args.every, max_frames=args.max_frames)


def split_files(files: list[str]) -> tuple[list[str], list[str]]:
    """(video files by extension, the other files) in their given order."""
    videos = [f for f in files if decode.is_video_file(f)]
    return videos, [f for f in files if not decode.is_video_file(f)]


def predict_files(files: list[str], models: dict, combiner, args, emit, policy=None) -> int:
    """Analyse each clip and ``emit`` its track records then its video record; returns how many clips
    could not be read (their record has ``error``)."""
    from pipeline.progress import TqdmProgress

    if not files:
        return 0
    try:
        sampling = sampling_from(args)
    except ValueError as exc:
        for f in files:
            emit({"file": f, "kind": "video", "error": str(exc)})
        return len(files)
    if getattr(args, "explain", None):
        print("note: --explain draws maps for images only; the dashboard's Video page shows Grad-CAM of a clip's "
              "most suspicious frames", file=sys.stderr)
    failures = 0
    for f in files:
        progress = TqdmProgress(disable=getattr(args, "quiet", False), leave=False)
        try:
            res = scoring.analyse_video(f, models, combiner, name=f, sampling=sampling, rule=args.rule,
                                        band=args.band, min_faces=args.min_faces,
                                        min_confidence=args.face_confidence, progress=progress, policy=policy)
        finally:
            progress.close()
        for record in scoring.track_records(res):
            emit(record)
        emit(scoring.video_record(res))
        failures += not res.ok
    return failures


def wants_videos(folders: list[str]) -> bool:
    """True when every ``--data`` folder of ``evaluate`` is a labelled folder of clips; ``ValueError``
    when videos and images are mixed."""
    from pipeline.video.evaluate import is_video_folder

    flags = [is_video_folder(f) for f in folders]
    if any(flags) and not all(flags):
        raise ValueError("evaluate takes folders of images or folders of videos, not both in one call: "
                         + ", ".join(f"{f} ({'videos' if v else 'images'})" for f, v in zip(folders, flags)))
    return bool(flags) and all(flags)


def evaluate_command(args, run_dir: Path) -> int:
    """``evaluate`` on labelled folders of clips: prints the metrics table (or JSON) and writes
    ``videos.csv`` and ``report.json`` per folder to the run's ``evaluations/``."""
    import pandas as pd

    from pipeline import artifacts, detectors
    from pipeline.progress import TqdmProgress
    from pipeline.video.evaluate import evaluate_videos, summary_table

    models = detectors.load_many(run_dir, args.models.split(",") if args.models else None)
    combiner, policy = None, None
    if not args.models:
        from pipeline import checking

        setup = checking.load_check_setup(run_dir, keras_models=models)  # the same as predict and the Check page
        combiner, policy = setup.combiner, setup.policy
        for problem in setup.problems:
            print(f"note: {problem}", file=sys.stderr)
    sampling = sampling_from(args)
    reports = []
    for folder in args.data:
        progress = TqdmProgress(disable=args.quiet)
        try:
            table, report = evaluate_videos(folder, models, combiner, sampling=sampling, rule=args.rule,
                                            band=args.band, min_faces=args.min_faces,
                                            min_confidence=args.face_confidence, progress=progress, policy=policy)
        finally:
            progress.close()
        root = Path(folder).resolve()
        key = artifacts.stable_hash({"files": table["file"].tolist(), "sampling": sampling.rule, "rule": args.rule,
                                     "band": args.band, "min_faces": args.min_faces,
                                     "face_confidence": args.face_confidence})[:8]
        out = Path(run_dir) / "evaluations" / f"videos-{root.name[:40]}-{key}"
        artifacts.write_csv(out / "videos.csv", table)
        artifacts.write_json(out / "report.json", {"run_id": Path(run_dir).name, **report})
        report["written_to"] = str(out)
        reports.append((folder, table, report))
    if args.json:
        print(json.dumps([r for _, _, r in reports], indent=2, default=str))
        return 0
    for folder, table, report in reports:
        print(f"run {Path(run_dir).name} on {folder}: {report['n_videos']} clips ({report['n_no_face']} without a face, "
              f"{report['n_errors']} unreadable), {report['sampling']}; verdict model {report['verdict_model']} at "
              f"threshold {report['threshold']:.3f}")
        with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4f}".format,
                               "display.max_colwidth", 70):
            print(summary_table(report).to_string(index=False))
        tw = report["three_way"]
        acc = "n/a" if tw["accuracy_decided"] is None else f"{tw['accuracy_decided']:.4f}"
        print(f"three-way (default rule, band {tw['band']}): {tw['n_unsure']} unsure, {tw['n_decided']} decided, "
              f"accuracy on the decided {acc}")
        for row in table[table["score"].isna()].itertuples(index=False):
            print(f"  left out: {row.file}: {row.error or row.reason}")
        print(f"written to {report['written_to']}")
    return 0
