"""SVM lab: refit an SVM on a model's PCA components live, and compare it with the model's own head
and with the run's stored default PCA-SVM.

Only the SVC is refitted here: the standardised PCA scores of every image are read once from
``models/<m>/pca.npz`` (cached), and the live SVM is fitted on a fixed-seed sample of the training
images stratified by dataset and label (:data:`pipeline.svm.LIVE_MAX_TRAIN`), so a refit stays under a second
(libsvm's time grows with the square of the images: 5,000 took 1-2 s; BENCHMARKS.md). The page says
what the fit used; the run's stored default PCA-SVM was fitted on every training image.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import common, compute_panel
from pipeline import splits
from pipeline import figures, figures_embeddings, results, run_embeddings, svm

SURFACE_RESOLUTION = 80
WHAT_TO_RUN = (f"The lab uses the PCA of each model's embeddings, built by the pipeline after training:"
               f"\n\n```\n{results.TRAIN_COMMAND}\n```\n\n(with `[embeddings] enabled = true`, the default).")


@st.cache_data(show_spinner=False, max_entries=16)
def _data(run_path: str, model: str, mtime: float, max_train: int = svm.LIVE_MAX_TRAIN) -> dict:
    run = results.load_run(results.info_at(run_path))
    scores = run_embeddings.pca(run, model)["scores"].astype(np.float32)
    man = run.manifest()
    split = man["split"].to_numpy().astype(str)
    y = man["y"].to_numpy().astype(int)
    train = splits.stratified_subsample(np.flatnonzero(split == "train"), man, max_train, seed=0)
    val, test = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    return {"train_X": scores[train], "train_y": y[train], "val_X": scores[val], "val_y": y[val],
            "test_X": scores[test], "test_y": y[test], "test_label": man["label"].to_numpy()[test].astype(str),
            "n_train_all": int((split == "train").sum())}


@st.cache_data(show_spinner=False, max_entries=64)
def _fit(run_path: str, model: str, mtime: float, k: int, params: tuple) -> dict:
    d = _data(run_path, model, mtime, svm.LIVE_MAX_TRAIN)
    out = svm.fit_and_score(d["train_X"], d["train_y"], d["test_X"], d["test_y"], n_components=k,
                            val_X=d["val_X"], val_y=d["val_y"], **dict(params))
    out.pop("p_fake", None)
    return out


@st.cache_data(show_spinner=False, max_entries=64)
def _surface(run_path: str, model: str, mtime: float, params: tuple) -> dict:
    d = _data(run_path, model, mtime, svm.LIVE_MAX_TRAIN)
    return svm.decision_surface(d["train_X"], d["train_y"], resolution=SURFACE_RESOLUTION, **dict(params))


run = common.selected_run()
models = common.require_models(run)
st.title("SVM lab")
st.caption(common.run_caption(run))
available = [m for m in models if run_embeddings.has_embeddings(run, m)]
compute_panel.require_embeddings(run, available, what="the lab refits an SVM on", what_to_run=WHAT_TO_RUN, key="svm_compute")

c1, c2 = st.columns([2, 3])
model = c1.selectbox("Model embedding", available, key="svm_model")
mtime = run.file_mtime(f"models/{model}/pca.npz") + run.file_mtime(f"models/{model}/embeddings.json")
data = common.guarded(_data, str(run.path), model, mtime, svm.LIVE_MAX_TRAIN)
k_max = int(data["train_X"].shape[1])
c2.caption(f"Fitted on {len(data['train_y']):,} training images"
           + (f" (a fixed-seed sample of the {data['n_train_all']:,}, each dataset and class in proportion, so a "
              "change refits in under a second; the stored default SVM below used all of them)"
              if data["n_train_all"] > len(data["train_y"]) else "")
           + f", {len(data['val_y']):,} validation, {len(data['test_y']):,} test · up to {k_max} PCA components "
             "of the standardised embedding (fitted on train).")

with st.container(border=True):
    r1 = st.columns(4)
    k = r1[0].slider("PCA components", 1, k_max, min(k_max, 50), key="svm_k") if k_max > 1 else 1
    kernel = r1[1].selectbox("Kernel", svm.KERNELS, index=svm.KERNELS.index("poly"), key="svm_kernel")
    log_c = r1[2].slider("Strictness C (power of 10)", -3.0, 3.0, 0.0, 0.25, key="svm_log_c",
                         help="C = 10 to this power. How much each training mistake costs: small C (left) gives a "
                              "smooth boundary with a wide margin that tolerates mistakes; large C bends the boundary "
                              "to fit every training face (it may then fit noise).")
    weight = r1[3].selectbox("Class weight", ["none", "balanced"], key="svm_class_weight")
    r2 = st.columns(4)
    degree = r2[0].slider("Polynomial degree", 1, 6, 3, key="svm_degree", disabled=kernel != "poly",
                          help="poly kernel only: 1 = straight boundaries, higher = more curved ones.")
    gamma_mode = r2[1].selectbox("Gamma", ["scale", "auto", "value"], key="svm_gamma_mode",
                                 disabled=kernel == "linear",
                                 help="How far one training face's influence reaches: small gamma = far (smooth "
                                      "boundary), large = only its close neighbours (wiggly boundary). scale = 1 / "
                                      "(dims * variance), auto = 1 / dims, or the value on the right.")
    log_gamma = r2[2].slider("Gamma (power of 10)", -4.0, 1.0, -2.0, 0.25, key="svm_log_gamma",
                             disabled=kernel == "linear" or gamma_mode != "value",
                             help="gamma = 10 to this power, when Gamma is set to 'value'.")
    coef0 = r2[3].slider("Offset coef0", -2.0, 5.0, 0.0, 0.5, key="svm_coef0",
                         disabled=kernel not in ("poly", "sigmoid"),
                         help="poly and sigmoid kernels: the constant inside (gamma * x·y + coef0). Higher gives the "
                              "simpler, low-degree part of the boundary more weight.")

gamma = float(10 ** log_gamma) if gamma_mode == "value" else gamma_mode
params = (("kernel", kernel), ("C", float(10 ** log_c)), ("degree", int(degree)), ("gamma", gamma),
          ("coef0", float(coef0)), ("class_weight", None if weight == "none" else "balanced"))
with st.spinner("Fitting the SVM…"):
    res = common.guarded(_fit, str(run.path), model, mtime, int(k), params)

m = st.columns(5)
at = res.get("at_threshold") or {}
m[0].metric("Test accuracy (margin 0)", f"{res['accuracy']:.3f}")
m[1].metric("Test accuracy (val threshold)", f"{at.get('accuracy', float('nan')):.3f}",
            help=f"Threshold chosen on the validation split (Youden): {res['threshold']:.3f}")
m[2].metric("ROC-AUC", "n/a" if res["roc_auc"] is None else f"{res['roc_auc']:.3f}")
m[3].metric("Fit time", f"{res['fit_seconds'] * 1000:.0f} ms")
m[4].metric("Support vectors", "n/a (liblinear)" if res["n_support"] is None else f"{res['n_support']:,}")

# --------------------------------------------------------------------------- comparison
head = common.metrics(run, model)
default_name = svm.svm_model_name(model)
default = common.metrics(run, default_name) if default_name in models else None


def _row(name: str, metrics: dict | None, note: str) -> dict:
    sc = ((metrics or {}).get("scopes") or {}).get("all") or {}
    return {"classifier": name, "accuracy": (sc.get("at_threshold") or {}).get("accuracy"),
            "roc_auc": sc.get("roc_auc"), "note": note}


rows = [{"classifier": f"this SVM ({kernel}, {k} components)", "accuracy": at.get("accuracy"),
         "roc_auc": res["roc_auc"], "note": "refitted now; threshold from validation"},
        _row(f"{model} sigmoid head", head, "the trained model's own output layer"),
        _row(default_name, default, "the run's stored default SVM" if default else "not trained in this run")]
curves = {rows[0]["classifier"]: {**res["roc"], "auc": res["roc_auc"]}}
for name, metr in ((f"{model} head", head), (default_name, default)):
    sc = ((metr or {}).get("scopes") or {}).get("all") or {}
    if sc.get("roc"):
        curves[name] = {**sc["roc"], "auc": sc.get("roc_auc")}

st.subheader("Comparison on the test split")
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="svm_table",
             column_config={"accuracy": st.column_config.NumberColumn("Accuracy", format="%.3f"),
                            "roc_auc": st.column_config.NumberColumn("ROC-AUC", format="%.3f")})
c1, c2 = st.columns([3, 2], gap="large")
c1.plotly_chart(figures.roc_figure(curves, figures.model_colors(curves)), key="svm_roc", width="stretch")
c1.caption("How to read this: the higher and further left the curve, the better it ranks fakes above reals; compare "
           "this SVM with the model's own head and the stored PCA-SVM.")
(tn, fp), (fn, tp) = res["confusion"]
c2.plotly_chart(figures.confusion_matrix_figure(tn, fp, fn, tp, title="This SVM · margin 0"), key="svm_cm",
                width="stretch", config={"displayModeBar": False})

# --------------------------------------------------------------------------- decision surface
st.subheader("Decision surface on the first two PCA components")
if k_max < 2:
    st.info("This embedding has a single PCA component: no 2-D surface to draw.")
else:
    surf = common.guarded(_surface, str(run.path), model, mtime, params)
    fig = figures_embeddings.decision_surface_figure(surf, data["test_X"][:, 0], data["test_X"][:, 1], data["test_label"],
                                          title=f"{kernel} SVM fitted on pca_1, pca_2 · test images on top")
    st.plotly_chart(fig, key="svm_surface", width="stretch")
    st.caption(f"A separate SVM with the same settings, fitted on two components only (fit {surf['fit_seconds'] * 1000:.0f} ms): "
               "the black line is its boundary, red the fake side. Most of the separation usually needs more "
               "components than a picture can show.")
