"""The calibrated three-way verdict (pipeline.calibration, pipeline.verdict): calibration, the
false-accusation threshold, unsure reasons, and the faces the check path gives the detectors.

The policy tests run on synthetic scores (no TensorFlow). The face tests build their inputs from
real faces in ../shared/data (letterboxed, side by side, a face-less gradient) and skip without it."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import calibration, verdict, verdict_fit


def _scores(n: int, seed: int, datasets=("a", "b"), shift: float = 0.8, squash: float = 0.3) -> pd.DataFrame:
    """Labelled raw scores that rank fairly but are badly calibrated (underconfident: logits x ``squash``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in datasets:
        y = np.repeat([0, 1], n)
        z = rng.normal(np.where(y == 1, shift, -shift), 1.0)
        rows.append(pd.DataFrame({"dataset": d, "y": y, "p_fake": calibration.sigmoid(squash * z)}))
    return pd.concat(rows, ignore_index=True)


def test_platt_scaling_lowers_the_calibration_error():
    val, test = _scores(400, 1), _scores(400, 2)
    cal = calibration.fit_calibrator(val["p_fake"], val["y"], "platt")
    before = calibration.expected_calibration_error(test["y"], test["p_fake"])
    after = calibration.expected_calibration_error(test["y"], calibration.apply_calibrator(cal, test["p_fake"]))
    assert before > 0.08 and after < 0.03 and after < before / 3
    iso = calibration.fit_calibrator(val["p_fake"], val["y"], "isotonic")
    assert calibration.expected_calibration_error(
        test["y"], calibration.apply_calibrator(iso, test["p_fake"])) < before


def test_a_detector_that_ranks_validation_the_wrong_way_round_says_nothing():
    y = np.repeat([0, 1], 200)
    cal = calibration.fit_calibrator(0.9 - 0.8 * y, y)  # every fake scored lower than every real
    assert cal["a"] == 0
    assert np.allclose(calibration.apply_calibrator(cal, [0.01, 0.99]), 0.5)
    policy = verdict_fit.fit_policy(pd.DataFrame({"dataset": "a", "y": y, "p_fake": 0.9 - 0.8 * y}), "m")
    assert policy.uninformative and set(policy.labels(np.linspace(0, 1, 11))) == {"unsure"}
    assert verdict.decide(policy, 0.99)["reasons"] == [verdict.CHANCE_REASON]


def test_ece_of_a_perfectly_calibrated_scorer_is_small_and_of_a_constant_wrong_one_large():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=20000)
    y = (rng.uniform(size=20000) < p).astype(int)
    assert calibration.expected_calibration_error(y, p) < 0.02
    assert calibration.expected_calibration_error(np.zeros(100), np.full(100, 0.9)) == pytest.approx(0.9)


def test_operating_metrics_expose_a_model_that_calls_everything_fake():
    y = np.array([0] * 10 + [1] * 90)  # the folder: 10 reals, 90 fakes
    m = calibration.operating_metrics(y, np.ones(100), threshold=0.5)
    assert m["recall_real"] == 0 and m["recall_fake"] == 1 and m["balanced_accuracy"] == 0.5 and m["fpr"] == 1
    good = calibration.operating_metrics(y, y * 0.8 + 0.1, threshold=0.5)
    assert good["eer"] == 0 and good["tpr_at_fpr_1pct"] == 1 and good["balanced_accuracy"] == 1


@pytest.mark.parametrize("max_fpr", [0.0, 0.01, 0.05, 0.2])
def test_the_false_positive_threshold_holds_on_every_dataset(max_fpr):
    rng = np.random.default_rng(5)
    groups = np.repeat(["easy", "hard", "tiny"], [500, 300, 7])
    p = np.concatenate([rng.beta(2, 8, 500), rng.beta(5, 5, 300), rng.beta(2, 2, 7)])
    t = calibration.max_fpr_threshold(p, groups, max_fpr)
    for g in np.unique(groups):
        share = float((p[groups == g] >= t).mean())
        assert share <= max_fpr + 1e-12, (g, share)
    with pytest.raises(ValueError, match="max_false_positive_rate"):
        calibration.max_fpr_threshold(p, groups, 1.0)


