"""The check report: one self-contained HTML file with the verdicts on checked photos.

Input is what :mod:`pipeline.checking` returns (:class:`~pipeline.checking.FileCheck` with its
:class:`~pipeline.checking.FaceCheck` objects): per file the photo with the scored face boxes, and
per face its crop, the run's three-way verdict (real / fake / unsure, worded as on the Check page:
:mod:`pipeline.verdict`; without a verdict policy, the combined model or the models' vote), the reasons behind it, every model's
P(fake) at its own threshold and, when given, explanation maps (e.g. Grad-CAM overlays). Files that
could not be checked carry their error message. Everything is inline (JPEG data URIs), so the file
can be mailed; nothing in it runs a script.

* The dashboard: ``st.download_button("Download the report", check_report_html(checks, run=run,
  summary=summary), file_name="check-report.html", mime="text/html")``.
* The CLI: ``python -m pipeline predict FILES --report FILE`` (the same ``FileCheck`` objects: one
  check path).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.report import render

PHOTO_PX = 480  # longest side of the photo with its face boxes, pixels
CROP_PX = 200  # longest side of a face crop, pixels
MAP_PX = 320  # longest side of an explanation map (an overlay with its colour bar and title), pixels
BORDERLINE = 0.05  # |P(fake) - threshold| below which a verdict is called borderline
Explanations = Mapping[tuple[str, int], Sequence[tuple[str, np.ndarray]]]


def _photo_with_boxes(check) -> str | None:
    """Data URI of the photo, shrunk to :data:`PHOTO_PX`, with each scored face's box drawn and numbered."""
    from PIL import Image, ImageDraw

    if check.rgb is None:
        return None
    im = Image.fromarray(np.ascontiguousarray(check.rgb), mode="RGB")
    scale = min(1.0, PHOTO_PX / max(im.size))
    if scale < 1.0:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    draw = ImageDraw.Draw(im)
    for face in check.faces:
        if face.box is None:
            continue
        x, y, w, h = (v * scale for v in face.box)
        fake = _headline(face)[0] == "fake"
        colour = (228, 87, 86) if fake else (76, 120, 168)
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=3)
        draw.text((x + 4, y + 2), str(face.index), fill=colour)
    return render.rgb_uri(np.asarray(im), PHOTO_PX, 85)


def _headline(face) -> tuple[str | None, float | None, str]:
    """(verdict, P(fake), which model gave it) of a face: the three-way verdict, else the combined
    model, else the models' vote."""
    if getattr(face, "verdict", None) is not None:
        return face.verdict["verdict"], face.verdict["p_fake"], f"the run's verdict (calibrated {face.verdict['model']})"
    if face.combined is not None:
        return face.combined.get("verdict"), face.combined.get("p_fake"), face.combined.get("model", "combined model")
    return face.ensemble.get("verdict"), face.ensemble.get("p_fake"), "the models' log-odds vote"


def reasons(face) -> list[str]:
    """Why the face got its verdict, as inline-Markdown sentences: the deciding score against its
    threshold, how close that is, the router's reading, the models' vote and whether it agrees."""
    from pipeline.checking import looks_like_text

    out = []
    comb, ens = face.combined, face.ensemble
    v = getattr(face, "verdict", None)
    if v is not None:
        out.append(f"The run's verdict: **{v['headline']}** (calibrated P(fake) {v['p_fake']:.3f}, threshold "
                   f"{v['threshold']:.3f}).")
        out += [f"Unsure because {r}." for r in v["reasons"]]
    if comb is not None:
        p, t = float(comb["p_fake"]), float(comb["threshold"])
        side = "at or above" if p >= t else "below"
        out.append(f"**{comb['model']}** (the run's combined model) gives P(fake) {p:.3f}, {side} its threshold "
                   f"{t:.3f}: **{comb['verdict']}**.")
        if abs(p - t) < BORDERLINE:
            out.append(f"P(fake) is within {BORDERLINE} of the threshold: a borderline case, weak either way.")
        looks = looks_like_text(comb.get("looks_like"), top=2)
        if looks:
            out.append(f"The router takes the face for the kind of image in: {looks}.")
    n = int(ens.get("n_models") or 0)
    if n:
        out.append(f"{ens['votes_fake']} of {n} model(s) say fake at their own thresholds; their log-odds vote gives "
                   f"P(fake) {ens['p_fake']:.3f}: **{ens['verdict']}**.")
        if comb is not None and ens.get("verdict") != comb.get("verdict"):
            out.append("The combined model and the models' vote disagree: treat this verdict as uncertain.")
    if comb is None and n == 1:
        rec = face.scores[0]
        out.append(f"One model only ({rec['model']}, threshold {rec['threshold']:.3f}).")
    return out


