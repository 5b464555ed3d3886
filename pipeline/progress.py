"""Progress reporting shared by the CLI (tqdm bars) and the dashboard (st.progress).

Long work takes a ``progress`` callable ``progress(stage, done, total)``; ``None`` means silent.
"""
from __future__ import annotations

from typing import Callable, Optional

ProgressFn = Optional[Callable[[str, int, int], None]]


def report(progress: ProgressFn, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


class TqdmProgress:
    """One tqdm bar per stage, closed when the stage reaches its total or a new stage starts."""

    def __init__(self, **tqdm_kwargs):
        self._bar = None
        self._stage = None
        self._kwargs = {"dynamic_ncols": True, "leave": True, **tqdm_kwargs}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm.auto import tqdm

        if stage != self._stage:
            self.close()
            self._bar = tqdm(total=total, desc=stage, **self._kwargs)
            self._stage = stage
        if self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        self._bar, self._stage = None, None
