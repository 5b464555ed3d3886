"""One config object defines a run.

A run is described by a TOML file (see ``configs/``). ``[training]`` holds defaults that every
``[[models]]`` entry inherits and may override. Flags of ``python -m pipeline train`` override
the file (:func:`apply_overrides`). :func:`config_fingerprint` is the part of the config that
decides the run id (see ``pipeline.artifacts``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tomllib
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


def _section(cls, raw: dict[str, Any], name: str):
    """A ``[name]`` table of the TOML as the dataclass ``cls``: unknown keys are an error, lists become tuples."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown [{name}] setting(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items()})


def _embedding_config(raw: dict[str, Any]) -> EmbeddingConfig:
    return _section(EmbeddingConfig, raw, "embeddings")


MOVED_TO_VERDICT = {"ensemble_members": "members", "ensemble_routing": "routing"}  # [experiments] -> [verdict]


def _experiment_config(raw: dict[str, Any]) -> ExperimentConfig:
    moved = [k for k in MOVED_TO_VERDICT if k in raw]
    if moved:
        raise ConfigError(f"[experiments] {', '.join(moved)} moved: the combined model is part of the run now; write "
                          + ", ".join(f"{MOVED_TO_VERDICT[k]} = ..." for k in moved) + " under [verdict]")
    return _section(ExperimentConfig, raw, "experiments")


