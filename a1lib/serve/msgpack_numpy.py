"""msgpack with numpy arrays: the wire format of openpi's policy server, byte for byte.

msgpack is safe (no code runs on unpacking, unlike pickle), compact and fast. Numpy values are
encoded as msgpack maps with bytes keys::

    ndarray  -> {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": arr.dtype.str, b"shape": arr.shape}
    np.generic -> {b"__npgeneric__": True, b"data": x.item(), b"dtype": x.dtype.str}

Object (``O``), void (``V``) and complex (``c``) dtypes are refused both ways: an object array
cannot be rebuilt from bytes without pickle, which is never used.

Unpacking also checks that ``data`` holds exactly ``prod(shape) * itemsize`` bytes and can cap
the element count (``max_elements``), so a hostile message cannot ask for a huge allocation.
"""

from __future__ import annotations

import functools
from typing import Any

import msgpack
import numpy as np

REFUSED_KINDS = ("V", "O", "c")


class DecodeError(ValueError):
    """A message that is not valid msgpack-numpy (or asks for a refused dtype / too many elements)."""


def pack_array(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in REFUSED_KINDS:
        raise ValueError(f"Unsupported dtype: {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _dtype(code: Any) -> np.dtype:
    if not isinstance(code, (str, bytes)):
        raise DecodeError(f"dtype must be a string, got {type(code).__name__}")
    try:
        dtype = np.dtype(code.decode() if isinstance(code, bytes) else code)
    except TypeError as e:
        raise DecodeError(f"unknown dtype {code!r}") from e
    if dtype.kind in REFUSED_KINDS:
        raise DecodeError(f"refused dtype {dtype} (object, void and complex arrays are not accepted)")
    return dtype


def unpack_array(obj: dict, max_elements: int | None = None) -> Any:
    if b"__ndarray__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        shape, data = obj.get(b"shape"), obj.get(b"data")
        if not isinstance(shape, (list, tuple)) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise DecodeError(f"bad ndarray shape {shape!r}")
        if not isinstance(data, bytes):
            raise DecodeError("ndarray data must be bytes")
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if max_elements is not None and n > max_elements:
            raise DecodeError(f"array of shape {tuple(shape)} has {n} elements, more than the limit {max_elements}")
        if len(data) != n * dtype.itemsize:
            raise DecodeError(f"ndarray data has {len(data)} bytes, "
                              f"shape {tuple(shape)} x {dtype} needs {n * dtype.itemsize}")
        return np.ndarray(buffer=data, dtype=dtype, shape=tuple(shape))
    if b"__npgeneric__" in obj:
        dtype = _dtype(obj.get(b"dtype"))
        return dtype.type(obj.get(b"data"))
    return obj


Packer = functools.partial(msgpack.Packer, default=pack_array)
packb = functools.partial(msgpack.packb, default=pack_array)


def unpackb(data: bytes, max_elements: int | None = None) -> Any:
    """Decode one message; any malformation raises ``DecodeError`` naming the problem."""
    try:
        return msgpack.unpackb(data, object_hook=functools.partial(unpack_array, max_elements=max_elements))
    except DecodeError:
        raise
    except Exception as e:  # msgpack's ExtraData, FormatError, StackError, ValueError, ...
        raise DecodeError(f"not a valid msgpack-numpy message: {type(e).__name__}: {e}") from e
