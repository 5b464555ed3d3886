"""pipeline.figures: pure plotly builders, checked without Streamlit."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import pytest

from pipeline import figures, figures_experiments


def _history(n_train: int, n_fine: int = 0, restart_epochs: bool = False) -> pd.DataFrame:
    rows = []
    for i in range(n_train + n_fine):
        phase = "train" if i < n_train else "fine_tune"
        epoch = (i - n_train if i >= n_train else i) if restart_epochs else i + 1
        rows.append({"epoch": epoch, "phase": phase, "loss": 1 / (i + 1), "accuracy": 0.5 + i / 40,
                     "auc": 0.6 + i / 40, "val_loss": 1.1 / (i + 1), "val_accuracy": 0.5 + i / 50,
                     "val_auc": 0.55 + i / 50, "learning_rate": 1e-3})
    return pd.DataFrame(rows)


def test_model_colors_stable_and_distinct():
    c = figures.model_colors(["a", "b", "c"])
    assert len(set(c.values())) == 3
    assert figures.model_colors(["a", "b", "c"]) == c


def test_roc_figure():
    curves = {"cnn": {"fpr": [0, 0.2, 1], "tpr": [0, 0.8, 1], "auc": 0.8},
              "mobilenet": {"fpr": [0, 0.1, 1], "tpr": [0, 0.9, 1], "auc": 0.9}}
    fig = figures.roc_figure(curves)
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 3  # diagonal + 2 models
    assert list(fig.data[0].x) == [0, 1] and list(fig.data[0].y) == [0, 1]
    assert fig.data[1].name == "cnn (AUC 0.800)"
    assert list(fig.data[2].y) == [0, 0.9, 1]
    assert fig.layout.xaxis.title.text == "False positive rate"
    assert fig.layout.yaxis.title.text == "True positive rate"
    assert fig.data[1].line.color != fig.data[2].line.color


def test_roc_figure_colors_and_missing_curves():
    curves = {"a": {"fpr": [0, 1], "tpr": [0, 1], "auc": None}, "b": {"fpr": [], "tpr": [], "auc": None}}
    fig = figures.roc_figure(curves, colors={"a": "#123456"})
    assert len(fig.data) == 2
    assert fig.data[1].line.color == "#123456"
    assert fig.data[1].name == "a (AUC n/a)"
    assert any("b" in a.text and "one class" in a.text for a in fig.layout.annotations)


def test_pr_figure():
    curves = {"cnn": {"precision": [0.5, 0.8, 1.0], "recall": [1.0, 0.5, 0.0], "ap": 0.75},
              "vgg": {"precision": [0.5, 1.0], "recall": [1.0, 0.0], "ap": None}}
    fig = figures.pr_figure(curves)
    assert len(fig.data) == 2
    assert list(fig.data[0].x) == [1.0, 0.5, 0.0]  # recall on x
    assert fig.data[0].name == "cnn (AP 0.750)"
    assert fig.layout.xaxis.title.text.startswith("Recall")
    assert fig.layout.yaxis.title.text == "Precision"
    with_chance = figures.pr_figure(curves, prevalence=0.5)
    assert len(with_chance.data) == 3
    assert list(with_chance.data[-1].y) == [0.5, 0.5]


def test_confusion_matrix_figure_annotations_equal_counts():
    fig = figures.confusion_matrix_figure(tn=40, fp=10, fn=5, tp=45, title="cnn")
    assert fig.layout.title.text == "cnn"
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert list(heat.x) == ["pred. real", "pred. fake"]
    assert list(heat.y) == ["actual real", "actual fake"]
    assert heat.z[0][0] == pytest.approx(0.8) and heat.z[1][1] == pytest.approx(0.9)
    counts = {}
    for a in fig.layout.annotations:
        m = re.match(r"<b>(\d+)</b><br>([\d.]+)%", a.text)
        assert m, a.text
        counts[(a.y, a.x)] = (int(m.group(1)), float(m.group(2)))
    assert counts == {("actual real", "pred. real"): (40, 80.0), ("actual real", "pred. fake"): (10, 20.0),
                      ("actual fake", "pred. real"): (5, 10.0), ("actual fake", "pred. fake"): (45, 90.0)}
    assert fig.layout.xaxis.title.text == "Predicted"
    assert fig.layout.yaxis.title.text == "Actual"


def test_confusion_matrix_figure_empty_row():
    fig = figures.confusion_matrix_figure(0, 0, 3, 7)
    texts = sorted(a.text for a in fig.layout.annotations)
    assert "<b>0</b><br>0.0%" in texts and "<b>7</b><br>70.0%" in texts


def test_routing_confusion_figure_counts_and_row_shares():
    kinds = ["a", "b", "c"]  # c: a dataset images were routed to but none of the test images is from
    confusion = pd.DataFrame([[4, 2, 0], [0, 2, 1], [0, 0, 0]], index=kinds, columns=kinds)
    fig = figures_experiments.routing_confusion_figure(confusion)
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap)
    assert list(heat.x) == kinds and list(heat.y) == kinds
    assert heat.z[0] == pytest.approx([4 / 6, 2 / 6, 0]) and heat.z[1] == pytest.approx([0, 2 / 3, 1 / 3])
    assert heat.z[2] == pytest.approx([0, 0, 0])  # an empty row is no division by zero
    counts = {}
    for a in fig.layout.annotations:
        m = re.match(r"<b>(\d+)</b><br>([\d.]+)%", a.text)
        assert m, a.text
        counts[(a.y, a.x)] = int(m.group(1))
    assert counts == {(r, c): int(confusion.loc[r, c]) for r in kinds for c in kinds}
    assert fig.layout.xaxis.title.text == "Routed to" and fig.layout.yaxis.title.text == "True dataset"


def test_routing_confusion_figure_empty():
    fig = figures_experiments.routing_confusion_figure(pd.DataFrame())
    assert len(fig.data) == 0 and "no routed test images" in fig.layout.annotations[0].text


@pytest.mark.parametrize("metric", ["loss", "accuracy", "auc"])
def test_training_curves_figure(metric):
    hist = {"cnn": _history(4), "mobilenet": _history(3, 2)}
    fig = figures.training_curves_figure(hist, metric=metric)
    assert len(fig.data) == 4  # train + validation per model
    names = [t.name for t in fig.data]
    assert names == ["cnn · train", "cnn · validation", "mobilenet · train", "mobilenet · validation"]
    assert fig.data[0].line.dash == "solid" and fig.data[1].line.dash == "dash"
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert list(fig.data[1].y) == hist["cnn"][f"val_{metric}"].tolist()
    assert fig.layout.xaxis.title.text == "Epoch"
    assert fig.layout.yaxis.title.text == figures.metric_label(metric)
    # fine-tune start marked once (mobilenet only), between epochs 3 and 4
    assert len(fig.layout.shapes) == 1
    assert fig.layout.shapes[0].x0 == pytest.approx(3.5)
    assert any("mobilenet: fine-tune" in a.text for a in fig.layout.annotations)


def test_training_curves_epochs_restarting_per_phase():
    fig = figures.training_curves_figure({"m": _history(2, 2, restart_epochs=True)})
    assert list(fig.data[0].x) == [1, 2, 3, 4]
    assert fig.layout.shapes[0].x0 == pytest.approx(2.5)


def test_training_curves_missing_columns_and_empty():
    hist = _history(3).drop(columns=["val_auc"])
    fig = figures.training_curves_figure({"m": hist}, metric="auc")
    assert len(fig.data) == 1
    empty = figures.training_curves_figure({"m": pd.DataFrame()}, metric="loss")
    assert len(empty.data) == 0 and len(empty.layout.annotations) == 1


def test_counts_figure():
    rows = [(d, s, lab, n) for d in ("faces140k", "lfw_faceswap") for s, n in (("test", 3), ("train", 10), ("val", 2))
            for lab in ("fake", "real")]
    counts = pd.DataFrame(rows, columns=["dataset", "split", "label", "n"])
    fig = figures.counts_figure(counts)
    assert len(fig.data) == 2
    assert [t.name for t in fig.data] == ["real", "fake"]
    assert fig.layout.barmode == "group"
    real = fig.data[0]
    assert list(real.x[0]) == ["faces140k"] * 3 + ["lfw_faceswap"] * 3
    assert list(real.x[1]) == ["train", "val", "test"] * 2  # splits in pipeline order
    assert list(real.y) == [10, 2, 3] * 2
    assert sum(sum(t.y) for t in fig.data) == counts["n"].sum()
    assert fig.layout.yaxis.title.text == "Images"
    assert fig.data[0].marker.color == figures.LABEL_COLORS["real"]


def test_counts_figure_empty():
    fig = figures.counts_figure(pd.DataFrame(columns=["dataset", "split", "label", "n"]))
    assert len(fig.data) == 0 and fig.layout.annotations


def test_metric_bar_figure_one_scope():
    summary = pd.DataFrame({"model": ["a", "b", "c"], "scope": ["all"] * 3, "roc_auc": [0.7, 0.9, None]})
    fig = figures.metric_bar_figure(summary, "roc_auc")
    assert len(fig.data) == 1
    assert list(fig.data[0].x) == ["a", "b", "c"]
    assert list(fig.data[0].text) == ["0.700", "0.900", "n/a"]
    assert fig.layout.yaxis.title.text == "ROC-AUC"
    assert fig.layout.xaxis.title.text == "Model"
    assert tuple(fig.layout.yaxis.range) == (0, 1.05)


def test_metric_bar_figure_scopes_grouped():
    summary = pd.DataFrame({"model": ["a", "a", "b", "b"], "scope": ["all", "faces140k"] * 2,
                            "latency_ms_batch1": [1.0, 1.0, 3.0, 3.0]})
    fig = figures.metric_bar_figure(summary, "latency_ms_batch1")
    assert [t.name for t in fig.data] == ["all", "faces140k"]
    assert fig.layout.barmode == "group"
    assert fig.layout.yaxis.range is None


def test_metric_bar_figure_missing_metric():
    fig = figures.metric_bar_figure(pd.DataFrame({"model": ["a"]}), "f1")
    assert len(fig.data) == 0 and fig.layout.annotations


def test_figures_module_does_not_load_streamlit():
    out = subprocess.run([sys.executable, "-c", "import sys, pipeline.figures; print('streamlit' in sys.modules)"],
                         capture_output=True, text=True, cwd=str(Path(figures.__file__).resolve().parents[1]))
    assert out.stdout.strip() == "False", out.stderr


def test_reliability_figure_has_the_diagonal_and_one_trace_per_model():
    import numpy as np

    from pipeline import figures
    from pipeline import calibration

    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.2, 0.8, 0.9, 0.7, 0.6])
    fig = figures.reliability_figure({"a": calibration.reliability_table(y, p)}, {"a": "#123456"})
    assert [t.name for t in fig.data] == ["perfectly calibrated", "a"]
    assert list(fig.data[1].x) == calibration.reliability_table(y, p)["mean_predicted"]
