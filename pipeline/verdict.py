"""The run's verdict on a face: calibrated, at a stated false-accusation rate, and "unsure" when the
models cannot tell. One policy per run, fitted on the validation split, used by every path that
gives a verdict (``python -m pipeline predict``, ``evaluate``, the Check page, video).

How a face is judged (:func:`decide`):

1. The run's verdict model (its combined model ``ensemble_routed``, else ``ensemble_stacked``, else
   its best single model by validation ROC-AUC) gives a raw probability of "fake".
2. A calibrator fitted on the validation split (Platt scaling by default:
   :mod:`pipeline.calibration`) turns it into a probability that means what it says.
3. The threshold follows the rule "at most X% of real images called fake on validation, on every
   dataset" (``[verdict] max_false_positive_rate``, default 3%): calling a real person's photo fake
   does harm, so the rate of that error is chosen, and stated in words.
   With a routed verdict model (``[verdict] per_kind``, default on) the calibrator, threshold and band
   are fitted **per kind of image**, on the validation images the router sends to that kind: one
   pooled threshold must be as strict as the hardest data set demands, which leaves the detectors
   little power elsewhere (on run default-36475360998e's test split, band rule, the per-kind points
   caught 51% of the fakes against 37%, at a false-accusation rate of 0-2.4% per data set). A kind with fewer than
   :data:`pipeline.verdict_fit.KIND_MIN_PER_CLASS` validation images of either class uses the pooled point, and so does a
   score whose kind is unknown (video, the quiz).
4. The answer is **unsure** instead of real or fake when (a) the calibrated probability lies in a band
   around the threshold (the band holds ``unsure_share`` of the validation images, default 10%), or
   (b) the answer flips under a quick stability check: the face re-encoded as JPEG at quality 75 and
   95, scaled to half and to double size, and cropped by 5% on every side (:func:`perturbations`), one
   of these copies would get the opposite answer, landing more than ``flip_margin`` band half-widths past
   the threshold on the other side (``[verdict] flip_margin``, default 1: past the band's edge; a copy
   that lands in the unsure band is no flip: on run default-36475360998e's test faces counting those as
   flips left dfdc 71% decided, not counting them 82%, with no real face called fake and no resampled
   real flipping either way; ``configs/default.toml`` sets 3, chosen on validation faces: EXPERIMENTS.md V3;
   ``[verdict] stability_copies`` picks which of the five copies are made, default all: each costs one more
   pass of every member, a CLIP encoding included; ``configs/default.toml`` makes two: EXPERIMENTS.md V4),
   or (c) the face looks unlike the training photos (:mod:`pipeline.ood`: a probabilistic-PCA distance
   of its coarse look and, with a CLIP detector in the run, of its CLIP embedding, each thresholded so
   that about 1% of the validation photos exceed it), or (d) the verdict model ranked validation no
   better than chance. Each reason is said in plain words.

The policy is ``verdict.json`` in the verdict model's folder (JSON: numbers only, nothing pickled);
:func:`pipeline.verdict_fit.build_for_run` fits it after the ensembles and refits it when the verdict
model changes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline import artifacts, calibration, store
from pipeline.config import STABILITY_COPIES

VERDICT_FILE = "verdict.json"
OOD_FILE = "ood.npy"  # pipeline.ood's projection of the router features, beside verdict.json
OOD_CLIP_FILE = "ood_clip.npy"  # and of the CLIP embeddings (runs with a CLIP detector)
FORMAT = 5  # bump when the policy's fields or meaning change: older policies are refitted
PERTURBATIONS = STABILITY_COPIES  # every copy the stability check can make; a policy's stability_copies picks some
FAKE, REAL, UNSURE = "fake", "real", "unsure"
BAND_REASON = "its score is too close to the line between real and fake"
CHANCE_REASON = "the verdict model did no better than chance on the validation images"
OOD_REASON = "this face looks unlike the photos the detectors were trained on"
FLIP_REASON = "the answer changes when the photo is {what}"

Scorer = Callable[[list[np.ndarray]], np.ndarray]  # (H, W, 3) uint8 images -> (n,) raw p_fake


NOT_IN_JSON = ("ood", "ood_clip")  # VerdictPolicy's arrays: .npy files beside verdict.json


@dataclass
class VerdictPolicy:
    """How raw scores of ``model`` become a three-way verdict (see the module doc).

    ``threshold``: on the calibrated probability (fake when >= it). ``band``: half-width, in log-odds,
    of the unsure band around ``logit(threshold)``. ``validation``: per dataset and pooled, what the
    policy did on the validation split (n, coverage, false-positive rate among decided, ...).
    ``by_kind``: per router kind, its own operating point ``{"calibrator", "threshold", "band", "n",
    "n_real"}``; the methods take ``kinds`` (the router's pick per score, e.g. the ``routed_to`` column)
    and use the pooled point (``calibrator``, ``threshold``, ``band``) for a kind not listed or None."""

    model: str
    calibrator: dict[str, Any]
    threshold: float
    band: float
    max_false_positive_rate: float
    unsure_share: float
    stability: bool = True
    validation: list[dict[str, Any]] = field(default_factory=list)
    face_fractions: dict[str, float] = field(default_factory=dict)  # per dataset: face side / image side
    ood_threshold: float = 0.0  # pipeline.ood distance above which a face is out of distribution (0 = off)
    by_kind: dict[str, dict[str, Any]] = field(default_factory=dict)  # router kind -> its operating point
    key: str = ""
    format: int = FORMAT
    ood_clip_threshold: float = 0.0  # the same on CLIP embeddings (0 = off: the run has no CLIP detector)
    flip_margin: float = 1.0  # a stability-check copy flips the answer this many band half-widths past the threshold
    stability_copies: list[str] = field(default_factory=lambda: list(PERTURBATIONS))  # the copies scored, in order
    ood: Any = field(default=None, repr=False, compare=False)  # the ood.npy projection (not in the JSON)
    ood_clip: Any = field(default=None, repr=False, compare=False)  # the ood_clip.npy projection

    def __post_init__(self) -> None:
        # one order, each copy once, as perturbations() makes them: decide() names flips by position (ValueError
        # for a name that is not a copy)
        self.stability_copies = copies_of(self.stability_copies)
        if not self.stability_copies:  # a hand-edited verdict.json; fit_policy and the config refuse it too
            raise ValueError("stability_copies names no copy (to turn the check off: stability = false)")

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in NOT_IN_JSON}

    def out_of_distribution(self, rgb_images: list[np.ndarray]) -> np.ndarray:
        """(n,) bool: which faces look unlike the training photos, by their coarse look or (runs with a
        CLIP detector) their CLIP embedding (all False without a fitted score)."""
        from pipeline import ood

        flags = np.zeros(len(rgb_images), dtype=bool)
        if not len(rgb_images):
            return flags
        if self.ood is not None and self.ood_threshold:
            flags |= ood.distance(self.ood, ood.features(rgb_images)) > self.ood_threshold
        if self.ood_clip is not None and self.ood_clip_threshold:
            flags |= ood.distance(self.ood_clip, ood.clip_features(rgb_images)) > self.ood_clip_threshold
        return flags

    def _per_kind(self, values: np.ndarray, kinds, fill: Callable[[dict[str, Any], np.ndarray], Any]) -> np.ndarray:
        """``values`` (the pooled point's, an array) with the entries of each kind in :attr:`by_kind`
        replaced by ``fill(point, rows)`` (rows: a bool mask of ``values``' shape)."""
        if kinds is None or not self.by_kind:
            return values
        kinds = np.broadcast_to(np.asarray(kinds).astype(str), values.shape)
        for kind, point in self.by_kind.items():
            rows = kinds == kind
            if rows.any():
                values[rows] = fill(point, rows)
        return values

    def calibrated(self, p_raw, kinds=None) -> np.ndarray:
        """Calibrated p(fake) of raw scores (any shape, floats in [0, 1]); ``kinds``: the router's kind
        per score (same shape, or None for the pooled calibrator)."""
        p_raw = np.asarray(p_raw, dtype=np.float64)
        out = np.array(calibration.apply_calibrator(self.calibrator, p_raw), dtype=np.float64)
        return self._per_kind(out, kinds, lambda pt, rows: calibration.apply_calibrator(pt["calibrator"], p_raw[rows]))

    def thresholds(self, p_raw, kinds=None) -> np.ndarray:
        """The calibrated threshold that applies to each score (its kind's, else the pooled one)."""
        base = np.full(np.shape(p_raw), self.threshold, dtype=np.float64)
        return self._per_kind(base, kinds, lambda pt, rows: pt["threshold"])

    def bands(self, p_raw, kinds=None) -> np.ndarray:
        """The unsure band's half-width (log-odds) that applies to each score."""
        base = np.full(np.shape(p_raw), self.band, dtype=np.float64)
        return self._per_kind(base, kinds, lambda pt, rows: pt["band"])

    def margin(self, p_raw, kinds=None) -> np.ndarray:
        """Log-odds distance of the calibrated probability from the threshold (>= 0: the fake side)."""
        return calibration.logit(self.calibrated(p_raw, kinds)) - calibration.logit(self.thresholds(p_raw, kinds))

    def labels(self, p_raw, kinds=None) -> np.ndarray:
        """``"fake"``, ``"real"`` or ``"unsure"`` per raw score by the band rule alone (no stability check)."""
        z = self.margin(p_raw, kinds)
        unsure = (np.abs(z) <= self.bands(p_raw, kinds)) | self.uninformative_at(p_raw, kinds)
        return np.where(unsure, UNSURE, np.where(z >= 0, FAKE, REAL))

    def uninformative_at(self, p_raw, kinds=None) -> np.ndarray:
        """(same shape as ``p_raw``) bool: the operating point of each score says nothing (see
        :attr:`uninformative`)."""
        base = np.full(np.shape(p_raw), self.uninformative, dtype=bool)
        return self._per_kind(base, kinds, lambda pt, rows: _flat(pt["calibrator"]))

    @property
    def uninformative(self) -> bool:
        """The calibrator maps every score to one probability: on validation the verdict model ranked
        real and fake images no better than chance (or the wrong way round)."""
        return _flat(self.calibrator)

    @property
    def face_fraction(self) -> float | None:
        """The widest training framing (smallest face share of the image side) over the datasets: a
        photo's face is cropped at least this wide, so a photo framed like any training image is
        scored whole, as in training (:func:`pipeline.faces.framed_box`)."""
        return min(self.face_fractions.values()) if self.face_fractions else None

    def validation_row(self, scope: str = "all") -> dict[str, Any] | None:
        return next((r for r in self.validation if r["scope"] == scope), None)


def _flat(calibrator: dict[str, Any]) -> bool:
    """A Platt calibrator that maps every score to one probability (the model ranked validation no
    better than chance, or the wrong way round)."""
    return calibrator.get("method") == "platt" and calibrator.get("a") == 0


# --------------------------------------------------------------------------- stability check


def _degrade():
    from pipeline import degrade  # Pillow and SciPy: imported when a copy is first made, not with this module

    return degrade


# Each stability-check copy: how it is made from an (H, W, 3) uint8 face, and how the page says it ("the answer
# changes when the photo is ...").
COPIES: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "JPEG quality 75": (lambda rgb: _degrade().jpeg(rgb, 75), "re-saved as JPEG at quality 75"),
    "JPEG quality 95": (lambda rgb: _degrade().jpeg(rgb, 95), "re-saved as JPEG at quality 95"),
    "half size": (lambda rgb: _degrade().resize(rgb, 0.5), "shrunk to half size"),
    "double size": (lambda rgb: _degrade().resize(rgb, 2.0), "enlarged to double size"),
    "cropped 5%": (lambda rgb: _degrade().crop(rgb, 0.05, 0.05, 0.05, 0.05), "cropped slightly"),
}
if tuple(COPIES) != PERTURBATIONS:  # one list of copies: the config's (which it validates), made and worded here
    raise RuntimeError("pipeline.verdict.COPIES differs from pipeline.config.STABILITY_COPIES")


def copies_of(names) -> list[str]:
    """The stability-check copies named in ``names`` (any iterable of :data:`PERTURBATIONS` entries), once each, in
    :data:`PERTURBATIONS` order: the same copies in another order are the same check. Raises ``ValueError``
    for a name that is not a copy."""
    names = list(names)
    unknown = [n for n in names if n not in PERTURBATIONS]
    if unknown:
        raise ValueError(f"unknown stability-check copies {unknown}; known: {', '.join(PERTURBATIONS)}")
    return [n for n in PERTURBATIONS if n in names]


def perturbations(rgb: np.ndarray, names=PERTURBATIONS) -> list[np.ndarray]:
    """The stability check's variants of an (H, W, 3) uint8 face crop: the copies named in ``names``
    (default: all of :data:`PERTURBATIONS`), in :data:`PERTURBATIONS` order, each (h, w, 3) uint8. JPEG copies are
    re-encoded with Pillow; half and double size are bicubic (antialiased when shrinking); "cropped 5%" cuts 5% of
    the side from every edge (:mod:`pipeline.degrade`). Raises ``ValueError`` for a name that is not a copy."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    return [COPIES[name][0](rgb) for name in copies_of(names)]


def decide(policy: VerdictPolicy, p_raw: float, p_perturbed=None, out_of_distribution: bool = False,
           kind: str | None = None, perturbed_kinds=None) -> dict[str, Any]:
    """The three-way verdict on one face. ``p_raw``: the verdict model's raw p(fake) of the face;
    ``p_perturbed``: its raw p(fake) of each :func:`perturbations` variant, one per ``policy.stability_copies`` in
    that order (None: no stability check; ``ValueError`` when their number differs);
    ``out_of_distribution``: the face looks unlike the training photos (:meth:`VerdictPolicy.out_of_distribution`);
    ``kind``/``perturbed_kinds``: the router's kind of the face and of each variant (None: the pooled
    operating point). A flip is a variant that, judged on its own (at its kind's point, by the band
    rule), would get the opposite answer: real for a face on the fake side or fake for one on the real
    side, landing more than ``policy.flip_margin`` band half-widths (log-odds) past its threshold; a variant that
    lands in its unsure band (or, with a margin above 1, short of that margin) is not a flip.
    Returns ``verdict`` (fake / real / unsure), ``p_fake`` (calibrated), ``p_raw``,
    ``threshold`` (calibrated), ``kind`` (whose operating point judged it, None: the pooled one),
    ``reasons`` (plain words, empty when decided), ``headline`` and ``unstable_under``."""
    kinds = None if kind is None else np.array([kind])
    z = float(policy.margin(np.array([p_raw]), kinds)[0])
    p = float(policy.calibrated(np.array([p_raw]), kinds)[0])
    side = FAKE if z >= 0 else REAL
    reasons, flips = [], []
    if policy.uninformative_at(np.array([p_raw]), kinds)[0]:
        reasons.append(CHANCE_REASON)
    elif abs(z) <= float(policy.bands(np.array([p_raw]), kinds)[0]):
        reasons.append(BAND_REASON)
    if out_of_distribution:
        reasons.append(OOD_REASON)
    if p_perturbed is not None and len(p_perturbed):
        pp = np.asarray(p_perturbed, dtype=np.float64)
        names = policy.stability_copies
        if len(pp) != len(names):
            raise ValueError(f"{len(pp)} stability-check scores for the policy's {len(names)} copies ({', '.join(names)})")
        zs, bands = policy.margin(pp, perturbed_kinds), policy.bands(pp, perturbed_kinds)
        decided = (np.abs(zs) > policy.flip_margin * bands) & ~policy.uninformative_at(pp, perturbed_kinds)
        flips = [names[i] for i, zi in enumerate(zs) if decided[i] and (zi >= 0) != (z >= 0)]
        if flips:
            reasons.append(FLIP_REASON.format(what=_join(flips)))
    verdict = UNSURE if reasons else side
    point = kind if kind is not None and kind in policy.by_kind else None
    threshold = float(policy.thresholds(np.array([p_raw]), kinds)[0])
    return {"verdict": verdict, "p_fake": round(p, 6), "p_raw": round(float(p_raw), 6),
            "threshold": round(threshold, 6), "kind": point,
            "reasons": reasons, "unstable_under": flips, "headline": headline(verdict, p, reasons, threshold)}


def _join(items: list[str]) -> str:
    items = [COPIES[i][1] for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def headline(verdict: str, p_fake: float, reasons: list[str] | None = None, threshold: float | None = None) -> str:
    """"Likely fake — 91%", "Likely real — 8% fake" or "Can't tell: <reasons>". A face called real although its
    calibrated probability of "fake" is 50% or more (the operating point keeps real photos from being called fake,
    so its line can sit above 50%) says so: "Likely real — 80% fake, under the 88% needed to call it fake"."""
    if verdict == FAKE:
        return f"Likely fake — {p_fake:.0%}"
    if verdict == REAL:
        if threshold is not None and p_fake >= 0.5:
            return f"Likely real — {p_fake:.0%} fake, under the {threshold:.0%} needed to call it fake"
        return f"Likely real — {p_fake:.0%} fake"
    return "Can't tell: " + "; ".join(reasons or [BAND_REASON])


def error_rate_words(policy: VerdictPolicy) -> str:
    """The policy's false-accusation rate in words, from the validation split: pooled and the worst dataset."""
    pooled = policy.validation_row("all")
    per_set = [r for r in policy.validation if r["scope"] != "all" and r.get("fpr_decided") is not None]
    if pooled is not None and pooled.get("coverage") == 0:
        return ("On the validation split the verdict model could not tell real from fake, so every photo gets "
                "'Can't tell'.")
    if pooled is None or pooled.get("fpr_decided") is None:
        return "Its false-accusation rate is unknown (no real image of the validation split got an answer)."
    worst = max(per_set, key=lambda r: r["fpr_decided"]) if per_set else pooled
    return (f"At this setting about {round(pooled['fpr_decided'] * 1000)} in 1,000 real photos are wrongly "
            f"called fake (at most {round(worst['fpr_decided'] * 1000)} in 1,000 on any one data set: "
            f"{worst['scope']}), and {pooled['coverage']:.0%} of photos get a real-or-fake answer; "
            f"measured on the validation split ({pooled['n']} images), not on your photos.")


def threshold_words(policy: VerdictPolicy) -> str:
    """The threshold(s) in words: the pooled one, and each kind's when the policy has per-kind points."""
    rule = (f"chosen so that at most {policy.max_false_positive_rate:.0%} of the real validation photos of "
            f"every data set are called fake")
    if not policy.by_kind:
        return f"threshold {policy.threshold:.3f} on the calibrated probability, {rule}"
    kinds = ", ".join(f"{k} {p['threshold']:.3f}" for k, p in sorted(policy.by_kind.items()))
    return (f"one threshold per kind of image the router takes a face for ({kinds}; {policy.threshold:.3f} "
            f"for any other), each on that kind's own calibrated probability and {rule} among the validation "
            f"photos of that kind")


def fakes_missed_words(policy: VerdictPolicy) -> str:
    """What a "real" answer is worth, in words: the share of validation fakes caught among those decided,
    and the data sets the verdict learnt its fakes from (its validation rows' scopes): fakes made another
    way can pass as real (bench_verdict part 4: of the fake faces from Celeb-DF and FaceForensics++ clips,
    which no model saw, `default-c413799581c2` called 2 of 39 decided fake and `best` 2 of 30). "" without
    validation rows."""
    pooled = policy.validation_row("all")
    if pooled is None or pooled.get("recall_fake_decided") is None:
        return ""
    sets = sorted(r["scope"] for r in policy.validation if r["scope"] != "all")
    learnt = (f" It learnt fakes only from {', '.join(sets)}: fakes made another way (other generators or "
              f"face-swap tools) can pass as real." if sets else "")
    return (f"Of the fakes it decides on, it catches {pooled['recall_fake_decided']:.0%} on validation; a "
            f"'real' answer is not proof that a photo is genuine.{learnt}")


# --------------------------------------------------------------------------- the run's policy


def policy_path(run_dir: Path, model: str) -> Path:
    return store.model_dir(Path(run_dir), model) / VERDICT_FILE


def verdict_model_name(run_dir: Path) -> str | None:
    """The model whose scores the verdict is built on: the combined model when the run has one, else
    the finished detector of the run's config (any kind) with the best validation ROC-AUC; None when nothing
    is finished."""
    from pipeline.detectors import combined as ensemble

    run_dir = Path(run_dir)
    name = ensemble.combiner_name(run_dir)
    if name is not None:
        return name
    best, best_auc = None, -1.0
    run_json = artifacts.read_json(run_dir / store.RUN_JSON)
    for m in run_json.get("models", []):
        folder = store.model_dir(run_dir, m)
        if not store.is_model_done(run_dir, m) or not (folder / store.PREDICTIONS).is_file():
            continue
        auc = (artifacts.read_json(folder / store.METRICS).get("validation") or {}).get("roc_auc")
        if auc is not None and auc > best_auc:
            best, best_auc = m, float(auc)
    return best


def policy_key(run_dir: Path, model: str, settings: dict[str, Any]) -> str:
    """Changes when the verdict model (or a member) is retrained or refitted, or the settings change."""
    from pipeline.detectors import combined as ensemble

    stamp = ensemble.combiner_stamp(run_dir, model) if model in ensemble.COMBINERS else \
        store.model_stamp(run_dir, model)
    return artifacts.stable_hash({"model": model, "stamp": stamp, "settings": settings, "v": FORMAT})[:16]


def settings_of(cfg) -> dict[str, Any]:
    """The ``[verdict]`` settings of a run config that a policy (and its key) depend on."""
    v = cfg.verdict
    out = {"max_false_positive_rate": v.max_false_positive_rate, "unsure_share": v.unsure_share,
           "calibration": v.calibration, "stability": v.stability, "per_kind": v.per_kind}
    margin = float(v.flip_margin)  # 3 and 3.0 in a config are one setting
    if margin != 1.0:  # added later: at its default it stays out, so policies fitted before keep their key
        out["flip_margin"] = margin
    copies = copies_of(v.stability_copies)
    if copies != list(PERTURBATIONS):  # added later: with every copy it stays out, as flip_margin does at 1
        out["stability_copies"] = copies
    return out


def copies_words(policy: VerdictPolicy) -> str:
    """The policy's stability-check copies in plain words: "re-saved as JPEG at quality 75 or shrunk to half size"."""
    return _join(list(policy.stability_copies))


class PolicyError(ValueError):
    """The run has no usable verdict policy; the message says what to run."""


def load_policy(run_dir: Path, model: str | None = None) -> VerdictPolicy:
    """The run's verdict policy (of ``model``, default :func:`verdict_model_name`). Raises
    :class:`PolicyError` when it was never fitted, was fitted by an older version, or its model has
    been retrained since."""
    run_dir = Path(run_dir)
    model = model or verdict_model_name(run_dir)
    if model is None:
        raise PolicyError(f"run {run_dir.name} has no finished model to give a verdict")
    path = policy_path(run_dir, model)
    if not path.is_file():
        raise PolicyError(f"run {run_dir.name} has no verdict policy for {model} (made by an older version): "
                          f"build it with `python -m pipeline train` (a cached run only fits the policy)")
    raw = artifacts.read_json(path)
    if raw.get("format") != FORMAT:
        raise PolicyError(f"the verdict policy of run {run_dir.name} was made by an older version: refit it "
                          f"with `python -m pipeline train`")
    from pipeline.config_load import from_json_dict

    cfg = from_json_dict(artifacts.read_json(run_dir / store.RUN_JSON)["config"])
    if raw.get("key") != policy_key(run_dir, model, settings_of(cfg)):
        raise PolicyError(f"the verdict policy of run {run_dir.name} is stale ({model} or one of its members was "
                          f"refitted since, or the run's [verdict] settings changed): refit it with "
                          f"`python -m pipeline train`")
    fields = {f for f in VerdictPolicy.__dataclass_fields__} - set(NOT_IN_JSON)
    try:
        policy = VerdictPolicy(**{k: v for k, v in raw.items() if k in fields})
    except (TypeError, ValueError) as exc:  # e.g. a copy this version does not make
        raise PolicyError(f"the verdict policy of run {run_dir.name} cannot be read ({exc}): refit it with "
                          f"`python -m pipeline train`") from exc
    if policy.ood_threshold and (path.parent / OOD_FILE).is_file():
        policy.ood = artifacts.read_npy(path.parent / OOD_FILE)
    if policy.ood_clip_threshold and (path.parent / OOD_CLIP_FILE).is_file():
        policy.ood_clip = artifacts.read_npy(path.parent / OOD_CLIP_FILE)
    return policy
