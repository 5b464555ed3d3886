"""End to end in a real browser (Debian chromium via selenium, as tests/test_browser.py): on the
Check a video page a clip with two real faces is uploaded and gets a verdict, a timeline and its
most suspicious frames; then a text file named .mp4 gets its message. Screenshots go to
``test-output/screenshots/video-*.png``."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from conftest import REPO
from server import Browser, StreamlitServer, browser_missing
from video_clips import face_frames, shared_faces, write_clip

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OUT = REPO / "test-output"
SHOTS = OUT / "screenshots"
TIMEOUT = 240  # s: the first check loads TensorFlow, the models and the face detector on a busy machine


@pytest.fixture(scope="module")
def server(request):
    why = browser_missing()
    if why:
        pytest.skip(why)
    if shared_faces(2) is None:
        pytest.skip("../shared/data/faces140k not found (a clone without the shared face images)")
    tiny_run = request.getfixturevalue("tiny_run")
    OUT.mkdir(exist_ok=True)
    with StreamlitServer(Path(tiny_run).parent, log_path=OUT / "streamlit-video-browser.log") as srv:
        yield srv


def _choose(browser: Browser, label: str) -> None:
    from selenium.webdriver.common.by import By

    radio = browser.wait_for(lambda: [e for e in browser.driver.find_elements(By.CSS_SELECTOR, "label")
                                      if e.text.strip() == label], 60, f"the {label!r} option")
    radio[0].click()
    browser.wait_idle(60)


def test_video_page_upload_in_a_real_browser(server, tmp_path, capsys):
    SHOTS.mkdir(parents=True, exist_ok=True)
    clip = write_clip(tmp_path / "two_faces.mp4", face_frames(shared_faces(2), n_frames=12, step=3), fps=6)
    with Browser() as browser:
        d = browser.driver
        d.get(f"{server.url}/video")
        browser.wait_idle(TIMEOUT)
        assert "Check a video" in browser.main_text() and not browser.problems(), browser.problems()
        _choose(browser, "Upload")
        import tomllib

        cap = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
        assert re.search(rf"\b{cap}\s?MB per file", browser.main_text()), browser.main_text()[:1500]

        t0 = time.perf_counter()
        browser.upload(clip)
        browser.wait_for(lambda: "face track" in browser.main_text() and not browser.busy(), TIMEOUT, "a verdict")
        browser.wait_idle(TIMEOUT)
        text = browser.main_text()
        with capsys.disabled():
            print(f"\nvideo verdict after {time.perf_counter() - t0:.1f} s")
        assert re.search(r"Likely fake|Likely real|Unsure", text), text[:2000]
        assert "Most suspicious frames" in text and "Face tracks" in text and "12 frames sampled" in text  # 12 frames: 16 timestamps, each frame once
        assert d.find_elements("css selector", ".js-plotly-plot"), "the timeline chart is missing"
        assert not browser.problems(), browser.problems()
        browser.full_page_screenshot(SHOTS / "video-two-faces.png")

        bad = tmp_path / "not_a_video.mp4"
        bad.write_text("hello, this is text")
        browser.upload(bad)
        browser.wait_for(lambda: "plain text" in " ".join(browser.alerts("Error")), TIMEOUT, "the bad file's message")
        assert not browser.problems(), browser.problems()
        browser.full_page_screenshot(SHOTS / "video-bad-file.png")
    assert not server.tracebacks(), server.tracebacks()
