"""A schema-conforming run folder made of synthetic numbers (see ``artifacts/README.md``).

No TensorFlow: predictions are drawn from seeded distributions and every metric is computed from
them with scikit-learn, so metrics.json, summary.csv and predictions.parquet agree with each other.
Images are small real PNG files so pages that show samples can open them.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn import metrics as skm

from pipeline import artifacts, evaluation, store
from pipeline.config import DataSource, ModelSpec, RunConfig, to_dict

INCOMPLETE_MODEL = "efficientnet_b0"  # listed in the config, folder present, no done.json
PER_CLASS = {"train": 14, "val": 6, "test": 8}  # images per dataset, label and split
FINE_TUNE_PHASE = "fine_tune"


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def _image(path: Path, label: str, rng: np.random.Generator, size: int = 48) -> None:
    """A face-ish blob: warm tint for real, cold for fake, plus noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    face = ((xx - size / 2) ** 2 / (size * 0.32) ** 2 + (yy - size / 2) ** 2 / (size * 0.42) ** 2) < 1
    base = np.array([200, 160, 130] if label == "real" else [150, 160, 210], dtype=float)
    img = np.where(face[..., None], base, base * 0.35) + rng.normal(0, 18, (size, size, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)


def _at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    pred = (p >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(y, pred, labels=[0, 1]).ravel())
    return {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "precision": float(skm.precision_score(y, pred, zero_division=0)),
        "recall": float(skm.recall_score(y, pred, zero_division=0)),
        "f1": float(skm.f1_score(y, pred, zero_division=0)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)) if len(set(y)) > 1 else float(
            skm.accuracy_score(y, pred)),
        "tn": tn, "fp": fp, "fn": fn, "tp": tp,
    }


