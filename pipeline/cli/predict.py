"""``python -m pipeline predict``: check image (and video) files through :mod:`pipeline.checking`, the same
path as the dashboard's Check page, print one JSON object per face and model and the verdict, and on request
write explanation overlays (``--explain``) and a check report (``--report``)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.cli.common import fail, run_of


def cmd_predict(args) -> int:
    """``predict``: check files; one JSON line per face and model, then the verdict. Exit code 1 if a file failed."""
    from pipeline import checking
    from pipeline.progress import TqdmProgress
    info = run_of(args)
    try:
        setup = checking.load_check_setup(info.path, args.model)
    except ValueError as exc:
        return fail(str(exc))
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
            return fail(f"cannot write the report {args.report}: {exc.strerror or exc}")
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
