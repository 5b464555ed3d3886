"""Running the pipeline: train a run (cached per model), evaluate it on other folders, score files.

``train_run`` is what ``python -m pipeline train`` and the README's first command do. A run's id
comes from its config and data (``pipeline.artifacts``); a model whose folder holds ``done.json``
is loaded from cache instead of trained, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import platform
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline import artifacts, data, evaluation, splits, store
from pipeline.config import (
    CLIP_EMBEDDINGS_VERSION,
    DataSource,
    ModelSpec,
    RunConfig,
    augmentation_fingerprint,
    config_fingerprint,
    model_augmentation,
    recorded_clip_embeddings,
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
    """Scan the data and find the run's id and folder: (run_id, run_dir, manifest, skipped). The id is
    that of :func:`config_for_data` (the config without specialists of data sets the data lacks)."""
    manifest, skipped = data.build_manifest(cfg, progress)
    cfg, _ = config_for_data(cfg, manifest)
    run_id = artifacts.make_run_id(cfg.name, config_fingerprint(cfg), manifest)
    return run_id, Path(cfg.artifacts_dir) / run_id, manifest, skipped


def config_for_data(cfg: RunConfig, manifest: pd.DataFrame) -> tuple[RunConfig, list[str]]:
    """``cfg`` without the specialists none of whose ``datasets`` is in ``manifest`` (``default``'s
    specialists of the shared sets, trained with ``--data`` on your own folder), also taken out of the
    verdict's members and of ``[embeddings] models``; and the names dropped. A specialist with some of its
    data sets present stays (and :func:`pipeline.splits.specialist_rows` names the missing ones)."""
    present = set(manifest["dataset"].astype(str))
    dropped = [m.name for m in cfg.models if m.datasets and not present.intersection(m.datasets)]
    if not dropped:
        return cfg, []
    keep = lambda names: tuple(n for n in names if n not in dropped)  # noqa: E731
    return dataclasses.replace(
        cfg, models=tuple(m for m in cfg.models if m.name not in dropped),
        verdict=dataclasses.replace(cfg.verdict, members=keep(cfg.verdict.members)),
        embeddings=dataclasses.replace(cfg.embeddings, models=keep(cfg.embeddings.models))), dropped


def _write_run_json(run_dir: Path, run_id: str, cfg: RunConfig, manifest, skipped, status: str, created: str) -> None:
    artifacts.write_json(store.run_file(run_dir, store.RUN_JSON), {
        "run_id": run_id, "config_name": cfg.name, "created": created, "updated": _now(), "status": status,
        "pid": os.getpid(), "host": platform.node(),  # a "running" run whose process is gone crashed (runs.RunInfo.state)
        "machine": _machine(), "pipeline_version": artifacts.PIPELINE_VERSION, "format": store.FORMAT,
        "clip_embeddings": CLIP_EMBEDDINGS_VERSION,  # runs without it embedded with version 1 (find_trained_elsewhere)
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


def training_settings(cfg: RunConfig, spec: ModelSpec) -> dict:
    """What decides one trained model besides its images and their split: the spec, the augmentation,
    the seed and the threshold rule. Two runs that agree on these and on the data train the same model."""
    return {"spec": spec_fingerprint(spec), "augmentation": augmentation_fingerprint(model_augmentation(cfg, spec)),
            "seed": cfg.seed, "threshold_rule": cfg.threshold_rule, "v": TRAINING_VERSION}


TRAINING_VERSION = 1  # bump when the same settings would train a different model: earlier models are not reused


def find_trained_elsewhere(cfg: RunConfig, spec: ModelSpec, manifest: pd.DataFrame, run_dir: Path) -> Path | None:
    """The folder of the same model (same :func:`training_settings`, same images and split) finished
    in another run of the artifacts folder, or None. Lets a changed config (another ensemble, one more
    specialist) keep the models it shares with an earlier run instead of training them again. The
    data are compared (by manifest hash) only for runs whose settings already match. When several
    runs hold it, the most recently finished copy wins: it was trained by the newest code; among copies
    of one training (a reused folder keeps its done.json), the one with the most files, i.e. with the
    derived results (embeddings, probes) already computed, so that they are copied too."""
    from pipeline.config_load import from_json_dict
    from pipeline.detectors import clip_linear

    wanted, data_hash = training_settings(cfg, spec), None
    candidates = [run_json.parent for run_json in Path(cfg.artifacts_dir).glob(f"*/{store.RUN_JSON}")
                  if run_json.parent.resolve() != Path(run_dir).resolve()
                  and store.is_model_done(run_json.parent, spec.name)]
    candidates.sort(key=lambda other: (store.model_finished_at(other, spec.name),
                                       sum(1 for _ in store.model_dir(other, spec.name).iterdir()), other.name),
                    reverse=True)
    for other in candidates:
        try:
            other_json = store.read_run_json(other)
            other_cfg = from_json_dict(other_json["config"])
            if training_settings(other_cfg, other_cfg.model(spec.name)) != wanted:
                continue
            if spec.kind == clip_linear.KIND and recorded_clip_embeddings(other_json) != CLIP_EMBEDDINGS_VERSION:
                continue  # fitted on another version of the CLIP embeddings (pipeline.config.CLIP_EMBEDDINGS_VERSION)
            data_hash = data_hash or artifacts.manifest_hash(manifest)
            if artifacts.manifest_hash(store.read_manifest(other)) == data_hash:
                return store.model_dir(other, spec.name)
        except (OSError, ValueError, KeyError, TypeError):  # an unreadable or older run: not a match
            continue
    return None


def reuse_model(source: Path, run_dir: Path, name: str) -> None:
    """Copy a finished model folder into this run (to a temporary folder, then renamed: atomic)."""
    import shutil

    target = store.model_dir(run_dir, name)
    tmp = target.with_name(f".{name}.reuse-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def write_summary(run_dir: Path, model_names: list[str]) -> pd.DataFrame:
    """summary.csv with the rows of ``model_names`` (finished ones), in that order."""
    return evaluation.write_summary(run_dir, model_names)


def _images_at(manifest: pd.DataFrame, cache: Path, progress: ProgressFn):
    """``images_at(size)`` for :class:`pipeline.detectors.TrainContext`: every manifest row decoded and resized
    to ``size`` px, loaded once per size (only the latest size is kept in memory)."""
    arrays: dict[int, np.ndarray] = {}

    def images_at(size: int) -> np.ndarray:
        if size not in arrays:
            arrays.clear()
            arrays[size] = data.load_arrays(manifest, size, cache, progress)
        return arrays[size]

    images_at.clear = arrays.clear  # type: ignore[attr-defined]
    return images_at


def train_run(cfg: RunConfig, *, force: bool = False, progress: ProgressFn = None, log: Log = print) -> Path:
    """Build the run's artifacts, training only what is not already complete. Returns the run folder."""
    config_models = cfg.models
    run_id, run_dir, manifest, skipped = prepare(cfg, progress)
    summary = data.summarize(manifest, skipped)
    log(f"run {run_id}: {summary['n_images']} images in {len(summary['datasets'])} dataset(s) "
        f"({', '.join(summary['datasets'])}), {summary['n_skipped']} file(s) skipped")
    cfg, dropped = config_for_data(cfg, manifest)
    for name in dropped:
        log(f"{name}: skipped, a specialist of {', '.join(next(m.datasets for m in config_models if m.name == name))} "
            f"(not in this data)")
    from pipeline import detectors

    previous = store.read_run_json(run_dir) if store.is_run(run_dir) else {}
    created = previous.get("created", _now())
    if not store.run_file(run_dir, store.MANIFEST).exists() or force:
        artifacts.write_parquet(store.run_file(run_dir, store.MANIFEST), manifest)
        artifacts.write_csv(store.run_file(run_dir, store.SKIPPED), skipped)
    _write_run_json(run_dir, run_id, cfg, manifest, skipped, "running", created)
    for spec in cfg.models:  # a specialist of a dataset the data lacks: say so before training anything
        splits.specialist_rows(manifest, spec)
    images_at = _images_at(manifest, artifacts.cache_dir(cfg.artifacts_dir), progress)
    for spec in cfg.models:
        if store.is_model_done(run_dir, spec.name) and not force:
            log(f"{spec.name}: cached (pass --force to retrain)")
            continue
        source = None if force else find_trained_elsewhere(cfg, spec, manifest, run_dir)
        if source is not None:
            reuse_model(source, run_dir, spec.name)
            log(f"{spec.name}: reused from run {source.parent.parent.name} (same spec, images, split, "
                f"augmentation and seed; --force retrains)")
            continue
        ctx = detectors.TrainContext(spec=spec, cfg=cfg, run_dir=run_dir, manifest=manifest, images_at=images_at,
                                     progress=progress, log=log)
        metrics = detectors.kind(spec.kind).train(ctx)
        pooled = metrics["scopes"]["all"]
        log(f"{spec.name}: test accuracy {pooled['at_threshold']['accuracy']:.3f}, AUC "
            f"{pooled['roc_auc'] if pooled['roc_auc'] is None else round(pooled['roc_auc'], 3)}, "
            f"trained in {metrics['train_seconds']:.0f}s")
        if spec.fine_tune_epochs and metrics.get("kept_phase") == "head":
            log(f"WARNING {spec.name}: no fine-tuning epoch beat the frozen-backbone head phase on validation, so "
                f"the model keeps the head phase's weights; a lower fine_tune_learning_rate may fine-tune it")
        write_summary(run_dir, comparison_models(cfg))
    if cfg.embeddings.enabled:
        from pipeline import embeddings  # umap and scikit-learn only when this step runs

        images_at.clear()  # free the training images before the embedding step loads its own
        embeddings.build_for_run(run_dir, cfg, manifest, progress, log)
    write_summary(run_dir, comparison_models(cfg))
    if cfg.verdict.members:  # the combined models over the run's detectors (the verdict model)
        from pipeline.detectors import combined

        combined.run_ensemble(cfg, run_dir, force=force, progress=progress, log=log)
    from pipeline import verdict_fit  # the calibrated three-way verdict over the run's verdict model

    # before the experiments, which never read it: the Check page gets its verdict minutes earlier on a cold run,
    # and a changed [verdict] setting (run.json is rewritten above) is refitted before anything slow runs
    verdict_fit.build_for_run(cfg, run_dir, force=force, progress=progress, log=log)
    steps.after_train(cfg, run_dir, progress=progress, log=log)  # [experiments]: robustness, cross-dataset
    _write_run_json(run_dir, run_id, cfg, manifest, skipped, "complete", created)
    return run_dir


