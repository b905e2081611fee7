"""What `a1 tokenizer train` trains on: the image tokenizer (VAE) and the text tokenizer, once, then frozen.

Reads frames from all three sources (sim, lab, human) so that one tokenizer covers every domain,
as the original's Cosmos tokenizer does, trains the VAE, builds the word-level text tokenizer
from every instruction plus the scene QA strings, and writes (atomically, as one directory)::

    artifacts/tokenizer/image/            diffusers AutoencoderKL (safetensors) + image_tokenizer.json
    artifacts/tokenizer/text/tokenizer.json
    artifacts/tokenizer/metrics.json      held-out PSNR (overall and per source), timings, vocab size
    artifacts/tokenizer/summary.json      the few numbers to compare (``tokenizer_summary``; ``dvc metrics show FILE``)

Settings: the ``tokenizer`` section of params.yaml (``TokenizerConfig`` below), e.g.::

    tokenizer:
      max_train_frames: 8192
      text_vocab_size: 1024
      image: {train_steps: 400, batch_size: 32, block_out_channels: [16, 32, 64, 64]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from a1lib.constants import IMAGE, SOURCES
from a1lib.data import LeRobotDataset
from a1lib.models.image_tokenizer import (
    ImageTokenizerConfig,
    object_masks,
)


@dataclass
class TokenizerConfig:
    image: ImageTokenizerConfig = field(default_factory=ImageTokenizerConfig)
    text_vocab_size: int = 1024
    max_train_frames: int = 8192  # frames sampled (without replacement) across the sources
    sources: tuple[str, ...] = SOURCES
    seed: int = 0  # frame sampling


def load_frames(
    data_root: Path, sources: tuple[str, ...], max_frames: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """Frames uint8 (N,H,W,3), global episode id (N,), source id (N,), all dataset instructions, and
    the object masks (N,H,W) bool (``image_tokenizer.object_masks``; None if a dataset has no scene).

    When the sources hold more than ``max_frames`` frames, each source contributes in proportion
    to its size (at least one frame per source).
    """

    datasets = []
    for source in sources:
        root = data_root / source
        if not root.exists():
            raise FileNotFoundError(f"{root}: dataset not found (run `a1 data generate` first)")
        datasets.append(LeRobotDataset(root))
    sizes = np.array([len(ds) for ds in datasets])
    total = int(sizes.sum())
    if total == 0:
        raise ValueError(f"{data_root}: the datasets {list(sources)} hold no frames")
    quota = sizes if total <= max_frames else np.maximum(1, np.floor(sizes * max_frames / total)).astype(int)
    rng = np.random.default_rng(seed)
    frames, episode_ids, source_ids, tasks, masks = [], [], [], [], []
    episode_offset = 0
    for s, (ds, n) in enumerate(zip(datasets, quota)):
        episode_of_frame = np.full(len(ds), -1, np.int64)
        for e, ep in enumerate(ds.episodes):
            episode_of_frame[ep["dataset_from_index"] : ep["dataset_to_index"]] = episode_offset + e
        episode_offset += len(ds.episodes)
        idx = np.sort(rng.choice(len(ds), size=int(min(n, len(ds))), replace=False))
        frames.append(np.asarray(ds.get_frames(IMAGE, idx)))
        cols = ds.columns
        if masks is not None and "scene.pose" in cols and "scene.kind" in cols:
            camera = cols["scene.camera"][idx] if "scene.camera" in cols else None
            masks.append(object_masks(cols["scene.pose"][idx], cols["scene.kind"][idx], camera, frames[-1].shape[1]))
        else:
            masks = None
        episode_ids.append(episode_of_frame[idx])
        source_ids.append(np.full(len(idx), s, np.int64))
        tasks += list(ds.tasks)
    return (np.concatenate(frames), np.concatenate(episode_ids), np.concatenate(source_ids), tasks,
            None if masks is None else np.concatenate(masks))


SUMMARY_KEYS = ("psnr_heldout_db", "psnr_objects_heldout_db", "train_seconds")


def tokenizer_summary(metrics: dict[str, Any]) -> dict[str, float]:
    """The few numbers to compare across runs (``summary.json``; ``dvc metrics show FILE`` reads it) from the
    tokenizer's ``metrics.json``: held-out PSNR over all pixels and over the object pixels, and the
    image tokenizer's training time. Missing or non-finite values are left out."""
    return {k: float(metrics[k]) for k in SUMMARY_KEYS
            if isinstance(metrics.get(k), (int, float)) and not isinstance(metrics[k], bool)
            and math.isfinite(metrics[k])}