@dataclass(frozen=True)
class VerdictConfig:
    """``[verdict]``: how the run's verdict model becomes a three-way answer (:mod:`pipeline.verdict`)."""

    max_false_positive_rate: float = 0.03  # at most this share of real images called fake, on every validation set
    unsure_share: float = 0.10  # the unsure band around the threshold holds this share of validation images
    calibration: str = "platt"  # platt | isotonic | none: fitted on the validation split
    stability: bool = True  # re-score every checked face re-encoded, rescaled and cropped; a flip means unsure
    per_kind: bool = True  # routed verdict model: calibrator, threshold and band per kind of image the router picks
    members: tuple[str, ...] = ()  # the combined model's members (model names, or ["all"]); empty = no combined model
    routing: bool = True  # also ensemble_routed: per-dataset stackers mixed by a router (2+ datasets)


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
    ``embeddings``, ``threshold_rule``, ``max_image_pixels`` and ``verdict`` (the combined model's members and
    the three-way verdict's settings). Environment (never in the id): ``artifacts_dir`` and ``strategy``.
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


_SPEC_FIELDS = {f.name for f in dataclasses.fields(ModelSpec)}


def _model_spec(entry: dict[str, Any], defaults: dict[str, Any]) -> ModelSpec:
    merged = {**defaults, **entry}
    unknown = set(merged) - _SPEC_FIELDS
    if unknown:
        raise ConfigError(f"unknown model setting(s) {sorted(unknown)} for model {merged.get('name')!r}; "
                          f"known: {sorted(_SPEC_FIELDS)}")
    if "name" not in merged:
        raise ConfigError("every [[models]] entry needs a name")
    if "datasets" in merged:
        merged["datasets"] = tuple(merged["datasets"])
    if merged.get("lr_schedule", "constant") not in LR_SCHEDULES:
        raise ConfigError(f"model {merged['name']!r}: lr_schedule must be one of {', '.join(LR_SCHEDULES)}, "
                          f"got {merged['lr_schedule']!r}")
    if "image_size" not in merged and merged.get("kind", "keras") == "keras":
        merged["image_size"] = registry_image_size(merged.get("architecture") or merged["name"])
    return ModelSpec(**merged)


def registry_image_size(name: str) -> int:
    """The registry's ``default_image_size`` of Keras model ``name`` (pixels): what a spec without
    ``image_size`` trains at; ModelSpec's default when ``name`` is not registered (validation then says so)."""
    from pipeline.models import REGISTRY  # late import: the registry imports keras

    entry = REGISTRY.get(name)
    return entry.default_image_size if entry is not None else ModelSpec.image_size


def _data_source(entry: Any, base: Path) -> DataSource:
    if isinstance(entry, str):
        entry = {"path": entry}
    path = Path(entry["path"]).expanduser()
    if not path.is_absolute():
        path = (base / path).resolve()
    return DataSource(path=str(path), name=entry.get("name", ""))


def from_dict(raw: dict[str, Any], base: Path = REPO_ROOT) -> RunConfig:
    """Build a config from parsed TOML. Relative data paths resolve against ``base``."""
    raw = dict(raw)
    defaults = dict(raw.pop("training", {}))
    models = tuple(_model_spec(dict(m), defaults) for m in raw.pop("models", []))
    data = tuple(_data_source(d, base) for d in raw.pop("data", []))
    aug = Augmentation(**augmentation_settings(raw.pop("augmentation", {}), "[augmentation]"))
    emb = _embedding_config(raw.pop("embeddings", {}) or {})
    raw["experiments"] = _experiment_config(raw.pop("experiments", {}) or {})
    raw["verdict"] = _section(VerdictConfig, raw.pop("verdict", {}) or {}, "verdict")
    if "split" in raw:
        raw["split"] = tuple(float(x) for x in raw["split"])
    known = {f.name for f in dataclasses.fields(RunConfig)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"unknown run setting(s) {sorted(unknown)}; known: {sorted(known)}")
    artifacts_dir = raw.pop("artifacts_dir", "") or os.environ.get(ARTIFACTS_ENV, "") or str(REPO_ROOT / "artifacts")
    if not Path(artifacts_dir).is_absolute():
        artifacts_dir = str((base / artifacts_dir).resolve())
    cfg = RunConfig(data=data, models=models, augmentation=aug, embeddings=emb, artifacts_dir=artifacts_dir, **raw)
    validate(cfg)
    return cfg


def load(path: str | Path = DEFAULT_CONFIG) -> RunConfig:
    path = Path(path)
    if not path.exists() and not path.suffix:
        path = CONFIG_DIR / f"{path}.toml"  # "full" -> configs/full.toml
    if not path.exists():
        raise ConfigError(f"config file {path} not found; configs shipped: "
                          f"{', '.join(p.stem for p in sorted(CONFIG_DIR.glob('*.toml')))}")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    raw.setdefault("name", path.stem)
    return from_dict(raw, base=REPO_ROOT)


def validate(cfg: RunConfig) -> None:
    from pipeline.model_names import registered_names  # the registry's names without importing keras

    REGISTRY = registered_names()

    if abs(sum(cfg.split) - 1.0) > 1e-6 or any(s <= 0 for s in cfg.split):
        raise ConfigError(f"split must be three positive fractions adding to 1, got {cfg.split}")
    from pipeline.detectors import KINDS

    for spec in cfg.models:
        if spec.kind != "keras":
            if spec.kind not in KINDS or KINDS[spec.kind].train is None:
                trainable = sorted(k for k, v in KINDS.items() if v.train is not None)
                raise ConfigError(f"model {spec.name!r}: unknown detector kind {spec.kind!r}; kinds: {', '.join(trainable)}")
            continue
        if spec.registry_name not in REGISTRY:
            what = f"architecture {spec.architecture!r} of model {spec.name!r}" if spec.architecture else f"model {spec.name!r}"
            raise ConfigError(f"unknown {what}; registered models: {', '.join(sorted(REGISTRY))}")
        if spec.architecture and spec.name in REGISTRY and spec.name != spec.architecture:
            raise ConfigError(f"{spec.name!r} is a registry model: give the {spec.architecture} entry another name")
        if spec.image_size < 16:
            raise ConfigError(f"{spec.name}: image_size must be at least 16, got {spec.image_size}")
    names = cfg.model_names
    if len(set(names)) != len(names):
        raise ConfigError(f"a model is listed twice: {names}")
    if cfg.threshold_rule not in {"youden", "f1", "fixed"}:
        raise ConfigError(f"threshold_rule must be youden, f1 or fixed, got {cfg.threshold_rule!r}")
    from pipeline.calibration import METHODS

    v = cfg.verdict
    if v.calibration not in METHODS:
        raise ConfigError(f"[verdict] calibration must be one of {', '.join(METHODS)}, got {v.calibration!r}")
    if not 0.0 <= v.max_false_positive_rate < 1.0 or not 0.0 <= v.unsure_share < 1.0:
        raise ConfigError("[verdict] max_false_positive_rate and unsure_share must be fractions in [0, 1), got "
                          f"{v.max_false_positive_rate} and {v.unsure_share}")
    if cfg.strategy not in {"default", "mirrored", "multi_worker"}:
        raise ConfigError(f"strategy must be default, mirrored or multi_worker, got {cfg.strategy!r}")
    if cfg.experiments.model not in REGISTRY:
        raise ConfigError(f"[experiments] model {cfg.experiments.model!r} is not a registered model; "
                          f"registered models: {', '.join(sorted(REGISTRY))}")
    unknown = [m for m in cfg.embeddings.models if m not in REGISTRY and m not in names]
    if unknown:
        raise ConfigError(f"[embeddings] models: unknown model(s) {unknown}; registered models: "
                          f"{', '.join(sorted(REGISTRY))}")
    if cfg.experiments.search_tuner not in {"random", "hyperband"}:
        raise ConfigError(f"[experiments] search_tuner must be random or hyperband, got {cfg.experiments.search_tuner!r}")
    _validate_augmentation(cfg.augmentation, "[augmentation]")
    for spec in cfg.models:
        _validate_augmentation(model_augmentation(cfg, spec), f"model {spec.name!r}: augmentation")


_AUGMENTATION_FIELDS = {f.name for f in dataclasses.fields(Augmentation)}


def model_augmentation(cfg: RunConfig, spec: ModelSpec) -> Augmentation:
    """The augmentation ``spec`` trains with: the run's ``[augmentation]`` with the model's own
    ``augmentation = {...}`` changes applied."""
    if not spec.augmentation:
        return cfg.augmentation
    return dataclasses.replace(cfg.augmentation,
                               **augmentation_settings(spec.augmentation, f"model {spec.name!r}: augmentation"))


def augmentation_settings(table: Any, where: str) -> dict[str, Any]:
    """Keyword arguments of :class:`Augmentation` from a TOML/JSON table (the run's
    ``[augmentation]`` or a model's ``augmentation = {...}``); ConfigError naming ``where``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table such as {{ downscale = 0.5, blur_sigma = 1.5 }}, got {table!r}")
    unknown = set(table) - _AUGMENTATION_FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}; known: {sorted(_AUGMENTATION_FIELDS)}")
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in table.items()}


def _validate_augmentation(aug: Augmentation, where: str) -> None:
    if aug.downscale and not 0.0 < aug.downscale < 1.0:
        raise ConfigError(f"{where} downscale is the smallest scale factor, between 0 and 1 "
                          f"(0 = off), got {aug.downscale}")
    if aug.blur_sigma < 0:
        raise ConfigError(f"{where} blur_sigma must be >= 0 (0 = off), got {aug.blur_sigma}")
    if not 0.0 <= aug.degrade_probability <= 1.0:
        raise ConfigError(f"{where} degrade_probability must be between 0 and 1, got {aug.degrade_probability}")


def apply_overrides(cfg: RunConfig, *, data: list[str] | None = None, models: list[str] | None = None,
                    image_size: int | None = None, epochs: int | None = None,
                    artifacts_dir: str | None = None) -> RunConfig:
    """Command-line flags win over the file. ``models`` may name registry models not in the file."""
    if data:
        cfg = dataclasses.replace(cfg, data=tuple(_data_source(d, Path.cwd()) for d in data))
    if models:
        by_name = {m.name: m for m in cfg.models}
        cfg = dataclasses.replace(cfg, models=tuple(by_name.get(n) or _model_spec({"name": n}, {}) for n in models))
    if image_size:
        cfg = dataclasses.replace(cfg, models=tuple(dataclasses.replace(m, image_size=image_size) for m in cfg.models))
    if epochs is not None:
        cfg = dataclasses.replace(cfg, models=tuple(
            dataclasses.replace(m, epochs=epochs, fine_tune_epochs=min(m.fine_tune_epochs, epochs)) for m in cfg.models))
    if artifacts_dir:
        cfg = dataclasses.replace(cfg, artifacts_dir=str(Path(artifacts_dir).resolve()))
    validate(cfg)
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_json_dict(raw: dict[str, Any]) -> RunConfig:
    """Inverse of :func:`to_dict` (used to read ``run.json``); paths are already absolute."""
    raw = dict(raw)
    models = tuple(ModelSpec(**{**m, "datasets": tuple(m.get("datasets", ()))}) for m in raw.pop("models", []))
    data = tuple(DataSource(**d) for d in raw.pop("data", []))
    aug = raw.pop("augmentation", {}) or {}
    if aug.get("jpeg_quality"):
        aug["jpeg_quality"] = tuple(aug["jpeg_quality"])
    raw["split"] = tuple(raw.get("split", (0.7, 0.15, 0.15)))
    known = {f.name for f in dataclasses.fields(RunConfig)}
    emb = _embedding_config(raw.pop("embeddings", {}) or {})
    experiments = dict(raw.pop("experiments", {}) or {})
    verdict = dict(raw.pop("verdict", {}) or {})
    for old, new in MOVED_TO_VERDICT.items():  # run.json of runs from before the combined model joined the run
        if old in experiments:
            verdict.setdefault(new, experiments.pop(old))
    raw["experiments"] = _experiment_config(experiments)
    raw["verdict"] = _section(VerdictConfig, verdict, "verdict")
    return RunConfig(data=data, models=models, augmentation=Augmentation(**aug), embeddings=emb,
                     **{k: v for k, v in raw.items() if k in known})


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
    if cfg.verdict == VerdictConfig():  # added later: runs with the default verdict keep their ids
        d.pop("verdict", None)
    else:
        for key, default in LATER_VERDICT_OPTIONS.items():
            if d["verdict"].get(key) == default:
                d["verdict"].pop(key)
    return d


LATER_VERDICT_OPTIONS = {"per_kind": True}  # [verdict] options added after run ids hashed the section: at their
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
