"""pipeline.calibration's Brier score and log loss are scikit-learn's numbers, without importing scikit-learn
(the Compare page's verdict table needs them on its first visit)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import calibration

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brier_and_log_loss_equal_scikit_learns(seed):
    from sklearn.metrics import brier_score_loss, log_loss

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.concatenate([rng.random(296), [0.0, 1.0, 1e-9, 1 - 1e-9]])  # clipped to [1e-6, 1 - 1e-6]
    got = calibration.calibration_metrics(y, p)
    clipped = np.clip(p, calibration.EPS, 1 - calibration.EPS)
    assert got["brier"] == pytest.approx(brier_score_loss(y, clipped), rel=1e-12, abs=1e-15)
    assert got["log_loss"] == pytest.approx(log_loss(y, clipped, labels=[0, 1]), rel=1e-12, abs=1e-15)


def test_one_class_and_empty_inputs():
    assert calibration.calibration_metrics([1, 1], [0.9, 0.2])["log_loss"] == pytest.approx(
        -np.mean(np.log([0.9, 0.2])))
    assert calibration.calibration_metrics([], []) == {"ece": None, "brier": None, "log_loss": None}


def test_calibration_metrics_do_not_import_scikit_learn():
    code = ("import sys; from pipeline import calibration; calibration.calibration_metrics([0, 1, 1], [0.2, 0.7, 0.4]); "
            "calibration.ece_noise_floor([0.2, 0.7]); print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
