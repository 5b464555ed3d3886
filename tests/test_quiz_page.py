"""The "Real or fake?" page through Streamlit's AppTest: solo games, a room with a teacher and students
(separate AppTest sessions sharing the room's SQLite file), and every bad-input message on the page."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipeline import results
from pipeline.quiz import room_db, rooms
from synthetic_run import write_routed_ensemble, write_synthetic_run

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
PAGE = "app_pages/quiz.py"
PAIRED = "Paired: which one is real?"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quiz-artifacts")
    run_dir = write_synthetic_run(root, models=("baseline_cnn", "mobilenet"), datasets=("faces140k", "ciplab"))
    write_routed_ensemble(run_dir)
    return root


@pytest.fixture()
def env(monkeypatch, artifacts, tmp_path):
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(artifacts))
    monkeypatch.setenv(room_db.DB_ENV, str(tmp_path / "rooms.sqlite3"))
    return tmp_path / "rooms.sqlite3"


def _page(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    at.switch_page(PAGE).run()
    _ok(at)
    return at


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "metric")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _mode(at: AppTest, label: str) -> AppTest:
    at.segmented_control(key="quiz_mode").set_value(label).run()
    _ok(at)
    return at


# --------------------------------------------------------------------------- solo


def test_solo_single_game_reveals_and_keeps_score(env):
    at = _page()
    assert at.title[0].value == "Real or fake?"
    assert "Choose the datasets" in _text(at)
    at.button(key="quiz_solo_start").click().run()
    _ok(at)
    game = at.session_state["quiz_solo"]
    assert game["verdict_model"] == "ensemble_routed" and len(game["rounds"]) == 10
    labels = [b.label for b in at.button]
    assert {"Real", "Fake", "Previous", "Reveal", "Next"} <= set(labels)
    assert at.button(key="quiz_solo_0_fake").proto.shortcut  # keyboard shortcut F
    truth = game["rounds"][0]["images"][0]["truth"]
    at.button(key="quiz_solo_0_fake").click().run()
    _ok(at)
    text = _text(at)
    assert f"It was {truth.upper()}" in text
    assert ("You were right" if truth == "fake" else "You were wrong") in text
    assert "**ensemble_routed** (the run's verdict) says:" in text
    assert "What to look for" in text
    # the synthetic run's model.keras is a placeholder: the reveal says Grad-CAM is unavailable, nothing breaks
    assert "Grad-CAM of mobilenet is not available" in text
    assert at.button(key="quiz_solo_0_real").disabled and at.button(key="quiz_solo_0_fake").disabled
    assert at.metric[0].label == "You" and at.metric[0].value == f"{int(truth == 'fake')}/1"
    # next round, reveal without answering: it does not count
    at.button(key="quiz_solo_next").click().run()
    at.button(key="quiz_solo_reveal").click().run()
    _ok(at)
    assert at.session_state["quiz_solo"]["shown"] == ["1"]
    assert at.metric[0].value == f"{int(truth == 'fake')}/1"
    at.button(key="quiz_solo_prev").click().run()
    assert at.session_state["quiz_solo"]["current"] == 0


def test_solo_paired_game(env):
    at = _page()
    at.radio(key="quiz_solo_kind").set_value(PAIRED)
    at.number_input(key="quiz_solo_n").set_value(3)
    at.button(key="quiz_solo_start").click().run()
    _ok(at)
    game = at.session_state["quiz_solo"]
    assert len(game["rounds"]) == 3 and {r["kind"] for r in game["rounds"]} == {"paired"}
    at.button(key="quiz_solo_0_left").click().run()
    _ok(at)
    first = game["rounds"][0]["images"][0]["truth"]
    assert f"The {'LEFT' if first == 'real' else 'RIGHT'} one was real" in _text(at)


def test_solo_needs_a_dataset(env):
    at = _page()
    at.multiselect(key="quiz_solo_datasets").set_value([])
    at.button(key="quiz_solo_start").click().run()
    _ok(at)
    assert "Choose at least one dataset." in [w.value for w in at.warning]
    assert "quiz_solo" not in at.session_state


# --------------------------------------------------------------------------- a room


def _open_room(n: int = 3) -> tuple[AppTest, rooms.Host]:
    teacher = _mode(_page(), "Teacher (room)")
    teacher.number_input(key="quiz_room_n").set_value(n)
    teacher.button(key="quiz_open").click().run()
    _ok(teacher)
    return teacher, teacher.session_state["quiz_host"]


def _join(code: str, nickname: str, at: AppTest | None = None) -> AppTest:
    at = at or _mode(_page(), "Student (join)")
    at.text_input(key="quiz_join_code").input(code)
    at.text_input(key="quiz_join_nick").input(nickname)
    at.button[-1].click().run()  # the form's Join button
    _ok(at)
    return at


def test_room_teacher_and_two_students(env):
    teacher, host = _open_room()
    text = _text(teacher)
    assert f"quiz?room={host.code}" in text and host.code in text
    ana = _join(host.code.lower(), "Ana")
    bo = _page({"room": host.code})  # the QR code's link: student mode, code filled in
    assert bo.text_input(key="quiz_join_code").value == host.code
    bo = _join(host.code, "Bo", bo)
    assert f"**Bo** · room {host.code}" in _text(bo)
    ana.button(key="quiz_vote_0_real").click().run()
    bo.button(key="quiz_vote_0_fake").click().run()
    _ok(ana), _ok(bo)
    assert "Your vote: **Real**" in _text(ana)
    assert "Real" not in [b.label for b in ana.button]  # one vote: the buttons are gone
    teacher.run()
    assert "2 player(s) in the room · 2 voted on this round" in _text(teacher)
    teacher.button(key="quiz_room_reveal").click().run()
    _ok(teacher)
    st_ = rooms.state(host.code, db=env)
    truth = st_.round.answer
    assert st_.revealed and f"It was {truth.upper()}" in _text(teacher)
    assert "**Class**: 1 of 2 right (50%)." in _text(teacher)
    ana.run(), bo.run()
    for at, vote in ((ana, "real"), (bo, "fake")):
        text = _text(at)
        assert ("You were right!" if vote == truth else "Not this time") in text
        assert f"Your score: **{int(vote == truth)} of 1**" in text
    # the scoreboard: class vs the verdict model, every player
    assert teacher.dataframe[-1].value["nickname"].tolist() == sorted(["Ana", "Bo"], key=lambda n: (
        n != ("Ana" if truth == "real" else "Bo")))
    assert len(teacher.get("download_button")) == 1  # the room's CSV (its content: test_quiz_rooms.py)
    teacher.button(key="quiz_room_next").click().run()
    assert rooms.state(host.code, db=env).current == 1
    ana.run()
    assert "round **2** of 3" in _text(ana)


def test_reloaded_phone_keeps_its_player(env):
    teacher, host = _open_room()
    ana = _join(host.code, "Ana")
    token = ana.session_state["quiz_player"].token
    again = _page({"room": host.code, "p": token})
    assert f"**Ana** · room {host.code}" in _text(again)


def test_join_errors_on_the_page(env):
    teacher, host = _open_room()
    at = _join("", "Ana")
    assert "Enter the room code shown on the teacher's screen." in [e.value for e in at.error]
    at = _join("ZZZZZ", "Ana", at)  # the same phone tries again: the form stays
    assert "There is no room ZZZZZ. Check the code on the teacher's screen." in [e.value for e in at.error]
    at = _join(host.code, "   ", at)
    assert any(e.value.startswith("Enter a nickname") for e in at.error)
    _join(host.code, "Ana")
    at = _join(host.code, "ana", at)
    assert any("already called 'ana'" in e.value for e in at.error)
    teacher.button(key="quiz_room_close").click().run()
    at = _join(host.code, "Cy", at)
    assert any(f"Room {host.code} has expired" in e.value for e in at.error)
    assert "quiz_player" not in at.session_state


def test_vote_after_the_reveal_and_double_vote_say_so(env):
    teacher, host = _open_room()
    ana = _join(host.code, "Ana")
    bo = _join(host.code, "Bo")
    # both phones show the vote buttons; the teacher reveals before Bo taps
    teacher.button(key="quiz_room_reveal").click().run()
    bo.button(key="quiz_vote_0_fake").click().run()
    _ok(bo)
    assert "Voting on round 1 is closed: the answer has been revealed." in [e.value for e in bo.error]
    # a second tap from a phone whose screen still shows the buttons (vote sent from another tab)
    teacher.button(key="quiz_room_next").click().run()
    ana.run()
    rooms.vote(host.code, ana.session_state["quiz_player"].token, 1, "real", db=env)
    ana.button(key="quiz_vote_1_fake").click().run()
    _ok(ana)
    assert "You already voted on round 2: one vote per round." in [e.value for e in ana.error]
    assert rooms.tally(host.code, 1, db=env) == {"real": 1, "fake": 0}


@pytest.mark.slow
def test_reveal_shows_grad_cam_of_the_best_keras_model(monkeypatch, tiny_run, tmp_path):
    """On a trained run (conftest's tiny run) the reveal computes the Grad-CAM of the best Keras model."""
    monkeypatch.setenv(results.ARTIFACTS_ENV, str(Path(tiny_run).parent))
    monkeypatch.setenv(room_db.DB_ENV, str(tmp_path / "rooms.sqlite3"))
    at = _page()
    at.number_input(key="quiz_solo_n").set_value(2)
    at.button(key="quiz_solo_start").click().run()
    _ok(at)
    game = at.session_state["quiz_solo"]
    run = results.load_run(results.info_at(tiny_run))
    assert game["gradcam_model"] in ("baseline_cnn", "custom_cnn")
    aucs = run.comparison("all").set_index("model")["roc_auc"]
    assert aucs[game["verdict_model"]] == aucs.max()  # no ensemble in this run: the best single model
    shown_before = len(at.get("image"))
    at.button(key="quiz_solo_0_real").click().run()
    _ok(at)
    text = _text(at)
    assert f"**Grad-CAM of {game['gradcam_model']}**" in text
    assert "not available" not in text
    assert len(at.get("image")) == shown_before + 1  # the overlay beside the round's image


def test_a_nickname_is_shown_literally(env):
    teacher, host = _open_room()
    at = _join(host.code, "![x](h.png) :red[hi]")
    header = next(m.value for m in at.markdown if "· room" in m.value)
    assert header.startswith(r"**\!\[x\]\(h\.png\) \:red\[hi\]** · room")