def _face(face, file_name: str, explanations: Explanations | None, summary) -> dict[str, Any]:
    from pipeline.checking import combined_headline

    verdict, p, by = _headline(face)
    maps = (explanations or {}).get((file_name, face.index), ())
    return {
        "label": face.label, "index": face.index, "verdict": verdict, "p_fake": p, "by": by,
        "headline": (face.verdict["headline"] if getattr(face, "verdict", None) is not None else
                     combined_headline(face.combined, summary) if face.combined is not None else None),
        "box": None if face.box is None else "x={} y={} w={} h={}".format(*(int(v) for v in face.box)),
        "confidence": face.confidence, "crop": render.rgb_uri(face.crop, CROP_PX, 85),
        "reasons": reasons(face),
        "scores": [{"model": r["model"], "p_fake": r["p_fake"], "threshold": r["threshold"], "verdict": r["verdict"]}
                   for r in face.scores],
        "members": sorted((face.combined or {}).get("members", {}).items()) if face.combined else [],
        "maps": [{"caption": caption, "uri": render.rgb_uri(rgb, MAP_PX, 85)} for caption, rgb in maps],
    }


def check_report_html(checks: Sequence, *, run=None, summary=None, explanations: Explanations | None = None,
                      forensic_facts: Mapping[str, Sequence[str]] | None = None, title: str = "Check report") -> str:
    """One self-contained HTML page (text) for a list of :class:`pipeline.checking.FileCheck`.

    ``run``: the :class:`pipeline.results.Run` or :class:`~pipeline.results.RunInfo` whose models
    checked the photos (its id is named). ``summary``: the run's summary table, for the pooled test
    ROC-AUC in each headline. ``explanations``: ``{(file name, face index): [(caption, overlay)]}``
    with overlays as (H, W, 3) uint8 RGB arrays (face index 0 = the whole image), shown under the face.
    ``forensic_facts``: ``{file name: Markdown lines}`` (:func:`pipeline.forensics.fact_lines`), shown
    per file as what the file itself says (a magnifying glass, not a verdict).
    Images are shrunk to thumbnails (photo 480 px, crops 200 px, maps 320 px) and inlined as JPEG."""
    info = getattr(run, "info", run)
    files = []
    for c in checks:
        faces = [_face(f, c.name, explanations, summary) for f in c.faces] if c.ok else []
        files.append({"name": c.name, "error": c.error, "note": c.note, "photo": _photo_with_boxes(c) if c.ok else None,
                      "faces": faces, "forensics": list((forensic_facts or {}).get(c.name, []))})
    rows = []
    for f in files:
        rows += [{"file": f["name"], "face": face["label"], "verdict": face["verdict"], "p_fake": face["p_fake"],
                  "by": face["by"]} for face in f["faces"]]
        if f["error"]:
            rows.append({"file": f["name"], "face": None, "verdict": None, "p_fake": None,
                         "by": "could not be checked"})
    from pipeline.forensics import MAGNIFYING_GLASS

    return render.render("check_report.html.j2", title=title, files=files, rows=rows, run=info,
                         magnifying_glass=MAGNIFYING_GLASS,
                         n_failed=sum(1 for c in checks if not c.ok),
                         generated=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def write_check_report(path: str | Path, checks: Sequence, **kwargs) -> Path:
    """:func:`check_report_html` written atomically to ``path``; returns the path."""
    from pipeline.report.run_report import write

    return write(path, check_report_html(checks, **kwargs))
