"""What every page shares: the selected run, cached loaders and "cannot show this" messages.

The run selector lives in ``dashboard/app.py`` (sidebar, on every page) and writes the run id to
``st.session_state[RUN_KEY]``; pages call :func:`selected_run`.

Caching: ``@st.cache_data`` loaders are keyed by (run path, model, modification time of the file),
so a retrained run (same id, new files) is read again. ``@st.cache_resource`` is for Keras models
(pages that predict, and the run's combined model that scores uploads): key them the same way.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
import streamlit as st

from pipeline import results, store
from pipeline.results import ArtifactError, Run, RunInfo, RunNotFound

RUN_KEY = "run_id"


# --------------------------------------------------------------------------- messages


@st.cache_resource(show_spinner=False)
def favicon():
    """The tab icon, drawn here (a lens over a face outline, 64 px PIL image): a material-icon page
    icon is fetched from a font CDN, which fails offline."""
    from PIL import Image, ImageDraw

    im = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle([2, 2, 62, 62], radius=14, fill="#4C78A8")
    d.ellipse([14, 10, 42, 42], outline="white", width=5)
    d.line([38, 38, 54, 54], fill="white", width=7)
    return im


def stop_with(message: str, kind: str = "info") -> NoReturn:
    """Show ``message`` (info, warning or error box) and end this page's script run."""
    getattr(st, kind)(message)
    st.stop()


def no_run_message(root: Path | None = None) -> str:
    root = root or results.artifacts_dir()
    return (f"No trained run found in `{root}`.\n\n"
            f"Build one from the repository root with:\n\n```\n{results.TRAIN_COMMAND}\n```\n\n"
            f"(see the README for data and configs; set `{results.ARTIFACTS_ENV}` to read runs from another "
            f"folder). Then reload this page.")


def guarded(fn, *args, **kwargs) -> Any:
    """Call a loader; on a missing/stale/corrupt artifact show its message and stop the page."""
    try:
        return fn(*args, **kwargs)
    except (RunNotFound, ArtifactError) as exc:
        stop_with(str(exc), "warning")


# --------------------------------------------------------------------------- run selection


def run_infos() -> list[RunInfo]:
    return results.list_runs()


def selected_run() -> Run:
    """The run picked in the sidebar (or the latest finished one); stops the page when there is none. Shows
    the run's :attr:`pipeline.runs.RunInfo.warnings` above the page."""
    ref = st.session_state.get(RUN_KEY)
    try:
        info = results.resolve_run(ref) if ref else results.latest_run()
    except RunNotFound:
        runs = results.list_runs()
        if not runs:
            stop_with(no_run_message())
        info = runs[0]  # runs exist but none finished: still show its data
    except ArtifactError as exc:
        stop_with(str(exc), "warning")
    for warning in info.warnings:  # e.g. CLIP models fitted on embeddings of an old version
        st.warning(f"Run `{info.run_id}`: {warning}.", icon=":material/warning:")
    return guarded(results.load_run, info)


_WARMED: set[str] = set()
_WARM_LOCK = threading.Lock()


def warm_up(run: Run) -> None:
    """Load the run's Keras models and combined model into this process' caches in a background
    thread, once per process and run: the best model first, with its Grad-CAM pass traced
    (:func:`pipeline.explain.warm_up`), then the others. Called by the pages that score uploads (*Check an image*,
    *Check a video*) while they wait for a file: the page renders at once and the user's first upload
    does not wait for TensorFlow's start-up and the model files (10-15 s on 2 busy cores). Not started
    on the first page of every session: on 2 cores the load slowed whatever page it ran beside by
    5-10 s (BENCHMARKS.md). The pages call the same cached loaders; Streamlit's per-key lock makes an
    upload that comes early wait for this load instead of loading twice. Set
    ``DEEPFAKE_LENS_WARM_UP=0`` to load on first use only."""
    key = str(run.path)
    if not _first_time(key, _WARMED):
        return
    names = keras_model_names(run)
    if not names:
        return

    def load() -> None:
        try:
            _warm_up_best(run, names)
            stamp = tuple(_model_mtime(run, m, "model.keras") for m in names)
            models = _run_models(key, tuple(names), stamp)
            combiner, _ = run_combiner(run, names)
            _dry_run_check(models, combiner, run_policy(run)[0])
        except Exception as exc:  # noqa: BLE001 - the page that needs the models reports the problem
            logging.getLogger(__name__).warning("warm-up of %s failed: %s", run.run_id, exc)

    threading.Thread(target=load, name="deepfake-lens-warm-up", daemon=True).start()


