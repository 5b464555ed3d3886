"""pipeline.quiz.figures: the vote histogram, the detectors' scores, the accuracy chart, the join link and QR code."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from pipeline.quiz import figures
from pipeline.quiz.answers import all_answers
from pipeline.quiz.rounds import QuizImage, Round


def test_vote_histogram_before_and_after_the_reveal():
    before = figures.vote_histogram({"real": 3, "fake": 1})
    bar = before.data[0]
    assert list(bar.x) == ["Real", "Fake"] and list(bar.y) == [3, 1]
    assert list(bar.marker.color) == [figures.CHOICE_COLORS["real"], figures.CHOICE_COLORS["fake"]]
    assert bar.text[0] == "3  (75%)"
    assert before.layout.title.text == "4 votes"
    after = figures.vote_histogram({"left": 0, "right": 2}, answer="right")
    assert list(after.data[0].marker.color) == [figures.WRONG, figures.RIGHT]
    assert list(after.data[0].x) == ["Left is real", "Right is real"]
    empty = figures.vote_histogram({"real": 0, "fake": 0})
    assert empty.layout.title.text == "0 votes" and list(empty.data[0].text) == ["0", "0"]


def test_scores_figure_single_and_paired():
    single = Round(0, "single", (QuizImage("/a", "d", "fake", "a", {"m1": 0.8, "m2": 0.3}),))
    fig = figures.scores_figure(all_answers(single, {"m1": 0.5, "m2": 0.5}))
    bars, ticks = fig.data
    assert list(bars.y) == ["m1", "m2"] and list(bars.x) == [0.8, 0.3]
    assert list(bars.marker.color) == [figures.CHOICE_COLORS["fake"], figures.CHOICE_COLORS["real"]]
    assert list(ticks.x) == [0.5, 0.5]
    paired = Round(0, "paired", (QuizImage("/l", "d", "real", "l", {"m1": 0.2}),
                                 QuizImage("/r", "d", "fake", "r", {"m1": 0.9})))
    fig = figures.scores_figure(all_answers(paired, {"m1": 0.5}))
    assert [t.name for t in fig.data] == ["left", "right"]
    assert figures.scores_figure([]).layout.annotations[0].text.startswith("no model")


def test_accuracy_figure():
    fig = figures.accuracy_figure([("Class", 0.55, 40), ("ensemble_routed", 1.0, 4), ("cnn", None, 0)])
    bar = fig.data[0]
    assert list(bar.text) == ["55%", "100%", "–"]
    assert bar.marker.color[0] != bar.marker.color[1]


@pytest.mark.parametrize("base,expected", [
    ("http://192.168.1.20:8501/quiz", "http://192.168.1.20:8501/quiz?room=K7MPQ"),
    ("http://192.168.1.20:8501/", "http://192.168.1.20:8501/quiz?room=K7MPQ"),
    ("http://192.168.1.20:8501", "http://192.168.1.20:8501/quiz?room=K7MPQ"),
    ("https://lens.example.org/app/check?x=1#top", "https://lens.example.org/app/quiz?room=K7MPQ"),
])
def test_join_url(base, expected):
    assert figures.join_url(base, "K7MPQ") == expected


def test_join_url_needs_an_absolute_address():
    with pytest.raises(ValueError, match="not an absolute address"):
        figures.join_url("192.168.1.20:8501", "K7MPQ")


def test_qr_code_is_a_crisp_png_of_the_asked_size():
    png, side = figures.qr_png("http://192.168.1.20:8501/quiz?room=K7MPQ", size=150)
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.size == (side, side) and side <= 150
    px = set(im.convert("L").getdata())
    assert px == {0, 255}  # black and white modules only: nothing blurred by resampling
    import segno

    qr = segno.make("http://192.168.1.20:8501/quiz?room=K7MPQ", error="m", micro=False)
    assert side % qr.symbol_size(scale=1, border=4)[0] == 0
