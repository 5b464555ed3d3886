"""pipeline.quiz.rooms and .scores: live rooms in SQLite under concurrent votes, bad input, scoreboards."""
from __future__ import annotations

import io
import multiprocessing
import sqlite3
import threading
from statistics import NormalDist

import pandas as pd
import pytest

from pipeline.quiz import room_db, room_errors, rooms, scores
from pipeline.quiz.rounds import QuizImage, Round

Z = NormalDist().inv_cdf
THRESHOLDS = {"ensemble_routed": 0.5, "cnn": 0.4}


def _single_rounds(n: int = 4) -> list[Round]:
    """Rounds 0, 2, ... are fake; the verdict model is right on all but round 1; 'cnn' says fake always."""
    out = []
    for i in range(n):
        truth = "fake" if i % 2 == 0 else "real"
        p = 0.9 if truth == "fake" else (0.7 if i == 1 else 0.1)
        out.append(Round(i, "single", (QuizImage(f"/img/{i}.png", "faces140k", truth, f"s{i}",
                                                 {"ensemble_routed": p, "cnn": 0.95}),)))
    return out


def _paired_rounds(n: int = 3) -> list[Round]:
    return [Round(i, "paired", (QuizImage(f"/l{i}.png", "ciplab", "real", f"l{i}", {"ensemble_routed": 0.2}),
                                QuizImage(f"/r{i}.png", "ciplab", "fake", f"r{i}", {"ensemble_routed": 0.8})))
            for i in range(n)]


@pytest.fixture()
def db(tmp_path):
    return tmp_path / "quiz_rooms.sqlite3"


def _open(db, rounds=None, **kw) -> rooms.Host:
    return rooms.open_room(rounds or _single_rounds(), "run-1",
                           {"verdict_model": "ensemble_routed", "thresholds": THRESHOLDS}, db=db, **kw)


# --------------------------------------------------------------------------- the happy path


def test_room_round_trip(db):
    host = _open(db)
    assert len(host.code) == rooms.CODE_LENGTH and set(host.code) <= set(rooms.CODE_ALPHABET)
    st = rooms.state(host.code.lower(), db=db)  # codes are read in any case
    assert (st.code, st.mode, st.n_rounds, st.current, st.revealed, st.n_players) == (host.code, "single", 4, 0,
                                                                                     False, 0)
    assert st.settings["verdict_model"] == "ensemble_routed"
    ana = rooms.join(f" {host.code[:2]}-{host.code[2:]} ", "  Ana  ", db=db)
    bo = rooms.join(host.code, "Bo", db=db)
    assert ana.nickname == "Ana" and rooms.player(host.code, ana.token, db=db) == ana
    rooms.vote(host.code, ana.token, 0, "fake", db=db)
    rooms.vote(host.code, bo.token, 0, "real", db=db)
    assert rooms.tally(host.code, 0, db=db) == {"real": 1, "fake": 1}
    assert rooms.my_vote(host.code, ana.token, 0, db=db) == "fake"
    assert rooms.my_vote(host.code, ana.token, 1, db=db) is None
    assert rooms.state(host.code, db=db).n_votes == 2
    rooms.reveal(host, db=db)
    assert rooms.state(host.code, db=db).revealed
    assert rooms.go_to(host, 1, db=db) == 1
    assert rooms.go_to(host, 99, db=db) == 3  # clamped
    res = rooms.room_results(host.code, db=db)
    assert res.players == ["Ana", "Bo"] and res.revealed == [0]
    assert res.votes[["round", "nickname", "answer"]].values.tolist() == [[0, "Ana", "fake"], [0, "Bo", "real"]]


def test_database_is_in_wal_mode_with_a_unique_vote_constraint(db):
    _open(db)
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        sql = con.execute("SELECT sql FROM sqlite_master WHERE name = 'votes'").fetchone()[0]
        assert "UNIQUE (room, idx, player)" in sql
    finally:
        con.close()


def test_default_db_path_is_under_the_artifacts_folder(monkeypatch, tmp_path):
    monkeypatch.delenv(room_db.DB_ENV, raising=False)
    monkeypatch.setenv("DEEPFAKE_LENS_ARTIFACTS", str(tmp_path / "arts"))
    assert room_db.default_db_path() == tmp_path / "arts" / room_db.DB_NAME
    monkeypatch.setenv(room_db.DB_ENV, str(tmp_path / "elsewhere.db"))
    assert room_db.default_db_path() == tmp_path / "elsewhere.db"