def test_policy_states_and_keeps_its_false_accusation_rate_on_held_out_scores():
    val, test = _scores(300, 11, datasets=("a", "b", "c")), _scores(300, 12, datasets=("a", "b", "c"))
    policy = verdict_fit.fit_policy(val, "m", max_false_positive_rate=0.03, unsure_share=0.1)
    table = verdict_fit.policy_table(policy, test).set_index("scope")
    assert (table["fpr_decided"] <= 0.05).all(), table
    assert (table["coverage"] >= 0.8).all() and table.loc["all", "ece"] < 0.05
    words = verdict.error_rate_words(policy)
    assert "in 1,000 real photos are wrongly called fake" in words and "validation" in words
    missed = verdict.fakes_missed_words(policy)  # what "real" is worth: the sets it learnt fakes from, by name
    assert "not proof" in missed and "It learnt fakes only from a, b, c:" in missed and "can pass as real" in missed


def test_three_way_decision_and_its_reasons():
    val = _scores(300, 21)
    policy = verdict_fit.fit_policy(val, "m")
    t = policy.threshold
    p_at = float(calibration.apply_calibrator(_inverse(policy), [t])[0])  # the raw score that calibrates to t
    near = verdict.decide(policy, p_at)
    assert near["verdict"] == "unsure" and verdict.BAND_REASON in near["reasons"]
    assert near["headline"].startswith("Can't tell: ")
    clear_fake = verdict.decide(policy, 0.9999)
    assert clear_fake["verdict"] == "fake" and clear_fake["headline"].startswith("Likely fake — ")
    clear_real = verdict.decide(policy, 0.0001)
    assert clear_real["verdict"] == "real" and clear_real["reasons"] == []
    # a clear "real" that turns "fake" when the photo is shrunk: unsure, and the page says why in words
    flipped = verdict.decide(policy, 0.0001, p_perturbed=[0.0001, 0.0001, 0.9999, 0.0001, 0.0001])
    assert flipped["verdict"] == "unsure" and flipped["unstable_under"] == ["half size"]
    assert "shrunk to half size" in flipped["headline"]
    # a copy that only reaches the unsure band (just over the threshold, within the band) is no flip
    wobble = verdict.decide(policy, 0.0001, p_perturbed=[0.0001, 0.0001, p_at, 0.0001, 0.0001])
    assert wobble["verdict"] == "real" and wobble["unstable_under"] == []


def _raw_at_margin(policy, q: float) -> float:
    """The raw score whose calibrated probability lies ``q`` band half-widths past the threshold (log-odds;
    q > 0 the fake side, q < 0 the real side)."""
    z = calibration.logit(policy.threshold) + q * policy.band
    return float(calibration.apply_calibrator(_inverse(policy), [calibration.sigmoid(z)])[0])


@pytest.mark.parametrize("side", [-1, 1])
def test_a_copy_flips_the_answer_only_when_it_lands_past_the_flip_margin(side):
    """``flip_margin`` m: a stability-check copy on the other side counts as a flip only m band half-widths past
    the threshold. At 1 (the default) any copy past the band flips; at 3 a copy 2 half-widths past does not, one
    4 half-widths past does, on either side of the line."""
    val = _scores(300, 22)
    at_edge, wide = verdict_fit.fit_policy(val, "m"), verdict_fit.fit_policy(val, "m", flip_margin=3.0)
    assert wide.flip_margin == 3.0 and (wide.threshold, wide.band) == (at_edge.threshold, at_edge.band)
    face = _raw_at_margin(at_edge, 5 * side)  # clearly decided
    near, far = _raw_at_margin(at_edge, -2 * side), _raw_at_margin(at_edge, -4 * side)  # copies on the other side
    answer = verdict.FAKE if side > 0 else verdict.REAL
    copies = [face, face, near, face, face]  # "half size" lands 2 half-widths across
    assert verdict.decide(at_edge, face, p_perturbed=copies)["unstable_under"] == ["half size"]
    kept = verdict.decide(wide, face, p_perturbed=copies)
    assert kept["verdict"] == answer and kept["reasons"] == [] and kept["unstable_under"] == []
    copies[4] = far  # "cropped 5%" lands 4 half-widths across
    flipped = verdict.decide(wide, face, p_perturbed=copies)
    assert flipped["verdict"] == verdict.UNSURE and flipped["unstable_under"] == ["cropped 5%"]
    assert "cropped slightly" in flipped["headline"]


