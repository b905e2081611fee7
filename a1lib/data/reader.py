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
import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import InMemoryTable
from PIL import Image

from a1lib.data.errors import DatasetError
from a1lib.data.features import DEFAULT_FEATURES, hf_feature
from a1lib.data.stats import aggregate_stats, from_jsonable
from a1lib.data.writer import INCOMPLETE_MARKER

SUPPORTED_VERSIONS = ("v3.0", "v2.1")
REQUIRED_INFO = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "data_path")


def read_json(path: Path) -> Any:
    if not path.exists():
        raise DatasetError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: corrupt JSON ({e})") from e


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise DatasetError(f"{path}: missing")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{n}: corrupt JSON line ({e})") from e
    return rows


def read_parquet(path: Path) -> pa.Table:
    if not path.exists():
        raise DatasetError(f"{path}: missing")
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(f"{path}: corrupt parquet ({e})") from e


def decode_image(cell: dict[str, Any] | None, root: Path, where: str) -> np.ndarray:
    """A datasets.Image struct {bytes, path} -> uint8 (H, W, 3)."""
    if cell is None:
        raise DatasetError(f"{where}: image is null")
    data = cell.get("bytes")
    if data is None:
        if not cell.get("path"):
            raise DatasetError(f"{where}: image has neither bytes nor path")
        data = (root / cell["path"]).read_bytes()
    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    except Exception as e:  # PIL raises many types for bad data
        raise DatasetError(f"{where}: cannot decode image ({e})") from e


def check_complete(root: Path) -> Path:
    """The path of meta/info.json, or a DatasetError if ``root`` is not a finished dataset."""
    tmp = root.with_name(root.name + ".tmp")
    if not root.exists():
        hint = f" ({tmp} exists: the generation was interrupted; run it again)" if tmp.exists() else ""
        raise DatasetError(f"{root}: dataset directory does not exist{hint}")
    if (root / INCOMPLETE_MARKER).exists() or root.name.endswith(".tmp"):
        raise DatasetError(f"{root}: incomplete dataset (still being written, or the writer was interrupted)")
    info = root / "meta" / "info.json"
    if not info.exists():
        raise DatasetError(f"{info}: missing: {root} is not a LeRobot dataset, or an incomplete one")
    return info


