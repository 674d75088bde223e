"""Read the tensors of a weights file without executing anything in it.

Every reader yields :class:`Tensor` values whose ``data`` is the tensor's bytes in canonical form:
C (row-major) order, little-endian, no padding. Readers parse formats themselves (safetensors,
NumPy ``.npy``/``.npz``, PyTorch zip checkpoints through a restricted unpickler whose only
resolvable globals are inert stand-ins, ONNX initializers through the ``onnx`` protobuf parser).
"""

from __future__ import annotations

import ast
import dataclasses
import io
import itertools
import json
import mmap
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from modelseal.errors import InputError, TensorFormatError, UnsupportedAlgorithmError
from modelseal.fsinput import open_regular
from modelseal.memio import ViewReader


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One named tensor: canonical dtype name, shape, and its bytes (C order, little-endian)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: memoryview | bytes

    @property
    def numel(self) -> int:
        """The number of elements (1 for a scalar)."""
        count = 1
        for dim in self.shape:
            count *= dim
        return count


ITEMSIZE: dict[str, int] = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2,
    "float8_e4m3fn": 1, "float8_e5m2": 1,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1,
    "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1,
    "bool": 1, "complex64": 8, "complex128": 16,
}  # fmt: skip

_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip

_NUMPY_KINDS = {
    "f8": "float64", "f4": "float32", "f2": "float16",
    "i8": "int64", "i4": "int32", "i2": "int16", "i1": "int8",
    "u8": "uint64", "u4": "uint32", "u2": "uint16", "u1": "uint8",
    "b1": "bool", "c8": "complex64", "c16": "complex128",
}  # fmt: skip

_TORCH_STORAGES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}  # fmt: skip

_TORCH_DTYPES = {
    "float64": "float64", "float32": "float32", "float16": "float16", "bfloat16": "bfloat16",
    "int64": "int64", "int32": "int32", "int16": "int16", "int8": "int8", "uint8": "uint8",
    "bool": "bool", "float8_e4m3fn": "float8_e4m3fn", "float8_e5m2": "float8_e5m2",
}  # fmt: skip

MAX_HEADER = 100 * 1024 * 1024


def _fail(path: Path | str, message: str) -> TensorFormatError:
    return TensorFormatError(
        f"{path}: {message}", hint="the file is damaged or is not a supported weights format"
    )


def weights_kind(path: Path) -> str | None:
    """The weights format of the file at ``path``, or ``None`` if it is some other file."""
    try:
        with os.fdopen(open_regular(path), "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < 9:
                return None
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                view = memoryview(mapped)
                try:
                    return detect(path, view)
                except (TensorFormatError, UnsupportedAlgorithmError):
                    return None
                finally:
                    view.release()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint="check the path") from None


def detect(path: Path | str, view: memoryview) -> str:
    """``safetensors``, ``npy``, ``npz``, ``torch`` or ``onnx``, by content (never extension)."""
    head = bytes(view[:16])
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        try:
            with zipfile.ZipFile(ViewReader(view)) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            raise _fail(path, "damaged zip archive") from None
        if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return "torch"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        raise _fail(path, "zip archive that is neither a PyTorch checkpoint nor .npz")
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= MAX_HEADER and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head[:1] == b"\x08":  # an ONNX ModelProto starts with field 1 (ir_version, varint)
        return "onnx"
    raise UnsupportedAlgorithmError(
        f"{path}: not a weights format modelseal reads",
        hint="supported: safetensors, .npy/.npz, PyTorch zip checkpoints, ONNX, HDF5 (Keras)",
    )