def _scope(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    both = len(set(y.tolist())) == 2
    out = {"n": int(len(y)), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
           "roc_auc": float(skm.roc_auc_score(y, p)) if both else None,
           "average_precision": float(skm.average_precision_score(y, p)) if both else None,
           "at_threshold": _at(y, p, threshold), "at_0.5": _at(y, p, 0.5)}
    if both:
        fpr, tpr, _ = skm.roc_curve(y, p)
        prec, rec, _ = skm.precision_recall_curve(y, p)
        out["roc"] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
        out["pr"] = {"precision": prec.round(5).tolist(), "recall": rec.round(5).tolist()}
    else:
        out["roc"] = {"fpr": [], "tpr": []}
        out["pr"] = {"precision": [], "recall": []}
    return out


def _youden(y: np.ndarray, p: np.ndarray) -> float:
    fpr, tpr, thr = skm.roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return float(min(max(thr[best], 0.0), 1.0))


def _history(rng: np.random.Generator, epochs: int, fine_tune: int, skill: float) -> pd.DataFrame:
    """Phases as pipeline.training writes them: ``train``, or ``head`` then ``fine_tune``."""
    rows = []
    lr = 1e-3
    for e in range(epochs + fine_tune):
        phase = ("head" if fine_tune else "train") if e < epochs else FINE_TUNE_PHASE
        if e == epochs:
            lr = 1e-4
        t = (e + 1) / (epochs + fine_tune)
        acc = 0.55 + 0.4 * t * skill + rng.normal(0, 0.01)
        val_acc = 0.52 + 0.3 * t * skill + rng.normal(0, 0.02)
        rows.append({"epoch": e + 1, "phase": phase,
                     "loss": 0.7 - 0.5 * t * skill + rng.normal(0, 0.01), "accuracy": acc,
                     "auc": min(0.999, acc + 0.03),
                     "val_loss": 0.7 - 0.3 * t * skill + rng.normal(0, 0.02), "val_accuracy": val_acc,
                     "val_auc": min(0.999, val_acc + 0.04), "learning_rate": lr})
    return pd.DataFrame(rows)


def write_synthetic_run(root: Path, *, models=("baseline_cnn", "mobilenet"), datasets=("faces140k", "lfw_faceswap"),
                        seed: int = 0, name: str = "synthetic", created: datetime | None = None,
                        kept_head: tuple[str, ...] = ()) -> Path:
    """Write one run folder under ``root`` and return its path. Images go to ``root/images``.
    ``kept_head``: fine-tuned models whose fine-tuning never beat their head phase."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    created = created or datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc) + timedelta(minutes=seed)

    all_models = list(models) + [INCOMPLETE_MODEL]
    cfg = RunConfig(
        name=name,
        data=tuple(DataSource(path=str(root / "images" / d), name=d) for d in datasets),
        models=tuple(ModelSpec(name=m, image_size=64, epochs=4,
                               fine_tune_epochs=2 if "net" in m else 0) for m in all_models),
        seed=seed, artifacts_dir=str(root),
    )
    digest = hashlib.sha256(json.dumps([to_dict(cfg)["name"], list(models), list(datasets), seed]).encode())
    run_id = f"{name}-{digest.hexdigest()[:12]}"
    run_dir = root / run_id
    run_dir.mkdir(parents=True, exist_ok=True)

    # ---- images and manifest
    rows = []
    for d in datasets:
        for label, y in (("real", 0), ("fake", 1)):
            k = 0
            for split, n in PER_CLASS.items():
                for _ in range(n):
                    relpath = f"{d}/{label}/{label}_{k:03d}.png"
                    path = root / "images" / relpath
                    _image(path, label, rng)
                    data = path.read_bytes()
                    rows.append({"dataset": d, "label": label, "y": y, "path": str(path), "relpath": relpath,
                                 "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data),
                                 "given_split": None, "split": split, "group": relpath})
                    k += 1
    manifest = pd.DataFrame(rows)
    artifacts.write_parquet(store.run_file(run_dir, store.MANIFEST), manifest)
    pd.DataFrame([
        {"path": str(root / "images" / datasets[0] / "fake" / "broken.jpg"), "dataset": datasets[0],
         "reason": "cannot decode image (truncated file)"},
        {"path": str(root / "images" / datasets[-1] / "real" / "tiny.png"), "dataset": datasets[-1],
         "reason": "image smaller than 16 px"},
    ]).pipe(lambda df: artifacts.write_csv(store.run_file(run_dir, store.SKIPPED), df[store.SKIPPED_COLUMNS]))

    # ---- models
    evals = manifest[manifest["split"].isin(["val", "test"])].reset_index(drop=True)
    summary_rows = []
    for i, m in enumerate(models):
        skill = 0.6 + 0.3 * i / max(1, len(models) - 1)
        sep = {d: 0.5 + 1.4 * skill * (1.0 - 0.45 * j) for j, d in enumerate(datasets)}
        logits = np.array([sep[d] * (2 * y - 1) for d, y in zip(evals["dataset"], evals["y"])])
        p = 1 / (1 + np.exp(-(logits + rng.normal(0, 1.6, len(evals)))))
        preds = evals[["path", "relpath", "dataset", "label", "y", "split"]].copy()
        preds["p_fake"] = p.astype("float32")

        val = preds[preds["split"] == "val"]
        threshold = _youden(val["y"].to_numpy(), val["p_fake"].to_numpy())
        test = preds[preds["split"] == "test"]
        scopes = {"all": _scope(test["y"].to_numpy(), test["p_fake"].to_numpy(), threshold)}
        for d in datasets:
            t = test[test["dataset"] == d]
            scopes[d] = _scope(t["y"].to_numpy(), t["p_fake"].to_numpy(), threshold)
        spec = cfg.model(m)
        hist = _history(rng, spec.epochs, spec.fine_tune_epochs, skill)
        params = int(20_000 * (i + 1) ** 3)
        size = params * 4 + 50_000
        lat1 = float(2.0 + 3.0 * i + rng.random())
        lat64 = float(30.0 + 40.0 * i + rng.random())
        metrics = {"model": m, "image_size": spec.image_size, "params": params, "file_size_bytes": size,
                   "train_seconds": float(10 + 25 * i + rng.random()), "threshold": threshold,
                   "threshold_rule": "youden",
                   "latency_ms": {"batch1_p50": lat1, "batch64_p50": lat64, "per_image_batch64": lat64 / 64},
                   "scopes": scopes, "kept_phase": "head" if m in kept_head else str(hist["phase"].iloc[-1])}
        store.write_model(run_dir, m, metrics=metrics, predictions=preds, history=hist,
                          files={store.KERAS_MODEL: lambda path: artifacts.write_bytes(
                              path, b"synthetic placeholder, not a Keras model")},
                          done={"model": m, "finished": created.isoformat()})
        summary_rows += evaluation.summary_rows(metrics)  # the pipeline's own writer of summary.csv rows

    # An unfinished model: started (history written) but killed before done.json.
    artifacts.write_csv(store.model_file(run_dir, INCOMPLETE_MODEL, store.HISTORY), _history(rng, 2, 0, 0.5))

    artifacts.write_csv(store.run_file(run_dir, store.SUMMARY), pd.DataFrame(summary_rows, columns=store.SUMMARY_COLUMNS))
    counts = manifest.groupby(["dataset", "split", "label"]).size().rename("n").reset_index()
    # The keys pipeline.runner writes; "running": the last model never finished.
    _write_json(store.run_file(run_dir, store.RUN_JSON), {
        "run_id": run_id, "config_name": name, "created": created.isoformat(timespec="seconds"),
        "updated": created.isoformat(timespec="seconds"), "status": "running", "pipeline_version": 2,
        "format": store.FORMAT,
        "models": all_models, "config": to_dict(cfg),
        "data_summary": {"n_images": int(len(manifest)), "datasets": sorted(datasets),
                         "counts": counts.to_dict(orient="records"),
                         "fake_fraction": {d: 0.5 for d in datasets}, "n_skipped": 2,
                         "skipped_by_reason": {"cannot decode image": 1, "image smaller than 16 px": 1}},
    })
    return run_dir


ROUTED = "ensemble_routed"
MISROUTE_EVERY = 5  # every 5th test image of each dataset is sent to the next dataset's stacker


def write_routed_ensemble(run_dir: Path, *, with_routing: bool = True, seed: int = 0) -> pd.DataFrame:
    """Add a finished ``ensemble_routed`` to a synthetic run and return its predictions.
    ``with_routing``: its predictions carry ``routed_to`` and ``route_confidence`` (False: a run
    written before they existed). Every :data:`MISROUTE_EVERY`-th test image of a dataset (and no
    validation image) is routed to the next dataset, with confidence 0.6; the others with 0.9."""
    run_dir = Path(run_dir)
    rng = np.random.default_rng(seed)
    manifest = store.read_manifest(run_dir)
    preds = manifest[manifest["split"].isin(["val", "test"])][
        ["path", "relpath", "dataset", "label", "y", "split"]].reset_index(drop=True)
    preds["p_fake"] = (1 / (1 + np.exp(-(2.0 * (2 * preds["y"] - 1) + rng.normal(0, 1.5, len(preds)))))).astype(
        "float32")
    if with_routing:
        datasets = sorted(preds["dataset"].unique())
        nxt = {d: datasets[(i + 1) % len(datasets)] for i, d in enumerate(datasets)}
        k = preds.groupby(["split", "dataset"]).cumcount()
        wrong = (preds["split"] == "test") & (k % MISROUTE_EVERY == 0)
        preds["routed_to"] = np.where(wrong, preds["dataset"].map(nxt), preds["dataset"])
        preds["route_confidence"] = np.where(wrong, 0.6, 0.9).astype("float32")
    val, test = preds[preds["split"] == "val"], preds[preds["split"] == "test"]
    threshold = _youden(val["y"].to_numpy(), val["p_fake"].to_numpy())
    scopes = {"all": _scope(test["y"].to_numpy(), test["p_fake"].to_numpy(), threshold)}
    for d, t in test.groupby("dataset"):
        scopes[str(d)] = _scope(t["y"].to_numpy(), t["p_fake"].to_numpy(), threshold)
    accuracy = float((test["routed_to"] == test["dataset"]).mean()) if with_routing else 0.8
    store.write_model(run_dir, ROUTED, predictions=preds,
                      metrics={"kind": "combined", "image_size": 64, "params": 0, "file_size_bytes": 0,
                               "train_seconds": 1.0, "threshold": threshold, "threshold_rule": "youden",
                               "latency_ms": {}, "scopes": scopes, "router_test_accuracy": accuracy},
                      files={"routing.json": lambda path: artifacts.write_json(
                          path, {"router_test_accuracy": accuracy})},
                      done={"finished": "2025-01-01T12:00:00+00:00"})
    return preds


def write_verdict_policy(run_dir: Path):
    """The run's three-way verdict policy fitted on its verdict model's stored validation predictions,
    written as ``train`` writes it (without the framing measurement, which needs MTCNN)."""
    from pipeline import artifacts, verdict, verdict_fit
    from pipeline.config_load import from_json_dict

    model = verdict.verdict_model_name(run_dir)
    preds = store.read_predictions(run_dir, model)
    cfg = from_json_dict(store.read_run_json(run_dir)["config"])
    policy = verdict_fit.fit_policy(preds[preds["split"] == "val"], model,
                                key=verdict.policy_key(run_dir, model, verdict.settings_of(cfg)))
    artifacts.write_json(verdict.policy_path(run_dir, model), policy.to_json())
    return policy
