"""Finding trained runs in ``artifacts/``: list them, pick the newest, resolve an id, a prefix, a config
name or a folder (:func:`resolve_run`). Reads run.json only; never imports TensorFlow.

Errors are meant to be shown to a user as they are: a missing run raises :class:`RunNotFound`, a missing,
stale or corrupt file inside a run raises :class:`ArtifactError` (a ``ValueError``); both say what to run.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline import run_progress, store
from pipeline.config import CLIP_EMBEDDINGS_VERSION, recorded_clip_embeddings

ARTIFACTS_ENV = "DEEPFAKE_LENS_ARTIFACTS"
REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_COMMAND = "python -m pipeline train"
TRAIN_HINT = f"Build one with: {TRAIN_COMMAND} (see README)"

STATE_WORDS = {"complete": "complete", "running": "training", "stopped": "stopped (crashed or killed)"}
STATE_RANK = {"running": 1, "stopped": 2}  # latest_run: complete (and older statuses) 0, then these

# Folders in artifacts/ that are never runs.
_NOT_RUNS = {"cache", "evaluations", "__pycache__"}

class RunNotFound(LookupError):
    """No run (or no run matching a reference) in the artifacts folder; the message says what to run."""


class ModelNotFound(RunNotFound):
    """The run has no finished results for that model."""


class ArtifactError(ValueError):
    """A file of a run is missing, stale or unreadable; the message says what to run."""


class ExperimentNotRun(ArtifactError):
    """An experiment (``python -m pipeline experiment NAME``) has no finished result in the run."""


def artifacts_dir() -> Path:
    """``$DEEPFAKE_LENS_ARTIFACTS`` when set, else ``<repo>/artifacts``."""
    env = os.environ.get(ARTIFACTS_ENV, "").strip()
    return Path(env).expanduser() if env else REPO_ROOT / "artifacts"


def _root(root: Path | str | None) -> Path:
    return Path(root).expanduser() if root is not None else artifacts_dir()


# --------------------------------------------------------------------------- run discovery


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    path: Path
    created: str
    config_name: str
    status: str
    models: list[str] = field(default_factory=list)  # every model the run's config lists
    complete_models: list[str] = field(default_factory=list)  # those with models/<m>/done.json
    format: int = store.FORMAT  # the run folder's layout version (pipeline.store.FORMAT)
    pid: int | None = None  # process id and host of the train that wrote run.json last (None: older runs)
    host: str | None = None
    clip_models: list[str] = field(default_factory=list)  # its models of kind clip_linear (frozen CLIP + a head)
    clip_embeddings: int = CLIP_EMBEDDINGS_VERSION  # the CLIP embedding version it was made with

    @property
    def old_clip_embeddings(self) -> bool:
        """True when the run has CLIP models fitted on embeddings of an older version than today's
        (:data:`pipeline.config.CLIP_EMBEDDINGS_VERSION`). Runs without a recorded version embedded with
        version 1: onnxruntime's fast int8 kernel, whose 16-bit sums saturate on x86 CPUs without VNNI, so
        their CLIP scores may be near chance (README, "CLIP"). ``train`` refits their heads."""
        return bool(self.clip_models) and self.clip_embeddings < CLIP_EMBEDDINGS_VERSION

    @property
    def warnings(self) -> list[str]:
        """What a person should know before trusting the run's numbers, one sentence each (empty: nothing)."""
        if not self.old_clip_embeddings:
            return []
        return [f"its CLIP models ({', '.join(self.clip_models)}) were fitted on CLIP embeddings made before the "
                f"int8 fix (version {self.clip_embeddings}, now {CLIP_EMBEDDINGS_VERSION}): on CPUs without "
                "VNNI those embeddings are wrong and every CLIP score may be near chance. Retrain it with "
                f"`{TRAIN_COMMAND} --config {self.config_name}`: its other models are reused"]

    @property
    def state(self) -> str:
        """``running`` only while the ``train`` that marked the run running is alive; ``stopped`` when
        its process is gone (crashed or killed: run.json still says running); otherwise run.json's
        status (``complete``). A run.json without a pid (written before it was recorded) counts as
        running while a training of this artifacts folder is (its ``progress.json``,
        :mod:`pipeline.run_progress`); a pid of another host cannot be checked and counts as running."""
        if self.status != "running":
            return self.status
        if self.pid:
            if self.host and self.host != platform.node():
                return "running"
            return "running" if run_progress.process_alive(self.pid) else "stopped"
        progress = run_progress.read_status(self.path.parent)
        return "running" if progress is not None and progress.active else "stopped"

    @property
    def state_words(self) -> str:
        """:attr:`state` for a person: complete, training, stopped (crashed or killed)."""
        return STATE_WORDS.get(self.state, self.state)

    @property
    def stale(self) -> bool:
        """Made by another version of the pipeline: :func:`load_run` refuses it with a message."""
        return self.format != store.FORMAT

    @property
    def label(self) -> str:
        """One line for selectors: id, config, created, finished models."""
        created = self.created.replace("T", " ")[:16] if self.created else "?"
        state = self.state
        return (f"{self.run_id} · {self.config_name} · {created} · "
                f"{len(self.complete_models)}/{len(self.models)} models" + (" · older version" if self.stale else "")
                + (" · old CLIP embeddings: retrain" if self.old_clip_embeddings else "")
                + (f" · {STATE_WORDS[state]}" if state in ("running", "stopped") else ""))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _model_names(run_json: dict[str, Any]) -> list[str]:
    """Model names listed by run.json: ``models`` (names or dicts with ``name``), else the config's."""
    names: list[str] = []
    raw = run_json.get("models")
    if isinstance(raw, dict):
        raw = list(raw)
    if not isinstance(raw, list) or not raw:
        raw = (run_json.get("config") or {}).get("models") or []
    for m in raw:
        name = m.get("name") if isinstance(m, dict) else m
        if isinstance(name, str) and name and name not in names:
            names.append(name)
    return names


