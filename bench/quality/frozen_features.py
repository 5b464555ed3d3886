"""Probe: how well do frozen ImageNet MobileNet features of each depth separate real from fake?

Mean and standard deviation of each block's feature map (224 px centre crop of the 256 px image,
no resizing) -> StandardScaler + logistic regression fitted on the train split; validation AUC per
dataset. ``python bench/quality/frozen_features.py artifacts/<run-id>``."""
from __future__ import annotations

import argparse

import numpy as np

from common import load_run, val_report

LAYERS = ["conv_pw_1_relu", "conv_pw_3_relu", "conv_pw_5_relu", "conv_pw_7_relu", "conv_pw_11_relu",
          "conv_pw_13_relu"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    args = ap.parse_args()
    import keras
    from keras import ops
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    manifest, x = load_run(args.run_dir, 256)
    base = keras.applications.MobileNet(weights="imagenet", include_top=False, input_shape=(224, 224, 3))
    feats = keras.Model(base.input, [base.get_layer(n).output for n in LAYERS])
    parts = {n: [] for n in LAYERS}
    for i in range(0, len(x), 64):
        batch = x[i:i + 64, 16:240, 16:240].astype("float32") / 127.5 - 1
        for n, fmap in zip(LAYERS, feats.predict_on_batch(batch)):
            parts[n].append(np.hstack([ops.convert_to_numpy(fmap).mean(axis=(1, 2)),
                                       ops.convert_to_numpy(fmap).std(axis=(1, 2))]))
    train = (manifest["split"] == "train").to_numpy()
    y = manifest["y"].to_numpy()
    allx = []
    for n in LAYERS:
        f = np.concatenate(parts[n])
        allx.append(f)
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(f[train], y[train])
        val_report(f"frozen {n} mean+std", manifest, clf.decision_function(f), f"dim={f.shape[1]}")
    f = np.hstack(allx)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=3000)).fit(f[train], y[train])
    val_report("frozen all blocks mean+std", manifest, clf.decision_function(f), f"dim={f.shape[1]}")


if __name__ == "__main__":
    main()
