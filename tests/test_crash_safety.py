"""kill -9 the training process at several points: what exists afterwards is complete, and a rerun
finishes the run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, make_labelled_folder

CONFIG = """
name = "crash"
seed = 3
[training]
batch_size = 8
epochs = 3
early_stopping_patience = 0
[embeddings]
enabled = false
[[models]]
name = "baseline_cnn"
image_size = 24
[[models]]
name = "tuned_cnn"
image_size = 24
[[models]]
name = "custom_cnn"
image_size = 24
"""


def check_everything_that_exists_loads(artifacts_dir: Path) -> int:
    """Every artifact file present is complete: JSON parses, tables read, models load. Returns a count."""
    from pipeline.models import load_model

    checked = 0
    for path in artifacts_dir.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".csv":
            pd.read_csv(path)
        elif path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                [z[k] for k in z.files]
        elif path.suffix == ".keras":
            load_model(path)
        else:
            continue
        checked += 1
    for done in artifacts_dir.rglob("done.json"):  # a finished model has all its files
        for f in ("metrics.json", "predictions.parquet"):
            assert (done.parent / f).exists(), f"{done.parent} is marked done without {f}"
    return checked


@pytest.mark.slow
def test_kill_9_at_random_points_then_rerun_finishes(tmp_path):
    data = make_labelled_folder(tmp_path / "faces", n_per_class=40, seed=11)
    cfg_file = tmp_path / "crash.toml"
    cfg_file.write_text(f'data = ["{data}"]\n' + CONFIG)
    art = tmp_path / "art"
    cmd = [sys.executable, "-m", "pipeline", "train", "--config", str(cfg_file), "--out", str(art), "--quiet"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    rng = np.random.default_rng(2026)
    kills = 0
    for attempt in range(3):
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # wait until the process is doing real work (run folder exists), then a random extra delay
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not list(art.glob("crash-*/run.json")):
            time.sleep(0.2)
        time.sleep(float(rng.uniform(0.5, 6.0)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        check_everything_that_exists_loads(art)
    assert kills >= 1, "the run finished before any kill: make the test config slower"

    finished = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    run_dir = next(art.glob("crash-*"))
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    for name in ("baseline_cnn", "tuned_cnn", "custom_cnn"):
        assert (run_dir / "models" / name / "done.json").exists()
    assert len(pd.read_csv(run_dir / "summary.csv")) == 3 * 2
    assert check_everything_that_exists_loads(art) > 10
