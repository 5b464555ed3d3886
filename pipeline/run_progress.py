"""Progress of a running ``python -m pipeline train``, written for the dashboard to read.

``train`` (the CLI) writes ``<artifacts>/progress.json`` while it works: the current stage and its
count (the same ``progress(stage, done, total)`` calls that drive the tqdm bars), the last log lines
("spectrum: test accuracy 0.64, ..."), its process id and a status: ``running``, ``complete`` or
``failed``. The Overview page shows it as a progress bar that refreshes itself, so
``scripts/run.sh`` can serve the dashboard at once and train in the background; the other pages
fill as models finish (they read the run folder, which gains a model when its ``done.json`` is
written).

The file sits in the artifacts folder, not in a run folder, because the run id is known only after
the data are scanned. Writes are atomic (``pipeline.artifacts.write_json``) and throttled to one
per ``min_interval`` seconds within a stage. A ``running`` file whose process is gone reads as
``stopped`` (killed, or the machine restarted).
"""
from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.progress import ProgressFn

PROGRESS_FILE = "progress.json"
LOG_LINES = 40  # log lines kept in the file (the newest)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def progress_path(artifacts_dir: str | Path) -> Path:
    return Path(artifacts_dir) / PROGRESS_FILE


@dataclass
class TrainingStatus:
    """What ``progress.json`` says. ``status``: running | complete | failed | stopped (running, but
    its process is gone). ``done``/``total``: the current stage's count (images, epochs, steps)."""

    status: str
    stage: str | None = None
    done: int = 0
    total: int = 0
    pid: int | None = None
    started: str | None = None
    updated: str | None = None
    message: str | None = None
    log: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """The current stage's share done, 0..1 (0 when the stage has no count)."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def active(self) -> bool:
        return self.status == "running"


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except (OSError, ValueError):
        return False
    return True


def process_alive(pid: int | None) -> bool:
    """True when a process ``pid`` exists on this machine (``os.kill(pid, 0)``; one owned by another user
    counts). A pid reused by an unrelated process after a crash reads as alive: the price of not keeping
    a lock file."""
    return _alive(pid)


def read_status(artifacts_dir: str | Path) -> TrainingStatus | None:
    """The last training's status in ``artifacts_dir``, or None when no training wrote one (or the
    file cannot be read: a half-written file cannot happen, writes are atomic)."""
    import json

    try:
        raw = json.loads(progress_path(artifacts_dir).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    status = TrainingStatus(status=str(raw.get("status") or "unknown"), stage=raw.get("stage"),
                            done=int(raw.get("done") or 0), total=int(raw.get("total") or 0), pid=raw.get("pid"),
                            started=raw.get("started"), updated=raw.get("updated"), message=raw.get("message"),
                            log=[str(line) for line in raw.get("log") or []])
    if status.status == "running" and not _alive(status.pid):
        status.status = "stopped"
    return status


class ProgressFile:
    """A ``progress(stage, done, total)`` callable and a log sink that keep ``progress.json`` current.

    >>> pf = ProgressFile("artifacts")          # status "running" from here on
    >>> pf("train spectrum", 3, 10); pf.log("spectrum: test accuracy 0.64")
    >>> pf.finish("complete")                   # or pf.finish("failed", "message")
    """

    def __init__(self, artifacts_dir: str | Path, min_interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.path = progress_path(artifacts_dir)
        self.min_interval = min_interval
        self._clock = clock
        self._last_write = float("-inf")
        self._state = {"status": "running", "stage": None, "done": 0, "total": 0, "pid": os.getpid(),
                       "started": _now(), "updated": _now(), "message": None, "log": []}
        self._write()

    def _write(self) -> None:
        from pipeline import artifacts

        self._state["updated"] = _now()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            artifacts.write_json(self.path, self._state)
        except OSError:  # a read-only artifacts folder: the CLI's own bars still show the progress
            pass
        self._last_write = self._clock()

    def __call__(self, stage: str, done: int, total: int) -> None:
        new_stage = stage != self._state["stage"]
        self._state.update(stage=stage, done=int(done), total=int(total))
        if new_stage or done >= total or self._clock() - self._last_write >= self.min_interval:
            self._write()

    def log(self, line: str) -> None:
        self._state["log"] = [*self._state["log"], str(line)][-LOG_LINES:]
        self._write()

    def finish(self, status: str, message: str | None = None) -> None:
        self._state.update(status=status, message=message)
        self._write()


def tee(*fns: ProgressFn) -> ProgressFn:
    """One progress callable that calls each of ``fns`` (None entries are skipped)."""
    live = [f for f in fns if f is not None]

    def both(stage: str, done: int, total: int) -> None:
        for f in live:
            f(stage, done, total)

    return both
