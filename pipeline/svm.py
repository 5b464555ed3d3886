"""PCA + SVM on penultimate embeddings: the original study's classifier, and the live "SVM lab".

:class:`PcaSvm` is a scikit-learn style estimator: standardise -> PCA (fitted on what ``fit``
gets) -> SVC. Its fitted state is plain arrays (``scaler_mean_``, ``scaler_scale_``,
``pca_mean_``, ``components_``) plus the SVC, so nothing is pickled: a run stores the projection
arrays and the PCA scores of every image (``models/<m>/pca.npz``) and the hyper-parameters
(``models/<m>+pca_svm/svm.json``) and the fitted SVC with ``skops.io`` (``svc.skops``, loaded with
scikit-learn's trusted types only: :mod:`pipeline.persist`).

Scores: ``p_fake`` of an SVM is ``sigmoid(decision_function)``, a monotone map of the margin
(not a calibrated probability; ``SVC(probability=True)`` is deprecated in scikit-learn 1.9). ROC,
AUC and the validation-chosen threshold only need a monotone score.

The ``linear`` kernel is fitted with ``LinearSVC`` (liblinear): libsvm's linear kernel takes about
2 s on 5,000 x 50, liblinear well under 0.1 s, for the same kind of model (a separating hyperplane).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC, LinearSVC

KERNELS = ("linear", "poly", "rbf", "sigmoid")
CLASS_WEIGHTS = (None, "balanced")
SVM_SUFFIX = "+pca_svm"
SVC_FILE = "svc.skops"
RANDOMIZED_ABOVE = 2000  # embedding dims above which PCA uses the randomized SVD solver
LIVE_MAX_TRAIN = 1500  # the SVM lab refits on at most this many training images (stratified, fixed seed): libsvm's
# fit grows with the square of the images (poly, 50 components: 5,000 took 1-2 s, 1,500 about 0.1 s; BENCHMARKS.md)


def svm_model_name(model: str) -> str:
    return f"{model}{SVM_SUFFIX}"


def base_model_name(name: str) -> str:
    return name[:-len(SVM_SUFFIX)] if name.endswith(SVM_SUFFIX) else name


def sigmoid(d: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(np.asarray(d, dtype=np.float64), -60, 60)))).astype(np.float32)


# --------------------------------------------------------------------------- projection (no pickle)


@dataclass
class Projection:
    """Standardise then PCA, as arrays: ``transform(X) = ((X - mean) / scale - pca_mean) @ components.T``."""

    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    pca_mean: np.ndarray
    components: np.ndarray  # (k, D)
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.components.shape[1])

    def transform(self, X: np.ndarray, chunk: int = 1024) -> np.ndarray:
        X = np.asarray(X)
        out = np.empty((len(X), self.n_components), dtype=np.float32)
        comps_t = self.components.T.astype(np.float32)
        for i in range(0, len(X), chunk):
            block = (np.asarray(X[i:i + chunk], dtype=np.float32) - self.scaler_mean) / self.scaler_scale
            out[i:i + chunk] = (block - self.pca_mean) @ comps_t
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"scaler_mean": self.scaler_mean, "scaler_scale": self.scaler_scale, "pca_mean": self.pca_mean,
                "components": self.components, "explained_variance": self.explained_variance,
                "explained_variance_ratio": self.explained_variance_ratio}

    @classmethod
    def from_arrays(cls, arrays) -> "Projection":
        return cls(**{k: np.asarray(arrays[k]) for k in ("scaler_mean", "scaler_scale", "pca_mean", "components",
                                                          "explained_variance", "explained_variance_ratio")})


def fit_projection(X: np.ndarray, n_components: int = 50, random_state: int = 0) -> Projection:
    """StandardScaler then PCA to ``min(n_components, D, n - 1)`` components, fitted on ``X``.

    float32 throughout; the randomized SVD solver when D is large (a 14,400-D Flatten embedding)."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=np.float32)
    n, d = X.shape
    k = int(max(1, min(n_components, d, n - 1)))
    scaler = StandardScaler(copy=True).fit(X)
    mean = scaler.mean_.astype(np.float32)
    scale = scaler.scale_.astype(np.float32)
    Xs = (X - mean) / scale
    solver = "randomized" if d > RANDOMIZED_ABOVE and k < min(n, d) // 2 else "full"
    pca = PCA(n_components=k, svd_solver=solver, random_state=random_state).fit(Xs)
    del Xs
    return Projection(scaler_mean=mean, scaler_scale=scale, pca_mean=pca.mean_.astype(np.float32),
                      components=pca.components_.astype(np.float32),
                      explained_variance=pca.explained_variance_.astype(np.float32),
                      explained_variance_ratio=pca.explained_variance_ratio_.astype(np.float32))


