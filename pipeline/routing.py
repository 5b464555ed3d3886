"""Routing: which kind of image is this, and which detectors should judge it?

The three data sets hold three kinds of fake (StyleGAN faces, Photoshop composites, face swaps) and
nothing a detector learns on one carries over to another (EXPERIMENTS.md, cross-dataset matrix). A
specialist trained on one kind beats the pooled model on it. A router lets specialists work
together: it estimates ``P(kind | image)`` from what the image looks like, never from its label,
name or file, and the routed ensemble mixes one stacker per kind::

    p_fake(x) = sum_k  P(k | x) * sigmoid(w_k . logit(p_members(x)) + b_k)

where the stacker of kind ``k`` (a logistic regression over every member's log-odds) is fitted on
the validation images of kind ``k`` only. So each kind gets the members that work on it.

The router is a multinomial logistic regression fitted on the training split's images with their data
set as the target, on one of two inputs (``router["input"]``):

* ``"pixels"``: a coarse look at the image: a 16 x 16 colour thumbnail, the per-channel mean and
  spread, and a histogram of oriented gradients of the grey image at 64 px (scikit-image's HOG: where
  the edges of the face, hair and background run). That is enough to tell an FFHQ-aligned portrait
  from an LFW news photo or a tight ciplab crop, and far too coarse to see the fine traces of fakery.
* ``"clip"``: the image's frozen CLIP ViT-B/16 embedding (:mod:`pipeline.clip`), when the run has a
  CLIP detector: it already encodes every checked face, so routing on it costs nothing more, and it
  tells the two GAN-face sets and the DFDC frames apart where the coarse look confuses them
  (EXPERIMENTS.md, C6). It also trains on the CLIP heads' augmented copies of the training images
  (re-saved, downscaled, cropped: ``router["augmented_copies"]``), so that a re-saved photo keeps its
  kind and is judged at its kind's operating point (C7).

Everything is stored as JSON (``routing.json``), no pickle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

ROUTER_SIZE = 64  # px: the images the router looks at
FEATURES_VERSION = 2  # bump when router_features changes: routers fitted on the old features are stale
THUMB = 16  # px: side of the thumbnail feature
HOG = dict(orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
PIXELS, CLIP = "pixels", "clip"  # the router's inputs
ROUTER_INPUTS = (PIXELS, CLIP)
ROUTER_C = {PIXELS: 0.01, CLIP: 0.1}  # inverse L2 strength of the router's logistic regression, per input (C6)
INPUT_WORDS = {PIXELS: f"{THUMB}x{THUMB} colour thumbnail, channel mean/std and HOG of the image at {ROUTER_SIZE} px",
               CLIP: "frozen CLIP ViT-B/16 image embedding (512-d, unit length)"}


def router_features(x: np.ndarray) -> np.ndarray:
    """(n, 64, 64, 3) uint8 images -> (n, 16*16*3 + 6 + 1764) floats: a 16 px thumbnail (4 x 4 means),
    each channel's mean and standard deviation, and the HOG of the grey image."""
    from skimage.feature import hog

    x = np.asarray(x, dtype=np.float32) / 255.0
    if x.ndim != 4 or x.shape[1:] != (ROUTER_SIZE, ROUTER_SIZE, 3):
        raise ValueError(f"router features need (n, {ROUTER_SIZE}, {ROUTER_SIZE}, 3) images, got {x.shape}")
    n, f = len(x), ROUTER_SIZE // THUMB
    thumb = x.reshape(n, THUMB, f, THUMB, f, 3).mean(axis=(2, 4)).reshape(n, -1)
    grey = x.mean(axis=3)
    edges = np.stack([hog(im, **HOG) for im in grey]) if n else np.zeros((0, 1764), dtype=np.float32)
    return np.concatenate([thumb, x.mean(axis=(1, 2)), x.std(axis=(1, 2)), edges], axis=1)


