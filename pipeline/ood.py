"""Out-of-distribution score: is this face unlike the photos the detectors were trained on?

The score is a probabilistic-PCA distance (Tipping & Bishop, 1999; the Mahalanobis-style detector of
Lee et al., 2018) of an image's coarse look, the router's features
(:func:`pipeline.routing.router_features`: a 16 px colour thumbnail, per-channel mean and spread,
HOG of the 64 px grey image), fitted on the run's training images with scikit-learn's ``PCA``: the
squared Mahalanobis distance within the first principal components plus the squared distance from
their subspace divided by the residual variance (``PCA.noise_variance_``), so an image that differs
in directions the training images never vary in scores high too. The threshold is a high quantile of the
validation images' distances, so about 1% of in-distribution photos exceed it. It flags photos that
look unlike every training set (a drawing, a grey or strongly tinted photo, an odd crop); it cannot
see the fine traces a detector uses, and it is not a verdict: it only makes the verdict "unsure".

When the run has a CLIP detector the same distance is also fitted on the CLIP embeddings
(:func:`clip_features`), which see what the photo shows rather than its colours and edges (a cartoon, a
mask, a painting); a face is out of distribution when either distance exceeds its threshold.

The fitted model is one float32 array (``ood.npy``: the mean in row 0, the k components in rows 1..k,
and in the last row their variances followed by the residual variance), loaded with
``allow_pickle=False``.
"""
from __future__ import annotations

import numpy as np

N_COMPONENTS = 16
QUANTILE = 0.99


def features(rgb_images: list[np.ndarray]) -> np.ndarray:
    """(n, D) router features of (H, W, 3) uint8 images of any size (resized to the router's 64 px)."""
    from pipeline.images import resize_square
    from pipeline.routing import ROUTER_SIZE, router_features

    if not len(rgb_images):
        return np.zeros((0, 0), np.float32)
    return router_features(np.stack([resize_square(im, ROUTER_SIZE) for im in rgb_images]))


def clip_features(rgb_images: list[np.ndarray]) -> np.ndarray:
    """(n, 512) L2-normalised CLIP ViT-B/16 embeddings of (H, W, 3) uint8 images (:func:`pipeline.clip.embed`;
    a face the run's CLIP detectors have just scored is not encoded again). Raises
    :class:`pipeline.clip.ClipWeightsError` without the encoder file."""
    from pipeline import clip

    if not len(rgb_images):
        return np.zeros((0, clip.EMBED_DIM), np.float32)
    return clip.embed(list(rgb_images))


def fit(train: np.ndarray, val: np.ndarray, n_components: int = N_COMPONENTS,
        quantile: float = QUANTILE) -> tuple[np.ndarray, float]:
    """The projection (``(k + 1, D)`` float32) fitted on training features ``train`` (n, D) and the
    distance threshold: the ``quantile`` of the validation features' distances."""
    from sklearn.decomposition import PCA

    k = int(min(n_components, train.shape[0] - 1, train.shape[1]))
    if k < 1:
        raise ValueError("too few training images to fit an out-of-distribution score")
    pca = PCA(n_components=k, random_state=0).fit(train)
    last = np.zeros(train.shape[1])
    last[:k] = pca.explained_variance_
    last[k] = max(float(pca.noise_variance_), 1e-12)
    matrix = np.vstack([pca.mean_[None, :], pca.components_, last[None, :]]).astype(np.float32)
    return matrix, float(np.quantile(distance(matrix, val), quantile))


def distance(matrix: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """(n,) distances of features (n, D) under the fitted model (see the module doc)."""
    k = matrix.shape[0] - 2
    comps, var, noise = matrix[1:k + 1].astype(np.float64), matrix[-1, :k].astype(np.float64), float(matrix[-1, k])
    x = np.asarray(feats, np.float64) - matrix[0]
    z = x @ comps.T
    residual = np.maximum(np.einsum("ij,ij->i", x, x) - np.einsum("ij,ij->i", z, z), 0.0)
    return (z * z / var).sum(axis=1) + residual / noise
