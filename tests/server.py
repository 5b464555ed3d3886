"""Start and stop the real dashboard server (``python -m dashboard.serve``) for the browser,
load and security tests, and the load benchmark.

    with StreamlitServer(artifacts_dir) as server:
        server.url            # http://127.0.0.1:<free port>
        server.pid            # the streamlit process itself (not a wrapping shell)
        server.peak_rss_mb()  # VmHWM of that process
        server.log_text()     # everything it printed

The server runs ``python -m dashboard.serve --server.headless true --server.address 127.0.0.1
--server.port <free port> --browser.gatherUsageStats false`` (``streamlit run dashboard/app.py`` after a
warm start, as ``scripts/run.sh`` serves it) from the repository root
(so ``.streamlit/config.toml`` applies) with ``DEEPFAKE_LENS_ARTIFACTS`` pointing at the artifacts
folder. ``flags=False`` starts it with no command-line flags at all (only the port, via the
``STREAMLIT_SERVER_PORT`` environment variable), to test what the config file alone gives.

``count_loads=True`` runs the same server through this file (``python tests/server.py ...``):
the process is still the one Python process that runs Streamlit's own CLI, but before Streamlit
starts it wraps ``pipeline.detectors.load`` (one model) and ``pipeline.faces.detector``'s builder
so that every real model load prints a ``[deepfake-lens-load] ...`` line to the log;
:meth:`StreamlitServer.model_loads` counts them. That is how the load test checks that
``st.cache_resource`` loads each of the run's models once per process.

The process is stopped by its PID (SIGTERM, then SIGKILL after a grace period).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS_ENV = "DEEPFAKE_LENS_ARTIFACTS"
LOAD_MARK = "[deepfake-lens-load]"


class ServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine_cpu_seconds() -> float | None:
    """CPU time all cores of this machine have spent busy since boot (user, nice, system, irq, softirq,
    steal in /proc/stat), in seconds: the difference over a load gives everything that ran, the
    browsers included."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def proc_status(pid: int, field: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status (VmHWM, VmRSS) in kB, or None."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class StreamlitServer:
    def __init__(self, artifacts: Path | str | None, *, port: int | None = None, flags: bool = True,
                 count_loads: bool = False, log_path: Path | str | None = None, start_timeout: float = 120.0,
                 extra_env: dict[str, str] | None = None, app: Path | str | None = None):
        self.app = app  # another Streamlit script instead of the dashboard (bench/bench_pages.py --floor)
        self.artifacts = Path(artifacts) if artifacts is not None else None
        self.port = port or free_port()
        self.flags = flags
        self.count_loads = count_loads
        self.start_timeout = start_timeout
        self.extra_env = dict(extra_env or {})
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="streamlit-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.started_s: float | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "server not started"
        return self.proc.pid

    def command(self) -> list[str]:
        args = []
        if self.flags:
            args += ["--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(self.port),
                     "--browser.gatherUsageStats", "false"]
        if self.app is not None:
            return [sys.executable, "-m", "streamlit", "run", str(self.app), *args]
        if self.count_loads:
            return [sys.executable, str(Path(__file__).resolve()), *args]
        return [sys.executable, "-m", "dashboard.serve", *args]  # scripts/run.sh's command

    def env(self) -> dict[str, str]:
        # Start from a clean Streamlit environment: no inherited STREAMLIT_* override may change
        # what the config file and the flags say.
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["PYTHONUNBUFFERED"] = "1"
        if self.artifacts is not None:
            env[ARTIFACTS_ENV] = str(self.artifacts)
        if not self.flags:
            env["STREAMLIT_SERVER_PORT"] = str(self.port)
        env.update(self.extra_env)
        return env

    def start(self) -> "StreamlitServer":
        t0 = time.perf_counter()
        log = open(self.log_path, "wb")
        try:
            # The Popen PID is the Python process that runs Streamlit (no shell in between).
            self.proc = subprocess.Popen(self.command(), cwd=REPO, env=self.env(), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"streamlit exited with code {self.proc.returncode} before it was healthy:\n"
                                  f"{self.log_text()[-4000:]}")
            if self.healthy():
                break
            if time.monotonic() > deadline:
                self.stop()
                raise ServerError(f"streamlit was not healthy after {self.start_timeout:.0f} s:\n"
                                  f"{self.log_text()[-4000:]}")
            time.sleep(0.3)
        self.started_s = time.perf_counter() - t0
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as resp:
                return resp.status == 200 and resp.read().strip() == b"ok"
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, grace: float = 10.0) -> int | None:
        """Stop the server by its PID; returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=grace)
        except ProcessLookupError:
            return self.proc.wait(timeout=grace)

    def __enter__(self) -> "StreamlitServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ observation

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def peak_rss_mb(self) -> float | None:
        kb = proc_status(self.pid, "VmHWM")
        return None if kb is None else kb / 1024

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server process has used so far."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return None

    def rss_mb(self) -> float | None:
        kb = proc_status(self.pid, "VmRSS")
        return None if kb is None else kb / 1024

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def model_loads(self) -> dict[str, list[str]]:
        """``{what: [lines]}`` of the ``[deepfake-lens-load]`` lines (``count_loads=True`` only)."""
        out: dict[str, list[str]] = {}
        for line in self.log_text().splitlines():
            m = re.search(re.escape(LOAD_MARK) + r" (\S+) (.*)", line)
            if m:
                out.setdefault(m.group(1), []).append(m.group(2))
        return out

    def tracebacks(self) -> list[str]:
        """Traceback blocks in the server log (Streamlit logs uncaught page exceptions there)."""
        text = self.log_text()
        return [text[m.start():m.start() + 2000] for m in re.finditer(r"Traceback \(most recent call last\)", text)]


# ---------------------------------------------------------------------- real browser (selenium + Debian chromium)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                # several sessions in one browser (tabs) must not be throttled in the background
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", "--disable-dev-shm-usage")
# one per scored face on the check page: "Ensemble: fake (p ...", or with a run's combined model the
# caption "Log-odds vote of the Keras models: fake (p ..." under the face's verdict
VERDICT_RE = re.compile(r"(?:Ensemble|Log-odds vote of the Keras models): (real|fake) \(p ")


def browser_missing() -> str | None:
    """Why the real-browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return (f"{path} not found: install Debian's chromium and chromium-driver "
                    f"(scripts/test.sh does it with apt-get when run as root)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


class Browser:
    """One headless chromium driven by selenium, with a fresh profile that is deleted on quit."""

    def __init__(self, width: int = 1400, height: int = 1000, page_load_timeout: float = 90):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in CHROME_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={self.profile}")
        opts.add_argument(f"--window-size={width},{height}")
        self.size = (width, height)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(page_load_timeout)

    def quit(self) -> None:
        import shutil

        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.quit()

    # ------------------------------------------------------------------ waiting

    def script_state(self) -> str | None:
        return self.driver.execute_script(
            "const a = document.querySelector(\"[data-testid='stApp']\");"
            "return a ? a.getAttribute('data-test-script-state') : null;")

    def busy(self) -> bool:
        return bool(self.driver.execute_script(
            "return !!document.querySelector(\"[data-testid='stStatusWidget']\") || "
            "!!document.querySelector(\"[data-testid='stSkeleton']\");"))

    def wait_idle(self, timeout: float = 90, settle: float = 0.6) -> float:
        """Wait until the script has run and the status widget is gone, twice ``settle`` apart."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        calm_since = None
        time.sleep(0.2)
        while True:
            state = self.script_state()
            idle = state == "notRunning" and not self.busy()
            now = time.monotonic()
            if idle:
                calm_since = calm_since or now
                if now - calm_since >= settle:
                    return now - t0
            else:
                calm_since = None
            if now > deadline:
                raise TimeoutError(f"page still busy after {timeout:.0f} s (script state {state!r})")
            time.sleep(0.15)

    def wait_for(self, predicate, timeout: float, what: str, poll: float = 0.2):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(poll)

    # ------------------------------------------------------------------ reading the page

    def main_text(self) -> str:
        return self.driver.execute_script(
            "const m = document.querySelector(\"[data-testid='stMain']\") || document.body; return m.innerText;") or ""

    def page_text(self) -> str:
        return self.driver.execute_script("return document.body.innerText;") or ""

    def problems(self) -> list[str]:
        """Streamlit exception boxes and any traceback text on the page."""
        out = [f"exception box: {t[:600]}" for t in self.driver.execute_script(
            "return Array.from(document.querySelectorAll(\"[data-testid='stException']\")).map(e => e.innerText);")]
        text = self.page_text()
        if "Traceback" in text:
            i = text.index("Traceback")
            out.append(f"'Traceback' in page text: {text[max(0, i - 200):i + 600]}")
        return out

    def sidebar_pages(self) -> list[tuple[str, str]]:
        """(title, url) of every page link in the sidebar navigation, in order (expands "View more")."""
        self.driver.execute_script(
            "const b = document.querySelector(\"[data-testid='stSidebarNavViewButton']\");"
            "if (b && /more/i.test(b.innerText)) b.click();")
        links = self.driver.execute_script(
            "return Array.from(document.querySelectorAll(\"[data-testid='stSidebarNav'] a[data-testid='stSidebarNavLink']\"))"
            ".map(a => { const l = a.querySelector('span[label]');"
            "            return [l ? l.getAttribute('label') : a.innerText.split('\\n').pop(), a.href]; });")
        return [(t, h) for t, h in links]

    def alerts(self, kind: str = "Error") -> list[str]:
        return self.driver.execute_script(
            f"return Array.from(document.querySelectorAll(\"[data-testid='stAlertContent{kind}']\"))"
            ".map(e => e.innerText);")

    def verdicts(self) -> int:
        return len(VERDICT_RE.findall(self.main_text()))

    def file_result(self, name: str) -> str | None:
        """Text of the result box of uploaded file ``name`` (its bordered container) on the check page."""
        return self.driver.execute_script(
            "const name = arguments[0];"
            "for (const h of document.querySelectorAll(\"[data-testid='stMain'] h4\")) {"
            "  if (!h.innerText.includes(name)) continue;"
            "  let el = h;"
            "  while (el && !(el.getAttribute && el.getAttribute('data-testid') === 'stVerticalBlock'"
            "                 && (el.innerText.includes('Ensemble:') || el.innerText.includes('Log-odds vote')))) el = el.parentElement;"
            "  if (el) return el.innerText;"
            "}"
            "return null;", name)

    def file_status(self, name: str) -> tuple[str | None, str | None, list[str]]:
        """(verdict, error message, page problems) of uploaded file ``name``, in one browser round trip
        (``textContent``, not ``innerText``: no layout pass, cheap enough to poll from many sessions)."""
        verdict_text, errors, exceptions, traceback = self.driver.execute_script(
            "const name = arguments[0]; let v = null;"
            "for (const h of document.querySelectorAll(\"[data-testid='stMain'] h4\")) {"
            "  if (!h.textContent.includes(name)) continue;"
            "  let el = h;"
            "  while (el && !(el.getAttribute && el.getAttribute('data-testid') === 'stVerticalBlock'"
            "                 && (el.textContent.includes('Ensemble:') || el.textContent.includes('Log-odds vote')))) el = el.parentElement;"
            "  if (el) { v = el.textContent; break; }"
            "}"
            "const errs = Array.from(document.querySelectorAll(\"[data-testid='stAlertContentError']\"))"
            "  .map(e => e.textContent).filter(t => t.includes(name));"
            "const exc = Array.from(document.querySelectorAll(\"[data-testid='stException']\")).map(e => e.textContent);"
            "return [v, errs, exc, document.body.textContent.includes('Traceback')];", name)
        m = VERDICT_RE.search(verdict_text or "")
        problems = [f"exception box: {t[:600]}" for t in exceptions] + (["'Traceback' in page text"] if traceback else [])
        return (m.group(1) if m else None), (errors[0] if errors else None), problems

    def file_verdict(self, name: str) -> str | None:
        text = self.file_result(name)
        m = VERDICT_RE.search(text or "")
        return m.group(1) if m else None

    def file_error(self, name: str) -> str | None:
        for text in self.alerts("Error"):
            if name in text:
                return text
        return None

    # ------------------------------------------------------------------ acting

    def upload(self, path: Path | str, clear: bool = True) -> None:
        """Choose ``path`` in the page's file_uploader (``input[type=file]``).

        chromedriver appends to a ``multiple`` input's existing file list, which would upload the
        earlier files again: the input is emptied first (the uploader keeps its uploaded files).
        """
        from selenium.webdriver.common.by import By

        inp = self.wait_for(lambda: self.driver.find_elements(By.CSS_SELECTOR, "input[type=file]"), 60,
                            "the file uploader")[0]
        if clear:
            self.driver.execute_script("arguments[0].value = '';", inp)
        inp.send_keys(str(Path(path).resolve()))

    def full_page_screenshot(self, path: Path | str) -> Path:
        """Screenshot of the whole page: the window is stretched to the height of Streamlit's
        scrolling main area for the shot, then restored."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_script(
            "const els = [document.documentElement, document.body,"
            " document.querySelector(\"[data-testid='stMain']\"),"
            " document.querySelector(\"[data-testid='stAppViewContainer']\"),"
            " document.querySelector(\"[data-testid='stSidebarContent']\")];"
            "return Math.max(...els.filter(Boolean).map(e => e.scrollHeight));")
        width, base = self.size
        tall = int(min(max(base, (height or base) + 40), 12000))
        try:
            if tall > base:
                self.driver.set_window_size(width, tall)
                time.sleep(0.8)  # let charts re-layout
            self.driver.save_screenshot(str(path))
        finally:
            if tall > base:
                self.driver.set_window_size(width, base)
        return path