# --------------------------------------------------------------------------- bad input, each with a clear message


def test_unknown_and_malformed_room_codes(db):
    _open(db)
    with pytest.raises(room_errors.UnknownRoom, match="Enter the room code"):
        rooms.join("   ", "Ana", db=db)
    with pytest.raises(room_errors.UnknownRoom, match="There is no room 'HELLOWORLD'"):
        rooms.join("hello world", "Ana", db=db)
    with pytest.raises(room_errors.UnknownRoom, match="There is no room ZZZZZ"):
        rooms.join("zzzzz", "Ana", db=db)
    with pytest.raises(room_errors.UnknownRoom):
        rooms.state("ZZZZZ", db=db)


def test_expired_room(db):
    host = _open(db, now=1000.0, ttl_s=60)
    p = rooms.join(host.code, "Ana", db=db, now=1010.0)
    with pytest.raises(room_errors.RoomExpired, match=f"Room {host.code} has expired"):
        rooms.join(host.code, "Bo", db=db, now=1061.0)
    with pytest.raises(room_errors.RoomExpired):
        rooms.vote(host.code, p.token, 0, "real", db=db, now=1061.0)
    with pytest.raises(room_errors.RoomExpired):
        rooms.state(host.code, db=db, now=1061.0)
    assert rooms.room_results(host.code, db=db).players == ["Ana"]  # readable until purged
    # a day after expiry, opening any room deletes it with its nicknames
    _open(db, now=1061.0 + rooms.PURGE_AFTER_S + 1)
    with pytest.raises(room_errors.UnknownRoom):
        rooms.room_results(host.code, db=db)


def test_closed_room_is_expired(db):
    host = _open(db)
    rooms.close(host, db=db)
    with pytest.raises(room_errors.RoomExpired):
        rooms.join(host.code, "Ana", db=db)


@pytest.mark.parametrize("nick,message", [("", "Enter a nickname"), ("   ", "Enter a nickname"),
                                          ("\u200b\t\n", "Enter a nickname"), (None, "Enter a nickname"),
                                          ("x" * 25, "too long")])
def test_bad_nicknames(db, nick, message):
    host = _open(db)
    with pytest.raises(room_errors.BadNickname, match=message):
        rooms.join(host.code, nick, db=db)


def test_nickname_taken_case_insensitively(db):
    host = _open(db)
    rooms.join(host.code, "Ana", db=db)
    with pytest.raises(room_errors.NicknameTaken, match="already called 'ANA'"):
        rooms.join(host.code, "ANA", db=db)
    other = _open(db)
    rooms.join(other.code, "Ana", db=db)  # another room: fine


def test_vote_after_reveal_double_vote_and_other_refusals(db):
    host = _open(db)
    ana = rooms.join(host.code, "Ana", db=db)
    bo = rooms.join(host.code, "Bo", db=db)
    rooms.vote(host.code, ana.token, 0, "fake", db=db)
    with pytest.raises(room_errors.AlreadyVoted, match="already voted on round 1"):
        rooms.vote(host.code, ana.token, 0, "real", db=db)
    with pytest.raises(room_errors.BadVote, match="vote real or fake"):
        rooms.vote(host.code, bo.token, 0, "left", db=db)
    with pytest.raises(room_errors.VotingClosed, match="teacher is on round 1"):
        rooms.vote(host.code, bo.token, 1, "fake", db=db)
    with pytest.raises(room_errors.BadVote, match="no round 10"):
        rooms.vote(host.code, bo.token, 9, "fake", db=db)
    with pytest.raises(room_errors.UnknownPlayer, match="join with a nickname"):
        rooms.vote(host.code, "not-a-token", 0, "fake", db=db)
    rooms.reveal(host, db=db)
    with pytest.raises(room_errors.VotingClosed, match="closed: the answer has been revealed"):
        rooms.vote(host.code, bo.token, 0, "real", db=db)
    assert rooms.tally(host.code, 0, db=db) == {"real": 0, "fake": 1}  # nothing refused was counted
    with pytest.raises(room_errors.NotHost):
        rooms.reveal(rooms.Host(host.code, "guess"), db=db)
    with pytest.raises(room_errors.NotHost):
        rooms.go_to(rooms.Host(host.code, "guess"), 1, db=db)


