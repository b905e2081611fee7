"""LeRobot v3.0 writer / reader: layout, bytes, atomicity, validation, v2.1 and video."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from a1lib.data import DatasetError, LeRobotDataset, LeRobotWriter
from a1lib.data.synthetic import synthetic_features, synthetic_frame, synthetic_image, write_synthetic_dataset

LENGTHS = (6, 9, 7)


@pytest.fixture(scope="module")
def ds_root(tmp_path_factory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("v30") / "ds", LENGTHS)


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_info(ds_root):
    files = sorted(str(p.relative_to(ds_root)) for p in ds_root.rglob("*") if p.is_file())
    assert files == ["data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet",
                     "meta/info.json", "meta/stats.json", "meta/tasks.parquet"]
    info = json.loads((ds_root / "meta/info.json").read_text())
    for key in ("codebase_version", "fps", "features", "robot_type", "splits", "total_episodes", "total_frames",
                "total_tasks", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "data_path",
                "video_path"):
        assert key in info, key
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert info["total_episodes"] == 3 and info["total_frames"] == sum(LENGTHS) and info["total_tasks"] == 2
    assert info["splits"] == {"train": "0:3"}
    assert info["features"]["timestamp"]["dtype"] == "float32"
    for k in ("frame_index", "episode_index", "index", "task_index"):
        assert info["features"][k] == {"dtype": "int64", "shape": [1], "names": None}


def test_parquet_column_types(ds_root):
    schema = pq.read_schema(ds_root / "data/chunk-000/file-000.parquet")
    assert schema.field("observation.image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 4)  # fixed_size_list<float>[4]
    assert schema.field("timestamp").type == pa.float32()
    for k in ("frame_index", "episode_index", "index", "task_index"):
        assert schema.field(k).type == pa.int64()
    hf = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert hf["observation.image"] == {"_type": "Image"}
    # PNG bytes
    cells = pq.read_table(ds_root / "data/chunk-000/file-000.parquet").column("observation.image").to_pylist()
    assert cells[0]["bytes"][:8] == b"\x89PNG\r\n\x1a\n"
    # path as LeRobot leaves it after embedding: the frame's file name within its episode
    assert [c["path"] for c in cells[5:8]] == ["frame-000005.png", "frame-000000.png", "frame-000001.png"]
    # tasks.parquet: pandas index -> raw column __index_level_0__
    tasks = pq.read_table(ds_root / "meta/tasks.parquet")
    assert tasks.schema.field("__index_level_0__").type == pa.string()  # not large_string (pandas 3's default)
    assert tasks.column("__index_level_0__").to_pylist() == ["task 0", "task 1"]
    assert tasks.column("task_index").to_pylist() == [0, 1]
    assert b"pandas" in tasks.schema.metadata
    eps = pq.read_table(ds_root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == list(LENGTHS)
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in eps] == [(0, 6), (6, 15), (15, 22)]
    assert eps[1]["tasks"] == ["task 1"] and eps[1]["data/chunk_index"] == 0 and eps[1]["data/file_index"] == 0
    assert eps[1]["stats/action/max"] == [8.0, -1.0, 108.0]
    # integer features keep int64 min / max (LeRobot); means are float
    schema = pq.read_schema(ds_root / "meta/episodes/chunk-000/file-000.parquet")
    for name in ("stats/scene.kind/min", "stats/scene.kind/max", "stats/frame_index/min", "stats/index/max"):
        assert schema.field(name).type == pa.list_(pa.int64()), name
    assert schema.field("stats/scene.kind/mean").type == pa.list_(pa.float64())
    assert eps[1]["stats/scene.kind/min"] == [1, 1, -1, -1, -1]


def test_read_back_frames_and_stats(ds_root):
    ds = LeRobotDataset(ds_root)
    assert isinstance(ds.hf, datasets.Dataset) and ds.hf.num_rows == len(ds) == sum(LENGTHS)
    assert ds.tasks == ["task 0", "task 1"] and ds.image_keys == ["observation.image"]
    assert list(ds.episode_frames(1)) == list(range(6, 15))
    item = ds[8]  # episode 1, frame 2
    want = synthetic_frame(1, 2)
    assert item["task"] == "task 1" and item["episode_index"] == 1 and item["frame_index"] == 2 and item["index"] == 8
    assert abs(item["timestamp"] - 0.2) < 1e-6
    for key, value in want.items():
        np.testing.assert_array_equal(item[key], value, err_msg=key)
        assert item[key].dtype == value.dtype and item[key].shape == value.shape, key
    frames = ds.get_frames("observation.image", [0, 21, 8])
    assert frames.shape == (3, 16, 16, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[1], synthetic_image(2, 6))
    # stats: exact for numeric features, per channel (3,1,1) on [0,1] for images
    actions = np.stack([synthetic_frame(e, t)["action"] for e, T in enumerate(LENGTHS) for t in range(T)])
    st = ds.stats["action"]
    for name in ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"):
        assert name in st
    np.testing.assert_allclose(st["mean"], actions.mean(0), rtol=1e-6)
    np.testing.assert_allclose(st["std"], actions.std(0), rtol=1e-6)
    np.testing.assert_allclose(st["q50"], np.quantile(actions, 0.5, axis=0), rtol=1e-6)
    assert st["count"].tolist() == [22]
    kind = ds.stats["scene.kind"]  # integer features: int64 min / max in stats.json too, as LeRobot writes
    assert kind["min"].dtype == np.int64 and kind["max"].tolist() == [2, 1, -1, -1, -1]
    img = ds.stats["observation.image"]
    assert img["mean"].shape == (3, 1, 1) and 0 <= img["min"].min() and img["max"].max() <= 1


def test_same_inputs_same_bytes(tmp_path):
    a = write_synthetic_dataset(tmp_path / "a", LENGTHS)
    b = write_synthetic_dataset(tmp_path / "b", LENGTHS)
    assert tree_digest(a) == tree_digest(b)


def test_new_file_past_size_limit_and_chunks(tmp_path):
    root = write_synthetic_dataset(tmp_path / "ds", (5, 5, 5, 5, 5), data_files_size_in_mb=1e-4, chunks_size=2)
    files = sorted(str(p.relative_to(root)) for p in (root / "data").rglob("*.parquet"))
    assert files == ["data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet",
                     "data/chunk-001/file-000.parquet", "data/chunk-001/file-001.parquet",
                     "data/chunk-002/file-000.parquet"]
    ds = LeRobotDataset(root)
    assert len(ds) == 25 and ds.episodes[4]["data/chunk_index"] == 2
    np.testing.assert_array_equal(ds[23]["observation.image"], synthetic_image(4, 3))


def test_interrupted_generation_leaves_no_dataset(tmp_path):
    root = tmp_path / "ds"
    w = LeRobotWriter(root, 10, synthetic_features(), "synthetic")
    for t in range(4):
        w.add_frame(synthetic_frame(0, t))
    w.save_episode("task 0")  # ... and the process dies before finalize()
    assert not root.exists() and (tmp_path / "ds.tmp").exists()
    with pytest.raises(DatasetError, match="interrupted"):
        LeRobotDataset(root)
    with pytest.raises(DatasetError, match="incomplete"):
        LeRobotDataset(tmp_path / "ds.tmp")
    w.finalize()
    assert LeRobotDataset(root).num_episodes == 1 and not (tmp_path / "ds.tmp").exists()


def test_durable_recording_survives_interruption(tmp_path):
    root = tmp_path / "rec"
    w = LeRobotWriter(root, 10, synthetic_features(), "synthetic", durable=True)
    for e, T in enumerate((4, 5)):
        for t in range(T):
            w.add_frame(synthetic_frame(e, t))
        w.save_episode(f"task {e}")
        assert LeRobotDataset(root).num_episodes == e + 1  # valid on disk after every episode
    info_before = (root / "meta/info.json").read_bytes()
    for t in range(3):
        w.add_frame(synthetic_frame(2, t))
    w.save_episode("task 2")
    # Simulate a crash after the data file was replaced but before info.json (the commit point).
    (root / "meta/info.json").write_bytes(info_before)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 2 and len(ds) == 9
    np.testing.assert_array_equal(ds[8]["observation.image"], synthetic_image(1, 4))
    assert not [p for p in root.rglob("*") if ".tmp-" in p.name]  # no temp file of a1lib.io left


def test_frame_validation_errors(tmp_path):
    w = LeRobotWriter(tmp_path / "ds", 10, synthetic_features(), "synthetic")
    good = synthetic_frame(0, 0)
    cases = {
        "expected shape \\(4,\\)": {**good, "observation.state": np.zeros(5, np.float32)},
        "expected image shape": {**good, "observation.image": np.zeros((8, 8, 3), np.uint8)},
        "must be uint8": {**good, "observation.image": np.zeros((16, 16, 3), np.float32)},
        "NaN": {**good, "action": np.array([0, np.nan, 0], np.float32)},
        "expected dtype int64": {**good, "scene.kind": np.zeros(5, np.float32)},
        "missing feature": {k: v for k, v in good.items() if k != "action"},
        "unknown key": {**good, "index": 3},
    }
    for msg, frame in cases.items():
        with pytest.raises(DatasetError, match=msg):
            w.add_frame(frame)
    with pytest.raises(DatasetError, match="no frames"):
        w.save_episode("x")
    w.abort()


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_reader_errors_name_file_and_problem(ds_root, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        LeRobotDataset(tmp_path / "nope")
    r = _copy(ds_root, tmp_path / "noinfo")
    (r / "meta/info.json").unlink()
    with pytest.raises(DatasetError, match=r"info\.json: missing"):
        LeRobotDataset(r)
    r = _copy(ds_root, tmp_path / "corruptinfo")
    (r / "meta/info.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"info\.json: corrupt JSON"):
        LeRobotDataset(r)
    r = _copy(ds_root, tmp_path / "version")
    info = json.loads((r / "meta/info.json").read_text())
    (r / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v1.6"}))
    with pytest.raises(DatasetError, match="codebase_version 'v1.6' is not supported"):
        LeRobotDataset(r)
    r = _copy(ds_root, tmp_path / "corruptdata")
    data = r / "data/chunk-000/file-000.parquet"
    data.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    with pytest.raises(DatasetError, match=r"file-000\.parquet: corrupt parquet"):
        LeRobotDataset(r)
    r = _copy(ds_root, tmp_path / "nocolumn")
    data = r / "data/chunk-000/file-000.parquet"
    pq.write_table(pq.read_table(data).drop_columns(["action"]), data)
    with pytest.raises(DatasetError, match=r"file-000\.parquet: feature 'action' of meta/info.json has no column"):
        LeRobotDataset(r)
    r = _copy(ds_root, tmp_path / "shape")
    info = json.loads((r / "meta/info.json").read_text())
    info["features"]["observation.state"]["shape"] = [5]
    (r / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=r"column 'observation.state' has type .*declares dtype float32 shape \[5\]"):
        LeRobotDataset(r)
    r = _copy(ds_root, tmp_path / "frames")
    info = json.loads((r / "meta/info.json").read_text())
    (r / "meta/info.json").write_text(json.dumps({**info, "total_frames": 99}))
    with pytest.raises(DatasetError, match="22 frames on disk, meta/info.json says 99"):
        LeRobotDataset(r)


def to_v21(src: Path, dst: Path) -> Path:
    """Rewrite a v3.0 dataset in the v2.1 layout (one parquet per episode, JSONL metadata)."""
    ds = LeRobotDataset(src)
    table = pq.read_table(src / "data/chunk-000/file-000.parquet")
    (dst / "meta").mkdir(parents=True)
    for e in ds.episodes:
        lo, hi = e["dataset_from_index"], e["dataset_to_index"]
        path = dst / f"data/chunk-000/episode_{e['episode_index']:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(lo, hi - lo), path)
    with open(dst / "meta/episodes.jsonl", "w") as f:
        for e in ds.episodes:
            f.write(json.dumps({"episode_index": e["episode_index"], "tasks": e["tasks"],
                                "length": e["length"]}) + "\n")
    with open(dst / "meta/episodes_stats.jsonl", "w") as f:
        for e in ds.episodes:
            stats: dict = {}
            for k, v in e.items():
                if k.startswith("stats/"):
                    _, feat, name = k.split("/")
                    if name in ("min", "max", "mean", "std", "count"):
                        stats.setdefault(feat, {})[name] = v
            f.write(json.dumps({"episode_index": e["episode_index"], "stats": stats}) + "\n")
    with open(dst / "meta/tasks.jsonl", "w") as f:
        for i, t in enumerate(ds.tasks):
            f.write(json.dumps({"task_index": i, "task": t}) + "\n")
    info = dict(ds.info, codebase_version="v2.1", total_chunks=1, total_videos=0,
                data_path="data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
                video_path="videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4")
    for k in ("data_files_size_in_mb", "video_files_size_in_mb"):
        info.pop(k)
    (dst / "meta/info.json").write_text(json.dumps(info, indent=4))
    return dst


def test_reads_v21(ds_root, tmp_path):
    v21 = LeRobotDataset(to_v21(ds_root, tmp_path / "v21"))
    v30 = LeRobotDataset(ds_root)
    assert v21.version == "v2.1" and len(v21) == len(v30) and v21.tasks == v30.tasks
    assert [e["length"] for e in v21.episodes] == list(LENGTHS)
    for i in (0, 7, 21):
        a, b = v21[i], v30[i]
        assert a["task"] == b["task"]
        for k in v30.features:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # no stats.json in v2.1: aggregated from episodes_stats.jsonl (exact for mean/min/max)
    np.testing.assert_allclose(v21.stats["action"]["mean"], v30.stats["action"]["mean"], rtol=1e-6)
    np.testing.assert_allclose(v21.stats["action"]["std"], v30.stats["action"]["std"], rtol=1e-6)
    np.testing.assert_array_equal(v21.stats["action"]["max"], v30.stats["action"]["max"])


def test_video_feature_many_episodes_per_mp4(tmp_path):
    from a1lib.data.video import pick_codec

    size = 64
    root = write_synthetic_dataset(tmp_path / "vid", LENGTHS, image_size=size, camera="video")
    mp4s = sorted((root / "videos").rglob("*.mp4"))
    assert [str(p.relative_to(root)) for p in mp4s] == ["videos/observation.image/chunk-000/file-000.mp4"]
    ds = LeRobotDataset(root)
    # the format's name, as LeRobot records it ("av1"), not the encoder's ("libsvtav1")
    codec = ds.features["observation.image"]["info"]["video.codec"]
    assert codec == {"libsvtav1": "av1", "libaom-av1": "av1", "librav1e": "av1",
                     "libx264": "h264"}.get(pick_codec(), codec)
    assert not codec.startswith("lib")
    assert ds.episodes[1]["videos/observation.image/from_timestamp"] == pytest.approx(0.6)
    assert ds.episodes[2]["videos/observation.image/from_timestamp"] == pytest.approx(1.5)
    indices = [0, 5, 6, 10, 14, 15, 21, 3]
    frames = ds.get_frames("observation.image", indices)
    assert frames.shape == (len(indices), size, size, 3) and frames.dtype == np.uint8
    for n, i in enumerate(indices):
        e, t = int(ds.episode_of[i]), int(ds.columns["frame_index"][i])
        err = np.abs(frames[n].astype(int) - synthetic_image(e, t, size)).mean()
        assert err < 4.0, (i, err)  # lossy codec, but clearly the right frame (neighbours differ by ~9)
    np.testing.assert_array_equal(ds[10]["observation.image"], frames[3])
    # a video shorter than the episodes table says is reported, naming the file
    info = json.loads((root / "meta/info.json").read_text())
    mp4s[0].write_bytes(b"not an mp4")
    with pytest.raises(DatasetError, match=r"file-000\.mp4"):
        LeRobotDataset(root).get_frames("observation.image", [3])
    assert info["video_path"].startswith("videos/{video_key}")