def _complete_models(path: Path, listed: list[str]) -> list[str]:
    models_dir = path / "models"
    if not models_dir.is_dir():
        return []
    found = {p.name for p in models_dir.iterdir() if p.is_dir() and (p / store.DONE).is_file()}
    ordered = [m for m in listed if m in found]
    return ordered + sorted(found - set(ordered))


def _info_from(path: Path) -> RunInfo | None:
    """RunInfo of a run folder, or None if it is not one (no readable run.json)."""
    run_file = path / store.RUN_JSON
    try:
        run_json = _read_json(run_file)
    except (OSError, ValueError):
        return None
    if not isinstance(run_json, dict):
        return None
    config = run_json.get("config") if isinstance(run_json.get("config"), dict) else {}
    run_id = str(run_json.get("run_id") or run_json.get("id") or path.name)
    created = run_json.get("created")
    if not isinstance(created, str) or not created:
        created = datetime.fromtimestamp(run_file.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    config_name = str(run_json.get("config_name") or config.get("name") or run_id.rsplit("-", 1)[0])
    listed = _model_names(run_json)
    complete = _complete_models(path, listed)
    models = listed + [m for m in complete if m not in listed]
    pid = run_json.get("pid")
    clip_models = [m.get("name") for m in config.get("models") or []
                   if isinstance(m, dict) and m.get("kind") == "clip_linear" and isinstance(m.get("name"), str)]
    return RunInfo(run_id=run_id, path=path.resolve(), created=created, config_name=config_name,
                   status=str(run_json.get("status") or "unknown"), models=models, complete_models=complete,
                   format=store.run_format(run_json), pid=pid if isinstance(pid, int) and pid > 0 else None,
                   host=str(run_json["host"]) if run_json.get("host") else None, clip_models=clip_models,
                   clip_embeddings=recorded_clip_embeddings(run_json))


def info_at(path: Path | str) -> RunInfo:
    """RunInfo of the run folder at ``path``; :class:`RunNotFound` if it holds no readable run.json."""
    path = Path(path).expanduser()
    info = _info_from(path)
    if info is None:
        raise RunNotFound(f"{path} is not a run folder (no readable run.json). {TRAIN_HINT}")
    return info


def _created_key(info: RunInfo) -> float:
    try:
        dt = datetime.fromisoformat(info.created.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    except ValueError:
        try:
            return (info.path / store.RUN_JSON).stat().st_mtime
        except OSError:
            return 0.0


def list_runs(root: Path | str | None = None) -> list[RunInfo]:
    """Every run in ``root`` (default :func:`artifacts_dir`), newest first.

    Folders without a readable ``run.json`` (``cache/``, junk, half-deleted runs) and files are
    skipped; this never raises on what it finds there. A missing root gives an empty list.
    """
    root = _root(root)
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    runs = []
    for entry in entries:
        if entry.name in _NOT_RUNS or entry.name.startswith(".") or not entry.is_dir():
            continue
        info = _info_from(entry)
        if info is not None:
            runs.append(info)
    runs.sort(key=lambda r: (_created_key(r), r.run_id), reverse=True)
    return runs


def _no_run_message(root: Path) -> str:
    return f"No trained run in {root}. {TRAIN_HINT}"


def latest_run(root: Path | str | None = None) -> RunInfo:
    """The run a page shows when none is chosen: among the runs of this version with at least one
    finished model, the newest complete one, else the newest that is still training (its process
    alive), else the newest stopped one (run.json says running but its process is gone: crashed or
    killed; :attr:`RunInfo.state`)."""
    root = _root(root)
    runs = list_runs(root)
    usable = [info for info in runs if info.complete_models and not info.stale]
    if usable:
        return min(usable, key=lambda info: STATE_RANK.get(info.state, 0))  # min keeps the newest of a rank
    stale = [info for info in runs if info.stale]
    if stale:
        raise RunNotFound(f"The runs in {root} ({', '.join(i.run_id for i in stale[:5])}) were made by an older "
                          f"version of Deepfake Lens: retrain with `{TRAIN_COMMAND} --force` (see README)")
    if runs:
        raise RunNotFound(f"No run in {root} has a finished model yet ({len(runs)} run(s) started, "
                          f"none complete). Finish one with: {TRAIN_COMMAND} (see README)")
    raise RunNotFound(_no_run_message(root))


def resolve_run(ref: str | Path | None, root: Path | str | None = None) -> RunInfo:
    """Find a run by id, unique id prefix, config name (newest run of it), or folder path.

    ``None`` or ``""`` means :func:`latest_run`.
    """
    if ref is None or str(ref).strip() in {"", "latest"}:
        return latest_run(root)
    root = _root(root)
    ref_s = str(ref).strip()
    runs = list_runs(root)
    for info in runs:
        if info.run_id == ref_s or info.path.name == ref_s:
            return info
    as_path = Path(ref_s).expanduser()
    if as_path.is_dir() and (as_path / store.RUN_JSON).exists():
        info = _info_from(as_path)
        if info is None:
            raise ArtifactError(f"{as_path / 'run.json'} cannot be read: the run is corrupt. "
                                f"Delete the folder and rebuild it with: {TRAIN_COMMAND}")
        return info
    by_config = [r for r in runs if r.config_name == ref_s]
    if by_config:
        return by_config[0]
    matches = [r for r in runs if r.run_id.startswith(ref_s) or r.path.name.startswith(ref_s)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise RunNotFound(f"{ref_s!r} matches {len(matches)} runs in {root}: "
                          f"{', '.join(r.run_id for r in matches)}; give more of the id")
    if not runs:
        raise RunNotFound(_no_run_message(root))
    raise RunNotFound(f"No run {ref_s!r} in {root}. Known runs: {', '.join(r.run_id for r in runs[:10])}"
                      f"{' …' if len(runs) > 10 else ''}. {TRAIN_HINT}")


# --------------------------------------------------------------------------- one run
