"""Near-duplicate leakage check: pictures on both sides of a split that are (almost) the same image.

The run already keeps byte-identical files once (``sha256``) and keeps the frames of one video on one
side (``groups.csv``), but a re-encoded, resized or slightly cropped copy of a training image in the
test split still lets a detector score well by remembering it. This check finds such pairs with a
**perceptual hash** (pHash: the sign pattern of the lowest 8x8 frequencies of the image's 32x32 grey
DCT, 64 bits; Zauner 2010, via the ``imagehash`` library): copies of one picture differ in a few of the
64 bits, unrelated faces in about 32. Two images are *near-duplicates* when their hashes differ in at
most ``max_distance`` bits (default 4, the usual choice for "same picture").

* :func:`perceptual_hashes`: the 64-bit hash of every image (``uint64``; 0 with ``ok = False`` for a
  file that cannot be read);
* :func:`cross_split_pairs`: every pair of images in different splits within the distance;
* :func:`counts_per_dataset`: per dataset, how many evaluation images (test, validation) have a
  near-duplicate in training.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_MAX_DISTANCE = 4  # bits of 64
HASH_SIZE = 8  # 8x8 = 64 bits
SPLIT_ORDER = ("train", "val", "test")

Progress = Callable[[int, int], None] | None


@dataclass(frozen=True)
class Hashes:
    """``values``: (N,) uint64 pHash per image; ``ok``: (N,) bool, False where the file could not be read."""
    values: np.ndarray
    ok: np.ndarray


def hash_image(image) -> int:
    """The 64-bit pHash of a PIL image (any mode) as an int (imagehash.phash, hash_size 8)."""
    import imagehash

    bits = imagehash.phash(image, hash_size=HASH_SIZE).hash.reshape(-1)
    return int(np.packbits(bits.astype(np.uint8)).view(">u8")[0])


def perceptual_hashes(paths: Sequence[str], progress: Progress = None, every: int = 200) -> Hashes:
    """pHash of every file in ``paths`` (the run's own, already validated images). JPEGs are decoded at
    a reduced scale (Pillow's ``draft``: the hash only needs 32x32 grey pixels), about 1.3 ms per
    256 px face on this machine. A file that cannot be opened gets ``ok = False`` (nothing raises).
    ``progress(done, total)`` is called every ``every`` files and at the end."""
    from PIL import Image

    n = len(paths)
    values = np.zeros(n, dtype=np.uint64)
    ok = np.zeros(n, dtype=bool)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                im.draft("L", (64, 64))
                values[i] = hash_image(im)
                ok[i] = True
        except (OSError, ValueError, Image.DecompressionBombError):
            pass
        if progress is not None and ((i + 1) % every == 0 or i + 1 == n):
            progress(i + 1, n)
    return Hashes(values, ok)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit differences between uint64 hashes: ``a`` (n,) x ``b`` (m,) -> (n, m) uint8 matrix."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64)[:, None], np.asarray(b, dtype=np.uint64)[None, :])
    return np.bitwise_count(x)


def cross_split_pairs(hashes: Hashes, split: Sequence[str], max_distance: int = DEFAULT_MAX_DISTANCE,
                      chunk: int = 512) -> pd.DataFrame:
    """Every pair of readable images in different splits whose hashes differ in at most ``max_distance``
    bits. ``split``: (N,) of "train" / "val" / "test". Returns columns ``i, j`` (row positions, ``i`` in
    the later split: test before val before train), ``split_i, split_j``, ``distance`` (bits), sorted
    by distance. Raises ValueError when the lengths differ."""
    split = np.asarray(split, dtype=object)
    if len(split) != len(hashes.values):
        raise ValueError(f"{len(hashes.values)} hashes but {len(split)} split labels")
    order = {s: k for k, s in enumerate(SPLIT_ORDER)}
    rank = np.array([order.get(str(s), -1) for s in split])
    found: list[pd.DataFrame] = []
    for later in ("test", "val"):
        qi = np.flatnonzero((split == later) & hashes.ok)
        ri = np.flatnonzero((rank >= 0) & (rank < order[later]) & hashes.ok)
        if not len(qi) or not len(ri):
            continue
        for start in range(0, len(qi), chunk):
            q = qi[start:start + chunk]
            d = hamming(hashes.values[q], hashes.values[ri])
            a, b = np.nonzero(d <= max_distance)
            if len(a):
                found.append(pd.DataFrame({"i": q[a], "j": ri[b], "distance": d[a, b].astype(int)}))
    cols = ["i", "j", "split_i", "split_j", "distance"]
    if not found:
        return pd.DataFrame({c: pd.Series(dtype=object if c.startswith("split") else int) for c in cols})
    pairs = pd.concat(found, ignore_index=True)
    pairs["split_i"] = split[pairs["i"].to_numpy()]
    pairs["split_j"] = split[pairs["j"].to_numpy()]
    return pairs[cols].sort_values(["distance", "i", "j"], kind="mergesort").reset_index(drop=True)


def pairs_table(pairs: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """:func:`cross_split_pairs` with the images' facts from the manifest (row positions = manifest
    order): ``dataset, label, split, relpath, path`` of each side (suffix ``_a`` for the later split,
    ``_b`` for the earlier one), ``distance`` and ``same_label``."""
    m = manifest.reset_index(drop=True)
    cols = ["dataset", "label", "split", "relpath", "path"]
    a = m.loc[pairs["i"].to_numpy(), cols].reset_index(drop=True).add_suffix("_a")
    b = m.loc[pairs["j"].to_numpy(), cols].reset_index(drop=True).add_suffix("_b")
    out = pd.concat([a, b], axis=1)
    out["distance"] = pairs["distance"].to_numpy()
    out["same_label"] = out["label_a"].to_numpy() == out["label_b"].to_numpy()
    return out


def counts_per_dataset(pairs: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: ``test images``, ``test with a training near-duplicate`` (count and ``share``),
    ``validation images`` and ``validation with a training near-duplicate``; one row per dataset in
    the manifest, sorted by name."""
    m = manifest.reset_index(drop=True)
    to_train = pairs[pairs["split_j"] == "train"] if len(pairs) else pairs
    leaked = set(to_train["i"].tolist()) if len(to_train) else set()
    rows = []
    for ds, part in m.groupby(m["dataset"].astype(str), sort=True):
        test = part.index[part["split"] == "test"]
        val = part.index[part["split"] == "val"]
        n_test_dup = sum(int(i) in leaked for i in test)
        rows.append({"dataset": ds, "test images": len(test), "test with a training near-duplicate": n_test_dup,
                     "share of test": (n_test_dup / len(test)) if len(test) else float("nan"),
                     "validation images": len(val),
                     "validation with a training near-duplicate": sum(int(i) in leaked for i in val)})
    return pd.DataFrame(rows)