# --------------------------------------------------------------------------- SVC on projected scores


def _check_params(kernel: str, class_weight) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if class_weight not in CLASS_WEIGHTS and not isinstance(class_weight, dict):
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")


def make_svc(kernel: str = "poly", C: float = 1.0, degree: int = 3, gamma: Any = "scale", coef0: float = 0.0,
             class_weight=None, random_state: int = 0, max_iter: int = -1):
    """The unfitted classifier: SVC (libsvm) for poly/rbf/sigmoid, LinearSVC for linear (see module doc)."""
    _check_params(kernel, class_weight)
    if kernel == "linear":
        return LinearSVC(C=float(C), class_weight=class_weight, dual="auto", max_iter=5000,
                         random_state=random_state)
    return SVC(kernel=kernel, C=float(C), degree=int(degree), gamma=gamma, coef0=float(coef0),
               class_weight=class_weight, cache_size=500, max_iter=max_iter)


def n_support(svc) -> int | None:
    return int(np.sum(svc.n_support_)) if hasattr(svc, "n_support_") else None


class PcaSvm(ClassifierMixin, BaseEstimator):
    """Standardise -> PCA(``n_components``) -> SVM, fitted on raw embeddings.

    Parameters follow ``sklearn.svm.SVC``; ``class_weight`` is None or "balanced". ``fit`` learns
    ``scaler_mean_``, ``scaler_scale_``, ``pca_mean_``, ``components_``,
    ``explained_variance_ratio_``, ``n_components_``, ``svc_`` and ``classes_``.
    ``predict_proba`` returns ``[1 - s, s]`` with ``s = sigmoid(decision_function)``.
    """

    def __init__(self, n_components: int = 50, kernel: str = "poly", C: float = 1.0, degree: int = 3,
                 gamma: Any = "scale", coef0: float = 0.0, class_weight=None, random_state: int = 0):
        self.n_components = n_components
        self.kernel = kernel
        self.C = C
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.class_weight = class_weight
        self.random_state = random_state

    def _svc_params(self) -> dict:
        return dict(kernel=self.kernel, C=self.C, degree=self.degree, gamma=self.gamma, coef0=self.coef0,
                    class_weight=self.class_weight, random_state=self.random_state)

    def fit(self, X, y):
        _check_params(self.kernel, self.class_weight)
        proj = fit_projection(X, self.n_components, self.random_state)
        return self.fit_projected(proj, proj.transform(X), y)

    def fit_projected(self, projection: Projection, Z: np.ndarray, y) -> "PcaSvm":
        """Fit only the SVC, on scores ``Z`` already projected by ``projection`` (the first
        ``n_components`` columns are used): how a run reuses its stored PCA."""
        k = int(min(self.n_components, projection.n_components))
        y = np.asarray(y).ravel().astype(int)
        t = time.perf_counter()
        svc = make_svc(**self._svc_params()).fit(np.asarray(Z, dtype=np.float32)[:, :k], y)
        seconds = time.perf_counter() - t
        self.with_fitted(projection, svc)
        self.fit_seconds_ = seconds
        return self

    def with_fitted(self, projection: Projection, svc) -> "PcaSvm":
        """This estimator with ``projection`` and an already fitted ``svc`` (e.g. loaded from disk)."""
        k = int(min(self.n_components, projection.n_components))
        self.scaler_mean_, self.scaler_scale_ = projection.scaler_mean, projection.scaler_scale
        self.pca_mean_ = projection.pca_mean
        self.components_ = projection.components[:k]
        self.explained_variance_ratio_ = projection.explained_variance_ratio[:k]
        self.n_components_, self.n_features_in_ = k, projection.n_features
        self.svc_, self.fit_seconds_, self.classes_ = svc, 0.0, svc.classes_
        return self

    def transform(self, X) -> np.ndarray:
        proj = Projection(self.scaler_mean_, self.scaler_scale_, self.pca_mean_, self.components_,
                          self.explained_variance_ratio_, self.explained_variance_ratio_)
        return proj.transform(X)

    def decision_function(self, X) -> np.ndarray:
        return self.svc_.decision_function(self.transform(X))

    def predict_proba(self, X) -> np.ndarray:
        s = sigmoid(self.decision_function(X))
        return np.column_stack([1 - s, s])

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    def count_params(self) -> dict[str, int]:
        """Numbers the scoring path stores: scaler (2D), PCA (k*D + D), support vectors and their
        coefficients (n_SV * (k + 1) + 1; linear: k + 1)."""
        d, k = int(self.n_features_in_), int(self.n_components_)
        sv = n_support(self.svc_)
        svm = (sv * (k + 1) + 1) if sv is not None else k + 1
        return {"scaler": 2 * d, "pca": k * d + d, "svm": svm, "n_support": sv or 0}


