"""The reports in a real browser: Debian's headless chromium (selenium), the report opened from disk.

Chrome's performance log lists every request the page makes; after the page's own file:// URL
only ``data:`` and ``about:`` URLs may appear (no CDN, no font, nothing from the internet). The
browser console must hold no error, every plotly figure must be drawn (plotly.js is inline), and
the comparison table the browser shows must equal the run's summary.csv.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from server import CHROME_FLAGS, CHROMEDRIVER, CHROMIUM, browser_missing
from synthetic_run import write_routed_ensemble, write_synthetic_run
from test_report import add_experiments, cell_number
from test_report_check import checks

from pipeline.report import check_report, run_report
from pipeline.results import load_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def driver():
    why = browser_missing()
    if why:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument("--window-size=1300,1000")
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(90)
    yield d
    try:
        d.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_file(d, path: Path) -> tuple[list[str], list[dict]]:
    """Open ``path`` in a clean tab; return (URLs requested while loading, console entries)."""
    d.get("about:blank")
    time.sleep(0.3)
    d.get_log("performance")  # drain what the browser did before (its new-tab page)
    d.get_log("browser")
    d.get(path.resolve().as_uri())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and d.execute_script("return document.readyState") != "complete":
        time.sleep(0.2)
    time.sleep(1.0)  # let figures finish drawing
    events = [json.loads(e["message"])["message"] for e in d.get_log("performance")]
    urls = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return urls, d.get_log("browser")


def assert_offline(urls: list[str], page: Path) -> None:
    own = page.resolve().as_uri()
    foreign = [u for u in urls if u != own and not u.startswith(("data:", "about:"))]
    assert not foreign, f"the report requested {foreign[:5]}"
    assert own in urls


def test_run_report_in_chromium(driver, tmp_path):
    run_dir = write_synthetic_run(tmp_path / "art")
    write_routed_ensemble(run_dir)
    add_experiments(run_dir, ["baseline_cnn", "mobilenet"], ["faces140k", "lfw_faceswap"])
    page = run_report.write_run_report(load_run(run_dir), tmp_path / "report.html")

    urls, console = open_file(driver, page)
    assert_offline(urls, page)
    assert [e for e in console if e.get("level") == "SEVERE"] == [], console
    assert sum(u.startswith("data:image/jpeg") for u in urls) >= 10  # the thumbnails are inline

    figures = driver.execute_script("return document.querySelectorAll('.plotly-graph-div').length")
    drawn = driver.execute_script(
        "return Array.from(document.querySelectorAll('.plotly-graph-div'))"
        ".filter(g => g._fullLayout && g.querySelector('svg.main-svg')).length")
    assert figures >= 8 and drawn == figures

    # the table as the browser renders it equals summary.csv
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#summary-all tr'))"
        ".map(r => Array.from(r.cells).map(c => c.innerText.trim()))")
    shown = pd.DataFrame(rows[1:], columns=rows[0]).set_index("model")
    summary = pd.read_csv(run_dir / "summary.csv")
    expected = summary[summary["scope"] == "all"].set_index("model")
    assert sorted(shown.index) == sorted(expected.index)
    for model, row in expected.iterrows():
        for col in ("n", "accuracy", "roc_auc", "average_precision", "threshold"):
            assert cell_number(shown.loc[model, col]) == pytest.approx(row[col], abs=5e-5), (model, col)


def test_check_report_in_chromium(driver, tmp_path):
    overlay = np.full((64, 64, 3), 120, np.uint8)
    page = check_report.write_check_report(tmp_path / "check.html", checks(),
                                           explanations={("photo <1>.jpg", 1): [("a: Grad-CAM", overlay)]})
    urls, console = open_file(driver, page)
    assert_offline(urls, page)
    assert [e for e in console if e.get("level") == "SEVERE"] == [], console
    text = driver.find_element("tag name", "body").text
    assert "Face 1: fake" in text and "Could not be checked: bad.jpg" in text
    loaded = driver.execute_script(
        "return Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
    assert loaded == driver.execute_script("return document.images.length") == 4
