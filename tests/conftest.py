"""Shared fixtures: synthetic face-like images and one tiny trained run reused by many tests.

Synthetic "real" images are smooth colour fields with mild noise; "fake" ones add a faint
periodic high-frequency pattern, the kind of upsampling trace a GAN leaves. A small CNN learns
the difference in a couple of epochs at 32 px, which keeps the end-to-end tests fast.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Same inputs, same numbers: the pipeline's training switches on TensorFlow's op determinism itself
# (pipeline.training.seed_training); test_training.py checks that two identical trainings agree.
REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))


def face_like(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(60, 200, 3)
    slope = rng.uniform(-60, 60, (2, 3))
    img = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    disk = ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) < rng.uniform(0.06, 0.12)
    img[disk] += rng.uniform(-40, 40, 3)
    img += rng.normal(0, 4, img.shape)
    if kind == "fake":
        block = 2  # a checkerboard of 2-pixel cells: survives resizing to 32 px
        pattern = ((np.arange(size)[:, None] // block + np.arange(size)[None, :] // block) % 2) * 2 - 1
        img += pattern[..., None] * rng.uniform(24, 32)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_images(folder: Path, kind: str, n: int, seed: int, fmt: str = "PNG", size: int = 32) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"{kind}_{seed}_{i:03d}.{fmt.lower()}"
        Image.fromarray(face_like(kind, rng, size)).save(p, format=fmt)
        paths.append(p)
    return paths


def assert_same_scores(a, b, abs_tol: float = 1e-5, where: str = "record") -> None:
    """Assert two score records (dicts, lists, strings, numbers, nested) are the same, numbers within
    ``abs_tol``. A model scoring a batch of 3 and a batch of 1 can differ in the 7th digit (the
    convolution kernels sum in another order), so a rounded probability may round the other way;
    labels, keys and names must still match exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_same_scores(a[k], b[k], abs_tol, f"{where}.{k}")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_scores(x, y, abs_tol, f"{where}[{i}]")
    elif isinstance(a, (float, np.floating)) and isinstance(b, (int, float, np.integer, np.floating)):
        assert b == pytest.approx(a, abs=abs_tol), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def make_labelled_folder(root: Path, n_per_class: int = 30, seed: int = 0, fmt: str = "PNG",
                         real_name: str = "real", fake_name: str = "fake") -> Path:
    write_images(root / real_name, "real", n_per_class, seed, fmt)
    write_images(root / fake_name, "fake", n_per_class, seed + 1000, fmt)
    return root


def make_split_folder(root: Path, counts=(20, 6, 6), seed: int = 0) -> Path:
    for offset, (split, n) in enumerate(zip(("train", "valid", "test"), counts)):
        # A fixed offset per split (not ``hash(split)``: Python salts string hashes per process, which
        # gave every test session different pictures).
        write_images(root / split / "real", "real", n, seed + 101 * offset, "PNG")
        write_images(root / split / "fake", "fake", n, seed + 5000 + 101 * offset, "PNG")
    return root


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """A root with two datasets: ``alpha`` (real/fake) and ``beta`` (Kaggle-style train/valid/test)."""
    root = tmp_path_factory.mktemp("faces")
    make_labelled_folder(root / "alpha", n_per_class=40, seed=1)
    make_split_folder(root / "beta", counts=(24, 8, 8), seed=2)
    return root


@pytest.fixture(scope="session")
def tiny_config(synthetic_data, tmp_path_factory):
    from pipeline import config_load

    return config_load.from_dict({
        "name": "tiny", "data": [str(synthetic_data)], "seed": 7,
        "artifacts_dir": str(tmp_path_factory.mktemp("artifacts")),
        "augmentation": {"flip": True, "shift": 0.0, "zoom": 0.0, "brightness": 0.0},
        "training": {"batch_size": 16, "epochs": 4, "learning_rate": 3e-3, "early_stopping_patience": 0},
        "models": [{"name": "baseline_cnn", "image_size": 32}, {"name": "custom_cnn", "image_size": 32}],
    })


@pytest.fixture(scope="session")
def tiny_run(tiny_config) -> Path:
    """A trained run folder (two small CNNs on synthetic data), built once per test session."""
    from pipeline import runner

    return runner.train_run(tiny_config, log=lambda _: None)


@pytest.fixture()
def shared_data() -> Path:
    if not (SHARED_DATA / "faces140k").is_dir():
        pytest.skip(f"real face images not found at {SHARED_DATA} (a clone without ../shared/data)")
    return SHARED_DATA
