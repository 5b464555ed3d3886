"""The commands that describe what already exists, without training or scoring: ``info`` (the runs),
``report`` (a run's HTML report and model cards) and ``inspect`` (the forensic bench on image files)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pipeline.cli.common import fail


def cmd_info(args) -> int:
    """``info``: the runs with their config, data, best model, file shortcut audit and warnings (e.g. CLIP
    models fitted on embeddings of an old version: :attr:`pipeline.runs.RunInfo.warnings`). A run folder that
    cannot be opened (written by an older version, a damaged ``run.json``) is listed with the reason and
    what to do; it never hides the other runs."""
    from pipeline.results import ArtifactError, RunNotFound, list_runs, load_run

    runs = list_runs(Path(args.artifacts) if args.artifacts else None)
    if not runs:
        print("no runs yet: build one with `python -m pipeline train` (see README)")
        return 0
    records = []
    for info in runs:
        try:
            run = load_run(info)
        except (ArtifactError, RunNotFound) as exc:
            records.append({"run_id": info.run_id, "config": info.config_name, "created": info.created,
                            "status": "unreadable", "path": str(info.path), "problem": str(exc)})
            continue
        summary = run.summary()
        pooled = summary[summary["scope"] == "all"].sort_values("roc_auc", ascending=False)
        best = pooled.iloc[0].to_dict() if len(pooled) else {}
        ds = run.run_json.get("data_summary", {})
        records.append({
            "run_id": info.run_id, "config": info.config_name, "created": info.created, "status": info.status,
            "path": str(info.path), "models": info.models, "complete_models": info.complete_models,
            "images": ds.get("n_images"), "datasets": ds.get("datasets"), "skipped": ds.get("n_skipped"),
            "best_model": best.get("model"), "best_auc": best.get("roc_auc"), "best_accuracy": best.get("accuracy"),
            "file_shortcut_audit": _shortcut_audit(run), "warnings": info.warnings,
        })
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    for r in records:
        print(f"{r['run_id']}  [{r['status']}]  config={r['config']}  created={r['created']}")
        if r.get("problem"):
            print(f"  cannot be opened: {r['problem']}")
            print(f"  {r['path']}")
            continue
        for warning in r["warnings"]:
            print(f"  WARNING: {warning}")
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
        return fail(f"cannot write {target}: {exc.strerror or exc}")
    finally:
        progress.close()
    return 0


def cmd_inspect(args) -> int:
    """The forensic bench on image files (pipeline.forensics): views as PNGs, facts as JSON."""
    from pipeline.forensics.cli import run_inspect

    return run_inspect(args.files, as_json=args.json, out_dir=args.out, ela_quality=args.ela_quality,
                       include_gps=args.gps, trust_anchors=args.trust_anchors, quiet=args.quiet)