def test_a_photo_is_fake_when_any_face_is_and_cant_tell_when_any_face_cant():
    from pipeline import checking

    assert checking.photo_answer(["real", "unsure", "fake"]) == "fake"
    assert checking.photo_answer(["real", "unsure"]) == "unsure"
    assert checking.photo_answer(["real", "real"]) == "real"
    assert checking.photo_answer([]) is None


def test_the_rules_bench_replays_recorded_faces_through_the_verdict():
    """bench/bench_verdict_rules.py judges recorded check inputs again under another policy: the same face
    with a copy 2 band half-widths across is "can't tell" at margin 1 and fake at margin 3."""
    import dataclasses

    from bench.bench_verdict_rules import photo_answer

    policy = verdict_fit.fit_policy(_scores(300, 22), "m")
    face, near = _raw_at_margin(policy, 5), _raw_at_margin(policy, -2)
    recorded = {"p_raw": face, "p_perturbed": [face, face, near, face, face], "ood": False, "kind": None,
                "perturbed_kinds": None}
    assert photo_answer(policy, [recorded]) == verdict.UNSURE
    assert photo_answer(dataclasses.replace(policy, flip_margin=3.0), [recorded]) == verdict.FAKE
    assert photo_answer(policy, [{**recorded, "ood": True}]) == verdict.UNSURE
    assert photo_answer(policy, []) == verdict.UNSURE
    assert photo_answer(dataclasses.replace(policy, stability=False), [recorded]) == verdict.FAKE  # no copy judged
    with pytest.raises(ValueError, match="names no copy"):  # a policy cannot hold an empty check: it is turned off
        dataclasses.replace(policy, stability_copies=[])


@pytest.mark.parametrize("bad", [-0.5, 0, 0.5, "3", True, float("nan"), float("inf")])
def test_flip_margin_must_be_a_number_from_one(bad):
    from pipeline import config_load

    with pytest.raises(config_load.ConfigError, match="flip_margin"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                               "verdict": {"flip_margin": bad}})


def test_policies_fitted_before_flip_margin_existed_stay_current():
    """At its default (1) the margin is not part of the policy's settings, so a verdict.json fitted before the
    option existed keeps its key and is not called stale; any other margin refits the policy."""
    import dataclasses

    from pipeline import config_load

    cfg = config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}]})
    assert verdict.settings_of(cfg) == {"max_false_positive_rate": 0.03, "unsure_share": 0.10,
                                        "calibration": "platt", "stability": True, "per_kind": True}
    wide = dataclasses.replace(cfg, verdict=dataclasses.replace(cfg.verdict, flip_margin=3.0))
    assert verdict.settings_of(wide)["flip_margin"] == 3.0


def _routed_scores(n: int, seed: int) -> pd.DataFrame:
    """Scores of two kinds of image, each routed to its own kind: on "hard" the model barely separates
    real from fake and its reals score high, on "easy" it separates them well."""
    rng = np.random.default_rng(seed)
    parts = []
    for d, shift, centre in (("easy", 2.5, -1.0), ("hard", 0.4, 1.5)):
        y = np.repeat([0, 1], n)
        z = rng.normal(centre + np.where(y == 1, shift, -shift), 1.0)
        parts.append(pd.DataFrame({"dataset": d, "routed_to": d, "y": y, "p_fake": calibration.sigmoid(z)}))
    return pd.concat(parts, ignore_index=True)


def test_each_kind_of_image_gets_its_own_operating_point_and_keeps_the_false_accusation_rate():
    val, test = _routed_scores(400, 31), _routed_scores(400, 32)
    pooled = verdict_fit.fit_policy(val, "m", per_kind=False)
    per_kind = verdict_fit.fit_policy(val, "m")
    assert pooled.by_kind == {} and set(per_kind.by_kind) == {"easy", "hard"}
    assert per_kind.by_kind["easy"]["threshold"] < per_kind.by_kind["hard"]["threshold"]
    a = verdict_fit.policy_table(pooled, test).set_index("scope")
    b = verdict_fit.policy_table(per_kind, test).set_index("scope")
    assert (b["fpr_decided"] <= 0.05).all(), b
    assert b.loc["easy", "recall_fake_decided"] > a.loc["easy", "recall_fake_decided"] + 0.1
    # a face the router sends to "easy" is judged at easy's point; a kind nobody fitted uses the pooled one
    raw = 0.5
    easy = verdict.decide(per_kind, raw, kind="easy")
    assert easy["kind"] == "easy" and easy["threshold"] == pytest.approx(per_kind.by_kind["easy"]["threshold"], abs=1e-6)
    unknown = verdict.decide(per_kind, raw, kind="never-seen")
    assert unknown["kind"] is None and unknown["threshold"] == pytest.approx(per_kind.threshold, abs=1e-6)
    assert verdict.decide(per_kind, raw)["threshold"] == pytest.approx(per_kind.threshold, abs=1e-6)


