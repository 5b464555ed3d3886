"""What one control change costs on the SVM lab page: the page's script rerun after the C slider
moves (the SVM refit, its scores and the 2-D surface), through Streamlit's AppTest in this process.

    .venv/bin/python bench/bench_svm_page.py [--artifacts DIR] [--changes 4]

Uses the newest run of the artifacts folder and its first model with embeddings (the page's default).
Prints one line per change with the 1-minute load average, and the fit time the page shows.
Writes nothing (the numbers go into BENCHMARKS.md by hand).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", type=Path, default=None)
    ap.add_argument("--changes", type=int, default=4)
    args = ap.parse_args(argv)
    if args.artifacts:
        os.environ["DEEPFAKE_LENS_ARTIFACTS"] = str(args.artifacts.resolve())
    os.environ.setdefault("DEEPFAKE_LENS_WARM_UP", "0")  # this page needs no Keras model
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=600)
    at.run()
    at.switch_page("app_pages/svm_lab.py")
    t = time.perf_counter()
    at.run()
    print(f"first render {time.perf_counter() - t:.2f} s; load {os.getloadavg()[0]:.2f}")
    for i in range(args.changes):
        value = 0.25 * (i + 1) * (-1) ** i
        t = time.perf_counter()
        at.slider(key="svm_log_c").set_value(value).run()
        fit = next((m.value for m in at.metric if m.label == "Fit time"), "?")
        print(f"C = 10^{value:+.2f}: rerun {time.perf_counter() - t:.2f} s (fit {fit}); load {os.getloadavg()[0]:.2f}")
    if at.exception:
        print("exception:", [e.value for e in at.exception])
        return 1
    print(next((c.value for c in at.caption if c.value.startswith(("Fitted on", "5,000", "1,"))), ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
