"""pipeline.quiz.rounds: the pool is the test split only, rounds are seeded, answers come from stored scores."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import results
from pipeline.quiz import answers
from pipeline.quiz import rounds as q
from synthetic_run import write_routed_ensemble, write_synthetic_run

MODELS = ("baseline_cnn", "mobilenet", "xception")
DATASETS = ("faces140k", "ciplab", "lfw_faceswap")


@pytest.fixture()
def run_dir(tmp_path) -> Path:
    return write_synthetic_run(tmp_path, models=MODELS, datasets=DATASETS, seed=4)


def _run(run_dir: Path) -> results.Run:
    return results.load_run(results.info_at(run_dir))


def test_pool_is_the_test_split_only_and_drops_train_val_duplicates(run_dir):
    man = pd.read_parquet(run_dir / "manifest.parquet")
    # plant a test image whose content equals a training image (and one equal to a validation image)
    train_sha = man.loc[man["split"] == "train", "sha256"].iloc[0]
    val_sha = man.loc[man["split"] == "val", "sha256"].iloc[3]
    test_rows = man.index[man["split"] == "test"]
    man.loc[test_rows[0], "sha256"] = train_sha
    man.loc[test_rows[5], "sha256"] = val_sha
    man.to_parquet(run_dir / "manifest.parquet", index=False)
    planted = {man.loc[test_rows[0], "path"], man.loc[test_rows[5], "path"]}

    pool = q.build_pool(_run(run_dir))
    seen = man[man["split"].isin(["train", "val"])]
    test_paths = set(man.loc[man["split"] == "test", "path"])
    assert set(pool.images["path"]) <= test_paths
    assert not set(pool.images["path"]) & set(seen["path"])
    assert not set(pool.images["sha256"]) & set(seen["sha256"])
    assert not planted & set(pool.images["path"])
    assert pool.excluded_overlap == 2
    assert len(pool.images) == len(test_paths) - 2


@pytest.mark.parametrize("mode", q.MODES)
def test_no_training_or_validation_image_can_ever_be_drawn(run_dir, mode):
    man = pd.read_parquet(run_dir / "manifest.parquet")
    seen = man[man["split"].isin(["train", "val"])]
    pool = q.build_pool(_run(run_dir))
    drawn = set()
    for seed in range(40):
        for rnd in q.make_rounds(pool, 30, mode, seed):
            drawn |= {im.path for im in rnd.images}
            assert not {im.sha256 for im in rnd.images} & set(seen["sha256"])
    assert drawn and not drawn & set(seen["path"])
    assert drawn <= set(man.loc[man["split"] == "test", "path"])


def test_verdict_model_prefers_routed_then_stacked_then_best_single(run_dir):
    run = _run(run_dir)
    table = run.comparison("all")
    best = table.sort_values("roc_auc", ascending=False).iloc[0]["model"]
    assert q.verdict_model(run) == best
    assert q.best_keras_model(run) == best  # the synthetic models all have a model.keras
    # a mean ensemble is not a single model: it never plays as the fallback, however good
    write_routed_ensemble(run_dir)
    (run_dir / "models" / "ensemble_routed").rename(run_dir / "models" / "ensemble_mean")
    assert _run(run_dir).comparison("all").set_index("model")["roc_auc"]["ensemble_mean"] > table["roc_auc"].max()
    assert q.verdict_model(_run(run_dir)) == best
    # a stacked ensemble (laid out like the routed one) takes over, then the routed one
    write_routed_ensemble(run_dir)
    (run_dir / "models" / "ensemble_routed").rename(run_dir / "models" / "ensemble_stacked")
    assert q.verdict_model(_run(run_dir)) == "ensemble_stacked"
    write_routed_ensemble(run_dir)
    run = _run(run_dir)
    assert q.verdict_model(run) == "ensemble_routed"
    assert q.best_keras_model(run) == best  # no model.keras: never the Grad-CAM model
    pool = q.build_pool(run)
    assert pool.models[0] == "ensemble_routed"
    assert set(pool.models) == {"ensemble_routed", "ensemble_stacked", "ensemble_mean", *MODELS}
    preds = run.predictions("ensemble_routed").set_index("path")
    row = pool.images.iloc[0]
    assert row["score:ensemble_routed"] == pytest.approx(float(preds.loc[row["path"], "p_fake"]))
    assert pool.thresholds["ensemble_routed"] == pytest.approx(run.metrics("ensemble_routed")["threshold"])


def test_pool_datasets_and_missing_files(run_dir):
    run = _run(run_dir)
    pool = q.build_pool(run, ["ciplab"])
    assert pool.datasets == ["ciplab"]
    victim = pool.images["path"].iloc[0]
    Path(victim).unlink()
    pool2 = q.build_pool(run, ["ciplab"])
    assert victim not in set(pool2.images["path"]) and pool2.excluded_missing == 1
    with pytest.raises(q.QuizError, match="no dataset nope"):
        q.build_pool(run, ["nope"])
    with pytest.raises(q.QuizError, match="at least one dataset"):
        q.build_pool(run, [])


def test_rounds_are_seeded_balanced_and_never_repeat_an_image(run_dir):
    pool = q.build_pool(_run(run_dir))
    a = q.make_rounds(pool, 12, "single", seed=7)
    assert a == q.make_rounds(pool, 12, "single", seed=7)
    assert a != q.make_rounds(pool, 12, "single", seed=8)
    assert [r.index for r in a] == list(range(12))
    truths = [r.images[0].truth for r in a]
    assert truths.count("fake") == truths.count("real") == 6
    assert {r.images[0].dataset for r in a} == set(DATASETS)  # datasets take turns
    paths = [im.path for r in a for im in r.images]
    assert len(paths) == len(set(paths))
    # more rounds than images: stops when the pool runs out, still without repeats
    many = q.make_rounds(pool, 500, "single", seed=1)
    assert len(many) == len(pool.images)
    assert len({r.images[0].path for r in many}) == len(many)


def test_paired_rounds_show_one_real_and_one_fake_of_one_dataset(run_dir):
    pool = q.build_pool(_run(run_dir))
    rounds = q.make_rounds(pool, 10, "paired", seed=2)
    sides = set()
    for rnd in rounds:
        left, right = rnd.images
        assert {left.truth, right.truth} == {"real", "fake"}
        assert left.dataset == right.dataset
        assert rnd.answer == ("left" if left.truth == "real" else "right")
        sides.add(rnd.answer)
    assert sides == {"left", "right"}
    # a dataset with no fake test image cannot pair: only the others are used
    pool.images = pool.images[~((pool.images["dataset"] == "ciplab") & (pool.images["label"] == "fake"))]
    assert "ciplab" not in {r.images[0].dataset for r in q.make_rounds(pool, 10, "paired", seed=2)}
    pool.images = pool.images[pool.images["dataset"] == "ciplab"]
    with pytest.raises(q.QuizError, match="both real and fake"):
        q.make_rounds(pool, 3, "paired", seed=2)


def test_bad_round_settings(run_dir):
    pool = q.build_pool(_run(run_dir))
    with pytest.raises(q.QuizError, match="at least one round"):
        q.make_rounds(pool, 0, "single")
    with pytest.raises(q.QuizError, match="mode must be one of"):
        q.make_rounds(pool, 3, "triple")


def test_round_survives_json():
    rnd = q.Round(3, "paired", (q.QuizImage("/a.png", "ciplab", "fake", "aa", {"m": 0.9}),
                                q.QuizImage("/b.png", "ciplab", "real", "bb", {"m": 0.1})))
    back = q.Round.from_dict(json.loads(json.dumps(rnd.to_dict())))
    assert back == rnd and back.answer == "right"


def _single(p: float, truth: str = "fake") -> q.Round:
    return q.Round(0, "single", (q.QuizImage("/x.png", "faces140k", truth, "s", {"m": p}),))


def test_model_answer_single_and_paired():
    a = answers.model_answer(_single(0.97), "m", 0.42)
    assert (a.answer, a.correct, a.words) == ("fake", True, "very sure")
    assert a.margin == pytest.approx(math.log(0.97 / 0.03) - math.log(0.42 / 0.58))
    assert "fake, very sure" in a.sentence and "0.42" in a.sentence
    b = answers.model_answer(_single(0.45, "fake"), "m", 0.5)
    assert (b.answer, b.correct, b.words) == ("real", False, "unsure")
    assert answers.model_answer(_single(0.5), "other", 0.5) is None
    pair = q.Round(0, "paired", (q.QuizImage("/l.png", "d", "fake", "l", {"m": 0.7}),
                                 q.QuizImage("/r.png", "d", "real", "r", {"m": 0.2})))
    c = answers.model_answer(pair, "m", 0.9)  # the threshold does not matter: the less fake one is "real"
    assert (c.answer, c.correct) == ("right", True)
    assert "right one is real" in c.sentence
    assert [x.model for x in answers.all_answers(pair, {"m": 0.5, "absent": 0.5})] == ["m"]


@pytest.mark.parametrize("p,words", [(0.5, "unsure"), (0.59, "unsure"), (0.61, "leaning"), (0.21, "leaning"),
                                     (0.85, "fairly sure"), (0.06, "fairly sure"), (0.96, "very sure"),
                                     (0.001, "very sure")])
def test_confidence_words_at_threshold_one_half(p, words):
    assert answers.confidence_words(answers.margin(p, 0.5)) == words


def test_look_for_notes_by_kind_of_fake():
    assert q.look_for("faces140k").kind == q.look_for("stylegan2").kind == "GAN texture"
    assert q.look_for("lfw_faceswap").kind == q.look_for("dfdc").kind == "blending edges"
    assert "lighting" in q.look_for("ciplab").kind
    assert q.look_for("my_photos") is q.UNKNOWN


def test_load_image_decodes_pixels(run_dir):
    pool = q.build_pool(_run(run_dir))
    rgb = q.load_image(pool.images["path"].iloc[0])
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_gradcam_overlay_of_a_keras_model():
    keras = pytest.importorskip("keras")
    inp = keras.Input((32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(x))
    rgb = np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8)
    over, exp = q.gradcam_overlay(model, rgb)
    assert over.shape == (48, 40, 3) and over.dtype == np.uint8
    assert exp.method == "gradcam" and exp.heatmap.shape == (48, 40)


def test_calibrated_verdicts_speak_the_check_pages_words():
    import pandas as pd

    from pipeline import verdict, verdict_fit

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    val = pd.DataFrame({"dataset": "a", "y": y, "p_fake": np.clip(0.3 + 0.4 * y + rng.normal(0, 0.15, 400), 0, 1)})
    policy = verdict_fit.fit_policy(val, "m")
    img = lambda p: q.QuizImage(path="x", dataset="a", truth="fake", sha256="0", scores={"m": p})  # noqa: E731
    rnd = q.Round(index=0, kind="paired", images=(img(0.01), img(0.99)))
    assert answers.calibrated_verdicts(rnd, policy) == [verdict.decide(policy, 0.01)["headline"],
                                                       verdict.decide(policy, 0.99)["headline"]]
    assert answers.calibrated_verdicts(rnd, None) is None
