"""Feature specs: the ``features`` block of ``meta/info.json`` and its Hugging Face twin.

A feature is ``{"dtype": ..., "shape": [...], "names": ...}``. ``dtype`` is ``"image"`` (PNG bytes
embedded in the data parquet), ``"video"`` (frames in MP4 files under ``videos/``) or a numpy
dtype name (``float32``, ``int64``, ...). Every dataset also has the five LeRobot default features
(``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``) that the writer
fills in itself.

The on-disk column type follows LeRobot: shape ``(1,)`` -> a scalar ``Value`` column, a vector
-> a fixed-size list, a 2-D array -> ``Array2D``, an image -> ``datasets.Image`` (a struct of
``bytes`` and ``path``). The ``datasets.Features`` built here are stored in the parquet schema
metadata under the key ``huggingface``.
"""

from __future__ import annotations

import copy
from typing import Any

import datasets
import numpy as np

from a1lib.data.errors import DatasetError

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
VISUAL_DTYPES = ("image", "video")
NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
# Every float feature must be finite: NaN or inf in one value makes its stats (mean, std, min,
# max) non-finite and silently poisons normalisation and training. Padding uses -1, never NaN.


def must_be_finite(spec: dict[str, Any]) -> bool:
    return str(spec["dtype"]).startswith("float")


def is_visual(spec: dict[str, Any]) -> bool:
    return spec["dtype"] in VISUAL_DTYPES


def check_spec(name: str, spec: Any) -> dict[str, Any]:
    """A validated copy of one feature spec (shape as a list of ints), or a DatasetError saying why not."""
    if not isinstance(spec, dict) or "dtype" not in spec or "shape" not in spec:
        raise DatasetError(f"feature {name!r}: expected a dict with 'dtype' and 'shape', got {spec!r}")
    dtype = spec["dtype"]
    if dtype not in VISUAL_DTYPES and dtype not in NUMERIC_DTYPES:
        raise DatasetError(f"feature {name!r}: unknown dtype {dtype!r}; use one of {VISUAL_DTYPES + NUMERIC_DTYPES}")
    raw = spec["shape"]
    is_list = isinstance(raw, (list, tuple))
    if not is_list or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in raw):
        raise DatasetError(f"feature {name!r}: shape must be a list of positive integers, got {raw!r}")
    shape = [int(s) for s in raw]
    if dtype in VISUAL_DTYPES and (len(shape) != 3 or shape[2] != 3):
        raise DatasetError(f"feature {name!r}: {dtype} shape must be [height, width, 3], got {shape}")
    if not 1 <= len(shape) <= 3:
        raise DatasetError(f"feature {name!r}: shape must have 1 to 3 dims, got {shape}")
    spec = copy.deepcopy(spec)
    spec["shape"] = shape
    return spec


def check_features(features: Any) -> dict[str, dict[str, Any]]:
    """The ``features`` block of a dataset on disk, validated: a mapping of valid specs that
    includes the five default features with their LeRobot dtypes and shape [1]."""
    if not isinstance(features, dict):
        raise DatasetError(f"'features' must be a mapping of name -> spec, got {type(features).__name__}")
    out = {str(name): check_spec(str(name), spec) for name, spec in features.items()}
    for name, spec in DEFAULT_FEATURES.items():
        if name not in out:
            raise DatasetError(f"'features' lacks the default feature {name!r}")
        if out[name]["dtype"] != spec["dtype"] or out[name]["shape"] != [1]:
            got = f"{out[name]['dtype']} {out[name]['shape']}"
            raise DatasetError(f"feature {name!r}: must be {spec['dtype']} of shape [1], got {got}")
    return out


def with_defaults(features: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """User features (validated, shapes as lists) followed by the LeRobot default features."""
    out: dict[str, dict[str, Any]] = {}
    for name, spec in features.items():
        if name in DEFAULT_FEATURES:
            continue  # the writer owns these
        spec = check_spec(name, spec)
        if spec["dtype"] in VISUAL_DTYPES and spec.get("names") is None:
            spec["names"] = ["height", "width", "channels"]
        spec.setdefault("names", None)
        out[name] = spec
    out.update(copy.deepcopy(DEFAULT_FEATURES))
    return out


def hf_feature(spec: dict[str, Any]) -> Any:
    """The ``datasets`` feature type for one feature spec (video features have no column)."""
    dtype, shape = spec["dtype"], list(spec["shape"])
    if dtype == "image":
        return datasets.Image()
    if dtype == "video":
        return None
    if shape == [1]:
        return datasets.Value(dtype)
    if len(shape) == 1:
        return datasets.List(datasets.Value(dtype), length=shape[0])  # fixed_size_list<dtype>[N]
    if len(shape) == 2:
        return datasets.Array2D(shape=tuple(shape), dtype=dtype)
    return datasets.Array3D(shape=tuple(shape), dtype=dtype)


def hf_features(features: dict[str, dict[str, Any]]) -> datasets.Features:
    return datasets.Features({k: hf_feature(s) for k, s in features.items() if s["dtype"] != "video"})


def check_value(name: str, spec: dict[str, Any], value: Any) -> np.ndarray:
    """``value`` as a numpy array of the feature's dtype and shape, or a DatasetError saying why not."""
    shape = tuple(spec["shape"])
    if spec["dtype"] in VISUAL_DTYPES:
        arr = np.asarray(value)
        if arr.dtype != np.uint8:
            raise DatasetError(f"feature {name!r}: images must be uint8 (H, W, 3), got dtype {arr.dtype}")
        if arr.shape != shape:
            raise DatasetError(f"feature {name!r}: expected image shape {shape}, got {arr.shape}")
        return np.ascontiguousarray(arr)
    arr = np.asarray(value)
    if arr.shape == () and shape == (1,):
        arr = arr.reshape(1)
    if arr.shape != shape:
        raise DatasetError(f"feature {name!r}: expected shape {shape}, got {arr.shape}")
    want = np.dtype(spec["dtype"])
    if arr.dtype != want:
        # Lossless casts only (e.g. int32 -> int64, float64 -> float32 of a python float is allowed).
        same_kind = np.can_cast(arr.dtype, want, casting="same_kind")
        if not same_kind or (arr.dtype.kind == "f" and want.kind in "iub"):
            raise DatasetError(f"feature {name!r}: expected dtype {want}, got {arr.dtype}")
        arr = arr.astype(want)
    if must_be_finite(spec) and not np.all(np.isfinite(arr)):
        raise DatasetError(f"feature {name!r}: contains NaN or inf: {arr.tolist()}")
    return arr
