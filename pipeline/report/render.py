"""HTML building blocks shared by the run report, the model cards and the check report.

Everything a report shows is put inside its one HTML file: plotly figures as ``<div>`` + JSON
(plotly.js itself inlined once per page by the template), images as ``data:image/jpeg;base64``
URIs, tables as escaped HTML. Pages are rendered with Jinja2 (autoescaping on), so text from a
run (model, dataset and file names, skipped-file reasons) can never inject markup.
"""
from __future__ import annotations

import base64
import html
import io
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent / "templates"
THUMB_PX = 112  # longest side of a thumbnail in the reports, pixels
JPEG_QUALITY = 80
# no plotly logo link; no buttons that are noise in a report
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True,
                 "modeBarButtonsToRemove": ["sendDataToCloud", "select2d", "lasso2d"]}


@lru_cache(maxsize=1)
def environment():
    """The Jinja2 environment of the report templates (autoescape on, undefined names raise)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = number
    env.filters["md"] = inline_markdown
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``; returns the HTML text."""
    return environment().get_template(template).render(**context)


@lru_cache(maxsize=1)
def plotly_js() -> Markup:
    """The bundled plotly.js (about 4.8 MB of JavaScript, no network), to inline once per page."""
    from plotly.offline import get_plotlyjs

    return Markup(get_plotlyjs().replace("</script", "<\\/script"))


def figure(fig, height: int | None = None) -> Markup:
    """A plotly figure as a ``<div>`` plus the script that draws it; needs :func:`plotly_js` on the page."""
    import plotly.io as pio

    if height is not None:
        fig.update_layout(height=height)
    return Markup(pio.to_html(fig, include_plotlyjs=False, full_html=False, config=PLOTLY_CONFIG,
                              default_height=f"{height or 450}px"))


def number(value: Any, digits: int = 4) -> str:
    """A table cell: ``n/a`` for missing, integers with thousands separators, floats to ``digits``."""
    if value is None:
        return "n/a"
    try:
        if pd.isna(value):
            return "n/a"
    except (TypeError, ValueError):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def table(df: pd.DataFrame, table_id: str | None = None, digits: Mapping[str, int] | None = None,
          default_digits: int = 4, index: bool = False) -> Markup:
    """``df`` as an escaped HTML table (class ``data``): numbers through :func:`number`, ``digits`` per
    column overriding ``default_digits``. Integer-valued columns (counts, parameters) keep their exact value."""
    digits = dict(digits or {})
    frame = df.reset_index() if index else df
    formatters = {c: (lambda v, d=digits.get(c, default_digits): number(v, d)) for c in frame.columns}
    text = frame.to_html(index=False, table_id=table_id, classes="data", border=0, escape=True,
                         formatters=formatters, na_rep="n/a")
    return Markup(text.replace(' style="text-align: right;"', ""))


def inline_markdown(text: str) -> Markup:
    """The inline Markdown the pipeline's findings use (``**bold**``, ``*italic*``, `` `code` ``), escaped first."""
    out = html.escape(str(text), quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return Markup(out)


def rgb_uri(rgb: np.ndarray, max_side: int = THUMB_PX, quality: int = JPEG_QUALITY) -> str:
    """A ``data:image/jpeg;base64,...`` URI of an (H, W, 3) uint8 RGB array, shrunk (never enlarged) so
    its longest side is at most ``max_side`` pixels."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)), mode="RGB")
    im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def file_uri(path: str | Path, max_side: int = THUMB_PX) -> str | None:
    """:func:`rgb_uri` of an image file decoded by :func:`pipeline.images.load_rgb` (safe decoding,
    pixel cap); ``None`` when the file is missing or not a usable image."""
    from pipeline import images

    try:
        return rgb_uri(images.load_rgb(path), max_side)
    except (images.ImageError, OSError, ValueError):
        return None


def thumbnails(items: Iterable[tuple[str, str]], max_side: int = THUMB_PX) -> list[dict]:
    """``[{"uri": data URI or None, "caption": str, "name": file name}]`` for ``(path, caption)`` pairs."""
    return [{"uri": file_uri(path, max_side), "caption": caption, "name": Path(str(path)).name}
            for path, caption in items]
