"""The run report: one self-contained HTML file about a trained run, built from its artifacts only.

Sections: the data (datasets, counts per split and class, skipped files, sample grids), the
comparison table per dataset (``summary.csv``), ROC and precision-recall curves with each model's
operating point, calibration (reliability diagram, ECE, Brier score), training curves,
robustness and generalisation with the findings the dashboard pages state
(:func:`pipeline.experiments.robustness.drop_table`, ``most_robust``, ``verdict_summary``,
:func:`pipeline.experiments.crossdataset.transfer_findings`), the most confident mistakes of the
run's verdict model with thumbnails, one model card per detector (:mod:`pipeline.report.model_card`)
and the config and library versions that reproduce the run (:mod:`pipeline.report.reproduce`). What
several sections share is read once (:mod:`pipeline.report.run_data`).

Nothing is retrained or re-scored and TensorFlow is never imported: every number comes from the
run folder through :mod:`pipeline.results`. Figures are the dashboard's own
(:mod:`pipeline.figures`, pure plotly), so the report shows what the pages show.
"""
from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import evaluation
from pipeline.progress import ProgressFn, report
from pipeline.report import model_card, reliability, render
from pipeline.report.reproduce import reproduce_section
from pipeline.report.run_data import RunData, load
from pipeline.results import LABELS, SPLITS, ArtifactError, ExperimentNotRun, Run

SAMPLES_PER_CLASS = 6  # sample grid: thumbnails per dataset and class
MISTAKES = 8  # worst mistakes shown per kind (false positives, false negatives)
SKIPPED_LISTED = 50  # skipped files listed by name (all are counted)
SUMMARY_DIGITS = {"n": 0, "params": 0, "file_size_mb": 3, "train_seconds": 2, "latency_ms_batch1": 3,
                  "latency_ms_batch64": 3}
STEPS = ("data", "comparison", "calibration", "training", "robustness", "generalisation", "mistakes",
         "model cards", "reproduce", "page")


# --------------------------------------------------------------------------- sections


def data_section(run: Run) -> dict[str, Any]:
    """Counts per dataset x split x class, the class balance, skipped files and sample thumbnails."""
    from pipeline import figures

    man, counts, skipped = run.manifest(), run.counts(), run.skipped()
    splits = [s for s in SPLITS if s in set(counts["split"])] + sorted(set(counts["split"]) - set(SPLITS))
    labels = [x for x in LABELS if x in set(counts["label"])] + sorted(set(counts["label"]) - set(LABELS))
    pivot = counts.pivot_table(index="dataset", columns=["split", "label"], values="n", aggfunc="sum", fill_value=0)
    pivot = pivot.reindex(columns=pd.MultiIndex.from_product([splits, labels]), fill_value=0)
    pivot.columns = [f"{s} {lab}" for s, lab in pivot.columns]
    pivot["total"] = pivot.sum(axis=1)
    if len(pivot):
        pivot.loc["all datasets"] = pivot.sum(axis=0)
    reasons = skipped.groupby("reason").size().rename("files").sort_values(ascending=False).reset_index()
    samples = []
    for dataset in sorted(man["dataset"].astype(str).unique()):
        for label in labels:
            pool = man[(man["dataset"].astype(str) == dataset) & (man["label"] == label)]
            pick = pool.sample(n=min(SAMPLES_PER_CLASS, len(pool)), random_state=0) if len(pool) else pool
            samples.append({"dataset": dataset, "label": label, "n": len(pool), "images": render.thumbnails(
                [(str(r.path), f"{Path(str(r.relpath or r.path)).name} · {r.split}") for r in pick.itertuples()])})
    return {"n_images": len(man), "n_datasets": int(man["dataset"].nunique()),
            "fake_share": float((man["label"] == "fake").mean()) if len(man) else None,
            "counts": render.table(pivot.astype("int64"), "counts", index=True) if len(pivot) else None,
            "counts_figure": render.figure(figures.counts_figure(counts), 380),
            "n_skipped": len(skipped), "skipped_reasons": render.table(reasons) if len(reasons) else None,
            "skipped": render.table(skipped.head(SKIPPED_LISTED)) if len(skipped) else None,
            "skipped_listed": min(SKIPPED_LISTED, len(skipped)), "samples": samples}


