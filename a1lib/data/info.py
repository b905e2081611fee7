"""``a1 data info PATH [--deep]``: validate a dataset on disk and print a short summary.

Loading through ``LeRobotDataset`` checks everything the reader checks (layout, version, feature
specs, episodes and tasks tables, columns against features, finite float values, index ranges,
frame indices and timestamps, video clip times, stats, the size of the first image per file);
``--deep`` also decodes every image and video frame, so a cut MP4 or a corrupt PNG is found
before training starts. A broken dataset prints the DatasetError and exits with 1; stats that had
to be aggregated because meta/stats.json is missing print a note.
"""

from __future__ import annotations

from pathlib import Path

from a1lib.data.reader import LeRobotDataset


def dir_size_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def summary(root: str | Path, deep: bool = False) -> str:
    ds = LeRobotDataset(root)
    lines = [
        f"dataset   {ds.root}",
        f"version   {ds.version}   fps {ds.fps}   robot_type {ds.info.get('robot_type')}",
        f"episodes  {ds.num_episodes}   frames {len(ds)}   size {dir_size_mb(ds.root):.2f} MB",
        f"tasks     {len(ds.tasks)}",
    ]
    lines += [f"  [{i}] {t}" for i, t in enumerate(ds.tasks[:20])]
    if len(ds.tasks) > 20:
        lines.append(f"  ... {len(ds.tasks) - 20} more")
    lines.append("features")
    for key, spec in ds.features.items():
        lines.append(f"  {key:<24} {spec['dtype']:<8} {tuple(spec['shape'])}")
    if deep:
        lines.append(f"media     {ds.verify_media()} frames decoded ({', '.join(ds.camera_keys) or 'no cameras'})")
    if ds.stats_note:
        lines.append(f"note      {ds.stats_note}")
    old = ds.root.with_name(ds.root.name + ".old")
    if old.exists():
        lines.append(f"note      {old} is left from an interrupted finalize; the dataset above is complete, delete it")
    return "\n".join(lines)