# At most this many photos are scored at once in this process (one per core); the others wait their
# turn. Eight sessions uploading together on 2 cores then get their verdicts one after another instead
# of all at the end, with no time lost to eight scoring threads fighting over two cores.
CHECK_SLOTS = threading.BoundedSemaphore(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                             else os.cpu_count() or 1))


def _dry_run_check(models: dict, combiner, policy) -> None:
    """Check one synthetic 256 px picture, with and without face finding, through the check path: builds the
    face detector and traces every model's prediction (and the stability check's batch) before the first
    upload, which otherwise pays about 2 s for it. The result is thrown away."""
    import numpy as np

    from pipeline import checking

    ramp = np.linspace(0, 255, 256, dtype=np.float32)
    picture = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, -ramp) / 2 + 128,
                        np.full((256, 256), 128.0)], axis=-1).clip(0, 255).astype(np.uint8)
    with CHECK_SLOTS:
        checking.check_image("warm-up", picture, models, crop_faces=True, combiner=combiner, policy=policy)
        checking.check_image("warm-up", picture, models, crop_faces=False, combiner=combiner, policy=policy,
                             stability=True)


def _warm_up_best(run: Run, names: list[str]) -> None:
    """Load the run's best Keras model and trace its Grad-CAM pass: the map every checked face and the
    Explain page start with. A problem here only logs: the full load goes on."""
    from pipeline import checking, explain

    try:
        best = checking.best_model(run.summary(), names)
        if best in names:
            explain.warm_up(_run_model(str(run.path), best, _model_mtime(run, best, "model.keras")).model)
    except Exception as exc:  # noqa: BLE001 - a page that needs the map reports the problem
        logging.getLogger(__name__).warning("Grad-CAM warm-up of %s failed: %s", run.run_id, exc)


_PRELOADED: set[str] = set()


def _first_time(key: str, seen: set[str]) -> bool:
    """True once per process for ``key`` in ``seen`` (thread-safe), never with ``DEEPFAKE_LENS_WARM_UP=0``."""
    if os.environ.get("DEEPFAKE_LENS_WARM_UP", "1") == "0":
        return False
    with _WARM_LOCK:
        if key in seen:
            return False
        seen.add(key)
        return True


_PAGE_RUNS: dict[str, int] = {}
PRELOAD_AFTER = 1  # page runs of a run in this process before the preload starts


def preload(run: Run) -> None:
    """Called after every page run. From the process's second page run of ``run`` on (once per process
    and run): import scikit-learn and SciPy's statistics (2-3 s on 2 busy cores; already imported when the
    server was started by ``python -m dashboard.serve``) and compute the run's
    trust table (*Compare models*, 3 s: a calibrator per model and data set) in a background thread, so
    that later pages find both ready. Not after the first page run: that page is still being drawn by
    a browser that has just loaded the app, and the thread slowed it by 3-4 s on 2 busy cores
    (BENCHMARKS.md, "Third pass"). Set ``DEEPFAKE_LENS_WARM_UP=0`` to compute on first use."""
    key = str(run.path)
    with _WARM_LOCK:
        _PAGE_RUNS[key] = _PAGE_RUNS.get(key, 0) + 1
        if _PAGE_RUNS[key] <= PRELOAD_AFTER:
            return
    if not _first_time(key, _PRELOADED):
        return

    def work() -> None:
        try:
            import scipy.stats  # noqa: F401 - imported for its side effect: the module cache
            import sklearn.linear_model  # noqa: F401
            import sklearn.metrics  # noqa: F401

            trust_table(run)
        except Exception as exc:  # noqa: BLE001 - the page that needs it reports the problem
            logging.getLogger(__name__).warning("preload of %s failed: %s", run.run_id, exc)

    threading.Thread(target=work, name="deepfake-lens-preload", daemon=True).start()


def require_models(run: Run) -> list[str]:
    """Finished models of the run; stops the page with what to run when there are none."""
    models = run.models()
    if not models:
        stop_with(f"Run `{run.run_id}` has no finished model yet ({len(run.info.models)} listed in its config). "
                  f"Finish training with:\n\n```\n{results.TRAIN_COMMAND}\n```\n\n"
                  f"A model counts once its `models/<model>/done.json` is written.", "info")
    return models


# --------------------------------------------------------------------------- cached loaders


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _open(run_path: str) -> Run:
    return results.load_run(results.info_at(run_path))


