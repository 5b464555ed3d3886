"""Reading and checking a run config: a TOML file or a run's ``run.json`` -> :class:`~pipeline.config.RunConfig`.

:func:`load` reads ``configs/<name>.toml`` (``[training]`` holds defaults that every ``[[models]]``
entry inherits and may override), :func:`from_dict` builds a config from parsed TOML, :func:`validate`
checks it (registered models, detector kinds, calibration methods, fractions) and raises
:class:`~pipeline.config.ConfigError` with a sentence saying what to fix, :func:`apply_overrides` lets
the flags of ``python -m pipeline train`` win over the file, and :func:`from_json_dict` reads a run's
stored ``run.json`` back. Relative paths in a config file resolve against the repository root.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from pipeline.config import (ARTIFACTS_ENV, CONFIG_DIR, DEFAULT_CONFIG, LR_SCHEDULES, REPO_ROOT, Augmentation,
                             ConfigError, DataSource, EmbeddingConfig, ExperimentConfig, ModelSpec, RunConfig,
                             STABILITY_COPIES, VerdictConfig, augmentation_settings, model_augmentation,
                             stacker_augmentation)


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
            if spec.kind == "clip_linear":  # checked here, not after the run's other models have trained
                from pipeline.detectors.clip_linear import augmented_copies, head_kind

                try:
                    augmented_copies(spec)
                    head_kind(spec)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
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
    if isinstance(cfg.max_images_per_class, bool) or not isinstance(cfg.max_images_per_class, int) \
            or cfg.max_images_per_class < 0:
        raise ConfigError(f"max_images_per_class must be a whole number >= 0 (0 = all images), "
                          f"got {cfg.max_images_per_class!r}")
    if cfg.threshold_rule not in {"youden", "f1", "fixed"}:
        raise ConfigError(f"threshold_rule must be youden, f1 or fixed, got {cfg.threshold_rule!r}")
    from pipeline.calibration import METHODS

    v = cfg.verdict
    if v.calibration not in METHODS:
        raise ConfigError(f"[verdict] calibration must be one of {', '.join(METHODS)}, got {v.calibration!r}")
    if v.router not in ("auto", "pixels", "clip"):
        raise ConfigError(f"[verdict] router must be auto, pixels or clip, got {v.router!r}")
    if v.router == "clip" and not any(m.kind == "clip_linear" for m in cfg.models):
        raise ConfigError("[verdict] router = \"clip\" needs a CLIP detector (kind = \"clip_linear\") among the "
                          "models: the router reads its embeddings")
    if not 0.0 <= v.max_false_positive_rate < 1.0 or not 0.0 <= v.unsure_share < 1.0:
        raise ConfigError("[verdict] max_false_positive_rate and unsure_share must be fractions in [0, 1), got "
                          f"{v.max_false_positive_rate} and {v.unsure_share}")
    if isinstance(v.flip_margin, bool) or not isinstance(v.flip_margin, (int, float)) or not 1 <= v.flip_margin < 1e6:
        raise ConfigError(f"[verdict] flip_margin must be a number from 1 (a stability-check copy past the unsure "
                          f"band flips the answer) to below 1e6 (how many band half-widths past the threshold a copy "
                          f"must land), got {v.flip_margin!r}")
    copies = v.stability_copies
    if (not isinstance(copies, tuple) or not copies or any(c not in STABILITY_COPIES for c in copies)
            or len(set(copies)) != len(copies)):  # only known names (strings) reach set()
        raise ConfigError(f"[verdict] stability_copies must list one or more different copies of "
                          f"{', '.join(map(repr, STABILITY_COPIES))} (to turn the check off: stability = false), "
                          f"got {copies!r}")
    if isinstance(v.stacker_copies, bool) or not isinstance(v.stacker_copies, int) or not 0 <= v.stacker_copies <= 5:
        raise ConfigError(f"[verdict] stacker_copies must be a whole number from 0 to 5 (augmented copies of each "
                          f"validation image the stackers also fit on), got {v.stacker_copies!r}")
    if cfg.strategy not in {"default", "mirrored", "multi_worker"}:
        raise ConfigError(f"strategy must be default, mirrored or multi_worker, got {cfg.strategy!r}")
    keras_names = [m.name for m in cfg.models if m.kind == "keras"]
    if cfg.experiments.model not in REGISTRY and cfg.experiments.model not in keras_names:
        raise ConfigError(f"[experiments] model {cfg.experiments.model!r} is neither a registered model nor a Keras "
                          f"model of this config; registered models: {', '.join(sorted(REGISTRY))}")
    unknown = [m for m in cfg.embeddings.models if m not in REGISTRY and m not in names]
    if unknown:
        raise ConfigError(f"[embeddings] models: unknown model(s) {unknown}; registered models: "
                          f"{', '.join(sorted(REGISTRY))}")
    if cfg.experiments.search_tuner not in {"random", "hyperband"}:
        raise ConfigError(f"[experiments] search_tuner must be random or hyperband, got {cfg.experiments.search_tuner!r}")
    _validate_augmentation(cfg.augmentation, "[augmentation]")
    for spec in cfg.models:
        _validate_augmentation(model_augmentation(cfg, spec), f"model {spec.name!r}: augmentation")
    _validate_augmentation(stacker_augmentation(cfg), "[verdict] stacker_augmentation")


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
                    artifacts_dir: str | None = None, max_images_per_class: int | None = None) -> RunConfig:
    """Command-line flags win over the file. ``models`` may name registry models not in the file. Raises
    :class:`ConfigError` for a combination that cannot define a run."""
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
    if max_images_per_class is not None:
        cfg = dataclasses.replace(cfg, max_images_per_class=max_images_per_class)
    validate(cfg)
    return cfg


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
