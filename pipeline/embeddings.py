"""Penultimate embeddings of every image, their PCA / UMAP projections, separability, and the
"<model>+pca_svm" comparison rows. Run by :func:`pipeline.runner.train_run` after the Keras models.

Files per model ``m`` (row order = the run's ``manifest.parquet`` order; no pickle anywhere):

``models/<m>/embeddings.npz``
    ``embedding`` (N, D) float32 output of the layer named "embedding"; ``p_fake`` (N,) the model's
    own sigmoid head on the same pass; ``sha256`` (N,) the manifest's file hashes (row check).
``models/<m>/pca.npz``
    standardise + PCA fitted on TRAIN rows only, ``k = min(50, D, n_train - 1)`` components:
    ``scores`` (N, k) float32 for every image, ``scaler_mean``, ``scaler_scale``, ``pca_mean``,
    ``components`` (k, D), ``explained_variance``, ``explained_variance_ratio``.
``models/<m>/projections.parquet``
    path, relpath, dataset, label, y, split, p_fake, pca_1..3, pca2d_1..2, umap_1..3, umap2d_1..2
    (UMAP on the PCA scores, fixed seed, fitted on at most ``max_points`` (default 3,000) images
    stratified by dataset and label; the others are placed with ``UMAP.transform``).
``models/<m>/separability.json``
    logistic regression and kNN (k=15) fitted on train rows, scored on test, in 2-D, 3-D and k-D PCA.
``models/<m>/embeddings.json``
    written LAST: dims, timings, and the cache key (model file, data, settings). The step is
    skipped when this key matches.

``models/<m>+pca_svm/``: metrics.json (artifacts/README.md schema), predictions.parquet (val +
test), history.csv (no epochs: empty), svm.json (hyper-parameters), svc.skops (the fitted SVC, skops;
loaded by :func:`pipeline.detectors.pca_svm.load_run_svm`), done.json last (:func:`pipeline.store.write_model`).
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline import artifacts, evaluation, splits, store
from pipeline import svm as svm_mod
from pipeline.persist import save_estimator
from pipeline.progress import ProgressFn, report

EMBEDDINGS_FILE = "embeddings.npz"
PCA_FILE = "pca.npz"
PROJECTIONS_FILE = "projections.parquet"
SEPARABILITY_FILE = "separability.json"
META_FILE = "embeddings.json"  # written last
SVM_FILE = "svm.json"
FORMAT_VERSION = 1
DEFAULT_UMAP_FIT_CAP = 3000
UMAP_EPOCHS = 200
KNN_K = 15
PROJECTION_COLUMNS = (["path", "relpath", "dataset", "label", "y", "split", "p_fake"]
                      + [f"pca_{i}" for i in (1, 2, 3)] + ["pca2d_1", "pca2d_2"]
                      + [f"umap_{i}" for i in (1, 2, 3)] + ["umap2d_1", "umap2d_2"])
HISTORY_COLUMNS = store.HISTORY_COLUMNS

Log = Callable[[str], None]


# --------------------------------------------------------------------------- reading


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def load_embeddings(run_dir: Path, model: str) -> dict[str, np.ndarray]:
    return _npz(store.model_dir(run_dir, model) / EMBEDDINGS_FILE)


def load_pca(run_dir: Path, model: str) -> tuple[svm_mod.Projection, np.ndarray]:
    """(projection arrays, PCA scores of every manifest row)."""
    d = _npz(store.model_dir(run_dir, model) / PCA_FILE)
    return svm_mod.Projection.from_arrays(d), d["scores"]


def _write_npz(target: Path, **arrays: np.ndarray) -> None:
    with artifacts.atomic_path(target, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


# --------------------------------------------------------------------------- computing


def extract(model, x: np.ndarray, batch_size: int = 64, progress: ProgressFn = None,
            stage: str = "embeddings") -> tuple[np.ndarray, np.ndarray]:
    """(embedding (N, D) float32, p_fake (N,) float32) of uint8/float images, one forward pass."""
    from pipeline.models import embedding_and_output_model

    both = embedding_and_output_model(model)
    dim = int(both.outputs[0].shape[-1])
    emb = np.empty((len(x), dim), dtype=np.float32)
    p = np.empty((len(x),), dtype=np.float32)
    n_batches = max(1, -(-len(x) // batch_size))
    for b, i in enumerate(range(0, len(x), batch_size), 1):
        e, q = both.predict_on_batch(np.asarray(x[i:i + batch_size], dtype=np.float32))
        emb[i:i + batch_size] = np.asarray(e, dtype=np.float32).reshape(len(e), -1)
        p[i:i + batch_size] = np.asarray(q).reshape(-1)
        if b % 10 == 0 or b == n_batches:
            report(progress, stage, b, n_batches)
    return emb, p


def umap_project(Z: np.ndarray, n_components: int, fit_idx: np.ndarray, seed: int, n_neighbors: int = 15,
                 min_dist: float = 0.1, n_epochs: int | None = UMAP_EPOCHS) -> np.ndarray:
    """UMAP of ``Z`` fitted on rows ``fit_idx`` (fixed seed: deterministic); the rest transformed."""
    import umap

    n_fit = len(fit_idx)
    out = np.full((len(Z), n_components), np.nan, dtype=np.float32)
    if n_fit < 4:
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reducer = umap.UMAP(n_components=n_components, n_neighbors=int(min(n_neighbors, n_fit - 1)),
                            min_dist=min_dist, random_state=seed, n_epochs=n_epochs, init="spectral" if n_fit > n_components + 1 else "random")
        out[fit_idx] = reducer.fit_transform(Z[fit_idx]).astype(np.float32)
        rest = np.setdiff1d(np.arange(len(Z)), fit_idx)
        if len(rest):
            out[rest] = reducer.transform(Z[rest]).astype(np.float32)
    return out


def separability(Z: np.ndarray, y: np.ndarray, split: np.ndarray, dims: tuple[int, ...] | None = None) -> list[dict]:
    """How well simple classifiers separate real from fake in the first 2, 3 and k PCA components:
    logistic regression and kNN (k=15), fitted on train rows, scored on test rows."""
    from sklearn import metrics as skm
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    k = Z.shape[1]
    dims = dims or tuple(sorted({min(2, k), min(3, k), k}))
    train, test = split == "train", split == "test"
    rows = []
    if train.sum() < 2 or test.sum() == 0 or len(np.unique(y[train])) < 2:
        return rows
    both = len(np.unique(y[test])) == 2
    for d in dims:
        Xtr, Xte = Z[train, :d], Z[test, :d]
        for name, clf in (("logistic", LogisticRegression(max_iter=2000)),
                          (f"knn{KNN_K}", KNeighborsClassifier(n_neighbors=int(min(KNN_K, train.sum()))))):
            clf.fit(Xtr, y[train])
            s = clf.predict_proba(Xte)[:, 1]
            rows.append({"space": f"pca {d}-D", "dims": int(d), "classifier": name,
                         "accuracy": float(((s >= 0.5).astype(int) == y[test]).mean()),
                         "roc_auc": float(skm.roc_auc_score(y[test], s)) if both else None})
    return rows


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    if a.shape[1] >= n:
        return a[:, :n]
    return np.hstack([a, np.zeros((len(a), n - a.shape[1]), dtype=a.dtype)])


def cache_key(run_dir: Path, model: str, manifest: pd.DataFrame, emb_cfg, seed: int) -> str:
    settings = {k: getattr(emb_cfg, k) for k in ("pca_components", "umap", "umap_neighbors", "umap_min_dist",
                                                   "max_points")}
    return artifacts.stable_hash({"model": store.model_stamp(run_dir, model), "rows": manifest["sha256"].tolist(),
                                  "split": manifest["split"].tolist(), "settings": settings, "seed": seed,
                                  "v": FORMAT_VERSION})


def is_complete(run_dir: Path, model: str, key: str) -> bool:
    folder = store.model_dir(run_dir, model)
    meta_file = folder / META_FILE
    if not meta_file.exists():
        return False
    try:
        meta = artifacts.read_json(meta_file)
    except (OSError, ValueError):
        return False
    names = (EMBEDDINGS_FILE, PCA_FILE, PROJECTIONS_FILE, SEPARABILITY_FILE)
    return meta.get("key") == key and all((folder / n).exists() for n in names)


def build_model_embeddings(run_dir: Path, model_name: str, keras_model, x: np.ndarray, manifest: pd.DataFrame,
                           emb_cfg, seed: int, key: str, progress: ProgressFn = None) -> dict:
    """Compute and write every embedding file of one model; returns embeddings.json's content."""
    out = store.model_dir(run_dir, model_name)
    (out / META_FILE).unlink(missing_ok=True)
    timings = {}
    t = time.perf_counter()
    emb, p = extract(keras_model, x, progress=progress, stage=f"embeddings {model_name}")
    timings["extract"] = time.perf_counter() - t
    _write_npz(out / EMBEDDINGS_FILE, embedding=emb, p_fake=p, sha256=manifest["sha256"].to_numpy().astype(str))

    split = manifest["split"].to_numpy()
    y = manifest["y"].to_numpy().astype(int)
    train = split == "train"
    t = time.perf_counter()
    proj = svm_mod.fit_projection(emb[train], emb_cfg.pca_components, seed)
    scores = proj.transform(emb)
    timings["pca"] = time.perf_counter() - t
    dim = emb.shape[1]
    del emb
    _write_npz(out / PCA_FILE, scores=scores, **proj.arrays())

    stage = f"projections {model_name}"
    report(progress, stage, 0, 3)
    t = time.perf_counter()
    cap = emb_cfg.max_points or DEFAULT_UMAP_FIT_CAP
    fit_idx = splits.stratified_subsample(np.arange(len(manifest)), manifest.reset_index(drop=True), cap, seed)
    if emb_cfg.umap:
        u3 = umap_project(scores, 3, fit_idx, seed, emb_cfg.umap_neighbors, emb_cfg.umap_min_dist)
        report(progress, stage, 1, 3)
        u2 = umap_project(scores, 2, fit_idx, seed, emb_cfg.umap_neighbors, emb_cfg.umap_min_dist)
    else:
        u3 = np.full((len(scores), 3), np.nan, np.float32)
        u2 = np.full((len(scores), 2), np.nan, np.float32)
    timings["umap"] = time.perf_counter() - t
    report(progress, stage, 2, 3)
    p3 = _pad(scores, 3)
    cols = ["path", "relpath", "dataset", "label", "y", "split"]
    table = manifest[cols].reset_index(drop=True).assign(p_fake=p)
    for i in range(3):
        table[f"pca_{i + 1}"] = p3[:, i]
    table["pca2d_1"], table["pca2d_2"] = p3[:, 0], p3[:, 1]
    for i in range(3):
        table[f"umap_{i + 1}"] = u3[:, i]
    table["umap2d_1"], table["umap2d_2"] = u2[:, 0], u2[:, 1]
    artifacts.write_parquet(out / PROJECTIONS_FILE, table[PROJECTION_COLUMNS])

    t = time.perf_counter()
    sep = separability(scores, y, split)
    timings["separability"] = time.perf_counter() - t
    artifacts.write_json(out / SEPARABILITY_FILE, {"model": model_name, "n_components": proj.n_components,
                                                    "rows": sep})
    report(progress, stage, 3, 3)
    meta = {"model": model_name, "key": key, "n": int(len(manifest)), "dim": int(dim),
            "n_components": proj.n_components, "umap": bool(emb_cfg.umap), "umap_fit_points": int(len(fit_idx)),
            "umap_epochs": UMAP_EPOCHS, "seed": seed,
            "explained_variance_ratio": proj.explained_variance_ratio.tolist(),
            "seconds": {k: round(v, 3) for k, v in timings.items()}, "format": FORMAT_VERSION}
    artifacts.write_json(out / META_FILE, meta)
    return meta


