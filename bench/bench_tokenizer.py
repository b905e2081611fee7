"""Benchmark the image tokenizer: train time and held-out PSNR.

Frames come from the real datasets when they exist (``--data data``), else from synthetic
tabletop-like scenes (coloured shapes on a table) drawn with numpy.

    .venv/bin/python bench/bench_tokenizer.py --steps 400 --threads 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from a1lib.models.image_tokenizer import ImageTokenizerConfig
from a1lib.train.tokenizers import train_image_tokenizer


def synthetic_episodes(n_episodes: int, frames_per_episode: int, size: int = 64, seed: int = 0):
    """Coloured rectangles and discs drifting over a textured table; (N,H,W,3) uint8, episode ids."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    frames, episodes = [], []
    palette = np.array([[220, 40, 40], [40, 160, 60], [40, 80, 220], [230, 200, 40], [240, 240, 240], [30, 30, 30]])
    for e in range(n_episodes):
        table = np.array([150, 120, 90]) + rng.integers(-30, 30, 3)
        n_obj = rng.integers(2, 5)
        pos = rng.uniform(0.15, 0.85, (n_obj, 2))
        vel = rng.uniform(-0.02, 0.02, (n_obj, 2))
        rad = rng.uniform(0.06, 0.14, n_obj)
        col = palette[rng.integers(0, len(palette), n_obj)]
        disc = rng.random(n_obj) < 0.5
        for t in range(frames_per_episode):
            img = np.empty((size, size, 3), np.float64)
            img[:] = table
            img += 8 * np.sin(40 * yy)[..., None]  # wood grain
            for k in range(n_obj):
                cx, cy = pos[k] + t * vel[k]
                if disc[k]:
                    mask = (xx - cx) ** 2 + (yy - cy) ** 2 < rad[k] ** 2
                else:
                    mask = (abs(xx - cx) < rad[k]) & (abs(yy - cy) < rad[k] * 0.7)
                img[mask] = col[k]
            frames.append(np.clip(img, 0, 255).astype(np.uint8))
            episodes.append(e)
    return np.stack(frames), np.array(episodes)


def real_frames(root: Path, max_frames: int, seed: int):
    from a1lib.data import LeRobotDataset

    frames, episodes, offset = [], [], 0
    for source in ("sim", "lab", "human"):
        if not (root / source).exists():
            continue
        ds = LeRobotDataset(root / source)
        idx = np.arange(len(ds))
        ep = np.zeros(len(ds), np.int64)
        for e, row in enumerate(ds.episodes):
            ep[row["dataset_from_index"] : row["dataset_to_index"]] = offset + e
        offset += len(ds.episodes)
        frames.append(ds.get_frames("observation.image", idx))
        episodes.append(ep)
    frames, episodes = np.concatenate(frames), np.concatenate(episodes)
    if len(frames) > max_frames:
        keep = np.sort(np.random.default_rng(seed).choice(len(frames), max_frames, replace=False))
        frames, episodes = frames[keep], episodes[keep]
    return frames, episodes


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=None, help="dataset root (data/); synthetic frames if omitted")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=ImageTokenizerConfig.lr)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-frames", type=int, default=20000)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.data:
        frames, episodes = real_frames(args.data, args.max_frames, 0)
        source = str(args.data)
    else:
        frames, episodes = synthetic_episodes(200, 20)
        source = "synthetic"
    cfg = ImageTokenizerConfig(train_steps=args.steps, batch_size=args.batch_size, lr=args.lr)
    t0 = time.perf_counter()
    _, metrics = train_image_tokenizer(frames, cfg, episodes)
    metrics["wall_seconds"] = time.perf_counter() - t0
    metrics["source"] = source
    metrics["n_frames"] = int(len(frames))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
