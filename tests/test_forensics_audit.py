"""The dataset shortcut audit: file facts per class and a file-facts-only baseline (pipeline.forensics.audit)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import forensic_samples as fs
from conftest import SHARED_DATA
from pipeline import results
from pipeline.forensics import audit


def _folder(tmp_path: Path) -> pd.DataFrame:
    """Two datasets of 20 real + 20 fake JPEGs: "leaky" (reals q90, fakes q95) and "clean" (both q85)."""
    rows = []
    for dataset, qualities in (("leaky", {"real": 90, "fake": 95}), ("clean", {"real": 85, "fake": 85})):
        for label, q in qualities.items():
            for i in range(20):
                path = tmp_path / dataset / label / f"{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(fs.jpeg(fs.texture(i + (100 if label == "fake" else 0), 32), q))
                rows.append({"dataset": dataset, "label": label, "y": int(label == "fake"), "path": str(path)})
    (tmp_path / "clean" / "real" / "0.jpg").write_bytes(b"not an image any more")
    return pd.DataFrame(rows)


def test_audit_flags_a_table_difference_and_clears_one_encoding(tmp_path):
    manifest = _folder(tmp_path)
    result = audit.compute(manifest)
    base = result.baseline.set_index("dataset")
    assert base.loc["leaky", "shortcut"] and base.loc["leaky", "roc_auc"] > 0.95
    assert any(d.startswith("quantisation table") for d in base.loc["leaky", "differences"])
    assert any(d.startswith("JPEG quality") for d in base.loc["leaky", "differences"])
    assert not base.loc["clean", "shortcut"] and base.loc["clean", "roc_auc"] < 0.65
    assert base.loc["clean", "differences"] == [] and base.loc["clean", "unreadable"] == 1
    facts = result.facts
    assert set(facts.loc[facts["dataset"] == "leaky", "jpeg_quality"]) == {90.0, 95.0}
    assert (facts["size"] == "32x32").sum() == 79 and facts["has_exif"].sum() == 0
    dist = result.distributions()
    q = dist[(dist["dataset"] == "leaky") & (dist["fact"] == "jpeg_quality")].set_index("value")
    assert q.loc["90", "share_real"] == 1.0 and q.loc["95", "share_fake"] == 1.0 and q.loc["90", "n_fake"] == 0
    lines = result.verdict_lines()
    assert lines[1].startswith("leaky: SHORTCUT") and lines[0].startswith("clean: no format")


def test_audit_is_cached_in_the_run_folder(tmp_path):
    from synthetic_run import write_synthetic_run

    root = tmp_path / "artifacts"
    write_synthetic_run(root, seed=3, name="small", created=datetime(2025, 1, 1, tzinfo=timezone.utc))
    run = results.load_run(None, root)
    first = audit.for_run(run)
    assert first.seconds > 0 and (run.path / "forensics" / "shortcut_audit.json").is_file()
    assert json.loads((run.path / "forensics" / "shortcut_audit.json").read_text())["key"].startswith("1-")
    again = audit.for_run(run)
    assert again.seconds == 0 and again.baseline.equals(first.baseline)
    assert not list((run.path / "forensics").glob("*.tmp*"))
    (run.path / "forensics" / "shortcut_audit.json").write_text("{broken")
    assert audit.for_run(run, write=False).seconds > 0  # a damaged cache is recomputed, never trusted


@pytest.mark.skipif(not (SHARED_DATA / "manifest.csv").is_file(), reason="../shared/data is not present")
def test_audit_on_the_shared_face_data():
    listing = pd.read_csv(SHARED_DATA / "manifest.csv")
    listing = listing.groupby(["dataset", "label"]).sample(n=150, random_state=0)  # every class has more
    manifest = pd.DataFrame({"dataset": listing["dataset"], "label": listing["label"],
                             "y": (listing["label"] == "fake").astype(int),
                             "path": [str(SHARED_DATA / p) for p in listing["path"]]})
    base = audit.compute(manifest).baseline.set_index("dataset")
    assert base.loc["lfw_faceswap", "shortcut"] and base.loc["lfw_faceswap", "roc_auc"] > 0.95
    assert any("quantisation table" in d for d in base.loc["lfw_faceswap", "differences"])
    for clean in ("stylegan2", "dfdc"):
        assert base.loc[clean, "differences"] == [], clean
        assert not base.loc[clean, "shortcut"] and base.loc[clean, "roc_auc"] < 0.6, clean
    assert np.all(base["unreadable"] == 0)


def test_info_prints_the_audit(tmp_path, capsys):
    from synthetic_run import write_synthetic_run

    from pipeline.__main__ import main

    root = tmp_path / "artifacts"
    write_synthetic_run(root, seed=4, name="small", created=datetime(2025, 1, 1, tzinfo=timezone.utc))
    assert main(["info", "--artifacts", str(root)]) == 0
    assert "file shortcut audit (file facts only, no pixels; cross-validated ROC-AUC)" in capsys.readouterr().out
    assert main(["info", "--artifacts", str(root), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert {a["dataset"] for a in record["file_shortcut_audit"]} == set(results.load_run(None, root).manifest()["dataset"])


def test_audit_says_nothing_when_the_files_are_gone(tmp_path):
    manifest = pd.DataFrame({"dataset": ["gone"] * 24, "label": ["real", "fake"] * 12, "y": [0, 1] * 12,
                             "path": [str(tmp_path / f"missing_{i}.jpg") for i in range(24)]})
    result = audit.compute(manifest)
    row = result.baseline.iloc[0]
    assert row["unreadable"] == 24 and np.isnan(row["roc_auc"]) and not row["shortcut"]
    assert "could not be read here" in result.verdict_lines()[0]