def tensor_payload_ranges(view: memoryview) -> list[tuple[int, int]] | None:
    """The byte ranges of ``view`` that hold only raw tensor values, which verified loading may
    leave in a shared mapping of the file (``memory="map"``): a safetensors file's data section,
    a PyTorch checkpoint's stored (uncompressed) storages. Everything else (headers, the zip
    directory, the pickle) must be private. ``None`` for any other content or anything odd.

    Reads structure only (no pickle, no decompression) and may run on unverified bytes: it only
    decides what to copy; the loader checks the verified bytes fully afterwards.
    """
    head = bytes(view[:16])
    if len(head) >= 9 and head[8:9] == b"{":
        (header_len,) = struct.unpack("<Q", head[:8])
        start = 8 + header_len
        if 2 <= header_len <= MAX_HEADER and start <= len(view):
            return [(start, len(view))]
        return None
    if not head.startswith(b"PK\x03\x04"):
        return None
    reader = ViewReader(view)
    try:
        with zipfile.ZipFile(reader) as archive:
            infos = archive.infolist()
            directory = archive.start_dir
        pkl = [i.filename for i in infos if i.filename.endswith("data.pkl")]
        if len(pkl) != 1:
            return None
        prefix = pkl[0][: -len("data.pkl")]
        extents: list[tuple[int, int]] = []  # every member, local header to end of data
        ranges: list[tuple[int, int]] = []
        for info in infos:
            start = _data_offset(view, info)
            end = start + info.compress_size
            extents.append((info.header_offset, end))
            rest = info.filename[len(prefix) :]
            if (
                info.filename.startswith(prefix)
                and rest.startswith("data/")
                and rest[5:].isdigit()
                and info.compress_type == zipfile.ZIP_STORED
                and not info.flag_bits & 0x1
            ):
                ranges.append((start, end))
    except (zipfile.BadZipFile, ValueError, OverflowError):
        return None
    finally:
        reader.close()
    # Members must not overlap one another nor the directory: a storage range covering a header
    # or the pickle would leave bytes the parser reads in shared pages.
    extents.sort()
    if any(a[1] > b[0] for a, b in itertools.pairwise(extents)):
        return None
    if extents and extents[-1][1] > min(directory, len(view)):
        return None
    return sorted(ranges)


def read_tensors(
    path: str | os.PathLike[str], data: bytes | memoryview | None = None
) -> list[Tensor]:
    """All tensors of the weights file at ``path``, or of ``data`` (its already verified bytes,
    in which case ``path`` only names it in messages)."""
    p = Path(path)
    buffer: bytes | memoryview | mmap.mmap = b""
    if data is None:
        try:
            with os.fdopen(open_regular(p), "rb") as fh:
                if os.fstat(fh.fileno()).st_size:
                    buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise InputError(f"cannot read {p}: {exc.strerror}", hint="check the path") from None
    else:
        buffer = data
    view = memoryview(buffer)
    readers: dict[str, Callable[[Path, memoryview], list[Tensor]]] = {
        "safetensors": _read_safetensors,
        "npy": lambda path, v: [_read_npy(path, "", v)],
        "npz": _read_npz,
        "torch": _read_torch,
        "onnx": _read_onnx,
        "hdf5": _read_hdf5,
    }
    return readers[detect(p, view)](p, view)


# -- safetensors -----------------------------------------------------------------------------------


