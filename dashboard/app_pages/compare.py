"""Compare models: test metrics, curves, confusion matrices and training histories side by side."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import common
from pipeline import evaluation, figures, figures_experiments, store
from pipeline.detectors.combined import ROUTED
from pipeline.results import comparison_row
from pipeline.routing import ROUTE_CONFIDENCE, ROUTED_TO, routing_report
from pipeline.verdict import copies_words, error_rate_words, threshold_words

# (column, label, format, higher is better?) of the comparison table, in display order.
TABLE = [
    ("accuracy", "Accuracy", "%.3f", True),
    ("precision", "Precision", "%.3f", True),
    ("recall", "Recall", "%.3f", True),
    ("f1", "F1", "%.3f", True),
    ("roc_auc", "ROC-AUC", "%.3f", True),
    ("average_precision", "Avg. precision", "%.3f", True),
    ("threshold", "Threshold", "%.3f", None),
    ("params", "Parameters", "localized", False),
    ("file_size_mb", "File (MiB)", "%.2f", False),
    ("train_seconds", "Train (s)", "%.1f", False),
    ("latency_ms_batch1", "1 image (ms)", "%.2f", False),
    ("latency_ms_per_image_batch64", "In a batch (ms/image)", "%.3f", False),
]
HELP = {
    "accuracy": "Share of test images classified correctly at the threshold.",
    "precision": "Of the images flagged fake, the share that are fake.",
    "recall": "Of the fake images, the share flagged (fakes caught).",
    "f1": "Harmonic mean of precision and recall.",
    "roc_auc": "Area under the ROC curve: threshold-free ranking quality (0.5 = chance). Empty when the scope "
               "holds one class only.",
    "average_precision": "Area under the precision-recall curve.",
    "threshold": "p_fake at or above which an image is called fake; chosen on the validation split.",
    "params": "Numbers the model holds: a Keras model's trainable and frozen weights; a CLIP model's fitted head "
              "only (scaler and logistic weights, or an SVM head's support vectors), not the frozen ~86M-parameter "
              "encoder; a combined model, the sum of its members'.",
    "file_size_mb": "Size of the model's file on disk (model.keras; a CLIP model's head.skops).",
    "train_seconds": "Wall-clock training time on this machine.",
    "latency_ms_batch1": "Median CPU time to classify one image (batch of 1).",
    "latency_ms_per_image_batch64": "Median CPU time per image when classifying batches of 64.",
}
BEST_OF = ["roc_auc", "f1", "accuracy", "latency_ms_batch1"]
CM_DEFAULT = 3  # confusion matrices drawn at first (one plotly chart each)
SECTION_KEY = "compare_section"  # the open tab below the curves


@st.cache_data(show_spinner=False, max_entries=16)
def _routing_report(run_path: str, mtime: float, threshold: float):
    """:func:`pipeline.routing.routing_report` of the routed model's stored predictions (cached: 0.4 s)."""
    from pipeline.results import info_at, load_run

    return routing_report(load_run(info_at(run_path)).predictions(ROUTED), threshold)

run = common.selected_run()
models = common.require_models(run)
metrics = common.all_metrics(run, models)
colors = figures.model_colors(models)

st.title("Compare models")
st.caption(common.run_caption(run))

# --------------------------------------------------------------------------- controls
found = {s for m in metrics.values() for s in (m.get("scopes") or {})}
scopes = (["all"] if "all" in found else []) + sorted(found - {"all"})
if not scopes:
    common.stop_with(f"The metrics of run `{run.run_id}` hold no scope; rebuild them with `python -m pipeline train`.",
                     "warning")
c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
scope = c1.selectbox("Scope (test split)", scopes, key="compare_scope",
                     format_func=lambda s: "all datasets pooled" if s == "all" else s,
                     help="Pooled test split, or the test images of one dataset only.")
at_half = c2.toggle("Metrics at 0.5 instead of the chosen threshold", key="compare_at_half",
                    help="Off: each model's threshold, chosen on the validation split "
                         "(rule in the table). On: the fixed threshold 0.5.")

rows = [r for m in models if (r := comparison_row(m, metrics[m], scope, at_half)) is not None]
absent = [m for m in models if comparison_row(m, metrics[m], scope) is None]
if not rows:
    common.stop_with(f"No finished model has metrics for scope `{scope}`.", "info")
table = pd.DataFrame(rows)
shown = [m for m in models if m not in absent]
n, n_real, n_fake = (table.iloc[0][k] for k in ("n", "n_real", "n_fake"))

