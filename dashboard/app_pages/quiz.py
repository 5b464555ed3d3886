"""Real or fake? Classroom mode: people against the run's detectors on faces from its test split.

Three ways to play (pipeline.quiz does the work; :mod:`dashboard.quiz_modes` draws each, from the pieces in
:mod:`dashboard.quiz_panel`):
* Solo: one person at a laptop, a running score against the run's verdict model.
* Teacher: opens a room (SQLite, pipeline.quiz.rooms) and projects its code, a QR code, the current
  round, the live vote histogram, then the reveal and the scoreboard.
* Student: joins a room on a phone with the code and a nickname and votes each round.
"""
from __future__ import annotations

import streamlit as st

from dashboard.quiz_modes import HOST_KEY, PLAYER_KEY, SOLO_KEY, solo, student, teacher

MODES = {"Solo": "solo", "Teacher (room)": "teacher", "Student (join)": "student"}
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
