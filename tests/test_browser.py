"""End to end in a real browser: ``streamlit run`` on 127.0.0.1 over the tiny trained run, driven by
Debian's headless chromium through selenium (no browser download).

* Every page linked in the sidebar navigation (found in the DOM, so pages added later are covered)
  loads without a Streamlit exception box and without "Traceback" on screen.
* On "Check an image" a real face photo gets a verdict; then a batch of bad files (random bytes, a
  truncated JPEG, a PDF, all named like images) gets one specific message per file while the good
  photo's result stays on the page.

A full-page screenshot of every page is saved under ``test-output/screenshots/`` (gitignored) and its
path printed, so CI keeps the list in its log. The server log is ``test-output/streamlit-browser.log``.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bad_inputs
from conftest import REPO, SHARED_DATA, face_like
from server import Browser, StreamlitServer, browser_missing

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUT = REPO / "test-output"
SHOTS = OUT / "screenshots"
PAGE_TIMEOUT = 150  # s per page: a cold page may import TensorFlow on a busy 2-core machine
VERDICT_TIMEOUT = 180  # s: first check loads the models and the face detector


@pytest.fixture(scope="module")
def server(request):
    why = browser_missing()
    if why:
        pytest.skip(why)  # before training the tiny run
    tiny_run = request.getfixturevalue("tiny_run")
    OUT.mkdir(exist_ok=True)
    srv = StreamlitServer(Path(tiny_run).parent, log_path=OUT / "streamlit-browser.log")
    srv.start()
    print(f"\nstreamlit pid {srv.pid} at {srv.url}, healthy after {srv.started_s:.1f} s; log {srv.log_path}")
    yield srv
    srv.stop()


WINDOW = (1280, 800)  # a laptop or a projector: every page is looked at at this size


@pytest.fixture(scope="module")
def browser(server):
    b = Browser(*WINDOW)
    yield b
    b.quit()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "page"


def say(capsys, message: str) -> None:
    """Print past pytest's output capture, so CI's log keeps it even when the test passes."""
    with capsys.disabled():
        print(message, flush=True)


def shoot(browser: Browser, name: str, capsys) -> Path:
    path = browser.full_page_screenshot(SHOTS / f"{name}.png")
    say(capsys, f"\nscreenshot: {path}")
    return path


def face_photo(tmp_path: Path) -> Path:
    """A real face from ../shared/data when present, else a synthetic face-like image."""
    for folder in ("faces140k/real", "faces140k/fake", "lfw_faceswap/real"):
        d = SHARED_DATA / folder
        if d.is_dir():
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if files:
                return files[0]
    path = tmp_path / "synthetic_face.png"
    Image.fromarray(face_like("real", np.random.default_rng(3), 128)).save(path)
    return path


def test_every_sidebar_page_loads(server, browser, capsys):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in [*SHOTS.glob("[0-9][0-9]-*.png"), *SHOTS.glob("check-*.png")]:
        old.unlink()  # pages may have been renamed or removed since the last run
    d = browser.driver
    d.get(server.url)
    browser.wait_idle(PAGE_TIMEOUT)
    pages = browser.sidebar_pages()
    titles = [t for t, _ in pages]
    say(capsys, f"\nsidebar pages: {titles}")
    assert len(pages) >= 2, f"expected a sidebar navigation with pages, found {pages}"
    assert "Check an image" in titles

    problems: dict[str, list[str]] = {}
    timings = {}
    for i, (title, href) in enumerate(pages, 1):
        t0 = time.perf_counter()
        # navigate the way a user does: click the sidebar link (same session, run selection kept)
        clicked = d.execute_script(
            "const l = Array.from(document.querySelectorAll(\"[data-testid='stSidebarNav'] a\"))"
            ".find(a => a.href === arguments[0]); if (l) { l.click(); return true; } return false;", href)
        if not clicked:
            d.get(href)
        try:
            browser.wait_for(lambda: d.current_url.rstrip("/") == href.rstrip("/"), 30, f"the URL of {title}")
            browser.wait_idle(PAGE_TIMEOUT)
        except TimeoutError as exc:
            problems.setdefault(title, []).append(str(exc))
        timings[title] = time.perf_counter() - t0
        found = browser.problems()
        if not browser.main_text().strip():
            found.append("main area is empty")
        if found:
            problems.setdefault(title, []).extend(found)
        shoot(browser, f"{i:02d}-{slug(title)}", capsys)
    say(capsys, "\npage load seconds: " + ", ".join(f"{t} {s:.1f}" for t, s in timings.items()))
    log_tb = server.tracebacks()
    if log_tb:
        problems.setdefault("server log", []).extend(log_tb)
    assert not problems, "pages failed in the browser:\n" + "\n".join(
        f"- {page}: {msg}" for page, msgs in problems.items() for msg in msgs)


def test_check_page_upload_good_and_bad_files(server, browser, tmp_path, capsys):
    SHOTS.mkdir(parents=True, exist_ok=True)
    d = browser.driver
    d.get(f"{server.url}/check")  # a direct URL, as a bookmarked or reloaded tab opens it
    browser.wait_idle(PAGE_TIMEOUT)
    assert not browser.problems(), browser.problems()
    main = browser.main_text()
    assert "Check an image" in main, main[:2000]
    # the uploader enforces the server's cap and says so (server.maxUploadSize from .streamlit/config.toml)
    import tomllib

    cap = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert re.search(rf"\b{cap}\s?MB per file", main), main[:2000]

    # 1. a real face photo gets a verdict
    photo = face_photo(tmp_path)
    t0 = time.perf_counter()
    browser.upload(photo)
    verdict = browser.wait_for(lambda: browser.file_verdict(photo.name) or browser.file_error(photo.name),
                               VERDICT_TIMEOUT, f"a verdict for {photo.name}")
    print(f"\n{photo.name}: {verdict!r} after {time.perf_counter() - t0:.1f} s")
    assert verdict in ("real", "fake"), f"{photo.name} got an error instead of a verdict: {verdict}"
    browser.wait_idle(PAGE_TIMEOUT)
    assert not browser.problems(), browser.problems()
    shoot(browser, "check-good-photo", capsys)

    # 2. bad files in one batch: each gets its own specific message, the good result stays
    corpus = bad_inputs.make_corpus(tmp_path / "corpus")
    bad = [corpus[k] for k in ("random_bytes", "truncated_jpeg", "pdf")]
    browser.upload("\n".join(str(c.path) for c in bad))
    for item in bad:
        msg = browser.wait_for(lambda: browser.file_error(item.path.name), VERDICT_TIMEOUT,
                               f"the error message for {item.path.name}")
        print(f"{item.path.name}: {msg!r}")
        assert item.expect in msg.lower(), (item.path.name, msg)
    browser.wait_idle(PAGE_TIMEOUT)
    assert browser.file_verdict(photo.name) == verdict, "the good photo's result disappeared after the bad upload"
    warnings = " ".join(browser.alerts("Warning"))
    assert f"{len(bad)} of {len(bad) + 1} file(s) could not be checked" in warnings, warnings
    assert not browser.problems(), browser.problems()
    shoot(browser, "check-bad-files", capsys)
    assert not server.tracebacks(), server.tracebacks()


def real_face() -> Path:
    """A real face photo from ../shared/data (the first-screen test needs a real face, not a synthetic one)."""
    for folder in ("faces140k/real", "lfw_faceswap/real", "faces140k/fake"):
        d = SHARED_DATA / folder
        if d.is_dir():
            files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            if files:
                return files[0]
    pytest.skip(f"no real face photo under {SHARED_DATA} (a clone without ../shared/data)")


def headline_box(browser: Browser) -> tuple[float, float, float] | None:
    """(top, bottom, window inner height) of the Check page's first answer (the keyed headline), or None."""
    return browser.driver.execute_script(
        "const e = document.querySelector('[class*=\"st-key-check_headline_\"]');"
        "if (!e) return null; const r = e.getBoundingClientRect();"
        "return [r.top, r.bottom, window.innerHeight];")