# --------------------------------------------------------------------------- table
st.subheader("Comparison")
st.caption(f"{len(shown)} model(s) · {int(n):,} test images ({int(n_real):,} real, {int(n_fake):,} fake) · "
           + ("threshold 0.5 for every model" if at_half else "each model at its own validation-chosen threshold"))
if absent:
    st.caption(f"No metrics for this scope: {', '.join(absent)}.")

best_bits = []
for col in BEST_OF:
    vals = pd.to_numeric(table[col], errors="coerce")
    if vals.notna().any() and len(table) > 1:
        higher = dict((c, h) for c, _, _, h in TABLE)[col]
        i = vals.idxmax() if higher else vals.idxmin()
        label = dict((c, lab) for c, lab, _, _ in TABLE)[col]
        value = f"{vals[i]:.2f} ms" if col.startswith("latency") else f"{vals[i]:.3f}"
        best_bits.append(f"{'fastest' if col.startswith('latency') else 'best ' + label}: "
                         f"**{table.loc[i, 'model']}** ({value})")
if best_bits:
    st.markdown(" · ".join(best_bits))

display = table[["model"] + [c for c, *_ in TABLE]].copy()
for c, *_ in TABLE:
    display[c] = pd.to_numeric(display[c], errors="coerce")
display.insert(1, "vs_chance", [evaluation.chance_verdict(a, k) for a, k in zip(display["roc_auc"], table["n"])])
weak = display[display["vs_chance"].isin(["within chance", "below chance"])]
if len(weak):
    st.warning("Not better than a coin on this scope (ROC-AUC within 0.5 ± two standard errors of a random "
               f"scorer's on {int(table['n'].max())} images, or below it): "
               + ", ".join(f"**{m}** ({v}, {a:.3f})" for m, v, a in zip(weak["model"], weak["vs_chance"],
                                                                          weak["roc_auc"])),
               icon=":material/casino:")
silent = display[display["recall"] == 0]
if len(silent):
    st.warning("Catches no fake of this scope at its threshold (recall 0: every fake called real), so its precision "
               "and F1 are 0 as well; its threshold, chosen on the validation split, does not suit these images: "
               + ", ".join(f"**{m}**" for m in silent["model"]), icon=":material/block:")


def _highlight(col: pd.Series) -> list[str]:
    higher = next((h for c, _, _, h in TABLE if c == col.name), None)
    vals = pd.to_numeric(col, errors="coerce")
    if higher is None or vals.notna().sum() < 2 or vals.nunique() < 2:
        return [""] * len(col)
    best = vals.max() if higher else vals.min()
    return ["background-color: rgba(84, 162, 75, 0.25); font-weight: 600" if v == best else "" for v in vals]


styled = display.style.apply(_highlight, axis=0)
column_config = {"model": st.column_config.TextColumn("Model", pinned=True),
                 "vs_chance": st.column_config.TextColumn(
                     "vs chance", help="ROC-AUC against a random scorer's on this many test images: above, within "
                                       "(no evidence the model learned anything here) or below (ranks the wrong "
                                       "way round)")}
for c, label, fmt, _ in TABLE:
    column_config[c] = st.column_config.NumberColumn(label, format=fmt, help=HELP.get(c))
st.dataframe(styled, hide_index=True, width="stretch", column_config=column_config, key="compare_table")
st.caption("Green: best value of the column (highest for quality, lowest for size and time).")
st.download_button("Download table (CSV)", table.to_csv(index=False).encode(),
                   file_name=f"{run.run_id}_{scope}_{'at0.5' if at_half else 'threshold'}.csv", mime="text/csv",
                   icon=":material/download:", key="compare_download")

# --------------------------------------------------------------------------- curves
st.subheader("ROC and precision-recall")
roc, pr = {}, {}
for m in shown:
    sc = metrics[m]["scopes"][scope]
    roc[m] = {"fpr": (sc.get("roc") or {}).get("fpr"), "tpr": (sc.get("roc") or {}).get("tpr"), "auc": sc.get("roc_auc")}
    pr[m] = {"precision": (sc.get("pr") or {}).get("precision"), "recall": (sc.get("pr") or {}).get("recall"),
             "ap": sc.get("average_precision")}
