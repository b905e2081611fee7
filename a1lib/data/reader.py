"""Read a LeRobotDataset (v3.0 or v2.1) from disk: frames, episodes, tasks and stats.

    ds = LeRobotDataset("data/sim")
    len(ds), ds.features, ds.tasks, ds.episodes, ds.stats
    ds[i]                                  -> {feature: np.ndarray, ..., "task": str}
    ds.get_frames("observation.image", [3, 4, 9])  -> uint8 (3, H, W, 3)
    ds.episode_frames(2)                   -> range of global frame indices of episode 2

The data parquet files are loaded with pyarrow and wrapped in a Hugging Face ``datasets.Dataset``
(``ds.hf``) straight from the Arrow table, so nothing is written to a cache directory. Numeric
columns are materialised once as numpy arrays; images stay PNG bytes until asked for; ``video``
features are decoded with PyAV at ``from_timestamp + timestamp`` of the episode's MP4 file.

v3.0 keeps many episodes per file and parquet metadata; v2.1 (openpi's pinned LeRobot) keeps one
parquet per episode and JSONL metadata. Both end up in the same in-memory form.

``meta/info.json`` is the commit point: only the episodes and frames it counts are read, so a
recording interrupted while writing its next episode reads as the episodes before it.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import numbers
import warnings
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import InMemoryTable
from PIL import Image

from a1lib.data.errors import DatasetError
from a1lib.data.features import DEFAULT_FEATURES, check_features, hf_feature, must_be_finite
from a1lib.data.stats import aggregate_stats, check_stats
from a1lib.data.video import decode_frames, scan_video
from a1lib.data.writer import INCOMPLETE_MARKER

SUPPORTED_VERSIONS = ("v3.0", "v2.1")
REQUIRED_INFO = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "data_path")
# Columns of meta/episodes/*.parquet the reader needs (plus videos/<key>/... per video feature).
EPISODE_COLUMNS = ("episode_index", "length", "dataset_from_index", "dataset_to_index",
                   "data/chunk_index", "data/file_index")
VIDEO_EPISODE_COLUMNS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
# Integer fields of an episode row (v3.0 parquet or v2.1 JSONL) -> must they be positive?
EPISODE_COUNTS = {"episode_index": False, "length": True, "dataset_from_index": False, "dataset_to_index": False,
                  "data/chunk_index": False, "data/file_index": False}
MAX_FPS = 1000  # a camera rate beyond this is a corrupt info.json, not a dataset


def _require_file(path: Path) -> None:
    if not path.exists():
        raise DatasetError(f"{path}: missing")
    if not path.is_file():
        raise DatasetError(f"{path}: not a file")


def read_text(path: Path) -> str:
    _require_file(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text ({e})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None


def read_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: corrupt JSON ({e})") from e


def read_jsonl(path: Path, required: tuple[str, ...] = ()) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) per non-empty line; ``where`` is ``"<path>:<line>"`` for error messages."""
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{n}: corrupt JSON line ({e})") from e
            missing = [k for k in required if not isinstance(row, dict) or k not in row]
            if missing:
                raise DatasetError(f"{path}:{n}: missing field(s) {missing}")
            rows.append((f"{path}:{n}", row))
    return rows


def read_parquet(path: Path) -> pa.Table:
    """Read one parquet file, synchronously.

    Not ``pq.read_table``: that goes through ``pyarrow.dataset``, whose worker threads can drop the
    last reference to the schema after the call returned. When the schema holds a Python extension
    type (``datasets``' Array2D, e.g. ``scene.pose``) and the interpreter is already exiting (an
    error raised right after loading), that destructor needs the GIL, the thread is cancelled
    inside a ``noexcept`` frame and the process aborts: "terminate called without an active
    exception", exit 134.
    """
    _require_file(path)
    try:
        with pq.ParquetFile(path) as f:
            return f.read()
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: corrupt parquet ({e})") from e


