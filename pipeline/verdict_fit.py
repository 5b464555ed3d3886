"""Fitting the run's verdict policy (:class:`pipeline.verdict.VerdictPolicy`) on the validation split:
the calibrator, the false-accusation threshold and the unsure band (pooled and, for a routed verdict
model, per kind of image), the out-of-distribution scores, the training framing of faces, and the
table of what a policy does on labelled predictions. :mod:`pipeline.verdict` says how a policy judges a
face and loads it; this module makes it (``train`` calls :func:`build_for_run`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import artifacts, calibration, splits, store
from pipeline.routing import ROUTED_TO as KIND_COLUMN  # the routed model's predictions: the router's pick
from pipeline.verdict import (FAKE, FORMAT, OOD_CLIP_FILE, OOD_FILE, PERTURBATIONS, UNSURE, VerdictPolicy, copies_of,
                              load_policy, policy_key, policy_path, settings_of, verdict_model_name)


KIND_MIN_PER_CLASS = 20  # validation images of each class a kind needs for its own operating point


KIND_MIN_REALS = 20  # a data set's reals routed to a kind bind that kind's threshold when at least this many


def operating_point(p_raw: np.ndarray, y: np.ndarray, datasets: np.ndarray, *, max_false_positive_rate: float,
                    unsure_share: float, method: str, min_reals: int = 0) -> dict[str, Any]:
    """Calibrator, threshold and unsure band fitted on validation scores ``p_raw`` (n,) raw p(fake) with
    labels ``y`` (n,) 0 real / 1 fake of images from ``datasets`` (n,). The threshold keeps at most
    ``max_false_positive_rate`` of the reals called fake in every data set with at least ``min_reals``
    reals here (every data set when none has that many); the band holds ``unsure_share`` of the images.
    Raises ``ValueError`` when there is no real image."""
    y, p_raw = np.asarray(y).astype(int), np.asarray(p_raw, dtype=np.float64)
    cal = calibration.fit_calibrator(p_raw, y, method)
    p = calibration.apply_calibrator(cal, p_raw)
    real = y == 0
    groups = np.asarray(datasets).astype(str)[real]
    counted = np.isin(groups, [g for g in np.unique(groups) if (groups == g).sum() >= min_reals])
    if not counted.any():
        counted[:] = True
    threshold = calibration.max_fpr_threshold(p[real][counted], groups[counted], max_false_positive_rate)
    threshold = float(np.clip(threshold, 1e-4, 1 - 1e-4))
    z = np.abs(calibration.logit(p) - calibration.logit(threshold))
    band = float(np.quantile(z, unsure_share)) if unsure_share > 0 and len(z) else 0.0
    return {"calibrator": cal, "threshold": threshold, "band": band, "n": int(len(y)), "n_real": int(real.sum())}


def fit_policy(val: pd.DataFrame, model: str, *, max_false_positive_rate: float = 0.03,
               unsure_share: float = 0.10, method: str = "platt", stability: bool = True,
               key: str = "", per_kind: bool = True, flip_margin: float = 1.0,
               stability_copies=PERTURBATIONS) -> VerdictPolicy:
    """Fit the policy on validation predictions ``val`` (columns ``dataset``, ``y`` 0 real / 1 fake,
    ``p_fake`` raw, out-of-fold for a stacked or routed model; optional ``routed_to``, the router's kind,
    which with ``per_kind`` gives each kind with enough images its own operating point). ``flip_margin``: how
    far past the threshold, in band half-widths, a stability-check copy must land to flip the answer
    (:func:`pipeline.verdict.decide`); ``stability_copies``: which :data:`pipeline.verdict.PERTURBATIONS` the
    stability check makes (kept in that order). Raises
    ``ValueError`` when the validation split has no real image or the settings are out of range."""
    if not 0.0 <= unsure_share < 1.0:
        raise ValueError(f"unsure_share must be in [0, 1), got {unsure_share}")
    if not 1.0 <= flip_margin < 1e6:
        raise ValueError(f"flip_margin must be in [1, 1e6), got {flip_margin}")
    copies = copies_of(stability_copies)
    if not copies:
        raise ValueError("stability_copies must name at least one copy (to turn the check off: stability=False)")
    settings = dict(max_false_positive_rate=max_false_positive_rate, unsure_share=unsure_share, method=method)
    y, p_raw, datasets = val["y"].to_numpy().astype(int), val["p_fake"].to_numpy(dtype=np.float64), val["dataset"].to_numpy()
    pooled = operating_point(p_raw, y, datasets, **settings)
    policy = VerdictPolicy(model=model, calibrator=pooled["calibrator"], threshold=pooled["threshold"],
                           band=pooled["band"], max_false_positive_rate=max_false_positive_rate,
                           unsure_share=unsure_share, stability=stability, key=key, flip_margin=float(flip_margin),
                           stability_copies=copies)
    if per_kind and KIND_COLUMN in val.columns:
        kinds = val[KIND_COLUMN].astype(str).to_numpy()
        for kind in sorted(set(kinds)):
            rows = kinds == kind
            if np.bincount(y[rows], minlength=2).min() >= KIND_MIN_PER_CLASS:
                policy.by_kind[kind] = operating_point(p_raw[rows], y[rows], datasets[rows], **settings,
                                                       min_reals=KIND_MIN_REALS)
    policy.validation = policy_table(policy, val).to_dict("records")
    return policy


def fit_ood_clip(cfg, manifest: pd.DataFrame, max_train: int = 2000, progress=None) -> tuple[np.ndarray | None, float]:
    """:func:`pipeline.ood.fit` on the CLIP embeddings of (at most ``max_train``, stratified) training images,
    thresholded on the validation images; ``(None, 0.0)`` when the run has no CLIP detector. Embeddings
    come from the run's content-keyed cache (its CLIP detectors computed them)."""
    from pipeline import clip, ood
    from pipeline.detectors import clip_linear

    if not any(spec.kind == clip_linear.KIND for spec in cfg.models):
        return None, 0.0
    idx = np.flatnonzero((manifest["split"] == "train").to_numpy())
    idx = splits.stratified_subsample(idx, manifest, max_train, cfg.seed)
    val = np.flatnonzero((manifest["split"] == "val").to_numpy())
    emb = clip_linear.embed_rows(manifest, np.concatenate([idx, val]), clip.default_cache(cfg.artifacts_dir),
                                 cfg.max_image_pixels, progress, "verdict: CLIP out-of-distribution score")
    return ood.fit(emb[:len(idx)], emb[len(idx):])


