"""``a1 data generate``: roll out the scripted experts and write one LeRobot dataset per source.

    a1 data generate [--params params.yaml] [--preset ci|cpu|gpu] [--out data] [--sources sim,lab,human]

writes ``data/sim``, ``data/lab`` and ``data/human``. Every episode comes from
``a1lib.sim.record.record_expert_episode(task, domain, seed, image_size)`` with a seed from
``a1lib.data.seeds.train_seed`` (disjoint from evaluation seeds). Only successful expert episodes
are kept: a failed seed is skipped and the next index tried, so which seeds end up in the dataset
is a pure function of the config.

Rollouts run in ``workers`` processes, but results are consumed in (task, seed index) order, so
the bytes on disk do not depend on the number of workers or on timing: generating twice gives
identical files. ``human`` has no ``observation.state`` and no ``action`` (egocentric video).
"""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from a1lib.constants import SOURCES
from a1lib.data.errors import DatasetError
from a1lib.data.info import dir_size_mb
from a1lib.data.seeds import train_seed
from a1lib.data.writer import LeRobotWriter
from a1lib.progress import ProgressLines
from a1lib.sim import ACTION_NAMES, SCENE_FEATURES, STATE_NAMES
from a1lib.sim.record import record_expert_episode

ALL_TASKS = (
    "SortParts", "ZipBag", "UnscrewCap", "PlaceFlower", "WipeStain", "SortRubbish", "SweepTrash",
    "PlaceMarkpen", "ExpressSorting", "IngredientPicking",
)
MAX_ATTEMPTS_PER_EPISODE = 5  # give up on a task whose expert fails this often


@dataclass
class DataGenConfig:
    image_size: int = 64
    fps: int = 10
    seed: int = 0
    tasks: tuple[str, ...] = ALL_TASKS
    sim_episodes_per_task: int = 40
    lab_episodes_per_task: int = 8
    human_episodes_per_task: int = 15
    dart_noise: float = 0.0  # > 0: DART demonstrations (noise on executed velocities, clean labels); sim and lab
    workers: int = 2

    def episodes_per_task(self, source: str) -> int:
        return getattr(self, f"{source}_episodes_per_task")


@dataclass
class SimAPI:
    """What the generator needs from the simulator (injectable so tests can use a fake)."""

    record: Callable[..., Any]  # record_expert_episode(task, domain, seed, image_size) -> EpisodeRecord
    scene_features: dict[str, Any]
    state_names: list[str]
    action_names: list[str]


def default_sim_api() -> SimAPI:
    return SimAPI(record_expert_episode, dict(SCENE_FEATURES), list(STATE_NAMES), list(ACTION_NAMES))


def scene_name(name: str) -> str:
    return name if name.startswith("scene.") else f"scene.{name}"


def dataset_features(api: SimAPI, source: str, image_size: int) -> dict[str, dict[str, Any]]:
    feats: dict[str, dict[str, Any]] = {
        "observation.image": {"dtype": "image", "shape": [image_size, image_size, 3],
                              "names": ["height", "width", "channels"]},
    }
    if source != "human":
        feats["observation.state"] = {"dtype": "float32", "shape": [len(api.state_names)],
                                      "names": list(api.state_names)}
        feats["action"] = {"dtype": "float32", "shape": [len(api.action_names)], "names": list(api.action_names)}
    for name, spec in api.scene_features.items():
        if isinstance(spec, dict):
            dtype, shape, names = spec["dtype"], list(spec["shape"]), spec.get("names")
        else:  # (dtype, shape)
            dtype, shape, names = spec[0], list(spec[1]), None
        feats[scene_name(name)] = {"dtype": str(np.dtype(dtype)), "shape": shape, "names": names}
    return feats


def _record_job(job: tuple) -> dict[str, Any]:
    """Worker: one expert rollout -> plain dict of arrays (runs in a child process)."""
    record, task, domain, seed, image_size, dart_noise = job
    rec = (record(task, domain, seed, image_size, dart_noise=dart_noise) if dart_noise > 0
           else record(task, domain, seed, image_size))
    return {
        "success": bool(rec.success),
        "instruction": str(rec.instruction),
        "images": np.asarray(rec.images),
        "states": np.asarray(rec.states),
        "actions": np.asarray(rec.actions),
        "scene": {scene_name(k): np.asarray(v) for k, v in rec.scene.items()},
    }


