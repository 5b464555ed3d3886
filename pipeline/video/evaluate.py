"""Video-level evaluation of a run on a labelled folder of clips (``real/`` and ``fake/`` sub-folders,
or the other label names :data:`pipeline.data_folders.LABEL_ALIASES` knows; sub-folders below are searched).

Every clip is analysed as :func:`pipeline.video.scoring.analyse_video` does, then scored two ways:

* ``default``: the project's rule, the aggregate (mean by default) of the most suspicious face track;
* ``deepfakebench``: the DeepfakeBench convention, the mean over sampled frames of the frame score
  (the verdict model's p_fake of the frame's largest face).

For each: ROC-AUC, accuracy, balanced accuracy and the recall of each class at the verdict model's
threshold (``sklearn.metrics``; two-way: score >= threshold means fake), over the clips where a face
was found. For the default rule the three-way verdict is also reported: how many clips are unsure and
the accuracy on the others. Clips without a face or that cannot be read are counted, listed with their
reason and left out of the metrics.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.progress import ProgressFn, report
from pipeline.video import decode, scoring

CONVENTIONS = {"default": "score", "deepfakebench": "frame_mean_score"}
TABLE_COLUMNS = ["file", "label", "y", "verdict", "score", "frame_mean_score", "n_tracks", "n_faces", "reason", "error"]


def find_videos(root: str | Path) -> pd.DataFrame:
    """The labelled clips under ``root``: columns path, label (real / fake), y (1 = fake). Raises
    ``ValueError`` when ``root`` is missing or holds no labelled video."""
    from pipeline.data_folders import FAKE, LABEL_ALIASES

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder")
    rows = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        label = LABEL_ALIASES.get(sub.name.lower())
        if label is None:
            continue
        for path in sorted(sub.rglob("*")):
            if path.is_file() and decode.is_video_file(path) and not path.name.startswith("."):
                rows.append({"path": str(path), "label": label, "y": int(label == FAKE)})
    if not rows:
        raise ValueError(f"{root}: no labelled video found; put clips ({', '.join(decode.VIDEO_EXTENSIONS)}) in "
                         f"real/ and fake/ sub-folders")
    return pd.DataFrame(rows)


def is_video_folder(root: str | Path) -> bool:
    """True when ``root`` is a labelled folder whose clips are videos (it holds at least one)."""
    try:
        return len(find_videos(root)) > 0
    except ValueError:
        return False


def metrics(y: np.ndarray, score: np.ndarray, threshold: float) -> dict:
    """ROC-AUC (None with one class), accuracy, balanced accuracy, recall of real and of fake at
    ``threshold`` (score >= threshold: fake), and n, n_real, n_fake. Scores are probabilities."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score

    y = np.asarray(y, dtype=int)
    score = np.asarray(score, dtype=float)
    pred = (score >= threshold).astype(int)
    out = {"n": int(len(y)), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()), "threshold": float(threshold),
           "roc_auc": None, "accuracy": None, "balanced_accuracy": None, "recall_real": None, "recall_fake": None}
    if len(y) == 0:
        return out
    two = len(set(y.tolist())) == 2
    out["roc_auc"] = float(roc_auc_score(y, score)) if two else None
    out["accuracy"] = float(accuracy_score(y, pred))
    out["balanced_accuracy"] = float(balanced_accuracy_score(y, pred)) if two else None
    if (y == 0).any():
        out["recall_real"] = float(recall_score(y, pred, pos_label=0, zero_division=0))
    if (y == 1).any():
        out["recall_fake"] = float(recall_score(y, pred, pos_label=1, zero_division=0))
    return out


def evaluate_videos(root: str | Path, models: dict, combiner=None, *, sampling: decode.Sampling = decode.Sampling(),
                    rule: str = scoring.DEFAULT_RULE, band: float = scoring.DEFAULT_BAND,
                    min_faces: int = scoring.DEFAULT_MIN_FACES, min_confidence: float | None = None,
                    progress: ProgressFn = None, policy=None) -> tuple[pd.DataFrame, dict]:
    """Analyse every labelled clip under ``root`` (``policy``: the run's verdict policy, see
    :func:`pipeline.video.scoring.analyse_video`); returns (one row per clip: :data:`TABLE_COLUMNS`,
    the report: ``{"conventions": {"default": metrics, "deepfakebench": metrics}, "three_way": ...,
    "n_videos", "n_no_face", "n_errors", "rule", "sampling", "verdict_model", "threshold"}``).
    ``min_confidence``: MTCNN's minimum face confidence (None: the photo default)."""
    files = find_videos(root)
    rows = []
    threshold, verdict_model = None, None
    for k, (path, label, y) in enumerate(files[["path", "label", "y"]].itertuples(index=False)):
        res = scoring.analyse_video(path, models, combiner, sampling=sampling, rule=rule, band=band,
                                    min_faces=min_faces, min_confidence=min_confidence, policy=policy)
        if res.ok and res.threshold is not None:
            threshold, verdict_model = res.threshold, res.verdict_model
        rows.append({"file": path, "label": label, "y": y, "verdict": res.verdict, "score": res.score,
                     "frame_mean_score": res.frame_mean_score, "n_tracks": len(res.tracks), "n_faces": res.n_faces,
                     "reason": res.reason, "error": res.error})
        report(progress, "scoring videos", k + 1, len(files))
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    scored = table[table["score"].notna()]
    if threshold is None:
        threshold = combiner.threshold if combiner is not None else 0.5
        verdict_model = combiner.name if combiner is not None else scoring.VOTE_NAME
    conventions = {name: metrics(scored["y"].to_numpy(), scored[col].astype(float).to_numpy(), threshold)
                   for name, col in CONVENTIONS.items()}
    decided = scored[scored["verdict"].isin(["real", "fake"])]
    three = {"n_unsure": int((scored["verdict"] == "unsure").sum()), "n_decided": int(len(decided)),
             "accuracy_decided": (float(((decided["verdict"] == "fake").astype(int) == decided["y"]).mean())
                                  if len(decided) else None), "band": band, "min_faces": min_faces}
    report_ = {"root": str(root), "n_videos": int(len(table)),
               "n_no_face": int((table["error"].isna() & table["score"].isna()).sum()),
               "n_errors": int(table["error"].notna().sum()), "rule": rule, "sampling": sampling.rule,
               "verdict_model": verdict_model, "threshold": threshold, "conventions": conventions,
               "three_way": three}
    return table, report_


def summary_table(report_: dict) -> pd.DataFrame:
    """One row per convention: convention, how the video score is made, n, ROC-AUC, accuracy,
    balanced accuracy, recall of real, recall of fake."""
    how = {"default": f"{scoring.RULE_TEXT[report_['rule']]} of the most suspicious face track",
           "deepfakebench": "mean of the frame scores (largest face per frame)"}
    rows = []
    for name, m in report_["conventions"].items():
        rows.append({"convention": name, "video score": how[name], "n": m["n"], "roc_auc": m["roc_auc"],
                     "accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"],
                     "recall_real": m["recall_real"], "recall_fake": m["recall_fake"]})
    return pd.DataFrame(rows)
