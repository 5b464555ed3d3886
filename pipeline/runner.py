"""Running the pipeline: train a run (cached per model), evaluate it on other folders, score files.

``train_run`` is what ``python -m pipeline train`` and the README's first command do. A run's id
comes from its config and data (``pipeline.artifacts``); a model whose folder holds ``done.json``
is loaded from cache instead of trained, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import platform
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline import artifacts, data, evaluation
from pipeline.config import (
    DataSource,
    ModelSpec,
    RunConfig,
    augmentation_fingerprint,
    config_fingerprint,
    model_augmentation,
    spec_fingerprint,
    to_dict,
)
from pipeline.experiments import steps
from pipeline.progress import ProgressFn

Log = Callable[[str], None]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _machine() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def prepare(cfg: RunConfig, progress: ProgressFn = None) -> tuple[str, Path, pd.DataFrame, pd.DataFrame]:
    """Scan the data and find the run's id and folder: (run_id, run_dir, manifest, skipped)."""
    manifest, skipped = data.build_manifest(cfg, progress)
    run_id = artifacts.make_run_id(cfg.name, config_fingerprint(cfg), manifest)
    return run_id, Path(cfg.artifacts_dir) / run_id, manifest, skipped


def _write_run_json(run_dir: Path, run_id: str, cfg: RunConfig, manifest, skipped, status: str, created: str) -> None:
    artifacts.write_json(run_dir / "run.json", {
        "run_id": run_id, "config_name": cfg.name, "created": created, "updated": _now(), "status": status,
        "machine": _machine(), "pipeline_version": artifacts.PIPELINE_VERSION,
        "models": cfg.model_names, "comparison_models": comparison_models(cfg),
        "config": to_dict(cfg), "data_summary": data.summarize(manifest, skipped),
    })


def comparison_models(cfg: RunConfig) -> list[str]:
    """Rows of the comparison: each Keras model, followed by its "<model>+pca_svm" when the run
    trains PCA-SVMs on embeddings (``[embeddings]`` svm). run.json's "models" stays the Keras
    models (what ``predict`` loads); "comparison_models" lists both."""
    from pipeline.svm import svm_model_name

    with_svm = set(cfg.embedding_model_names) if cfg.embeddings.svm else set()
    return [n for m in cfg.model_names for n in ([m, svm_model_name(m)] if m in with_svm else [m])]