prevalence = float(n_fake) / float(n) if n else None
c1, c2 = st.columns(2, gap="large")
c1.plotly_chart(figures.roc_figure(roc, colors), key="compare_roc", width="stretch")
c2.plotly_chart(figures.pr_figure(pr, colors, prevalence=prevalence), key="compare_pr", width="stretch")
st.caption("How to read this: a ROC curve that bends up and to the left ranks fakes above reals (the diagonal is a "
           "coin toss). The precision-recall curve: as more fakes are caught (right), how many of the flagged images "
           "really are fake. Curves do not depend on the threshold; the toggle above changes the table and the "
           "confusion matrices.")

# --------------------------------------------------------------------------- below the curves: lazy tabs
MISROUTED_SHOWN = 16  # thumbnails of the surest misroutes


def _trust() -> None:
    """The verdict's test figures (coverage, real photos called fake, calibration)."""
    st.caption("How to read this: the run's verdict answers real, fake or can't tell. 'Real photos called fake' is "
               "the harm to avoid: the share of real test photos the verdict called fake, among those it gave an "
               "answer. 'Decided' is the share that got an answer at all. Calibration error (ECE) says how far "
               "'80% fake' is from 8 in 10 such photos being fake (0 = exact).")
    try:
        vt = common.verdict_table(run)
    except (ValueError, LookupError, OSError) as exc:
        st.caption(f":material/info: No three-way verdict in this run: {exc}")
    else:
        policy, _ = common.run_policy(run)
        shown_v = vt if scope == "all" else vt[vt["scope"].isin(["all", scope])]
        st.dataframe(
            shown_v.assign(scope=shown_v["scope"].replace({"all": "all datasets"})),
            hide_index=True, width="stretch",
            column_order=["scope", "n", "coverage", "n_real_called_fake", "fpr_decided", "recall_fake_decided",
                          "accuracy_decided", "ece", "ece_floor_p95", "brier"],
            column_config={
                "scope": "Data set", "n": st.column_config.NumberColumn("Test images", format="%d"),
                "coverage": st.column_config.NumberColumn("Decided", format="percent",
                                                          help="Share of test images that got real or fake"),
                "n_real_called_fake": st.column_config.NumberColumn("Real called fake (n)", format="%d"),
                "fpr_decided": st.column_config.NumberColumn("Real photos called fake", format="percent",
                                                             help="Among the decided real test photos"),
                "recall_fake_decided": st.column_config.NumberColumn("Fakes caught", format="percent",
                                                                     help="Among the decided fake test photos"),
                "accuracy_decided": st.column_config.NumberColumn("Accuracy (decided)", format="percent"),
                "ece": st.column_config.NumberColumn("ECE", format="%.3f",
                                                     help="Expected calibration error, 10 bins, calibrated"),
                "ece_floor_p95": st.column_config.NumberColumn(
                    "ECE noise (95%)", format="%.3f",
                    help="The ECE that exactly right probabilities would still show on this many photos, 95 times "
                         "in 100: a smaller ECE is within sampling noise"),
                "brier": st.column_config.NumberColumn("Brier", format="%.3f", help="Mean squared error of p(fake)"),
            })
        if policy is not None:
            st.caption(f"Verdict model **{policy.model}**, {threshold_words(policy)}. {error_rate_words(policy)} "
                       + (f"The stability check (the face {copies_words(policy)}) runs on every photo checked on "
                          "the Check page; this table is without it." if policy.stability
                          else "This run's stability check is off (its config says `stability = false`)."))


