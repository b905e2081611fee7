"""Write episodes as a LeRobotDataset v3.0 directory.

    root/
      meta/info.json                              format version, fps, features, totals, path templates
      meta/stats.json                             per-feature min/max/mean/std/count/quantiles
      meta/tasks.parquet                          task string (pandas index) -> task_index
      meta/episodes/chunk-000/file-000.parquet    one row per episode: length, file, index range, stats
      data/chunk-000/file-000.parquet             one row per frame, many episodes per file
      videos/<key>/chunk-000/file-000.mp4         only for ``video`` features

Usage::

    w = LeRobotWriter("data/sim", fps=10, features={...}, robot_type="a1sim")
    for each frame: w.add_frame({"observation.image": img, "observation.state": s, "action": a})
    w.save_episode(task="sort the parts")
    w.finalize()

Two ways to be safe against interruption:

* ``durable=False`` (dataset generation): everything goes into the sibling directory
  ``<root>.tmp`` and ``finalize()`` renames it to ``root``. An interrupted run leaves only the
  ``.tmp`` directory, which the reader refuses as incomplete.
* ``durable=True`` (robot recording): after every ``save_episode`` each changed file is rewritten
  through ``a1lib.io.atomic_write`` (temp file + ``os.replace``, fsynced), ``meta/info.json``
  last. ``info.json`` is the commit point: the reader trusts only the episodes it counts, so a
  crash mid-episode loses that episode and nothing before it.

Same inputs give the same bytes: no wall-clock times, no random names, deterministic encoders.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from a1lib.data.errors import DatasetError
from a1lib.data.features import DEFAULT_FEATURES, check_value, hf_features, is_visual, with_defaults
from a1lib.data.stats import aggregate_stats, image_stats, numeric_stats, sample_indices, to_jsonable
from a1lib.data.video import VideoEncoder
from a1lib.io import atomic_write, atomic_write_json, swap_directory

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INCOMPLETE_MARKER = ".incomplete"  # present while a non-durable dataset is being written
IMAGE_NAME = "frame-{frame_index:06d}.png"


def encode_png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


class LeRobotWriter:
    """Accumulates frames into episodes and writes them in the LeRobot v3.0 layout."""

    def __init__(
        self,
        root: str | Path,
        fps: int,
        features: dict[str, dict[str, Any]],
        robot_type: str | None = None,
        durable: bool = False,
        overwrite: bool = False,
        chunks_size: int = 1000,
        data_files_size_in_mb: float = 100,
        video_files_size_in_mb: float = 200,
        video_codec: str | None = None,
    ):
        self.root = Path(root)
        self.fps = int(fps)
        self.features = with_defaults(features)
        self.robot_type = robot_type
        self.durable = durable
        self.overwrite = overwrite
        self.chunks_size = int(chunks_size)
        self.data_files_size_in_mb = data_files_size_in_mb
        self.video_files_size_in_mb = video_files_size_in_mb
        self.video_codec = video_codec
        self.hf = hf_features(self.features)
        self.schema = self.hf.arrow_schema  # carries the `huggingface` metadata key
        self.user_keys = [k for k in self.features if k not in DEFAULT_FEATURES]
        self.image_keys = [k for k, s in self.features.items() if s["dtype"] == "image"]
        self.video_keys = [k for k, s in self.features.items() if s["dtype"] == "video"]
        self.numeric_keys = [k for k, s in self.features.items() if not is_visual(s)]

        if (self.root / "meta" / "info.json").exists() and not overwrite:
            raise DatasetError(f"{self.root}: a dataset already exists here (pass overwrite=True to replace it)")
        if durable:
            if self.root.exists() and any(self.root.iterdir()) and not overwrite:
                raise DatasetError(f"{self.root}: directory is not empty")
            if self.root.exists() and overwrite:
                shutil.rmtree(self.root)
            self.dir = self.root
        else:
            self.dir = self.root.with_name(self.root.name + ".tmp")
            if self.dir.exists():
                shutil.rmtree(self.dir)  # left by an interrupted run: never complete, safe to drop
        self.dir.mkdir(parents=True, exist_ok=True)
        if not durable:
            (self.dir / INCOMPLETE_MARKER).write_text("being written by LeRobotWriter; not a dataset yet\n")

        self.tasks: dict[str, int] = {}
        self.episodes: list[dict[str, Any]] = []
        self.total_frames = 0
        self.buffer: list[dict[str, np.ndarray]] = []
        # The data file being filled: its (chunk, file) and the episode tables it holds.
        self.data_pos = (0, 0)
        self.data_tables: list[pa.Table] = []
        self.data_bytes = 0
        # Video files being filled, per key: (chunk, file), encoder.
        self.video_pos = {k: (0, 0) for k in self.video_keys}
        self.video_enc: dict[str, Any] = {}
        self.values: dict[str, list[np.ndarray]] = {k: [] for k in self.numeric_keys}  # for exact stats
        self.visual_episode_stats: dict[str, list[dict[str, np.ndarray]]] = {
            k: [] for k in self.image_keys + self.video_keys}
        self.finalized = False

    # ---------------------------------------------------------------- frames and episodes
    def add_frame(self, frame: dict[str, Any]) -> None:
        """Buffer one frame. Keys: every user feature (``timestamp`` optional)."""
        if self.finalized:
            raise DatasetError(f"{self.root}: writer already finalized")
        extra = sorted(set(frame) - set(self.user_keys) - {"timestamp"})
        if extra:
            raise DatasetError(f"frame has unknown key(s) {extra}; features are {self.user_keys} "
                               f"(the writer fills {list(DEFAULT_FEATURES)})")
        missing = [k for k in self.user_keys if k not in frame]
        if missing:
            raise DatasetError(f"frame {len(self.buffer)} is missing feature(s) {missing}")
        row = {k: check_value(k, self.features[k], frame[k]) for k in self.user_keys}
        t = len(self.buffer)
        ts = frame.get("timestamp", t / self.fps)
        row["timestamp"] = np.asarray([ts], dtype=np.float32)
        self.buffer.append(row)

    def clear_episode(self) -> None:
        """Drop the frames buffered since the last save_episode (e.g. a failed take)."""
        self.buffer = []

    def save_episode(self, task: str) -> int:
        """Write the buffered frames as one episode with instruction ``task``; returns its index."""
        if not self.buffer:
            raise DatasetError("save_episode: no frames were added for this episode")
        if not isinstance(task, str) or not task:
            raise DatasetError(f"save_episode: task must be a non-empty string, got {task!r}")
        ep = len(self.episodes)
        T = len(self.buffer)
        task_index = self.tasks.setdefault(task, len(self.tasks))
        start = self.total_frames
        cols: dict[str, np.ndarray] = {
            k: np.stack([r[k] for r in self.buffer]) for k in self.user_keys + ["timestamp"]
        }  # each (T, *shape)
        cols["frame_index"] = np.arange(T, dtype=np.int64)[:, None]
        cols["episode_index"] = np.full((T, 1), ep, dtype=np.int64)
        cols["index"] = np.arange(start, start + T, dtype=np.int64)[:, None]
        cols["task_index"] = np.full((T, 1), task_index, dtype=np.int64)

        meta: dict[str, Any] = {"episode_index": ep, "tasks": [task], "length": T}
        # -- data parquet (roll over to a new file past the size limit)
        table = self._episode_table(cols)
        if self.data_tables and self.data_bytes + table.nbytes > self.data_files_size_in_mb * 1e6:
            self._flush_data()
            self.data_pos = self._next_pos(self.data_pos)
            self.data_tables, self.data_bytes = [], 0
        self.data_tables.append(table)
        self.data_bytes += table.nbytes
        meta["data/chunk_index"], meta["data/file_index"] = self.data_pos
        meta["dataset_from_index"], meta["dataset_to_index"] = start, start + T
        # -- videos
        for key in self.video_keys:
            meta.update(self._encode_video(key, cols[key]))
        # -- stats
        ep_stats: dict[str, dict[str, np.ndarray]] = {}
        for key in self.numeric_keys:
            values = cols[key]
            ep_stats[key] = numeric_stats(values)
            self.values[key].append(values)
        for key in self.image_keys + self.video_keys:
            ep_stats[key] = image_stats(cols[key][sample_indices(T)])
            self.visual_episode_stats[key].append(ep_stats[key])
        meta["meta/episodes/chunk_index"], meta["meta/episodes/file_index"] = 0, 0
        for key, st in ep_stats.items():
            for name, value in st.items():
                meta[f"stats/{key}/{name}"] = np.asarray(value).tolist()
        self.episodes.append(meta)
        self.total_frames += T
        self.buffer = []
        if self.durable:
            self._flush_data()
            self._write_meta()
        return ep

    def finalize(self) -> Path:
        """Write the remaining files; for durable=False, move the dataset into place. Returns root."""
        if self.finalized:
            return self.root
        if self.buffer:
            raise DatasetError(f"finalize: {len(self.buffer)} frame(s) added but not saved "
                               "(call save_episode or clear_episode)")
        if not self.episodes:
            raise DatasetError(f"finalize: {self.root} has no episodes")
        self._flush_data()
        for key in list(self.video_enc):
            self.video_enc.pop(key).close()
        self._write_meta()
        self.finalized = True
        if not self.durable:
            (self.dir / INCOMPLETE_MARKER).unlink()
            self.root.parent.mkdir(parents=True, exist_ok=True)
            # <root>.old, not a hidden name: the reader names it in its recovery hints
            swap_directory(self.dir, self.root, old=self.root.with_name(self.root.name + ".old"))
        return self.root

    def abort(self) -> None:
        """Throw away an unfinished non-durable dataset (the temp directory)."""
        for key in list(self.video_enc):
            self.video_enc.pop(key).close()
        if not self.durable and self.dir.exists():
            shutil.rmtree(self.dir)

    def __enter__(self) -> "LeRobotWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finalize()
        else:
            self.abort()

    # ---------------------------------------------------------------- helpers
    def _next_pos(self, pos: tuple[int, int]) -> tuple[int, int]:
        chunk, file = pos
        return (chunk, file + 1) if file + 1 < self.chunks_size else (chunk + 1, 0)

    def _episode_table(self, cols: dict[str, np.ndarray]) -> pa.Table:
        pydict: dict[str, list] = {}
        for key, spec in self.features.items():
            if spec["dtype"] == "video":
                continue
            if spec["dtype"] == "image":  # path as LeRobot leaves it after embedding the PNG files
                pydict[key] = [{"bytes": encode_png(img), "path": IMAGE_NAME.format(frame_index=t)}
                               for t, img in enumerate(cols[key])]
            elif list(spec["shape"]) == [1]:
                pydict[key] = cols[key][:, 0].tolist()
            else:
                pydict[key] = cols[key].tolist()
        return pa.Table.from_pydict(pydict, schema=self.schema)

    def _flush_data(self) -> None:
        if not self.data_tables:
            return
        chunk, file = self.data_pos
        path = self.dir / DATA_PATH.format(chunk_index=chunk, file_index=file)
        table = pa.concat_tables(self.data_tables)
        atomic_write(path, lambda p: pq.write_table(table, p), fsync=self.durable)

    def _encode_video(self, key: str, frames: np.ndarray) -> dict[str, Any]:
        enc = self.video_enc.get(key)
        if enc is not None and enc.path.exists() and enc.path.stat().st_size > self.video_files_size_in_mb * 1e6:
            self.video_enc.pop(key).close()
            self.video_pos[key] = self._next_pos(self.video_pos[key])
            enc = None
        if enc is None:
            chunk, file = self.video_pos[key]
            path = self.dir / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            h, w, _ = self.features[key]["shape"]
            enc = self.video_enc[key] = VideoEncoder(path, self.fps, h, w, self.video_codec)
            self.features[key].setdefault("info", {
                "video.fps": self.fps, "video.height": h, "video.width": w, "video.channels": 3,
                "video.codec": enc.codec_name, "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                "has_audio": False,
            })
        start = enc.frames_written
        for frame in frames:
            enc.add(frame)
        chunk, file = self.video_pos[key]
        meta = {
            f"videos/{key}/chunk_index": chunk,
            f"videos/{key}/file_index": file,
            f"videos/{key}/from_timestamp": start / self.fps,
            f"videos/{key}/to_timestamp": enc.frames_written / self.fps,
        }
        if self.durable:  # an MP4 is only readable once closed: one file per episode
            self.video_enc.pop(key).close()
            self.video_pos[key] = self._next_pos(self.video_pos[key])
        return meta

    def dataset_stats(self) -> dict[str, dict[str, np.ndarray]]:
        stats = {k: numeric_stats(np.concatenate(v)) for k, v in self.values.items() if v}
        for key, eps in self.visual_episode_stats.items():
            if eps:
                stats[key] = aggregate_stats(eps)
        return {k: stats[k] for k in self.features if k in stats}  # feature order

    def info(self) -> dict[str, Any]:
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": len(self.episodes),
            "total_frames": self.total_frames,
            "total_tasks": len(self.tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self.data_files_size_in_mb,
            "video_files_size_in_mb": self.video_files_size_in_mb,
            "fps": self.fps,
            "splits": {"train": f"0:{len(self.episodes)}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.video_keys else None,
            "features": self.features,
        }

    def _write_meta(self) -> None:
        d, fs = self.dir, self.durable
        episodes = pa.Table.from_pylist(self.episodes)
        atomic_write(d / EPISODES_PATH.format(chunk_index=0, file_index=0), lambda p: pq.write_table(episodes, p),
                     fsync=fs)
        # Unnamed index, as LeRobot writes it: raw pyarrow sees the strings as `__index_level_0__`.
        # Object dtype keeps it `string` (pandas 3 would default to `large_string`).
        tasks = pd.DataFrame({"task_index": list(self.tasks.values())}, index=pd.Index(list(self.tasks), dtype=object))
        atomic_write(d / "meta" / "tasks.parquet", lambda p: tasks.to_parquet(p), fsync=fs)
        atomic_write_json(d / "meta" / "stats.json", to_jsonable(self.dataset_stats()), indent=4, fsync=fs)
        atomic_write_json(d / "meta" / "info.json", self.info(), indent=4, fsync=fs)  # last: the commit point