# --------------------------------------------------------------------------- the PCA-SVM comparison row


def svm_key(emb_key: str, params: dict, n_components: int) -> str:
    return artifacts.stable_hash({"emb": emb_key, "params": params, "k": n_components, "v": FORMAT_VERSION})


def svm_is_complete(run_dir: Path, model: str, key: str) -> bool:
    folder = store.model_dir(run_dir, svm_mod.svm_model_name(model))
    if not (folder / store.DONE).exists() or not (folder / SVM_FILE).exists():
        return False
    try:
        return artifacts.read_json(folder / SVM_FILE).get("key") == key
    except (OSError, ValueError):
        return False


def train_svm(run_dir: Path, model_name: str, keras_model, manifest: pd.DataFrame, cfg, key: str) -> dict:
    """Fit the default PCA-SVM on the train rows' stored PCA scores, threshold on validation,
    evaluate on test; write ``models/<m>+pca_svm/``. Returns its metrics."""
    from pipeline.models import embedding_model

    name = svm_mod.svm_model_name(model_name)
    out = store.model_dir(run_dir, name)
    store.unmark_done(run_dir, name)
    params = svm_mod.default_params(cfg.embeddings)
    proj, scores = load_pca(run_dir, model_name)
    split = manifest["split"].to_numpy()
    y = manifest["y"].to_numpy().astype(int)
    train, val, test = split == "train", split == "val", split == "test"
    meta = artifacts.read_json(store.model_dir(run_dir, model_name) / META_FILE)
    est = svm_mod.PcaSvm(n_components=proj.n_components, random_state=cfg.seed, **params)
    est.fit_projected(proj, scores[train], y[train])
    p = svm_mod.sigmoid(est.svc_.decision_function(scores[:, :est.n_components_]))
    threshold = evaluation.choose_threshold(y[val], p[val], cfg.threshold_rule)
    preds = store.prediction_rows(manifest, np.flatnonzero(val), p[val], np.flatnonzero(test), p[test])
    spec = {"base_model": model_name, "n_components": est.n_components_, "params": params,
            "random_state": cfg.seed, "key": key, "train_rows": "manifest rows with split == 'train'",
            "svc": f"{svm_mod.SVC_FILE}: the fitted SVC (skops), on models/<base>/pca.npz scores",
            "n_support": svm_mod.n_support(est.svc_), "score": "p_fake = sigmoid(SVM decision_function)"}
    artifacts.write_json(out / SVM_FILE, spec)

    emb_model = embedding_model(keras_model)
    size = int(keras_model.inputs[0].shape[1])

    def predict_batch(b: np.ndarray) -> np.ndarray:
        return est.predict_proba(np.asarray(emb_model.predict_on_batch(b)).reshape(len(b), -1))[:, 1]

    counts = est.count_params()
    base_params = int(emb_model.count_params())
    base_dir = store.model_dir(run_dir, model_name)
    stored = [base_dir / store.KERAS_MODEL, base_dir / PCA_FILE, out / SVM_FILE]
    metrics = {
        "model": name, "base_model": model_name, "image_size": size, "kind": "pca_svm",
        "params": base_params + counts["scaler"] + counts["pca"] + counts["svm"],
        "params_detail": {"embedding_model": base_params, **counts},
        "file_size_bytes": int(sum(f.stat().st_size for f in stored)),
        "file_size_note": "model.keras (embedding) + pca.npz (projection and the scores the SVC is refitted on) "
                          "+ svm.json",
        "train_seconds": round(float(meta["seconds"].get("pca", 0.0)) + est.fit_seconds_, 3),
        "train_seconds_note": "PCA fit + SVC fit (the embedding extraction is inference of the base model)",
        "n_train": int(train.sum()), "threshold": threshold, "threshold_rule": cfg.threshold_rule,
        "svm": {**params, "n_components": est.n_components_, "n_support": svm_mod.n_support(est.svc_)},
        "latency_ms": evaluation.measure_latency(predict_batch, size),
        "scopes": evaluation.evaluate_predictions(preds[preds["split"] == "test"], threshold),
        "validation": evaluation.scope_metrics(y[val], p[val], threshold),
        "trained": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    }
    return store.write_model(run_dir, name, metrics=metrics, predictions=preds,
                             files={svm_mod.SVC_FILE: lambda path: save_estimator(est.svc_, path)})