def test_a_kind_with_too_few_validation_images_uses_the_pooled_point():
    val = _routed_scores(300, 33)
    few = val[val["dataset"] == "hard"].groupby("y").head(verdict_fit.KIND_MIN_PER_CLASS - 1)
    policy = verdict_fit.fit_policy(pd.concat([val[val["dataset"] == "easy"], few]), "m")
    assert set(policy.by_kind) == {"easy"}


def test_a_perturbed_copy_judged_at_its_own_kind_can_flip_the_answer():
    policy = verdict_fit.fit_policy(_routed_scores(400, 34), "m")
    easy_t, hard_t = policy.by_kind["easy"]["threshold"], policy.by_kind["hard"]["threshold"]
    raw = float(np.sqrt(easy_t * hard_t))  # between the two thresholds (calibrators differ: pick by margin)
    z_easy = policy.margin(np.array([raw]), np.array(["easy"]))[0]
    z_hard = policy.margin(np.array([raw]), np.array(["hard"]))[0]
    assert (z_easy >= 0) != (z_hard >= 0)  # this score is fake at one kind's point and real at the other's
    out = verdict.decide(policy, raw, p_perturbed=[raw] * 5, kind="easy", perturbed_kinds=["hard"] * 5)
    assert out["verdict"] == "unsure" and len(out["unstable_under"]) == 5


def _inverse(policy):
    """A calibrator that maps a calibrated probability back to the raw score (Platt is invertible)."""
    a, b = policy.calibrator["a"], policy.calibrator["b"]
    return {"method": "platt", "a": 1 / a, "b": -b / a}


def test_perturbations_keep_the_face_recognisable():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)
    out = verdict.perturbations(rgb)
    assert len(out) == len(verdict.PERTURBATIONS)
    assert out[2].shape[:2] == (40, 30) and out[3].shape[:2] == (160, 120) and out[4].shape[:2] == (72, 54)
    assert all(o.dtype == np.uint8 and o.shape[2] == 3 for o in out)


# --------------------------------------------------------------------------- faces from ../shared


@pytest.fixture(scope="module")
def real_face():
    from conftest import SHARED_DATA
    from pipeline import images

    path = SHARED_DATA / "faces140k" / "real"
    if not path.is_dir():
        pytest.skip(f"real face images not found at {path} (a clone without ../shared/data)")
    return images.load_rgb(sorted(path.iterdir())[3])


def test_a_photo_framed_like_the_training_images_is_scored_whole(real_face):
    from pipeline import faces

    found = faces.detect_faces(real_face)
    assert found
    framed = faces.frame_faces(real_face, found[:1], face_fraction=0.45)
    assert framed[0].crop.shape == real_face.shape  # the exact pixels the detectors were trained on


@pytest.mark.parametrize("bar", ["letterbox", "pillarbox"])
def test_crops_never_take_in_letterbox_bars(real_face, bar):
    from pipeline import faces

    h, w = real_face.shape[:2]
    canvas = np.zeros((h + 200, w, 3), np.uint8) if bar == "letterbox" else np.zeros((h, w + 200, 3), np.uint8)
    y0, x0 = (100, 0) if bar == "letterbox" else (0, 100)
    canvas[y0:y0 + h, x0:x0 + w] = real_face
    assert faces.content_box(canvas) == (x0, y0, w, h)
    [face] = faces.frame_faces(canvas, faces.detect_faces(canvas)[:1], face_fraction=0.45)
    x, y, cw, ch = face.crop_box
    assert x >= x0 and y >= y0 and x + cw <= x0 + w and y + ch <= y0 + h
    assert np.array_equal(face.crop, real_face[y - y0:y - y0 + ch, x - x0:x - x0 + cw])