def fit_ood(cfg, manifest: pd.DataFrame, max_train: int = 2000, progress=None) -> tuple[np.ndarray, float]:
    """:func:`pipeline.ood.fit` on the router features of (at most ``max_train``, stratified) training
    images, thresholded on the validation images. ``progress(stage, done, total)`` as images are decoded."""
    from pipeline import ood
    from pipeline.detectors.combined import router_inputs

    idx = np.flatnonzero((manifest["split"] == "train").to_numpy())
    idx = splits.stratified_subsample(idx, manifest, max_train, cfg.seed)
    val = np.flatnonzero((manifest["split"] == "val").to_numpy())
    feats = router_inputs(manifest.iloc[np.concatenate([idx, val])].reset_index(drop=True), cfg, progress)
    return ood.fit(feats[:len(idx)], feats[len(idx):])


FRAMING_PERCENTILE = 10  # a photo framed like 90% of a data set's training images is scored whole


def measure_face_fractions(manifest: pd.DataFrame, per_dataset: int = 30, seed: int = 0) -> dict[str, float]:
    """Per dataset, how large the training images' faces are: the 10th percentile of the share of the
    image side the face takes (MTCNN on ``per_dataset`` training images drawn with ``seed``). A photo
    whose face takes at least that share is framed as tightly as 90% of that set's training images,
    and :func:`pipeline.faces.framed_box` scores it whole."""
    from pipeline import faces, images

    out = {}
    train = manifest[manifest["split"] == "train"]
    for name, part in sorted(train.groupby("dataset")):
        sample = part.sample(min(per_dataset, len(part)), random_state=seed)
        pixels = []
        for path in sample["path"]:
            try:
                pixels.append(images.load_rgb(path))
            except images.ImageError:
                continue
        fraction = faces.face_fraction_of(pixels, percentile=FRAMING_PERCENTILE)
        if fraction is not None:
            out[str(name)] = round(fraction, 4)
    return out