class LeRobotDataset:
    """A LeRobot v3.0 / v2.1 dataset on disk, indexed by global frame index."""

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
            raise DatasetError(f"{info_path}: codebase_version {self.version!r} is not supported (need one of {SUPPORTED_VERSIONS})")
        self.fps = int(self.info["fps"])
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.video_tolerance_s = video_tolerance_s if video_tolerance_s is not None else 0.4 / self.fps
        self.image_keys = [k for k, s in self.features.items() if s["dtype"] == "image"]
        self.video_keys = [k for k, s in self.features.items() if s["dtype"] == "video"]
        self.camera_keys = self.image_keys + self.video_keys
        self.numeric_keys = [k for k, s in self.features.items() if s["dtype"] not in ("image", "video")]
        n_eps, n_frames = int(self.info["total_episodes"]), int(self.info["total_frames"])

        if self.version == "v3.0":
            self.tasks, self.episodes, tables, files = self._load_v30_meta(n_eps)
        else:
            self.tasks, self.episodes, tables, files = self._load_v21_meta(n_eps)
        table = self._check_columns(tables, files)
        if table.num_rows < n_frames:
            raise DatasetError(f"{self.root / 'data'}: {table.num_rows} frames on disk, meta/info.json says {n_frames}")
        table = table.slice(0, n_frames)  # rows past the commit point belong to an unfinished episode
        self.hf = datasets.Dataset(InMemoryTable(table))
        numeric = self.hf.with_format("numpy", columns=self.numeric_keys)[:] if n_frames else {}
        self.columns: dict[str, np.ndarray] = {}
        for key in self.numeric_keys:
            shape = tuple(self.features[key]["shape"])
            arr = np.asarray(numeric[key]) if n_frames else np.zeros((0, *shape))
            self.columns[key] = arr if key in DEFAULT_FEATURES else arr.reshape(len(arr), *shape)
        self._check_rows(n_frames)
        self.stats = self._load_stats()

    # ---------------------------------------------------------------- loading
    def _load_v30_meta(self, n_eps: int):
        meta = self.root / "meta"
        tasks_table = read_parquet(meta / "tasks.parquet")
        df = tasks_table.to_pandas()
        if "task_index" not in df.columns:
            raise DatasetError(f"{meta / 'tasks.parquet'}: no task_index column")
        by_index = {int(i): str(t) for t, i in zip(df.index, df["task_index"])}
        tasks = [by_index[i] for i in sorted(by_index)]
        ep_files = sorted((meta / "episodes").glob("chunk-*/file-*.parquet"))
        if not ep_files:
            raise DatasetError(f"{meta / 'episodes'}: no episode metadata files")
        episodes = []
        for f in ep_files:
            episodes += read_parquet(f).to_pylist()
        episodes = sorted((e for e in episodes if e["episode_index"] < n_eps), key=lambda e: e["episode_index"])
        if [e["episode_index"] for e in episodes] != list(range(n_eps)):
            raise DatasetError(f"{meta / 'episodes'}: has episodes {[e['episode_index'] for e in episodes][:10]}..., meta/info.json says {n_eps}")
        tables, files, seen = [], [], set()
        for e in episodes:
            pos = (e["data/chunk_index"], e["data/file_index"])
            if pos not in seen:
                seen.add(pos)
                path = self.root / self.info["data_path"].format(chunk_index=pos[0], file_index=pos[1])
                tables.append(read_parquet(path))
                files.append(path)
        return tasks, episodes, tables, files

    def _load_v21_meta(self, n_eps: int):
        meta = self.root / "meta"
        task_rows = read_jsonl(meta / "tasks.jsonl")
        tasks = [r["task"] for r in sorted(task_rows, key=lambda r: r["task_index"])]
        rows = sorted(read_jsonl(meta / "episodes.jsonl"), key=lambda r: r["episode_index"])[:n_eps]
        if len(rows) != n_eps:
            raise DatasetError(f"{meta / 'episodes.jsonl'}: {len(rows)} episodes, meta/info.json says {n_eps}")
        stats_path = meta / "episodes_stats.jsonl"
        ep_stats = {r["episode_index"]: r["stats"] for r in read_jsonl(stats_path)} if stats_path.exists() else {}
        chunks_size = int(self.info.get("chunks_size", 1000))
        episodes, tables, files, start = [], [], [], 0
        for r in rows:
            ep = r["episode_index"]
            e = {"episode_index": ep, "tasks": r["tasks"], "length": r["length"],
                 "dataset_from_index": start, "dataset_to_index": start + r["length"]}
            for key in self.video_keys:
                e[f"videos/{key}/from_timestamp"] = 0.0
                e[f"videos/{key}/to_timestamp"] = r["length"] / self.fps
                e[f"videos/{key}/path"] = self.info["video_path"].format(
                    episode_chunk=ep // chunks_size, video_key=key, episode_index=ep)
            for key, st in ep_stats.get(ep, {}).items():
                for name, value in st.items():
                    e[f"stats/{key}/{name}"] = value
            episodes.append(e)
            start += r["length"]
            path = self.root / self.info["data_path"].format(episode_chunk=ep // chunks_size, episode_index=ep)
            tables.append(read_parquet(path))
            files.append(path)
        return tasks, episodes, tables, files

    def _check_columns(self, tables: list[pa.Table], files: list[Path]) -> pa.Table:
        """Every declared feature is a column of the declared type (cast where lossless)."""
        fixed = []
        for table, path in zip(tables, files):
            cols, names = [], []
            for key, spec in self.features.items():
                if spec["dtype"] == "video":
                    continue
                if key not in table.column_names:
                    raise DatasetError(f"{path}: feature {key!r} of meta/info.json has no column (columns: {table.column_names})")
                col = table.column(key)
                want = datasets.Features({key: hf_feature(spec)}).arrow_schema.field(key).type
                if col.type != want:
                    try:
                        col = col.cast(want)
                    except (pa.ArrowException, ValueError) as e:
                        raise DatasetError(
                            f"{path}: column {key!r} has type {col.type}, but meta/info.json declares "
                            f"dtype {spec['dtype']} shape {spec['shape']} ({e})") from e
                cols.append(col)
                names.append(key)
            fixed.append(pa.table(cols, names=names))
        if not fixed:
            raise DatasetError(f"{self.root / 'data'}: no data files")
        out = pa.concat_tables(fixed)
        meta = {b"huggingface": json.dumps({"info": {"features": datasets.Features(
            {k: hf_feature(s) for k, s in self.features.items() if s["dtype"] != "video"}).to_dict()}}).encode()}
        return out.replace_schema_metadata(meta)

    def _check_rows(self, n_frames: int) -> None:
        index = self.columns["index"]
        if not np.array_equal(index, np.arange(n_frames)):
            raise DatasetError(f"{self.root / 'data'}: column 'index' is not 0..{n_frames - 1} in order")
        self.episode_of = self.columns["episode_index"].astype(np.int64)  # (N,)
        for e in self.episodes:
            lo, hi = e["dataset_from_index"], e["dataset_to_index"]
            if hi - lo != e["length"] or not np.all(self.episode_of[lo:hi] == e["episode_index"]):
                raise DatasetError(f"{self.root}: episode {e['episode_index']} rows {lo}:{hi} disagree with the episodes metadata")
        if self.episodes and self.episodes[-1]["dataset_to_index"] != n_frames:
            raise DatasetError(f"{self.root}: episodes cover {self.episodes[-1]['dataset_to_index']} frames, meta/info.json says {n_frames}")

    def _load_stats(self) -> dict[str, dict[str, np.ndarray]]:
        path = self.root / "meta" / "stats.json"
        if path.exists():
            return from_jsonable(read_json(path))
        stats = {}
        for key in self.features:  # v2.1 without stats.json: aggregate the episode stats
            eps = [{k.split("/")[-1]: np.asarray(v) for k, v in e.items() if k.startswith(f"stats/{key}/")} for e in self.episodes]
            if eps and all(eps):
                stats[key] = aggregate_stats(eps)
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
            cells = self.hf.data.table.column(key).take(pa.array(idx)).to_pylist()
            return np.stack([decode_image(c, self.root, f"{self.root} {key}[{i}]") for c, i in zip(cells, idx)])
        return self._video_frames(key, idx)

    def _video_frames(self, key: str, idx: np.ndarray) -> np.ndarray:
        from a1lib.data.video import decode_frames

        out: list[np.ndarray | None] = [None] * len(idx)
        groups: dict[Path, list[int]] = {}  # one seek + decode per file
        times = np.zeros(len(idx))
        for n, i in enumerate(idx):
            e = self.episodes[self.episode_of[i]]
            times[n] = float(e[f"videos/{key}/from_timestamp"]) + float(self.columns["timestamp"][i])
            if f"videos/{key}/path" in e:
                rel = e[f"videos/{key}/path"]
            else:
                rel = self.info["video_path"].format(
                    video_key=key, chunk_index=e[f"videos/{key}/chunk_index"], file_index=e[f"videos/{key}/file_index"])
            groups.setdefault(self.root / rel, []).append(n)
        for path, ns in groups.items():
            frames = decode_frames(path, times[ns].tolist(), self.video_tolerance_s)
            for n, f in zip(ns, frames):
                out[n] = f
        return np.stack(out)

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
