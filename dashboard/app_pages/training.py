"""Training: loss/accuracy curves of any models overlaid, the hyper-parameter search, the ablation grid."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import common
from pipeline import figures, figures_experiments, on_demand, training_results
from pipeline.results import ArtifactError, ExperimentNotRun

run = common.selected_run()
st.title("Training")
st.caption(common.run_caption(run))

# --------------------------------------------------------------------------- curves
histories: dict[str, pd.DataFrame] = {}
for m in run.models():
    try:
        h = run.history(m)
    except ArtifactError:
        continue
    if len(h):
        histories[m] = h
if not histories:
    st.info("No model of this run has finished an epoch yet: curves appear here as models train.")
else:
    st.subheader("What each model reached")
    st.dataframe(training_results.training_table(histories, common.summary(run)), hide_index=True, width="stretch",
                 key="training_results",
                 column_config={"best validation AUC": st.column_config.NumberColumn(
                     format="%.3f", help="The highest ROC-AUC on the validation split over the epochs (0.5 = chance)."),
                     "at epoch": st.column_config.NumberColumn(help="Counting every phase (head, then fine-tuning)."),
                     "test ROC-AUC": st.column_config.NumberColumn(
                         format="%.3f", help="On the pooled test split, with the weights the model kept."),
                     "training time (s)": st.column_config.NumberColumn(format="%.0f")})
    st.subheader("Training curves")
    colors = figures.model_colors(list(histories))
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    chosen = c1.multiselect("Models", list(histories), default=list(histories), key="training_models")
    metric = c2.segmented_control("Metric", ["loss", "accuracy", "auc"], default="loss", key="training_metric",
                                  format_func=figures.metric_label, required=True)
    st.plotly_chart(figures.training_curves_figure({m: histories[m] for m in chosen}, metric or "loss", colors),
                    key="training_curves", width="stretch")
    st.caption("How to read this: solid lines are the training images, dashed the validation images the model never "
               "learned from. Dashed lines that stop improving while solid ones still do mean the model memorises "
               "rather than learns. Dotted vertical lines: start of fine-tuning (the pretrained layers unfrozen).")
    fell_back = [m for m in chosen if run.kept_head_phase(m)]
    if fell_back:
        st.warning(f"{', '.join(f'**{m}**' for m in fell_back)}: no fine-tuning epoch beat the frozen-backbone head "
                   "phase on validation, so the model keeps the head phase's weights (a lower "
                   "`fine_tune_learning_rate` may fine-tune it).")

# --------------------------------------------------------------------------- search
st.subheader("Hyper-parameter search")
try:
    trials = run.experiment("search")
except ExperimentNotRun:
    st.caption("Not part of this run: the search of a small CNN's layers and learning rate is an optional experiment. "
               + on_demand.training_command("search", run.run_id))
except ArtifactError as exc:
    st.warning(str(exc))
else:
    settings, best = run.experiment_settings("search"), run.search_best()
    st.caption(f"Keras Tuner {settings.get('tuner', '?')} search of `searched_cnn` at {settings.get('image_size', '?')} px: "
               f"{len(trials)} trial(s) x {settings.get('epochs', '?')} epoch(s), objective validation AUC. "
               "Click a column header to sort.")
    st.dataframe(trials, hide_index=True, width="stretch", key="training_trials",
                 column_config={"val_auc": st.column_config.NumberColumn("val AUC", format="%.3f"),
                                "val_accuracy": st.column_config.NumberColumn("val accuracy", format="%.3f"),
                                "val_loss": st.column_config.NumberColumn("val loss", format="%.3f"),
                                "learning_rate": st.column_config.NumberColumn("learning rate", format="%g"),
                                "seconds": st.column_config.NumberColumn("seconds", format="%.1f")})
    st.plotly_chart(figures_experiments.search_parallel_figure(trials), key="training_parcoords", width="stretch")
    if best:
        st.markdown(f"Best trial **{best.get('trial_id')}** (validation AUC {figures._fmt(best.get('val_auc'))}) "
                    "is trained as model **searched_cnn** (see Compare models). To train it in a config:")
        st.code(best.get("config_entry", ""), language="toml")

# --------------------------------------------------------------------------- ablation
st.subheader("Optimizer x learning rate")
try:
    grid = run.experiment("ablation")
except ExperimentNotRun:
    st.caption("Not part of this run: training one model with each optimizer and learning rate is an optional experiment. "
               + on_demand.training_command("ablation", run.run_id))
except ArtifactError as exc:
    st.warning(str(exc))
else:
    settings = run.experiment_settings("ablation")
    spec = settings.get("spec") or {}
    st.caption(f"`{settings.get('model', '?')}` at {spec.get('image_size', '?')} px, {spec.get('epochs', '?')} "
               "epoch(s) per cell from the same seed, early stopping off.")
    ab_metric = st.selectbox("Metric", ["best_val_auc", "test_auc", "test_accuracy", "final_val_loss",
                                        "train_seconds"], key="training_ablation_metric",
                             format_func=lambda c: c.replace("_", " "))
    st.plotly_chart(figures_experiments.ablation_heatmap_figure(grid, ab_metric), key="training_ablation", width="stretch")
    st.dataframe(grid, hide_index=True, width="stretch", key="training_ablation_table")