# --------------------------------------------------------------------------- the live lab


def _roc_points(y: np.ndarray, s: np.ndarray, n: int = 200) -> dict[str, list[float]]:
    from sklearn import metrics as skm

    fpr, tpr, _ = skm.roc_curve(y, s)
    idx = np.unique(np.linspace(0, len(fpr) - 1, min(n, len(fpr))).round().astype(int))
    return {"fpr": np.round(fpr[idx], 5).tolist(), "tpr": np.round(tpr[idx], 5).tolist()}


def fit_and_score(train_X: np.ndarray, train_y: np.ndarray, test_X: np.ndarray, test_y: np.ndarray,
                  n_components: int | None = None, val_X: np.ndarray | None = None,
                  val_y: np.ndarray | None = None, **params) -> dict[str, Any]:
    """Fit an SVM on (already standardised + PCA-projected) ``train_X`` and score ``test_X``.

    ``n_components`` keeps the first columns (PCA is nested, so this equals a k-component PCA).
    ``params``: kernel, C, degree, gamma, coef0, class_weight. Returns accuracy (at margin 0, and at
    a threshold chosen on validation when ``val_X`` is given), AUC, confusion matrix
    ``[[tn, fp], [fn, tp]]``, ROC points, fit seconds and number of support vectors."""
    from sklearn import metrics as skm

    from pipeline import evaluation

    k = train_X.shape[1] if n_components is None else int(min(n_components, train_X.shape[1]))
    train_y, test_y = np.asarray(train_y).astype(int).ravel(), np.asarray(test_y).astype(int).ravel()
    t = time.perf_counter()
    svc = make_svc(**params).fit(np.asarray(train_X[:, :k], dtype=np.float32), train_y)
    fit_seconds = time.perf_counter() - t
    d = svc.decision_function(np.asarray(test_X[:, :k], dtype=np.float32))
    s = sigmoid(d)
    pred = (d > 0).astype(int)
    tn, fp, fn, tp = (int(v) for v in skm.confusion_matrix(test_y, pred, labels=[0, 1]).ravel())
    both = len(np.unique(test_y)) == 2
    out = {"n_components": k, "n_train": int(len(train_y)), "n_test": int(len(test_y)),
           "accuracy": float((pred == test_y).mean()) if len(test_y) else 0.0,
           "balanced_accuracy": float(skm.balanced_accuracy_score(test_y, pred)) if both else None,
           "roc_auc": float(skm.roc_auc_score(test_y, d)) if both else None,
           "confusion": [[tn, fp], [fn, tp]], "roc": _roc_points(test_y, d) if both else {"fpr": [], "tpr": []},
           "fit_seconds": fit_seconds, "n_support": n_support(svc), "p_fake": s, "threshold": 0.5}
    if val_X is not None and val_y is not None and len(val_y):
        thr = evaluation.choose_threshold(val_y, sigmoid(svc.decision_function(
            np.asarray(val_X[:, :k], dtype=np.float32))), "youden")
        out["threshold"] = thr
        out["at_threshold"] = evaluation.binary_metrics(test_y, s, thr)
    return out


