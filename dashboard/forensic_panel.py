"""Drawing the forensic bench (pipeline.forensics) in Streamlit: figures, the full views, a compact panel.

``render_panel(name, data, key=...)`` is the compact panel for one uploaded file (the Check page calls it);
``render_inspection`` draws every view with its "how to read this" caption (the Forensics page).
Figure-building functions return plotly figures and are tested directly.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pipeline import forensics, images
from pipeline.forensics import CAPTIONS, MAGNIFYING_GLASS
from pipeline.forensics.jpeg import JpegGhosts
from pipeline.forensics.views import Spectrum

# --------------------------------------------------------------------------- figures


def radial_spectrum_figure(spectrum: Spectrum) -> go.Figure:
    """The azimuthally averaged power spectrum: log10 power against cycles per pixel (0-0.5)."""
    fig = go.Figure(go.Scatter(x=spectrum.frequency, y=spectrum.radial_power, mode="lines", name="power",
                               line={"color": "#636efa"},
                               hovertemplate="%{x:.3f} cycles/px<br>log10 power %{y:.2f}<extra></extra>"))
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, showlegend=False,
                      xaxis_title="frequency (cycles per pixel; 0.5 = finest)", yaxis_title="log10 power")
    return fig


def ghost_figure(ghosts: JpegGhosts, last_quality: int | None) -> go.Figure:
    """The JPEG-ghost curve: mean squared change when re-saved at each quality; last and ghost qualities marked."""
    fig = go.Figure(go.Scatter(x=ghosts.qualities, y=ghosts.difference, mode="lines+markers", name="change",
                               marker={"size": 5}, hovertemplate="quality %{x}<br>change %{y:.2f}<extra></extra>"))
    if last_quality:
        fig.add_vline(x=last_quality, line_dash="dot", line_color="grey",
                      annotation_text=f"last save ~{last_quality}", annotation_position="top left")
    if ghosts.ghost_quality is not None:
        fig.add_vline(x=ghosts.ghost_quality, line_color="#ef553b",
                      annotation_text=f"ghost {ghosts.ghost_quality}", annotation_position="top right")
    fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 30, "b": 10}, showlegend=False,
                      xaxis_title="re-save quality", yaxis_title="mean squared change")
    return fig


def quantization_frame(table: list[int]) -> pd.DataFrame:
    """A 64-entry quantisation table (natural order) as an 8x8 frame (rows: vertical frequency)."""
    return pd.DataFrame(np.asarray(table, dtype=int).reshape(8, 8), columns=[f"u{i}" for i in range(8)],
                        index=[f"v{i}" for i in range(8)])


# --------------------------------------------------------------------------- computing (cached)


@st.cache_data(max_entries=16, show_spinner=False)
def _inspect(data: bytes, name: str, ela_quality: int, include_gps: bool) -> forensics.Inspection:
    return forensics.inspect_image(data, name=name, ela_quality=ela_quality, include_gps=include_gps)


def inspect_bytes(data: bytes, name: str, ela_quality: int = 90,
                  include_gps: bool = False) -> tuple[forensics.Inspection | None, str | None]:
    """(inspection, None) or (None, the message for an unusable file). Never raises for bad content."""
    try:
        return _inspect(data, name, int(ela_quality), bool(include_gps)), None
    except images.ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001 - the page must never break on one odd file
        return None, f"{name} could not be inspected ({type(exc).__name__}: {exc})"


# --------------------------------------------------------------------------- drawing


def _view(col, rgb: np.ndarray, title: str, caption: str) -> None:
    with col:
        st.markdown(f"**{title}**")
        st.image(rgb, width="stretch")
        st.caption(caption)


def render_inspection(result: forensics.Inspection, key: str) -> None:
    """Every view and fact of one file, each with its one-line "how to read this" caption."""
    st.info(MAGNIFYING_GLASS, icon=":material/search:")
    c1, c2, c3 = st.columns(3)
    _view(c1, result.views["image"], "The image", "As decoded (EXIF rotation applied). Compare every view with it.")
    _view(c2, result.views["ela"], f"Error level analysis (quality {result.ela.quality})", CAPTIONS["ela"])
    _view(c3, result.views["noise"], "Noise residual", CAPTIONS["noise"])
    c1, c2, c3 = st.columns(3)
    _view(c1, result.views["noise_variance"], "Local noise strength", CAPTIONS["noise_variance"])
    _view(c2, result.views["spectrum"], "Fourier spectrum", CAPTIONS["spectrum"])
    with c3:
        st.markdown("**Spectrum averaged around circles**")
        st.plotly_chart(radial_spectrum_figure(result.spectrum), key=f"{key}_radial", width="stretch")
        st.caption(CAPTIONS["radial"])

    st.subheader("JPEG facts")
    if result.jpeg is None:
        st.caption(f"This is a {result.format} file, not a JPEG: no quantisation tables or JPEG ghosts to read.")
    else:
        j = result.jpeg
        st.markdown("\n".join(f"- {line}" for line in forensics.fact_lines(result)[1:3]))
        left, right = st.columns([1, 1])
        with left:
            if j.ghosts is not None:
                st.markdown("**JPEG ghosts**")
                st.plotly_chart(ghost_figure(j.ghosts, j.quality), key=f"{key}_ghosts", width="stretch")
                st.caption(CAPTIONS["ghosts"])
        with right:
            tabs = st.tabs([f"Quantisation table {tid} ({'luminance' if tid == 0 else 'chrominance'})"
                            for tid in sorted(j.quantization)])
            for tab, (tid, table) in zip(tabs, sorted(j.quantization.items())):
                tab.dataframe(quantization_frame(table), width="stretch")
            st.caption("Each number is how coarsely one 8×8 frequency is stored: bigger means more lost. Standard "
                       "tables scaled by one quality number are libjpeg's; cameras and editors often use their own.")

    st.subheader("Metadata")
    st.caption(CAPTIONS["metadata"])
    m = result.metadata
    st.markdown(f"- **Camera** {m.camera or '—'}\n- **Software** {', '.join(m.software) or '—'}\n"
                f"- **EXIF** {'yes' if m.has_exif else 'none'}"
                + (f"\n- **Editing/AI software named** {', '.join(m.editing_software)}" if m.editing_software else ""))
    if m.dates:
        st.markdown("- **Dates** " + "; ".join(f"{k}: {v}" for k, v in m.dates.items()))
    st.markdown(f"- **GPS** {m.gps if isinstance(m.gps, str) else 'shown below (you asked for it)'}")
    if m.ai_metadata:
        st.markdown(f"- **AI tool text fields** {', '.join(m.ai_metadata)} (written by image generators)")
    if m.exif or m.xmp or m.iptc or not isinstance(m.gps, str):
        with st.expander("All readable metadata"):
            st.json({"exif": m.exif, "xmp": m.xmp, "iptc": m.iptc,
                     **({"gps": m.gps} if not isinstance(m.gps, str) else {})}, expanded=False)
    if result.thumbnail is not None:
        t = result.thumbnail
        c1, c2, c3 = st.columns([1, 1, 2])
        _view(c1, result.thumbnail.rgb, "EXIF thumbnail", "The preview stored in the file.")
        _view(c2, result.views["image"], "The image", "The pixels you see.")
        with c3:
            (st.warning if t.disagrees else st.success)(
                f"The thumbnail {'shows a different picture' if t.disagrees else 'matches the image'} "
                f"(mean difference {t.difference:.1f} of 255, aspect ratios {t.aspect_mismatch:.1%} apart).")
            st.caption(CAPTIONS["thumbnail"])

    st.subheader("Content Credentials (C2PA)")
    st.caption(CAPTIONS["provenance"])
    render_provenance(result.provenance)
    if result.problems:
        st.warning("Some parts of this file could not be read (the rest above is still valid):\n\n"
                   + "\n".join(f"- {p}" for p in result.problems), icon=":material/warning:")


def render_provenance(p) -> None:
    """The C2PA facts in words: none = no information; present: signer, tool, actions, validation, trust."""
    if p.status == "none":
        st.markdown(f"{p.message}")
    elif p.status == "unreadable":
        st.warning(p.message, icon=":material/warning:")
    else:
        state = p.validation_state or "unknown"
        box = st.error if state == "Invalid" else st.success if state == "Trusted" else st.info
        box(f"Validation: **{state}**. " + {"Invalid": "The file or its manifest changed after signing.",
                                             "Valid": "The file is unchanged since it was signed.",
                                             "Trusted": "Unchanged since signing, by a signer on the local trust "
                                                        "list."}.get(state, ""))
        rows: list[tuple[str, Any]] = [("Signer", p.signer), ("Tool (claim generator)", p.claim_generator),
                                       ("Title", p.title), ("Trust", p.trust)]
        st.markdown("\n".join(f"- **{k}** {v}" for k, v in rows if v))
        if p.ai_generated:
            st.warning("**Declared AI generation**: " + "; ".join(p.ai_generated), icon=":material/smart_toy:")
        if p.actions:
            st.dataframe(pd.DataFrame(p.actions), hide_index=True, width="stretch")
        if p.failures:
            st.markdown("Validation messages: " + "; ".join(f"`{f}`" for f in p.failures))
    st.caption(f":material/cloud_off: {p.offline_note}")


def render_panel(name: str, data: bytes, *, key: str, ela_quality: int = 90) -> None:
    """A compact forensic panel for one uploaded file (for the Check page, per file).

    ``name``: the file name shown; ``data``: the file's bytes; ``key``: a unique widget-key prefix.
    Draws inside an expander: the ELA, noise-strength and spectrum views with one-line captions, the key
    facts and the provenance line. A file that cannot be read gets its message; nothing raises.
    The expander is lazy (``on_change="rerun"``): the file is inspected (ELA, JPEG ghosts, spectrum,
    metadata, C2PA: 0.2-1 s of server CPU per photo) only once the user opens it, not on every upload.
    """
    panel = st.expander(f"Forensic bench: {name}", icon=":material/search:", key=f"{key}_open", on_change="rerun")
    if not panel.open:
        return
    with panel:
        result, problem = inspect_bytes(data, name, ela_quality)
        if result is None:
            st.error(problem, icon=":material/broken_image:")
            return
        st.caption(MAGNIFYING_GLASS)
        cols = st.columns(4 if result.thumbnail is not None else 3)
        _view(cols[0], result.views["ela"], "Error levels", CAPTIONS["ela"])
        _view(cols[1], result.views["noise_variance"], "Noise strength", CAPTIONS["noise_variance"])
        _view(cols[2], result.views["spectrum"], "Spectrum", CAPTIONS["spectrum"])
        if result.thumbnail is not None:
            _view(cols[3], result.thumbnail.rgb, "EXIF thumbnail", CAPTIONS["thumbnail"])
        st.markdown("\n".join(f"- {line}" for line in forensics.fact_lines(result)))
        if result.problems:
            st.caption("Not readable: " + "; ".join(result.problems))
        st.caption(f":material/cloud_off: {result.provenance.offline_note} Full views: the **Forensics** page.")