def _read_safetensors(path: Path, view: memoryview) -> list[Tensor]:
    if len(view) < 8:
        raise _fail(path, "truncated safetensors header")
    (header_len,) = struct.unpack("<Q", view[:8])
    if header_len > MAX_HEADER or 8 + header_len > len(view):
        raise _fail(path, "safetensors header length out of bounds")
    try:
        header = json.loads(bytes(view[8 : 8 + header_len]))
    except (ValueError, UnicodeDecodeError):
        raise _fail(path, "safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise _fail(path, "safetensors header is not an object")
    body = view[8 + header_len :]
    tensors: list[Tensor] = []
    spans: list[tuple[int, int]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
            shape = tuple(int(d) for d in info["shape"])
            start, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise _fail(path, f"tensor {name!r} has an invalid header entry") from None
        count = 1
        for dim in shape:
            if dim < 0:
                raise _fail(path, f"tensor {name!r} has a negative dimension")
            count *= dim
        if not 0 <= start <= end <= len(body) or end - start != count * ITEMSIZE[dtype]:
            raise _fail(path, f"tensor {name!r} has offsets that do not match its shape")
        spans.append((start, end))
        tensors.append(Tensor(name, dtype, shape, body[start:end]))
    spans.sort()
    for (_, prev_end), (start, _) in itertools.pairwise(spans):
        if start < prev_end:
            raise _fail(path, "tensors overlap")
    return tensors


# -- NumPy -----------------------------------------------------------------------------------------


def _read_npy(path: Path, name: str, view: memoryview) -> Tensor:
    where = f"{path}:{name}" if name else str(path)
    if len(view) < 10 or bytes(view[:6]) != b"\x93NUMPY":
        raise _fail(where, "not a .npy array")
    major = view[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", view[8:10])
        offset = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack("<I", view[8:12])
        offset = 12
    else:
        raise _fail(where, f"unknown .npy version {major}")
    try:
        header = ast.literal_eval(bytes(view[offset : offset + hlen]).decode("latin-1"))
        descr, fortran, shape = header["descr"], bool(header["fortran_order"]), header["shape"]
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise _fail(where, "unreadable .npy header") from None
    if not isinstance(descr, str) or not isinstance(shape, tuple):
        raise _fail(where, "structured or object arrays are not plain tensors (they hold pickles)")
    order, kind = descr[0], descr[1:]
    dtype = _NUMPY_KINDS.get(kind)
    if dtype is None:
        raise _fail(where, f"dtype {descr!r} is not a plain numeric tensor")
    shape_t = tuple(int(d) for d in shape)
    data = view[offset + hlen :]
    itemsize = ITEMSIZE[dtype]
    count = 1
    for dim in shape_t:
        count *= dim
    if len(data) < count * itemsize:
        raise _fail(where, "array data is truncated")
    data = data[: count * itemsize]
    big_endian = order == ">" or (order == "=" and sys.byteorder == "big")
    if fortran or (big_endian and itemsize > 1):
        return Tensor(name, dtype, shape_t, _reorder(data, dtype, shape_t, fortran, big_endian))
    return Tensor(name, dtype, shape_t, data)


def _reorder(
    data: memoryview | bytes, dtype: str, shape: tuple[int, ...], fortran: bool, swap: bool
) -> bytes:
    """Bring Fortran-ordered or big-endian data to canonical C order, little-endian."""
    import numpy as np

    itemsize = ITEMSIZE[dtype]
    raw = np.frombuffer(
        data, dtype=f"{'>' if swap else '<'}u{itemsize}" if itemsize <= 8 else "V16"
    )
    arr = raw.reshape(shape, order="F" if fortran else "C")
    if swap and itemsize <= 8:
        arr = arr.astype(f"<u{itemsize}")
    return np.ascontiguousarray(arr).tobytes()


def _read_npz(path: Path, view: memoryview) -> list[Tensor]:
    tensors: list[Tensor] = []
    with zipfile.ZipFile(ViewReader(view)) as archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                raise _fail(path, f"member {info.filename!r} is not a .npy array")
            tensors.append(_read_npy(path, info.filename[:-4], memoryview(archive.read(info))))
    return tensors


# -- PyTorch zip checkpoints -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: str


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class _StorageType:
    dtype: str


def _rebuild_tensor_v2(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("tensor without a storage")
    return _TensorRef(
        storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    )


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


class _InertUnpickler(pickle.Unpickler):
    """Resolves only the handful of names a state_dict uses, each to an inert stand-in."""

    _GLOBALS: ClassVar[dict[tuple[str, str], Any]] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        **{("torch", name): _StorageType(dtype) for name, dtype in _TORCH_STORAGES.items()},
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._GLOBALS:
            return self._GLOBALS[(module, name)]
        if module == "torch" and name in _TORCH_DTYPES:
            return _StorageType(_TORCH_DTYPES[name])
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a weights file")

    def persistent_load(self, pid: Any) -> Any:
        if (
            not isinstance(pid, tuple)
            or len(pid) != 5
            or pid[0] != "storage"
            or not isinstance(pid[1], _StorageType)
        ):
            raise pickle.UnpicklingError("unexpected persistent id")
        return _StorageRef(str(pid[2]), pid[1].dtype)


def _read_torch(path: Path, view: memoryview) -> list[Tensor]:
    try:
        archive = zipfile.ZipFile(ViewReader(view))
    except zipfile.BadZipFile:
        raise _fail(path, "damaged zip archive") from None
    with archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise _fail(path, "no data.pkl in the checkpoint")
        prefix = pkl[: -len("data.pkl")]
        byteorder = prefix + "byteorder"
        if byteorder in names and archive.read(byteorder).strip() != b"little":
            raise _fail(path, "big-endian checkpoints are not supported")
        try:
            obj = _InertUnpickler(io.BytesIO(archive.read(pkl))).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
            raise _fail(path, f"not a plain state_dict ({exc})") from None
        if not isinstance(obj, dict):
            raise _fail(path, "checkpoint is not a state_dict (a mapping of names to tensors)")
        tensors: list[Tensor] = []
        storages: dict[str, bytes | memoryview] = {}
        for name, ref in obj.items():
            if not isinstance(ref, _TensorRef) or not isinstance(name, str):
                raise _fail(path, f"entry {name!r} is not a tensor")
            key = ref.storage.key
            if key not in storages:
                member = f"{prefix}data/{key}"
                if member not in names:
                    raise _fail(path, f"storage {key!r} is missing")
                storages[key] = _member_bytes(path, archive, member, view)
            tensors.append(_torch_tensor(path, name, ref, storages[key]))
    return tensors


def _member_bytes(
    path: Path, archive: zipfile.ZipFile, member: str, view: memoryview
) -> bytes | memoryview:
    """A stored (uncompressed) member as a zero-copy slice of ``view``; else its inflated bytes.

    The slice skips zipfile's CRC check: the whole archive's bytes were verified against the
    signature, which is stronger.
    """
    info = archive.getinfo(member)
    if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
        return archive.read(member)
    try:
        start = _data_offset(view, info)
    except ValueError:
        raise _fail(path, f"member {member!r} has no local header") from None
    end = start + info.file_size
    if end > len(view):
        raise _fail(path, f"member {member!r} runs past the end of the archive")
    return view[start:end]


def _data_offset(view: memoryview, info: zipfile.ZipInfo) -> int:
    """Where a zip member's data starts: after its local header, whose name and extra fields
    may differ in length from the central directory's. ValueError if there is no such header."""
    local = info.header_offset
    header = bytes(view[local : local + 30])
    if len(header) < 30 or header[:4] != b"PK\x03\x04":
        raise ValueError("no local header")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return int(local + 30 + name_len + extra_len)


def _torch_tensor(path: Path, name: str, ref: _TensorRef, storage: bytes | memoryview) -> Tensor:
    dtype = ref.storage.dtype
    itemsize = ITEMSIZE[dtype]
    shape = ref.size
    count = 1
    for dim in shape:
        count *= dim
    contiguous: list[int] = []
    acc = 1
    for dim in reversed(shape):
        contiguous.insert(0, acc)
        acc *= dim
    start = ref.offset * itemsize
    if count == 0:
        return Tensor(name, dtype, shape, b"")
    if tuple(contiguous) == ref.stride or count == 1:
        end = start + count * itemsize
        if end > len(storage):
            raise _fail(path, f"tensor {name!r} reads past its storage")
        return Tensor(name, dtype, shape, storage[start:end])
    import numpy as np

    last = start + itemsize * (1 + sum((d - 1) * s for d, s in zip(shape, ref.stride, strict=True)))
    if any(s < 0 for s in ref.stride) or last > len(storage):
        raise _fail(path, f"tensor {name!r} reads past its storage")
    base = np.frombuffer(storage, dtype=f"<u{itemsize}" if itemsize <= 8 else "V16")
    strided = np.lib.stride_tricks.as_strided(
        base[ref.offset :], shape=shape, strides=tuple(s * itemsize for s in ref.stride)
    )
    return Tensor(name, dtype, shape, np.ascontiguousarray(strided).tobytes())


# -- ONNX ------------------------------------------------------------------------------------------


_ONNX_DTYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
    9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 14: "complex64",
    15: "complex128", 16: "bfloat16", 17: "float8_e4m3fn", 19: "float8_e5m2",
}  # fmt: skip


def _read_onnx(path: Path, view: memoryview) -> list[Tensor]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise UnsupportedAlgorithmError(
            "reading ONNX weights needs the onnx package", hint='pip install "modelseal[onnx]"'
        ) from None
    try:
        model = onnx.load_model_from_string(bytes(view))
    except Exception:  # the protobuf parser raises several unrelated types
        raise _fail(path, "not a valid ONNX model") from None
    tensors: list[Tensor] = []
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise _fail(path, f"initializer {init.name!r} keeps its data in an external file")
        dtype = _ONNX_DTYPES.get(init.data_type)
        if dtype is None:
            raise _fail(path, f"initializer {init.name!r} has an unsupported data type")
        array = numpy_helper.to_array(init)
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        if dtype == "bfloat16" and array.dtype.itemsize != 2:
            raise _fail(path, f"initializer {init.name!r}: bfloat16 not representable")
        tensors.append(Tensor(init.name, dtype, tuple(int(d) for d in init.dims), data))
    return tensors


# -- HDF5 (Keras weights) ---------------------------------------------------------------------


def _read_hdf5(path: Path, view: memoryview) -> list[Tensor]:
    """Every numeric dataset, named by its path in the file (e.g. Keras ``.h5`` weights)."""
    try:
        import h5py
        import numpy as np
    except ImportError:
        raise UnsupportedAlgorithmError(
            "reading HDF5 weights needs the h5py package", hint='pip install "modelseal[keras]"'
        ) from None
    tensors: list[Tensor] = []

    def visit(name: str, node: Any) -> None:
        if not isinstance(node, h5py.Dataset):
            return
        kind = node.dtype.kind + str(node.dtype.itemsize)
        dtype = _NUMPY_KINDS.get(kind)
        if dtype is None:
            raise _fail(path, f"dataset {name!r} is not a plain numeric tensor")
        array = np.ascontiguousarray(node[()]).astype(node.dtype.newbyteorder("<"), copy=False)
        tensors.append(Tensor(name, dtype, tuple(int(d) for d in node.shape), array.tobytes()))

    try:
        with h5py.File(ViewReader(view), "r") as handle:
            handle.visititems(visit)
    except OSError:
        raise _fail(path, "not a readable HDF5 file") from None
    return tensors