def test_two_faces_side_by_side_get_separate_crops(real_face):
    from pipeline import faces

    pair = np.concatenate([real_face, real_face], axis=1)
    found = faces.frame_faces(pair, faces.detect_faces(pair), face_fraction=0.45)
    assert len(found) >= 2
    left, right = sorted(found, key=lambda f: f.box[0])[:2]
    for me, other in ((left, right), (right, left)):
        x, y, w, h = me.crop_box
        ox, oy, ow, oh = other.box
        overlap_x = min(x + w, ox + ow) - max(x, ox)
        overlap_y = min(y + h, oy + oh) - max(y, oy)
        assert overlap_x <= 0 or overlap_y <= 0, "a crop reaches into the neighbouring face"


def test_an_image_without_a_face_is_refused_unless_asked(real_face):
    from pipeline import checking

    yy, xx = np.mgrid[0:256, 0:256]
    gradient = np.stack([xx, yy, 255 - xx], axis=-1).astype(np.uint8)
    refused = checking.check_image("gradient.png", gradient, {}, crop_faces=True)
    assert refused.faces == [] and refused.note == checking.NO_FACE_NOTE and "judges faces" in refused.note
    asked = checking.check_image("gradient.png", gradient, {}, crop_faces=True, whole_image_if_no_face=True)
    assert asked.note == checking.WHOLE_IMAGE_NOTE


def test_evaluate_reports_balanced_accuracy_per_class_recall_and_the_verdict(tiny_run, tmp_path):
    from conftest import write_images
    from pipeline import config, runner

    folder = tmp_path / "lopsided"
    write_images(folder / "real", "real", 10, seed=41)
    write_images(folder / "fake", "fake", 90, seed=42)
    _, summary = runner.evaluate_folders(tiny_run, [config.DataSource(str(folder))],
                                         artifacts_root=str(tmp_path / "art"))
    pooled = summary[(summary["scope"] == "all") & (summary["model"] != "verdict")]
    for col in ("balanced_accuracy", "recall_real", "recall_fake", "eer", "tpr_at_fpr_5pct", "ece", "brier"):
        assert pooled[col].notna().all(), col
    row = pooled.iloc[0]
    assert row["balanced_accuracy"] == pytest.approx((row["recall_real"] + row["recall_fake"]) / 2)
    v = summary[summary["model"] == "verdict"].set_index("scope")
    assert set(v.index) == {"all", "lopsided"} and v.loc["all", "n"] == 100
    assert 0 <= v.loc["all", "coverage"] <= 1


def test_out_of_distribution_score_flags_a_picture_unlike_the_training_photos():
    from conftest import face_like
    from pipeline import ood

    rng = np.random.default_rng(0)
    train = ood.features([face_like(k, rng, 48) for k in ["real", "fake"] * 60])
    val = ood.features([face_like(k, rng, 48) for k in ["real", "fake"] * 30])
    matrix, threshold = ood.fit(train, val)
    alike = ood.distance(matrix, ood.features([face_like("real", rng, 48) for _ in range(20)]))
    stripes = np.zeros((48, 48, 3), np.uint8)
    stripes[::4] = 255  # a picture made of hard horizontal lines: nothing like a face
    unlike = ood.distance(matrix, ood.features([stripes, rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)]))
    assert (alike <= threshold).mean() >= 0.9 and (unlike > threshold).all()
    policy = verdict_fit.fit_policy(_scores(200, 3), "m")
    policy.ood, policy.ood_threshold = matrix, threshold
    assert list(policy.out_of_distribution([face_like("real", rng, 48), stripes])) == [False, True]
    assert verdict.OOD_REASON in verdict.decide(policy, 0.0001, out_of_distribution=True)["reasons"]