# ---------------------------------------------------------------------- load driver (test_load.py, bench/bench_load.py)


@dataclass
class CheckRequest:
    session: int
    image: str
    seconds: float | None = None  # upload -> verdict on screen
    verdict: str | None = None
    error: str | None = None


@dataclass
class LoadResult:
    sessions: int
    browsers: int
    requests: list[CheckRequest] = field(default_factory=list)
    session_errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    peak_rss_mb: float | None = None
    server_cpu_s: float | None = None
    machine_cpu_s: float | None = None  # every process of the machine over the same time: server + browsers
    model_loads: dict = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(r.error is not None for r in self.requests) + len(self.session_errors)

    @property
    def latencies(self) -> list[float]:
        return [r.seconds for r in self.requests if r.error is None and r.seconds is not None]

    def percentile(self, q: float) -> float | None:
        lat = sorted(self.latencies)
        if not lat:
            return None
        k = (len(lat) - 1) * q / 100  # linear interpolation, as numpy's default
        lo, hi = int(k), min(int(k) + 1, len(lat) - 1)
        return lat[lo] + (lat[hi] - lat[lo]) * (k - lo)

    def row(self) -> dict:
        p50, p95 = self.percentile(50), self.percentile(95)
        return {"sessions": self.sessions, "browsers": self.browsers, "requests": len(self.requests),
                "errors": self.errors, "p50 s": p50, "p95 s": p95,
                "max s": max(self.latencies) if self.latencies else None,
                "wall s": self.wall_s, "server CPU s": self.server_cpu_s,
                "other CPU s": (self.machine_cpu_s - self.server_cpu_s
                                if self.machine_cpu_s is not None and self.server_cpu_s is not None else None),
                "server peak RSS MB": self.peak_rss_mb,
                "model loads": len(self.model_loads.get("run_models", []))}


