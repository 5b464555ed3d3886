"""Threshold rule and metrics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import evaluation


def test_youden_threshold_separates_a_separable_set():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.10, 0.20, 0.25, 0.30, 0.60, 0.70, 0.80, 0.90])
    t = evaluation.choose_threshold(y, p, "youden")
    assert 0.30 < t <= 0.60
    assert evaluation.binary_metrics(y, p, t)["accuracy"] == 1.0


def test_youden_picks_best_balanced_accuracy_on_shifted_scores():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(500), np.ones(500)].astype(int)
    p = np.r_[rng.uniform(0.0, 0.3, 500), rng.uniform(0.2, 0.4, 500)]  # all below 0.5
    t = evaluation.choose_threshold(y, p, "youden")
    assert evaluation.binary_metrics(y, p, t)["balanced_accuracy"] > 0.8
    assert evaluation.binary_metrics(y, p, 0.5)["balanced_accuracy"] == 0.5
    grid = np.linspace(0, 1, 1001)
    best = max(evaluation.binary_metrics(y, p, g)["balanced_accuracy"] for g in grid)
    assert evaluation.binary_metrics(y, p, t)["balanced_accuracy"] >= best - 1e-9


def test_f1_and_fixed_rules_and_one_class():
    y = np.array([0, 1, 1, 1])
    p = np.array([0.2, 0.3, 0.8, 0.9])
    assert evaluation.choose_threshold(y, p, "fixed") == 0.5
    t = evaluation.choose_threshold(y, p, "f1")
    assert evaluation.binary_metrics(y, p, t)["f1"] == pytest.approx(1.0)
    assert evaluation.choose_threshold(np.ones(4), p, "youden") == 0.5
    with pytest.raises(ValueError):
        evaluation.choose_threshold(y, p, "magic")


def test_binary_metrics_counts():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.1, 0.7, 0.8, 0.2, 0.9])
    m = evaluation.binary_metrics(y, p, 0.5)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (1, 1, 1, 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(3 / 5)


def test_scopes_per_dataset_and_one_class_scope_has_no_auc():
    preds = pd.DataFrame({"dataset": ["a"] * 4 + ["b"] * 2, "y": [0, 1, 0, 1, 1, 1],
                          "p_fake": [0.1, 0.9, 0.2, 0.8, 0.7, 0.6]})
    scopes = evaluation.evaluate_predictions(preds, 0.5)
    assert set(scopes) == {"all", "a", "b"}
    assert scopes["a"]["roc_auc"] == 1.0 and scopes["b"]["roc_auc"] is None
    assert scopes["all"]["n"] == 6 and scopes["all"]["n_fake"] == 4
    assert len(scopes["all"]["roc"]["fpr"]) == len(scopes["all"]["roc"]["tpr"])


def test_latency_measures_both_batches():
    calls = []
    out = evaluation.measure_latency(lambda x: calls.append(x.shape), 8, repeats=3, warmup=1)
    assert set(out) == {"batch1_p50", "batch64_p50", "per_image_batch64"}
    assert (1, 8, 8, 3) in calls and (64, 8, 8, 3) in calls


def test_the_chance_band_holds_a_random_scorers_auc_19_times_in_20():
    rng = np.random.default_rng(0)
    n = 200
    y = np.repeat([0, 1], n // 2)
    from sklearn.metrics import roc_auc_score

    aucs = np.array([roc_auc_score(y, rng.random(n)) for _ in range(2000)])
    band = evaluation.chance_auc_band(n)
    assert 0.93 <= np.mean(np.abs(aucs - 0.5) <= band) <= 0.97
    assert evaluation.chance_auc_band(600) < band < evaluation.chance_auc_band(50)  # more images, narrower band
    assert not evaluation.above_chance(0.5 + band * 0.9, n) and evaluation.above_chance(0.5 + band * 1.1, n)
    assert not evaluation.above_chance(None, n) and not evaluation.above_chance(float("nan"), n)


def test_chance_verdict_names_models_a_coin_would_match():
    from pipeline.evaluation import chance_auc_band, chance_verdict

    band = chance_auc_band(200)
    assert chance_verdict(0.5 + band + 0.01, 200) == "above chance"
    assert chance_verdict(0.5 + band / 2, 200) == "within chance"
    assert chance_verdict(0.384, 200) == "below chance"  # the Compare example, on 200 images
    assert chance_verdict(None, 200) == "n/a"
