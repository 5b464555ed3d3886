"""Exploration analyses and their figures: detector correlation, near-duplicate leakage (pHash),
nearest neighbours in an embedding, readable heat-map text."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import correlation, figures_explore, leakage, neighbours


# --------------------------------------------------------------------------- correlation

def _preds(p: np.ndarray, split: str = "test", offset: int = 0) -> pd.DataFrame:
    n = len(p)
    return pd.DataFrame({"path": [f"/d/img_{i + offset}.jpg" for i in range(n)], "relpath": [f"x/img_{i}.jpg" for i in range(n)],
                         "dataset": ["a"] * n, "label": ["real", "fake"] * (n // 2), "split": [split] * n, "p_fake": p})


def test_score_table_joins_on_path_and_keeps_only_the_split():
    rng = np.random.default_rng(0)
    a = pd.concat([_preds(rng.random(10)), _preds(rng.random(4), split="val", offset=100)])
    b = _preds(rng.random(10)).iloc[2:]  # b lacks two images: only the common ones stay
    table = correlation.score_table({"a": a, "b": b})
    assert len(table) == 8
    assert correlation.model_columns(table) == ["a", "b"]
    assert set(table["path"]) == set(b["path"])


def test_score_table_needs_two_models():
    with pytest.raises(ValueError, match="at least two models"):
        correlation.score_table({"a": _preds(np.linspace(0, 1, 6))})


def test_spearman_correlation_sign_and_rank_invariance():
    p = np.linspace(0.1, 0.9, 20)
    table = correlation.score_table({"a": _preds(p), "same_order": _preds(p ** 3), "reverse": _preds(1 - p)})
    corr = correlation.score_correlation(table)
    assert corr.loc["a", "same_order"] == pytest.approx(1.0)  # monotone transform: same ranks
    assert corr.loc["a", "reverse"] == pytest.approx(-1.0)
    assert correlation.most_alike(corr)[:2] == ("a", "same_order")
    assert correlation.least_alike(corr)[:2] in {("a", "reverse"), ("same_order", "reverse")}


def test_disagreements_puts_the_most_contested_image_first():
    p = np.linspace(0.05, 0.95, 10)
    q = p.copy()
    q[0], q[9] = 0.99, 0.01  # b reverses the two extreme images
    table = correlation.score_table({"a": _preds(p), "b": _preds(q)})
    top = correlation.disagreements(table, top=2)
    assert set(top["path"]) == {"/d/img_0.jpg", "/d/img_9.jpg"}
    assert top["disagreement"].iloc[0] == pytest.approx(0.9)
    first = top.iloc[0]
    assert {first["most_fake"], first["most_real"]} == {"a", "b"}


# --------------------------------------------------------------------------- leakage

def _photo(rng, size=96) -> np.ndarray:
    base = rng.integers(0, 255, (8, 8, 3)).astype(np.uint8)
    return np.array(Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC))


def test_perceptual_hash_finds_a_reencoded_copy_across_splits(tmp_path):
    rng = np.random.default_rng(1)
    paths, splits = [], []
    for i in range(6):
        p = tmp_path / f"train_{i}.png"
        Image.fromarray(_photo(rng)).save(p)
        paths.append(str(p))
        splits.append("train")
    # test 0: train_2 re-saved as JPEG quality 70 and scaled to 80 px; test 1: a new picture
    copy = tmp_path / "test_copy.jpg"
    Image.open(paths[2]).resize((80, 80)).save(copy, quality=70)
    other = tmp_path / "test_other.png"
    Image.fromarray(_photo(rng)).save(other)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    paths += [str(copy), str(other), str(broken)]
    splits += ["test", "test", "test"]
    seen = []
    hashes = leakage.perceptual_hashes(paths, progress=lambda d, n: seen.append((d, n)), every=4)
    assert hashes.ok.tolist() == [True] * 8 + [False]
    assert seen[-1] == (9, 9)
    pairs = leakage.cross_split_pairs(hashes, splits)
    assert list(zip(pairs["i"], pairs["j"])) == [(6, 2)]
    assert pairs["split_i"].iloc[0] == "test" and pairs["split_j"].iloc[0] == "train"
    manifest = pd.DataFrame({"dataset": ["d"] * 9, "label": ["real"] * 9, "split": splits,
                             "relpath": [p.rsplit("/", 1)[-1] for p in paths], "path": paths})
    table = leakage.pairs_table(pairs, manifest)
    assert table.loc[0, "relpath_a"] == "test_copy.jpg" and table.loc[0, "relpath_b"] == "train_2.png"
    counts = leakage.counts_per_dataset(pairs, manifest)
    row = counts.iloc[0]
    assert (row["test images"], row["test with a training near-duplicate"]) == (3, 1)
    assert row["share of test"] == pytest.approx(1 / 3)


def test_hamming_counts_bits_and_lengths_must_match():
    d = leakage.hamming(np.array([0b1011], dtype=np.uint64), np.array([0, 0b1000, 2 ** 64 - 1], dtype=np.uint64))
    assert d.tolist() == [[3, 2, 61]]
    with pytest.raises(ValueError, match="split labels"):
        leakage.cross_split_pairs(leakage.Hashes(np.zeros(3, np.uint64), np.ones(3, bool)), ["train"])


def test_no_pairs_gives_an_empty_table_with_columns():
    h = leakage.Hashes(np.array([0, 2 ** 64 - 1], dtype=np.uint64), np.ones(2, bool))
    pairs = leakage.cross_split_pairs(h, ["train", "test"])
    assert pairs.empty and list(pairs.columns) == ["i", "j", "split_i", "split_j", "distance"]


# --------------------------------------------------------------------------- neighbours

def test_nearest_leaves_the_query_out_and_orders_by_cosine():
    X = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [2, 0.05]], dtype=float)
    nn = neighbours.nearest(X, 0, k=3)
    assert 0 not in nn["row"].tolist()
    assert nn["row"].tolist() == [4, 1, 2]
    assert nn["similarity"].is_monotonic_decreasing
    only = neighbours.nearest(X, 0, k=5, candidates=np.array([False, False, True, True, False]))
    assert only["row"].tolist() == [2, 3]
    with pytest.raises(IndexError):
        neighbours.nearest(X, 9)


# --------------------------------------------------------------------------- figures

@pytest.mark.parametrize("value, expect", [(-1.0, "#ffffff"), (0.0, "#1a1a1a"), (1.0, "#ffffff")])
def test_text_color_on_a_diverging_scale(value, expect):
    assert figures_explore.text_color_on("RdBu_r", value, -1, 1) == expect


def test_text_color_on_dark_red_cells_is_white():
    # the generalisation map (RdYlGn from 0.5): a cell at or below 0.5 is dark red
    assert figures_explore.text_color_on("RdYlGn", 0.45, 0.5, 1.0) == "#ffffff"
    assert figures_explore.text_color_on("RdYlGn", 0.75, 0.5, 1.0) == "#1a1a1a"
    assert figures_explore.text_color_on("RdYlGn", float("nan"), 0.5, 1.0) == "#1a1a1a"


def test_correlation_figure_annotates_every_cell_readably():
    corr = pd.DataFrame([[1.0, -0.9], [-0.9, 1.0]], index=["a", "b"], columns=["a", "b"])
    fig = figures_explore.correlation_figure(corr)
    (heat,) = fig.data
    assert [list(row) for row in heat.text] == [["1.00", "-0.90"], ["-0.90", "1.00"]]
    assert heat.texttemplate == "%{text}" and not fig.layout.annotations  # drawn by the heat map, not 4 annotations
    assert heat.textfont.color is None  # plotly.js then picks black or white per cell, whichever is readable
    assert fig.layout.margin.t >= figures_explore.TOP_MARGIN
    corr.iloc[0, 1] = float("nan")
    assert figures_explore.correlation_figure(corr).data[0].text[0][1] == "–"


def test_disagreement_and_leakage_and_neighbour_figures():
    rows = pd.DataFrame({"path": ["p1", "p2"], "relpath": ["fake/a.jpg", "real/b.jpg"], "dataset": ["d", "d"],
                         "label": ["fake", "real"], "m1": [0.9, 0.1], "m2": [0.2, 0.8]})
    fig = figures_explore.disagreement_figure(rows, ["m1", "m2"])
    assert [t.name for t in fig.data] == ["m1", "m2"]
    assert list(fig.data[0].y) == ["d · a.jpg (fake)", "d · b.jpg (real)"]
    counts = pd.DataFrame({"dataset": ["x", "y"], "test images": [10, 20], "test with a training near-duplicate": [1, 0],
                           "share of test": [0.1, 0.0]})
    bars = figures_explore.leakage_counts_figure(counts)
    assert list(bars.data[0].text) == ["1 of 10", "0 of 20"]
    nn = pd.DataFrame({"row": [3, 4], "distance": [0.1, 0.3], "similarity": [0.9, 0.7]})
    fig = figures_explore.neighbour_distance_figure(nn, ["n1", "n2"])
    assert list(fig.data[0].x) == [0.9, 0.7]


def test_stored_scores_of_one_image():
    a, b = _preds(np.array([0.2, 0.8])), _preds(np.array([0.6, 0.4]))
    recs = correlation.stored_scores({"a": a, "b": b, "c": a.iloc[0:0]}, {"a": 0.5, "b": 0.7}, "/d/img_1.jpg")
    assert recs == [{"model": "a", "p_fake": 0.8, "threshold": 0.5, "verdict": "fake"},
                    {"model": "b", "p_fake": 0.4, "threshold": 0.7, "verdict": "real"}]


def test_training_table_best_epoch_and_test_auc():
    from pipeline import training_results

    h1 = pd.DataFrame({"epoch": [0, 1, 2], "val_auc": [0.6, 0.8, 0.7]})
    h2 = pd.DataFrame({"epoch": [0, 1], "loss": [1.0, 0.9]})  # no validation AUC recorded
    summary = pd.DataFrame({"model": ["a", "a", "b"], "scope": ["all", "x", "all"], "roc_auc": [0.75, 0.9, 0.85],
                            "train_seconds": [12.0, 12.0, 3.0]})
    t = training_results.training_table({"a": h1, "b": h2, "c": h1}, summary)
    assert t["model"].tolist() == ["b", "a", "c"]  # by pooled test AUC; c has none
    a = t.set_index("model").loc["a"]
    assert (a["epochs"], a["best validation AUC"], a["at epoch"], a["test ROC-AUC"], a["training time (s)"]) == \
        (3, 0.8, 2, 0.75, 12.0)
    assert np.isnan(t.set_index("model").loc["b", "best validation AUC"])


def test_relative_paths_use_the_deepest_data_folder():
    from pipeline import display

    cfg = {"data": ["/d/all", {"path": "/d/all/faces140k", "name": "f"}]}
    roots = display.data_roots(cfg)
    assert roots == ["/d/all", "/d/all/faces140k"]
    s = display.relative_paths(pd.Series(["/d/all/faces140k/real/1.jpg", "/d/all/x/y.png", "/elsewhere/z.jpg"],
                                         index=[5, 6, 7]), roots)
    assert s.to_dict() == {5: "faces140k/real/1.jpg", 6: "all/x/y.png", 7: "/elsewhere/z.jpg"}


def test_2d_embedding_scatter_selects_on_click():
    # Streamlit turns click selection off while the drag mode is lasso or box select
    from pipeline import figures_embeddings

    df = pd.DataFrame({"pca2d_1": [0.0, 1.0], "pca2d_2": [1.0, 0.0], "label": ["real", "fake"], "dataset": ["d", "d"],
                       "split": ["test", "test"], "path": ["a.png", "b.png"], "p_fake": [0.2, 0.9]})
    fig = figures_embeddings.embedding_scatter_figure(df, ("pca2d_1", "pca2d_2"))
    assert fig.layout.dragmode not in ("lasso", "select")
    assert "select" in fig.layout.clickmode


def test_projector_fixes_in_the_shared_figures():
    """Titles clear of the toolbar, legends below the axis titles, readable numbers on dark cells."""
    from pipeline import figures, figures_experiments

    curves = {m: {"fpr": [0, 0.5, 1], "tpr": [0, 0.7, 1], "auc": 0.6, "precision": [1, 0.6, 0.5],
                  "recall": [0, 0.5, 1], "ap": 0.6} for m in ("a", "b", "c")}
    for fig in (figures.roc_figure(curves), figures.pr_figure(curves, prevalence=0.5)):
        assert fig.layout.margin.t >= figures.TITLE_BAND and fig.layout.title.yanchor == "bottom"
        assert fig.layout.legend.yref == "container" and fig.layout.legend.yanchor == "bottom"
        assert fig.layout.margin.b >= 70 + 21 * 3  # room for one legend entry per row under the axis title
    matrix = pd.DataFrame({"train_on": ["x", "x"], "test_on": ["x", "y"], "in_domain": [True, False], "n": [50, 50],
                           "roc_auc": [0.75, 0.45]})
    notes = {a.text.replace("<b>", "").replace("</b>", ""): a.font.color
             for a in figures_experiments.generalisation_figure(matrix).layout.annotations}
    assert notes == {"0.750": "#1a1a1a", "0.450": "#ffffff"}  # pale yellow cell: dark text; dark red: white
    cam = figures.image_figure(np.zeros((8, 8, 3), np.uint8), title="Where it looked", height=260)
    assert cam.layout.margin.t >= figures.TITLE_BAND and cam.layout.height == 260 + figures.TITLE_BAND - 30
    bars = figures.probability_bars_figure([{"model": "m", "p_fake": 0.7, "threshold": 0.5, "verdict": "fake"}])
    assert bars.layout.legend.y < 0 and "cut-off" in bars.data[1].hovertemplate