def run_load(url: str, images: list[list[Path]], *, tabs_per_browser: int = 1, time_limit: float = 150.0,
             poll: float = 0.5, log=print, shots: Path | None = None) -> LoadResult:
    """Open ``len(images)`` dashboard sessions on the check page at once (one headless chromium per
    ``tabs_per_browser`` sessions, one thread per browser) and let session ``i`` upload the files of
    ``images[i]`` one after another, each time waiting for that file's verdict (or its error).

    Bounded: exactly ``sum(map(len, images))`` uploads, and everything stops at ``time_limit``
    seconds (unanswered uploads count as errors). All sessions start uploading together (barrier
    after every page has loaded)."""
    import threading

    n = len(images)
    groups = [list(range(i, min(i + tabs_per_browser, n))) for i in range(0, n, tabs_per_browser)]
    result = LoadResult(sessions=n, browsers=len(groups))
    lock = threading.Lock()
    start = threading.Barrier(len(groups))
    t_start = time.monotonic()
    deadline = t_start + time_limit
    browsers: list[Browser] = []

    def remaining() -> float:
        return max(1.0, deadline - time.monotonic())

    def record(req: CheckRequest) -> None:
        with lock:
            result.requests.append(req)
        log(f"[{time.monotonic() - t_start:5.1f} s] session {req.session}: {req.image} -> {req.verdict or 'ERROR ' + str(req.error)[:200]}"
            f"{'' if req.seconds is None else f' in {req.seconds:.1f} s'}")

    def snapshot(b: Browser, sessions: list[int], what: str) -> str:
        """Screenshot of every tab of a failing browser (when ``shots`` is set); returns where."""
        if shots is None:
            return ""
        names = []
        try:
            for k, h in enumerate(b.driver.window_handles):
                b.driver.switch_to.window(h)
                p = Path(shots) / f"load-{what}-sessions-{'-'.join(map(str, sessions))}-tab{k}.png"
                b.full_page_screenshot(p)
                names.append(str(p))
        except Exception:  # noqa: BLE001
            pass
        return f" (screenshots: {', '.join(names)})" if names else ""

    def worker(sessions: list[int]) -> None:
        b = None
        todo = {sid: list(images[sid]) for sid in sessions}
        try:
            b = Browser()
            with lock:
                browsers.append(b)
            d = b.driver
            handles = {}
            for k, sid in enumerate(sessions):
                if k:
                    d.switch_to.new_window("tab")
                d.get(f"{url}/check")
                handles[sid] = d.current_window_handle
            for sid in sessions:
                d.switch_to.window(handles[sid])
                b.wait_idle(remaining())
                b.wait_for(lambda: d.find_elements("css selector", "input[type=file]"), remaining(), "the uploader")
        except Exception as exc:  # noqa: BLE001 - reported as a session error
            where = snapshot(b, sessions, "open") if b is not None else ""
            with lock:
                result.session_errors.append(f"sessions {sessions}: could not open the check page at "
                                             f"{time.monotonic() - t_start:.0f} s: {exc!r}"[:800] + where)
            start.abort()
            return
        try:
            start.wait(timeout=remaining())
        except threading.BrokenBarrierError:
            pass  # another browser failed to start: go on, its sessions are already counted as errors
        try:
            for step in range(max(len(v) for v in todo.values())):
                pending = {}
                for sid in sessions:
                    if step < len(todo[sid]):
                        img = Path(todo[sid][step])
                        d.switch_to.window(handles[sid])
                        pending[sid] = (img, time.perf_counter())
                        b.upload(img)
                while pending and time.monotonic() < deadline:
                    for sid, (img, t0) in list(pending.items()):
                        d.switch_to.window(handles[sid])
                        verdict, error, problems = b.file_status(img.name)
                        if verdict or error or problems:
                            record(CheckRequest(sid, img.name, time.perf_counter() - t0, verdict,
                                                error if not verdict else ("; ".join(problems) or None)))
                            del pending[sid]
                    if pending:
                        time.sleep(poll)
                if pending:
                    snapshot(b, sessions, "timeout")
                for sid, (img, t0) in pending.items():
                    record(CheckRequest(sid, img.name, None, None, f"no verdict within the {time_limit:.0f} s limit"))
                if time.monotonic() >= deadline:
                    break
            for sid in sessions:
                done = {r.image for r in result.requests if r.session == sid}
                for img in todo[sid]:
                    if Path(img).name not in done:
                        record(CheckRequest(sid, Path(img).name, None, None, "not uploaded: time limit reached"))
        except Exception as exc:  # noqa: BLE001
            where = snapshot(b, sessions, "error")
            with lock:
                result.session_errors.append(f"sessions {sessions} at {time.monotonic() - t_start:.0f} s: "
                                             f"{exc!r}"[:800] + where)

    threads = [threading.Thread(target=worker, args=(g,), name=f"browser-{i}", daemon=True)
               for i, g in enumerate(groups)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()) + 30)
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        result.session_errors.append(f"threads still running after the time limit: {stuck}")
    for b in list(browsers):
        try:
            b.quit()
        except Exception:  # noqa: BLE001
            pass
    result.wall_s = time.monotonic() - t_start
    return result


