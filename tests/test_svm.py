"""PCA-SVM estimator and the live SVM lab functions, on tiny synthetic data (no TensorFlow)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from pipeline import svm


def blobs(n: int = 120, d: int = 10, gap: float = 4.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X[:, :max(1, d // 4)] += gap * y[:, None]  # the class signal spans a quarter of the dims: PCA finds it
    return X, y


@pytest.mark.parametrize("kernel", svm.KERNELS)
def test_fit_and_score_separable(kernel):
    X, y = blobs(seed=1)
    Xt, yt = blobs(60, seed=2)
    out = svm.fit_and_score(X, y, Xt, yt, kernel=kernel, C=1.0, degree=3, gamma="scale", coef0=1.0)
    if kernel != "sigmoid":  # the sigmoid kernel is not positive definite: no guarantee here
        assert out["accuracy"] >= 0.95 and out["roc_auc"] >= 0.98
    (tn, fp), (fn, tp) = out["confusion"]
    assert tn + fp + fn + tp == 60 and tn + fp == 30
    assert out["roc"]["fpr"][0] == 0 and out["roc"]["tpr"][-1] == 1
    assert out["fit_seconds"] < 1 and out["p_fake"].shape == (60,)


def test_n_components_and_validation_threshold():
    X, y = blobs(d=8, seed=3)
    out = svm.fit_and_score(X, y, X, y, n_components=2, val_X=X, val_y=y, kernel="rbf")
    assert out["n_components"] == 2 and 0 <= out["threshold"] <= 1
    assert out["at_threshold"]["accuracy"] >= 0.95
    with pytest.raises(ValueError, match="kernel"):
        svm.fit_and_score(X, y, X, y, kernel="cubic")


def test_pca_svm_estimator_conventions():
    X, y = blobs(200, d=40, seed=4)
    est = svm.PcaSvm(n_components=5, kernel="poly", C=2.0)
    assert est.get_params()["C"] == 2.0 and not hasattr(est, "svc_")
    est.fit(X, y)
    assert est.n_components_ == 5 and est.components_.shape == (5, 40)
    assert est.transform(X).shape == (200, 5)
    proba = est.predict_proba(X)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(axis=1), 1)
    assert est.score(X, y) >= 0.95
    # monotone mapping: the probability ranks like the margin
    d = est.decision_function(X)
    assert np.all(np.diff(proba[np.argsort(d), 1]) >= 0)
    again = clone(est).set_params(kernel="rbf").fit(X, y)
    assert again.kernel == "rbf" and again.score(X, y) >= 0.95
    counts = est.count_params()
    assert counts["pca"] == 5 * 40 + 40 and counts["svm"] == counts["n_support"] * 6 + 1


def test_pca_components_capped_by_samples_and_dims():
    X, y = blobs(12, d=3, seed=5)
    est = svm.PcaSvm(n_components=50).fit(X, y)
    assert est.n_components_ == 3
    proj = svm.fit_projection(np.random.default_rng(0).normal(size=(8, 30)), 50)
    assert proj.n_components == 7


def test_projection_roundtrip_without_pickle(tmp_path):
    X, _ = blobs(80, d=20, seed=6)
    proj = svm.fit_projection(X, 4, random_state=0)
    np.savez(tmp_path / "p.npz", **proj.arrays())
    with np.load(tmp_path / "p.npz", allow_pickle=False) as f:
        again = svm.Projection.from_arrays(f)
    np.testing.assert_allclose(again.transform(X), proj.transform(X), rtol=1e-6)
    # same as scikit-learn's StandardScaler + PCA
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    ref = PCA(4).fit_transform(StandardScaler().fit_transform(X))
    np.testing.assert_allclose(np.abs(proj.transform(X)), np.abs(ref), atol=1e-4)


def test_decision_surface_shape_and_sign():
    X, y = blobs(100, d=2, gap=6.0, seed=7)
    surf = svm.decision_surface(X, y, resolution=30, kernel="rbf")
    assert surf["z"].shape == (30, 30) and surf["x"].shape == (30,) and surf["y"].shape == (30,)
    assert surf["x"][0] < X[:, 0].min() and surf["x"][-1] > X[:, 0].max()
    # fake (y=1) lies at large x: the margin is positive on the right edge, negative on the left
    assert surf["z"][:, -1].mean() > 0 > surf["z"][:, 0].mean()
    assert surf["n_support"] > 0


def test_names():
    assert svm.svm_model_name("spectrum") == "spectrum+pca_svm"
    assert svm.base_model_name("spectrum+pca_svm") == "spectrum" and svm.base_model_name("x") == "x"
