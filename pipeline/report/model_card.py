"""Model cards (Mitchell et al. 2019, "Model Cards for Model Reporting", FAT* '19), one per detector
of a run, built from the run's artifacts only.

Sections, in the paper's order: model details, intended use, out-of-scope uses, factors, metrics
(per dataset, with n and the band within which a model that knows nothing lands,
:func:`pipeline.evaluation.chance_auc_band`), evaluation data, training data, the operating point
(threshold and its error rates in words), robustness (the sweep's sentence for the model,
:func:`pipeline.experiments.robustness.verdict_summary`), where it fails, and caveats. Every card
appears in the run report; :func:`write_model_cards` also writes one self-contained HTML file per
model.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pipeline import evaluation
from pipeline.report import reliability, render

if TYPE_CHECKING:
    from pipeline.report.run_data import RunData

INTENDED_USE = [
    "Screening: rank face images by how likely they are synthetic (GAN or diffusion faces) or face-swapped, so "
    "that an analyst knows which ones to look at more closely.",
    "Teaching and research: show how a detector decides, on which kinds of fake it works and where it fails.",
]
OUT_OF_SCOPE = [
    "Not proof; never the sole basis for accusing a person. A \"fake\" verdict is a statistical score, not evidence "
    "that a picture was manipulated or that anyone did anything.",
    "Images unlike its training data: other generators or editing tools, whole scenes instead of face crops, "
    "screenshots, drawings. Its test numbers say nothing about them.",
    "Heavily re-shared photos (re-compressed, resized, filtered) unless the robustness section shows it holds up "
    "under that perturbation.",
    "Any judgement about the person shown (identity, age, gender, origin), and automated decisions without a "
    "person reviewing them.",
]
FACTORS = ("The kind of fake (each dataset is one kind: see the metrics per dataset), the image source and size, "
           "and what happened to the file after it was made (JPEG re-compression, resizing, blur, noise: see "
           "robustness). Demographic attributes of the people shown were not recorded in the data and were not "
           "evaluated.")
SHORTCUT_DATASETS = {"lfw_faceswap": "lfw_faceswap's real and fake images differ in JPEG quality (about 90 vs 95), "
                                     "a shortcut a detector can learn instead of the face (EXPERIMENTS.md)."}
ECE_POOR = 0.1  # expected calibration error above which the card warns that the probabilities are off


def kind(rd: "RunData", model: str) -> str:
    """What the model is: ``ensemble``, ``PCA-SVM`` or ``Keras network``."""
    m = rd.metrics.get(model, {})
    if m.get("kind") == "ensemble" or model.startswith("ensemble_"):
        return "ensemble"
    if model.endswith("+pca_svm"):
        return "PCA-SVM"
    return "Keras network"


def _details(rd: "RunData", model: str) -> list[tuple[str, str]]:
    m, cfg = rd.metrics[model], rd.run.model_config(model)
    k = kind(rd, model)
    rows = [("Kind", k), ("Run", rd.run.run_id), ("Config", rd.run.info.config_name)]
    if k == "ensemble":
        rows.append(("Members", ", ".join(m.get("members") or []) or "not recorded"))
    elif k == "PCA-SVM":
        rows.append(("Base model", model.split("+", 1)[0] + " (an SVM on the PCA of its penultimate embedding)"))
    else:
        rows.append(("Architecture", cfg.get("architecture") or model))
        for key, label in (("weights", "Initial weights"), ("epochs", "Epochs"),
                           ("fine_tune_epochs", "Fine-tuning epochs"), ("optimizer", "Optimizer"),
                           ("learning_rate", "Learning rate"), ("lr_schedule", "Learning-rate schedule")):
            if cfg.get(key) not in (None, ""):
                rows.append((label, f"{cfg[key]:g}" if isinstance(cfg[key], float) else str(cfg[key])))
    rows += [("Input size", f"{m.get('image_size', '?')} px square, RGB 0-255"),
             ("Parameters", render.number(m.get("params"))),
             ("File size", f"{(m.get('file_size_bytes') or 0) / 2**20:.2f} MiB"),
             ("Training time", f"{render.number(m.get('train_seconds'), 1)} s"),
             ("Latency, batch 1", f"{render.number((m.get('latency_ms') or {}).get('batch1_p50'), 2)} ms (CPU)"),
             ("Output", "P(fake), a probability 0-1; \"fake\" at or above the threshold")]
    return rows


def metrics_table(metrics: dict) -> pd.DataFrame:
    """Per scope of a metrics.json (pooled first): n, n_real, n_fake, ROC-AUC, the chance band ±, whether
    the AUC is above it, accuracy, balanced accuracy, precision, recall and false-positive rate at the
    threshold."""
    rows = []
    scopes = metrics.get("scopes") or {}
    for scope in (["all"] if "all" in scopes else []) + sorted(s for s in scopes if s != "all"):
        sc = scopes[scope]
        at = sc.get("at_threshold") or {}
        n_real = int(sc.get("n_real") or 0)
        rows.append({"dataset": "all (pooled)" if scope == "all" else scope, "n": sc.get("n"), "n_real": n_real,
                     "n_fake": sc.get("n_fake"), "ROC-AUC": sc.get("roc_auc"),
                     "chance ±": evaluation.chance_auc_band(int(sc.get("n") or 0)),
                     "above chance": evaluation.above_chance(sc.get("roc_auc"), int(sc.get("n") or 0)),
                     "accuracy": at.get("accuracy"), "balanced accuracy": at.get("balanced_accuracy"),
                     "precision": at.get("precision"), "recall": at.get("recall"),
                     "false-positive rate": (at.get("fp") or 0) / n_real if n_real else None})
    return pd.DataFrame(rows)


def _training_data(rd: "RunData", model: str) -> str:
    k = kind(rd, model)
    counts = rd.run.counts()
    cfg = rd.run.model_config(model)
    only = [str(d) for d in cfg.get("datasets") or []]
    train = counts[counts["split"] == "train"]
    if only:
        train = train[train["dataset"].astype(str).isin(only)]
    per = train.groupby("dataset")["n"].sum()
    where = ", ".join(f"{d} ({int(n):,})" for d, n in per.items()) or "none recorded"
    if k == "ensemble":
        return ("Fitted on the validation split (its members' P(fake)), never on the test split; its members were "
                f"trained on the training split: {where} images.")
    cap = cfg.get("max_train_images")
    capped = f" (at most {int(cap):,} images drawn)" if cap else ""
    specialist = f" A specialist: trained on {', '.join(only)} only." if only else ""
    aug = rd.run.config.get("augmentation") or {}
    aug = {**aug, **(cfg.get("augmentation") or {})}
    aug_text = ", ".join(key if val is True else f"{key} {val}" for key, val in aug.items()
                         if val not in (None, False, 0, 0.0, [], ""))
    return (f"The run's training split: {where} images{capped}.{specialist} The threshold and early stopping use "
            f"the validation split. Augmentation: {aug_text or 'none'}.")


def _evaluation_data(rd: "RunData") -> str:
    counts = rd.run.counts()
    test = counts[counts["split"] == "test"].pivot_table(index="dataset", columns="label", values="n", aggfunc="sum",
                                                         fill_value=0)
    parts = [f"{d} ({int(r.get('real', 0)):,} real, {int(r.get('fake', 0)):,} fake)" for d, r in test.iterrows()]
    man = rd.run.manifest()
    given = sorted(man.loc[man["given_split"].notna(), "dataset"].astype(str).unique())
    fractions = "/".join(f"{100 * float(f):g}" for f in rd.run.config.get("split") or (0.7, 0.15, 0.15))
    how = (f"each (dataset, class) split {fractions} (train/val/test) with seed {rd.run.config.get('seed')}"
           + (f"; {', '.join(given)} kept the split given by its folders" if given else ""))
    return (f"The run's test split, never used for training or choosing the threshold: {'; '.join(parts) or 'none'}. "
            f"Split: {how}. Identical files are kept once, so no image is on both sides.")


def _failures(rd: "RunData", model: str, metrics: pd.DataFrame, calib: reliability.Reliability | None) -> list[str]:
    out = []
    trained_on = {str(d) for d in rd.run.model_config(model).get("datasets") or []}
    for _, r in metrics.iterrows():
        auc, band = r["ROC-AUC"], r["chance ±"]
        if auc is None or pd.isna(auc) or r["above chance"]:
            continue
        where = "Pooled over all datasets" if r["dataset"] == "all (pooled)" else f"On **{r['dataset']}**"
        how = "ranks **the wrong way round**" if auc < 0.5 - band else "ranks no better than chance"
        unseen = (" — a dataset this specialist was not trained on"
                  if trained_on and r["dataset"] not in trained_on | {"all (pooled)"} else "")
        out.append(f"{where} it {how} (ROC-AUC {auc:.3f} on {int(r['n'])} images; chance lands within "
                   f"0.5 ± {band:.3f}){unseen}.")
    op = reliability.operating_point(model, rd.metrics[model])
    if op is not None and op.n_fake and op.tp == 0:
        out.append("At its threshold it calls every test image real: it catches **no fake at all**.")
    elif op is not None and op.n_real and op.fp == op.n_real:
        out.append("At its threshold it calls **every real test photo fake**.")
    scoped = metrics[metrics["dataset"] != "all (pooled)"].dropna(subset=["false-positive rate"])
    if len(scoped) > 1:
        worst = scoped.sort_values("false-positive rate", ascending=False).iloc[0]
        if worst["false-positive rate"] > 0:
            n_real = int(worst["n_real"])
            fp = round(worst["false-positive rate"] * n_real)
            out.append(f"Most real photos wrongly called fake on **{worst['dataset']}**: "
                       f"{reliability.per_thousand(fp, n_real)} ({fp} of {n_real}).")
    table = rd.robustness
    if table is not None and model in set(table["model"]):
        from pipeline.experiments import robustness

        for (m, d), levels in robustness.inversions(table).items():
            if m == model:
                out.append(f"**Inverted** (calls real faces fake and fakes real) on "
                           f"{'all datasets pooled' if d == 'all' else d} under {', '.join(levels)}.")
        rows = table[(table["model"] == model) & (table["dataset"].astype(str) == "all") &
                     (table["perturbation"] != "none")].dropna(subset=["roc_auc"])
        if len(rows):
            w = rows.loc[rows["roc_auc"].idxmin()]
            out.append(f"Weakest under {robustness.LEVEL_LABELS.get(w['perturbation'], w['perturbation'])} "
                       f"{w['level']:g}: ROC-AUC {w['roc_auc']:.3f} (pooled).")
    if calib is not None and calib.ece is not None and calib.ece > ECE_POOR:
        out.append(f"Its probabilities are poorly calibrated (expected calibration error {calib.ece:.3f}): read "
                   "P(fake) as a ranking score, not as a chance.")
    return out or ["No failure stands out in this run's tests; the caveats still apply."]


def _caveats(rd: "RunData", model: str) -> list[str]:
    n = int((rd.metrics[model].get("scopes") or {}).get("all", {}).get("n") or 0)
    out = [f"Tested on {n:,} images: an AUC within 0.5 ± {evaluation.chance_auc_band(n):.3f} on that many is no "
           "evidence of skill, and every number here carries sampling noise of that order.",
           "The threshold was chosen on validation images from the same datasets; on other images the error rates "
           "differ."]
    out += [text for d, text in SHORTCUT_DATASETS.items() if d in rd.run.datasets()]
    return out


def card(rd: "RunData", model: str, calib: reliability.Reliability | None = None) -> dict[str, Any]:
    """The model card of ``model`` as template data (``templates/model_card.html.j2``): ``details``
    (label, value) pairs, the fixed intended / out-of-scope uses and factors, the per-dataset metrics
    table, data, operating point, robustness and failure sentences (inline Markdown)."""
    metrics = metrics_table(rd.metrics[model])
    op = reliability.operating_point(model, rd.metrics[model])
    robust = None
    if rd.robustness is not None and model in set(rd.robustness["model"]):
        from pipeline.experiments import robustness

        robust = robustness.verdict_summary(rd.robustness, model, "all")
    return {"model": model, "slug": "card-" + "".join(c if c.isalnum() else "-" for c in model),
            "verdict": model == rd.verdict_model, "details": _details(rd, model), "intended": INTENDED_USE,
            "out_of_scope": OUT_OF_SCOPE, "factors": FACTORS,
            "metrics": render.table(metrics, None, {"n": 0, "n_real": 0, "n_fake": 0, "chance ±": 3}, 3),
            "evaluation_data": _evaluation_data(rd), "training_data": _training_data(rd, model),
            "operating_point": op.in_words() if op else "No pooled test metrics recorded.",
            "calibration": None if calib is None or calib.ece is None else
            f"Expected calibration error {calib.ece:.3f}, Brier score {calib.brier:.3f} on {calib.n:,} test images.",
            "robustness": robust or ("This model is not in the run's robustness sweep." if rd.robustness is not None
                                     else "The run's robustness sweep cannot be read: " + rd.robustness_error
                                     if rd.robustness_error else "The run has no robustness sweep."),
            "failures": _failures(rd, model, metrics, calib), "caveats": _caveats(rd, model)}


def write_model_cards(run, folder: str | Path) -> list[Path]:
    """One self-contained HTML model card per finished model of ``run`` (a :class:`pipeline.results.Run`)
    in ``folder`` (created), named ``<model>.html`` (``+`` kept); written atomically. Returns the paths."""
    from datetime import datetime, timezone

    from pipeline.report import run_data, run_report

    rd = run_data.load(run)
    folder = Path(folder).expanduser()
    paths = []
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for model in rd.models:
        calib = None
        preds = rd.test_predictions.get(model)
        if preds is not None and len(preds):
            calib = reliability.reliability(model, preds["y"], preds["p_fake"])
        page = render.render("model_card_page.html.j2", card=card(rd, model, calib), run=run.info, generated=generated)
        safe = "".join(c if c.isalnum() or c in "+-_." else "_" for c in model)
        paths.append(run_report.write(folder / f"{safe}.html", page))
    return paths