def load_images(n_sessions: int, per_session: int, folder: Path) -> list[list[Path]]:
    """Distinct photos for every upload (so no upload is a cache hit): real faces from
    ../shared/data when present, else synthetic face-like PNGs written into ``folder``."""
    need = n_sessions * per_session
    base = REPO.parent / "shared" / "data" / "faces140k"

    def listing(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")) if d.is_dir() else []

    # alternate real and fake photos so every session gets both
    mixed = [p for pair in zip(listing(base / "real"), listing(base / "fake")) for p in pair][:need]
    if len(mixed) < need:
        import numpy as np
        from PIL import Image

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from conftest import face_like

        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(11)
        mixed = []
        for i in range(need):
            p = folder / f"load_{i:03d}.png"
            Image.fromarray(face_like("real" if i % 2 else "fake", rng, 128)).save(p)
            mixed.append(p)
    return [mixed[i * per_session:(i + 1) * per_session] for i in range(n_sessions)]


# ---------------------------------------------------------------------- instrumented launcher


def _instrument() -> None:
    """Wrap the real model loaders so that each actual load prints one marked line (see module doc)."""
    import functools
    import threading

    sys.path.insert(0, str(REPO))
    from pipeline import detectors

    real = detectors.load  # the dashboard loads a run's models one by one (dashboard.common._run_model)

    @functools.wraps(real)
    def load_run_model(run_dir, name):
        t0 = time.perf_counter()
        out = real(run_dir, name)
        print(f"{LOAD_MARK} run_models pid={os.getpid()} thread={threading.current_thread().name} "
              f"run={Path(run_dir).name} models={name} seconds={time.perf_counter() - t0:.2f}", flush=True)
        return out

    detectors.load = load_run_model

    try:
        from pipeline import faces
    except Exception:  # noqa: BLE001 - face detection is optional for this count
        return
    if hasattr(faces, "detector"):
        real_detector = faces.detector
        lock = threading.Lock()

        @functools.wraps(real_detector)
        def detector():
            with lock:
                before = getattr(faces, "_DETECTOR", None)
                out = real_detector()
            if before is None and out is not None:
                print(f"{LOAD_MARK} face_detector pid={os.getpid()} thread={threading.current_thread().name}",
                      flush=True)
            return out

        faces.detector = detector


def main(argv: list[str]) -> None:
    _instrument()
    from dashboard import serve

    serve.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
