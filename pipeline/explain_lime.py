"""LIME for one image and one Keras model: which superpixels push P(fake) up or down.

Ribeiro, Singh, Guestrin, "Why Should I Trust You?" (KDD 2016), through the ``lime`` package's
``lime_image`` with a SLIC segmentation (scikit-image), with a progress callback and a sample budget
measured from the model's speed (:func:`lime_sample_budget`). Results are cached on disk per (run, model,
image sha256, num_samples) as ``.npz`` (never pickle) under ``<run>/explanations/<model>/``.
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.explain import _resize_map, _to_input, image_sha256, model_input_size
from pipeline.progress import ProgressFn, report

log = logging.getLogger(__name__)

LIME_DEFAULT_SAMPLES = 1000
LIME_MIN_SAMPLES = 200  # below this LIME's local fit over ~50 segments is mostly noise
LIME_BUDGET_SECONDS = 8.0  # the dashboard's default sample count keeps one LIME run within this
LIME_BATCH = 50  # perturbed images scored per call; the sample budget is a multiple of it and its timing probe
#                  traces this batch shape, so no LIME run traces a new one (200 took 16% longer: float64 copies)
EXPLANATIONS_DIR = "explanations"


@dataclass
class LimeResult:
    """LIME for one image and model.

    ``segments``: (S, S) int32 superpixel ids at the model's input size (S). ``weights[i]``: the
    linear weight of segment ``i`` for P(fake) (positive pushes toward fake). ``heatmap``: those
    weights painted on the segments and resized (nearest) to the image's (H, W), in -1..1 (divided by
    the largest absolute weight).
    """

    model: str
    segments: np.ndarray
    weights: np.ndarray
    heatmap: np.ndarray
    p_fake: float
    score: float  # R^2 of LIME's local linear model
    num_samples: int
    cached: bool = False
    seconds: float = 0.0
    cache_path: Path | None = None
    note: str | None = field(default=None)

    def top_segments(self, k: int = 5, positive: bool = True) -> list[int]:
        order = np.argsort(-self.weights if positive else self.weights)
        return [int(i) for i in order[:k] if (self.weights[i] > 0) == positive and self.weights[i] != 0]


# --------------------------------------------------------------------------- LIME


def _lime_cache_path(run_dir: Path, model_name: str, sha: str, num_samples: int) -> Path:
    return Path(run_dir) / EXPLANATIONS_DIR / model_name / f"lime_{sha[:32]}_{num_samples}.npz"


def _model_stamp(run_dir: Path | None, model_name: str) -> str:
    """Changes when the model is retrained (so a stale LIME cache entry is not reused)."""
    from pipeline import store

    return "" if run_dir is None else store.model_stamp(Path(run_dir), model_name)


def _load_lime_cache(path: Path, stamp: str, shape: tuple[int, int]) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        if path.exists():
            log.warning("ignoring unreadable LIME cache %s (%s)", path, exc)
        return None
    if str(data.get("model_stamp", "")) != stamp:
        return None
    return data


def _save_lime_cache(path: Path, **arrays) -> Path | None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
        return path
    except OSError as exc:  # a read-only run folder: explain anyway, just do not cache
        log.warning("could not write the LIME cache %s (%s)", path, exc)
        return None


def lime_explain(model, rgb: np.ndarray, *, num_samples: int = LIME_DEFAULT_SAMPLES, run_dir: Path | str | None = None,
                 model_name: str | None = None, progress: ProgressFn = None, n_segments: int = 50,
                 compactness: float = 10.0, batch_size: int = LIME_BATCH, seed: int = 0,
                 use_cache: bool = True) -> LimeResult:
    """LIME for one image: SLIC superpixels at the model's input size, ``num_samples`` perturbed copies
    scored in batches of ``batch_size`` through the compiled predict path.

    ``progress(stage, done, total)`` is called as the samples are scored (LIME has no hook: the
    classifier function counts). With ``run_dir`` the result is cached in
    ``<run_dir>/explanations/<model>/lime_<image sha256>_<num_samples>.npz``.
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples}")
    from pipeline.detectors.keras_model import predict_batch

    name = model_name or model.name
    rgb = np.asarray(rgb, dtype=np.uint8)
    size = model_input_size(model)
    hw = rgb.shape[:2]
    stage = f"LIME {name}"
    sha = image_sha256(rgb)
    stamp = _model_stamp(Path(run_dir) if run_dir else None, name)
    path = _lime_cache_path(Path(run_dir), name, sha, num_samples) if run_dir else None
    if path is not None and use_cache:
        data = _load_lime_cache(path, stamp, hw)
        if data is not None:
            report(progress, stage, num_samples, num_samples)
            segments, weights = data["segments"], data["weights"].astype(np.float32)
            return LimeResult(name, segments, weights, _lime_heatmap(segments, weights, hw), float(data["p_fake"]),
                              float(data["score"]), num_samples, cached=True, cache_path=path)

    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    # lime 0.2.0.1 wraps its sampling loop in an unconditional tqdm bar (no option to turn it off);
    # our progress callback reports instead.
    lime_image.tqdm = _no_bar

    x = _to_input(rgb, size)[0]
    done = [0]
    report(progress, stage, 0, num_samples)

    def classifier(batch: np.ndarray) -> np.ndarray:
        p = predict_batch(model, np.asarray(batch, dtype=np.float32)).astype(np.float64).reshape(-1, 1)
        done[0] = min(num_samples, done[0] + len(batch))
        report(progress, stage, done[0], num_samples)
        return np.hstack([1.0 - p, p])

    t0 = time.perf_counter()
    segmenter = SegmentationAlgorithm("slic", n_segments=n_segments, compactness=compactness, sigma=1,
                                      start_label=0, random_seed=seed)
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    # LIME segments the image given to it: pass uint8-valued floats, scored at the model's size.
    exp = explainer.explain_instance(x.astype(np.float64), classifier, labels=(1,), top_labels=None, hide_color=None,
                                     num_samples=num_samples, batch_size=batch_size, segmentation_fn=segmenter,
                                     random_seed=seed)
    segments = np.asarray(exp.segments, dtype=np.int32)
    n_seg = int(segments.max()) + 1
    weights = np.zeros(n_seg, dtype=np.float32)
    for seg, w in exp.local_exp[1]:
        weights[int(seg)] = w
    p_fake = float(predict_batch(model, x[None])[0])
    score = float(exp.score[1] if isinstance(exp.score, dict) else exp.score)
    seconds = time.perf_counter() - t0
    report(progress, stage, num_samples, num_samples)
    saved = None
    if path is not None:
        saved = _save_lime_cache(path, segments=segments, weights=weights, p_fake=np.float64(p_fake),
                                 score=np.float64(score), num_samples=np.int64(num_samples),
                                 model_stamp=np.str_(stamp), image_sha256=np.str_(sha))
    return LimeResult(name, segments, weights, _lime_heatmap(segments, weights, hw), p_fake, score, num_samples,
                      cached=False, seconds=seconds, cache_path=saved)


