"""Generalisation: one model trained on each dataset alone and tested on every dataset."""
from __future__ import annotations

import streamlit as st

from dashboard import common
from pipeline import figures, figures_experiments, on_demand
from pipeline.experiments import crossdataset
from pipeline.results import ArtifactError, ExperimentNotRun, ModelNotFound

run = common.selected_run()
st.title("Generalisation")
st.caption(common.run_caption(run))

try:
    by_model = run.crossdataset_by_model()
except ExperimentNotRun:
    common.stop_with(f"Run `{run.run_id}` has no generalisation matrix yet. "
                     + on_demand.training_command("crossdataset", run.run_id), "info")
except ArtifactError as exc:
    common.stop_with(str(exc), "warning")

chosen = next(iter(by_model))
if len(by_model) > 1:
    chosen = st.selectbox("Model", list(by_model), key="generalisation_model")
matrix, settings = by_model[chosen]
spec = settings.get("spec") or {}
if chosen == settings.get("model"):
    st.caption(f"`{chosen}` at {spec.get('image_size', '?')} px, {spec.get('epochs', '?')} epoch(s)"
               + (f" + {spec['fine_tune_epochs']} fine-tuning" if spec.get("fine_tune_epochs") else "")
               + ", trained on the training split of one dataset (threshold from its validation split), tested on "
               "the test split of every dataset. A detector that only works on its own data set is of little use.")
else:  # a clip_linear model: its head is a logistic regression or an RBF SVM (params.head)
    try:
        head = run.metrics(chosen).get("head", "logistic")
    except (ArtifactError, ModelNotFound):  # the model's files are gone: say nothing about its head
        head = None
    head_words = {"logistic": "a linear head (logistic regression)", "svm": "an RBF-kernel SVM head"}.get(head, "a head")
    st.caption(f"`{chosen}`: the frozen CLIP encoder with {head_words} fitted on one data set's share of its "
               "training sample (threshold from that data set's validation split), tested on the test split of "
               "every data set.")
metric = st.selectbox("Metric", ["roc_auc", "accuracy", "balanced_accuracy"], key="generalisation_metric",
                      format_func=figures.metric_label)
sizes = matrix.drop_duplicates("test_on").set_index(matrix.drop_duplicates("test_on")["test_on"].astype(str))["n"]
st.caption("Test images per data set (the same for every row): "
           + ", ".join(f"{d} {int(n):,}" for d, n in sorted(sizes.items())) + ".")
st.plotly_chart(figures_experiments.generalisation_figure(matrix, metric), key="generalisation_chart", width="stretch")
st.caption("How to read this: a row is one model trained on one data set; along the row, how it scores on each data "
           "set's test images. The diagonal is its own data set; green off the diagonal means the detector carries "
           "over, red means it does not (0.5 is a coin toss).")

findings = crossdataset.transfer_findings(matrix, metric)
if findings:
    st.markdown("\n".join(f"- {line}" for line in findings))
    st.caption("A cell counts only when its ROC-AUC is further from 0.5 than chance lands on that many test images "
               "in 19 of 20 draws.")
label = figures.metric_label(metric)
grid = matrix.assign(train_on=matrix["train_on"].astype(str), test_on=matrix["test_on"].astype(str)) \
    .pivot_table(index="train_on", columns="test_on", values=metric, aggfunc="first")
grid.columns = [f"{c} (n={int(sizes[c]):,})" for c in grid.columns]
st.dataframe(grid.rename_axis(f"{label}: trained on ↓ / tested on →").reset_index(), hide_index=True,
             width="stretch", key="generalisation_table",
             column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in grid.columns})
with st.expander("All numbers (every metric, threshold, training time)"):
    st.dataframe(matrix, hide_index=True, width="stretch", key="generalisation_all",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f")
                                for c in ("roc_auc", "accuracy", "balanced_accuracy", "threshold")})