def specialist_rows(manifest: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Boolean mask of the manifest rows ``spec`` trains on: its ``datasets`` (every row when empty).
    A specialist whose datasets have no images is an error that names the datasets there are."""
    if not spec.datasets:
        return np.ones(len(manifest), dtype=bool)
    present = set(manifest["dataset"].astype(str))
    missing = [d for d in spec.datasets if d not in present]
    if missing:
        raise ValueError(f"{spec.name}: datasets {missing} have no images in this run; its datasets are "
                         f"{', '.join(sorted(present))}")
    return manifest["dataset"].astype(str).isin(spec.datasets).to_numpy()


def training_settings(cfg: RunConfig, spec: ModelSpec) -> dict:
    """What decides one trained model besides its images and their split: the spec, the augmentation,
    the seed and the threshold rule. Two runs that agree on these and on the data train the same model."""
    return {"spec": spec_fingerprint(spec), "augmentation": augmentation_fingerprint(model_augmentation(cfg, spec)),
            "seed": cfg.seed, "threshold_rule": cfg.threshold_rule, "v": artifacts.PIPELINE_VERSION}


def find_trained_elsewhere(cfg: RunConfig, spec: ModelSpec, manifest: pd.DataFrame, run_dir: Path) -> Path | None:
    """The folder of the same model (same :func:`training_settings`, same images and split) finished
    in another run of the artifacts folder, or None. Lets a changed config (another ensemble, one more
    specialist) keep the models it shares with an earlier run instead of training them again. The
    data are compared (by manifest hash) only for runs whose settings already match. When several
    runs hold it, the most recently finished copy wins: it was trained by the newest code."""
    from pipeline.config import from_json_dict

    wanted, data_hash = training_settings(cfg, spec), None
    candidates = [run_json.parent for run_json in Path(cfg.artifacts_dir).glob("*/run.json")
                  if run_json.parent.resolve() != Path(run_dir).resolve()
                  and artifacts.is_model_done(run_json.parent, spec.name)]
    candidates.sort(key=lambda other: (artifacts.model_finished_at(other, spec.name), other.name), reverse=True)
    for other in candidates:
        run_json = other / "run.json"
        try:
            other_cfg = from_json_dict(artifacts.read_json(run_json)["config"])
            if training_settings(other_cfg, other_cfg.model(spec.name)) != wanted:
                continue
            data_hash = data_hash or artifacts.manifest_hash(manifest)
            if artifacts.manifest_hash(pd.read_parquet(other / "manifest.parquet")) == data_hash:
                return artifacts.model_dir(other, spec.name)
        except (OSError, ValueError, KeyError, TypeError):  # an unreadable or older run: not a match
            continue
    return None


def reuse_model(source: Path, run_dir: Path, name: str) -> None:
    """Copy a finished model folder into this run (to a temporary folder, then renamed: atomic)."""
    import shutil

    target = artifacts.model_dir(run_dir, name)
    tmp = target.with_name(f".{name}.reuse-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def train_one(spec: ModelSpec, cfg: RunConfig, run_dir: Path, manifest: pd.DataFrame, x: np.ndarray,
              progress: ProgressFn = None) -> dict:
    """Train, save and score one model; returns its metrics (also written to metrics.json)."""
    from pipeline import inference, training  # TensorFlow is imported only when training

    split = manifest["split"].to_numpy()
    y = manifest["y"].to_numpy()
    own = specialist_rows(manifest, spec)
    train_idx = data.stratified_subsample(np.flatnonzero((split == "train") & own), manifest, spec.max_train_images, cfg.seed)
    own_val_idx = np.flatnonzero((split == "val") & own)  # early stopping and the threshold
    val_idx, test_idx = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")  # scored: every image
    result = training.train_model(spec, x[train_idx], y[train_idx], x[own_val_idx], y[own_val_idx],
                                  augmentation=model_augmentation(cfg, spec), seed=cfg.seed, progress=progress,
                                  strategy=cfg.strategy,
                                  sample_weight=training.balancing_weights(spec, manifest, train_idx))
    out = artifacts.model_dir(run_dir, spec.name)
    (out / artifacts.DONE_FILE).unlink(missing_ok=True)
    artifacts.save_keras_model(result.model, out / "model.keras")
    artifacts.write_csv(out / "history.csv", result.history)

    p_val = inference.predict_proba(result.model, x[val_idx])
    p_test = inference.predict_proba(result.model, x[test_idx])
    threshold = evaluation.choose_threshold(y[val_idx][own[val_idx]], p_val[own[val_idx]], cfg.threshold_rule)
    cols = ["path", "relpath", "dataset", "label", "y"]
    preds = pd.concat([manifest.iloc[val_idx][cols].assign(split="val", p_fake=p_val),
                       manifest.iloc[test_idx][cols].assign(split="test", p_fake=p_test)], ignore_index=True)
    artifacts.write_parquet(out / "predictions.parquet", preds)
    metrics = {
        "model": spec.name, "image_size": spec.image_size, "spec": dataclasses.asdict(spec),
        "params": int(result.model.count_params()), "file_size_bytes": (out / "model.keras").stat().st_size,
        "train_seconds": round(result.train_seconds, 2), "n_train": int(len(train_idx)),
        "epochs_run": int(len(result.history)), "kept_phase": result.kept_phase,
        "threshold": threshold, "threshold_rule": cfg.threshold_rule,
        "latency_ms": evaluation.measure_latency(lambda b: inference.predict_batch(result.model, b), spec.image_size),
        "scopes": evaluation.evaluate_predictions(preds[preds["split"] == "test"], threshold),
        "validation": evaluation.scope_metrics(y[val_idx][own[val_idx]], p_val[own[val_idx]], threshold),
        "datasets": list(spec.datasets),  # a specialist's own datasets; empty = trained on all
        "trained": _now(),
    }
    artifacts.write_json(out / "metrics.json", metrics)
    artifacts.write_json(out / artifacts.DONE_FILE, {"finished": _now()})
    return metrics


def write_summary(run_dir: Path, model_names: list[str]) -> pd.DataFrame:
    rows = []
    for name in model_names:
        if artifacts.is_model_done(run_dir, name):
            rows += evaluation.summary_rows(artifacts.read_json(artifacts.model_dir(run_dir, name) / "metrics.json"))
    summary = pd.DataFrame(rows, columns=evaluation.SUMMARY_COLUMNS)
    artifacts.write_csv(run_dir / "summary.csv", summary)
    return summary


def train_run(cfg: RunConfig, *, force: bool = False, progress: ProgressFn = None, log: Log = print) -> Path:
    """Build the run's artifacts, training only what is not already complete. Returns the run folder."""
    run_id, run_dir, manifest, skipped = prepare(cfg, progress)
    summary = data.summarize(manifest, skipped)
    log(f"run {run_id}: {summary['n_images']} images in {len(summary['datasets'])} dataset(s) "
        f"({', '.join(summary['datasets'])}), {summary['n_skipped']} file(s) skipped")
    previous = artifacts.read_json(run_dir / "run.json") if (run_dir / "run.json").exists() else {}
    created = previous.get("created", _now())
    if not (run_dir / "manifest.parquet").exists() or force:
        artifacts.write_parquet(run_dir / "manifest.parquet", manifest)
        artifacts.write_csv(run_dir / "skipped.csv", skipped)
    _write_run_json(run_dir, run_id, cfg, manifest, skipped, "running", created)
    for spec in cfg.models:  # a specialist of a dataset the data lacks: say so before training anything
        specialist_rows(manifest, spec)
    cache = artifacts.cache_dir(cfg.artifacts_dir)
    arrays: dict[int, np.ndarray] = {}
    for spec in cfg.models:
        if artifacts.is_model_done(run_dir, spec.name) and not force:
            log(f"{spec.name}: cached (pass --force to retrain)")
            continue
        source = None if force else find_trained_elsewhere(cfg, spec, manifest, run_dir)
        if source is not None:
            reuse_model(source, run_dir, spec.name)
            log(f"{spec.name}: reused from run {source.parent.parent.name} (same spec, images, split, "
                f"augmentation and seed; --force retrains)")
            continue
        if spec.image_size not in arrays:
            arrays = {spec.image_size: data.load_arrays(manifest, spec.image_size, cache, progress)}
        metrics = train_one(spec, cfg, run_dir, manifest, arrays[spec.image_size], progress)
        pooled = metrics["scopes"]["all"]
        log(f"{spec.name}: test accuracy {pooled['at_threshold']['accuracy']:.3f}, AUC "
            f"{pooled['roc_auc'] if pooled['roc_auc'] is None else round(pooled['roc_auc'], 3)}, "
            f"trained in {metrics['train_seconds']:.0f}s")
        if spec.fine_tune_epochs and metrics["kept_phase"] == "head":
            log(f"WARNING {spec.name}: no fine-tuning epoch beat the frozen-backbone head phase on validation, so "
                f"the model keeps the head phase's weights; a lower fine_tune_learning_rate may fine-tune it")
        write_summary(run_dir, comparison_models(cfg))
    if cfg.embeddings.enabled:
        from pipeline import embeddings  # umap and scikit-learn only when this step runs

        arrays.clear()  # free the training images before the embedding step loads its own
        embeddings.build_for_run(run_dir, cfg, manifest, progress, log)
    write_summary(run_dir, comparison_models(cfg))
    steps.after_train(cfg, run_dir, progress=progress, log=log)  # [experiments]: ensemble, robustness, ...
    from pipeline import verdict  # the calibrated three-way verdict over the run's verdict model

    verdict.build_for_run(cfg, run_dir, force=force, log=log)
    _write_run_json(run_dir, run_id, cfg, manifest, skipped, "complete", created)
    return run_dir


def evaluate_folders(run_dir: Path, sources: list[DataSource], *, models: list[str] | None = None,
                     artifacts_root: str | None = None, progress: ProgressFn = None) -> tuple[Path, pd.DataFrame]:
    """Score a trained run on other labelled folders (every image, whatever its split) without
    retraining. Writes ``evaluations/<name>/`` in the run and returns (that folder, summary)."""
    from pipeline import calibration, inference, verdict
    from pipeline.config import from_json_dict
    from pipeline.experiments import ensemble
    from pipeline.models import load_model

    run_json = artifacts.read_json(run_dir / "run.json")
    run_cfg = from_json_dict(run_json["config"])
    names = models or [m for m in run_cfg.model_names if artifacts.is_model_done(run_dir, m)]
    combined = ensemble.combiner_name(run_dir)
    if not models and combined:
        names.append(combined)  # the run's verdict model is scored like any other
    eval_cfg = dataclasses.replace(run_cfg, data=tuple(sources), max_images_per_class=0,
                                   artifacts_dir=artifacts_root or str(run_dir.parent))
    files, skipped = data.build_manifest_for_scoring(eval_cfg, progress)
    tag = "+".join(sorted(files["dataset"].unique()))[:60]
    out = run_dir / "evaluations" / f"{tag}-{artifacts.manifest_hash(files)[:8]}"
    rows, all_preds, trust = [], [], []
    cache = artifacts.cache_dir(eval_cfg.artifacts_dir)
    for name in names:
        if not artifacts.is_model_done(run_dir, name):
            trained = [m for m in [*run_cfg.model_names, *ensemble.COMBINERS] if artifacts.is_model_done(run_dir, m)]
            raise ValueError(f"model {name!r} is not trained in run {run_dir.name}; trained: {', '.join(trained)}")
        trained = artifacts.read_json(artifacts.model_dir(run_dir, name) / "metrics.json")
        if name in ensemble.COMBINERS:
            from pipeline import images

            combiner = ensemble.load_combiner(run_dir, name)
            p = np.concatenate([ensemble.combined_probabilities(combiner, [images.load_rgb(path) for path in chunk])[0]
                                for chunk in np.array_split(files["path"].to_numpy(), max(1, len(files) // 64))])
        else:
            spec = run_cfg.model(name)
            model = load_model(artifacts.model_dir(run_dir, name) / "model.keras")
            x = data.load_arrays(files, spec.image_size, cache, progress)
            p = inference.predict_proba(model, x)
        preds = files[["path", "dataset", "label", "y"]].assign(model=name, p_fake=p)
        all_preds.append(preds)
        metrics = {"model": name, "threshold": trained["threshold"], "params": trained.get("params"),
                   "file_size_bytes": trained.get("file_size_bytes"), "train_seconds": trained.get("train_seconds"),
                   "latency_ms": trained.get("latency_ms", {}),
                   "scopes": evaluation.evaluate_predictions(preds, trained["threshold"])}
        artifacts.write_json(out / f"{name}.metrics.json", metrics)
        rows += evaluation.summary_rows(metrics)
        run_preds = pd.read_parquet(artifacts.model_dir(run_dir, name) / "predictions.parquet")
        trust += calibration.trust_rows(name, run_preds[run_preds["split"] == "val"], preds, trained["threshold"])
    verdict_rows = pd.DataFrame()
    try:
        policy = verdict.load_policy(run_dir)
    except verdict.PolicyError:
        policy = None
    scored = {p_["model"].iloc[0]: p_ for p_ in all_preds}
    if policy is not None and policy.model in scored:
        verdict_rows = verdict.policy_table(policy, scored[policy.model]).assign(model="verdict",
                                                                                  based_on=policy.model)
        artifacts.write_csv(out / "verdict.csv", verdict_rows)
    summary = pd.DataFrame(rows, columns=evaluation.SUMMARY_COLUMNS)
    if trust:  # calibration (Platt scaling fitted on the run's validation split) and operating points
        extra = pd.DataFrame(trust)
        extra = extra.drop(columns=[c for c in extra.columns if c in summary.columns and c not in ("model", "scope")])
        summary = summary.merge(extra, on=["model", "scope"], how="left")
    if len(verdict_rows):
        summary = pd.concat([summary, verdict_rows], ignore_index=True)
    artifacts.write_parquet(out / "predictions.parquet", pd.concat(all_preds, ignore_index=True))
    artifacts.write_csv(out / "summary.csv", summary)
    artifacts.write_csv(out / "skipped.csv", skipped)
    artifacts.write_json(out / "evaluation.json", {"run_id": run_dir.name, "created": _now(),
                                                   "data": [dataclasses.asdict(s) for s in sources],
                                                   "models": names, "n_images": int(len(files)),
                                                   "n_skipped": int(len(skipped))})
    return out, summary
