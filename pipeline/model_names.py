"""The names of the model registry (:data:`pipeline.models.REGISTRY`) without importing Keras.

Importing :mod:`pipeline.models` starts TensorFlow (2-4 s), and validating a config only needs the
names. They are read from the package's source: every ``@register("name", ...)`` decorator, and every
call ``register("name", ...)`` / ``_register("name", ...)`` with the name written out, of a module in
``pipeline/models/`` (the package imports each of its modules, so these are exactly the models it
registers; a test compares them with the live registry in a fresh interpreter). Once :mod:`pipeline.models` is imported, its live registry is added (a model
registered at run time, e.g. by a test, counts too).
"""
from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent / "models"


@functools.lru_cache(maxsize=1)
def _declared() -> frozenset[str]:
    names = set()
    for path in sorted(MODELS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):  # @register("name", ...) decorators and register-style calls such as
            if (isinstance(node, ast.Call)  # efficientnet_lite's _register("efficientnet_lite0", ...)
                    and str(getattr(node.func, "id", getattr(node.func, "attr", ""))).lstrip("_") == "register"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                names.add(node.args[0].value)
    return frozenset(names)


def registered_names() -> frozenset[str]:
    """Every registry model name (str), TensorFlow-free unless :mod:`pipeline.models` is already loaded."""
    live = sys.modules.get("pipeline.models")
    return _declared() | frozenset(getattr(live, "REGISTRY", {}) if live is not None else ())