def _curves(rd: RunData, scope: str) -> tuple[dict, dict, list[reliability.OperatingPoint]]:
    roc, pr, points = {}, {}, []
    for m in rd.models:
        sc = rd.metrics[m]["scopes"].get(scope)
        if not isinstance(sc, dict):
            continue
        roc[m] = {**(sc.get("roc") or {}), "auc": sc.get("roc_auc")}
        pr[m] = {**(sc.get("pr") or {}), "ap": sc.get("average_precision")}
        op = reliability.operating_point(m, rd.metrics[m], scope)
        if op is not None and op.threshold is not None and op.fpr is not None and op.tpr is not None:
            points.append(op)
    return roc, pr, points


def _roc_with_points(roc: dict, points: list[reliability.OperatingPoint], colors: dict, title: str):
    """The dashboard's ROC figure plus each model's operating point (its threshold) as a marker."""
    import plotly.graph_objects as go

    from pipeline import figures

    fig = figures.roc_figure(roc, colors, title=title)
    for op in points:
        fig.add_trace(go.Scatter(
            x=[op.fpr], y=[op.tpr], mode="markers", legendgroup=op.model, showlegend=False,
            marker=dict(color=colors.get(op.model), size=10, symbol="circle-open", line=dict(width=2)),
            hovertemplate=f"{html.escape(op.model)} at threshold {op.threshold:.3f}<br>FPR %{{x:.3f}}"
                          f"<br>TPR %{{y:.3f}}<extra></extra>"))
    return fig


def comparison_section(rd: RunData) -> list[dict[str, Any]]:
    """Per scope (``all`` first, then each dataset): the summary.csv rows as a table (id
    ``summary-<scope>``, columns as in summary.csv after ``model``), the chance band of an AUC on
    that many images, and ROC / PR figures with operating points."""
    from pipeline import figures

    scopes = list(dict.fromkeys(rd.summary["scope"].astype(str)))
    scopes = (["all"] if "all" in scopes else []) + sorted(s for s in scopes if s != "all")
    out = []
    for scope in scopes:
        rows = rd.summary[rd.summary["scope"].astype(str) == scope].drop(columns=["scope"])
        rows = rows.sort_values("roc_auc", ascending=False, kind="stable", na_position="last")
        n = int(rows["n"].max()) if rows["n"].notna().any() else 0
        band = evaluation.chance_auc_band(n)
        shown = rows.copy()
        shown.insert(list(shown.columns).index("roc_auc") + 1, "above chance",
                     [evaluation.above_chance(a, k) for a, k in zip(rows["roc_auc"], rows["n"].fillna(0))])
        roc, pr, points = _curves(rd, scope)
        label = "all datasets pooled" if scope == "all" else scope
        prevalence = None
        sizes = [rd.metrics[m]["scopes"][scope] for m in roc]
        if sizes and sizes[0].get("n"):
            prevalence = sizes[0].get("n_fake", 0) / sizes[0]["n"]
        out.append({
            "scope": scope, "label": label, "n": n, "band": band,
            "table": render.table(shown, f"summary-{scope}", SUMMARY_DIGITS),
            "roc": render.figure(_roc_with_points(roc, points, rd.colors, f"ROC curve ({label})"),
                                 480) if roc else None,
            "pr": render.figure(figures.pr_figure(pr, rd.colors, prevalence, f"Precision-recall ({label})"), 480)
            if pr else None})
    return out


def router_section(rd: RunData) -> dict[str, Any] | None:
    """How ``ensemble_routed``'s router did on the test split (:func:`pipeline.routing.routing_report`):
    the share of images sent to their own dataset's stacker, per dataset; None without that model."""
    from pipeline.detectors.combined import ROUTED
    from pipeline.routing import routing_report

    preds = rd.test_predictions.get(ROUTED)
    threshold = rd.metrics.get(ROUTED, {}).get("threshold")
    rr = routing_report(preds, float(threshold)) if preds is not None and threshold is not None else None
    if rr is None or rr.accuracy is None:
        return None
    return {"accuracy": rr.accuracy, "n": rr.n, "per_dataset": render.table(rr.per_dataset, "router", {"n": 0}),
            "by_routing": render.table(rr.by_routing, None, {"n": 0, "n_fake": 0}) if len(rr.by_routing) else None}


