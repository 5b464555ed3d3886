"""Command line: ``python -m pipeline {train,evaluate,predict,info,experiment,inspect,report} --help``.

The argument parser and the dispatch; the commands themselves are in :mod:`pipeline.cli`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipeline import store
from pipeline.cli.common import fail
from pipeline.cli.predict import cmd_predict
from pipeline.cli.reports import cmd_info, cmd_inspect, cmd_report
from pipeline.cli.train import cmd_evaluate, cmd_experiment, cmd_train

# Keep TensorFlow's C++ log lines out of the output (3 hides its ERROR lines too; the start-up lines printed before
# its logging is set up still show). 3, not 2: with op determinism on (training.seed_training)
# tf.data runs a map with random Keras layers sequentially and logs one harmless ERROR-level line about it
# ("NodeDef mentions attribute use_unbounded_threadpool ... Unknown attributes will be ignored"); TensorFlow's
# real failures still reach Python as exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


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
    t.add_argument("--max-images-per-class", type=int, metavar="N",
                   help="use at most N images of each (data set, label), a fixed-seed sample (0 = all); "
                        "a quick look: `default` with 100 runs in about 13 minutes cold")
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
    r.add_argument("--model", help="one detector of the run (a Keras model, a CLIP head, a PCA-SVM: e.g. clip, "
                                   "spectrum+pca_svm), or ensemble_routed / ensemble_stacked (default: every detector "
                                   "of the config and the run's combined model)")
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
    from pipeline.data_folders import DataError
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
        return fail(exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc))
    except Exception as exc:  # missing ImageNet weights: only once pipeline.models (TensorFlow) is in
        models = sys.modules.get("pipeline.models")  # use; importing it here would start TensorFlow for every command
        if models is not None and isinstance(exc, models.WeightsUnavailableError):
            return fail(str(exc))
        clip = sys.modules.get("pipeline.clip")  # the CLIP detector's encoder file missing or different
        if clip is not None and isinstance(exc, clip.ClipWeightsError):
            return fail(str(exc))
        raise
    except KeyboardInterrupt:
        return fail("interrupted; finished models are kept and a rerun continues where this one stopped", 130)


if __name__ == "__main__":
    sys.exit(main())