def fit_router(features: np.ndarray, kinds: np.ndarray, C: float | None = None, seed: int = 0,
               input: str = PIXELS) -> dict[str, Any]:
    """Standardise, then a multinomial logistic regression from ``features`` (n, d) float to kind (n,) str;
    JSON-ready. ``input``: what the features are (:data:`ROUTER_INPUTS`; :func:`router_input` reads it back);
    ``C`` default :data:`ROUTER_C` of that input. ValueError for fewer than two kinds or an unknown input."""
    if input not in ROUTER_INPUTS:
        raise ValueError(f"unknown router input {input!r}; choose one of {', '.join(ROUTER_INPUTS)}")
    C = ROUTER_C[input] if C is None else C
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(features, dtype=np.float64)
    kinds = np.asarray(kinds).astype(str)
    classes = sorted(set(kinds))
    if len(classes) < 2:
        raise ValueError(f"a router needs at least two kinds of image, got {classes}")
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    lr = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit((features - mean) / scale, kinds)
    coef, intercept = lr.coef_, lr.intercept_
    if len(classes) == 2:  # sklearn keeps one row for two classes: make it symmetric (softmax of two)
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    return {"classes": [str(c) for c in lr.classes_], "mean": mean.tolist(), "scale": scale.tolist(),
            "coef": np.asarray(coef).tolist(), "intercept": np.asarray(intercept).tolist(), "C": C,
            "features": INPUT_WORDS[input], "input": input, **({"size": ROUTER_SIZE} if input == PIXELS else {})}


def router_input(router: dict[str, Any]) -> str:
    """What a fitted router reads: ``"pixels"`` (also every router stored before the choice existed) or ``"clip"``."""
    return str(router.get("input", PIXELS))


def route(router: dict[str, Any], features: np.ndarray) -> np.ndarray:
    """(n, k) probabilities of each kind in ``router["classes"]`` order."""
    z = ((np.asarray(features, dtype=np.float64) - np.asarray(router["mean"])) / np.asarray(router["scale"])
         @ np.asarray(router["coef"]).T + np.asarray(router["intercept"]))
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


ROUTED_TO, ROUTE_CONFIDENCE = "routed_to", "route_confidence"  # ensemble_routed's predictions: the router's pick


def routed_choice(route_p: np.ndarray, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The kind the router picks for each row (its most probable of ``classes``) and that probability."""
    route_p = np.asarray(route_p, dtype=np.float64)
    return np.asarray(classes).astype(str)[route_p.argmax(axis=1)], route_p.max(axis=1)


STACKER_C = 1.0  # inverse L2 strength of each kind's stacker


def fit_routed(p_val: np.ndarray, y_val: np.ndarray, kinds_val: np.ndarray, members: list[str],
               seed: int = 0, C: float = STACKER_C, copies=None) -> dict[str, Any]:
    """One stacker per kind, fitted on that kind's validation rows (kinds without both classes get
    the stacker of all rows); ``copies``: a :class:`pipeline.stacking.Copies` of augmented copies of those rows,
    each fitted on with its original's label and kind. JSON-ready."""
    from pipeline.stacking import fit_stacker

    y_val, kinds_val = np.asarray(y_val).astype(int), np.asarray(kinds_val).astype(str)
    pooled = fit_stacker(p_val, y_val, members, seed, C, copies=copies)
    stackers = {}
    for kind in sorted(set(kinds_val)):
        rows = kinds_val == kind
        ok = np.bincount(y_val[rows], minlength=2).min() >= 2
        stackers[kind] = fit_stacker(p_val[rows], y_val[rows], members, seed, C,
                                     copies=None if copies is None else copies.subset(rows)) if ok else pooled
    return {"members": list(members), "stackers": stackers, "pooled": pooled}


def apply_routed(routed: dict[str, Any], p: np.ndarray, route_p: np.ndarray, classes: list[str]) -> np.ndarray:
    """Mix the kinds' stackers by the router's probabilities (a kind without a stacker uses the pooled one)."""
    from pipeline.stacking import apply_stacker

    out = np.zeros(len(p))
    for j, kind in enumerate(classes):
        out += route_p[:, j] * apply_stacker(routed["stackers"].get(kind, routed["pooled"]), p)
    return out