def decode_image(cell: dict[str, Any] | None, root: Path, where: str,
                 shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A datasets.Image struct {bytes, path} -> uint8 (H, W, 3), checked against ``shape``."""
    if cell is None:
        raise DatasetError(f"{where}: image is null")
    data = cell.get("bytes")
    if data is None:
        if not cell.get("path"):
            raise DatasetError(f"{where}: image has neither bytes nor path")
        if not (root / cell["path"]).is_file():
            raise DatasetError(f"{where}: image has no bytes and its file {root / cell['path']} is missing")
        data = (root / cell["path"]).read_bytes()
    try:
        img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as e:  # PIL raises many types for bad data
        raise DatasetError(f"{where}: cannot decode image ({e})") from e
    if shape is not None and img.shape != tuple(shape):
        raise DatasetError(f"{where}: image is {list(img.shape)}, meta/info.json declares {list(shape)}")
    return img


def image_size(cell: dict[str, Any] | None, where: str) -> tuple[int, int] | None:
    """(height, width) from the image header alone (cheap), None when there are no bytes."""
    if cell is None or cell.get("bytes") is None:
        return None
    try:
        w, h = Image.open(io.BytesIO(cell["bytes"])).size
    except Exception as e:  # PIL raises many types for bad data
        raise DatasetError(f"{where}: cannot decode image ({e})") from e
    return h, w


def check_complete(root: Path) -> Path:
    """The path of meta/info.json, or a DatasetError if ``root`` is not a finished dataset (with the
    way out when the writer was interrupted)."""
    tmp, old = root.with_name(root.name + ".tmp"), root.with_name(root.name + ".old")
    if not root.exists():
        if tmp.exists() and not (tmp / INCOMPLETE_MARKER).exists() and (tmp / "meta" / "info.json").exists():
            drop = f" and delete the previous one with `rm -r {old}`" if old.exists() else ""
            hint = (f" ({tmp} is complete: finalize was interrupted while moving it into place; "
                    f"recover with `mv {tmp} {root}`{drop})")
        elif tmp.exists():
            back = f", or restore the previous dataset with `mv {old} {root}`" if old.exists() else ""
            hint = f" ({tmp} exists: the generation was interrupted; run it again{back})"
        elif old.exists():
            hint = f" ({old} holds the previous dataset: `mv {old} {root}` restores it)"
        else:
            hint = ""
        raise DatasetError(f"{root}: dataset directory does not exist{hint}")
    if (root / INCOMPLETE_MARKER).exists():
        raise DatasetError(f"{root}: incomplete dataset (still being written, or the writer was interrupted)")
    if root.name.endswith(".tmp"):
        final = root.with_name(root.name[: -len(".tmp")])
        raise DatasetError(f"{root}: incomplete dataset (a writer's temporary directory; if it is complete, "
                           f"finalize was interrupted: `mv {root} {final}`)")
    info = root / "meta" / "info.json"
    if not info.exists():
        raise DatasetError(f"{info}: missing: {root} is not a LeRobot dataset, or an incomplete one")
    return info


def as_count(v: Any, what: str, where: Any, positive: bool = False, most: int | None = None) -> int:
    """``v`` as an int (an integral float such as 30.0 passes; 0.5, "7", True do not), else a
    DatasetError naming ``where``."""
    v = v.item() if isinstance(v, np.generic) else v
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and float(v).is_integer()
    if not ok or v < (1 if positive else 0) or (most is not None and v > most):
        kind = ("a positive" if positive else "a non-negative") + " integer" + (f" up to {most}" if most else "")
        raise DatasetError(f"{where}: {what} must be {kind}, got {v!r}")
    return int(v)


def as_time(v: Any, what: str, where: Any) -> float:
    """``v`` as a finite number of seconds >= 0, else a DatasetError naming ``where``."""
    v = v.item() if isinstance(v, np.generic) else v
    if not (isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
        raise DatasetError(f"{where}: {what} must be a number >= 0, got {v!r}")
    return float(v)


def check_episode_row(e: dict[str, Any], where: str, video_keys: list[str]) -> None:
    """The types of one row of the episodes table (v3.0 parquet or v2.1 JSONL), in place."""
    for key, positive in EPISODE_COUNTS.items():
        if key in e:
            e[key] = as_count(e[key], key, where, positive)
    if "tasks" in e and not (isinstance(e["tasks"], list) and e["tasks"]
                             and all(isinstance(t, str) for t in e["tasks"])):
        raise DatasetError(f"{where}: tasks must be a list of strings, got {e['tasks']!r}")
    for key in video_keys:
        for c in ("chunk_index", "file_index"):
            if f"videos/{key}/{c}" in e:
                e[f"videos/{key}/{c}"] = as_count(e[f"videos/{key}/{c}"], f"videos/{key}/{c}", where)
        for c in ("from_timestamp", "to_timestamp"):
            if f"videos/{key}/{c}" in e:
                e[f"videos/{key}/{c}"] = as_time(e[f"videos/{key}/{c}"], f"videos/{key}/{c}", where)


def _first_bad(mask: np.ndarray) -> int:
    """Index of the first frame (row) where ``mask`` (N, ...) is True anywhere."""
    return int(np.argmax(mask.reshape(len(mask), -1).any(axis=1)))


class LeRobotDataset:
    """A LeRobot v3.0 / v2.1 dataset on disk, indexed by global frame index.

    Loading checks everything but the pixels (``verify_media`` decodes those): info.json fields
    and feature specs, the episodes and tasks tables (field types, episodes tiling the frames,
    video clip times), that every column has the declared type and shape, that float features are
    finite, task indices, index ranges, frame indices and timestamps, the stats, and the size of
    the first image of every data file. Every problem is a DatasetError naming the file.
    """

    def __init__(self, root: str | Path, video_tolerance_s: float | None = None):
        self.root = Path(root)
        info_path = check_complete(self.root)
        self.info: dict[str, Any] = read_json(info_path)
        if not isinstance(self.info, dict):
            raise DatasetError(f"{info_path}: expected a JSON object")
        missing = [k for k in REQUIRED_INFO if k not in self.info]
        if missing:
            raise DatasetError(f"{info_path}: missing field(s) {missing}")
        self.version = self.info["codebase_version"]
        if self.version not in SUPPORTED_VERSIONS:
            raise DatasetError(f"{info_path}: codebase_version {self.version!r} is not supported "
                               f"(need one of {SUPPORTED_VERSIONS})")
        self.fps = as_count(self.info["fps"], "fps", info_path, positive=True, most=MAX_FPS)
        try:
            self.features: dict[str, dict[str, Any]] = check_features(self.info["features"])
        except DatasetError as e:
            raise DatasetError(f"{info_path}: {e}") from None
        self.video_tolerance_s = video_tolerance_s if video_tolerance_s is not None else 0.4 / self.fps
        self.image_keys = [k for k, s in self.features.items() if s["dtype"] == "image"]
        self.video_keys = [k for k, s in self.features.items() if s["dtype"] == "video"]
        self.camera_keys = self.image_keys + self.video_keys
        self.numeric_keys = [k for k, s in self.features.items() if s["dtype"] not in ("image", "video")]
        for key in ("data_path", *(("video_path",) if self.video_keys else ())):
            if not isinstance(self.info.get(key), str):
                raise DatasetError(f"{info_path}: {key} must be a path template string, got {self.info.get(key)!r}")
        self._check_video_info(info_path)
        n_eps = as_count(self.info["total_episodes"], "total_episodes", info_path)
        n_frames = as_count(self.info["total_frames"], "total_frames", info_path)

        load_meta = self._load_v30_meta if self.version == "v3.0" else self._load_v21_meta
        # _episode_where: where each episode's row is (file, or file:line), for error messages
        self.tasks, self.episodes, self._episode_where, tables, files = load_meta(n_eps)
        self._check_episodes()
        for key in self.video_keys:  # cheap: that the files exist (verify_media decodes them)
            for path in dict.fromkeys(self._video_path(key, e) for e in self.episodes):
                if not path.is_file():
                    raise DatasetError(f"{path}: video file missing (feature {key!r})")
        table = self._check_columns(tables, files)
        if table.num_rows < n_frames:
            raise DatasetError(f"{self.root / 'data'}: {table.num_rows} frames on disk, meta/info.json says {n_frames}")
        table = table.slice(0, n_frames)  # rows past the commit point belong to an unfinished episode
        self._file_starts = np.cumsum([0] + [t.num_rows for t in tables])[:-1]  # first row of each file
        self._files = files
        self.hf = datasets.Dataset(InMemoryTable(table))
        self.columns: dict[str, np.ndarray] = self._numeric_columns(n_frames)
        self._check_rows(n_frames)
        self._check_frames()
        self.stats_note: str | None = None  # how the stats were made, when not from meta/stats.json
        self.stats = self._load_stats()

    # ---------------------------------------------------------------- loading
    def _path(self, template_key: str, **fields: Any) -> Path:
        try:
            return self.root / self.info[template_key].format(**fields)
        except (KeyError, IndexError, ValueError) as e:
            raise DatasetError(f"{self.root / 'meta/info.json'}: {template_key} {self.info[template_key]!r} "
                               f"cannot be filled with {sorted(fields)} ({e!r})") from None

    def _check_video_info(self, info_path: Path) -> None:
        for key in self.video_keys:
            vinfo = self.features[key].get("info") or {}
            size = (vinfo.get("video.height"), vinfo.get("video.width"))
            if None not in size and list(size) != self.features[key]["shape"][:2]:
                raise DatasetError(f"{info_path}: feature {key!r} declares shape {self.features[key]['shape']} "
                                   f"but its video info says {size[0]}x{size[1]}")

    def _load_v30_meta(self, n_eps: int):
        meta = self.root / "meta"
        tasks_path = meta / "tasks.parquet"
        tasks_table = read_parquet(tasks_path)
        if "task_index" not in tasks_table.column_names:
            raise DatasetError(f"{tasks_path}: no task_index column")
        df = tasks_table.to_pandas()
        tasks = self._tasks_in_order([(tasks_path, i, t) for i, t in zip(df["task_index"].tolist(), df.index)],
                                     tasks_path)
        ep_files = sorted((meta / "episodes").glob("chunk-*/file-*.parquet"))
        if not ep_files:
            raise DatasetError(f"{meta / 'episodes'}: no episode metadata files")
        required = list(EPISODE_COLUMNS) + [f"videos/{k}/{c}" for k in self.video_keys for c in VIDEO_EPISODE_COLUMNS]
        episodes = []
        for f in ep_files:
            t = read_parquet(f)
            missing = [c for c in required if c not in t.column_names]
            nulls = [c for c in required if c in t.column_names and t.column(c).null_count]
            if missing or nulls:
                raise DatasetError(f"{f}: " + "; ".join(
                    ([f"missing column(s) {missing}"] if missing else [])
                    + ([f"null values in {nulls}"] if nulls else [])))
            for e in t.to_pylist():
                where = f"{f}: episode {e['episode_index']!r}"
                check_episode_row(e, where, self.video_keys)
                episodes.append((where, e))
        episodes = sorted(((w, e) for w, e in episodes if e["episode_index"] < n_eps),
                          key=lambda we: we[1]["episode_index"])
        wheres, episodes = [w for w, _ in episodes], [e for _, e in episodes]
        if [e["episode_index"] for e in episodes] != list(range(n_eps)):
            raise DatasetError(f"{meta / 'episodes'}: has episodes {[e['episode_index'] for e in episodes][:10]}..., "
                               f"meta/info.json says {n_eps}")
        tables, files, seen = [], [], set()
        for e in episodes:
            pos = (e["data/chunk_index"], e["data/file_index"])
            if pos not in seen:
                seen.add(pos)
                path = self._path("data_path", chunk_index=pos[0], file_index=pos[1])
                tables.append(read_parquet(path))
                files.append(path)
        return tasks, episodes, wheres, tables, files

    @staticmethod
    def _tasks_in_order(rows: list[tuple[Any, Any, Any]], path: Path) -> list[str]:
        """Tasks as a list whose position is the task_index, from (where, task_index, text) rows:
        the indices must be exactly 0..n-1, the texts unique strings."""
        idx = [as_count(i, "task_index", where) for where, i, _ in rows]
        if sorted(idx) != list(range(len(idx))):
            raise DatasetError(f"{path}: task_index must be 0..{len(idx) - 1}, each once; got {sorted(idx)[:20]}")
        for where, _, text in rows:
            if not isinstance(text, str):
                raise DatasetError(f"{where}: task must be a string, got {text!r}")
        by_index = {i: text for i, (_, _, text) in zip(idx, rows)}
        tasks = [by_index[i] for i in range(len(idx))]
        first: dict[str, int] = {}
        for i, text in enumerate(tasks):  # a text names one task: two indices for it split its episodes
            if text in first:
                raise DatasetError(f"{path}: task {text!r} is listed twice (task_index {first[text]} and {i})")
            first[text] = i
        return tasks

    def _load_v21_meta(self, n_eps: int):
        meta = self.root / "meta"
        tasks = self._tasks_in_order([(where, r["task_index"], r["task"]) for where, r in
                                      read_jsonl(meta / "tasks.jsonl", required=("task_index", "task"))],
                                     meta / "tasks.jsonl")
        rows = read_jsonl(meta / "episodes.jsonl", required=("episode_index", "tasks", "length"))
        for where, r in rows:
            check_episode_row(r, where, [])
        rows = sorted(rows, key=lambda wr: wr[1]["episode_index"])[:n_eps]
        if len(rows) != n_eps:
            raise DatasetError(f"{meta / 'episodes.jsonl'}: {len(rows)} episodes, meta/info.json says {n_eps}")
        if [r["episode_index"] for _, r in rows] != list(range(n_eps)):
            raise DatasetError(f"{meta / 'episodes.jsonl'}: has episodes "
                               f"{[r['episode_index'] for _, r in rows][:10]}..., "
                               f"expected 0..{n_eps - 1}, each once")
        stats_path = meta / "episodes_stats.jsonl"
        ep_stats = {}
        for where, r in read_jsonl(stats_path, required=("episode_index", "stats")) if stats_path.exists() else []:
            ep_stats[as_count(r["episode_index"], "episode_index", where)] = check_stats(r["stats"], where,
                                                                                         self.features)
        chunks_size = as_count(self.info.get("chunks_size", 1000), "chunks_size", meta / "info.json", positive=True)
        episodes, tables, files, start = [], [], [], 0
        for _, r in rows:
            ep = r["episode_index"]
            e = {"episode_index": ep, "tasks": r["tasks"], "length": r["length"],
                 "dataset_from_index": start, "dataset_to_index": start + r["length"]}
            for key in self.video_keys:
                e[f"videos/{key}/from_timestamp"] = 0.0
                e[f"videos/{key}/to_timestamp"] = r["length"] / self.fps
                e[f"videos/{key}/path"] = str(self._path("video_path", episode_chunk=ep // chunks_size, video_key=key,
                                                         episode_index=ep).relative_to(self.root))
            for key, st in ep_stats.get(ep, {}).items():
                for name, value in st.items():
                    e[f"stats/{key}/{name}"] = value
            episodes.append(e)
            start += r["length"]
            path = self._path("data_path", episode_chunk=ep // chunks_size, episode_index=ep)
            tables.append(read_parquet(path))
            files.append(path)
        return tasks, episodes, [where for where, _ in rows], tables, files

    def _check_columns(self, tables: list[pa.Table], files: list[Path]) -> pa.Table:
        """Every declared feature is a column of the declared type and shape (cast where lossless)."""
        fixed = []
        for table, path in zip(tables, files):
            cols, names = [], []
            for key, spec in self.features.items():
                if spec["dtype"] == "video":
                    continue
                if key not in table.column_names:
                    raise DatasetError(f"{path}: feature {key!r} of meta/info.json has no column "
                                       f"(columns: {table.column_names})")
                col = table.column(key)
                want = datasets.Features({key: hf_feature(spec)}).arrow_schema.field(key).type
                # Array2D/3D types compare equal whatever their shapes: compare the shapes themselves,
                # or a [8, 3] column would be silently reshaped to a declared [3, 8].
                stored = getattr(col.type, "shape", None)
                if stored is not None and list(stored) != spec["shape"]:
                    raise DatasetError(f"{path}: column {key!r} is stored with shape {list(stored)}, "
                                       f"but meta/info.json declares {spec['shape']}")
                if col.type != want:
                    try:
                        col = col.cast(want)
                    except (pa.ArrowException, ValueError) as e:
                        raise DatasetError(
                            f"{path}: column {key!r} has type {col.type}, but meta/info.json declares "
                            f"dtype {spec['dtype']} shape {spec['shape']} ({e})") from None
                if spec["dtype"] == "image" and len(col):
                    size = image_size(col[0].as_py(), f"{path} {key}[0]")
                    if size is not None and list(size) != spec["shape"][:2]:
                        raise DatasetError(f"{path}: column {key!r} holds {size[0]}x{size[1]} images, "
                                           f"but meta/info.json declares {spec['shape']}")
                cols.append(col)
                names.append(key)
            fixed.append(pa.table(cols, names=names))
        if not fixed:
            raise DatasetError(f"{self.root / 'data'}: no data files")
        out = pa.concat_tables(fixed)
        meta = {b"huggingface": json.dumps({"info": {"features": datasets.Features(
            {k: hf_feature(s) for k, s in self.features.items() if s["dtype"] != "video"}).to_dict()}}).encode()}
        return out.replace_schema_metadata(meta)

    def file_of(self, i: int) -> Path:
        """The data file that holds global frame ``i``."""
        return self._files[int(np.searchsorted(self._file_starts, i, side="right")) - 1]

    def _numeric_columns(self, n_frames: int) -> dict[str, np.ndarray]:
        """Each numeric column as (N, *shape), checked: declared shape, finite floats."""
        try:
            numeric = self.hf.with_format("numpy", columns=self.numeric_keys)[:] if n_frames else {}
        except (pa.ArrowException, ValueError, TypeError) as e:
            raise DatasetError(f"{self.root / 'data'}: cannot read the numeric columns ({e})") from None
        columns = {}
        for key in self.numeric_keys:
            spec = self.features[key]
            shape = tuple(spec["shape"])
            arr = np.asarray(numeric[key]) if n_frames else np.zeros((0, *shape))
            stored = (n_frames,) if shape == (1,) else (n_frames, *shape)  # shape [1] is a scalar column
            if arr.dtype == object or arr.shape != stored:
                where = self.file_of(0) if n_frames else self.root / "data"
                raise DatasetError(f"{where}: column {key!r} holds arrays of shape {list(arr.shape[1:])} "
                                   f"(or ragged), meta/info.json declares {spec['shape']}")
            if must_be_finite(spec) and not np.isfinite(arr).all():
                i = _first_bad(~np.isfinite(arr))
                raise DatasetError(f"{self.file_of(i)}: feature {key!r} has NaN or inf at frame {i} "
                                   f"(episode {int(np.asarray(numeric['episode_index'])[i])}): {arr[i].tolist()}")
            columns[key] = arr if key in DEFAULT_FEATURES else arr.reshape(n_frames, *shape)
        return columns

    def _check_episodes(self) -> None:
        """The episodes table alone: each episode covers the rows right after the one before it
        (from row 0, no gap, no overlap), and its video clip lasts its length, within half a frame,
        without overlapping another clip of the same file."""
        end, half = 0, 0.5 / self.fps
        clips: dict[tuple[str, Path], list[tuple[float, float, int, str]]] = {}  # (key, file) -> (from, to, ep, where)
        for e, where in zip(self.episodes, self._episode_where):
            ep, lo, hi, n = e["episode_index"], e["dataset_from_index"], e["dataset_to_index"], e["length"]
            if lo != end:
                raise DatasetError(f"{where}: covers rows {lo}:{hi}, but the episodes before it end at row {end} "
                                   "(episodes must cover the frames in order, without gaps)")
            if hi - lo != n:
                raise DatasetError(f"{where}: rows {lo}:{hi} disagree with its length {n}")
            end = hi
            for key in self.video_keys:
                t0, t1 = e[f"videos/{key}/from_timestamp"], e[f"videos/{key}/to_timestamp"]
                if abs((t1 - t0) - n / self.fps) > half:
                    raise DatasetError(f"{where}: the video clip {t0:g}..{t1:g} s is {t1 - t0:g} s, "
                                       f"but the episode has {n} frames ({n / self.fps:g} s at {self.fps} fps)")
                clips.setdefault((key, self._video_path(key, e)), []).append((t0, t1, ep, where))
        for (key, path), spans in clips.items():
            spans.sort()
            for (a0, a1, a, _), (b0, _, _, where) in itertools.pairwise(spans):
                if b0 < a1 - half:
                    raise DatasetError(f"{where}: videos/{key}/from_timestamp {b0:g} overlaps episode {a} "
                                       f"({a0:g}..{a1:g} s) in {path}")

    def _check_rows(self, n_frames: int) -> None:
        index = self.columns["index"]
        if not np.array_equal(index, np.arange(n_frames)):
            raise DatasetError(f"{self.root / 'data'}: column 'index' is not 0..{n_frames - 1} in order")
        self.episode_of = self.columns["episode_index"].astype(np.int64)  # (N,)
        if self.episodes and self.episodes[-1]["dataset_to_index"] != n_frames:
            raise DatasetError(f"{self.root}: episodes cover {self.episodes[-1]['dataset_to_index']} frames, "
                               f"meta/info.json says {n_frames}")
        for e in self.episodes:  # _check_episodes: they tile 0..n_frames
            lo, hi = e["dataset_from_index"], e["dataset_to_index"]
            wrong = self.episode_of[lo:hi] != e["episode_index"]
            if wrong.any():
                i = lo + _first_bad(wrong)
                raise DatasetError(f"{self.file_of(i)}: episode_index {self.episode_of[i]} at frame {i}, "
                                   f"but the episodes table puts rows {lo}:{hi} in episode {e['episode_index']}")
        task_index = self.columns["task_index"]
        bad = (task_index < 0) | (task_index >= len(self.tasks))
        if bad.any():
            i = _first_bad(bad)
            raise DatasetError(f"{self.file_of(i)}: task_index {int(task_index[i])} at frame {i} is not in "
                               f"meta/tasks ({len(self.tasks)} tasks)")

    def _check_frames(self) -> None:
        """Within each episode, frame_index counts 0..L-1 and timestamp is frame_index / fps within
        half a frame (so timestamps start at 0 and increase): what the video decoder seeks to."""
        starts = np.array([e["dataset_from_index"] for e in self.episodes], np.int64)[self.episode_of]
        frame_index, expected = self.columns["frame_index"], np.arange(len(self.episode_of)) - starts
        if not np.array_equal(frame_index, expected):
            i = _first_bad(frame_index != expected)
            n = self.episodes[self.episode_of[i]]["length"]
            raise DatasetError(f"{self.file_of(i)}: frame_index {int(frame_index[i])} at frame {i} (episode "
                               f"{self.episode_of[i]}), expected {expected[i]}: frame_index must count 0..{n - 1}")
        t, due = self.columns["timestamp"].astype(np.float64), expected / self.fps
        bad = (t < 0) | (np.abs(t - due) >= 0.5 / self.fps)
        if bad.any():
            i = _first_bad(bad)
            what = "is negative" if t[i] < 0 else f"is not frame_index / fps = {due[i]:g} within half a frame"
            raise DatasetError(f"{self.file_of(i)}: timestamp {t[i]:.6g} at frame {i} (episode {self.episode_of[i]}) "
                               f"{what}: timestamps count up by 1/fps from 0 in each episode")

    def _load_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """meta/stats.json, checked; without it (v2.1, or a v3.0 dataset that lost it) the stats
        aggregated from the per-episode stats, as LeRobot does, and ``stats_note`` says so."""
        path = self.root / "meta" / "stats.json"
        if path.exists():
            return check_stats(read_json(path), path, self.features)
        stats = {}
        for key in self.features:
            eps = []
            for e, where in zip(self.episodes, self._episode_where):
                st = {k.split("/")[-1]: v for k, v in e.items() if k.startswith(f"stats/{key}/")}
                eps.append(check_stats({key: st}, where, self.features)[key] if st else None)
            if eps and all(eps):
                try:
                    stats[key] = aggregate_stats(eps)
                except ValueError as e:  # per-episode stats of different shapes
                    raise DatasetError(f"{self._episode_where[0]}: per-episode stats of {key!r} "
                                       f"do not combine ({e})") from None
        if self.version != "v2.1" or not stats:  # v2.1 has no stats.json: aggregating is its normal way
            source = "the per-episode stats" if stats else "nothing: there are no per-episode stats either"
            self.stats_note = f"{path} is missing: stats aggregated from {source}"
            warnings.warn(self.stats_note, stacklevel=3)
        return stats

    # ---------------------------------------------------------------- access
    def __len__(self) -> int:
        return len(self.episode_of)

    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    def episode_frames(self, ep: int) -> range:
        e = self.episodes[ep]
        return range(e["dataset_from_index"], e["dataset_to_index"])

    def task_of(self, i: int) -> str:
        return self.tasks[int(self.columns["task_index"][i])]

    def get_frames(self, key: str, indices) -> np.ndarray:
        """Frames of camera ``key`` at global ``indices`` -> uint8 (N, H, W, 3)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if key not in self.camera_keys:
            raise KeyError(f"{key!r} is not a camera feature; have {self.camera_keys}")
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"frame index out of range 0..{len(self) - 1}: {idx.tolist()}")
        if self.features[key]["dtype"] == "image":
            column = self.hf.data.table.column(key)
            cells = [column[int(i)].as_py() for i in idx]  # O(1) per row; take() copies the whole column
            shape = tuple(self.features[key]["shape"])
            return np.stack([decode_image(c, self.root, f"{self.file_of(i)} {key}[{i}]", shape)
                             for c, i in zip(cells, idx)])
        return self._video_frames(key, idx)

    def _video_frames(self, key: str, idx: np.ndarray) -> np.ndarray:
        out: list[np.ndarray | None] = [None] * len(idx)
        groups: dict[Path, list[int]] = {}  # one seek + decode per file
        times = np.zeros(len(idx))
        for n, i in enumerate(idx):
            e = self.episodes[self.episode_of[i]]
            times[n] = float(e[f"videos/{key}/from_timestamp"]) + float(self.columns["timestamp"][i])
            groups.setdefault(self._video_path(key, e), []).append(n)
        shape = tuple(self.features[key]["shape"])
        for path, ns in groups.items():
            frames = decode_frames(path, times[ns].tolist(), self.video_tolerance_s)
            if frames.shape[1:] != shape:
                raise DatasetError(f"{path}: frames are {list(frames.shape[1:])}, "
                                   f"meta/info.json declares {list(shape)}")
            for n, f in zip(ns, frames):
                out[n] = f
        return np.stack(out)

    def _video_path(self, key: str, e: dict[str, Any]) -> Path:
        if f"videos/{key}/path" in e:  # v2.1
            return self.root / e[f"videos/{key}/path"]
        return self._path("video_path", video_key=key, chunk_index=e[f"videos/{key}/chunk_index"],
                          file_index=e[f"videos/{key}/file_index"])

    def verify_media(self, batch: int = 512) -> int:
        """Decode every image and every video frame (``a1 data info --deep``): a corrupt PNG, a cut
        MP4 or a frame of the wrong size raises DatasetError naming the file. Returns the number of
        frames checked."""
        checked = 0
        for key in self.image_keys:
            shape, column = tuple(self.features[key]["shape"]), self.hf.data.table.column(key)
            for lo in range(0, len(self), batch):
                for i, cell in enumerate(column.slice(lo, batch).to_pylist(), lo):
                    decode_image(cell, self.root, f"{self.file_of(i)} {key}[{i}]", shape)
                checked += min(batch, len(self) - lo)
        for key in self.video_keys:
            shape, wanted = tuple(self.features[key]["shape"]), {}
            for e in self.episodes:  # the time of every frame, per file
                frames = self.episode_frames(e["episode_index"])
                t = float(e[f"videos/{key}/from_timestamp"]) + self.columns["timestamp"][frames.start:frames.stop]
                wanted.setdefault(self._video_path(key, e), []).append(t)
            for path, times in wanted.items():
                want = np.concatenate(times)
                have = np.sort(scan_video(path, shape))
                if len(have) == 0:
                    raise DatasetError(f"{path}: no frames decoded")
                pos = np.searchsorted(have, want)  # the nearest decoded frame is at pos - 1 or pos
                before, after = have[np.clip(pos - 1, 0, len(have) - 1)], have[np.clip(pos, 0, len(have) - 1)]
                err = np.minimum(np.abs(before - want), np.abs(after - want))
                if np.any(err > self.video_tolerance_s):
                    first = float(want[np.argmax(err > self.video_tolerance_s)])
                    raise DatasetError(f"{path}: no frame within {self.video_tolerance_s:.4f} s of t={first:.3f} s "
                                       f"({len(have)} frames decoded, last at {have[-1]:.3f} s): "
                                       "the file is cut or shorter than its episodes table says")
                checked += len(want)
        return checked

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} out of range 0..{len(self) - 1}")
        item: dict[str, Any] = {k: self.columns[k][i] for k in self.numeric_keys}
        for key in self.camera_keys:
            item[key] = self.get_frames(key, [i])[0]
        item["task"] = self.task_of(i)
        return item

    def __repr__(self) -> str:
        return (f"LeRobotDataset({str(self.root)!r}, {self.version}, episodes={self.num_episodes}, "
                f"frames={len(self)}, fps={self.fps}, tasks={len(self.tasks)})")
