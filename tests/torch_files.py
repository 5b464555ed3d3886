"""Hand-built PyTorch weight files (no torch needed), for tests of :mod:`pipeline.torch_weights`.

The pickles are assembled from opcodes (``c module\\nname\\n`` = GLOBAL, ``(`` MARK, ``t`` TUPLE, ``Q`` BINPERSID,
``R`` REDUCE, ``s`` SETITEM, ``.`` STOP) plus ``pickle.dumps`` of plain values, the way ``torch.save`` lays out a
state dict: ``OrderedDict`` of ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``
with each storage a persistent id ``('storage', torch.FloatStorage, key, 'cpu', numel[, None])``.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_NAMES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
                 np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage", np.dtype("int32"): "IntStorage",
                 np.dtype("uint8"): "ByteStorage", np.dtype("bool"): "BoolStorage"}


def g(module: str, name: str) -> bytes:
    """GLOBAL opcode."""
    return b"c" + f"{module}\n{name}\n".encode()


def v(obj) -> bytes:
    """A plain value (int, str, tuple, None, bool) as a pickle fragment (protocol 2, no header or STOP)."""
    b = pickle.dumps(obj, protocol=2)
    assert b[:2] == b"\x80\x02" and b[-1:] == b"."
    return b[2:-1]


@dataclass
class Tensor:
    """A tensor to write: ``storage`` key, its position in the storage (``offset``, ``size``, ``stride`` in elements)."""

    storage: str
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def contiguous(key: str, shape: tuple[int, ...], offset: int = 0) -> Tensor:
    stride, acc = [], 1
    for s in reversed(shape):
        stride.insert(0, acc)
        acc *= s
    return Tensor(key, offset, tuple(shape), tuple(stride))


def state_pickle(tensors: dict[str, Tensor], storages: dict[str, np.ndarray], legacy: bool,
                 type_names: dict[str, str] | None = None) -> bytes:
    """The state-dict pickle (protocol 2) naming ``tensors`` in ``storages``."""
    out = [b"\x80\x02", g("collections", "OrderedDict"), b")R"]
    for name, t in tensors.items():
        data = storages[t.storage]
        type_name = (type_names or {}).get(t.storage) or STORAGE_NAMES[data.dtype]
        pid = b"(" + v("storage") + g("torch", type_name) + v(t.storage) + v("cpu") + v(int(data.size))
        pid += (v(None) if legacy else b"") + b"tQ"
        args = b"(" + pid + v(t.offset) + v(t.size) + v(t.stride) + v(False) + g("collections", "OrderedDict") + b")R"
        out += [v(name), g("torch._utils", "_rebuild_tensor_v2"), args + b"tR", b"s"]
    out.append(b".")
    return b"".join(out)


def legacy_file(main_pickle: bytes, storages: dict[str, np.ndarray]) -> bytes:
    """The legacy ``torch.save`` layout around ``main_pickle``: magic, protocol, sys info, keys, raw storages."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    parts = [pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(1001, 2), pickle.dumps(sys_info, 2), main_pickle,
             pickle.dumps(list(storages), 2)]
    for arr in storages.values():
        parts += [struct.pack("<q", arr.size), np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()]
    return b"".join(parts)


def zip_file(main_pickle: bytes, storages: dict[str, np.ndarray], prefix: str = "archive") -> bytes:
    """The zip ``torch.save`` layout (PyTorch >= 1.6): data.pkl, data/<key>, version, byteorder."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{prefix}/data.pkl", main_pickle)
        z.writestr(f"{prefix}/byteorder", "little")
        for key, arr in storages.items():
            z.writestr(f"{prefix}/data/{key}", np.ascontiguousarray(arr).tobytes())
        z.writestr(f"{prefix}/version", "3\n")
    return buf.getvalue()


def malicious_pickle(module: str, name: str, argument: str) -> bytes:
    """A pickle that calls ``module.name(argument)`` when loaded by plain ``pickle.load``."""
    return b"\x80\x02" + g(module, name) + b"(" + v(argument) + b"tR."
