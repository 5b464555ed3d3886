"""Validation-only comparison of the stacked and routed ensembles over a run's finished models.

``python bench/quality/routed_val.py artifacts/<run-id> member [member ...] [--extra NAME=bench/out/quality/NAME_val_scores.npy]``
prints out-of-fold validation ROC-AUC per dataset for: each member, the stacked ensemble (one
logistic regression) and the routed one (a stacker per dataset mixed by the router). ``--extra``
adds a model trained by train_variant.py (its saved validation scores). The test split is never read."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from common import ROOT, val_report  # noqa: F401  (puts the repo on sys.path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    ap.add_argument("members", nargs="+")
    ap.add_argument("--extra", action="append", default=[], help="NAME=path to a *_val_scores.npy")
    args = ap.parse_args()
    from pipeline import artifacts, routing
    from pipeline.config_load import from_json_dict
    from pipeline.detectors.combined import member_matrix, out_of_fold, router_inputs

    run_dir = Path(args.run_dir)
    cfg = from_json_dict(artifacts.read_json(run_dir / "run.json")["config"])
    manifest = pd.read_parquet(run_dir / "manifest.parquet")
    rows, p = member_matrix(run_dir, args.members)
    names = list(args.members)
    by_path = pd.Series(np.arange(len(manifest)), index=manifest["path"])
    row_idx = by_path.loc[rows["path"]].to_numpy()
    for item in args.extra:
        name, path = item.split("=", 1)
        p = np.column_stack([p, np.load(path)[row_idx]])
        names.append(name)
    val = (rows["split"] == "val").to_numpy()
    rows, p, row_idx = rows[val].reset_index(drop=True), p[val], row_idx[val]
    y, kinds = rows["y"].to_numpy().astype(int), rows["dataset"].astype(str).to_numpy()
    features = router_inputs(manifest, cfg)
    train = (manifest["split"] == "train").to_numpy()
    router = routing.fit_router(features[train], manifest.loc[train, "dataset"].astype(str).to_numpy(), seed=cfg.seed)
    route_p = routing.route(router, features[row_idx])
    acc = (np.asarray(router["classes"])[route_p.argmax(1)] == kinds).mean()
    full = pd.Series(0.5, index=range(len(manifest)), dtype="float64")
    vm = manifest.assign(split=np.where(np.isin(np.arange(len(manifest)), row_idx), "val", "other"))

    def report(name: str, scores: np.ndarray, note: str = "") -> None:
        s = full.copy()
        s.iloc[row_idx] = scores
        val_report(name, vm, s.to_numpy(), note)

    for j, n in enumerate(names):
        report(f"  member {n}", p[:, j])
    report("stacked(" + ",".join(names) + ")", out_of_fold(p, y, names, cfg.seed))
    for C in (1.0, 0.1, 0.01):
        report(f"routed C={C}(" + ",".join(names) + ")",
               routing.out_of_fold_routed(p, y, kinds, route_p, router["classes"], names, cfg.seed, C=C),
               f"router val accuracy {acc:.3f}")
    oracle = np.eye(len(router["classes"]))[[router["classes"].index(k) for k in kinds]]
    report("routed-oracle(" + ",".join(names) + ")",
           routing.out_of_fold_routed(p, y, kinds, oracle, router["classes"], names, cfg.seed), "router = true dataset")


if __name__ == "__main__":
    main()
