"""Detectors: every scorer of a run behind one small protocol, and a registry of detector kinds.

A *detector* scores RGB images with a probability of "fake" (:class:`Detector`). A *kind* says how
detectors of one family are trained into a run folder and loaded back (:class:`Kind`):

============  ================================================================  ==========================
kind          what it is                                                        module
============  ================================================================  ==========================
keras         a Keras model of the zoo (:mod:`pipeline.models`), end to end      ``detectors/keras.py``
pca_svm       a PCA + SVM probe on a Keras model's embedding                     ``detectors/pca_svm.py``
combined      the run's combined models (mean, stacked, routed) over members     ``detectors/combined.py``
clip_linear   frozen CLIP ViT-B/16 (ONNX) + a linear or RBF-SVM head (UnivFD)   ``detectors/clip_linear.py``
============  ================================================================  ==========================

Adding a detector of a new kind is one module in this package that calls :func:`register_kind` with its
``train`` and ``load`` functions, plus ``kind = "<name>"`` in a ``[[models]]`` entry of the config
(``tests/test_detector_kinds.py`` registers a small one and runs it through train, evaluate and predict).
Every module of the package is imported with it, so registration happens on import.

The train, evaluate, robustness and predict paths, the Check page and the combined models load detectors
with :func:`load` and call :meth:`Detector.predict_proba` only; code that needs a Keras graph (Grad-CAM,
embeddings) checks ``detector.kind == "keras"``.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import pandas as pd

from pipeline import store
from pipeline.progress import ProgressFn


@runtime_checkable
class Detector(Protocol):
    """What every scorer of a run offers.

    ``name``: its model name in the run (the folder ``models/<name>``); ``kind``: its :class:`Kind`;
    ``threshold``: the p(fake) at or above which it says "fake", chosen on the validation split;
    ``image_size``: the square side in pixels it resizes every image to (``None``: it preprocesses images
    itself, e.g. CLIP's resize-and-centre-crop to 224 px).
    """

    name: str
    kind: str
    threshold: float
    image_size: int | None

    def predict_proba(self, rgb_images: Sequence[np.ndarray]) -> np.ndarray:
        """(n,) float64 probabilities of "fake" for (H, W, 3) uint8 RGB images (0-255) of any size."""
        ...


@dataclass
class TrainContext:
    """What a kind's ``train`` gets: the spec of the detector, the run, the manifest (rows in split order
    as the run wrote it) and ``images_at(size) -> (N, size, size, 3) float32`` 0-255 arrays of every manifest
    row (decoded once per size and cached), plus a progress callback and a log."""

    spec: Any  # pipeline.config.ModelSpec
    cfg: Any  # pipeline.config.RunConfig
    run_dir: Path
    manifest: pd.DataFrame
    images_at: Callable[[int], np.ndarray]
    progress: ProgressFn = None
    log: Callable[[str], None] = print


@dataclass(frozen=True)
class Kind:
    """One family of detectors: ``train(ctx) -> metrics`` writes ``models/<spec.name>/`` through
    :func:`pipeline.store.write_model`; ``load(run_dir, name) -> Detector`` reads it back without running code
    from the folder (Keras safe mode, skops trusted types, JSON)."""

    name: str
    train: Callable[[TrainContext], dict] | None
    load: Callable[[Path, str], Detector]
    description: str


KINDS: dict[str, Kind] = {}


def register_kind(name: str, *, load: Callable[[Path, str], Detector],
                  train: Callable[[TrainContext], dict] | None = None, description: str = "") -> Kind:
    """Add a kind to :data:`KINDS` (``train`` None: its detectors are written by a step of the run, e.g. the
    PCA-SVM probes by the embedding step). Raises ValueError when ``name`` is taken by another module."""
    if name in KINDS and KINDS[name].load.__module__ != load.__module__:
        raise ValueError(f"detector kind {name!r} is registered twice ({KINDS[name].load.__module__} and "
                         f"{load.__module__})")
    KINDS[name] = Kind(name=name, train=train, load=load, description=description)
    return KINDS[name]


def kind(name: str) -> Kind:
    """The registered kind ``name``; KeyError naming the registered kinds."""
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown detector kind {name!r}; registered kinds: {', '.join(sorted(KINDS))}") from None


def kind_of_folder(run_dir: str | Path, name: str) -> str:
    """The kind of the finished model folder ``models/<name>`` (metrics.json's ``kind``; folders written
    before kinds were recorded: "keras" when they hold a model.keras)."""
    metrics = store.read_metrics(run_dir, name)
    found = metrics.get("kind")
    if found == "ensemble":
        return "combined"
    if found:
        return str(found)
    if store.model_file(run_dir, name, store.KERAS_MODEL).is_file():
        return "keras"
    raise store.StaleRunError(f"model {name!r} of run {Path(run_dir).name} does not say what kind of detector "
                              f"it is: it was made by an older version; retrain with --force")


def load(run_dir: str | Path, name: str) -> Detector:
    """Load the finished detector ``models/<name>`` of a run. Raises KeyError when it is not finished,
    :class:`pipeline.store.StaleRunError` for an old folder, ValueError when it cannot be used."""
    run_dir = Path(run_dir)
    if not store.is_model_done(run_dir, name):
        raise KeyError(f"model {name!r} of run {run_dir.name} is not finished; finished: "
                       f"{', '.join(store.done_models(run_dir)) or 'none'}")
    return kind(kind_of_folder(run_dir, name)).load(run_dir, name)


def config_detectors(run_dir: str | Path) -> list[str]:
    """The finished detectors the run's config trains (run.json's ``models``, any kind), in config order."""
    return [m for m in store.read_run_json(run_dir).get("models", []) if store.is_model_done(run_dir, m)]


def load_many(run_dir: str | Path, names: Sequence[str] | None = None) -> dict[str, Detector]:
    """``{name: Detector}`` of ``names`` (default: :func:`config_detectors`). KeyError for one not finished."""
    names = list(names) if names else config_detectors(run_dir)
    return {n: load(run_dir, n) for n in names}


def verdict(p_fake: float, threshold: float) -> str:
    """"fake" when ``p_fake >= threshold``, else "real"."""
    return "fake" if p_fake >= threshold else "real"


def score_arrays(rgb_images: Sequence[np.ndarray], detectors: dict[str, Detector]) -> dict[str, np.ndarray]:
    """``{name: (n,) p_fake}`` of each image by each detector, unrounded."""
    return {name: np.asarray(d.predict_proba(list(rgb_images)), dtype=np.float64) for name, d in detectors.items()}


def score_records(rgb_images: Sequence[np.ndarray], detectors: dict[str, Detector],
                  per_model: dict[str, np.ndarray] | None = None) -> list[list[dict]]:
    """For each image, one record per detector: model, p_fake, threshold, verdict (``per_model``: the
    :func:`score_arrays` of these images when already computed)."""
    per_model = score_arrays(rgb_images, detectors) if per_model is None else per_model
    return [[{"model": name, "p_fake": round(float(per_model[name][i]), 6), "threshold": round(d.threshold, 6),
              "verdict": verdict(float(per_model[name][i]), d.threshold)} for name, d in detectors.items()]
            for i in range(len(rgb_images))]


for _module in pkgutil.iter_modules(__path__):  # each module registers its kind
    importlib.import_module(f"{__name__}.{_module.name}")
