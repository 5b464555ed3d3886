"""Benchmark the default run: train the default config on ../shared/data from cold and record,
per model and dataset, test accuracy, AUC, training time and latency in BENCHMARKS.md.

    .venv/bin/python bench/bench_default.py [--config default] [--artifacts DIR] [--warm]
                                            [--built-log FILE --built-note TEXT]

By default the run goes to a fresh folder under bench/out/ so it is cold (nothing cached, images
decoded from scratch); --artifacts artifacts/ --warm times a rerun against the main artifacts.
--built-log records how the run was actually built instead (a stamped log of an earlier
`python -m pipeline train`, e.g. one that reused models of another run), described by --built-note.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, markdown_table, write_section  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="default")
    ap.add_argument("--artifacts", default=str(REPO / "bench" / "out" / "artifacts"))
    ap.add_argument("--warm", action="store_true", help="keep the artifacts folder (measure a cached rerun)")
    ap.add_argument("--built-log", help="stamped log of the train command that built the run (recorded instead)")
    ap.add_argument("--built-note", default="", help="how that build went (with --built-log)")
    args = ap.parse_args()

    from pipeline import config_load, runner
    from pipeline.progress import TqdmProgress
    from pipeline.results import load_run

    art = Path(args.artifacts)
    if not args.warm and art.exists():
        shutil.rmtree(art)
    cfg = config_load.apply_overrides(config_load.load(args.config), artifacts_dir=str(art))
    start = time.perf_counter()
    steps: list[str] = []

    def log(line: str) -> None:  # every line of the run, stamped with the minutes since the start
        stamped = f"{(time.perf_counter() - start) / 60:5.1f} min  {line}"
        steps.append(stamped)
        print(stamped, flush=True)

    run_dir = runner.train_run(cfg, progress=TqdmProgress(), log=log)
    total = time.perf_counter() - start

    run = load_run(str(run_dir))
    summary = run.summary()
    rows = []
    for _, r in summary.iterrows():
        rows.append({"model": r["model"], "dataset": r["scope"], "n test": int(r["n"]),
                     "accuracy": r["accuracy"], "AUC": r["roc_auc"], "F1": r["f1"],
                     "train s": r["train_seconds"], "latency ms (batch 1)": r["latency_ms_batch1"],
                     "ms/image (batch 64)": (r["latency_ms_batch64"] or 0) / 64})
    table = markdown_table(rows)
    print(table)
    print(f"\ntotal {total:.0f} s ({'warm' if args.warm else 'cold'}), run {run_dir.name}")
    counts = run.counts()
    if args.built_log:
        steps = []
        for line in Path(args.built_log).read_text().replace("\r", "\n").splitlines():
            text = line.split("min  ", 1)[1].strip() if "min  " in line else ""
            if text.startswith("run: "):  # the summary table printed after this line is in the table above
                break
            if text and "it/s]" not in text and "s/it]" not in text and not text.startswith(("W0000", "I0000")):
                steps.append(line)
        timing = args.built_note
    else:
        timing = (f"{'warm (cached)' if args.warm else 'cold (empty artifacts folder)'}, total **{total / 60:.1f} "
                  f"min** for training, evaluation, the embedding step and the experiments the config runs after "
                  f"training.")
    body = (f"`python bench/bench_default.py --config {args.config}`: run `{run_dir.name}`, {timing} "
            f"Test split per dataset; thresholds chosen on validation (Youden's J). {int(counts['n'].sum())} "
            f"images.\n\n{table}\n\n<details><summary>The run's log, stamped with minutes since the start "
            f"(where the time went)</summary>\n\n```\n" + "\n".join(steps) + "\n```\n</details>\n")
    write_section(f"default-{args.config}", f"Run of `configs/{args.config}.toml` on ../shared/data", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
