"""Fitted scikit-learn objects on disk with ``skops.io``: no pickle, no code run from the file.

``skops.io`` stores an object's state as a schema in a zip; :func:`load_estimator` first lists the types the
file would build (``skops.io.get_untrusted_types``) and refuses any that is neither skops' default trusted
set (scikit-learn's estimators, numpy arrays) nor named in ``trusted``, then loads with exactly that list.
Source: https://skops.readthedocs.io/en/stable/persistence.html
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pipeline import artifacts


class PersistError(ValueError):
    """A file that is not a skops file of the expected, trusted kind."""


def save_estimator(obj: Any, path: str | Path) -> None:
    """Write ``obj`` (a fitted scikit-learn estimator or pipeline) with ``skops.io.dump``, atomically."""
    import skops.io as sio

    with artifacts.atomic_path(path, suffix=".skops") as tmp:
        sio.dump(obj, tmp)


def load_estimator(path: str | Path, trusted: Sequence[str] = (), expect: type | tuple[type, ...] | None = None) -> Any:
    """Load a file written by :func:`save_estimator`.

    ``trusted``: type names (``module.Class``) allowed beyond skops' defaults; ``expect``: the class(es) the
    loaded object must be. Raises :class:`PersistError` for an unreadable file, an untrusted type (nothing
    from the file is built then) or an object of another class."""
    import skops.io as sio

    path = Path(path)
    try:
        untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in trusted]
    except Exception as exc:  # zip or schema errors: not a skops file
        raise PersistError(f"{path.name} is not a readable skops file ({type(exc).__name__}: {exc})") from exc
    if untrusted:
        raise PersistError(f"{path.name} contains types that are not trusted here: {', '.join(untrusted)}")
    try:
        obj = sio.load(path, trusted=list(trusted) or None)
    except Exception as exc:
        raise PersistError(f"{path.name} cannot be loaded ({type(exc).__name__}: {exc})") from exc
    if expect is not None and not isinstance(obj, expect):
        raise PersistError(f"{path.name} holds a {type(obj).__name__}, not what this file should hold")
    return obj
