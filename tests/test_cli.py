"""The command line: python -m pipeline {train, evaluate, predict, info}."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, make_labelled_folder
from pipeline.__main__ import main


def run_cli(*args, env_extra=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("train", "evaluate", "predict", "info"):
        assert cmd in out.stdout


def test_train_without_data_says_what_to_do(tmp_path):
    out = run_cli("train", "--config", "smoke", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "a"))
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "--data" in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_model_is_a_clear_error(tmp_path):
    out = run_cli("train", "--models", "nonsense_net", "--out", str(tmp_path))
    assert out.returncode == 2 and "unknown model 'nonsense_net'" in out.stderr and "baseline_cnn" in out.stderr


def test_train_info_predict_evaluate(tmp_path, capsys):
    data = make_labelled_folder(tmp_path / "faces", n_per_class=12, seed=5)
    art = tmp_path / "art"
    code = main(["train", "--config", "smoke", "--data", str(data), "--models", "baseline_cnn",
                 "--image-size", "16", "--epochs", "1", "--out", str(art), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "baseline_cnn" in out and "roc_auc" in out

    assert main(["info", "--artifacts", str(art), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 1 and runs[0]["complete_models"][0] == "baseline_cnn" and runs[0]["images"] == 24

    good = sorted((data / "fake").iterdir())[0]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    code = main(["predict", str(good), str(bad), "--artifacts", str(art), "--whole-image"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1
    verdicts = [r for r in lines if r.get("model") == "verdict"]  # a run without ensembles: its best model
    assert len(verdicts) == 1 and verdicts[0]["based_on"] == "baseline_cnn"
    assert verdicts[0]["verdict"] in {"real", "fake", "unsure"}
    lines = [r for r in lines if r.get("model") != "verdict"]
    assert lines[0]["file"] == str(good) and lines[0]["model"] == "baseline_cnn"
    assert 0 <= lines[0]["p_fake"] <= 1 and lines[0]["verdict"] in {"real", "fake"}
    assert lines[1]["file"] == str(bad) and "bad.jpg" in lines[1]["error"]

    other = make_labelled_folder(tmp_path / "other", n_per_class=6, seed=77)
    assert main(["evaluate", "--data", str(other), "--artifacts", str(art), "--json", "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["scope"] for r in rows} == {"all", "other"}


def test_predict_with_unknown_model_or_no_run(tmp_path, capsys):
    assert main(["predict", "x.jpg", "--artifacts", str(tmp_path)]) == 2
    assert "python -m pipeline train" in capsys.readouterr().err


def test_info_lists_every_run_when_one_folder_is_stale(tiny_run, tmp_path, capsys):
    """A run folder written by an older version (or with a damaged run.json) is listed with its reason and
    what to do; the other runs are still listed (it used to stop `info` with the first stale folder)."""
    import shutil

    art = tmp_path / "art"
    good = shutil.copytree(tiny_run, art / tiny_run.name)
    old = shutil.copytree(tiny_run, art / "old-000000000000")
    meta = json.loads((old / "run.json").read_text())
    meta.pop("format", None)  # folders from before the layout was versioned read as format 1
    meta["run_id"] = old.name
    (old / "run.json").write_text(json.dumps(meta))

    assert main(["info", "--artifacts", str(art), "--json"]) == 0
    runs = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(runs) == {good.name, old.name}
    assert runs[good.name]["complete_models"] and "problem" not in runs[good.name]
    assert runs[old.name]["status"] == "unreadable" and "older version" in runs[old.name]["problem"]
    assert "--force" in runs[old.name]["problem"]

    assert main(["info", "--artifacts", str(art)]) == 0
    text = capsys.readouterr().out
    assert good.name in text and "best (pooled test AUC)" in text
    assert f"{old.name}  [unreadable]" in text and "cannot be opened: " in text