# --------------------------------------------------------------------------- the run step


def build_for_run(run_dir: Path, cfg, manifest: pd.DataFrame, progress: ProgressFn = None,
                  log: Log = print) -> dict[str, dict]:
    """Embeddings, projections, separability and the PCA-SVM row of every complete Keras model of
    the run that ``[embeddings] models`` names (all when empty); each model is skipped when its files are complete for the same model file, data and
    settings. Returns ``{model: embeddings.json content}``."""
    from pipeline import data

    run_dir = Path(run_dir)
    manifest = manifest.reset_index(drop=True)
    emb_cfg = cfg.embeddings
    cache = artifacts.cache_dir(cfg.artifacts_dir)
    arrays: dict[int, np.ndarray] = {}
    done: dict[str, dict] = {}
    wanted = set(cfg.embedding_model_names)
    for spec in cfg.models:
        if spec.name not in wanted or not store.is_model_done(run_dir, spec.name):
            continue
        folder = store.model_dir(run_dir, spec.name)
        key = cache_key(run_dir, spec.name, manifest, emb_cfg, cfg.seed)
        params = svm_mod.default_params(emb_cfg)
        need_emb = not is_complete(run_dir, spec.name, key)
        k_expected = None if need_emb else artifacts.read_json(folder / META_FILE)["n_components"]
        need_svm = emb_cfg.svm and (need_emb or not svm_is_complete(
            run_dir, spec.name, svm_key(key, params, k_expected)))
        if not need_emb and not need_svm:
            log(f"{spec.name}: embeddings, projections and PCA-SVM up to date")
            done[spec.name] = artifacts.read_json(folder / META_FILE)
            continue
        from pipeline.models import load_model  # TensorFlow only when something must be computed

        keras_model = load_model(folder / store.KERAS_MODEL)
        if need_emb:
            if spec.image_size not in arrays:
                arrays = {spec.image_size: data.load_arrays(manifest, spec.image_size, cache, progress)}
            t = time.perf_counter()
            meta = build_model_embeddings(run_dir, spec.name, keras_model, arrays[spec.image_size], manifest,
                                          emb_cfg, cfg.seed, key, progress)
            log(f"{spec.name}: embeddings {meta['n']} x {meta['dim']}, PCA {meta['n_components']} components "
                f"({sum(meta['explained_variance_ratio']):.0%} of variance), projections in "
                f"{time.perf_counter() - t:.0f}s")
        meta = artifacts.read_json(folder / META_FILE)
        done[spec.name] = meta
        if emb_cfg.svm:
            metrics = train_svm(run_dir, spec.name, keras_model, manifest, cfg,
                                svm_key(key, params, meta["n_components"]))
            pooled = metrics["scopes"]["all"]
            auc = pooled["roc_auc"]
            log(f"{metrics['model']}: test accuracy {pooled['at_threshold']['accuracy']:.3f}, AUC "
                f"{auc if auc is None else round(auc, 3)}")
        del keras_model
    return done
