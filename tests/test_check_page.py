"""The single-image check (pipeline.checking) and the Check / Explain pages through AppTest."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import bad_inputs
from conftest import REPO, face_like
from pipeline import figures
from pipeline import checking, detectors, results, verdict

APP = str(REPO / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def loaded(tiny_run):
    return detectors.load_many(tiny_run)


def test_check_files_mixes_good_and_bad(loaded, tmp_path):
    corpus = bad_inputs.make_corpus(tmp_path / "corpus")
    rng = np.random.default_rng(5)
    face = tmp_path / "face.png"
    Image.fromarray(face_like("real", rng, 48)).save(face)
    items = [face, *(c.path for c in corpus.values()), ("upload.png", face.read_bytes())]
    checks = checking.check_files(items, loaded, crop_faces=False)
    assert [c.name for c in checks] == ["face.png", *(c.path.name for c in corpus.values()), "upload.png"]
    by_name = dict(zip([c.name for c in checks[1:-1]], corpus.values()))
    for check in checks[1:-1]:
        item = by_name[check.name]
        if item.ok:
            assert check.ok, (check.name, check.error)
        else:
            assert not check.ok and item.expect in check.error.lower(), (check.name, check.error)
            assert check.error.startswith(check.name)
    for check in (checks[0], checks[-1]) + tuple(c for c in checks if c.ok):
        assert len(check.faces) == 1 and check.faces[0].index == 0 and check.faces[0].box is None
        assert [r["model"] for r in check.faces[0].scores] == list(loaded)
        assert check.faces[0].ensemble["verdict"] in ("real", "fake")
    table = checking.results_table(checks)
    assert len(table) == len(checks)
    assert table["error"].notna().sum() == sum(not c.ok for c in checks)
    for m in loaded:
        assert f"{m}_p_fake" in table.columns


def test_check_with_face_crop_falls_back_to_whole_image(loaded):
    rgb = face_like("fake", np.random.default_rng(1), 64)  # a synthetic blob: no real face
    check = checking.check_image("blob.png", rgb, loaded, crop_faces=True, whole_image_if_no_face=True)
    assert check.detected == [] and check.note == checking.WHOLE_IMAGE_NOTE and len(check.faces) == 1
    none = checking.check_image("blob.png", rgb, loaded, crop_faces=True, whole_image_if_no_face=False)
    assert none.faces == [] and none.note == checking.NO_FACE_NOTE


def test_ensemble_rule():
    rec = lambda p, t: {"p_fake": p, "threshold": t, "verdict": "fake" if p >= t else "real"}  # noqa: E731
    at_threshold = checking.ensemble([rec(0.3, 0.3), rec(0.8, 0.8)])
    assert at_threshold["p_fake"] == pytest.approx(0.5) and at_threshold["verdict"] == "fake"
    # a confident "fake" outweighs a hesitant "real"
    mixed = checking.ensemble([rec(0.99, 0.5), rec(0.45, 0.5)])
    assert mixed["verdict"] == "fake" and mixed["votes_fake"] == 1 and mixed["n_models"] == 2
    assert checking.ensemble([])["verdict"] is None


def test_best_model_by_pooled_auc():
    import pandas as pd

    summary = pd.DataFrame({"model": ["a", "b", "a", "c"], "scope": ["all", "all", "x", "all"],
                            "roc_auc": [0.7, 0.9, 0.99, None]})
    assert checking.best_model(summary, ["a", "b", "c"]) == "b"
    assert checking.best_model(summary, ["a", "c"]) == "a"
    assert checking.best_model(summary, []) is None


def test_probability_and_image_figures():
    recs = [{"model": "m1", "p_fake": 0.8, "threshold": 0.4, "verdict": "fake"},
            {"model": "m2", "p_fake": 0.2, "threshold": 0.6, "verdict": "real"}]
    fig = figures.probability_bars_figure(recs, ensemble={"p_fake": 0.55, "verdict": "fake"})
    bars, ticks = fig.data
    assert list(bars.y) == ["m1", "m2", "log-odds vote"] and list(ticks.x) == [0.4, 0.6, 0.5]
    img = figures.image_figure(np.zeros((10, 12, 3), np.uint8), "t", colorscale=[[0, "rgb(0,0,0)"], [1, "rgb(1,1,1)"]],
                               tick_labels=("low", "high"))
    assert len(img.data) == 2 and img.data[1].showscale


def test_image_figure_sends_the_picture_as_a_lossless_png():
    """The browser gets one PNG, not a pixel array it must paint (most of its work per checked photo)."""
    import base64
    import io

    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    fig = figures.image_figure(rgb, "Where it looked", colorscale=[[0, "rgb(0,0,0)"], [1, "rgb(1,1,1)"]])
    picture = fig.data[0]
    assert picture.z is None and picture.source.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(picture.source.split(",", 1)[1]))).convert("RGB"))
    np.testing.assert_array_equal(decoded, rgb)
    assert list(fig.layout.xaxis.range) == [-0.5, 22.5] and list(fig.layout.yaxis.range) == [16.5, -0.5]
    # one channel or floats over 255 (a heat map): a grey picture, clipped, not wrapped around
    grey = figures.png_data_uri(np.array([[[300.0]], [[-5.0]]]))
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(grey.split(",", 1)[1]))))
    assert back.tolist() == [[255], [0]]


def _app(monkeypatch, tiny_run, page: str) -> AppTest:
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(tiny_run.parent))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _headings(at: AppTest) -> list[str]:
    """Titles and subheaders in page order (``at.subheader`` comes back empty in Streamlit 1.67)."""
    found = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            if getattr(child, "type", None) in ("title", "header", "subheader"):
                found.append(child.value)
            walk(child)

    walk(at._tree)
    return found


def test_check_page_renders_without_upload(monkeypatch, tiny_run):
    at = _app(monkeypatch, tiny_run, "app_pages/check.py")
    assert at.title[0].value == "Check an image"
    assert any("Upload one or more photos" in i.value for i in at.info)
    assert at.toggle(key="check_crop").value is True


def test_explain_page_renders_a_test_image(monkeypatch, tiny_run):
    from pipeline import explain_lime

    at = _app(monkeypatch, tiny_run, "app_pages/explain.py")
    assert at.title[0].value == "Explain"
    assert _headings(at) == ["Explain", "Where each model looks", "LIME", "Feature maps"]
    assert not at.warning, [w.value for w in at.warning]
    # the feature maps are a lazy expander: computed once opened
    assert not [w for w in at.selectbox if w.key == "explain_fm_layer"]
    n_images = len(at.get("image"))
    at.session_state["explain_fm_open"] = True
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="explain_fm_layer").value
    assert len(at.get("image")) > n_images  # the channel grid
    at.selectbox(key="explain_outcome").select("wrong").run()
    assert not at.exception
    if not at.number_input:  # the tiny model made no mistakes: the page says so and stops
        assert any("No test image matches" in i.value for i in at.info)
        at.selectbox(key="explain_outcome").select("correct").run()
        assert not at.exception
    assert any("maps computed in" in c.value for c in at.caption)
    assert at.number_input(key="explain_lime_samples").value == 0  # automatic: a time budget
    assert any("about 8 s on this server" in i.value for i in at.info)
    at.button(key="explain_lime_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    caption = next(c.value for c in at.caption if "segments ·" in c.value)
    n = int(caption.split(" samples")[0].split("· ")[-1])
    assert explain_lime.LIME_MIN_SAMPLES <= n <= explain_lime.LIME_DEFAULT_SAMPLES and "took" in caption
    at.number_input(key="explain_lime_samples").set_value(50).run()
    at.button(key="explain_lime_run").click().run()
    assert any("· 50 samples" in c.value for c in at.caption)


def test_explain_maps_the_best_model_first_and_scores_test_images_from_their_stored_predictions(monkeypatch,
                                                                                               tiny_run):
    from pipeline import checking, results

    run = results.load_run(results.info_at(tiny_run))
    best = checking.best_model(run.summary(), ["baseline_cnn", "custom_cnn"])
    at = _app(monkeypatch, tiny_run, "app_pages/explain.py")
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="explain_map_models").value == [best]
    assert any(c.value.startswith("3 maps computed in") for c in at.caption)
    # the bars show the stored test predictions, which are what the models give the image now
    from pipeline import detectors, images

    preds = run.predictions("custom_cnn")
    row = preds[preds["split"] == "test"].iloc[0]
    live = detectors.score_records([images.load_rgb(str(row["path"]))],
                                   detectors.load_many(tiny_run, ["custom_cnn"]))[0][0]["p_fake"]
    assert live == pytest.approx(float(row["p_fake"]), abs=2e-3)
    at.multiselect(key="explain_map_models").set_value(["baseline_cnn", "custom_cnn"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("6 maps computed in") for c in at.caption)


def test_the_verdict_bar_says_what_the_headline_says():
    """A face the router judged at a higher line: the combined model's raw 0.98 is over its pooled threshold,
    but the verdict is "Can't tell". The chart's top bar must show the verdict (calibrated P(fake) against
    the threshold that judged it), not "0.980 · fake"."""
    face = checking.FaceCheck(
        index=1, box=None, confidence=None, crop=np.zeros((4, 4, 3), np.uint8), scores=[], ensemble={},
        combined={"model": "ensemble_routed", "p_fake": 0.98, "threshold": 0.4965, "verdict": "fake"},
        verdict={"model": "ensemble_routed", "verdict": "unsure", "p_fake": 0.91, "threshold": 0.93,
                 "reasons": [verdict.BAND_REASON]})
    bar = checking.verdict_bar(face)
    assert {k: bar[k] for k in ("model", "p_fake", "threshold", "verdict")} == {
        "model": "verdict (ensemble_routed)", "p_fake": 0.91, "threshold": 0.93, "verdict": "can't tell"}
    ticks = figures.probability_bars_figure([bar, {"model": "m", "p_fake": 0.2, "threshold": 0.5, "verdict": "real"}],
                                            ensemble={"p_fake": 0.4, "verdict": "real"}).data[1].hovertemplate
    assert "can't tell" in ticks[0] and "own cut-off" in ticks[1] and "own cut-off" in ticks[2]  # a bar past the line
    # can still be "can't tell": its tick says so; the models' ticks and the vote's keep their own words
    face.verdict = None
    assert checking.verdict_bar(face)["verdict"] == "fake"  # no policy: the combined model's own answer
    face.combined = None
    assert checking.verdict_bar(face) is None
    fig = figures.probability_bars_figure([{"model": "verdict (m)", "p_fake": 0.91, "threshold": 0.93,
                                            "verdict": "can't tell"}])
    assert fig.data[0].text[0] == "0.910 · can't tell"