def calibration_section(rd: RunData) -> dict[str, Any]:
    """Reliability diagram, ECE and Brier score per model (test predictions), and every model's
    operating point in words (pooled test split)."""
    items = [reliability.reliability(m, p["y"], p["p_fake"]) for m, p in rd.test_predictions.items()
             if p is not None and len(p)]
    points = [op for m in rd.models if (op := reliability.operating_point(m, rd.metrics[m])) is not None]
    verdict_table, verdict_words = None, None
    try:  # the run's calibrated three-way verdict (pipeline.verdict), when it has one
        from pipeline import verdict

        policy = rd.run.verdict_policy()
        table = rd.run.verdict_table()
        verdict_words = (f"Verdict model {policy.model}, {verdict.threshold_words(policy)}. "
                         + verdict.error_rate_words(policy))
        verdict_table = render.table(table[["scope", "n", "coverage", "n_real_called_fake", "fpr_decided",
                                            "recall_fake_decided", "accuracy_decided", "ece", "ece_floor_p95", "brier"]],
                                     "verdict")
    except (ValueError, LookupError, OSError, KeyError):
        pass
    return {"items": {r.model: r for r in items}, "verdict_table": verdict_table, "verdict_words": verdict_words,
            "table": render.table(reliability.reliability_table(items), "calibration") if items else None,
            "figure": render.figure(reliability.reliability_figure(items, rd.colors), 520) if items else None,
            "points": [{"model": op.model, "text": op.in_words(), "verdict": op.model == rd.verdict_model}
                       for op in points]}


def training_section(rd: RunData) -> dict[str, Any]:
    """Loss and accuracy per epoch of every model that has a training history."""
    from pipeline import figures

    histories = {}
    for m in rd.models:
        try:
            h = rd.run.history(m)
        except ArtifactError:
            continue
        if len(h):
            histories[m] = h
    if not histories:
        return {"figures": []}
    return {"figures": [render.figure(figures.training_curves_figure(histories, metric, rd.colors), 420)
                        for metric in ("loss", "accuracy") if any(metric in h.columns for h in histories.values())]}


def robustness_section(rd: RunData) -> dict[str, Any]:
    """The robustness sweep as on the Robustness page: AUC under each perturbation (pooled), the mean
    AUC drop table, the most robust model above chance, the verdict model's summary, inversions and
    the shortcut check; ``missing`` says how to run it when the run has no sweep."""
    from pipeline import figures_experiments
    from pipeline.experiments import robustness
    from pipeline.experiments.robustness import shortcut_table

    if rd.robustness_error:
        return {"missing": None, "error": rd.robustness_error}
    if rd.robustness is None:
        from pipeline import experiments

        return {"missing": experiments.command("robustness", rd.run.run_id), "error": None}
    table = rd.robustness
    verdict = rd.robustness_settings.get("combined_model")
    verdict = verdict if verdict in set(table["model"]) else None
    drop = robustness.drop_table(table, "all")
    steadiest = robustness.most_robust(drop)
    if steadiest is not None:
        headline = (f"Most robust: **{steadiest}** (clean AUC {drop.loc[steadiest, 'clean AUC']:.3f}, mean AUC drop "
                    f"{drop.loc[steadiest, 'mean drop']:+.3f}), among the models that beat chance on clean images.")
    elif drop["mean drop"].notna().any():
        headline = ("No model beats chance on clean images by more than sampling noise, so no AUC drop says which "
                    "one is robust.")
    else:
        headline = "The sweep has no perturbed rows."
    shortcut = shortcut_table(table, "all")
    inverted = [f"**{m}** is inverted on {'all datasets pooled' if d == 'all' else d} under {', '.join(levels)}"
                for (m, d), levels in robustness.inversions(table).items()]
    drop_sorted = drop.sort_values("mean drop", kind="stable").reset_index(names="model")
    return {"missing": None, "error": None, "n_test": rd.robustness_settings.get("n_test"), "headline": headline,
            "verdict": robustness.verdict_summary(table, verdict, "all") if verdict else None,
            "verdict_model": verdict, "inverted": inverted,
            "figure": render.figure(figures_experiments.robustness_figure(table, "all", "roc_auc", rd.colors, verdict), 460),
            "drop": render.table(drop_sorted, "robustness-drop", {"n": 0}),
            "shortcut": render.table(shortcut, "shortcut", {"JPEG quality": 0}) if shortcut is not None else None}


def generalisation_section(run: Run) -> dict[str, Any]:
    """The cross-dataset matrix as a heat map and the Generalisation page's findings."""
    from pipeline import figures_experiments
    from pipeline.experiments import crossdataset

    try:
        matrix = run.experiment("crossdataset")
    except ExperimentNotRun:
        from pipeline import experiments

        return {"missing": experiments.command("crossdataset", run.run_id)}
    except ArtifactError as exc:
        return {"missing": None, "error": str(exc)}
    settings = run.experiment_settings("crossdataset")
    return {"missing": None, "error": None, "model": settings.get("model"),
            "figure": render.figure(figures_experiments.generalisation_figure(matrix), 420),
            "findings": crossdataset.transfer_findings(matrix),
            "table": render.table(matrix, "generalisation")}