SURFACE_MAX_POINTS = 1500  # the 2-D surface SVM is fitted on a fixed-seed subsample of this many rows
SURFACE_MAX_ITER = 200_000  # libsvm iterations: overlapping classes in 2-D can take minutes otherwise


def decision_surface(train_X: np.ndarray, train_y: np.ndarray, resolution: int = 100, margin: float = 0.05,
                     bounds: tuple[float, float, float, float] | None = None,
                     max_points: int = SURFACE_MAX_POINTS, **params) -> dict[str, Any]:
    """Fit an SVM on the first two columns of ``train_X`` and evaluate its margin on a grid.

    Returns ``x`` (resolution,), ``y`` (resolution,), ``z`` (resolution, resolution) decision values
    (``z[i, j]`` at ``(x[j], y[i])``, positive = fake), ``fit_seconds`` and ``n_support``.
    ``bounds`` = (x0, x1, y0, y1); default: the data range padded by ``margin``. The SVM sees at most
    ``max_points`` rows (fixed-seed subsample) and :data:`SURFACE_MAX_ITER` libsvm iterations, so the
    picture stays live even where two components barely separate the classes (a poly SVM on
    overlapping 2-D data otherwise took 200 s)."""
    import warnings

    X2 = np.asarray(train_X, dtype=np.float32)[:, :2]
    y = np.asarray(train_y).astype(int).ravel()
    if max_points and len(y) > max_points:
        keep = np.sort(np.random.default_rng(0).choice(len(y), max_points, replace=False))
        X2, y = X2[keep], y[keep]
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when the iteration cap is hit
        svc = make_svc(**params, **({} if params.get("kernel") == "linear" else {"max_iter": SURFACE_MAX_ITER}))
        svc.fit(X2, y)
    fit_seconds = time.perf_counter() - t
    if bounds is None:
        lo, hi = X2.min(axis=0), X2.max(axis=0)
        pad = (hi - lo) * margin + 1e-6
        bounds = (float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1]))
    xs = np.linspace(bounds[0], bounds[1], resolution, dtype=np.float32)
    ys = np.linspace(bounds[2], bounds[3], resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)
    z = svc.decision_function(np.column_stack([gx.ravel(), gy.ravel()])).reshape(resolution, resolution)
    return {"x": xs, "y": ys, "z": z.astype(np.float32), "fit_seconds": fit_seconds, "n_support": n_support(svc)}


# --------------------------------------------------------------------------- stored default SVM of a run


def default_params(emb_cfg) -> dict[str, Any]:
    """SVM hyper-parameters of a run's ``[embeddings]`` config section (a dataclass or a dict)."""
    get = (lambda k, d: emb_cfg.get(k, d)) if isinstance(emb_cfg, dict) else (lambda k, d: getattr(emb_cfg, k, d))
    return {"kernel": get("svm_kernel", "poly"), "C": float(get("svm_c", 1.0)), "degree": int(get("svm_degree", 3)),
            "gamma": get("svm_gamma", "scale"), "coef0": float(get("svm_coef0", 0.0)), "class_weight": None}
