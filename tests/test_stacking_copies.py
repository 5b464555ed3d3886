"""Stackers that also fit on augmented copies of the validation images ([verdict] stacker_copies): they learn not
to lean on a member whose score drifts when a photo is re-saved, resized or cropped."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline import config, config_load, routing
from pipeline.stacking import Copies, apply_stacker, fit_stacker, out_of_fold

MEMBERS = ["steady", "brittle"]


def _sig(z):
    return 1 / (1 + np.exp(-z))


def _scores(n: int, seed: int):
    """Labels, the members' scores on the originals and on one degraded copy of each. Both members separate the
    originals; on the copies the brittle one loses its signal and drifts towards "real" (as a fine-tuned CNN's
    score does on a half-size face), the steady one keeps it."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    s = 2 * y - 1
    steady = _sig(1.2 * s + rng.normal(0, 1.0, n))
    brittle = _sig(2.5 * s + rng.normal(0, 0.6, n))
    steady_copy = _sig(1.2 * s + rng.normal(0, 1.0, n))
    brittle_copy = _sig(-1.5 + rng.normal(0, 1.0, n))
    return y, np.column_stack([steady, brittle]), np.column_stack([steady_copy, brittle_copy])


def test_copies_subset_keeps_the_copies_of_the_chosen_rows_counted_within_them():
    copies = Copies(np.arange(12, dtype=float).reshape(6, 2), np.array([0, 1, 2, 0, 1, 2]))
    sub = copies.subset(np.array([2, 0]))
    assert sub.of.tolist() == [1, 0, 1, 0]  # row 2 is position 0 of the subset, row 0 position 1
    assert sub.p[:, 0].tolist() == [0, 4, 6, 10]
    assert copies.subset(np.array([True, False, False])).of.tolist() == [0, 0]
    assert len(copies.subset(np.array([], dtype=int)).of) == 0


def test_a_stacker_fitted_on_copies_keeps_its_answer_on_copies():
    y, p, p_copy = _scores(400, 0)
    y_new, p_new, p_new_copy = _scores(400, 1)
    plain = fit_stacker(p, y, MEMBERS, seed=0)
    robust = fit_stacker(p, y, MEMBERS, seed=0, copies=Copies(p_copy, np.arange(len(y))))
    assert robust["n_fit"] == 400 and robust["n_copies"] == 400 and plain["n_copies"] == 0

    def accuracy(stacker, x):
        return float(((apply_stacker(stacker, x) >= 0.5) == y_new).mean())

    # on degraded copies of new photos the plain stacker calls most fakes real; the one that saw copies does not
    assert accuracy(plain, p_new_copy) < 0.7
    assert accuracy(robust, p_new_copy) > accuracy(plain, p_new_copy) + 0.15
    assert accuracy(robust, p_new) > 0.85  # and it still separates the photos as they are
    assert robust["coef"][1] / robust["coef"][0] < plain["coef"][1] / plain["coef"][0]


def test_out_of_fold_predictions_never_see_their_own_copies():
    y, p, p_copy = _scores(200, 2)
    copies = Copies(p_copy, np.arange(len(y)))
    oof = out_of_fold(p, y, MEMBERS, seed=0, copies=copies)
    poisoned = p_copy.copy()
    poisoned[7] = [0.999, 0.999] if y[7] == 0 else [0.001, 0.001]  # a copy labelled against its own scores
    oof_poisoned = out_of_fold(p, y, MEMBERS, seed=0, copies=Copies(poisoned, copies.of))
    assert oof_poisoned[7] == pytest.approx(oof[7])  # row 7's prediction comes from folds without row 7's copy
    assert not np.allclose(oof_poisoned, oof)  # the copy is fitted on in the other folds
    assert np.allclose(out_of_fold(p, y, MEMBERS, seed=0), out_of_fold(p, y, MEMBERS, seed=0, copies=None))


def test_routed_stackers_fit_each_kind_on_its_own_copies():
    y, p, p_copy = _scores(200, 3)
    kinds = np.where(np.arange(200) < 100, "one", "two")
    copied = np.arange(100)  # only kind "one" has copies
    routed = routing.fit_routed(p, y, kinds, MEMBERS, seed=0, copies=Copies(p_copy[copied], copied))
    assert routed["stackers"]["one"]["n_copies"] == 100 and routed["stackers"]["two"]["n_copies"] == 0
    assert routed["pooled"]["n_copies"] == 100
    route_p = np.column_stack([kinds == "one", kinds == "two"]).astype(float)
    oof = routing.out_of_fold_routed(p, y, kinds, route_p, ["one", "two"], MEMBERS, seed=0,
                                     copies=Copies(p_copy[copied], copied))
    assert oof.shape == (200,) and ((0 < oof) & (oof < 1)).all()


@pytest.mark.parametrize("bad", [-1, 6, 1.5, True, "1"])
def test_stacker_copies_must_be_a_small_whole_number(bad):
    with pytest.raises(config_load.ConfigError, match="stacker_copies"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                               "verdict": {"stacker_copies": bad}})


def test_a_bad_stacker_augmentation_is_refused():
    with pytest.raises(config_load.ConfigError, match="stacker_augmentation"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                               "verdict": {"stacker_augmentation": {"downscale": 2.0}}})
    with pytest.raises(config_load.ConfigError, match="stacker_augmentation"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                               "verdict": {"stacker_augmentation": {"sharpen": 1}}})


def test_without_copies_run_ids_stay_as_they_were_and_with_copies_they_change():
    cfg = config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                                 "verdict": {"members": ["baseline_cnn"], "calibration": "isotonic"}})
    before = config.config_fingerprint(cfg)
    assert "stacker_copies" not in before["verdict"] and "stacker_augmentation" not in before["verdict"]
    copied = dataclasses.replace(cfg, verdict=dataclasses.replace(cfg.verdict, stacker_copies=1))
    assert config.config_fingerprint(copied) != before
    aug = config.stacker_augmentation(dataclasses.replace(
        cfg, verdict=dataclasses.replace(cfg.verdict, stacker_augmentation={"downscale": 0.5, "blur_sigma": 1.0})))
    assert aug.downscale == 0.5 and aug.blur_sigma == 1.0 and aug.flip == cfg.augmentation.flip
    assert config.stacker_augmentation(config.to_dict(copied)) == config.stacker_augmentation(copied)


def test_a_stacker_says_it_was_fitted_on_copies_too():
    """stacking.json's ``fitted_on`` is what a reader sees first: it names the copies when there were some (review6)."""
    y, p, p_copy = _scores(40, 4)
    assert fit_stacker(p, y, MEMBERS)["fitted_on"] == "validation split"
    assert fit_stacker(p, y, MEMBERS, copies=Copies(p_copy, np.arange(40)))["fitted_on"] == \
        "validation split and 40 augmented copies of its rows"