def test_a_face_unlike_the_training_photos_by_its_clip_embedding_is_out_of_distribution(monkeypatch):
    """Runs with a CLIP detector also fit the distance on CLIP embeddings: a photo whose coarse look is
    ordinary but whose content is not (here: an embedding far from the training cloud) is flagged."""
    from pipeline import ood

    rng = np.random.default_rng(1)
    centre = rng.normal(size=512)
    cloud = lambda n: centre + 0.1 * rng.normal(size=(n, 512))  # noqa: E731
    matrix, threshold = ood.fit(cloud(400), cloud(200))
    policy = verdict_fit.fit_policy(_scores(200, 3), "m")
    assert not policy.out_of_distribution([np.zeros((8, 8, 3), np.uint8)]).any()  # nothing fitted: never flags
    policy.ood_clip, policy.ood_clip_threshold = matrix, threshold
    faces = [np.full((8, 8, 3), i, np.uint8) for i in range(3)]
    embeddings = np.vstack([cloud(2), -centre[None]])  # two alike, one unlike
    monkeypatch.setattr(ood, "clip_features", lambda images: embeddings[:len(images)])
    assert list(policy.out_of_distribution(faces)) == [False, False, True]
    assert "ood_clip" not in policy.to_json() and policy.to_json()["ood_clip_threshold"] == threshold


