"""A corruption suite: each case breaks one thing in a valid dataset on disk. Every one must raise
DatasetError naming the file and the problem (at load, or for pixels with `a1 data info --deep`),
and `a1 data info --deep` must call the dataset invalid."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from a1lib.data import DatasetError, LeRobotDataset
from a1lib.data.synthetic import synthetic_frame, write_synthetic_dataset
from a1lib.workflows.data import info as info_cli

LENGTHS = (6, 9, 7)  # episodes 0..2, frames 0..21
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"
MP4 = "videos/observation.image/chunk-000/file-000.mp4"


# ------------------------------------------------------------------ helpers that break things
def read(path: Path) -> pa.Table:
    with pq.ParquetFile(path) as f:
        return f.read()


def edit_info(**changes):
    def apply(root: Path) -> None:
        info = json.loads((root / "meta/info.json").read_text())
        for key, value in changes.items():
            if value is _DROP:
                info.pop(key)
            else:
                info[key] = value(info) if callable(value) else value
        (root / "meta/info.json").write_text(json.dumps(info))
    return apply


def edit_feature(name, **changes):
    def features(info):
        f = dict(info["features"])
        if changes.get("drop"):
            f.pop(name)
        else:
            f[name] = changes["spec"] if "spec" in changes else {**f[name], **changes}
        return f
    return edit_info(features=features)


_DROP = object()


def edit_column(rel: str, name: str, change):
    """Rewrite one column of a parquet file: ``change(list of python values) -> list`` (None: drop it)."""
    def apply(root: Path) -> None:
        table = read(root / rel)
        i = table.column_names.index(name)
        values = change(table.column(name).to_pylist())
        table = table.remove_column(i) if values is None else table.set_column(i, name, pa.array(values, type=table.schema.field(i).type))
        pq.write_table(table, root / rel)
    return apply


def set_value(rel, name, row, value):
    def change(values):
        values[row] = value(values[row]) if callable(value) else value
        return values
    return edit_column(rel, name, change)


def png(size, color=(10, 20, 30)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), color, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def truncate(rel, keep=0.5):
    def apply(root: Path) -> None:
        data = (root / rel).read_bytes()
        (root / rel).write_bytes(data[: int(len(data) * keep)])
    return apply


def write(rel, content):
    def apply(root: Path) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(content) if isinstance(content, bytes) else (root / rel).write_text(content)
    return apply


def delete(rel):
    def apply(root: Path) -> None:
        shutil.rmtree(root / rel) if (root / rel).is_dir() else (root / rel).unlink()
    return apply


def tasks_table(indices, texts=("task 0", "task 1")):
    def apply(root: Path) -> None:
        import pandas as pd

        pd.DataFrame({"task_index": indices}, index=pd.Index(list(texts), dtype=object)).to_parquet(root / "meta/tasks.parquet")
    return apply


def interrupted_finalize(root: Path) -> None:
    """What an interrupt between finalize's two renames leaves: <name>.old and a complete <name>.tmp."""
    shutil.copytree(root, root.with_name(root.name + ".old"))
    os.replace(root, root.with_name(root.name + ".tmp"))


def interrupted_generation(root: Path) -> None:
    tmp = root.with_name(root.name + ".tmp")
    shutil.copytree(root, tmp)
    (tmp / ".incomplete").write_text("")
    os.replace(root, root.with_name(root.name + ".old"))


def edit_json(rel, change):
    """Rewrite a JSON file: ``change(parsed) -> new content`` (NaN is written as JSON's NaN token)."""
    def apply(root: Path) -> None:
        (root / rel).write_text(json.dumps(change(json.loads((root / rel).read_text()))))
    return apply


def replace_dir(rel):
    def apply(root: Path) -> None:
        (root / rel).unlink()
        (root / rel).mkdir()
    return apply


def shift_column(rel, name, by):
    return edit_column(rel, name, lambda values: [v + by for v in values])