def _write_episode(writer: LeRobotWriter, ep: dict[str, Any], source: str) -> int:
    T = len(ep["images"])
    for t in range(T):
        frame = {"observation.image": ep["images"][t]}
        if source != "human":
            frame["observation.state"] = ep["states"][t].astype(np.float32)
            frame["action"] = ep["actions"][t].astype(np.float32)
        for key in writer.user_keys:
            if key.startswith("scene."):
                if key not in ep["scene"]:
                    raise DatasetError(f"episode scene has no {key!r}; has {sorted(ep['scene'])}")
                frame[key] = ep["scene"][key][t]
        writer.add_frame(frame)
    writer.save_episode(task=ep["instruction"])
    return T


def generate_source(cfg: DataGenConfig, source: str, out: Path, api: SimAPI, pool=None,
                    progress: bool = True) -> dict[str, Any]:
    """Write ``out/source``; returns a summary dict. ``progress``: a tqdm bar; False: plain progress
    lines (``a1lib.progress``) for logs."""
    t0 = time.time()
    n_per_task = cfg.episodes_per_task(source)
    writer = LeRobotWriter(out / source, cfg.fps, dataset_features(api, source, cfg.image_size),
                           robot_type=f"a1lib-{source}", overwrite=True)
    frames = failures = 0
    try:
        lines = ProgressLines(f"data/{source}", n_per_task * len(cfg.tasks), unit="episode", sample_unit="frames",
                              enabled=not progress)
        with tqdm(total=n_per_task * len(cfg.tasks), desc=f"data/{source}", unit="ep", disable=not progress) as bar:
            for task in cfg.tasks:
                kept, next_index = 0, 0
                while kept < n_per_task:
                    if next_index >= MAX_ATTEMPTS_PER_EPISODE * n_per_task:
                        raise DatasetError(f"{source}/{task}: expert succeeded {kept} times in {next_index} seeds; "
                                           "giving up")
                    # One batch of exactly the missing count, consumed in index order: the kept
                    # seeds are the first n successes, whatever the number of workers.
                    dart = cfg.dart_noise if source != "human" else 0.0
                    jobs = [(api.record, task, source, train_seed(source, task, j, cfg.seed), cfg.image_size, dart)
                            for j in range(next_index, next_index + n_per_task - kept)]
                    next_index += len(jobs)
                    results = pool.imap(_record_job, jobs) if pool is not None else map(_record_job, jobs)
                    for ep in results:
                        if not ep["success"]:
                            failures += 1
                            continue
                        written = _write_episode(writer, ep, source)
                        frames += written
                        kept += 1
                        bar.update(1)
                        lines.update(1, samples=written, values={"task": task, "failed seeds": failures})
        root = writer.finalize()
    except BaseException:
        writer.abort()
        raise
    return {"source": source, "episodes": n_per_task * len(cfg.tasks), "frames": frames,
            "failed_seeds": failures, "mb": dir_size_mb(root), "seconds": time.time() - t0}


def generate(cfg: DataGenConfig, out: str | Path, sources: list[str] | tuple[str, ...] = SOURCES,
             api: SimAPI | None = None, progress: bool = True) -> list[dict[str, Any]]:
    out = Path(out)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; choose from {SOURCES}")
    api = api or default_sim_api()
    summaries = []
    if cfg.workers > 1:
        with multiprocessing.get_context("spawn").Pool(cfg.workers) as pool:
            for source in sources:
                summaries.append(generate_source(cfg, source, out, api, pool, progress=progress))
    else:
        for source in sources:
            summaries.append(generate_source(cfg, source, out, api, progress=progress))
    return summaries


def format_summary(summaries: list[dict[str, Any]]) -> str:
    lines = [f"{'source':<8}{'episodes':>10}{'frames':>10}{'failed':>8}{'MB':>10}{'seconds':>10}"]
    for s in summaries:
        lines.append(f"{s['source']:<8}{s['episodes']:>10}{s['frames']:>10}{s['failed_seeds']:>8}{s['mb']:>10.2f}{s['seconds']:>10.1f}")
    return "\n".join(lines)
