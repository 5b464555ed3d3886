"""One config object defines a run: the dataclasses of a run config and the part of it that decides the run id.

A run is described by a TOML file (see ``configs/``), read and checked by :mod:`pipeline.config_load`
(``[training]`` defaults, command-line overrides, validation). This module holds what that produces:
:class:`RunConfig` and its parts (:class:`ModelSpec`, :class:`Augmentation`, ...), :class:`ConfigError`,
and :func:`config_fingerprint`, the part of the config that decides the run id (see ``pipeline.artifacts``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.toml"
ARTIFACTS_ENV = "DEEPFAKE_LENS_ARTIFACTS"  # where runs are written and read (default: <repo>/artifacts)


@dataclass(frozen=True)
class DataSource:
    """A folder of labelled images. ``name`` tags its dataset (folder name when empty)."""

    path: str
    name: str = ""


@dataclass(frozen=True)
class Augmentation:
    """Training-time augmentation; never applied at evaluation."""

    flip: bool = True
    shift: float = 0.05  # fraction of the side, random translation
    zoom: float = 0.05  # fraction, random zoom in/out
    brightness: float = 0.1  # fraction of the value range
    jpeg_quality: tuple[int, int] | None = None  # e.g. (60, 100): random JPEG re-encoding
    # Degradations a shared photo goes through, each applied to a random share
    # (``degrade_probability``) of the training images: downscaling by a factor in
    # [downscale, 1] and back (antialiased), and a Gaussian blur of sigma in (0, blur_sigma] px.
    downscale: float = 0.0  # smallest factor, e.g. 0.5; 0 = off
    blur_sigma: float = 0.0  # largest sigma in pixels, e.g. 1.5; 0 = off
    degrade_probability: float = 0.25

    def enabled(self) -> bool:
        return bool(self.flip or self.shift or self.zoom or self.brightness or self.jpeg_quality
                    or self.downscale or self.blur_sigma)


@dataclass(frozen=True)
class EmbeddingConfig:
    """Penultimate embeddings, their projections, and the PCA-SVM trained on them (per model)."""

    enabled: bool = True
    models: tuple[str, ...] = ()  # which models get embeddings and a PCA-SVM row; empty = every model
    pca_components: int = 50  # fewer when the embedding is smaller
    umap: bool = True
    umap_neighbors: int = 15
    umap_min_dist: float = 0.1
    max_points: int = 0  # 0 = every image; otherwise a fixed-seed stratified subsample for projections
    svm: bool = True  # add "<model>+pca_svm" to the comparison
    svm_kernel: str = "poly"  # linear | poly | rbf | sigmoid (the original study: poly)
    svm_c: float = 1.0
    svm_degree: int = 3
    svm_gamma: str = "scale"
    svm_coef0: float = 0.0


@dataclass(frozen=True)
class ExperimentConfig:
    """``[experiments]``: search, ablation, ensemble, robustness, cross-dataset (``pipeline.experiments``).

    Not part of the run id: changing these never retrains the run's models; each experiment caches
    its own results under ``experiments/<name>/<hash of its settings>/``.
    """

    model: str = "custom_cnn"  # registry model of the ablation and the cross-dataset matrix
    image_size: int = 64  # their input size
    max_train_images: int = 0  # 0 = all; fixed-seed stratified cap of training images (ablation, cross-dataset)
    optimizers: tuple[str, ...] = ("sgd", "adam", "nadam", "rmsprop")  # ablation grid rows
    learning_rates: tuple[float, ...] = (1e-2, 1e-3, 1e-4)  # ablation grid columns
    ablation_epochs: int = 3
    search_tuner: str = "random"  # random | hyperband
    search_max_trials: int = 6  # RandomSearch trials (Hyperband: its own schedule up to search_epochs)
    search_epochs: int = 3  # epochs per trial (Hyperband: max epochs)
    search_image_size: int = 64
    search_max_train_images: int = 0  # 0 = all training images
    search_final_epochs: int = 8  # the best trial is retrained as model searched_cnn for this many epochs
    robustness: bool = False  # run the perturbation sweep after `train`
    robustness_max_images: int = 0  # 0 = the whole test split; else a fixed-seed stratified subsample
    jpeg_qualities: tuple[int, ...] = (95, 75, 50, 30)
    scales: tuple[float, ...] = (0.5, 0.25)  # down-then-up scaling factors
    blur_sigmas: tuple[float, ...] = (1.0, 2.0)  # Gaussian blur, pixels of the original image
    noise_sigmas: tuple[float, ...] = (5.0, 10.0)  # Gaussian noise, on the 0..255 scale
    normalise_qualities: tuple[int, ...] = (90,)  # shortcut check: every image resized to one size, one JPEG quality
    normalise_size: int = 256  # that one size (px, square)
    crossdataset: bool = False  # build the generalisation matrix after `train` (needs 2+ datasets)
    crossdataset_epochs: int = 3
    crossdataset_models: tuple[str, ...] = ()  # more rows of the matrix: detectors of the run re-fitted per data
                                               # set (kind clip_linear: a head per data set on cached embeddings)


STABILITY_COPIES = ("JPEG quality 75", "JPEG quality 95", "half size", "double size", "cropped 5%")
# The stability check's copies of a face (pipeline.verdict.perturbations), in their order; [verdict] stability_copies
# picks some of them.


@dataclass(frozen=True)
class VerdictConfig:
    """``[verdict]``: how the run's verdict model becomes a three-way answer (:mod:`pipeline.verdict`)."""

    max_false_positive_rate: float = 0.03  # at most this share of real images called fake, on every validation set
    unsure_share: float = 0.10  # the unsure band around the threshold holds this share of validation images
    calibration: str = "platt"  # platt | isotonic | none: fitted on the validation split
    stability: bool = True  # re-score every checked face re-encoded, rescaled and cropped; a flip means unsure
    flip_margin: float = 1.0  # a copy flips the answer when it lands this many band half-widths past the threshold
                              # on the other side (1: anywhere past the unsure band)
    stability_copies: tuple[str, ...] = STABILITY_COPIES  # which copies the stability check scores (each costs one
                                                          # more pass of every member, a CLIP encoding included)
    per_kind: bool = True  # routed verdict model: calibrator, threshold and band per kind of image the router picks
    members: tuple[str, ...] = ()  # the combined model's members (model names, or ["all"]); empty = no combined model
    routing: bool = True  # also ensemble_routed: per-dataset stackers mixed by a router (2+ datasets)
    router: str = "auto"  # the router's input: auto (clip when a member is a CLIP detector) | pixels | clip
    stacker_copies: int = 0  # the combined models' stackers also fit on this many augmented copies of each validation image
    stacker_augmentation: dict[str, Any] = field(default_factory=dict)  # those copies: changes to the run's [augmentation]


