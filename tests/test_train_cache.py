"""A cached `python -m pipeline train` stays cheap (no TensorFlow) and still retrains what changed."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, make_labelled_folder, write_images

from pipeline import artifacts, store

# Runs the CLI's main() and reports afterwards whether TensorFlow or Keras was ever imported.
PROBE = ("import sys; from pipeline.__main__ import main; code = main(sys.argv[1:]); "
         "print('TENSORFLOW_IMPORTED', any(m == 'tensorflow' or m.startswith(('tensorflow.', 'keras')) "
         "for m in sys.modules)); sys.exit(code)")


def train_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", PROBE, "train", *args], check=False, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_cached_train_imports_no_tensorflow_and_changes_retrain(tmp_path):
    data = make_labelled_folder(tmp_path / "faces", n_per_class=12, seed=5)
    art = tmp_path / "art"
    args = ["--config", "smoke", "--data", str(data), "--models", "baseline_cnn", "--image-size", "16",
            "--out", str(art), "--quiet"]

    first = train_cli(*args, "--epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "TENSORFLOW_IMPORTED True" in first.stdout and "baseline_cnn: test accuracy" in first.stdout

    cached = train_cli(*args, "--epochs", "1")
    assert cached.returncode == 0, cached.stderr[-3000:]
    assert "baseline_cnn: cached" in cached.stdout
    assert "TENSORFLOW_IMPORTED False" in cached.stdout
    assert len([p for p in art.iterdir() if (p / "run.json").exists()]) == 1

    write_images(data / "fake", "fake", 2, seed=99)  # new data: another run, trained
    changed_data = train_cli(*args, "--epochs", "1")
    assert changed_data.returncode == 0, changed_data.stderr[-3000:]
    assert "baseline_cnn: test accuracy" in changed_data.stdout
    assert len([p for p in art.iterdir() if (p / "run.json").exists()]) == 2


def test_a_changed_config_is_another_run(tmp_path):
    """The cache key is the run id (config fingerprint + data) and each model's done.json: a changed
    setting gives another run folder, whose models are not done, so they are trained."""
    from pipeline import config_load, runner

    data = make_labelled_folder(tmp_path / "faces", n_per_class=6, seed=5)
    base = config_load.apply_overrides(config_load.load("smoke"), data=[str(data)], models=["baseline_cnn"], image_size=16,
                                       epochs=1, artifacts_dir=str(tmp_path / "art"))
    same = runner.prepare(base)[0]
    assert runner.prepare(base)[0] == same
    for changed in (config_load.apply_overrides(base, epochs=2), config_load.apply_overrides(base, image_size=20),
                    config_load.apply_overrides(base, max_images_per_class=3)):
        run_id, run_dir, _, _ = runner.prepare(changed)
        assert run_id != same and not store.is_model_done(run_dir, "baseline_cnn")
    assert len(runner.prepare(config_load.apply_overrides(base, max_images_per_class=3))[2]) == 6  # 3 real + 3 fake


def test_the_train_command_takes_a_cap_per_class_and_refuses_a_bad_one():
    from pipeline import config_load
    from pipeline.__main__ import build_parser

    args = build_parser().parse_args(["train", "--max-images-per-class", "100"])
    assert args.max_images_per_class == 100
    assert config_load.apply_overrides(config_load.load("smoke"), max_images_per_class=100).max_images_per_class == 100
    with pytest.raises(config_load.ConfigError, match="max_images_per_class"):
        config_load.apply_overrides(config_load.load("smoke"), max_images_per_class=-1)


def test_registry_names_without_keras_match_the_registry():
    """Read from the source in an interpreter that never imported the registry (where validating a config reads
    them), they are the registry's names: a model registered by a helper call, not a decorator, counts too."""
    code = ("import json, sys; from pipeline.model_names import registered_names; "
            "assert 'pipeline.models' not in sys.modules; print(json.dumps(sorted(registered_names())))")
    source = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert source.returncode == 0, source.stderr[-2000:]
    live = subprocess.run([sys.executable, "-c", "import json; from pipeline.models import REGISTRY; "
                                                 "print(json.dumps(sorted(REGISTRY)))"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert live.returncode == 0, live.stderr[-2000:]
    assert source.stdout.strip().splitlines()[-1] == live.stdout.strip().splitlines()[-1]


def test_every_shipped_config_loads_without_keras():
    """`train --config NAME` must not refuse a config this repository ships (configs/*.toml), in a fresh
    interpreter as the command line reads it."""
    code = ("import sys; from pipeline import config; from pipeline.config_load import load; "
            "[print(p.stem, len(load(p).models)) for p in sorted(config.CONFIG_DIR.glob('*.toml'))]; "
            "assert 'pipeline.models' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert {"default", "smoke", "best", "effnet"} <= {line.split()[0] for line in out.stdout.splitlines()}


def _old_manifest_hash(manifest: pd.DataFrame) -> str:
    """The row-wise implementation the run ids of existing runs were made with."""
    cols = ["dataset", "label", "split", "sha256"]
    partition = artifacts._group_partition(manifest)
    if partition is None:
        rows = manifest[cols].sort_values(cols).astype(str).agg("|".join, axis=1)
    else:
        table = manifest[cols].astype(str).assign(group_of=partition.to_numpy())
        rows = table.sort_values([*cols, "group_of"]).agg("|".join, axis=1)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def test_manifest_hash_is_unchanged_with_and_without_groups():
    rng = np.random.default_rng(0)
    n = 40
    manifest = pd.DataFrame({
        "dataset": rng.choice(["a", "b"], n), "label": rng.choice(["real", "fake"], n),
        "split": rng.choice(["train", "val", "test"], n),
        "sha256": [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)],
    })
    assert artifacts.manifest_hash(manifest) == _old_manifest_hash(manifest)
    grouped = manifest.assign(group=[f"g{i // 3}" for i in range(n)])
    assert artifacts.manifest_hash(grouped) == _old_manifest_hash(grouped)
    assert artifacts.manifest_hash(grouped) != artifacts.manifest_hash(manifest)
    assert artifacts.manifest_hash(manifest.iloc[::-1]) == artifacts.manifest_hash(manifest)
