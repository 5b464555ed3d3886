"""Presentation mode: for a projector or a class. Large type, fewer controls, the answer and the picture
first.

Switched by the sidebar toggle (:func:`sidebar_toggle`, in ``dashboard/app.py``) or by opening any page
with ``?present=1`` (``?present=0`` switches it off); the choice lives in ``st.session_state[KEY]`` and
is mirrored in the URL, so a bookmarked or reloaded link keeps it. Pages ask :func:`active` and leave
out their secondary controls when it is on.
"""
from __future__ import annotations

import streamlit as st

KEY = "present"
PARAM = "present"

# Large type and less chrome. Streamlit's own class names are not stable, so only its data-testid
# attributes and plain elements are styled.
_CSS = """
<style>
[data-testid="stMain"] .block-container, [data-testid="stMainBlockContainer"] {
  padding-top: 1.5rem; max-width: 100%;
}
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label,
[data-testid="stMain"] [data-testid="stMarkdownContainer"] { font-size: 1.25rem; line-height: 1.45; }
[data-testid="stMain"] [data-testid="stCaptionContainer"],
[data-testid="stMain"] [data-testid="stCaptionContainer"] p { font-size: 1.05rem; }
[data-testid="stMain"] h1 { font-size: 2.3rem; padding-top: 0; }
[data-testid="stMain"] h3 { font-size: 2.1rem; }
[data-testid="stMain"] h4 { font-size: 1.6rem; }
</style>
"""

# The Check page's first screen at 1280x800 in normal mode: less empty space above the title.
_COMPACT_CSS = """
<style>
[data-testid="stMain"] .block-container, [data-testid="stMainBlockContainer"] { padding-top: 2.5rem; }
</style>
"""


def _from_query() -> bool | None:
    value = st.query_params.get(PARAM)
    if value is None:
        return None
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _sync_query() -> None:
    if st.session_state.get(KEY):
        st.query_params[PARAM] = "1"
    elif PARAM in st.query_params:
        del st.query_params[PARAM]


def active() -> bool:
    """True when presentation mode is on for this session (the URL's ``?present=`` wins on first visit)."""
    if KEY not in st.session_state:
        st.session_state[KEY] = bool(_from_query())
    return bool(st.session_state[KEY])


def sidebar_toggle() -> bool:
    """The sidebar switch (call inside ``with st.sidebar``); applies the large type when on."""
    wanted = _from_query()
    if wanted is not None and KEY in st.session_state and wanted != st.session_state[KEY] \
            and st.session_state.get("_present_url") != wanted:
        st.session_state[KEY] = wanted  # a new ?present= in the URL
    st.session_state["_present_url"] = wanted
    active()
    on = st.toggle("Presentation mode", key=KEY, on_change=_sync_query,
                   help="For a projector: large type, fewer controls, the answer and the picture first. "
                        "Also: add ?present=1 to a page's address.")
    if on:
        st.markdown(_CSS, unsafe_allow_html=True)
    return on


def compact_top() -> None:
    """Less space above the page title (the Check page, so its answer fits the first screen)."""
    st.markdown(_COMPACT_CSS, unsafe_allow_html=True)