def set_columns(rel, columns):
    """Replace whole columns of a parquet file: ``{name: values}``."""
    def apply(root: Path) -> None:
        for name, values in columns.items():
            edit_column(rel, name, lambda _old, values=values: list(values))(root)
    return apply


FROM_TS, TO_TS = "videos/observation.image/from_timestamp", "videos/observation.image/to_timestamp"


def v21_edit(rel, change):
    def apply(root: Path) -> None:
        rows = [json.loads(line) for line in (root / rel).read_text().splitlines()]
        (root / rel).write_text("\n".join(json.dumps(change(r)) for r in rows) + "\n")
    return apply


# ------------------------------------------------------------------ the cases
# (id, base dataset, corruption, regex of the message, when it shows: "load" or "deep")
CASES = [
    # meta/info.json
    ("info-missing", "img", delete("meta/info.json"), r"meta/info\.json: missing", "load"),
    ("info-corrupt-json", "img", write("meta/info.json", "{not json"), r"info\.json: corrupt JSON", "load"),
    ("info-not-object", "img", write("meta/info.json", "[1, 2]"), r"info\.json: expected a JSON object", "load"),
    ("info-missing-field", "img", edit_info(total_frames=_DROP), r"info\.json: missing field\(s\) \['total_frames'\]", "load"),
    ("info-version", "img", edit_info(codebase_version="v1.6"), r"info\.json: codebase_version 'v1.6' is not supported", "load"),
    ("fps-string", "img", edit_info(fps="ten"), r"info\.json: fps must be a positive integer up to 1000, got 'ten'", "load"),
    ("fps-fraction", "img", edit_info(fps=10.5), r"info\.json: fps must be a positive integer up to 1000, got 10.5", "load"),
    ("fps-zero", "img", edit_info(fps=0), r"info\.json: fps must be a positive integer up to 1000, got 0", "load"),
    ("fps-bool", "img", edit_info(fps=True), r"info\.json: fps must be a positive integer up to 1000, got True", "load"),
    ("episodes-negative", "img", edit_info(total_episodes=-1), r"info\.json: total_episodes must be a non-negative integer", "load"),
    ("frames-string", "img", edit_info(total_frames="22"), r"info\.json: total_frames must be a non-negative integer, got '22'", "load"),
    ("features-list", "img", edit_info(features=lambda i: list(i["features"])), r"info\.json: 'features' must be a mapping .* got list", "load"),
    ("feature-not-dict", "img", edit_feature("action", spec="float32"), r"info\.json: feature 'action': expected a dict", "load"),
    ("feature-dtype", "img", edit_feature("action", dtype="float128"), r"info\.json: feature 'action': unknown dtype 'float128'", "load"),
    ("feature-shape-string", "img", edit_feature("action", shape="3"), r"info\.json: feature 'action': shape must be a list of positive integers", "load"),
    ("feature-shape-int", "img", edit_feature("action", shape=3), r"info\.json: feature 'action': shape must be a list of positive integers, got 3", "load"),
    ("feature-shape-zero", "img", edit_feature("action", shape=[0]), r"info\.json: feature 'action': shape must be a list of positive integers", "load"),
    ("image-shape-2d", "img", edit_feature("observation.image", shape=[16, 16]), r"info\.json: feature 'observation.image': image shape must be \[height, width, 3\]", "load"),
    ("default-feature-missing", "img", edit_feature("index", drop=True), r"info\.json: 'features' lacks the default feature 'index'", "load"),
    ("default-feature-dtype", "img", edit_feature("task_index", dtype="float32"), r"info\.json: feature 'task_index': must be int64 of shape \[1\]", "load"),
    ("data-path-null", "img", edit_info(data_path=None), r"info\.json: data_path must be a path template string", "load"),
    ("data-path-template", "img", edit_info(data_path="data/{episode}.parquet"), r"info\.json: data_path .* cannot be filled", "load"),
    ("frames-more-than-disk", "img", edit_info(total_frames=99), r"data: 22 frames on disk, meta/info.json says 99", "load"),
    ("episodes-more-than-table", "img", edit_info(total_episodes=9), r"meta/episodes: has episodes .* says 9", "load"),
    # meta/tasks.parquet
    ("tasks-missing", "img", delete("meta/tasks.parquet"), r"tasks\.parquet: missing", "load"),
    ("tasks-corrupt", "img", truncate("meta/tasks.parquet"), r"tasks\.parquet: corrupt parquet", "load"),
    ("tasks-no-index-column", "img", edit_column("meta/tasks.parquet", "task_index", lambda v: None), r"tasks\.parquet: no task_index column", "load"),
    ("tasks-index-gap", "img", tasks_table([0, 2]), r"tasks\.parquet: task_index must be 0\.\.1, each once; got \[0, 2\]", "load"),
    ("tasks-index-repeated", "img", tasks_table([1, 1]), r"tasks\.parquet: task_index must be 0\.\.1, each once", "load"),
    # meta/episodes
    ("episodes-missing", "img", delete("meta/episodes"), r"meta/episodes: no episode metadata files", "load"),
    ("episodes-no-chunk-index", "img", edit_column(EPISODES, "data/chunk_index", lambda v: None), r"file-000\.parquet: missing column\(s\) \['data/chunk_index'\]", "load"),
    ("episodes-no-to-index", "img", edit_column(EPISODES, "dataset_to_index", lambda v: None), r"file-000\.parquet: missing column\(s\) \['dataset_to_index'\]", "load"),
    ("episodes-null-length", "img", set_value(EPISODES, "length", 1, None), r"file-000\.parquet: null values in \['length'\]", "load"),
    ("episodes-wrong-length", "img", set_value(EPISODES, "length", 1, 5), r"episodes/chunk-000/file-000\.parquet: episode 1: rows 6:15 disagree with its length 5", "load"),
    ("episodes-wrong-file", "img", set_value(EPISODES, "data/file_index", 1, 7), r"data/chunk-000/file-007\.parquet: missing", "load"),
    # data parquet
    ("data-corrupt", "img", truncate(DATA), r"file-000\.parquet: corrupt parquet", "load"),
    ("data-missing", "img", delete(DATA), r"file-000\.parquet: missing", "load"),
    ("column-missing", "img", edit_column(DATA, "action", lambda v: None), r"file-000\.parquet: feature 'action' of meta/info.json has no column", "load"),
    ("vector-size", "img", edit_feature("observation.state", shape=[5]), r"file-000\.parquet: column 'observation.state' has type .* declares dtype float32 shape \[5\]", "load"),
    ("same-size-transposed", "img", edit_feature("scene.pose", shape=[3, 5]), r"file-000\.parquet: column 'scene.pose' is stored with shape \[5, 3\], but meta/info.json declares \[3, 5\]", "load"),
    ("matrix-size", "img", edit_feature("scene.pose", shape=[5, 4]), r"file-000\.parquet: column 'scene.pose' is stored with shape \[5, 3\], but meta/info.json declares \[5, 4\]", "load"),
    ("lossy-dtype", "img", edit_feature("observation.state", dtype="int64"), r"file-000\.parquet: column 'observation.state' has type .* declares dtype int64", "load"),
    ("action-nan", "img", set_value(DATA, "action", 8, lambda a: [a[0], float("nan"), a[2]]), r"file-000\.parquet: feature 'action' has NaN or inf at frame 8 \(episode 1\)", "load"),
    ("action-inf", "img", set_value(DATA, "action", 21, lambda a: [float("inf"), a[1], a[2]]), r"file-000\.parquet: feature 'action' has NaN or inf at frame 21 \(episode 2\)", "load"),
    ("state-nan", "img", set_value(DATA, "observation.state", 0, lambda s: [float("nan")] + s[1:]), r"file-000\.parquet: feature 'observation.state' has NaN or inf at frame 0 \(episode 0\)", "load"),
    ("scene-pose-nan", "img", set_value(DATA, "scene.pose", 3, lambda p: [[float("nan")] * 3] + p[1:]), r"file-000\.parquet: feature 'scene.pose' has NaN or inf at frame 3", "load"),
    ("timestamp-nan", "img", set_value(DATA, "timestamp", 4, float("nan")), r"file-000\.parquet: feature 'timestamp' has NaN or inf at frame 4", "load"),
    ("task-index-past-table", "img", set_value(DATA, "task_index", 3, 5), r"file-000\.parquet: task_index 5 at frame 3 is not in meta/tasks \(2 tasks\)", "load"),
    ("task-index-negative", "img", set_value(DATA, "task_index", 12, -1), r"file-000\.parquet: task_index -1 at frame 12 is not in meta/tasks", "load"),
    ("index-out-of-order", "img", set_value(DATA, "index", 2, 7), r"data: column 'index' is not 0\.\.21 in order", "load"),
    ("episode-index-wrong", "img", set_value(DATA, "episode_index", 7, 2), r"data/chunk-000/file-000\.parquet: episode_index 2 at frame 7, but the episodes table puts rows 6:15 in episode 1", "load"),
    ("stats-corrupt", "img", write("meta/stats.json", "{"), r"stats\.json: corrupt JSON", "load"),
    # images
    ("image-declared-larger", "img", edit_feature("observation.image", shape=[32, 32, 3]), r"file-000\.parquet: column 'observation.image' holds 16x16 images, but meta/info.json declares \[32, 32, 3\]", "load"),
    ("image-corrupt-png", "img", set_value(DATA, "observation.image", 10, lambda c: {**c, "bytes": c["bytes"][:40]}), r"file-000\.parquet observation.image\[10\]: cannot decode image", "deep"),
    ("image-one-wrong-size", "img", set_value(DATA, "observation.image", 10, {"bytes": png(32), "path": None}), r"observation.image\[10\]: image is \[32, 32, 3\], meta/info.json declares \[16, 16, 3\]", "deep"),
    ("image-null", "img", set_value(DATA, "observation.image", 11, None), r"observation.image\[11\]: image is null", "deep"),
    ("image-path-only", "img", set_value(DATA, "observation.image", 12, {"bytes": None, "path": "frame-000006.png"}), r"observation.image\[12\]: image has no bytes and its file .*frame-000006\.png is missing", "deep"),
    # videos
    ("video-missing", "vid", delete(MP4), r"file-000\.mp4: video file missing", "load"),
    ("video-cut", "vid", truncate(MP4, 0.6), r"file-000\.mp4: (cannot decode video|no frame within)", "deep"),
    ("video-garbage", "vid", write(MP4, b"not an mp4 at all"), r"file-000\.mp4: cannot decode video", "deep"),
    ("video-info-size", "vid", edit_feature("observation.image", shape=[16, 16, 3]), r"info\.json: feature 'observation.image' declares shape \[16, 16, 3\] but its video info says 32x32", "load"),
    ("video-declared-smaller", "vid", edit_feature("observation.image", shape=[16, 16, 3], info={}), r"file-000\.mp4: frame at t=0\.000 s is 32x32, meta/info.json declares \[16, 16, 3\]", "deep"),
    ("video-no-from-timestamp", "vid", edit_column(EPISODES, "videos/observation.image/from_timestamp", lambda v: None), r"file-000\.parquet: missing column\(s\) \['videos/observation.image/from_timestamp'\]", "load"),
    ("video-episode-past-end", "vid", set_columns(EPISODES, {FROM_TS: [0.0, 0.6, 9.0], TO_TS: [0.6, 1.5, 9.7]}), r"file-000\.mp4: no frame within .* of t=9\.000 s", "deep"),
    # interrupted writers
    ("incomplete-marker", "img", write(".incomplete", ""), r"incomplete dataset \(still being written", "load"),
    ("interrupted-finalize", "img", interrupted_finalize, r"\.tmp is complete: finalize was interrupted .* recover with `mv .*\.tmp .*` and delete the previous one with `rm -r .*\.old`", "load"),
    ("interrupted-generation", "img", interrupted_generation, r"\.tmp exists: the generation was interrupted; run it again, or restore the previous dataset with `mv .*\.old", "load"),
    # v2.1
    ("v21-episode-no-length", "v21", v21_edit("meta/episodes.jsonl", lambda r: {k: v for k, v in r.items() if k != "length"}), r"episodes\.jsonl:1: missing field\(s\) \['length'\]", "load"),
    ("v21-task-no-text", "v21", v21_edit("meta/tasks.jsonl", lambda r: {"task_index": r["task_index"]}), r"tasks\.jsonl:1: missing field\(s\) \['task'\]", "load"),
    ("v21-corrupt-line", "v21", write("meta/tasks.jsonl", '{"task_index": 0, "task": "a"}\n{oops\n'), r"tasks\.jsonl:2: corrupt JSON line", "load"),
    ("v21-task-index-past-table", "v21", set_value("data/chunk-000/episode_000001.parquet", "task_index", 0, 9), r"episode_000001\.parquet: task_index 9 at frame 6 is not in meta/tasks", "load"),
    # issue 38: loaded silently before
    ("frame-index-duplicated", "img", set_value(DATA, "frame_index", 9, 2), r"file-000\.parquet: frame_index 2 at frame 9 \(episode 1\), expected 3: frame_index must count 0\.\.8", "load"),
    ("frame-index-shifted", "img", shift_column(DATA, "frame_index", 1), r"file-000\.parquet: frame_index 1 at frame 0 \(episode 0\), expected 0", "load"),
    ("timestamps-not-monotonic", "img", edit_column(DATA, "timestamp", lambda t: t[:2] + [t[3], t[2]] + t[4:]), r"file-000\.parquet: timestamp 0\.3 at frame 2 \(episode 0\) is not frame_index / fps = 0\.2", "load"),
    ("timestamp-negative", "img", set_value(DATA, "timestamp", 6, -0.01), r"file-000\.parquet: timestamp -0\.01 at frame 6 \(episode 1\) is negative", "load"),
    ("video-timestamps-shifted", "vid", shift_column(DATA, "timestamp", 0.1), r"file-000\.parquet: timestamp 0\.1 at frame 0 \(episode 0\) is not frame_index / fps = 0", "load"),
    ("video-episode-shifted", "vid", set_columns(EPISODES, {FROM_TS: [0.1, 0.6, 1.5], TO_TS: [0.7, 1.5, 2.2]}), r"episodes/chunk-000/file-000\.parquet: episode 1: videos/observation\.image/from_timestamp 0\.6 overlaps episode 0 \(0\.1\.\.0\.7 s\) in .*file-000\.mp4", "load"),
    ("video-from-all-zero", "vid", set_columns(EPISODES, {FROM_TS: [0.0, 0.0, 0.0]}), r"episodes/chunk-000/file-000\.parquet: episode 1: the video clip 0\.\.1\.5 s is 1\.5 s, but the episode has 9 frames \(0\.9 s at 10 fps\)", "load"),
    ("fps-huge", "img", edit_info(fps=1e300), r"info\.json: fps must be a positive integer up to 1000, got 1e\+300", "load"),
    ("stats-nan", "img", edit_json("meta/stats.json", lambda st: {**st, "action": {**st["action"], "mean": [float("nan"), 0.0, 1.0]}}), r"stats\.json: 'action' 'mean' is not finite numbers", "load"),
    ("stats-string", "img", edit_json("meta/stats.json", lambda st: {**st, "action": {**st["action"], "std": "abc"}}), r"stats\.json: 'action' 'std' is not finite numbers: 'abc'", "load"),
    ("task-index-fraction", "img", tasks_table([0.5, 1.0]), r"tasks\.parquet: task_index must be a non-negative integer, got 0\.5", "load"),
    ("tasks-same-text", "img", tasks_table([0, 1], texts=("task 0", "task 0")), r"tasks\.parquet: task 'task 0' is listed twice \(task_index 0 and 1\)", "load"),
    ("v21-task-index-fraction", "v21", v21_edit("meta/tasks.jsonl", lambda r: {**r, "task_index": r["task_index"] + 0.5}), r"tasks\.jsonl:1: task_index must be a non-negative integer, got 0\.5", "load"),
    # issue 38: bare exceptions before
    ("v21-chunks-size-zero", "v21", edit_info(chunks_size=0), r"info\.json: chunks_size must be a positive integer, got 0", "load"),
    ("v21-chunks-size-string", "v21", edit_info(chunks_size="abc"), r"info\.json: chunks_size must be a positive integer, got 'abc'", "load"),
    ("v21-length-string", "v21", v21_edit("meta/episodes.jsonl", lambda r: {**r, "length": str(r["length"])}), r"episodes\.jsonl:1: length must be a positive integer, got '6'", "load"),
    ("v21-episode-index-float", "v21", v21_edit("meta/episodes.jsonl", lambda r: {**r, "episode_index": r["episode_index"] + 0.5}), r"episodes\.jsonl:1: episode_index must be a non-negative integer, got 0\.5", "load"),
    ("v21-tasks-not-a-list", "v21", v21_edit("meta/episodes.jsonl", lambda r: {**r, "tasks": "task 0"}), r"episodes\.jsonl:1: tasks must be a list of strings, got 'task 0'", "load"),
    ("v21-tasks-invalid-utf8", "v21", write("meta/tasks.jsonl", b'{"task_index": 0, "task": "\xff"}\n'), r"tasks\.jsonl: not UTF-8 text", "load"),
    ("stats-list", "img", write("meta/stats.json", "[1, 2]"), r"stats\.json: expected a JSON object of feature -> stats, got list", "load"),
    ("stats-feature-number", "img", edit_json("meta/stats.json", lambda st: {**st, "action": 5}), r"stats\.json: 'action' must map stat names to values, got 5", "load"),
    ("info-is-directory", "img", replace_dir("meta/info.json"), r"info\.json: not a file", "load"),
    ("episodes-negative-start", "img", set_columns(EPISODES, {"dataset_from_index": [-6, 6, 15], "dataset_to_index": [0, 15, 22]}), r"episodes/chunk-000/file-000\.parquet: episode 0: dataset_from_index must be a non-negative integer, got -6", "load"),
    ("episodes-overlap", "img", set_columns(EPISODES, {"dataset_from_index": [0, 5, 15], "length": [6, 10, 7]}), r"episodes/chunk-000/file-000\.parquet: episode 1: covers rows 5:15, but the episodes before it end at row 6", "load"),
    # issue 38: blamed the wrong file before
    ("video-from-negative", "vid", set_value(EPISODES, FROM_TS, 1, -3.0), r"episodes/chunk-000/file-000\.parquet: episode 1: videos/observation.image/from_timestamp must be a number >= 0, got -3\.0", "load"),
    ("v21-length-negative", "v21", v21_edit("meta/episodes.jsonl", lambda r: {**r, "length": -7} if r["episode_index"] == 1 else r), r"episodes\.jsonl:2: length must be a positive integer, got -7", "load"),
]


