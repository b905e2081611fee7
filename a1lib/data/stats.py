"""Per-feature statistics, as LeRobot stores them in ``meta/stats.json`` and the episodes parquet.

For every numeric feature: ``min, max, mean, std, count`` and the quantiles ``q01, q10, q50, q90,
q99``, each over frames (so a state vector of size S has stats of shape (S,)). Images are
summarised per colour channel on a [0, 1] scale, shape (3, 1, 1), from a subsample of frames.

Dataset-level stats of numeric features are computed exactly from all frames. Image stats, and
the stats of a v2.1 dataset read from per-episode stats, are aggregated from episode stats:
min/max/mean/std/count exactly (pooled variance), quantiles as the count-weighted mean of the
episode quantiles (the same approximation LeRobot makes). Stats read from disk go through
``check_stats``: one NaN in a mean would make every normalised value NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from a1lib.data.errors import DatasetError

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)
MAX_IMAGE_FRAMES = 32  # frames sampled per episode for image stats


def numeric_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """values (N, *shape) -> stat name -> (*shape) float64 (count: (1,) int64; min and max of an
    integer feature stay int64, as LeRobot writes them)."""
    raw = np.asarray(values)
    x = raw.astype(np.float64)
    ext = raw.astype(np.int64) if raw.dtype.kind in "iu" else x
    out = {
        "min": ext.min(axis=0),
        "max": ext.max(axis=0),
        "mean": x.mean(axis=0),
        "std": x.std(axis=0),
        "count": np.array([len(x)], dtype=np.int64),
    }
    qs = np.quantile(x, list(QUANTILES.values()), axis=0)
    for i, name in enumerate(QUANTILES):
        out[name] = qs[i]
    return out


def sample_indices(n: int, k: int = MAX_IMAGE_FRAMES) -> np.ndarray:
    """Up to k evenly spaced indices in [0, n) (deterministic)."""
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(np.int64))


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """frames uint8 (N, H, W, 3) -> per-channel stats of shape (3, 1, 1) on [0, 1]."""
    x = frames.astype(np.float64) / 255.0  # (N, H, W, 3)
    pixels = x.reshape(-1, 3)  # (N*H*W, 3)
    st = numeric_stats(pixels)
    out = {k: v.reshape(3, 1, 1) for k, v in st.items() if k != "count"}
    out["count"] = np.array([len(frames)], dtype=np.int64)
    return out


def aggregate_stats(episode_stats: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine per-episode stats of one feature into dataset stats (see the module docstring)."""
    counts = np.array([float(np.asarray(s["count"]).reshape(-1)[0]) for s in episode_stats])
    w = counts / counts.sum()
    means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in episode_stats])
    stds = np.stack([np.asarray(s["std"], dtype=np.float64) for s in episode_stats])
    wshape = (-1,) + (1,) * (means.ndim - 1)
    mean = (w.reshape(wshape) * means).sum(axis=0)
    var = (w.reshape(wshape) * (stds**2 + (means - mean) ** 2)).sum(axis=0)
    out = {  # min / max keep their dtype (int64 for integer features)
        "min": np.min(np.stack([np.asarray(s["min"]) for s in episode_stats]), axis=0),
        "max": np.max(np.stack([np.asarray(s["max"]) for s in episode_stats]), axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(counts.sum())], dtype=np.int64),
    }
    for q in QUANTILES:
        if all(q in s for s in episode_stats):
            qs = np.stack([np.asarray(s[q], dtype=np.float64) for s in episode_stats])
            out[q] = (w.reshape(wshape) * qs).sum(axis=0)
    return out


def to_jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {k: {s: np.asarray(v).tolist() for s, v in st.items()} for k, st in stats.items()}


def check_stats(stats: Any, where: Any, features: dict[str, dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Stats as read from JSON (feature -> stat name -> a number or nested lists of numbers) as
    arrays, or a DatasetError naming ``where``: anything else, a NaN or inf (it would turn every
    normalised value into NaN), or a stat whose size does not fit its feature in ``features``."""
    if not isinstance(stats, dict):
        raise DatasetError(f"{where}: expected a JSON object of feature -> stats, got {type(stats).__name__}")
    out = {}
    for key, st in stats.items():
        if not isinstance(st, dict):
            raise DatasetError(f"{where}: {key!r} must map stat names to values, got {st!r:.80}")
        spec = features.get(key)
        size = None if spec is None else 3 if spec["dtype"] in ("image", "video") else int(np.prod(spec["shape"]))
        out[key] = {}
        for name, value in st.items():
            try:
                arr = np.asarray(value)
                ok = arr.dtype.kind in "iuf" and bool(np.isfinite(arr).all())
            except (TypeError, ValueError):  # ragged lists
                ok = False
            if not ok:
                raise DatasetError(f"{where}: {key!r} {name!r} is not finite numbers: {value!r:.80}")
            if size is not None and name != "count" and arr.size != size:
                raise DatasetError(f"{where}: {key!r} {name!r} has {arr.size} values, feature {key!r} has {size}")
            out[key][name] = arr
    return out