@st.cache_data(show_spinner=False, max_entries=64)
def _manifest(run_path: str, mtime: float) -> pd.DataFrame:
    return _open(run_path).manifest()


@st.cache_data(show_spinner=False, max_entries=64)
def _skipped(run_path: str, mtime: float) -> pd.DataFrame:
    return _open(run_path).skipped()


@st.cache_data(show_spinner=False, max_entries=64)
def _counts(run_path: str, mtime: float) -> pd.DataFrame:
    return _open(run_path).counts()


@st.cache_data(show_spinner=False, max_entries=64)
def _summary(run_path: str, mtime: float) -> pd.DataFrame:
    return _open(run_path).summary()


@st.cache_data(show_spinner=False, max_entries=256)
def _metrics(run_path: str, model: str, mtime: float) -> dict:
    return _open(run_path).metrics(model)


@st.cache_data(show_spinner=False, max_entries=256)
def _history(run_path: str, model: str, mtime: float) -> pd.DataFrame:
    return _open(run_path).history(model)


@st.cache_data(show_spinner=False, max_entries=64)
def _predictions(run_path: str, model: str, mtime: float) -> pd.DataFrame:
    return _open(run_path).predictions(model)


@st.cache_data(show_spinner=False, max_entries=16)
def _trust_table(run_path: str, mtime: float) -> pd.DataFrame:
    return _open(run_path).trust_table()


@st.cache_data(show_spinner=False, max_entries=16)
def _verdict_table(run_path: str, mtime: float) -> pd.DataFrame:
    return _open(run_path).verdict_table()


def trust_table(run: Run) -> pd.DataFrame:
    """:meth:`pipeline.results.Run.trust_table`, cached until the summary changes."""
    return _trust_table(str(run.path), _mtime(run.path / store.SUMMARY))


def verdict_table(run: Run) -> pd.DataFrame:
    """:meth:`pipeline.results.Run.verdict_table`, cached until the summary changes; raises
    ``ValueError`` (``pipeline.verdict.PolicyError``) when the run has no verdict policy."""
    return _verdict_table(str(run.path), _mtime(run.path / store.SUMMARY))


def manifest(run: Run) -> pd.DataFrame:
    return guarded(_manifest, str(run.path), _mtime(run.path / store.MANIFEST))


def skipped(run: Run) -> pd.DataFrame:
    return guarded(_skipped, str(run.path), _mtime(run.path / store.SKIPPED))


def counts(run: Run) -> pd.DataFrame:
    return guarded(_counts, str(run.path), _mtime(run.path / store.MANIFEST))


def summary(run: Run) -> pd.DataFrame:
    return guarded(_summary, str(run.path), _mtime(run.path / store.SUMMARY))


def _model_mtime(run: Run, model: str, name: str) -> float:
    # done.json is rewritten on every retrain: include it so a stale cache entry cannot survive.
    d = run.path / "models" / model
    return _mtime(d / name) + _mtime(d / store.DONE)


def metrics(run: Run, model: str) -> dict:
    return guarded(_metrics, str(run.path), model, _model_mtime(run, model, store.METRICS))


def history(run: Run, model: str) -> pd.DataFrame:
    return guarded(_history, str(run.path), model, _model_mtime(run, model, store.HISTORY))


def predictions(run: Run, model: str) -> pd.DataFrame:
    return guarded(_predictions, str(run.path), model, _model_mtime(run, model, store.PREDICTIONS))


def all_metrics(run: Run, models: list[str] | None = None) -> dict[str, dict]:
    return {m: metrics(run, m) for m in (models if models is not None else run.models())}


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, mtime: float, size: int = 160):
    """An RGB thumbnail (PIL image) of ``path``; raises OSError if it cannot be opened."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        return img.copy()


def load_thumbnail(path: str, size: int = 160):
    """Thumbnail or None when the file is missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        return thumbnail(str(p), _mtime(p), size)
    except Exception:  # noqa: BLE001 - PIL raises many types on bad files
        return None


def thumbnail_grid(items: list[tuple[str, str]], per_row: int = 8) -> None:
    """``(path, caption)`` images in rows of ``per_row`` thumbnails; a missing or unreadable file is
    named instead of shown."""
    for start in range(0, len(items), per_row):
        for col, (path, caption) in zip(st.columns(per_row), items[start:start + per_row]):
            with col:
                img = load_thumbnail(str(path))
                if img is None:
                    st.caption(f":orange[:material/broken_image: missing or unreadable]  \n`{Path(str(path)).name}`")
                else:
                    st.image(img, caption=caption, width="stretch")


