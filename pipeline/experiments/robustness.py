"""Robustness: every trained model on the test split under image perturbations.

Each perturbation is applied to the ORIGINAL decoded image (``pipeline.images.load_rgb``), before
it is resized to the model's input size (``pipeline.images.resize_square``), as a re-shared or
re-compressed photo would reach the detector:

* ``jpeg``: re-encode as JPEG at quality q (Pillow, 4:2:0 subsampling as Pillow's default);
* ``scale``: downscale by a factor (bilinear, antialiased), then upscale back to the original size;
* ``blur``: Gaussian blur of standard deviation sigma (pixels of the original image);
* ``noise``: additive Gaussian noise of standard deviation sigma on the 0..255 scale, clipped
  (seeded per image, so the sweep is deterministic);
* ``normalise``: the shortcut check. Every image is resized to one size (``normalise_size``,
  antialiased) and re-encoded at one JPEG quality q. A detector that keys on file format, JPEG
  quantisation tables or resolution instead of the face changes its verdicts here (in
  ``lfw_faceswap`` the reals are JPEG quality ~90 and the fakes ~95, a ready-made shortcut).

Level ``none`` (perturbation ``none``, level 0) is the clean image through the same path.
Result: ``experiments/robustness/<key>/robustness.csv`` with one row per (model, perturbation,
level, dataset) (``all`` = pooled): n, roc_auc, accuracy and balanced accuracy at the model's
validation-chosen threshold, ``auc_drop`` = clean AUC - AUC, ``flip_rate`` = share of images
whose verdict (at that threshold) differs from the clean image's, and ``mean_abs_change`` = mean
absolute change of P(fake). Per-model partial results are
kept (``models/<model>.csv``) so a new or retrained model only recomputes itself.

The run's combined model (its verdict on uploads: ``ensemble_routed``, else ``ensemble_stacked``;
:func:`pipeline.detectors.combined.combiner_name`) is swept too, listed first, at its own
threshold, when it is finished and not stale. It is scored the way uploads are
(:func:`pipeline.detectors.combined.combined_probabilities`) from the perturbed image, without a
second forward pass of any Keras model: its members' p_fake and, for ``+pca_svm`` members, the
base model's embedding come from the sweep's own pass, and its router reads the perturbed image.
Its partial result is recomputed when it or one of its members is refitted
(:func:`~pipeline.detectors.combined.combiner_stamp`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import artifacts, degrade, evaluation, images
from pipeline.experiments import Log, experiment_dir, is_done, mark_done, subsample
from pipeline import store
from pipeline.store import model_stamp
from pipeline.progress import report

COLUMNS = ["model", "perturbation", "level", "dataset", "n", "roc_auc", "accuracy", "balanced_accuracy", "auc_drop",
           "flip_rate", "mean_abs_change"]
PERTURBATIONS = ("none", "jpeg", "scale", "blur", "noise", "normalise")
LEVEL_LABELS = {"none": "clean", "jpeg": "JPEG quality", "scale": "scale factor (down then up)",
                "blur": "Gaussian blur sigma (px)", "noise": "Gaussian noise sigma (0..255)",
                "normalise": "one size, JPEG quality"}
NORMALISE_SIZE = 256
CHUNK = 64


# --------------------------------------------------------------------------- perturbations


def normalise(rgb: np.ndarray, quality: int, size: int = NORMALISE_SIZE) -> np.ndarray:
    """Resize to ``size`` x ``size`` (antialiased bicubic) and re-encode as JPEG at ``quality``."""
    return degrade.jpeg(images.resize_square(rgb, int(size)), quality)


def perturb(rgb: np.ndarray, perturbation: str, level: float, rng: np.random.Generator | None = None,
            normalise_size: int = NORMALISE_SIZE) -> np.ndarray:
    if perturbation == "none":
        return rgb
    if perturbation == "jpeg":
        return degrade.jpeg(rgb, int(level))
    if perturbation == "scale":
        return degrade.rescale(rgb, float(level))
    if perturbation == "blur":
        return degrade.blur(rgb, float(level))
    if perturbation == "noise":
        return degrade.noise(rgb, float(level), rng if rng is not None else np.random.default_rng(0))
    if perturbation == "normalise":
        return normalise(rgb, int(level), normalise_size)
    raise ValueError(f"unknown perturbation {perturbation!r}; choose one of {', '.join(PERTURBATIONS)}")


def sweep_levels(exp) -> list[tuple[str, float]]:
    """(perturbation, level) pairs of the config, the clean image first."""
    return ([("none", 0.0)] + [("jpeg", float(q)) for q in exp.jpeg_qualities] +
            [("scale", float(f)) for f in exp.scales] + [("blur", float(s)) for s in exp.blur_sigmas] +
            [("noise", float(s)) for s in exp.noise_sigmas] +
            [("normalise", float(q)) for q in exp.normalise_qualities])


# --------------------------------------------------------------------------- the sweep


def _models(cfg, run_dir: Path) -> list[str]:
    names = list(cfg.model_names) + ["searched_cnn"]
    return [m for m in dict.fromkeys(names)
            if store.is_model_done(run_dir, m) and store.model_file(run_dir, m, store.KERAS_MODEL).exists()]


def settings(cfg, manifest: pd.DataFrame) -> dict:
    exp = cfg.experiments
    return {"levels": sweep_levels(exp), "max_images": exp.robustness_max_images, "seed": cfg.seed,
            "normalise_size": exp.normalise_size, "v": 2,
            "test": artifacts.stable_hash(manifest.loc[manifest["split"] == "test", "sha256"].tolist())[:16]}


def score_rows(model: str, frame: pd.DataFrame, threshold: float) -> list[dict]:
    """Metrics rows of one model from a frame with columns perturbation, level, dataset, path, y, p_fake
    (the clean level, perturbation ``none``, included)."""
    clean_p = frame[frame["perturbation"] == "none"].drop_duplicates("path").set_index("path")["p_fake"]
    frame = frame.assign(clean_p=frame["path"].map(clean_p))
    rows = []
    for (pert, level), part in frame.groupby(["perturbation", "level"], sort=False):
        for scope, sub in [("all", part)] + list(part.groupby("dataset", sort=True)):
            m = evaluation.scope_metrics(sub["y"], sub["p_fake"], threshold)
            flipped = (sub["p_fake"] >= threshold) != (sub["clean_p"] >= threshold)
            rows.append({"model": model, "perturbation": pert, "level": level, "dataset": str(scope), "n": m["n"],
                         "roc_auc": m["roc_auc"], "accuracy": m["at_threshold"]["accuracy"],
                         "balanced_accuracy": m["at_threshold"]["balanced_accuracy"],
                         "flip_rate": float(flipped.mean()) if len(sub) else None,
                         "mean_abs_change": float((sub["p_fake"] - sub["clean_p"]).abs().mean()) if len(sub) else None})
    df = pd.DataFrame(rows)
    clean = df[df["perturbation"] == "none"].set_index("dataset")["roc_auc"]
    df["auc_drop"] = [None if pd.isna(clean.get(d)) or pd.isna(a) else clean.get(d) - a
                      for d, a in zip(df["dataset"], df["roc_auc"])]
    return df.to_dict(orient="records")


def _forward(model, x: np.ndarray, with_embedding: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """(p_fake (n,), embedding (n, D) or None) of (n, S, S, 3) images; ``model`` is the
    ``[embedding, p_fake]`` model when ``with_embedding``: one forward pass gives both."""
    from pipeline.detectors import keras_model

    if not with_embedding:
        return keras_model.predict_arrays(model, x), None
    emb, p = [], []
    for i in range(0, len(x), CHUNK):
        e, q = model.predict_on_batch(np.asarray(x[i:i + CHUNK], dtype=np.float32))
        emb.append(np.asarray(e, dtype=np.float32).reshape(len(e), -1))
        p.append(np.asarray(q).reshape(-1))
    return np.concatenate(p), np.concatenate(emb)


def predict_perturbed(models: dict, test: pd.DataFrame, levels: list[tuple[str, float]], seed: int,
                      progress=None, normalise_size: int = NORMALISE_SIZE, combiner=None) -> dict[str, pd.DataFrame]:
    """p_fake of each model (``{name: (keras_model, image_size)}``) for every test image under every
    level: ``{model: frame(perturbation, level, dataset, y, path, p_fake)}``.

    With ``combiner`` (a loaded :class:`pipeline.detectors.combined.Combiner`) its frame is added
    under its name. Each Keras model runs once per chunk and level: the combiner's Keras members
    reuse those p_fake, its ``+pca_svm`` members the embedding layer output of the same forward pass
    (their base models run as ``[embedding, p_fake]`` models), and its router reads the perturbed
    images (:func:`pipeline.detectors.combined.combined_probabilities`)."""
    from pipeline.models import embedding_and_output_model

    runs = {name: (model, int(size)) for name, (model, size) in models.items()}
    embed = set()
    if combiner is not None:
        from pipeline.detectors.combined import combined_probabilities

        for base, lm in combiner.keras.items():
            runs.setdefault(base, (lm.model, int(lm.image_size)))
        embed = {d.base.name for d in combiner.detectors.values() if d.kind == "pca_svm"}
    heads = {name: (embedding_and_output_model(model) if name in embed else model, size, name in embed)
             for name, (model, size) in runs.items()}
    outputs = list(models) + ([combiner.name] if combiner is not None else [])
    sizes = sorted({size for _, size, _ in heads.values()})
    paths, n = test["path"].tolist(), len(test)
    p = {name: {lv: np.empty(n, dtype=np.float32) for lv in levels} for name in outputs}
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        originals = [images.load_rgb(paths[i]) for i in range(start, stop)]
        for li, (pert, level) in enumerate(levels):
            batch = [perturb(im, pert, level, np.random.default_rng([seed, start + j, li]), normalise_size)
                     for j, im in enumerate(originals)]
            x = {s: np.stack([images.resize_square(im, s) for im in batch]) for s in sizes}
            known, embeddings = {}, {}
            for name, (head, size, with_emb) in heads.items():
                known[name], emb = _forward(head, x[size], with_emb)
                if emb is not None:
                    embeddings[name] = emb
                if name in models:
                    p[name][(pert, level)][start:stop] = known[name]
            if combiner is not None:
                p[combiner.name][(pert, level)][start:stop] = combined_probabilities(
                    combiner, batch, known=known, embeddings=embeddings)[0]
        report(progress, f"robustness: {len(outputs)} model(s) x {len(levels)} levels", stop, n)
    base = test[["path", "dataset", "y"]].reset_index(drop=True)
    return {name: pd.concat([base.assign(perturbation=pert, level=level, p_fake=p[name][(pert, level)])
                             for pert, level in levels], ignore_index=True) for name in outputs}


def combined_model(run_dir: Path, log: Log = print) -> str | None:
    """The run's combined model (its verdict on uploads: ``ensemble_routed``, else
    ``ensemble_stacked``) when it is finished and not stale; None otherwise (logged)."""
    from pipeline.detectors import combined as ensemble

    name = ensemble.combiner_name(run_dir)
    if name is None:
        return None
    try:
        ensemble.check_combiner(run_dir, name)
    except (ValueError, KeyError, OSError) as exc:
        log(f"robustness: {name} left out: {exc}")
        return None
    return name


def run_robustness(cfg, run_dir: Path, *, force: bool = False, progress=None, log: Log = print) -> Path | None:
    from pipeline import detectors
    from pipeline.detectors import combined as ensemble

    run_dir = Path(run_dir)
    manifest = store.read_manifest(run_dir)
    keras_names = _models(cfg, run_dir)
    if not keras_names:
        log("robustness: no trained model with a model.keras in this run; train first: python -m pipeline train")
        return None
    combined = combined_model(run_dir, log)
    names = ([combined] if combined else []) + keras_names  # the run's verdict first
    out = experiment_dir(run_dir, "robustness", settings(cfg, manifest))
    test_idx = subsample(np.flatnonzero(manifest["split"].to_numpy() == "test"), manifest,
                         cfg.experiments.robustness_max_images, cfg.seed)
    test = manifest.iloc[test_idx].reset_index(drop=True)
    levels = sweep_levels(cfg.experiments)
    todo, stamps = [], {}
    for m in names:
        stamps[m] = ensemble.combiner_stamp(run_dir, m) if m == combined else model_stamp(run_dir, m)
        stamp_file = out / "models" / f"{m}.json"
        if force or not (out / "models" / f"{m}.csv").exists() or not stamp_file.exists() or \
                artifacts.read_json(stamp_file).get("stamp") != stamps[m]:
            todo.append(m)
    if not todo and is_done(out) and artifacts.read_json(out / store.DONE).get("models") == names:
        log(f"robustness: cached ({out.relative_to(run_dir)})")
        return out
    (out / store.DONE).unlink(missing_ok=True)
    artifacts.write_json(out / "settings.json", {**settings(cfg, manifest), "n_test": len(test), "models": names,
                                                 "combined_model": combined})
    if todo:
        log(f"robustness: {', '.join(todo)} on {len(test)} test images x {len(levels)} levels")
        loaded = {m: detectors.load(run_dir, m) for m in todo if m != combined}
        combiner = ensemble.load_combiner(run_dir, combined, keras_models=loaded) if combined in todo else None
        thresholds = {m: lm.threshold for m, lm in loaded.items()}
        if combiner is not None:
            thresholds[combiner.name] = combiner.threshold
        frames = predict_perturbed({m: (lm.model, lm.image_size) for m, lm in loaded.items()}, test, levels,
                                   cfg.seed, progress, cfg.experiments.normalise_size, combiner=combiner)
        for m, frame in frames.items():
            rows = pd.DataFrame(score_rows(m, frame, thresholds[m]), columns=COLUMNS)
            artifacts.write_csv(out / "models" / f"{m}.csv", rows)
            artifacts.write_json(out / "models" / f"{m}.json", {"stamp": stamps[m]})
    table = pd.concat([pd.read_csv(out / "models" / f"{m}.csv") for m in names], ignore_index=True).reindex(columns=COLUMNS)
    artifacts.write_csv(out / "robustness.csv", table[COLUMNS])
    mark_done(out, models=names)
    worst = table[(table["dataset"] == "all") & (table["perturbation"] != "none")]
    if len(worst):
        mean_drop = worst.groupby("model")["auc_drop"].mean().sort_values()
        log("robustness: mean AUC drop over perturbations (pooled): " +
            ", ".join(f"{m} {d:+.3f}" for m, d in mean_drop.items()))
    for (model, dataset), levels in inversions(table).items():
        log(f"robustness: WARNING {model} is inverted on {'all datasets pooled' if dataset == 'all' else dataset} "
            f"under {', '.join(levels)}: it calls real faces fake and fake faces real there")
    return out


INVERTED_BELOW, CLEAN_AT_LEAST = 0.45, 0.6  # AUC: an inversion is a clear reversal of a model that works clean


def inversions(table: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """``{(model, dataset): ["blur 1", ...]}``: the perturbation levels under which a model that ranks
    well on clean images (AUC >= 0.6) ranks the wrong way round (AUC < 0.45). A stacked ensemble can
    invert when a member's scores move under a perturbation even if its other members hold up.
    Both AUCs must also lie outside chance's band on that many images
    (:func:`pipeline.evaluation.chance_auc_band`): on a sweep's 31 faces140k images, 0.61 clean and
    0.42 blurred is noise, not an inversion."""
    out: dict[tuple[str, str], list[str]] = {}
    for (model, dataset), rows in table.groupby(["model", table["dataset"].astype(str)], sort=False):
        clean = rows[rows["perturbation"] == "none"].dropna(subset=["roc_auc"])
        if not len(clean):
            continue
        auc, n = clean["roc_auc"].iloc[0], int(clean["n"].iloc[0])
        if auc < CLEAN_AT_LEAST or not evaluation.above_chance(auc, n):
            continue
        below = min(INVERTED_BELOW, 0.5 - evaluation.chance_auc_band(n))
        bad = rows[(rows["perturbation"] != "none") & (rows["roc_auc"] < below)]
        if len(bad):
            out[(str(model), dataset)] = [f"{p} {lv:g}" for p, lv in zip(bad["perturbation"], bad["level"])]
    return out


METRIC_SHORT = {"roc_auc": "AUC", "accuracy": "accuracy", "balanced_accuracy": "balanced accuracy"}


def drop_table(table: pd.DataFrame, dataset: str = "all", metric: str = "roc_auc") -> pd.DataFrame:
    """Per model (in the table's order), for one dataset scope: ``clean <metric>`` (``clean AUC`` for
    ROC-AUC), ``n``, the mean drop of ``metric`` (clean value - value under the perturbation, in the
    metric's own 0-1 units) under each perturbation, their ``mean drop``, and ``above chance``: whether
    the clean ROC-AUC beats chance by more than sampling noise (:func:`pipeline.evaluation.above_chance`;
    always judged on ROC-AUC, whatever ``metric``). A model at chance has no ranking to lose, so its
    drop says nothing about robustness. Raises KeyError for a metric the table lacks."""
    if metric not in table.columns:
        raise KeyError(f"the robustness table has no column {metric!r}")
    rows = table[table["dataset"].astype(str) == str(dataset)]
    models = list(dict.fromkeys(rows["model"]))
    clean = rows[rows["perturbation"] == "none"].drop_duplicates("model").set_index("model")
    moved = rows[rows["perturbation"] != "none"]
    if metric == "roc_auc" and "auc_drop" in moved.columns:
        moved = moved.assign(_drop=moved["auc_drop"])
    else:
        moved = moved.assign(_drop=moved["model"].map(clean[metric]).astype(float) - moved[metric].astype(float))
    drops = moved.pivot_table(index="model", columns="perturbation", values="_drop", aggfunc="mean").reindex(models)
    drops.insert(0, f"clean {METRIC_SHORT.get(metric, metric)}", clean[metric].reindex(models))
    drops.insert(1, "n", clean["n"].reindex(models).astype("Int64"))
    drops["mean drop"] = moved.groupby("model")["_drop"].mean().reindex(models)
    drops["above chance"] = [evaluation.above_chance(a, n) for a, n in
                             zip(clean["roc_auc"].reindex(models), drops["n"].fillna(0))]
    drops.columns.name = None
    return drops


def most_robust(drops: pd.DataFrame) -> str | None:
    """The model of a :func:`drop_table` with the smallest mean AUC drop among those above chance on
    clean images; ``None`` when no such model has a drop."""
    ranked = drops[drops["above chance"] & drops["mean drop"].notna()]
    return str(ranked["mean drop"].idxmin()) if len(ranked) else None


def verdict_summary(table: pd.DataFrame, model: str, dataset: str = "all", metric: str = "roc_auc") -> str:
    """One sentence on ``model`` in a robustness table for one dataset scope: clean ``metric``, its mean
    drop over the perturbations, the worst level and the shortcut check's changed verdicts."""
    short = METRIC_SHORT.get(metric, metric)
    rows = table[(table["model"] == model) & (table["dataset"].astype(str) == str(dataset))]
    clean = rows[rows["perturbation"] == "none"][metric].dropna()
    moved = rows[rows["perturbation"] != "none"]
    parts = []
    if len(clean):
        parts.append(f"clean {short} {clean.iloc[0]:.3f}")
    values = pd.to_numeric(moved[metric], errors="coerce")
    if len(clean) and values.notna().any():
        parts.append(f"mean {short} drop {float(clean.iloc[0]) - values.mean():+.3f}")
        worst = moved.loc[values.idxmin()]
        parts.append(f"worst: {LEVEL_LABELS[worst['perturbation']]} {worst['level']:g} ({short} {worst[metric]:.3f})")
    for _, row in moved[moved["perturbation"] == "normalise"].iterrows():
        parts.append(f"shortcut check (JPEG {row['level']:g}): {row['flip_rate']:.0%} of verdicts changed")
    inverted = inversions(rows).get((model, str(dataset)))
    if inverted:
        parts.append(f"**inverted** (AUC below {INVERTED_BELOW}) under {', '.join(inverted)}")
    scope = "all datasets pooled" if dataset == "all" else dataset
    return (f"Here ({scope}): " + "; ".join(parts) + ".") if parts else ""


def shortcut_table(robustness: pd.DataFrame, dataset: str = "all") -> pd.DataFrame | None:
    """The shortcut check of a robustness table (``perturbation == "normalise"`` rows) for one
    dataset scope: per model and JPEG quality, clean AUC, AUC after normalising, the share of
    verdicts that changed and the mean absolute change of P(fake). ``None`` when the sweep has no
    such rows (runs made before the check existed)."""
    if "flip_rate" not in robustness.columns:
        return None
    scope = robustness[robustness["dataset"].astype(str) == dataset]
    norm = scope[scope["perturbation"] == "normalise"]
    if norm.empty:
        return None
    clean = scope[scope["perturbation"] == "none"].set_index("model")["roc_auc"]
    return pd.DataFrame({
        "model": norm["model"].to_numpy(),
        "JPEG quality": norm["level"].astype(int).to_numpy(),
        "clean AUC": norm["model"].map(clean).to_numpy(),
        "AUC normalised": norm["roc_auc"].to_numpy(),
        "verdicts changed": norm["flip_rate"].to_numpy(),
        "mean |change|": norm["mean_abs_change"].to_numpy(),
    }).sort_values("verdicts changed", kind="stable").reset_index(drop=True)