def _perturbation_seconds(size: int, n: int = 6, grid: int = 7) -> float:
    """Seconds per sample that ``lime_image`` spends building one perturbed (size, size, 3) image:
    a float64 copy and, per hidden segment, a comparison over the whole segment map (its own loop,
    mirrored here on a ``grid`` x ``grid`` block segmentation with about half the segments hidden)."""
    import copy

    idx = np.arange(size) * grid // size
    segments = idx[:, None] * grid + idx[None, :]
    image = np.zeros((size, size, 3), dtype=np.float64)
    fudged = image + 1.0
    rows = np.random.default_rng(0).integers(0, 2, (n, grid * grid))
    t0 = time.perf_counter()
    for row in rows:
        temp = copy.deepcopy(image)
        mask = np.zeros(segments.shape, dtype=bool)
        for z in np.where(row == 0)[0]:
            mask[segments == z] = True
        temp[mask] = fudged[mask]
    return (time.perf_counter() - t0) / n


def lime_sample_budget(model, budget_seconds: float = LIME_BUDGET_SECONDS, max_samples: int = LIME_DEFAULT_SAMPLES,
                       min_samples: int = LIME_MIN_SAMPLES, probe: int = LIME_BATCH) -> tuple[int, float]:
    """How many LIME samples ``model`` takes within ``budget_seconds`` on this machine now:
    ``(samples, seconds per sample)``. A sample costs its scoring (timed on one batch of ``probe``
    images at the model's input size through the predict path LIME uses, after a warm-up call of
    the same shape: with the default ``probe`` = :data:`LIME_BATCH` that call also traces the shape of
    every batch of the LIME run, whose sample count is a multiple of 50) plus building the perturbed
    image (:func:`_perturbation_seconds`: at 256 px about as much as scoring it with a small CNN). The count is rounded down to a multiple of 50 and
    clipped to [``min_samples``, ``max_samples``], so a slow model may take longer than the budget
    at ``min_samples``; a machine busy with other work gives fewer samples. The budget covers this
    timing too (1-1.5 s on 2 busy cores: the warm-up call traces the predict function): LIME gets
    what is left, so one press of *Run LIME* stays within ``budget_seconds``."""
    from pipeline.detectors.keras_model import predict_batch

    start = time.perf_counter()
    size = model_input_size(model)
    x = np.full((probe, size, size, 3), 127.0, dtype=np.float32)
    predict_batch(model, x)  # warm-up: traces the predict function for this batch shape
    t0 = time.perf_counter()
    predict_batch(model, x)
    per_sample = (time.perf_counter() - t0) / probe + _perturbation_seconds(size)
    left = budget_seconds - (time.perf_counter() - start)
    samples = int(max(left, 0.0) / max(per_sample, 1e-6)) // 50 * 50
    return int(np.clip(samples, min_samples, max_samples)), per_sample


def _no_bar(iterable, *args, **kwargs):
    return iterable


def _lime_heatmap(segments: np.ndarray, weights: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    painted = weights[segments].astype(np.float32)
    peak = float(np.abs(painted).max())
    if peak > 0:
        painted /= peak
    return _resize_map(painted, hw, nearest=True)


def lime_boundaries(rgb: np.ndarray, result: LimeResult, top: int = 5) -> np.ndarray:
    """The image with the outlines of the ``top`` segments pushing toward fake (red) and real (blue)."""
    from skimage.segmentation import find_boundaries

    rgb = np.asarray(rgb, dtype=np.uint8).copy()
    hw = rgb.shape[:2]
    seg = _resize_map(result.segments.astype(np.float32), hw, nearest=True).astype(np.int32)
    for ids, colour in ((result.top_segments(top, True), (230, 40, 40)), (result.top_segments(top, False), (40, 80, 230))):
        if ids:
            edges = find_boundaries(np.isin(seg, ids), mode="inner")
            rgb[edges] = colour
    return rgb