def worst_mistakes(predictions: pd.DataFrame, threshold: float, k: int = MISTAKES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(false positives, false negatives) among test ``predictions`` (columns path, dataset, y, p_fake)
    at ``threshold``: real images with the highest P(fake) first, fakes with the lowest first; at most
    ``k`` each."""
    y, p = predictions["y"].astype(int), predictions["p_fake"].astype(float)
    fp = predictions[(y == 0) & (p >= threshold)].sort_values("p_fake", ascending=False, kind="stable").head(k)
    fn = predictions[(y == 1) & (p < threshold)].sort_values("p_fake", ascending=True, kind="stable").head(k)
    return fp.reset_index(drop=True), fn.reset_index(drop=True)


def mistakes_section(rd: RunData) -> dict[str, Any] | None:
    """The verdict model's most confident false positives and false negatives, with thumbnails."""
    m = rd.verdict_model
    preds = rd.test_predictions.get(m) if m else None
    if preds is None or rd.metrics[m].get("threshold") is None:
        return None
    threshold = float(rd.metrics[m]["threshold"])
    fp, fn = worst_mistakes(preds, threshold)

    def cards(df: pd.DataFrame) -> list[dict]:
        thumbs = render.thumbnails([(str(r.path), "") for r in df.itertuples()], 128)
        return [{**t, "dataset": str(r.dataset), "p_fake": float(r.p_fake)} for t, r in zip(thumbs, df.itertuples())]

    y = preds["y"].astype(int)
    return {"model": m, "threshold": threshold, "false_positives": cards(fp), "false_negatives": cards(fn),
            "n_fp": int(((y == 0) & (preds["p_fake"] >= threshold)).sum()),
            "n_fn": int(((y == 1) & (preds["p_fake"] < threshold)).sum()), "n_real": int((y == 0).sum()),
            "n_fake": int((y == 1).sum())}


# --------------------------------------------------------------------------- the page


def build_run_report(run: Run, progress: ProgressFn = None) -> str:
    """The run report of ``run`` (a :class:`pipeline.results.Run`) as one self-contained HTML page
    (text; plotly.js and every image inline, about 5 MB plus about 10 kB per figure and 4 kB per
    thumbnail). ``progress(stage, done, total)`` is called once per section. Raises
    :class:`pipeline.results.ArtifactError` when the manifest or summary cannot be read."""
    total = len(STEPS)
    step = iter(range(1, total + 1))
    rd = load(run)
    ctx: dict[str, Any] = {"run": run.info, "verdict_model": rd.verdict_model, "verdict_combined": rd.verdict_combined,
                           "models": rd.models,
                           "generated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    ctx["data"] = data_section(run)
    report(progress, "report", next(step), total)
    ctx["comparison"] = comparison_section(rd)
    ctx["router"] = router_section(rd)
    report(progress, "report", next(step), total)
    ctx["calibration"] = calibration_section(rd)
    report(progress, "report", next(step), total)
    ctx["training"] = training_section(rd)
    report(progress, "report", next(step), total)
    ctx["robustness"] = robustness_section(rd)
    report(progress, "report", next(step), total)
    ctx["generalisation"] = generalisation_section(run)
    report(progress, "report", next(step), total)
    ctx["mistakes"] = mistakes_section(rd)
    report(progress, "report", next(step), total)
    ctx["cards"] = [model_card.card(rd, m, ctx["calibration"]["items"].get(m)) for m in rd.models]
    report(progress, "report", next(step), total)
    ctx["reproduce"] = reproduce_section(run)
    report(progress, "report", next(step), total)
    page = render.render("run_report.html.j2", plotly_js=render.plotly_js(), **ctx)
    report(progress, "report", next(step), total)
    return page


def write(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (temp file, then rename); returns the path."""
    from pipeline import artifacts

    path = Path(path).expanduser()
    artifacts.write_bytes(path, text.encode("utf-8"))
    return path


def write_run_report(run: Run, out: str | Path, progress: ProgressFn = None) -> Path:
    """:func:`build_run_report` written atomically to ``out``; returns its path."""
    return write(out, build_run_report(run, progress))

