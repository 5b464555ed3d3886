"""The three ways to play the "Real or fake?" page: solo (one person at a laptop, a running score against the
run's verdict model), teacher (opens a room, projects its code, a QR code, the live votes, the reveal and the
scoreboard) and student (joins a room on a phone with the code and a nickname and votes each round).

Rooms are :mod:`pipeline.quiz.rooms` (SQLite, shared by every session); the pieces drawn are
:mod:`dashboard.quiz_panel`.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import common
from dashboard.quiz_panel import (ANSWER_TEXT, COLUMNS, IMAGE_PX, INTRO, KEYS, KEYS_HELP, answer_buttons, big, flash,
                                  game_from_settings, game_settings, headline, md_escape, reveal_details,
                                  scoreboard_view, show_flash, show_round, verdict_line)
from pipeline.quiz import figures, room_errors, rooms, scores
from pipeline.quiz import answers as quiz_answers
from pipeline.quiz import rounds as quiz

REFRESH_S = 2.0  # live views poll the room this often (seconds)
SOLO_KEY, HOST_KEY, PLAYER_KEY = "quiz_solo", "quiz_host", "quiz_player"
VOTE_ERROR_KEY = "quiz_vote_error"


def _votes_frame(answers: dict) -> pd.DataFrame:
    return pd.DataFrame([{"round": int(i), "nickname": "you", "answer": a} for i, a in answers.items()],
                        columns=["round", "nickname", "answer"])


# --------------------------------------------------------------------------- solo


def _solo_start(run_path: str) -> None:
    game = game_from_settings(run_path, "quiz_solo")
    if game is not None:
        game.update(answers={}, shown=[], current=0)
        st.session_state[SOLO_KEY] = game


def _solo_answer(choice: str) -> None:
    game = st.session_state.get(SOLO_KEY)
    if game is not None and str(game["current"]) not in game["answers"] and str(game["current"]) not in game["shown"]:
        game["answers"][str(game["current"])] = choice


def _solo_show() -> None:
    game = st.session_state.get(SOLO_KEY)
    if game is not None and str(game["current"]) not in game["shown"]:
        game["shown"].append(str(game["current"]))


def _solo_go(step: int) -> None:
    game = st.session_state.get(SOLO_KEY)
    if game is not None:
        game["current"] = max(0, min(len(game["rounds"]) - 1, int(game["current"]) + step))


def solo() -> None:
    run = common.selected_run()
    common.require_models(run)
    game = st.session_state.get(SOLO_KEY)
    with st.expander("New game", expanded=game is None):
        game_settings(run, "quiz_solo")
        st.button("Start", key="quiz_solo_start", type="primary", icon=":material/play_arrow:",
                  on_click=_solo_start, args=(str(run.path),))
    show_flash()
    if game is None:
        st.info("Choose the datasets and the kind of rounds, then press **Start**. You answer first; then the "
                "truth, the run's verdict model and every detector are revealed.", icon=":material/sports_esports:")
        st.caption(INTRO)
        return
    rnds = [quiz.Round.from_dict(r) for r in game["rounds"]]
    i = int(game["current"])
    rnd = rnds[i]
    answers: dict = game["answers"]
    mine = answers.get(str(i))
    shown = str(i) in game["shown"] or mine is not None
    board = scores.scoreboard(rnds, [int(k) for k in answers], _votes_frame(answers), game["thresholds"],
                              game["verdict_model"])
    you = int(board.players["correct"].sum()) if len(board.players) else 0
    model_ok = int(board.models.iloc[0]["correct"]) if len(board.models) else 0
    left, right = st.columns(COLUMNS[rnd.kind])
    with left:
        headline(rnd, shown)
        show_round(rnd, width=IMAGE_PX[rnd.kind], revealed=shown)
        answer_buttons(rnd, f"quiz_solo_{i}", _solo_answer, disabled=shown)
        with st.container(horizontal=True):
            st.button("Previous", key="quiz_solo_prev", shortcut=KEYS["prev"], disabled=i == 0,
                      icon=":material/arrow_back:", width="stretch", on_click=_solo_go, args=(-1,))
            st.button("Reveal", key="quiz_solo_reveal", shortcut=KEYS["reveal"], disabled=shown,
                      icon=":material/visibility:", width="stretch", on_click=_solo_show,
                      help="Show the answer without answering (the round does not count).")
            st.button("Next", key="quiz_solo_next", shortcut=KEYS["next"], disabled=i >= len(rnds) - 1,
                      icon=":material/arrow_forward:", width="stretch", on_click=_solo_go, args=(1,))
    with right:
        st.markdown(f"Round **{i + 1}** of {len(rnds)}")
        c = st.columns(2)
        c[0].metric("You", f"{you}/{board.n_votes}")
        c[1].metric("Model", f"{model_ok}/{board.n_votes}", help=f"{game['verdict_model']}, the run's verdict model")
        if shown:
            verdict_line(rnd, game, mine)
        else:
            st.caption(KEYS_HELP)
    if shown:
        cam = st.toggle("Grad-CAM on reveal", value=True, key="quiz_solo_cam")
        reveal_details(rnd, game, cam=cam)
    st.subheader("You against the models")
    scoreboard_view(board, people="You", key="quiz_solo_board")


# --------------------------------------------------------------------------- teacher


@st.fragment(run_every=REFRESH_S)
def live_votes(code: str, index: int, answer: str | None) -> None:
    """The vote histogram of the current round, refreshed every REFRESH_S seconds."""
    try:
        tally = rooms.tally(code, index)
        now = rooms.state(code)
    except room_errors.RoomError as exc:
        st.warning(str(exc))
        return
    st.plotly_chart(figures.vote_histogram(tally, answer, height=260), width="stretch", key="quiz_live_hist",
                    config={"displayModeBar": False, "staticPlot": True})
    n = sum(tally.values())
    st.caption(f"{now.n_players} player(s) in the room · {n} voted on this round")
    if answer is not None and n:
        st.markdown(f"**Class**: {tally[answer]} of {n} right ({tally[answer] / n:.0%}).")


def _open_room(run_path: str) -> None:
    game = game_from_settings(run_path, "quiz_room")
    if game is None:
        return
    rnds = [quiz.Round.from_dict(r) for r in game.pop("rounds")]
    try:
        st.session_state[HOST_KEY] = rooms.open_room(rnds, game["run_id"], game)
    except room_errors.RoomError as exc:
        flash(str(exc), "error")


def _host_do(action: str, step: int = 0) -> None:
    host = st.session_state.get(HOST_KEY)
    if host is None:
        return
    try:
        if action == "reveal":
            rooms.reveal(host)
        elif action == "go":
            rooms.go_to(host, rooms.state(host.code).current + step)
        elif action == "close":
            rooms.close(host)
            del st.session_state[HOST_KEY]
    except room_errors.RoomError as exc:
        flash(str(exc), "error")


def _forget_room() -> None:
    st.session_state.pop(HOST_KEY, None)


def teacher() -> None:
    host: rooms.Host | None = st.session_state.get(HOST_KEY)
    if host is None:
        run = common.selected_run()
        common.require_models(run)
        st.markdown("Open a room, project this page, and let the class join on their phones with the code.")
        game_settings(run, "quiz_room")
        st.button("Open a room", key="quiz_open", type="primary", icon=":material/meeting_room:",
                  on_click=_open_room, args=(str(run.path),))
        show_flash()
        st.caption(INTRO)
        return
    show_flash()
    try:
        now = rooms.state(host.code)
    except room_errors.RoomError as exc:
        st.warning(str(exc))
        st.button("Open a new room", key="quiz_reset", on_click=_forget_room)
        return
    game = now.settings
    rnd = now.round
    base = st.session_state.get("quiz_base_url") or (st.context.url or "http://localhost:8501/quiz")
    try:
        url = figures.join_url(base, now.code)
    except ValueError as exc:
        st.warning(str(exc))
        url = None
    left, right = st.columns(COLUMNS[rnd.kind])
    with left:
        headline(rnd, now.revealed)
        show_round(rnd, width=IMAGE_PX[rnd.kind], revealed=now.revealed)
        with st.container(horizontal=True):
            st.button("Previous", key="quiz_room_prev", shortcut=KEYS["prev"], disabled=now.current == 0,
                      icon=":material/arrow_back:", width="stretch", on_click=_host_do, args=("go", -1))
            st.button("Reveal", key="quiz_room_reveal", shortcut=KEYS["reveal"], disabled=now.revealed,
                      type="primary", icon=":material/visibility:", width="stretch", on_click=_host_do,
                      args=("reveal",), help="Close the votes on this round and show the answer.")
            st.button("Next", key="quiz_room_next", shortcut=KEYS["next"],
                      disabled=now.current >= now.n_rounds - 1, icon=":material/arrow_forward:", width="stretch",
                      on_click=_host_do, args=("go", 1))
    with right:
        with st.container(horizontal=True, vertical_alignment="center"):
            st.markdown(f"<div class='quiz-code'>{now.code}</div>", unsafe_allow_html=True)
            if url:
                png, side = figures.qr_png(url, size=150)
                st.image(png, width=side, output_format="PNG")
        st.caption(f"Join: `{url}` · round {now.current + 1} of {now.n_rounds} · "
                   f"{game['verdict_model']} plays for the models")
        live_votes(now.code, now.current, rnd.answer if now.revealed else None)
    if now.revealed:
        verdict_line(rnd, game)
        cam = st.toggle("Grad-CAM on reveal", value=True, key="quiz_room_cam")
        reveal_details(rnd, game, cam=cam)
    st.subheader("Scoreboard")
    res = rooms.room_results(now.code)
    board = scores.scoreboard(res.rounds, res.revealed, res.votes, game["thresholds"], game["verdict_model"],
                              res.players)
    scoreboard_view(board, key="quiz_room_board")
    if len(board.players):
        st.dataframe(board.players, hide_index=True, width="stretch",
                     column_config={"accuracy": st.column_config.NumberColumn(format="percent")})
    with st.container(horizontal=True):
        st.download_button("Download the room's results (CSV)", scores.results_csv(
            res.rounds, res.revealed, res.votes, game["thresholds"], game["verdict_model"]),
            file_name=f"quiz_{now.code}.csv", mime="text/csv", icon=":material/download:", key="quiz_room_csv",
            help="One row per vote: round, nickname, answer, the right answer, the verdict model's answer. "
                 "Nicknames are the only thing about a person in it.")
        st.button("Close the room", key="quiz_room_close", icon=":material/logout:", on_click=_host_do,
                  args=("close",), help="Nobody can join or vote any more; the room's nicknames and votes are "
                                        "deleted a day later.")
    with st.expander("Phones cannot open the link?"):
        st.text_input("Address phones open", value=base, key="quiz_base_url",
                      help="The dashboard's address as the phones see it.")
        st.markdown("The link and QR code use the address this browser shows. If it is `localhost` or "
                    "`127.0.0.1`, phones cannot reach it: start the dashboard with `--server.address 0.0.0.0` "
                    "and type this computer's address on the room's network above (e.g. "
                    "`http://192.168.1.20:8501`).")
        st.caption(f"Room {now.code} closes in {now.seconds_left() / 60:.0f} min.")


# --------------------------------------------------------------------------- student


def _vote(choice: str, me: rooms.Player, index: int) -> None:
    try:
        rooms.vote(me.code, me.token, index, choice)
    except room_errors.RoomError as exc:
        st.session_state[VOTE_ERROR_KEY] = str(exc)


def _join() -> None:
    ss = st.session_state
    try:
        me = rooms.join(ss.get("quiz_join_code", ""), ss.get("quiz_join_nick", ""))
    except room_errors.RoomError as exc:
        flash(str(exc), "error")
        return
    ss[PLAYER_KEY] = me
    st.query_params.update({"room": me.code, "p": me.token})


def _leave() -> None:
    st.session_state.pop(PLAYER_KEY, None)
    st.query_params.clear()


@st.fragment(run_every=REFRESH_S)
def student_round(me: rooms.Player) -> None:
    """The student's phone: the current round, two vote buttons, then the reveal and their score."""
    try:
        now = rooms.state(me.code)
    except room_errors.RoomError as exc:
        st.error(str(exc))
        return
    rnd = now.round
    mine = rooms.my_vote(me.code, me.token, now.current)
    st.markdown(f"**{md_escape(me.nickname)}** · room {now.code} · round **{now.current + 1}** of {now.n_rounds}")
    problem = st.session_state.pop(VOTE_ERROR_KEY, None)
    if problem:
        st.error(problem)
    if now.revealed:
        truth = rnd.answer
        headline(rnd, True)
        if mine is None:
            st.markdown("You did not vote on this round.")
        else:
            ok = mine == truth
            big("You were right!" if ok else "Not this time", "quiz-ok" if ok else "quiz-no")
        show_round(rnd, width=300 if rnd.kind == "single" else 160, revealed=True)
        vm = now.settings["verdict_model"]
        ma = quiz_answers.model_answer(rnd, vm, now.settings["thresholds"][vm])
        if ma is not None:
            st.markdown(f"**{vm}** said {ma.sentence}: {'right' if ma.correct else 'wrong'}.")
        for dataset in rnd.datasets:
            note = quiz.look_for(dataset)
            st.markdown(f"**What to look for** ({note.kind}): {note.note}")
    elif mine is not None:
        st.success(f"Your vote: **{ANSWER_TEXT[mine]}**. Watch the teacher's screen for the answer.",
                   icon=":material/how_to_vote:")
    else:
        headline(rnd, False)
        show_round(rnd, width=300 if rnd.kind == "single" else 160)
        answer_buttons(rnd, f"quiz_vote_{now.current}", lambda choice: _vote(choice, me, now.current),
                       shortcuts=False)
    res = rooms.room_results(me.code)
    board = scores.scoreboard(res.rounds, res.revealed, res.votes, now.settings["thresholds"],
                              now.settings["verdict_model"], [me.nickname])
    row = board.player(me.nickname) or {"votes": 0, "correct": 0}
    st.markdown(f"Your score: **{row['correct']} of {row['votes']}** revealed round(s) right"
                + (f" · the class: {board.class_accuracy:.0%}" if board.class_accuracy is not None else "")
                + (f" · {board.verdict_model}: {board.model_accuracy:.0%}" if board.model_accuracy is not None
                   else ""))


def student() -> None:
    me: rooms.Player | None = st.session_state.get(PLAYER_KEY)
    params = st.query_params
    if me is None and params.get("room") and params.get("p"):  # the phone reloaded the page: same player
        try:
            me = st.session_state[PLAYER_KEY] = rooms.player(params["room"], params["p"])
        except room_errors.RoomError:
            pass
    if me is None:
        with st.form("quiz_join", border=True):
            st.text_input("Room code", value=params.get("room", ""), max_chars=12, key="quiz_join_code",
                          placeholder="e.g. K7MPQ")
            st.text_input("Nickname", max_chars=rooms.NICKNAME_MAX, key="quiz_join_nick",
                          help="Any name you like: it is only shown in this room, and nothing else about you is "
                               "stored.")
            st.form_submit_button("Join", type="primary", width="stretch", on_click=_join)
        show_flash()
        return
    student_round(me)
    st.button("Leave the room", key="quiz_leave", icon=":material/logout:", on_click=_leave)
