"""Nothing leaves 127.0.0.1: the page icon and the fonts are served by the dashboard itself.

A real headless chromium (Debian's, through selenium) loads every page of a synthetic run (no
TensorFlow) and lists every resource it fetched (``performance.getEntriesByType('resource')``: fonts,
icons, scripts, images). Offline, a request to a font CDN is a console error and a missing icon.
"""
from __future__ import annotations

import pytest
from server import Browser, StreamlitServer, browser_missing

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LOCAL = ("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:")
RESOURCES_JS = "return performance.getEntriesByType('resource').map(e => e.name);"
ICONS_JS = "return Array.from(document.querySelectorAll(\"link[rel~='icon']\")).map(l => l.href);"


def test_no_request_leaves_localhost(tmp_path):
    why = browser_missing()
    if why:
        pytest.skip(why)
    from synthetic_run import write_synthetic_run

    write_synthetic_run(tmp_path, seed=1)
    with StreamlitServer(tmp_path) as server, Browser(1280, 800) as b:
        b.driver.get(server.url)
        b.wait_idle(120)
        pages = b.sidebar_pages()
        assert pages, "no page links in the sidebar"
        fetched, icons = [], b.driver.execute_script(ICONS_JS)
        fetched += b.driver.execute_script(RESOURCES_JS)
        for _, href in pages[1:]:
            b.driver.get(href)
            b.wait_idle(120)
            fetched += b.driver.execute_script(RESOURCES_JS)
    assert any("/static/" in u for u in fetched), "no resource was listed: the check would be empty"
    assert any(u.endswith((".woff2", ".woff", ".ttf")) for u in fetched), "no font was fetched locally"
    external = sorted({u for u in fetched if not u.startswith(LOCAL)})
    assert external == [], external
    assert icons and all(u.startswith(LOCAL) for u in icons), icons