def score_files(run_dir: Path, names: list[str], paths, cfg: RunConfig, progress: ProgressFn = None,
                chunk: int = 64) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``({name: (n,) p(fake)}, {name: (n,) str})`` of image files by the run's detectors ``names``: each
    detector's scores through its own :meth:`~pipeline.detectors.Detector.predict_proba` (the pixels it was
    trained on) and, for each routed combined model, the kind its router picked per file (the ``routed_to`` of a
    run's predictions, whose operating point the verdict judges it at). Each chunk of files is decoded once for
    all detectors; a combined model reuses its members' scores of the chunk."""
    from pipeline import clip, detectors, images, routing
    from pipeline.detectors import combined
    from pipeline.progress import report

    loaded: dict = {}
    for name in names:
        if detectors.kind_of_folder(run_dir, name) != combined.KIND:
            loaded[name] = detectors.load(run_dir, name)
            if loaded[name].kind == "clip_linear":  # embeddings of these files are kept for the next evaluation
                loaded[name].cache = clip.default_cache(cfg.artifacts_dir)
    for name in names:
        if name not in loaded:
            loaded[name] = combined.load_combiner(run_dir, name, keras_models=loaded) \
                if name in combined.COMBINERS else detectors.load(run_dir, name)
    out: dict[str, list[np.ndarray]] = {name: [] for name in names}
    routed = {name: [] for name in names if isinstance(loaded[name], combined.Combiner) and loaded[name].routed}
    paths = list(paths)
    for start in range(0, len(paths), chunk):
        rgb = [images.load_rgb(p, max_pixels=cfg.max_image_pixels) for p in paths[start:start + chunk]]
        known: dict[str, np.ndarray] = {}
        for name in names:
            det = loaded[name]
            if isinstance(det, combined.Combiner):  # reuses its members' scores of this chunk
                known[name], _, route_p = combined.combined_probabilities(det, rgb, known)
                if name in routed:
                    routed[name].append(routing.routed_choice(route_p, det.spec["router"]["classes"])[0])
            else:
                known[name] = np.asarray(det.predict_proba(rgb), dtype=np.float64)
            out[name].append(known[name])
        report(progress, "scoring", min(start + chunk, len(paths)), len(paths))
    return ({name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in out.items()},
            {name: np.concatenate(parts) if parts else np.zeros(0, dtype=str) for name, parts in routed.items()})


def evaluate_folders(run_dir: Path, sources: list[DataSource], *, models: list[str] | None = None,
                     artifacts_root: str | None = None, progress: ProgressFn = None) -> tuple[Path, pd.DataFrame]:
    """Score a trained run on other labelled folders (every image, whatever its split) without
    retraining. Writes ``evaluations/<name>/`` in the run and returns (that folder, summary)."""
    from pipeline import calibration, routing, verdict, verdict_fit
    from pipeline.config_load import from_json_dict
    from pipeline.detectors import combined

    run_json = store.read_run_json(run_dir)
    run_cfg = from_json_dict(run_json["config"])
    names = models or [m for m in run_cfg.model_names if store.is_model_done(run_dir, m)]
    verdict_model = combined.combiner_name(run_dir)
    if not models and verdict_model:
        names.append(verdict_model)  # the run's verdict model is scored like any other
    for name in names:
        if not store.is_model_done(run_dir, name):
            raise ValueError(f"model {name!r} is not trained in run {run_dir.name}; trained: "
                             f"{', '.join(store.done_models(run_dir))}")
    eval_cfg = dataclasses.replace(run_cfg, data=tuple(sources), max_images_per_class=0,
                                   artifacts_dir=artifacts_root or str(run_dir.parent))
    files, skipped = data.build_manifest_for_scoring(eval_cfg, progress)
    tag = "+".join(sorted(files["dataset"].unique()))[:60]
    out = store.run_file(run_dir, store.EVALUATIONS_DIR) / f"{tag}-{artifacts.manifest_hash(files)[:8]}"
    scores, routed = score_files(run_dir, names, files["path"].to_numpy(), eval_cfg, progress)
    rows, all_preds, trust = [], [], []
    for name in names:
        trained = store.read_metrics(run_dir, name)
        p = scores[name]
        preds = files[["path", "dataset", "label", "y"]].assign(model=name, p_fake=p)
        if name in routed:  # the verdict judges each file at its router kind's operating point, as Check does
            preds[routing.ROUTED_TO] = routed[name]
        all_preds.append(preds)
        metrics = {"model": name, "threshold": trained["threshold"], "params": trained.get("params"),
                   "file_size_bytes": trained.get("file_size_bytes"), "train_seconds": trained.get("train_seconds"),
                   "latency_ms": trained.get("latency_ms", {}),
                   "scopes": evaluation.evaluate_predictions(preds, trained["threshold"])}
        artifacts.write_json(out / f"{name}.metrics.json", metrics)
        rows += evaluation.summary_rows(metrics)
        run_preds = store.read_predictions(run_dir, name)
        trust += calibration.trust_rows(name, run_preds[run_preds["split"] == "val"], preds, trained["threshold"])
    verdict_rows = pd.DataFrame()
    try:
        policy = verdict.load_policy(run_dir)
    except verdict.PolicyError:
        policy = None
    scored = {p_["model"].iloc[0]: p_ for p_ in all_preds}
    if policy is not None and policy.model in scored:
        verdict_rows = verdict_fit.policy_table(policy, scored[policy.model]).assign(model="verdict",
                                                                                  based_on=policy.model)
        artifacts.write_csv(out / "verdict.csv", verdict_rows)
    summary = pd.DataFrame(rows, columns=evaluation.SUMMARY_COLUMNS)
    if trust:  # calibration (Platt scaling fitted on the run's validation split) and operating points
        extra = pd.DataFrame(trust)
        extra = extra.drop(columns=[c for c in extra.columns if c in summary.columns and c not in ("model", "scope")])
        summary = summary.merge(extra, on=["model", "scope"], how="left")
    if len(verdict_rows):
        summary = pd.concat([summary, verdict_rows], ignore_index=True)
    artifacts.write_parquet(out / store.PREDICTIONS, pd.concat(all_preds, ignore_index=True))
    artifacts.write_csv(out / store.SUMMARY, summary)
    artifacts.write_csv(out / store.SKIPPED, skipped)
    artifacts.write_json(out / "evaluation.json", {"run_id": run_dir.name, "created": _now(),
                                                   "data": [dataclasses.asdict(s) for s in sources],
                                                   "models": names, "n_images": int(len(files)),
                                                   "n_skipped": int(len(skipped))})
    return out, summary