def _calibration() -> None:
    """Per model: error rates at its threshold, EER, calibration before/after, reliability diagrams."""
    st.caption("How to read this: each model alone, on the test images of the scope above: how many reals and "
               "fakes it gets right at its threshold, its equal error rate, how many fakes it catches at 1% or 5% "
               "false alarms, and how well its p(fake) is calibrated before and after Platt scaling.")
    tt = common.trust_table(run)
    if len(tt):
        part = tt[tt["scope"] == scope]
        st.dataframe(part, hide_index=True, width="stretch",
                     column_order=["model", "n", "recall_real", "recall_fake", "balanced_accuracy", "eer",
                                   "tpr_at_fpr_1pct", "tpr_at_fpr_5pct", "ece_raw", "ece", "brier", "log_loss"],
                     column_config={
                         "model": "Model", "n": st.column_config.NumberColumn("n", format="%d"),
                         "recall_real": st.column_config.NumberColumn("Reals called real", format="percent"),
                         "recall_fake": st.column_config.NumberColumn("Fakes called fake", format="percent"),
                         "balanced_accuracy": st.column_config.NumberColumn(
                             "Balanced accuracy", format="%.3f", help="Mean of the two: 0.5 = a coin, whatever the mix"),
                         "eer": st.column_config.NumberColumn("EER", format="%.3f",
                                                              help="Equal error rate: where both error rates meet"),
                         "tpr_at_fpr_1pct": st.column_config.NumberColumn(
                             "Fakes caught at 1% false alarms", format="percent"),
                         "tpr_at_fpr_5pct": st.column_config.NumberColumn(
                             "Fakes caught at 5% false alarms", format="percent"),
                         "ece_raw": st.column_config.NumberColumn("ECE raw", format="%.3f",
                                                                  help="Calibration error of the model's own scores"),
                         "ece": st.column_config.NumberColumn("ECE calibrated", format="%.3f",
                                                              help="After Platt scaling fitted on validation"),
                         "brier": st.column_config.NumberColumn("Brier", format="%.3f"),
                         "log_loss": st.column_config.NumberColumn("Log loss", format="%.3f"),
                     })
        pick = st.multiselect("Reliability diagram of", shown, default=shown[: min(3, len(shown))],
                              key="compare_reliability")
        calibrated = st.toggle("After calibration", value=True, key="compare_reliability_calibrated")
        curves = {}
        for m in pick:
            try:
                curves[m] = run.reliability(m, scope)["calibrated" if calibrated else "raw"]
            except (LookupError, ValueError, OSError, KeyError):
                continue
        if curves:
            st.plotly_chart(figures.reliability_figure(curves, colors), width="stretch")
            st.caption("How to read this: a point on the diagonal means 'p(fake) = x' was right x of the time; "
                       "above it the model under-states fakery, below it over-states it. Bigger dots hold more images.")


def _confusion_matrices() -> None:
    """One confusion matrix per chosen model (the best by ROC-AUC at first)."""
    by_auc = [r["model"] for r in sorted(rows, key=lambda r: -1.0 if pd.isna(r["roc_auc"]) else -float(r["roc_auc"]))]
    cm_models = st.multiselect("Confusion matrices of", [r["model"] for r in rows], default=by_auc[:CM_DEFAULT],
                               key="compare_cm_models",
                               help=f"The {CM_DEFAULT} best by ROC-AUC at first: one chart per model (every chart "
                                    "costs the browser time to draw).")
    cm_rows = [r for r in rows if r["model"] in cm_models]
    per_row = max(1, min(3, len(cm_rows)))
    for start in range(0, len(cm_rows), per_row):
        cols = st.columns(per_row)
        for col, r in zip(cols, cm_rows[start:start + per_row]):
            if any(pd.isna(r[k]) for k in ("tn", "fp", "fn", "tp")):
                col.caption(f"{r['model']}: no confusion counts recorded")
                continue
            title = f"{r['model']} · threshold {r['threshold']:.2f}" if r["threshold"] is not None else r["model"]
            col.plotly_chart(figures.confusion_matrix_figure(r["tn"], r["fp"], r["fn"], r["tp"], title=title),
                             key=f"compare_cm_{r['model']}", width="stretch", config={"displayModeBar": False})
    st.caption("How to read this: rows are the truth, columns the model's answer; the dark diagonal cells are right. "
               "Top right = real photos called fake (the harmful error), bottom left = fakes missed. Cells: image count "
               "and share of the row.")


def _one_metric() -> None:
    """One metric of every model on every scope."""
    metric = st.columns([1, 3])[0].selectbox("Metric", [c for c, _, _, h in TABLE if h is True],
                                            key="compare_bar_metric", format_func=figures.metric_label)
    per_scope = pd.DataFrame([r for m in models for s in scopes
                              if (r := comparison_row(m, metrics[m], s, at_half)) is not None])
    st.plotly_chart(figures.metric_bar_figure(per_scope, metric, colors), key="compare_bars", width="stretch")
    st.caption("How to read this: one group of bars per model, one bar per data set. A model can score well pooled "
               "while failing one kind of fake: compare the bars within a group.")


def _training_curves() -> None:
    """Every model's training history."""
    curve = st.segmented_control("Metric", ["loss", "accuracy", "auc"], default="loss", key="compare_curve_metric",
                                 format_func=figures.metric_label, required=True)
    histories = {m: common.history(run, m) for m in models}
    st.plotly_chart(figures.training_curves_figure(histories, curve or "loss", colors), key="compare_history",
                    width="stretch")
    st.caption("Training and validation splits of all datasets (histories are not split by scope). "
               "Dotted lines: start of fine-tuning (backbone unfrozen).")


