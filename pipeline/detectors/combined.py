"""Kind ``combined``: the run's combined models over its detectors, written as more models of the comparison.

* ``ensemble_mean``: the mean of the members' ``p_fake``.
* ``ensemble_stacked``: a logistic regression on the members' ``logit(p_fake)``, fitted on the
  validation split (never on test). Its validation predictions (used for the threshold and stored
  in predictions.parquet) are out-of-fold (stratified 5-fold on the validation split), so the
  threshold is not chosen on predictions of the very rows the regression was fitted on. The
  coefficients are in ``stacking.json`` (JSON, no pickle).
* ``ensemble_routed`` (when the run has two or more datasets): one stacker per dataset, mixed by a
  router's estimate of which dataset's kind of image each one is (:mod:`pipeline.routing`). It lets
  specialists (models trained on one dataset) speak only where they know the kind of fake. Its
  validation predictions are out-of-fold too; router and stackers are in ``routing.json``.

Members are listed in the config's ``[verdict] members`` (part of the run id); ``train`` fits them after the
detectors (:func:`run_ensemble`). The folders follow ``artifacts/README.md`` (metrics.json, predictions.parquet,
history.csv with no rows, done.json, written by :func:`pipeline.store.write_model`) but hold no model file: a
combined model is scored from its members, each loaded as a :class:`~pipeline.detectors.Detector` of its kind. ``params``,
``file_size_bytes``, ``train_seconds`` and latencies are the sums over the members.
Members are read from their predictions.parquet (validation and test ``p_fake`` of every image).

New images (the dashboard's *Check an image*, ``python -m pipeline predict``) are scored by the
run's combined model: :func:`load_combiner` (``ensemble_routed`` when done, else
``ensemble_stacked``) and :func:`score_combined`, which computes each member's ``p_fake`` the way
the run did (each member through its own detector: Keras members at their own image size, ``+pca_svm``
members with the PCA-SVM on the base model's embedding, CLIP members through the frozen encoder) and the
router's input as :func:`router_inputs` made it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from pipeline import artifacts, evaluation, store
from pipeline.detectors import register_kind
from pipeline.stacking import Copies, apply_stacker, fit_stacker, mean_probability, out_of_fold
from pipeline.progress import report

Log = Callable[[str], None]
KIND = "combined"

MEAN, STACKED, ROUTED = "ensemble_mean", "ensemble_stacked", "ensemble_routed"
NAMES = (MEAN, STACKED, ROUTED)
SPEC_FILES = {ROUTED: "routing.json", STACKED: "stacking.json"}

def ensemble_key(run_dir: Path, members: list[str], threshold_rule: str | None, seed: int | None,
                 copies: dict | None = None) -> str:
    """Identifies one fit of the ensembles: the members and their trainings, the threshold rule, the
    seed, the router's feature format and the stackers' augmented validation copies (``copies``:
    :func:`copies_setting`; None or no copies leaves the key as it was before copies existed). An ensemble whose
    stored key differs is stale (and one whose router reads another input than the config asks for is
    refitted: :func:`run_ensemble`). ``v``: the format of what the step writes (2: ensemble_routed's
    predictions carry ``routed_to`` and ``route_confidence``), so ensembles written before a change are refitted."""
    from pipeline import routing

    fields = {"members": members, "stamps": [store.model_stamp(run_dir, m) for m in members],
              "rule": threshold_rule, "seed": seed, "router": routing.FEATURES_VERSION, "v": 2}
    if copies and copies.get("copies"):
        fields["stacker_copies"] = copies
    return artifacts.stable_hash(fields)[:12]


def copies_setting(cfg) -> dict:
    """``[verdict] stacker_copies`` and the augmentation they are drawn with, as the ensemble key records them.
    ``cfg``: a RunConfig or its JSON form (run.json's ``config``)."""
    from pipeline.config import RunConfig, augmentation_fingerprint, stacker_augmentation

    verdict = cfg.verdict.stacker_copies if isinstance(cfg, RunConfig) else (cfg.get("verdict") or {}).get("stacker_copies")
    n = int(verdict or 0)
    return {"copies": n, "augmentation": augmentation_fingerprint(stacker_augmentation(cfg)) if n else None}


COPIES_CHUNK = 32  # augmented copies scored per batch


def validation_copies(cfg, run_dir: Path, rows: pd.DataFrame, members: list[str], progress=None) -> Copies | None:
    """The members' p_fake on ``[verdict] stacker_copies`` augmented copies of each validation row of ``rows``
    (None when the config asks for none). Each copy is :func:`pipeline.degrade.augmented_copy` of the decoded
    file, drawn with :func:`pipeline.config.stacker_augmentation` from (seed, path, copy number), and scored by
    every member through its own detector, as a checked photo is (CLIP members through the run's content-keyed
    embedding cache). A photo that is shared gets cropped, blurred, downscaled and re-saved; a stacker that has
    seen such copies of its validation images learns not to lean on members whose scores drift under them
    (the verdict's stability check flips less: EXPERIMENTS.md C10). Costs one pass of every member over the
    copies (CLIP: about 0.2 s per copy once, then cached)."""
    from pipeline import clip, data
    from pipeline.config import stacker_augmentation
    from pipeline.detectors import load_many
    from pipeline.stacking import Copies

    n = int(cfg.verdict.stacker_copies)
    if not n:
        return None
    aug = stacker_augmentation(cfg)
    val = np.flatnonzero((rows["split"] == "val").to_numpy())
    paths = rows["path"].to_numpy()[val]
    detectors = load_many(run_dir, members)
    cache = clip.default_cache(cfg.artifacts_dir)
    for det in detectors.values():
        if hasattr(det, "cache") and det.cache is None:
            det.cache = cache
    p = np.zeros((n * len(val), len(members)))
    total = n * len(val)
    report(progress, "ensemble: augmented validation copies", 0, total)
    for at, batch in data.augmented_batches(paths, aug, n, cfg.seed, cfg.max_image_pixels, COPIES_CHUNK):
        for j, m in enumerate(members):
            p[at:at + len(batch), j] = detectors[m].predict_proba(batch)
        report(progress, "ensemble: augmented validation copies", at + len(batch), total)
    return Copies(p, np.tile(np.arange(len(val)), n))


def resolve_members(cfg, run_dir: Path) -> list[str]:
    """The configured members that have finished (``["all"]``: every finished model of the run)."""
    wanted = list(cfg.verdict.members)
    if [w.lower() for w in wanted] == ["all"]:
        wanted = list(cfg.model_names) + ["searched_cnn"]
    return [m for m in dict.fromkeys(wanted) if m not in NAMES and store.is_model_done(run_dir, m)
            and store.model_file(run_dir, m, store.PREDICTIONS).exists()]


def member_matrix(run_dir: Path, members: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows (validation and test images, in the first member's order) and their (n, k) p_fake."""
    base = None
    cols = []
    for m in members:
        preds = store.read_predictions(run_dir, m)
        if base is None:
            base = preds.drop(columns="p_fake").reset_index(drop=True)
        p = preds.set_index(["split", "path"])["p_fake"]
        try:
            cols.append(p.loc[list(zip(base["split"], base["path"]))].to_numpy(dtype=np.float64))
        except KeyError:
            raise ValueError(f"ensemble: {m}'s predictions do not cover the same images as {members[0]}'s; "
                             f"retrain it with `python -m pipeline train --force`") from None
    return base, np.column_stack(cols)


def _sum(metrics: list[dict], key: str):
    vals = [m.get(key) for m in metrics]
    return None if any(v is None for v in vals) else float(np.sum(vals))


def member_latency(member_metrics: list[dict]) -> dict[str, float]:
    """A combined model's latency (ms) from its members' ``latency_ms``: their sum, with the CLIP encoder, which
    every CLIP member shares (a face is encoded once for all of them), counted once (members that record its share,
    ``clip_encoder_p50``). A key some member lacks is left out."""
    per_member = [m.get("latency_ms") or {} for m in member_metrics]
    encoders = [float(lat["clip_encoder_p50"]) for lat in per_member if lat.get("clip_encoder_p50") is not None]
    shared = sum(encoders) - max(encoders) if encoders else 0.0  # per image: all but one encoding are not run
    latency = {}
    for k, images in (("batch1_p50", 1), ("batch64_p50", 64), ("per_image_batch64", 1)):
        vals = [lat.get(k) for lat in per_member]
        if all(v is not None for v in vals):
            latency[k] = round(float(np.sum(vals)) - images * shared, 3)
    return latency


def _write_model(run_dir: Path, name: str, rows: pd.DataFrame, p: np.ndarray, members: list[str],
                 member_metrics: list[dict], threshold_rule: str, key: str, extra: dict,
                 files: dict | None = None) -> dict:
    preds = rows.assign(p_fake=p.astype(np.float32))
    val, test = preds[preds["split"] == "val"], preds[preds["split"] == "test"]
    threshold = evaluation.choose_threshold(val["y"], val["p_fake"], threshold_rule)
    latency = member_latency(member_metrics)
    metrics = {
        "kind": KIND, "members": members,
        "image_size": max(int(m.get("image_size") or 0) for m in member_metrics),
        "params": int(_sum(member_metrics, "params") or 0),
        "file_size_bytes": int(_sum(member_metrics, "file_size_bytes") or 0),
        "train_seconds": _sum(member_metrics, "train_seconds"), "threshold": threshold,
        "threshold_rule": threshold_rule, "latency_ms": latency,
        "scopes": evaluation.evaluate_predictions(test, threshold),
        "validation": evaluation.scope_metrics(val["y"], val["p_fake"], threshold),
        "ensemble_key": key, "trained": store.now(), **extra,
    }
    return store.write_model(run_dir, name, metrics=metrics, predictions=preds, files=files,
                             done={"members": members})


def run_ensemble(cfg, run_dir: Path, *, force: bool = False, progress=None, log: Log = print) -> Path | None:
    """Write ``models/ensemble_mean`` and ``models/ensemble_stacked`` and their summary rows.
    Cached: skipped when the members (and their trainings) and the threshold rule are unchanged."""
    run_dir = Path(run_dir)
    members = resolve_members(cfg, run_dir)
    if len(members) < 2:
        log(f"ensemble: needs at least 2 finished members, found {members or 'none'} "
            f"(configured: {list(cfg.verdict.members) or 'none'}); skipped")
        return None
    key = ensemble_key(run_dir, members, cfg.threshold_rule, cfg.seed, copies_setting(cfg))
    manifest = store.read_manifest(run_dir)
    routed_wanted = cfg.verdict.routing and manifest["dataset"].nunique() >= 2
    outputs = (MEAN, STACKED, ROUTED) if routed_wanted else (MEAN, STACKED)
    cached = all(store.is_model_done(run_dir, n) and store.read_metrics(run_dir, n).get("ensemble_key") == key
                 for n in outputs) and (not routed_wanted or _router_of(run_dir) == _router_wanted(cfg, members))
    if cached and not force:
        log(f"ensemble of {', '.join(members)}: cached")
    else:
        report(progress, "ensemble", 0, len(outputs))
        rows, p = member_matrix(run_dir, members)
        member_metrics = [store.read_metrics(run_dir, m) for m in members]
        is_val = (rows["split"] == "val").to_numpy()
        y_val = rows.loc[is_val, "y"].to_numpy()
        mean = _write_model(run_dir, MEAN, rows, mean_probability(p), members, member_metrics, cfg.threshold_rule,
                            key, {"combination": "mean of p_fake"})
        report(progress, "ensemble", 1, 2)
        copies = validation_copies(cfg, run_dir, rows, members, progress)
        stacker = fit_stacker(p[is_val], y_val, members, cfg.seed, copies=copies)
        p_stacked = apply_stacker(stacker, p)
        p_stacked[is_val] = out_of_fold(p[is_val], y_val, members, cfg.seed, copies=copies)
        fitted_on = "validation" + (f" and {cfg.verdict.stacker_copies} augmented copies of each image" if copies else "")
        stacked = _write_model(run_dir, STACKED, rows, p_stacked, members, member_metrics, cfg.threshold_rule, key,
                               {"combination": f"logistic regression on logit(p_fake), fitted on {fitted_on}",
                                "stacking": stacker},
                               files={SPEC_FILES[STACKED]: lambda path: artifacts.write_json(path, stacker)})
        report(progress, "ensemble", 2, len(outputs))
        written = [mean, stacked]
        if routed_wanted:
            written.append(_write_routed(cfg, run_dir, manifest, rows, p, members, member_metrics, key, progress,
                                         copies))
            report(progress, "ensemble", 3, len(outputs))
        for m in written:
            auc = m["scopes"]["all"]["roc_auc"]
            log(f"{m['model']} ({', '.join(members)}): test AUC {'n/a' if auc is None else round(auc, 3)}, "
                f"accuracy {m['scopes']['all']['at_threshold']['accuracy']:.3f}")
    evaluation.add_to_summary(run_dir, [m for m in NAMES if m not in cfg.model_names])
    return store.model_dir(run_dir, STACKED)


def router_inputs(manifest: pd.DataFrame, cfg, progress=None, input: str = "pixels") -> np.ndarray:
    """The router's features of every manifest row: ``"pixels"`` (images decoded at the router's size,
    cached) or ``"clip"`` (CLIP embeddings from the run's content-keyed cache; its CLIP detectors computed them)."""
    from pipeline import data, routing

    if input == routing.CLIP:
        from pipeline import clip
        from pipeline.detectors import clip_linear

        return clip_linear.embed_rows(manifest, np.arange(len(manifest)), clip.default_cache(cfg.artifacts_dir),
                                      cfg.max_image_pixels, progress, "router: CLIP embeddings")
    x = data.load_arrays(manifest, routing.ROUTER_SIZE, artifacts.cache_dir(cfg.artifacts_dir), progress)
    return routing.router_features(x)


def _router_of(run_dir: Path) -> tuple[str, int] | None:
    """The input and augmented copies per training image of the run's fitted router (None: no readable routing.json)."""
    from pipeline import routing

    try:
        router = artifacts.read_json(store.model_file(run_dir, ROUTED, SPEC_FILES[ROUTED]))["router"]
        return routing.router_input(router), int(router.get("augmented_copies", 0))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _router_wanted(cfg, members: list[str]) -> tuple[str, int]:
    """The input and augmented copies the config asks of the router (copies only for a CLIP router)."""
    from pipeline import routing

    router_input = router_input_for(cfg, members)
    return router_input, _router_copies(cfg, members)[1] if router_input == routing.CLIP else 0


def router_input_for(cfg, members: list[str]) -> str:
    """The router's input a run gets: ``[verdict] router``, where ``"auto"`` is ``"clip"`` when a member of the
    combined model is a CLIP detector (its embedding of each face is already computed) and ``"pixels"`` else."""
    from pipeline import routing
    from pipeline.detectors import clip_linear

    if cfg.verdict.router != "auto":
        return cfg.verdict.router
    kinds = {spec.name: spec.kind for spec in cfg.models}
    return routing.CLIP if any(kinds.get(m) == clip_linear.KIND for m in members) else routing.PIXELS


def _router_copies(cfg, members: list[str]):
    """``(augmentation, copies)`` of the CLIP members' augmented training copies (the first member with
    ``params.augmented_copies``), or ``(None, 0)``: a CLIP router trains on the same copies, already cached."""
    from pipeline.config import model_augmentation
    from pipeline.detectors import clip_linear

    for spec in cfg.models:
        if spec.name in members and spec.kind == clip_linear.KIND and clip_linear.augmented_copies(spec):
            return model_augmentation(cfg, spec), clip_linear.augmented_copies(spec)
    return None, 0


def _write_routed(cfg, run_dir: Path, manifest: pd.DataFrame, rows: pd.DataFrame, p: np.ndarray,
                  members: list[str], member_metrics: list[dict], key: str, progress=None,
                  copies: Copies | None = None) -> dict:
    """Fit the router on the training split, the per-dataset stackers on validation (and ``copies``, augmented
    copies of the validation rows: :func:`validation_copies`); write the model.
    Its predictions.parquet also holds, per row, the dataset the router picked (``routed_to``) and
    the router's probability of it (``route_confidence``)."""
    from pipeline import routing

    router_input = router_input_for(cfg, members)
    features = router_inputs(manifest, cfg, progress, input=router_input)
    by_path = pd.Series(np.arange(len(manifest)), index=manifest["path"])
    is_train = (manifest["split"] == "train").to_numpy()
    x_train, kinds_train = features[is_train], manifest.loc[is_train, "dataset"].astype(str).to_numpy()
    aug, router_copies = _router_copies(cfg, members) if router_input == routing.CLIP else (None, 0)
    if router_copies:  # a re-saved or resized photo is still the same kind of image: the router learns that too
        from pipeline import clip
        from pipeline.detectors import clip_linear

        x_aug = clip_linear.embed_augmented_rows(manifest, np.flatnonzero(is_train), clip.default_cache(cfg.artifacts_dir),
                                                 cfg.max_image_pixels, aug, router_copies, cfg.seed, progress,
                                                 "router: CLIP embeddings of augmented copies")
        x_train, kinds_train = np.concatenate([x_train, x_aug]), np.tile(kinds_train, router_copies + 1)
    router = routing.fit_router(x_train, kinds_train, seed=cfg.seed, input=router_input)
    router["augmented_copies"] = router_copies
    route_p = routing.route(router, features[by_path.loc[rows["path"]].to_numpy()])
    kinds = rows["dataset"].astype(str).to_numpy()
    is_val = (rows["split"] == "val").to_numpy()
    routed = routing.fit_routed(p[is_val], rows.loc[is_val, "y"].to_numpy(), kinds[is_val], members, cfg.seed,
                                copies=copies)
    p_routed = routing.apply_routed(routed, p, route_p, router["classes"])
    p_routed[is_val] = routing.out_of_fold_routed(p[is_val], rows.loc[is_val, "y"].to_numpy(), kinds[is_val],
                                                  route_p[is_val], router["classes"], members, cfg.seed,
                                                  copies=copies)
    routed_to, confidence = routing.routed_choice(route_p, router["classes"])
    router_accuracy = float((routed_to[~is_val] == kinds[~is_val]).mean())
    spec = {"router": router, **routed, "router_test_accuracy": router_accuracy}
    rows = rows.assign(**{routing.ROUTED_TO: routed_to, routing.ROUTE_CONFIDENCE: confidence.astype(np.float32)})
    return _write_model(run_dir, ROUTED, rows, p_routed, members, member_metrics, cfg.threshold_rule, key,
                        {"combination": "per-dataset logistic regressions on logit(p_fake), fitted on validation"
                                        + (f" and {cfg.verdict.stacker_copies} augmented copies of each image"
                                           if copies else "") + ", mixed by a router's P(dataset | image)",
                         "router_test_accuracy": router_accuracy},
                        files={SPEC_FILES[ROUTED]: lambda path: artifacts.write_json(path, spec)})


# --------------------------------------------------------------------------- scoring new images


COMBINERS = (ROUTED, STACKED)  # the combined models that score new images, preferred first


@dataclass
class Combiner:
    """A run's combined model (``ensemble_routed`` or ``ensemble_stacked``) loaded to score new images: a
    :class:`~pipeline.detectors.Detector` of kind ``combined``. ``detectors`` maps each member to its loaded
    detector (any kind); ``spec`` is stacking.json or routing.json; ``threshold`` its metrics.json's, chosen on
    validation."""

    name: str
    members: list[str]
    threshold: float
    spec: dict
    detectors: dict[str, Any]
    kind: str = KIND
    image_size: int | None = None

    @property
    def routed(self) -> bool:
        return self.name == ROUTED

    @property
    def keras(self) -> dict[str, Any]:
        """The members (and PCA-SVM base models) that are Keras models: ``{name: KerasDetector}``."""
        out = {}
        for d in self.detectors.values():
            if d.kind == "keras":
                out[d.name] = d
            elif d.kind == "pca_svm":
                out[d.base.name] = d.base
        return out

    @property
    def description(self) -> str:
        if self.routed:
            return ("per-dataset logistic regressions on the members' logit(p_fake), mixed by a router's "
                    "P(dataset | image)")
        return "a logistic regression on the members' logit(p_fake)"

    def predict_proba(self, rgb_images) -> np.ndarray:
        """(n,) p(fake) of (H, W, 3) uint8 images (:func:`combined_probabilities`)."""
        return combined_probabilities(self, list(rgb_images))[0]


def combiner_name(run_dir: Path) -> str | None:
    """The combined model that scores new images: ``ensemble_routed`` when it is done, else
    ``ensemble_stacked``; None when the run has neither."""
    for name in COMBINERS:
        if store.is_model_done(run_dir, name) and store.model_file(run_dir, name, SPEC_FILES[name]).is_file():
            return name
    return None


def combiner_stamp(run_dir: Path, name: str | None = None) -> str:
    """Changes whenever the combined model or one of its members is refitted (a cache key)."""
    name = name or combiner_name(run_dir)
    if name is None:
        return ""
    members = store.read_done(run_dir, name).get("members", [])
    return artifacts.stable_hash({"name": name, "stamps": [store.model_stamp(run_dir, m) for m in [name, *members]]})[:16]


def check_combiner(run_dir: Path, name: str) -> dict:
    """The combined model ``name``'s spec (stacking.json or routing.json) when it can score images;
    ``ValueError`` with what to run when it is unfinished or stale (a member retrained after it was
    fitted, or fitted by an older version of the pipeline). Cheap: no model is loaded."""
    spec_file = store.model_file(run_dir, name, SPEC_FILES[name])
    if not store.is_model_done(run_dir, name) or not spec_file.is_file():
        raise ValueError(f"{name} of run {run_dir.name} is not finished; build it with "
                         f"`python -m pipeline train` (the config's [verdict] members)")
    metrics = store.read_metrics(run_dir, name)
    spec = artifacts.read_json(spec_file)
    members = list(spec["members"])
    run_cfg = store.read_run_json(run_dir).get("config", {})
    key = ensemble_key(run_dir, members, metrics.get("threshold_rule"), run_cfg.get("seed"), copies_setting(run_cfg))
    if metrics.get("ensemble_key") != key:
        copies = copies_setting(run_cfg)["copies"]
        fitted = int(spec.get("n_copies", (spec.get("pooled") or {}).get("n_copies", 0)) or 0)
        why = (f"it was fitted {'with' if fitted else 'without'} augmented validation copies and the run's config asks "
               f"for [verdict] stacker_copies = {copies}" if bool(fitted) != bool(copies) else
               f"one of its members ({', '.join(members)}) was retrained after it was fitted, or it was fitted by an "
               f"older version of the pipeline")
        raise ValueError(f"{name} of run {run_dir.name} is stale: {why}; refit it with "
                         f"`python -m pipeline train --force`")
    return spec


def load_combiner(run_dir: Path, name: str | None = None, keras_models: dict | None = None) -> Combiner | None:
    """Load a run's combined model for scoring new images: ``name`` (``ensemble_routed`` or
    ``ensemble_stacked``), default :func:`combiner_name`; None when the run has none.

    ``keras_models`` (``{name: Detector}``, e.g. those a page already loaded) are reused; other members are
    loaded with :func:`pipeline.detectors.load`. Raises ``ValueError`` with what to run when the combined
    model is incomplete or older than a retrained member, ``KeyError`` when a member is missing."""
    from pipeline import detectors

    run_dir = Path(run_dir)
    name = name or combiner_name(run_dir)
    if name is None:
        return None
    if name not in COMBINERS:
        raise KeyError(f"{name!r} is not a combined model; choose one of {', '.join(COMBINERS)}")
    spec = check_combiner(run_dir, name)
    members = list(spec["members"])
    metrics = store.read_metrics(run_dir, name)
    given = dict(keras_models or {})
    loaded: dict[str, Any] = {}
    for m in members:
        if m in given:
            loaded[m] = given[m]
        elif m.endswith(PCA_SVM_SUFFIX) and m[:-len(PCA_SVM_SUFFIX)] in given:
            from pipeline.detectors.pca_svm import load_with_base

            loaded[m] = load_with_base(run_dir, m, given[m[:-len(PCA_SVM_SUFFIX)]])
        else:
            loaded[m] = detectors.load(run_dir, m)
    return Combiner(name=name, members=members, threshold=float(metrics["threshold"]), spec=spec, detectors=loaded)


PCA_SVM_SUFFIX = "+pca_svm"


def load(run_dir: Path, name: str) -> Combiner:
    """The :class:`Combiner` ``name`` of a run (kind ``combined``); ``ensemble_mean`` cannot score new images."""
    combiner = load_combiner(run_dir, name) if name in COMBINERS else None
    if combiner is None:
        raise ValueError(f"{name} of run {Path(run_dir).name} scores only the run's own images (it is not a "
                         f"combined model that scores new images: {', '.join(COMBINERS)})")
    return combiner


def member_probabilities(combiner: Combiner, rgb_images: list[np.ndarray],
                         known: dict[str, np.ndarray] | None = None,
                         embeddings: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """(n, k) p_fake of each member for (H, W, 3) uint8 images, as the run computed them: each member
    through its own detector. ``known``: members' unrounded p_fake of these images already computed
    (:func:`pipeline.detectors.score_arrays`); ``embeddings``: Keras base models' embedding-layer outputs
    ``{base: (n, D)}`` of these images already computed, used by ``+pca_svm`` members (the robustness sweep
    gets both from one forward pass)."""
    known, embeddings = dict(known or {}), dict(embeddings or {})
    cols = []
    for m in combiner.members:
        det = combiner.detectors[m]
        if m in known:
            cols.append(known[m])
        elif det.kind == "pca_svm" and det.base.name in embeddings:
            cols.append(det.from_embedding(np.asarray(embeddings[det.base.name])))
        else:
            cols.append(det.predict_proba(rgb_images))
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])


def route_images(router: dict, rgb_images: list[np.ndarray], clip_cache=None) -> np.ndarray:
    """(n, kinds) router probabilities of (H, W, 3) uint8 images: the router's input is made like
    training made it (:func:`router_inputs`: ``images.load_for_model(path, ROUTER_SIZE)`` is
    ``resize_square`` of the decoded image; a CLIP router reads :func:`pipeline.clip.embed`, which
    remembers the embeddings the run's CLIP detectors just computed; ``clip_cache``: an
    :class:`pipeline.clip.EmbeddingCache` to read them from as well, e.g. the one a CLIP member uses)."""
    from pipeline import routing
    from pipeline.images import resize_square

    if routing.router_input(router) == routing.CLIP:
        from pipeline import clip

        return routing.route(router, clip.embed(list(rgb_images), cache=clip_cache))
    x = np.stack([resize_square(im, routing.ROUTER_SIZE) for im in rgb_images])
    return routing.route(router, routing.router_features(x))


def combined_probabilities(combiner: Combiner, rgb_images: list[np.ndarray],
                           known: dict[str, np.ndarray] | None = None,
                           embeddings: dict[str, np.ndarray] | None = None
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The combined model on (H, W, 3) uint8 images, unrounded: ``(p_fake (n,), members' p_fake
    (n, k), router probabilities (n, kinds) or None)``. The one combining path of uploads
    (:func:`score_combined`) and of the robustness sweep, which passes the members' outputs it
    already has as ``known`` / ``embeddings`` (:func:`member_probabilities`); the router always
    reads the images given."""
    from pipeline import routing

    if not len(rgb_images):
        return np.zeros(0), np.zeros((0, len(combiner.members))), None
    p_members = member_probabilities(combiner, rgb_images, known, embeddings)
    if not combiner.routed:
        return apply_stacker(combiner.spec, p_members), p_members, None
    router = combiner.spec["router"]
    clip_cache = next((d.cache for d in combiner.detectors.values() if getattr(d, "cache", None) is not None), None)
    route_p = route_images(router, rgb_images, clip_cache)
    return routing.apply_routed(combiner.spec, p_members, route_p, router["classes"]), p_members, route_p


def score_combined(combiner: Combiner, rgb_images: list[np.ndarray],
                   known: dict[str, np.ndarray] | None = None) -> list[dict]:
    """One record per image: ``model`` (the combined model's name), ``p_fake``, ``threshold`` (its
    metrics.json's, chosen on validation), ``verdict``, ``members`` (``{member: p_fake}``) and
    ``looks_like`` (routed: the router's ``{dataset: probability}``, the kind of image it takes
    this for; stacked: None)."""
    if not len(rgb_images):
        return []
    return combined_records(combiner, *combined_probabilities(combiner, rgb_images, known))


def combined_records(combiner: Combiner, p: np.ndarray, p_members: np.ndarray, route_p: np.ndarray | None) -> list[dict]:
    """:func:`score_combined`'s records from :func:`combined_probabilities`' output (for a caller that also
    needs the unrounded scores, so that nothing is computed twice)."""
    from pipeline.detectors import verdict

    out = []
    for i in range(len(p)):
        out.append({
            "model": combiner.name, "p_fake": round(float(p[i]), 6), "threshold": round(combiner.threshold, 6),
            "verdict": verdict(float(p[i]), combiner.threshold),
            "members": {m: round(float(p_members[i, j]), 6) for j, m in enumerate(combiner.members)},
            "looks_like": None if route_p is None else {
                str(k): round(float(route_p[i, j]), 6) for j, k in enumerate(combiner.spec["router"]["classes"])},
        })
    return out


register_kind(KIND, load=load, description="the run's combined models: mean, stacked and routed over its detectors")