@pytest.mark.parametrize("mode", ["normal", "presentation"])
def test_check_answer_visible_without_scrolling(server, browser, capsys, mode):
    """At 1280x800 the answer for an uploaded real face is on the first screen, in both modes."""
    photo = real_face()
    d = browser.driver
    d.get(f"{server.url}/check" + ("?present=1" if mode == "presentation" else "?present=0"))
    browser.wait_idle(PAGE_TIMEOUT)
    if mode == "presentation":
        assert d.execute_script("return document.body.innerText").count("Presentation mode") >= 1
        assert "Face finding settings" not in browser.main_text()  # fewer controls
    else:
        assert "Face finding settings" in browser.main_text()
    browser.upload(photo)
    box = browser.wait_for(lambda: headline_box(browser), VERDICT_TIMEOUT, f"the answer for {photo.name}")
    browser.wait_idle(PAGE_TIMEOUT)
    d.execute_script("const m = document.querySelector(\"[data-testid='stMain']\"); if (m) m.scrollTop = 0;"
                     "window.scrollTo(0, 0);")
    top, bottom, height = headline_box(browser)
    SHOTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(SHOTS / f"check-first-screen-{mode}.png"))
    say(capsys, f"\n{mode}: answer for {photo.name} at {top:.0f}-{bottom:.0f} px of {height} px; screenshot "
                f"{SHOTS / f'check-first-screen-{mode}.png'}")
    assert photo.name in browser.main_text()
    assert 0 <= top and bottom <= height, f"the answer ends at {bottom:.0f} px, below the first screen ({height} px)"
    assert not browser.problems(), browser.problems()
