"""Robustness: AUC (or accuracy) of every model vs perturbation level, per dataset. The run's
combined model (its verdict on uploads) is listed first, drawn thicker and summarised on top."""
from __future__ import annotations

import streamlit as st

from dashboard import common, compute_panel
from pipeline import figures, figures_experiments, on_demand, results
from pipeline.experiments import robustness
from pipeline.results import ArtifactError, ExperimentNotRun

run = common.selected_run()
st.title("Robustness")
st.caption(common.run_caption(run))

try:
    table = run.experiment("robustness")
except ExperimentNotRun:
    if not common.keras_model_names(run):
        common.stop_with(f"Run `{run.run_id}` has no robustness sweep and no finished Keras model to sweep; train "
                         f"one with `{results.TRAIN_COMMAND}`.", "info")
    compute_panel.offer(f"Run `{run.run_id}` has no robustness sweep yet: it scores every model on a sample of the "
                        "test images under JPEG, rescaling, blur and noise (inference only, a few minutes).",
                        "Run the robustness sweep", lambda progress: on_demand.compute_robustness(run.path, progress),
                        key="robustness_compute", busy=on_demand.is_busy(run.path, "robustness"))
    st.stop()
except ArtifactError as exc:
    common.stop_with(str(exc), "warning")

settings = run.experiment_settings("robustness")
models = list(dict.fromkeys(table["model"]))
DAMAGE_WORDS = {"jpeg": "JPEG re-save", "scale": "shrunk and re-enlarged", "blur": "blur", "noise": "noise",
                "normalise": "one size + JPEG"}
colors = figures.model_colors(models)
verdict_model = settings.get("combined_model") if settings.get("combined_model") in models else None


def _label(model: str) -> str:
    return f"{model} (run's verdict)" if model == verdict_model else model


datasets = ["all"] + sorted(d for d in table["dataset"].astype(str).unique() if d != "all")
c1, c2 = st.columns(2)
dataset = c1.selectbox("Dataset", datasets, key="robustness_dataset",
                       format_func=lambda d: "all datasets pooled" if d == "all" else d)
metric = c2.selectbox("Metric", ["roc_auc", "accuracy", "balanced_accuracy"], key="robustness_metric",
                      format_func=figures.metric_label)
short = robustness.METRIC_SHORT.get(metric, metric)
scope_rows = table[(table["dataset"].astype(str) == dataset) & (table["perturbation"] == "none")]
n_scope = sorted({int(v) for v in scope_rows["n"].dropna()})
n_words = f"{n_scope[0]:,}" if len(n_scope) == 1 else "–".join(f"{v:,}" for v in (n_scope[0], n_scope[-1])) \
    if n_scope else "?"
scope_words = "all data sets pooled" if dataset == "all" else dataset
sample = settings.get("n_test", "?")
st.caption(f"**{n_words} test images** ({scope_words}"
           + ("" if dataset == "all" else f", of a fixed-seed sample of {sample:,} test images" if isinstance(sample, int)
              else "") + "; every number on this page is on these images, a sample of the test split stratified by "
           "data set and class). Each perturbation is applied to the original image, before it is resized to "
           "the model's input size. Accuracy is at each model's own decision threshold, chosen on the validation "
           "split.")
if verdict_model:
    st.markdown(f"**{verdict_model}** is the run's verdict: the combined model that scores uploads on *Check an "
                f"image*, swept here like the others at its own threshold. "
                + robustness.verdict_summary(table, verdict_model, dataset, metric))
elif on_demand.robustness_needs_update(run.path):
    compute_panel.offer("This sweep predates scoring the run's combined model (its verdict on uploads); add it "
                        "(models whose rows are current are not scored again).",
                        "Add the combined model to the sweep",
                        lambda progress: on_demand.compute_robustness(run.path, progress),
                        key="robustness_update", busy=on_demand.is_busy(run.path, "robustness"))
st.plotly_chart(figures_experiments.robustness_figure(table, dataset, metric, colors, highlight=verdict_model),
                key="robustness_chart", width="stretch")
st.caption(f"How to read this: one panel per kind of damage, the clean image on the left of each, stronger damage to "
           f"the right. A flat line is a model that keeps its {short}; a falling one loses it. 0.5 is a coin toss.")

st.subheader(f"Mean {short} drop per model")
drop = robustness.drop_table(table, dataset, metric)
clean_col = f"clean {short}"
steadiest = robustness.most_robust(drop)
if steadiest is not None:
    st.markdown(f"Most robust here: **{_label(steadiest)}** ({clean_col} {drop.loc[steadiest, clean_col]:.3f}, mean "
                f"{short} drop {drop.loc[steadiest, 'mean drop']:+.3f}), among the models that beat chance on clean "
                "images.")
elif drop["mean drop"].notna().any():
    st.markdown(f"No model here beats chance on clean images by more than sampling noise, so no {short} drop says "
                "which one is robust.")
drop = drop.sort_values("mean drop").rename(index=_label)
if drop["n"].nunique(dropna=True) <= 1:
    drop = drop.drop(columns=["n"])  # one n for every row: said once, in the caption above
drop = drop.rename(columns=DAMAGE_WORDS)
st.dataframe(drop.reset_index(), hide_index=True, width="stretch", key="robustness_drop",
             column_config={c: st.column_config.NumberColumn(c, format="%+.3f" if c not in (clean_col,) else "%.3f")
                            for c in drop.columns if c not in ("n", "above chance")}
             | {"above chance": st.column_config.CheckboxColumn(
                 "above chance", help="The clean ROC-AUC is further from 0.5 than a coin lands on this many images "
                                      "in 19 of 20 draws: only then can a drop say anything.")})
st.caption(f"{short[0].upper() + short[1:]} drop = clean {short} − {short} under the damage (mean over its levels); lower is "
           f"more robust, negative means it scored better damaged. On the same {n_words} images as above.")

shortcut = robustness.shortcut_table(table, dataset)
if shortcut is not None:
    st.subheader("Shortcut check: one size, one JPEG quality")
    st.markdown(f"Every test image resized to {settings.get('normalise_size', 256)} px and re-encoded at one JPEG "
                "quality. A detector that reads the file (its JPEG tables, resolution, format) instead of the face "
                "changes its verdicts here; one that reads the face barely moves.")
    st.dataframe(shortcut.assign(model=shortcut["model"].map(_label)), hide_index=True, width="stretch",
                 key="robustness_shortcut",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in shortcut.columns
                                if c not in ("model", "JPEG quality")})
    st.caption("Verdicts changed = share of images whose verdict at the model's threshold differs from the clean "
               "image's; mean |change| = mean absolute change of P(fake).")
with st.expander("All rows"):
    st.dataframe(table, hide_index=True, width="stretch", key="robustness_table")