LR_SCHEDULES = ("constant", "cosine")  # ModelSpec.lr_schedule


@dataclass(frozen=True)
class ModelSpec:
    """How one registry model is built and trained."""

    name: str  # the model's name in the run (its folder); the registry model unless ``architecture`` is set
    image_size: int = 64
    epochs: int = 10
    batch_size: int = 32
    optimizer: str = "adam"  # adam | sgd | nadam | rmsprop | adamw
    learning_rate: float = 1e-3
    weights: str = "none"  # imagenet | none | <path to a weights file> (transfer models)
    fine_tune_epochs: int = 0  # transfer models: second phase with the top of the backbone unfrozen
    fine_tune_learning_rate: float = 1e-4
    fine_tune_layers: int = 0  # how many backbone layers to unfreeze; 0 = all
    early_stopping_patience: int = 3  # epochs without val AUC improvement; best weights restored
    label_smoothing: float = 0.0
    lr_schedule: str = "constant"  # constant | cosine: each phase's rate decays to 1% of it along a cosine
    balance_datasets: bool = False  # weight training images so every (dataset, label) group counts the same
    max_train_images: int = 0  # 0 = all; otherwise a fixed-seed stratified subsample per epoch set
    params: dict[str, Any] = field(default_factory=dict)  # model-specific options
    architecture: str = ""  # registry model to build; empty = ``name`` (set it to train one architecture twice)
    datasets: tuple[str, ...] = ()  # a specialist: train and early-stop on these datasets only; empty = all
    augmentation: dict[str, Any] = field(default_factory=dict)  # this model's changes to the run's [augmentation]
    kind: str = "keras"  # the detector kind (pipeline.detectors.KINDS): keras | clip_linear | ...

    @property
    def label(self) -> str:
        return self.name

    @property
    def registry_name(self) -> str:
        """The registry model this entry builds."""
        return self.architecture or self.name


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run.

    Identity (what the run id hashes, :func:`config_fingerprint`): ``name``, ``data`` (by name; the manifest
    hash covers the files), ``models``, ``split``, ``seed``, ``max_images_per_class``, ``augmentation``,
    ``embeddings``, ``threshold_rule``, ``max_image_pixels`` and ``verdict`` (the combined model's members,
    stackers and router; not the three-way verdict's settings, :data:`POLICY_SETTINGS_IN_ID`). Environment
    (never in the id): ``artifacts_dir`` and ``strategy``.
    Analyses (cached under their own keys, never in the id): ``experiments``.
    """

    name: str = "default"
    data: tuple[DataSource, ...] = ()
    models: tuple[ModelSpec, ...] = ()
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 42
    max_images_per_class: int = 0  # 0 = all; cap per (dataset, label) with a fixed seed
    augmentation: Augmentation = Augmentation()
    embeddings: EmbeddingConfig = EmbeddingConfig()
    threshold_rule: str = "youden"  # youden (max TPR-FPR = max balanced accuracy) | f1 | fixed
    artifacts_dir: str = "artifacts"
    max_image_pixels: int = 40_000_000
    experiments: ExperimentConfig = ExperimentConfig()
    verdict: VerdictConfig = VerdictConfig()
    strategy: str = "default"  # tf.distribute strategy for training: default | mirrored | multi_worker

    def model(self, name: str) -> ModelSpec:
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(f"model {name!r} is not in this run's config ({', '.join(self.model_names)})")

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def embedding_model_names(self) -> list[str]:
        """The run's models that get embeddings and a PCA-SVM row (``[embeddings] models``; empty = all)."""
        if not self.embeddings.enabled:
            return []
        wanted = set(self.embeddings.models)
        return [m.name for m in self.models if m.kind == "keras" and (not wanted or m.name in wanted)]


class ConfigError(ValueError):
    """A config file or flag that cannot define a run; the message says what to fix."""



_AUGMENTATION_FIELDS = {f.name for f in dataclasses.fields(Augmentation)}


def model_augmentation(cfg: RunConfig, spec: ModelSpec) -> Augmentation:
    """The augmentation ``spec`` trains with: the run's ``[augmentation]`` with the model's own
    ``augmentation = {...}`` changes applied."""
    if not spec.augmentation:
        return cfg.augmentation
    return dataclasses.replace(cfg.augmentation,
                               **augmentation_settings(spec.augmentation, f"model {spec.name!r}: augmentation"))


def stacker_augmentation(cfg: RunConfig | dict[str, Any]) -> Augmentation:
    """How the augmented validation copies the stackers fit on are drawn (``[verdict] stacker_copies``): the run's
    ``[augmentation]`` with ``[verdict] stacker_augmentation = {...}`` changes applied. ``cfg``: a RunConfig or its
    JSON form (run.json's ``config``)."""
    d = to_dict(cfg) if isinstance(cfg, RunConfig) else cfg
    base = Augmentation(**augmentation_settings(d.get("augmentation") or {}, "[augmentation]"))
    return dataclasses.replace(base, **augmentation_settings((d.get("verdict") or {}).get("stacker_augmentation") or {},
                                                             "[verdict] stacker_augmentation"))


def augmentation_settings(table: Any, where: str) -> dict[str, Any]:
    """Keyword arguments of :class:`Augmentation` from a TOML/JSON table (the run's
    ``[augmentation]`` or a model's ``augmentation = {...}``); ConfigError naming ``where``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table such as {{ downscale = 0.5, blur_sigma = 1.5 }}, got {table!r}")
    unknown = set(table) - _AUGMENTATION_FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}; known: {sorted(_AUGMENTATION_FIELDS)}")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in table.items()}



def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))



def config_fingerprint(cfg: RunConfig) -> dict[str, Any]:
    """What decides the run id: everything but where artifacts are written and the data folders'
    location (the data manifest's hash covers the data itself)."""
    d = to_dict(cfg)
    d.pop("artifacts_dir", None)
    d.pop("experiments", None)  # experiments cache their own results; they never change the models
    d.pop("strategy", None)  # where training runs (devices) does not change what is trained
    d["data"] = [src["name"] for src in d["data"]]
    d["models"] = [spec_fingerprint(m) for m in cfg.models]
    d["augmentation"] = augmentation_fingerprint(cfg.augmentation)
    if any(spec.kind == "clip_linear" for spec in cfg.models):
        d["clip_embeddings"] = CLIP_EMBEDDINGS_VERSION
    verdict = dataclasses.replace(cfg.verdict, **POLICY_SETTINGS_IN_ID)
    if verdict == dataclasses.replace(VerdictConfig(), **POLICY_SETTINGS_IN_ID):  # added later: runs with the
        d.pop("verdict", None)                                                    # default verdict keep their ids
    else:
        d["verdict"] = json.loads(json.dumps(dataclasses.asdict(verdict)))
        for key, default in LATER_VERDICT_OPTIONS.items():
            if d["verdict"].get(key) == default:
                d["verdict"].pop(key)
    return d


CLIP_EMBEDDINGS_VERSION = 2
# What pipeline.clip's embeddings are: 2 = exact int8 arithmetic on every x86 CPU (pipeline.clip.load_encoder). Version
# 1 was wrong on CPUs without VNNI (saturated sums, silently), so a run with a CLIP model hashes the version: its CLIP
# heads, router and look-alike score are refitted rather than reused, and the embedding cache moves to a new folder.


def recorded_clip_embeddings(run_json: dict[str, Any]) -> int:
    """The CLIP embedding version a run's ``run.json`` records (:data:`CLIP_EMBEDDINGS_VERSION` when it was
    made); 1 when the field is absent or not an int: runs made before the version was recorded embedded
    with version 1."""
    version = run_json.get("clip_embeddings", 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


POLICY_SETTINGS_IN_ID = {"max_false_positive_rate": 0.03, "unsure_share": 0.10, "calibration": "platt",
                         "stability": True, "per_kind": True, "flip_margin": 1.0,
                         "stability_copies": STABILITY_COPIES}
# The three-way verdict's settings (pipeline.verdict.settings_of) train nothing: they only refit verdict.json, which
# has its own key (pipeline.verdict.policy_key). So they never change the run id: it hashes them at these fixed
# values (their defaults when ids first hashed them, so runs made before keep their ids), and changing one
# re-uses every trained model and refits only the verdict.

LATER_VERDICT_OPTIONS = {"per_kind": True, "router": "auto", "stacker_copies": 0, "stacker_augmentation": {},
                         "flip_margin": 1.0, "stability_copies": list(STABILITY_COPIES)}  # [verdict] options added
# after run ids hashed the section (values as in JSON, lists not tuples): at their
# default they stay out of the id, so runs made before them keep theirs


def spec_fingerprint(spec: ModelSpec, later_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON form of ``spec`` that ids depend on. Options added later (``later_options``, default
    :data:`LATER_SPEC_OPTIONS`) are left out while they keep their default, so runs that do not use
    them keep their ids."""
    d = json.loads(json.dumps(dataclasses.asdict(spec)))
    for key, default in (LATER_SPEC_OPTIONS if later_options is None else later_options).items():
        if d.get(key) == default:
            d.pop(key)
    return d


# ModelSpec options added after the experiments' cache keys were first written (those keys hash the
# rest of the spec whole), then all options added after run ids were: each with its default.
OPTIONS_AFTER_EXPERIMENT_KEYS = {"lr_schedule": "constant"}
LATER_SPEC_OPTIONS = {"architecture": "", "datasets": [], "augmentation": {}, "kind": "keras",
                      **OPTIONS_AFTER_EXPERIMENT_KEYS}


def augmentation_fingerprint(aug: Augmentation) -> dict[str, Any]:
    """The JSON form of ``aug`` that ids depend on; the degradation options (added later) are left
    out while they are off, so runs that do not use them keep their ids and their trained models."""
    d = json.loads(json.dumps(dataclasses.asdict(aug)))
    if not aug.downscale and not aug.blur_sigma:
        for key in _LATER_AUGMENTATION_OPTIONS:
            d.pop(key)
    return d


_LATER_AUGMENTATION_OPTIONS = ("downscale", "blur_sigma", "degrade_probability")