def policy_table(policy: VerdictPolicy, preds: pd.DataFrame, labels: np.ndarray | None = None) -> pd.DataFrame:
    """What the three-way verdict does on labelled predictions (``dataset``, ``y``, ``p_fake`` raw),
    pooled (scope ``all``) and per dataset: ``n``, ``coverage`` (share decided), ``fpr_decided``
    (real images called fake among the decided reals), ``recall_fake_decided``, ``accuracy_decided``,
    ``n_real_called_fake``, the calibrated probabilities' ``ece``/``brier``/``log_loss``, and the ECE the
    same number of perfectly calibrated probabilities would show (``ece_floor`` mean, ``ece_floor_p95``:
    :func:`pipeline.calibration.ece_noise_floor`; an ``ece`` under ``ece_floor_p95`` is within sampling noise).
    ``labels``: the verdicts when already known (e.g. with the stability check); default the band rule.
    With a ``routed_to`` column each score is judged at its kind's operating point."""
    kinds = preds[KIND_COLUMN].astype(str).to_numpy() if KIND_COLUMN in preds.columns else None
    labels = policy.labels(preds["p_fake"].to_numpy(), kinds) if labels is None else np.asarray(labels)
    p = policy.calibrated(preds["p_fake"].to_numpy(), kinds)
    frame = pd.DataFrame({"dataset": preds["dataset"].astype(str).to_numpy(), "y": preds["y"].to_numpy().astype(int),
                          "label": labels, "p": p})
    rows = []
    for scope, part in [("all", frame), *sorted(frame.groupby("dataset"))]:
        decided = part[part["label"] != UNSURE]
        reals, fakes = decided[decided["y"] == 0], decided[decided["y"] == 1]
        called_fake = int((reals["label"] == FAKE).sum())
        rows.append({
            "scope": scope, "n": int(len(part)), "n_real": int((part["y"] == 0).sum()),
            "n_fake": int((part["y"] == 1).sum()),
            "coverage": float(len(decided) / len(part)) if len(part) else None,
            "n_real_called_fake": called_fake,
            "fpr_decided": float(called_fake / len(reals)) if len(reals) else None,
            "recall_fake_decided": float((fakes["label"] == FAKE).mean()) if len(fakes) else None,
            "accuracy_decided": float(((decided["label"] == FAKE) == (decided["y"] == 1)).mean()) if len(decided) else None,
            **calibration.calibration_metrics(part["y"], part["p"]),
            **dict(zip(("ece_floor", "ece_floor_p95"), calibration.ece_noise_floor(part["p"]))),
        })
    return pd.DataFrame(rows)


def build_for_run(cfg, run_dir: Path, *, force: bool = False, progress=None, log=print) -> VerdictPolicy | None:
    """Fit (or keep, when current) the run's verdict policy and write ``verdict.json``; None when the
    run has no finished model with validation predictions. ``progress(stage, done, total)``: the
    out-of-distribution scores' images (decoded, and CLIP-embedded where not cached)."""
    run_dir = Path(run_dir)
    model = verdict_model_name(run_dir)
    if model is None:
        log("verdict: no finished model to build the verdict on; skipped")
        return None
    settings = settings_of(cfg)
    key = policy_key(run_dir, model, settings)
    path = policy_path(run_dir, model)
    if path.is_file() and not force:
        try:
            old = artifacts.read_json(path)
            if old.get("key") == key and old.get("format") == FORMAT:
                log(f"verdict ({model}): cached")
                return load_policy(run_dir, model)
        except (OSError, ValueError, TypeError):
            pass
    preds = pd.read_parquet(store.model_dir(run_dir, model) / store.PREDICTIONS)
    val = preds[preds["split"] == "val"]
    policy = fit_policy(val, model, max_false_positive_rate=settings["max_false_positive_rate"],
                        unsure_share=settings["unsure_share"], method=settings["calibration"],
                        stability=settings["stability"], key=key, per_kind=settings["per_kind"],
                        flip_margin=settings.get("flip_margin", 1.0),
                        stability_copies=settings.get("stability_copies", PERTURBATIONS))
    manifest = pd.read_parquet(run_dir / store.MANIFEST)
    policy.face_fractions = measure_face_fractions(manifest, seed=cfg.seed)
    policy.ood, policy.ood_threshold = fit_ood(cfg, manifest, progress=progress)
    artifacts.write_npy(path.parent / OOD_FILE, policy.ood)
    policy.ood_clip, policy.ood_clip_threshold = fit_ood_clip(cfg, manifest, progress=progress)
    if policy.ood_clip is not None:
        artifacts.write_npy(path.parent / OOD_CLIP_FILE, policy.ood_clip)
    artifacts.write_json(path, policy.to_json())
    test = policy_table(policy, preds[preds["split"] == "test"]).set_index("scope")
    if "all" in test.index:
        row = test.loc["all"]
        def fmt(v) -> str:
            return "n/a" if v is None or pd.isna(v) else f"{v:.3f}"

        log(f"verdict ({model}, calibrated, threshold {policy.threshold:.3f}): test coverage {fmt(row['coverage'])}, "
            f"real photos called fake among decided {fmt(row['fpr_decided'])}, ECE {fmt(row['ece'])}")
    return policy

