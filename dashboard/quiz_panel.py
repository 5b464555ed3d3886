"""What every way of playing the "Real or fake?" page shares: cached loaders (the quiz pool, pixels, Grad-CAM)
and the pieces each view draws (the round, its headline, the answer buttons, the reveal, the scoreboard).

The work is :mod:`pipeline.quiz`; this module only draws. The views are :mod:`dashboard.quiz_modes`.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard import common
from pipeline import results, store
from pipeline.images import ImageError
from pipeline.quiz import figures, scores
from pipeline.quiz import answers as quiz_answers
from pipeline.quiz import rounds as quiz

KINDS = {"Single: real or fake?": "single", "Paired: which one is real?": "paired"}
# Projector layout at 1280x800: the round on the left, the side panel (score, or code + QR + votes) on the right;
# a paired round gets more of the width so its two faces stay side by side.
COLUMNS = {"single": [3, 2], "paired": [2, 1]}
IMAGE_PX = {"single": 340, "paired": 245}
FLASH_KEY = "quiz_flash"
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


def settings(prefix: str) -> tuple[list[str], str, int, int]:
    """The settings row's choices from the session state (in a button's callback, before the row is drawn)."""
    ss = st.session_state
    return (list(ss.get(f"{prefix}_datasets") or []), KINDS[ss.get(f"{prefix}_kind", list(KINDS)[0])],
            int(ss.get(f"{prefix}_n", 10)), int(ss.get(f"{prefix}_seed", 1)))


def game_from_settings(run_path: str, prefix: str) -> dict | None:
    """A new game from the settings row, or None with the reason kept for :func:`show_flash`."""
    try:
        game = new_game(common._open(run_path), *settings(prefix))
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