def test_unwritable_database_gives_a_room_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(room_errors.RoomError, match="cannot be opened"):
        _open(blocker / "sub" / "rooms.sqlite3")


# --------------------------------------------------------------------------- 40 students at once


N_STUDENTS = 40


def _expected(i: int, mode: str = "single") -> str:
    return rooms.CHOICES[mode][(i * 7) % 3 % 2]


def test_forty_students_vote_at_once_with_threads(db):
    """40 students, each sending its vote twice at the same moment (a double tap): exactly one vote per
    student counts, none is lost, and the tally equals the votes cast."""
    host = _open(db)
    players = [rooms.join(host.code, f"student {i:02d}", db=db) for i in range(N_STUDENTS)]
    barrier = threading.Barrier(2 * N_STUDENTS)
    outcome: dict[tuple[int, int], str] = {}
    lock = threading.Lock()

    def tap(i: int, attempt: int) -> None:
        barrier.wait()
        try:
            rooms.vote(host.code, players[i].token, 0, _expected(i), db=db)
            result = "ok"
        except room_errors.AlreadyVoted:
            result = "double"
        except Exception as exc:  # noqa: BLE001 - any other outcome fails the test below
            result = repr(exc)
        with lock:
            outcome[(i, attempt)] = result

    threads = [threading.Thread(target=tap, args=(i, k)) for i in range(N_STUDENTS) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(N_STUDENTS):
        assert sorted([outcome[(i, 0)], outcome[(i, 1)]]) == ["double", "ok"], (i, outcome[(i, 0)], outcome[(i, 1)])
    res = rooms.room_results(host.code, db=db)
    cast = {f"student {i:02d}": _expected(i) for i in range(N_STUDENTS)}
    assert len(res.votes) == N_STUDENTS
    assert dict(zip(res.votes["nickname"], res.votes["answer"])) == cast
    want = pd.Series(list(cast.values())).value_counts().to_dict()
    assert rooms.tally(host.code, 0, db=db) == {c: want.get(c, 0) for c in ("real", "fake")}


def _process_voter(db: str, code: str, tokens: list[str], first: int, barrier) -> None:
    barrier.wait()
    for k, token in enumerate(tokens):
        rooms.vote(code, token, 0, _expected(first + k, "paired"), db=db)


def test_forty_students_vote_at_once_from_eight_processes(db):
    host = _open(db, rounds=_paired_rounds())
    players = [rooms.join(host.code, f"p{i}", db=db) for i in range(N_STUDENTS)]
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    procs = [ctx.Process(target=_process_voter, args=(str(db), host.code, [p.token for p in players[j:j + 5]], j,
                                                      barrier)) for j in range(0, N_STUDENTS, 5)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 8
    res = rooms.room_results(host.code, db=db)
    assert sorted(zip(res.votes["nickname"], res.votes["answer"])) == sorted(
        (f"p{i}", _expected(i, "paired")) for i in range(N_STUDENTS))


def test_reveal_during_a_burst_of_votes_counts_exactly_the_accepted_ones(db):
    host = _open(db)
    players = [rooms.join(host.code, f"s{i}", db=db) for i in range(N_STUDENTS)]
    barrier = threading.Barrier(N_STUDENTS + 1)
    accepted, refused = [], []
    lock = threading.Lock()

    def voter(i: int) -> None:
        barrier.wait()
        try:
            rooms.vote(host.code, players[i].token, 0, "fake", db=db)
            with lock:
                accepted.append(f"s{i}")
        except room_errors.VotingClosed:
            with lock:
                refused.append(f"s{i}")

    threads = [threading.Thread(target=voter, args=(i,)) for i in range(N_STUDENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    rooms.reveal(host, db=db)
    for t in threads:
        t.join()
    assert len(accepted) + len(refused) == N_STUDENTS
    res = rooms.room_results(host.code, db=db)
    assert sorted(res.votes["nickname"]) == sorted(accepted)


# --------------------------------------------------------------------------- scores


def test_dprime_formulas():
    assert scores.loglinear_rate(0, 10) == pytest.approx(0.5 / 11)
    assert scores.dprime_yes_no(8, 10, 2, 10) == pytest.approx(Z(8.5 / 11) - Z(2.5 / 11))
    perfect = scores.dprime_yes_no(10, 10, 0, 10)
    assert perfect == pytest.approx(2 * Z(10.5 / 11)) and perfect < 4  # finite thanks to the correction
    assert scores.dprime_yes_no(5, 10, 5, 10) == pytest.approx(0.0)
    assert scores.dprime_yes_no(3, 3, 0, 0) is None
    assert scores.dprime_2afc(9, 10) == pytest.approx(2 ** 0.5 * Z(9.5 / 11))
    assert scores.dprime_2afc(0, 0) is None
    with pytest.raises(ValueError):
        scores.loglinear_rate(3, 2)


def test_scoreboard_of_a_room(db):
    host = _open(db)
    ana, bo = rooms.join(host.code, "Ana", db=db), rooms.join(host.code, "Bo", db=db)
    rooms.join(host.code, "Cy", db=db)  # joined, never voted
    plan = {0: ("fake", "real"), 1: ("real", "fake"), 2: ("fake", "fake")}  # truths: fake, real, fake
    for idx, (a, b) in plan.items():
        rooms.go_to(host, idx, db=db)
        rooms.vote(host.code, ana.token, idx, a, db=db)
        rooms.vote(host.code, bo.token, idx, b, db=db)
        if idx < 2:
            rooms.reveal(host, db=db)  # round 3 stays unrevealed: it must not count yet
    res = rooms.room_results(host.code, db=db)
    board = scores.scoreboard(res.rounds, res.revealed, res.votes, THRESHOLDS, "ensemble_routed", res.players)
    assert board.n_revealed == 2 and board.n_votes == 4
    assert board.rounds["round"].tolist() == [1, 2]
    assert board.rounds["class_accuracy"].tolist() == [0.5, 0.5]
    assert board.rounds["model_correct"].tolist() == [True, False]  # p 0.7 on the real round 2
    assert board.class_accuracy == 0.5 and board.model_accuracy == 0.5
    # class: fake round 1 -> 1 of 2 votes "fake"; real round 2 -> 1 of 2 votes "fake"
    assert board.class_dprime == pytest.approx(Z(1.5 / 3) - Z(1.5 / 3))
    assert board.model_dprime == pytest.approx(Z(1.5 / 2) - Z(1.5 / 2))
    assert board.player("Ana") == {"nickname": "Ana", "votes": 2, "correct": 2, "accuracy": 1.0}
    assert board.player("Bo")["correct"] == 0
    assert board.player("Cy") == {"nickname": "Cy", "votes": 0, "correct": 0, "accuracy": None}
    assert board.models["model"].tolist() == ["ensemble_routed", "cnn"]
    assert board.models.set_index("model").loc["cnn", "accuracy"] == 0.5  # always "fake"
    csv = pd.read_csv(io.BytesIO(scores.results_csv(res.rounds, res.revealed, res.votes, THRESHOLDS,
                                                    "ensemble_routed")))
    assert list(csv.columns) == scores.CSV_COLUMNS
    assert len(csv) == 6 and set(csv["nickname"]) == {"Ana", "Bo"}
    assert csv["revealed"].tolist() == [True, True, True, True, False, False]
    assert not any("token" in c or "id" == c for c in csv.columns)


def test_scoreboard_of_paired_rounds_uses_2afc():
    rounds = _paired_rounds(3)
    votes = pd.DataFrame({"round": [0, 1, 2], "nickname": ["you"] * 3, "answer": ["left", "left", "right"]})
    board = scores.scoreboard(rounds, [0, 1, 2], votes, {"ensemble_routed": 0.5}, "ensemble_routed")
    assert board.class_accuracy == pytest.approx(2 / 3)
    assert board.class_dprime == pytest.approx(2 ** 0.5 * Z(2.5 / 4))
    assert board.model_accuracy == 1.0
    with pytest.raises(ValueError, match="one kind"):
        scores.scoreboard(rounds + _single_rounds(1), [], votes, {}, "m")


def test_empty_scoreboard():
    board = scores.scoreboard(_single_rounds(), [], pd.DataFrame(columns=["round", "nickname", "answer"]),
                              THRESHOLDS, "ensemble_routed")
    assert board.n_revealed == 0 and board.class_accuracy is None and board.class_dprime is None
    assert board.model_accuracy is None and board.players.empty