def test_a_small_background_face_does_not_shrink_the_crop(real_face):
    """Training photos (lfw) have people in the background: only a neighbour of comparable size is kept out."""
    from pipeline import faces

    canvas = np.full((400, 700, 3), 90, np.uint8)
    canvas[72:328, 40:296] = real_face
    [main] = faces.detect_faces(canvas)[:1]
    x, y, w, h = main.box
    small = faces.Face((x + w + 30, y, w // 3, h // 3), 0.95, canvas[:10, :10], (0, 0, 10, 10))
    alone = faces.frame_faces(canvas, [main], face_fraction=0.3)[0].crop_box
    assert faces.frame_faces(canvas, [main, small], face_fraction=0.3)[0].crop_box == alone
    big = faces.Face((x + w + 30, y, w, h), 0.95, canvas[:10, :10], (0, 0, 10, 10))
    assert faces.frame_faces(canvas, [main, big], face_fraction=0.3)[0].crop_box != alone


def test_a_square_photo_framed_like_training_is_scored_whole_with_a_second_person_in_it(real_face):
    """lfw_faceswap's training photos often show two people, and the detectors saw them whole: such a
    photo is scored whole for its main face, not cropped to keep the other person out (that crop is a
    picture the detectors never saw). A photo not framed like training is still cropped without its
    neighbour."""
    from pipeline import faces

    [main] = faces.detect_faces(real_face)[:1]
    x, y, w, h = main.box
    H, W = real_face.shape[:2]
    beside = faces.Face((min(W - w, x + w // 2), y, w, h), 0.99, real_face[:10, :10], (0, 0, 10, 10))
    fraction = 0.9 * max(w, h) / min(H, W)  # the main face is framed like the training photos
    framed = faces.frame_faces(real_face, [main, beside], face_fraction=fraction)
    assert framed[0].crop.shape == real_face.shape
    # the other face, as large, gets its own crop, not a second copy of the whole photo
    assert framed[1].crop_box != (0, 0, W, H) and framed[1].crop.shape != real_face.shape
    # the same photo on a wider canvas is not framed like training: cropped, the other face kept out
    # (test_two_faces_side_by_side_get_separate_crops)
    wide = np.concatenate([real_face, real_face], axis=1)
    [left, right] = faces.frame_faces(wide, [main, faces.Face((x + W, y, w, h), 0.99, wide[:10, :10], (0, 0, 10, 10))],
                                      face_fraction=fraction)
    assert left.crop_box[0] + left.crop_box[2] <= x + W


def test_a_square_photo_framed_like_training_keeps_its_own_bars_and_a_plain_wall_is_not_a_bar(real_face):
    """LFW's own photos (TV captures) carry black bars: a photo framed like them is scored whole, as in
    training. A plain grey stripe at the edge of a photo (a wall, the sky) is not a letterbox bar."""
    from pipeline import faces

    tv = real_face.copy()
    tv[:20] = 0
    [face] = faces.frame_faces(tv, faces.detect_faces(tv)[:1], face_fraction=0.3)
    assert face.crop.shape == tv.shape
    wall = np.concatenate([np.full((120, 256, 3), 128, np.uint8), real_face], axis=0)
    assert faces.content_box(wall) == (0, 0, 256, 376)


def test_the_verdict_settings_refit_the_policy_but_never_change_the_run_id():
    """The band, false-accusation rate, calibration, stability and per-kind switches train nothing: they change
    the policy's key (verdict.json is refitted), not the run id; the combined model's members do change it."""
    import dataclasses

    from pipeline import config, config_load

    cfg = config_load.load(config.DEFAULT_CONFIG)
    fp = config.config_fingerprint(cfg)
    for change in [{"per_kind": False}, {"unsure_share": 0.2}, {"max_false_positive_rate": 0.01},
                   {"calibration": "isotonic"}, {"stability": False}, {"flip_margin": 2.0},
                   {"stability_copies": ("half size",)}]:
        other = dataclasses.replace(cfg, verdict=dataclasses.replace(cfg.verdict, **change))
        assert config.config_fingerprint(other) == fp, change
        assert verdict.settings_of(other) != verdict.settings_of(cfg), change  # the policy is refitted
    fewer = dataclasses.replace(cfg, verdict=dataclasses.replace(cfg.verdict, members=cfg.verdict.members[:2]))
    assert config.config_fingerprint(fewer) != fp


def test_a_run_with_a_combined_model_keeps_the_id_it_had_before_the_verdict_settings_left_it():
    """Pinned: the fingerprint hash this config had when the policy settings were still hashed as they were
    (their defaults then: 3%, 10%, platt, stability and per-kind on). A slip in the fixed values the id now
    hashes them at would silently give every run with a combined model a new id and retrain nothing but
    orphan its folder."""
    from pipeline import artifacts, config, config_load

    cfg = config_load.from_dict({"name": "x", "data": ["/nowhere"],
                                 "models": [{"name": "baseline_cnn"}, {"name": "custom_cnn"}],
                                 "verdict": {"members": ["baseline_cnn", "custom_cnn"], "unsure_share": 0.3}})
    assert artifacts.stable_hash(config.config_fingerprint(cfg))[:16] == "a91c2cb0262c23be"


def test_ece_noise_floor_is_the_ece_of_exact_probabilities_and_shrinks_with_n():
    """Binned ECE is positive even for exact probabilities; the floor says how much at a given n, so an ECE is
    read against it (a perfectly calibrated set stays under its 95th percentile about 19 times in 20)."""
    from pipeline import calibration

    rng = np.random.default_rng(0)
    small, large = rng.random(150), rng.random(3000)
    mean_small, p95_small = calibration.ece_noise_floor(small)
    mean_large, _ = calibration.ece_noise_floor(large)
    assert 0.03 < mean_small < p95_small < 0.12 and mean_large < mean_small / 2
    under = [calibration.expected_calibration_error(rng.random(150) < small, small) <= p95_small for _ in range(200)]
    assert 0.88 <= np.mean(under) <= 0.99
    biased = np.clip(small + 0.25, 0, 1)  # claims 25 points more fake than the labels are
    assert calibration.expected_calibration_error(rng.random(150) < small, biased) > p95_small
    assert all(np.isnan(calibration.ece_noise_floor([])))


def test_a_face_called_real_above_even_odds_says_why():
    """A strict operating point (few real photos called fake) can call a face real at 80% "fake": the headline
    must not read as a contradiction ("Likely real — 80% fake") but name the line it stayed under."""
    from pipeline.verdict import headline

    assert headline("real", 0.8, threshold=0.883) == "Likely real — 80% fake, under the 88% needed to call it fake"
    assert headline("real", 0.08, threshold=0.883) == "Likely real — 8% fake"
    assert headline("fake", 0.91, threshold=0.883) == "Likely fake — 91%"



# --------------------------------------------------------------------------- which stability-check copies

COPIES_TWO = ("JPEG quality 75", "half size")


@pytest.mark.parametrize("bad", [[], ["JPEG 75"], ["half size", "half size"], "half size", [75], True,
                                 [["half size"]], [{"a": 1}]])
def test_stability_copies_must_name_known_copies_once(bad):
    from pipeline import config_load

    with pytest.raises(config_load.ConfigError, match="stability_copies"):
        config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                               "verdict": {"stability_copies": bad}})


def test_fewer_copies_refit_the_policy_in_one_order_and_all_five_keep_old_policies_current():
    """All five copies (the default) stay out of the policy's settings, so a verdict.json fitted before the option
    existed keeps its key; fewer copies are a setting, the same whatever order the config lists them in."""
    import dataclasses

    from pipeline import config_load

    cfg = config_load.from_dict({"name": "x", "data": ["/nowhere"], "models": [{"name": "baseline_cnn"}],
                                 "verdict": {"stability_copies": list(verdict.PERTURBATIONS)[::-1]}})
    assert "stability_copies" not in verdict.settings_of(cfg)

    def with_copies(copies):
        return verdict.settings_of(dataclasses.replace(cfg, verdict=dataclasses.replace(cfg.verdict,
                                                                                         stability_copies=copies)))

    assert with_copies(COPIES_TWO)["stability_copies"] == list(COPIES_TWO)
    assert with_copies(COPIES_TWO[::-1]) == with_copies(COPIES_TWO)
    assert with_copies(("half size",)) != with_copies(COPIES_TWO)


def test_perturbations_make_only_the_named_copies_in_their_order():
    rgb = np.random.default_rng(1).integers(0, 255, (80, 60, 3), dtype=np.uint8)
    half, jpeg = verdict.perturbations(rgb, ["half size", "JPEG quality 75"])[::-1]  # made in PERTURBATIONS order
    assert jpeg.shape == rgb.shape and half.shape[:2] == (40, 30)
    assert np.array_equal(jpeg, verdict.perturbations(rgb)[0]) and np.array_equal(half, verdict.perturbations(rgb)[2])
    with pytest.raises(ValueError, match="unknown stability-check copies"):
        verdict.perturbations(rgb, ["sepia"])


def test_a_policy_with_two_copies_names_its_flips_and_refuses_scores_of_other_copies():
    policy = verdict_fit.fit_policy(_scores(300, 22), "m", stability_copies=COPIES_TWO[::-1])
    assert policy.stability_copies == list(COPIES_TWO)
    face, across = _raw_at_margin(policy, 5), _raw_at_margin(policy, -5)
    flipped = verdict.decide(policy, face, p_perturbed=[face, across])
    assert flipped["verdict"] == verdict.UNSURE and flipped["unstable_under"] == ["half size"]
    with pytest.raises(ValueError, match="5 stability-check scores for the policy's 2 copies"):
        verdict.decide(policy, face, p_perturbed=[face] * 5)
    with pytest.raises(ValueError, match="at least one copy"):
        verdict_fit.fit_policy(_scores(300, 22), "m", stability_copies=())
    saved = verdict.VerdictPolicy(**json.loads(json.dumps(policy.to_json())))  # verdict.json round trip
    assert saved.stability_copies == list(COPIES_TWO)
    # a policy written by hand in another order, or with a copy twice, still names its flips right
    by_hand = verdict.VerdictPolicy(**{**policy.to_json(), "stability_copies": ["half size", "JPEG quality 75",
                                                                               "half size"]})
    assert verdict.decide(by_hand, face, p_perturbed=[face, across])["unstable_under"] == ["half size"]
    assert verdict.copies_words(by_hand) == "re-saved as JPEG at quality 75 or shrunk to half size"


class _FakeWhenSmall:
    """A detector that calls any image narrower than ``width`` pixels fake: the half-size copy of a face flips it."""

    kind = "test_small_is_fake"
    image_size = None
    threshold = 0.5

    def __init__(self, width: int):
        self.width = width

    def predict_proba(self, rgb_images):
        return np.array([0.999 if im.shape[1] < self.width else 0.001 for im in rgb_images])


def test_the_check_path_scores_the_policys_copies_only():
    """A face that turns fake at half size: "can't tell" when the policy's copies include half size, "real" when
    they do not (nothing else changes it), and the reason names the copy."""
    from pipeline import checking

    rgb = np.random.default_rng(2).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    models = {"m": _FakeWhenSmall(width=64)}
    val = _scores(300, 22)
    for copies, answer in [(COPIES_TWO, verdict.UNSURE), (("JPEG quality 75",), verdict.REAL),
                           (verdict.PERTURBATIONS, verdict.UNSURE)]:
        policy = verdict_fit.fit_policy(val, "m", stability_copies=copies)
        out = checking.check_image("face", rgb, models, crop_faces=False, policy=policy, stability=True)
        face = out.faces[0].verdict
        assert face["verdict"] == answer, copies
        assert face["unstable_under"] == (["half size"] if answer == verdict.UNSURE else [])
