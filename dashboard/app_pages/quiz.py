"""Real or fake? Classroom mode: people against the run's detectors on faces from its test split.

Three ways to play (pipeline.quiz does the work; this page draws):
* Solo: one person at a laptop, a running score against the run's verdict model.
* Teacher: opens a room (SQLite, pipeline.quiz.rooms) and projects its code, a QR code, the current
  round, the live vote histogram, then the reveal and the scoreboard.
* Student: joins a room on a phone with the code and a nickname and votes each round.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import common
from pipeline import results, store
from pipeline.images import ImageError
from pipeline.quiz import figures, room_errors, rooms, scores
from pipeline.quiz import answers as quiz_answers
from pipeline.quiz import rounds as quiz

MODES = {"Solo": "solo", "Teacher (room)": "teacher", "Student (join)": "student"}
KINDS = {"Single: real or fake?": "single", "Paired: which one is real?": "paired"}
REFRESH_S = 2.0  # live views poll the room this often (seconds)
# Projector layout at 1280x800: the round on the left, the side panel (score, or code + QR + votes) on the right;
# a paired round gets more of the width so its two faces stay side by side.
COLUMNS = {"single": [3, 2], "paired": [2, 1]}
IMAGE_PX = {"single": 340, "paired": 245}
SOLO_KEY, HOST_KEY, PLAYER_KEY, FLASH_KEY = "quiz_solo", "quiz_host", "quiz_player", "quiz_flash"
VOTE_ERROR_KEY = "quiz_vote_error"
# Keyboard shortcuts (st.button(shortcut=...)). Streamlit reserves R (rerun) and C (clear cache), so
# "real" is G ("genuine", beside F for "fake").
KEYS = {"real": "G", "fake": "F", "left": "1", "right": "2", "reveal": "Space", "prev": "Left", "next": "Right"}
INTRO = ("People against the detectors, on faces from the run's test split (images no model trained or was tuned "
         "on). On StyleGAN2 faces, 315 people scored 48.2%, and 59.0% after training with feedback (Nightingale & "
         "Farid, PNAS 2022).")
KEYS_HELP = (f"Keys: **{KEYS['fake']}** fake, **{KEYS['real']}** real (Streamlit keeps R for itself), **1**/**2** "
             f"left/right is real, **Space** reveal, **←/→** previous/next.")
MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|:~$=")
ANSWER_TEXT = {"real": "Real", "fake": "Fake", "left": "Left is real", "right": "Right is real"}
STYLE = """
<style>
[data-testid="stMain"] [data-testid="stMarkdownContainer"] p,
[data-testid="stMain"] [data-testid="stMarkdownContainer"] li { font-size: 1.3rem; }
[data-testid="stMain"] [data-testid="stCaptionContainer"] p { font-size: 1.05rem; }
[data-testid="stMain"] button p { font-size: 1.35rem; font-weight: 600; }
[data-testid="stMain"] [data-testid="stMetricValue"] { font-size: 2.6rem; }
.quiz-code { font-size: 3.4rem; font-weight: 800; letter-spacing: 0.18em; font-family: monospace; line-height: 1.1; }
.quiz-big { font-size: 2.6rem; font-weight: 800; line-height: 1.2; margin: 0.2rem 0 0.6rem 0; }
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }
.quiz-fake { color: #D43F3F; } .quiz-real { color: #2F6DB5; } .quiz-ok { color: #2E9D57; } .quiz-no { color: #D43F3F; }
</style>
"""


# --------------------------------------------------------------------------- cached loaders


def _run_stamp(run: results.Run) -> tuple:
    """Changes when the run's manifest or any model's results change (cache key)."""
    return (run.file_mtime(store.MANIFEST),
            *(common._model_mtime(run, m, store.PREDICTIONS) for m in run.models()))


@st.cache_data(show_spinner="Reading the run's test images and stored scores…", max_entries=16)
def _pool(run_path: str, datasets: tuple[str, ...] | None, stamp: tuple) -> quiz.Pool:
    return quiz.build_pool(common._open(run_path), datasets)


@st.cache_data(show_spinner=False, max_entries=256)
def _pixels(path: str, mtime: float):
    return quiz.load_image(path)


def pixels(path: str):
    """The image's RGB pixels, or None (with an error shown) when the file is gone or unreadable."""
    try:
        return _pixels(path, common._mtime(Path(path)))
    except (ImageError, OSError) as exc:
        st.error(f"This image cannot be shown ({exc}). Skip to the next round.", icon=":material/broken_image:")
        return None


@st.cache_data(show_spinner=False, max_entries=128)
def _gradcam(run_path: str, model: str, stamp: tuple, path: str, mtime: float):
    loaded = common._run_models(run_path, (model,), stamp)[model]
    over, exp = quiz.gradcam_overlay(loaded.model, quiz.load_image(path))
    return over, exp.note


def gradcam(run_path: str, model: str | None, path: str):
    """Grad-CAM overlay of ``model`` on one image (computed on first reveal, then cached), or None
    with the reason shown."""
    if not model:
        st.caption("No Keras model in this run: no Grad-CAM.")
        return None
    try:
        run = common._open(run_path)
        stamp = (common._model_mtime(run, model, store.KERAS_MODEL),)
        with st.spinner(f"Grad-CAM of {model}…"):
            over, note = _gradcam(run_path, model, stamp, path, common._mtime(Path(path)))
    except Exception as exc:  # noqa: BLE001 - the reveal stays useful without the map
        st.caption(f"Grad-CAM of {model} is not available: {exc}")
        return None
    if note:
        st.caption(note)
    return over


# --------------------------------------------------------------------------- shared pieces


def md_escape(text: str) -> str:
    """``text`` shown literally in st.markdown (a nickname cannot add links, images or colours)."""
    return "".join("\\" + ch if ch in MD_SPECIAL else ch for ch in str(text))


def big(text: str, css: str = "") -> None:
    st.markdown(f"<div class='quiz-big {css}'>{text}</div>", unsafe_allow_html=True)


def game_settings(run: results.Run, prefix: str) -> tuple[list[str], str, int, int]:
    """Datasets, kind, rounds and seed chosen in the page's settings row."""
    datasets = common.guarded(run.datasets)
    c1, c2, c3, c4 = st.columns([3, 3, 1, 1], vertical_alignment="bottom")
    chosen = c1.multiselect("Datasets", datasets, default=datasets, key=f"{prefix}_datasets",
                            help="Images come from the TEST split of these datasets only: no model trained or "
                                 "was tuned on them. Each dataset holds one kind of fake.")
    kind = KINDS[c2.radio("Rounds", list(KINDS), key=f"{prefix}_kind", horizontal=False)]
    n = int(c3.number_input("How many", min_value=1, max_value=100, value=10, key=f"{prefix}_n"))
    seed = int(c4.number_input("Seed", min_value=0, max_value=10**9, value=1, key=f"{prefix}_seed",
                               help="The same run, datasets, rounds and seed give the same game."))
    return chosen, kind, n, seed


def new_game(run: results.Run, datasets: list[str], kind: str, n: int, seed: int) -> dict:
    """Rounds and the models' settings of a new game (JSON values). Raises ``QuizError`` (or a run's
    ``ArtifactError``) with a message to show."""
    if not datasets:
        raise quiz.QuizError("Choose at least one dataset.")
    pool = _pool(str(run.path), tuple(sorted(datasets)), _run_stamp(run))
    rnds = quiz.make_rounds(pool, n, kind, seed)
    return {"rounds": [r.to_dict() for r in rnds], "run_id": run.run_id, "run_path": str(run.path),
            "verdict_model": pool.verdict_model, "thresholds": pool.thresholds,
            "gradcam_model": quiz.best_keras_model(run), "datasets": sorted(datasets), "kind": kind, "seed": seed,
            "asked": n}


def flash(message: str, kind: str = "warning") -> None:
    """Keep a message from a button's callback to show on the next run (callbacks run before the page)."""
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    kind, message = st.session_state.pop(FLASH_KEY, (None, None))
    if message:
        getattr(st, kind)(message)


def _settings(prefix: str) -> tuple[list[str], str, int, int]:
    ss = st.session_state
    return (list(ss.get(f"{prefix}_datasets") or []), KINDS[ss.get(f"{prefix}_kind", list(KINDS)[0])],
            int(ss.get(f"{prefix}_n", 10)), int(ss.get(f"{prefix}_seed", 1)))


def _game_from_settings(run_path: str, prefix: str) -> dict | None:
    try:
        game = new_game(common._open(run_path), *_settings(prefix))
    except (quiz.QuizError, results.RunNotFound, results.ArtifactError) as exc:
        flash(str(exc))
        return None
    if len(game["rounds"]) < game["asked"]:
        flash(f"The chosen datasets have test images for {len(game['rounds'])} round(s) only.", "info")
    return game


def show_round(rnd: quiz.Round, width: int = 400, revealed: bool = False) -> None:
    """The round's image(s), side by side (also on a phone); after the reveal each says what it was."""
    with st.container(horizontal=True, gap="small", horizontal_alignment="center", wrap=False):
        for k, im in enumerate(rnd.images):
            side = "" if rnd.kind == "single" else ("Left" if k == 0 else "Right")
            rgb = pixels(im.path)
            if rgb is None:
                continue
            caption = side
            if revealed:
                caption = f"{side + ': ' if side else ''}{im.truth.upper()} · {im.dataset}"
            st.image(rgb, caption=caption or None, width=width)


def headline(rnd: quiz.Round, revealed: bool) -> None:
    """The question, or after the reveal the truth, in large type."""
    if not revealed:
        big("Real or fake?" if rnd.kind == "single" else "Which one is real?")
    elif rnd.kind == "single":
        big(f"It was {rnd.answer.upper()}", f"quiz-{rnd.answer}")
    else:
        big(f"The {rnd.answer.upper()} one was real", "quiz-real")


def verdict_line(rnd: quiz.Round, game: dict, mine: str | None = None) -> None:
    """Your answer (solo), the verdict model's answer in words, and what to look for."""
    if mine is not None:
        ok = mine == rnd.answer
        st.markdown(f"{':green[**You were right**]' if ok else ':red[**You were wrong**]'}: you said "
                    f"*{ANSWER_TEXT[mine]}*.")
    vm = game["verdict_model"]
    ma = quiz_answers.model_answer(rnd, vm, game["thresholds"][vm])
    if ma is not None:
        mark = ":green[:material/check_circle: right]" if ma.correct else ":red[:material/cancel: wrong]"
        st.markdown(f"**{vm}** (the run's verdict) says: **{ma.sentence}** — {mark}")
    policy, _ = common.run_policy(common._open(game["run_path"]))
    words = quiz_answers.calibrated_verdicts(rnd, policy)
    if words:
        sides = ["Left: ", "Right: "] if len(words) == 2 else [""]
        st.markdown("**In the Check page's words** (calibrated): " +
                    " · ".join(f"{side}{w}" for side, w in zip(sides, words)))
    for dataset in rnd.datasets:
        note = quiz.look_for(dataset)
        st.markdown(f"**What to look for** · {dataset}, *{note.kind}*: {note.note}")


def reveal_details(rnd: quiz.Round, game: dict, cam: bool = True, width: int = 260) -> None:
    """Every detector's stored score and the Grad-CAM of the best Keras model (computed now, then cached)."""
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(figures.scores_figure(quiz_answers.all_answers(rnd, game["thresholds"])), width="stretch",
                        key=f"quiz_scores_{rnd.index}", config={"displayModeBar": False})
        st.caption("Every detector's stored P(fake) on this test image (black tick: its threshold, chosen on "
                   "validation; past it means fake). In a paired round a model's answer is the image it finds "
                   "less fake.")
    with right:
        if not cam:
            return
        if not game.get("gradcam_model"):
            st.caption("No Keras model in this run: no Grad-CAM.")
            return
        st.markdown(f"**Grad-CAM of {game['gradcam_model']}** (the best single Keras model): where it looked "
                    f"(red = most)")
        with st.container(horizontal=True):
            for im in rnd.images:
                over = gradcam(game["run_path"], game["gradcam_model"], im.path)
                if over is not None:
                    st.image(over, width=width if len(rnd.images) == 1 else width // 2 + 20,
                             caption=f"{im.truth} · {im.dataset}")


def answer_buttons(rnd: quiz.Round, key: str, on_answer, disabled: bool = False, shortcuts: bool = True) -> None:
    """Two large answer buttons side by side (also on a phone), calling ``on_answer(choice)`` when clicked
    (or their keyboard shortcut is pressed)."""
    with st.container(horizontal=True):
        for choice in rnd.choices:
            st.button(ANSWER_TEXT[choice], key=f"{key}_{choice}", type="primary", width="stretch",
                      disabled=disabled, shortcut=KEYS[choice] if shortcuts else None, on_click=on_answer,
                      args=(choice,))


def scoreboard_view(board: scores.Scoreboard, people: str = "Class", key: str = "board") -> None:
    """Accuracy of the people vs every model, d', per round and (for a room) per player."""
    if board.n_revealed == 0:
        st.info("The scoreboard fills in as rounds are revealed.")
        return
    c = st.columns(4)
    c[0].metric(f"{people} accuracy", "–" if board.class_accuracy is None else f"{board.class_accuracy:.0%}",
                help=f"{board.n_votes} answer(s) on {board.n_revealed} revealed round(s).")
    c[1].metric(f"{board.verdict_model}", "–" if board.model_accuracy is None else f"{board.model_accuracy:.0%}",
                help="The run's verdict model on the same rounds.")
    c[2].metric(f"{people} d′", "–" if board.class_dprime is None else f"{board.class_dprime:.2f}",
                help=("d′ = z(hit rate) − z(false-alarm rate): hits = fakes called fake, false alarms = reals "
                      "called fake, both with the log-linear correction (count + 0.5) / (n + 1) (Hautus 1995). "
                      "0 is chance." if board.kind == "single" else
                      "Paired rounds are a two-alternative forced choice: d′ = √2 · z(proportion correct), "
                      "log-linear corrected (Macmillan & Creelman 2005). 0 is chance."))
    c[3].metric(f"{board.verdict_model} d′", "–" if board.model_dprime is None else f"{board.model_dprime:.2f}")
    rows = [(people, board.class_accuracy, board.n_votes)] + [
        (r.model, r.accuracy, r.rounds) for r in board.models.itertuples(index=False)]
    st.plotly_chart(figures.accuracy_figure(rows), width="stretch", key=f"{key}_acc",
                    config={"displayModeBar": False})
    st.dataframe(board.rounds.rename(columns={"class_accuracy": f"{people.lower()} accuracy"}), hide_index=True,
                 width="stretch", column_config={f"{people.lower()} accuracy": st.column_config.NumberColumn(
                     format="percent")})


def _votes_frame(answers: dict) -> pd.DataFrame:
    return pd.DataFrame([{"round": int(i), "nickname": "you", "answer": a} for i, a in answers.items()],
                        columns=["round", "nickname", "answer"])


# --------------------------------------------------------------------------- solo


def _solo_start(run_path: str) -> None:
    game = _game_from_settings(run_path, "quiz_solo")
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
    game = _game_from_settings(run_path, "quiz_room")
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


# --------------------------------------------------------------------------- page

st.html(STYLE)
joined = st.session_state.get(PLAYER_KEY) is not None or bool(st.query_params.get("p"))
default_mode = "Student (join)" if st.query_params.get("room") else "Solo"
if joined:  # a student's phone: nothing but the room
    student()
    st.stop()
top = st.columns([2, 3], vertical_alignment="bottom")
picked_mode = top[1].segmented_control("Play", list(MODES), default=default_mode, key="quiz_mode",
                                       label_visibility="collapsed",
                                       help="Solo: one person at this screen. Teacher: open a room and project "
                                            "it. Student: join a room from a phone.")
mode = MODES.get(picked_mode or default_mode, "solo")
playing = mode != "student" and st.session_state.get(SOLO_KEY if mode == "solo" else HOST_KEY) is not None
if playing:  # the round's own question is the headline: keep the top row small
    top[0].markdown("**Real or fake?** · classroom mode")
else:
    top[0].title("Real or fake?")
if mode == "solo":
    solo()
elif mode == "teacher":
    teacher()
else:
    student()