def _router() -> None:
    """The router of the routed combined model: its accuracy, confusions and misroutes."""
    st.caption(f"`{ROUTED}` sends each image to the stacker of the dataset its router takes it for (a linear model "
               "on a thumbnail and HOG of the image): a routing error makes the wrong specialist speak.")
    router = _routing_report(str(run.path), common._model_mtime(run, ROUTED, store.PREDICTIONS),
                             float(metrics[ROUTED]["threshold"]))
    if router is None:
        st.info(f"This run's `{ROUTED}` was fitted before the router's choices were stored with its predictions. "
                f"Refresh it (trained models are reused; the combined models are refitted) with:"
                f"\n\n```\npython -m pipeline train --force\n```")
    else:
        c1, c2 = st.columns([1, 3])
        c1.metric("Router test accuracy", "n/a" if router.accuracy is None else f"{router.accuracy:.1%}",
                  help="Share of test images sent to their own dataset's stacker.")
        c2.metric("Misrouted test images", f"{len(router.misrouted):,} of {router.n:,}")
        c1, c2 = st.columns([3, 2], gap="large")
        c1.plotly_chart(figures_experiments.routing_confusion_figure(router.confusion), key="compare_router_confusion",
                        width="stretch", config={"displayModeBar": False})
        c2.dataframe(router.per_dataset, hide_index=True, width="stretch", key="compare_router_per_dataset",
                     column_config={"n": st.column_config.NumberColumn("Test images"),
                                    "routed_correctly": st.column_config.NumberColumn("Routed correctly"),
                                    "router_accuracy": st.column_config.NumberColumn("Router accuracy", format="%.3f"),
                                    "mean_confidence": st.column_config.NumberColumn(
                                        "Mean confidence", format="%.3f",
                                        help="Mean router probability of the dataset it picked.")})
        st.markdown("**Correctly routed vs misrouted** (the ensemble's test metrics at its threshold)")
        if router.by_routing.empty:
            st.caption("No dataset has both correctly routed and misrouted test images.")
        else:
            st.dataframe(router.by_routing, hide_index=True, width="stretch", key="compare_router_by_routing",
                         column_config={"roc_auc": st.column_config.NumberColumn("ROC-AUC", format="%.3f"),
                                        "accuracy": st.column_config.NumberColumn("Accuracy", format="%.3f"),
                                        "n_fake": st.column_config.NumberColumn("of them fake")})
            st.caption("ROC-AUC is empty where a group holds one class only; small groups are noisy.")
        st.markdown("**Misrouted test images**")
        if router.misrouted.empty:
            st.caption("None: every test image went to its own dataset's stacker.")
        else:
            from pipeline import display

            shown = router.misrouted.assign(path=display.relative_paths(router.misrouted["path"],
                                                                         display.data_roots(run.config)))
            st.dataframe(shown, hide_index=True, width="stretch", key="compare_router_misrouted",
                         column_config={"path": st.column_config.TextColumn("Image"),
                                        ROUTED_TO: st.column_config.TextColumn("Routed to"),
                                        ROUTE_CONFIDENCE: st.column_config.NumberColumn("Confidence", format="%.3f"),
                                        "p_fake": st.column_config.NumberColumn("p_fake", format="%.3f")})
            surest = router.misrouted.head(MISROUTED_SHOWN)
            st.caption(f"The {len(surest)} surest misroutes: true dataset → routed to (confidence), label, p_fake.")
            common.thumbnail_grid([(r.path, f"{r.dataset} → {getattr(r, ROUTED_TO)} "
                                            f"({getattr(r, ROUTE_CONFIDENCE):.2f}) · {r.label} · {r.p_fake:.2f}")
                                   for r in surest.itertuples(index=False)])


# Only the open tab is computed and drawn (st.tabs with on_change="rerun"): the sections below the curves
# held a dozen charts, tables and thumbnails that cost the browser seconds on every first visit
# (BENCHMARKS.md, "Third pass").
SECTIONS = {"Can the verdict be trusted?": _trust, "Calibration per model": _calibration,
            "Confusion matrices": _confusion_matrices,
            "One metric, every scope": _one_metric, "Training curves": _training_curves}
if ROUTED in models:
    SECTIONS["Router"] = _router
for tab, section in zip(st.tabs(list(SECTIONS), key=SECTION_KEY, on_change="rerun"), SECTIONS.values()):
    if tab.open:
        with tab:
            section()
