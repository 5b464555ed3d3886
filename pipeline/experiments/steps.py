"""Running experiments: what ``train`` runs at its end (:func:`after_train`) and one experiment by
name (:func:`run`, for ``python -m pipeline experiment NAME``). Kept apart from the package's
``__init__`` (folders, settings, summary rows), which the dashboard reads: this module reaches the
training code, the package itself must not (the import-linter contract in pyproject.toml)."""
from __future__ import annotations

from pathlib import Path

from pipeline import evaluation, store
from pipeline.experiments import EXTRA_MODELS, NAMES, Log


def after_train(cfg, run_dir: Path, *, progress=None, log: Log = print) -> None:
    """What ``train`` runs at its end: the experiments the config switches on for every run
    (robustness and cross-dataset when enabled), and the summary rows of models experiments wrote
    earlier (``searched_cnn``). Search and ablation are never run here:
    ``python -m pipeline experiment search|ablation``."""
    exp = cfg.experiments
    if exp.robustness:
        from pipeline.experiments import robustness

        robustness.run_robustness(cfg, run_dir, progress=progress, log=log)
    if exp.crossdataset:
        from pipeline.experiments import crossdataset

        crossdataset.run_crossdataset(cfg, run_dir, progress=progress, log=log)
    extra = [m for m in EXTRA_MODELS if m not in cfg.model_names and store.is_model_done(run_dir, m)]
    if extra:
        evaluation.add_to_summary(run_dir, extra)


def run(name: str, cfg, run_dir: Path, *, force: bool = False, progress=None, log: Log = print) -> Path | None:
    """Run one experiment by name (``all``: every one, search first)."""
    names = NAMES if name == "all" else (name,)
    out = None
    for n in names:
        if n not in NAMES:
            raise ValueError(f"unknown experiment {n!r}; choose one of {', '.join(NAMES)} or all")
        if n == "search":
            from pipeline.experiments.search import run_search as fn
        elif n == "ablation":
            from pipeline.experiments.ablation import run_ablation as fn
        elif n == "robustness":
            from pipeline.experiments.robustness import run_robustness as fn
        else:
            from pipeline.experiments.crossdataset import run_crossdataset as fn
        out = fn(cfg, run_dir, force=force, progress=progress, log=log)
    return out