def out_of_fold_routed(p_val: np.ndarray, y_val: np.ndarray, kinds_val: np.ndarray, route_p: np.ndarray,
                       classes: list[str], members: list[str], seed: int = 0, n_splits: int = 5,
                       C: float = STACKER_C, copies=None) -> np.ndarray:
    """Routed validation predictions, each from stackers that did not see that row nor its ``copies``
    (:func:`fit_routed`)."""
    from sklearn.model_selection import StratifiedKFold

    y_val, kinds_val = np.asarray(y_val).astype(int), np.asarray(kinds_val).astype(str)
    strata = np.char.add(kinds_val, y_val.astype(str))
    n_splits = int(min(n_splits, np.unique(strata, return_counts=True)[1].min()))
    if n_splits < 2:
        return apply_routed(fit_routed(p_val, y_val, kinds_val, members, seed, C, copies), p_val, route_p, classes)
    out = np.empty(len(y_val))
    for fit_idx, pred_idx in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(p_val, strata):
        routed = fit_routed(p_val[fit_idx], y_val[fit_idx], kinds_val[fit_idx], members, seed, C,
                            None if copies is None else copies.subset(fit_idx))
        out[pred_idx] = apply_routed(routed, p_val[pred_idx], route_p[pred_idx], classes)
    return out


# --------------------------------------------------------------------------- how the router did


@dataclass
class RoutingReport:
    """How the router of ``ensemble_routed`` did on the test split (:func:`routing_report`)."""

    accuracy: float | None  # share of test images sent to their own dataset's stacker (None: no test rows)
    n: int  # test images
    confusion: pd.DataFrame  # image counts: rows the true dataset, columns the dataset routed to
    per_dataset: pd.DataFrame  # dataset, n, routed_correctly, router_accuracy, mean_confidence
    by_routing: pd.DataFrame  # dataset, routing (correct / misrouted), n, n_fake, roc_auc, accuracy
    misrouted: pd.DataFrame  # path, dataset, routed_to, route_confidence, label, p_fake; surest first


def routing_report(predictions: pd.DataFrame, threshold: float) -> RoutingReport | None:
    """The router's test-split record from ``ensemble_routed``'s predictions (columns ``routed_to``
    and ``route_confidence``; None for a run written before they existed): the confusion table true
    x routed dataset, the router's accuracy per dataset, the ensemble's AUC and accuracy at
    ``threshold`` on each dataset's correctly routed and misrouted images (datasets with both), and
    the misrouted images themselves."""
    from pipeline import evaluation

    if not {ROUTED_TO, ROUTE_CONFIDENCE} <= set(predictions.columns):
        return None
    test = predictions[predictions["split"] == "test"].reset_index(drop=True)
    test = test.assign(dataset=test["dataset"].astype(str), **{ROUTED_TO: test[ROUTED_TO].astype(str)})
    ok = test["dataset"] == test[ROUTED_TO]
    kinds = sorted(set(test["dataset"]) | set(test[ROUTED_TO]))
    confusion = pd.crosstab(test["dataset"], test[ROUTED_TO]).reindex(index=kinds, columns=kinds, fill_value=0)
    confusion.index.name, confusion.columns.name = "dataset", ROUTED_TO
    per_dataset = (test.assign(ok=ok).groupby("dataset", sort=True)
                   .agg(n=("ok", "size"), routed_correctly=("ok", "sum"), router_accuracy=("ok", "mean"),
                        mean_confidence=(ROUTE_CONFIDENCE, "mean"))
                   .reset_index())
    groups = []
    for dataset, part in test.groupby("dataset", sort=True):
        right = part["dataset"] == part[ROUTED_TO]
        if right.all() or not right.any():
            continue
        for name, rows in (("correct", part[right]), ("misrouted", part[~right])):
            sc = evaluation.scope_metrics(rows["y"], rows["p_fake"], threshold)
            groups.append({"dataset": dataset, "routing": name, "n": sc["n"], "n_fake": sc["n_fake"],
                           "roc_auc": sc["roc_auc"], "accuracy": sc["at_threshold"]["accuracy"]})
    misrouted = (test.loc[~ok, ["path", "dataset", ROUTED_TO, ROUTE_CONFIDENCE, "label", "p_fake"]]
                 .sort_values(ROUTE_CONFIDENCE, ascending=False, kind="stable").reset_index(drop=True))
    return RoutingReport(
        accuracy=float(ok.mean()) if len(test) else None, n=int(len(test)), confusion=confusion,
        per_dataset=per_dataset,
        by_routing=pd.DataFrame(groups, columns=["dataset", "routing", "n", "n_fake", "roc_auc", "accuracy"]),
        misrouted=misrouted)
