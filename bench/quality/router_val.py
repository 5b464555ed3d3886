"""Routers compared on validation (EXPERIMENTS.md, R7): how often each sends a validation image to
its own data set's stacker when fitted on the training split, as the routed ensemble's router is.

``python bench/quality/router_val.py artifacts/<run-id> [--imagenet]`` prints one line per router:
the shipped one (``pipeline.routing``: logistic regression on a thumbnail, channel statistics and
HOG at 64 px), the same features with stronger classifiers, with texture and colour histograms
added, and (``--imagenet``) frozen ImageNet MobileNet features at 96 px. Validation only."""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import load_run


def lbp_histograms(x: np.ndarray) -> np.ndarray:
    """Uniform local binary patterns of the grey image (radius 1 and 2), as normalised histograms."""
    from skimage.feature import local_binary_pattern

    out = []
    for grey in x.mean(axis=3).astype(np.uint8):
        hists = []
        for points, radius in [(8, 1), (16, 2)]:
            codes = local_binary_pattern(grey, points, radius, "uniform")
            h, _ = np.histogram(codes, bins=points + 2, range=(0, points + 2))
            hists.append(h / h.sum())
        out.append(np.concatenate(hists))
    return np.array(out)


def colour_histograms(x: np.ndarray, bins: int = 8) -> np.ndarray:
    return np.array([np.histogramdd(im.reshape(-1, 3), bins=(bins,) * 3, range=((0, 256),) * 3)[0].ravel()
                     / (im.shape[0] * im.shape[1]) for im in x])


def imagenet_features(run_dir: str, size: int = 96) -> np.ndarray:
    import keras
    import tensorflow as tf

    _, x = load_run(run_dir, 224)
    net = keras.applications.MobileNet(weights="imagenet", include_top=False, input_shape=(size, size, 3), pooling="avg")
    out = []
    for i in range(0, len(x), 128):
        batch = tf.image.resize(x[i:i + 128].astype("float32"), (size, size), antialias=True)
        out.append(net(keras.applications.mobilenet.preprocess_input(batch), training=False).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir")
    ap.add_argument("--imagenet", action="store_true", help="also frozen ImageNet MobileNet features (minutes)")
    args = ap.parse_args()
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from pipeline import routing

    manifest, x = load_run(args.run_dir, routing.ROUTER_SIZE)
    kinds = manifest["dataset"].astype(str).to_numpy()
    split = manifest["split"].to_numpy()
    train, val = split == "train", split == "val"
    shipped = routing.router_features(x)
    extra = np.hstack([shipped, lbp_histograms(x), colour_histograms(x)])

    def report(name: str, features: np.ndarray, classifier) -> None:
        start = time.perf_counter()
        model = make_pipeline(StandardScaler(), classifier).fit(features[train], kinds[train])
        pred = model.predict(features[val])
        per_kind = " ".join(f"{k}={(pred[kinds[val] == k] == k).mean():.3f}" for k in sorted(set(kinds)))
        print(f"{name:44s} routed right {(pred == kinds[val]).mean():.4f} ({int((pred != kinds[val]).sum())} errors) "
              f"{per_kind}  fit {time.perf_counter() - start:.0f}s", flush=True)

    report("shipped: logistic regression C=0.01", shipped, LogisticRegression(C=0.01, max_iter=3000))
    report("same features, RBF SVM C=10", shipped, SVC(C=10))
    report("same features, PCA-200 + RBF SVM C=10", shipped, make_pipeline(PCA(200, random_state=0), SVC(C=10)))
    report("same features, MLP 256 units", shipped, MLPClassifier((256,), alpha=1.0, max_iter=500, random_state=0))
    report("+ LBP + colour, logistic regression C=0.01", extra, LogisticRegression(C=0.01, max_iter=3000))
    if args.imagenet:
        report("frozen ImageNet MobileNet 96 px, RBF SVM C=10", imagenet_features(args.run_dir), SVC(C=10))


if __name__ == "__main__":
    main()