def run_caption(run: Run) -> str:
    i = run.info
    return (f"Run `{i.run_id}` · config **{i.config_name}** · created {i.created.replace('T', ' ')[:16]} · "
            f"{len(i.complete_models)}/{len(i.models)} models finished · {i.state_words}")


# --------------------------------------------------------------------------- trained models (pages that predict)


@st.cache_resource(show_spinner="Loading a model…", max_entries=32)
def _run_model(run_path: str, model: str, stamp: float):
    """One detector of a run, loaded once per process (and again when its files change)."""
    from pipeline import detectors

    return detectors.load(run_path, model)


@st.cache_resource(show_spinner="Loading the run's models…", max_entries=4)
def _run_models(run_path: str, models: tuple[str, ...], stamp: tuple[float, ...]):
    # built from the per-model cache: a page that needs one model (Explain) and one that needs them all
    # (Check) share the same loaded objects
    return {m: _run_model(run_path, m, s) for m, s in zip(models, stamp)}


def keras_model_names(run: Run) -> list[str]:
    """Finished models of the run that are Keras models (a ``model.keras`` file): the ones that score
    images and have Grad-CAM; comparison-only rows such as ``<model>+pca_svm`` are left out."""
    return [m for m in run.models() if (run.path / "models" / m / store.KERAS_MODEL).is_file()]


def models_stamp(run: Run, models: list[str]) -> str:
    """Changes when one of ``models`` is retrained (a cache key for results computed from them)."""
    return repr(tuple(_model_mtime(run, m, "model.keras") for m in models))


def run_models(run: Run, models: list[str] | None = None) -> dict:
    """The finished Keras models of ``run`` as ``{name: pipeline.keras_model.KerasDetector}``, loaded once
    per process (``st.cache_resource``), reloaded when a model is retrained (its files' mtimes)."""
    names = tuple(models if models is not None else keras_model_names(run))
    stamp = tuple(_model_mtime(run, m, store.KERAS_MODEL) for m in names)
    try:
        return _run_models(str(run.path), names, stamp)
    except (KeyError, OSError, ValueError) as exc:
        stop_with(f"Could not load the models of run `{run.run_id}`: {exc}", "warning")


@st.cache_resource(show_spinner="Loading the run's combined model…", max_entries=4)
def _run_combiner(run_path: str, models: tuple[str, ...], stamp: tuple[float, ...], combiner_stamp: str):
    from pipeline.detectors import combined as ensemble

    return ensemble.load_combiner(run_path, keras_models=_run_models(run_path, models, stamp))


def combiner_name(run: Run) -> str | None:
    """Name of the run's combined model (:func:`pipeline.detectors.combined.combiner_name`), without loading it."""
    from pipeline.detectors import combined as ensemble

    return ensemble.combiner_name(run.path)


def combiner_key(run: Run) -> str:
    """Changes when the run's combined model or one of its members is refitted (cache key)."""
    from pipeline.detectors import combined as ensemble

    return ensemble.combiner_stamp(run.path)


def run_combiner(run: Run, models: list[str] | None = None) -> tuple[Any, str | None]:
    """The run's combined model for scoring uploads (``ensemble_routed``, else ``ensemble_stacked``;
    :func:`pipeline.detectors.combined.load_combiner`), loaded once per process and sharing the
    Keras models of :func:`run_models`: ``(combiner, None)``, ``(None, None)`` when the run has none,
    ``(None, message)`` when it cannot be loaded."""
    names = tuple(models if models is not None else keras_model_names(run))
    stamp = tuple(_model_mtime(run, m, store.KERAS_MODEL) for m in names)
    try:
        return _run_combiner(str(run.path), names, stamp, combiner_key(run)), None
    except (KeyError, OSError, ValueError) as exc:
        return None, str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)


def run_policy(run: Run) -> tuple[Any, str | None]:
    """The run's three-way verdict policy (:func:`pipeline.verdict.load_policy`): ``(policy, None)``, or
    ``(None, message)`` saying what to run when it has none or it is stale."""
    from pipeline import verdict

    try:
        return verdict.load_policy(run.path), None
    except (verdict.PolicyError, OSError, KeyError) as exc:
        return None, str(exc)


def upload_limit_mb() -> int:
    """``server.maxUploadSize`` from .streamlit/config.toml (MB)."""
    try:
        return int(st.get_option("server.maxUploadSize"))
    except Exception:  # noqa: BLE001 - option missing in an odd Streamlit build
        return 200