@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    from test_data_io import to_v21

    d = tmp_path_factory.mktemp("bases")
    img = write_synthetic_dataset(d / "img", LENGTHS)
    return {"img": img, "vid": write_synthetic_dataset(d / "vid", LENGTHS, image_size=32, camera="video"),
            "v21": to_v21(img, d / "v21")}


def test_the_suite_is_big_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,base,corrupt,message,stage", CASES, ids=[c[0] for c in CASES])
def test_corruption_is_a_dataset_error_naming_the_file(name, base, corrupt, message, stage, bases, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(bases[base], root)
    corrupt(root)
    if stage == "load":
        with pytest.raises(DatasetError, match=message) as err:
            LeRobotDataset(root)
    else:
        ds = LeRobotDataset(root)  # the pixels are not decoded at load...
        with pytest.raises(DatasetError, match=message) as err:
            ds.verify_media()  # ... but --deep decodes every one
    assert str(tmp_path) in str(err.value), "the message names the file"
    assert info_cli.run(argparse.Namespace(path=str(root), deep=True)) == 1
    out = capsys.readouterr().out
    assert out.startswith("error: ") and "ok: dataset is valid" not in out


def test_media_errors_also_show_on_access(bases, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(bases["img"], root)
    set_value(DATA, "observation.image", 10, {"bytes": png(32), "path": None})(root)
    ds = LeRobotDataset(root)
    ds[9]
    with pytest.raises(DatasetError, match=r"image is \[32, 32, 3\], meta/info.json declares \[16, 16, 3\]"):
        ds[10]


def test_deep_info_passes_a_valid_dataset(bases, capsys):
    for base in ("img", "vid"):
        assert info_cli.run(argparse.Namespace(path=str(bases[base]), deep=True)) == 0
        out = capsys.readouterr().out
        assert f"media     {sum(LENGTHS)} frames decoded" in out and "ok: dataset is valid" in out


def test_missing_stats_json_falls_back_and_says_so(bases, tmp_path, capsys):
    """LeRobot's fallback (aggregate the per-episode stats) is kept, but no longer silent."""
    import warnings

    root = tmp_path / "ds"
    shutil.copytree(bases["img"], root)
    (root / "meta/stats.json").unlink()
    with pytest.warns(UserWarning, match=r"stats\.json is missing: stats aggregated from the per-episode stats"):
        ds = LeRobotDataset(root)
    np.testing.assert_allclose(ds.stats["action"]["mean"], LeRobotDataset(bases["img"]).stats["action"]["mean"])
    with pytest.warns(UserWarning):
        assert info_cli.run(argparse.Namespace(path=str(root), deep=False)) == 0  # `a1 data info` says it too
    out = capsys.readouterr().out
    assert "stats.json is missing" in out and "ok: dataset is valid" in out
    v21 = tmp_path / "v21"
    shutil.copytree(bases["v21"], v21)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # v2.1 has no stats.json: aggregating is its normal way, no warning
        assert LeRobotDataset(v21).stats_note is None
    (v21 / "meta/episodes_stats.jsonl").unlink()
    with pytest.warns(UserWarning, match="aggregated from nothing"):
        assert LeRobotDataset(v21).stats == {}


def test_writer_refuses_nan_in_every_float_feature(tmp_path):
    from a1lib.data import LeRobotWriter
    from a1lib.data.synthetic import synthetic_features

    w = LeRobotWriter(tmp_path / "ds", 10, synthetic_features(), "synthetic")
    frame = synthetic_frame(0, 0)
    frame["scene.pose"] = frame["scene.pose"].copy()
    frame["scene.pose"][0, 0] = np.nan
    with pytest.raises(DatasetError, match="feature 'scene.pose': contains NaN or inf"):
        w.add_frame(frame)
    w.abort()


def test_reader_does_not_use_pyarrow_dataset(bases, monkeypatch):
    """The exit-134 abort: pq.read_table runs through pyarrow.dataset, whose worker threads may free
    a Python extension type (Array2D) while the interpreter exits; the reader reads files directly."""
    def forbidden(*args, **kwargs):
        raise AssertionError("pq.read_table used")

    monkeypatch.setattr(pq, "read_table", forbidden)
    assert len(LeRobotDataset(bases["img"])) == sum(LENGTHS)


def test_failing_shape_check_exits_cleanly(bases, tmp_path):
    """A process that dies on a shape error right after loading exits 1 with the DatasetError (a smoke
    check: the abort was a race, about 1 run in 25; the guard is the test above)."""
    root = tmp_path / "ds"
    shutil.copytree(bases["img"], root)
    edit_feature("observation.state", shape=[5])(root)
    code = "import sys; from a1lib.data import LeRobotDataset; LeRobotDataset(sys.argv[1])"
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "DatasetError" in proc.stderr and "terminate called" not in proc.stderr
