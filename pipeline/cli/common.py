"""What every command of ``python -m pipeline`` shares: the error line, metric tables, and resolving ``--run``."""
from __future__ import annotations

import sys
from pathlib import Path

from pipeline import store


def fail(message: str, code: int = 2) -> int:
    """Print ``error: message`` to stderr and return the exit code ``code``."""
    print(f"error: {message}", file=sys.stderr)
    return code


def print_table(df, columns) -> None:
    """Print the ``columns`` of ``df`` that it has, as a plain text table (4 decimals)."""
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4f}".format):
        print(df[[c for c in columns if c in df.columns]].to_string(index=False))


TABLE_COLUMNS = ["model", "scope", "n", "accuracy", "balanced_accuracy", "recall_real", "recall_fake", "precision",
                 "f1", "roc_auc", "eer", "tpr_at_fpr_5pct", "ece", "threshold", "train_seconds", "latency_ms_batch1"]
VERDICT_COLUMNS = ["model", "based_on", "scope", "n", "coverage", "n_real_called_fake", "fpr_decided",
                   "recall_fake_decided", "accuracy_decided", "ece", "brier"]


def run_of(args):
    """The run ``--run`` names (default: the newest), refused with a message when an older version made it
    (:func:`pipeline.store.check_format`): every command that uses a run's models goes through this."""
    from pipeline.results import resolve_run

    info = resolve_run(args.run, Path(args.artifacts) if args.artifacts else None)
    store.check_format(info.path)
    return info
