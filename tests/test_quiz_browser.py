"""End to end in a real browser: a teacher (1280x800, a projector) and two students on phone-sized
screens (390x844) play one round of "Real or fake?" against one dashboard server.

The server reads a synthetic run (tests/synthetic_run.py: real PNG files, stored scores, no
TensorFlow) and keeps its rooms in the SQLite file under that artifacts folder. The teacher opens a
room; each student opens the join link the teacher's page shows (``/quiz?room=CODE``), types a
nickname and votes, one "real" and one "fake"; the teacher's live histogram counts both, the teacher
presses Space (the Reveal button's keyboard shortcut), and each phone shows the truth and whether its
vote was right. Screenshots: ``test-output/screenshots/quiz-*.png``.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import REPO
from server import Browser, StreamlitServer, browser_missing
from synthetic_run import write_routed_ensemble, write_synthetic_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = REPO / "test-output" / "screenshots"
TIMEOUT = 120  # s: a cold page on a busy 2-core machine
PHONE = (390, 844)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    why = browser_missing()
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp("quiz-artifacts")
    run_dir = write_synthetic_run(root, models=("baseline_cnn", "mobilenet"), datasets=("faces140k", "ciplab"))
    write_routed_ensemble(run_dir)
    (REPO / "test-output").mkdir(exist_ok=True)
    srv = StreamlitServer(root, log_path=REPO / "test-output" / "streamlit-quiz.log")
    srv.start()
    yield srv
    srv.stop()


def _by_text(d, tag: str, text: str):
    from selenium.webdriver.common.by import By

    return [e for e in d.find_elements(By.XPATH, f"//{tag}[contains(normalize-space(.), {text!r})]")
            if e.is_displayed()]


def _click(b: Browser, tag: str, text: str, what: str) -> None:
    el = b.wait_for(lambda: _by_text(b.driver, tag, text), TIMEOUT, what)[0]
    b.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.click()


def _type(b: Browser, label: str, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = b.wait_for(lambda: b.driver.find_elements(By.CSS_SELECTOR, f"input[aria-label='{label}']"), TIMEOUT,
                     f"the {label} box")[0]
    box.clear()
    box.send_keys(text)


def _shot(b: Browser, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"quiz-{name}.png"
    b.driver.save_screenshot(str(path))  # the viewport: what the projector or the phone shows
    print(f"\nscreenshot: {path}")
    return path


def test_teacher_and_two_phones_play_one_round(server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    teacher = Browser(1280, 800)
    phones = Browser(*PHONE)
    try:
        t = teacher.driver
        t.get(f"{server.url}/quiz")
        teacher.wait_idle(TIMEOUT)
        _click(teacher, "button", "Teacher (room)", "the Teacher mode button")
        teacher.wait_idle(TIMEOUT)
        _click(teacher, "button", "Open a room", "the Open a room button")
        code_el = teacher.wait_for(lambda: t.find_elements(By.CSS_SELECTOR, ".quiz-code"), TIMEOUT, "the room code")
        code = code_el[0].text.strip()
        assert re.fullmatch(r"[A-Z2-9]{5}", code), code
        teacher.wait_idle(TIMEOUT)
        main = teacher.main_text()
        link = re.search(r"http://\S+/quiz\?room=" + code, main)
        assert link, main[:1500]
        def qr_code():  # the QR code: a square PNG, larger than the 48 px round images
            sizes = t.execute_script("return Array.from(document.querySelectorAll(\"[data-testid='stMain'] img\"))"
                                     ".map(i => [i.naturalWidth, i.naturalHeight]);")
            return [w for w, h in sizes if w == h and w >= 100]

        teacher.wait_for(qr_code, 30, "the QR code on the teacher's screen")
        assert not teacher.problems(), teacher.problems()
        _shot(teacher, "teacher-open")

        # two students on phones, one tab each (separate Streamlit sessions)
        p = phones.driver
        tabs = {}
        for k, (nick, vote) in enumerate((("Ana", "Real"), ("Bo", "Fake"))):
            if k:
                p.switch_to.new_window("tab")
            p.get(link.group(0))
            tabs[nick] = (p.current_window_handle, vote)
            phones.wait_idle(TIMEOUT)
            box = phones.wait_for(lambda: p.find_elements(By.CSS_SELECTOR, "input[aria-label='Room code']"),
                                  TIMEOUT, "the room code box")[0]
            assert box.get_attribute("value") == code  # filled in from the link
            _type(phones, "Nickname", nick)
            _click(phones, "button", "Join", "the Join button")
            phones.wait_for(lambda: f"{nick} · room {code}" in phones.main_text(), TIMEOUT, f"{nick} in the room")
            phones.wait_idle(TIMEOUT)
            if k == 0:
                _shot(phones, "phone-round")
            _click(phones, "button", vote, f"{nick}'s {vote} button")
            phones.wait_for(lambda: "Your vote:" in phones.main_text(), TIMEOUT, f"{nick}'s vote to be taken")
            assert not phones.problems(), phones.problems()
        _shot(phones, "phone-voted")

        # the teacher's live histogram counts both votes without a reload
        t.switch_to.window(t.current_window_handle)
        teacher.wait_for(lambda: "2 player(s) in the room · 2 voted" in teacher.main_text(), 60,
                         "both votes on the teacher's screen")
        _shot(teacher, "teacher-votes")
        # Space is the Reveal button's shortcut (st.button(shortcut="Space"))
        t.find_element(By.TAG_NAME, "body").send_keys(Keys.SPACE)
        truth = teacher.wait_for(lambda: re.search(r"It was (REAL|FAKE)", teacher.main_text()), TIMEOUT,
                                 "the reveal on the teacher's screen").group(1)
        teacher.wait_idle(TIMEOUT)
        main = teacher.main_text()
        assert "Class: 1 of 2 right (50%)" in main, main[:3000]
        assert "What to look for" in main and "says:" in main
        assert not teacher.problems(), teacher.problems()
        _shot(teacher, "teacher-reveal")

        # each phone shows the truth and its own result (the page refreshes itself)
        for nick, (handle, vote) in tabs.items():
            p.switch_to.window(handle)
            right = vote.upper() == truth
            expect = "You were right!" if right else "Not this time"
            score = f"Your score: {int(right)} of 1"  # drawn after the result line: wait for both
            phones.wait_for(lambda: expect in phones.main_text() and score in phones.main_text(), 60,
                            f"{nick}'s result and score")
            text = phones.main_text()
            assert f"It was {truth}" in text
            assert score in text, text
            assert not phones.problems(), phones.problems()
            _shot(phones, f"phone-reveal-{nick.lower()}")
        assert not server.tracebacks(), server.tracebacks()
    finally:
        teacher.quit()
        phones.quit()
