"""Training the privileged-state MLP (``a1lib.models.privileged``): a plain PyTorch loop.

The inputs are a few hundred numbers per frame, so the whole training set fits in memory as two
arrays (scene features (N, F), action chunks (N, H, A)) and a step is a random batch of rows:
thousands of samples per second on one core. No Lightning here on purpose: this is a reference
baseline, and 30 lines show all of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from a1lib.constants import ACTION, STATE
from a1lib.models.privileged import (
    PrivilegedConfig,
    PrivilegedMLP,
    PrivilegedPolicy,
    scene_features,
)
from a1lib.policy_protocol import InferenceSettings
from a1lib.progress import ProgressLines
from a1lib.train.schedule import warmup_cosine


@dataclass
class PrivilegedTrainConfig:
    """The ``privileged`` section of params.yaml."""

    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    sources: tuple[str, ...] = ("sim", "lab")
    hidden: int = 512
    layers: int = 3
    seed: int = 0
    binary_action_dims: tuple[int, ...] = ()
    replan_every: int | None = None  # the exported policy's actions per chunk before it is asked again (None: all)
    threads: int = 1


def chunk_arrays(ds: Any, horizon: int) -> dict[str, np.ndarray]:
    """Every frame of ``ds`` as (scene features (N, F), action chunk (N, H, A), pad mask (N, H)),
    with the chunk clamped at the episode end as WindowedDataset does."""
    cols = ds.columns
    ends = np.array([e["dataset_to_index"] for e in ds.episodes], dtype=np.int64)[ds.episode_of]  # (N,)
    steps = np.arange(len(ds))[:, None] + np.arange(horizon)[None, :]  # (N, H)
    scene = {k: cols[k] for k in ds.numeric_keys if k.startswith("scene.")}
    return {"x": scene_features(cols[STATE], scene), "actions": cols[ACTION][np.minimum(steps, ends[:, None] - 1)],
            "is_pad": steps > ends[:, None] - 1}


def train_privileged(datasets: dict[str, Any], cfg: PrivilegedTrainConfig, normalizer: Any, horizon: int,
                     progress: bool = True) -> tuple[PrivilegedPolicy, dict[str, float]]:
    """Trains on every frame of ``datasets[s]`` for s in ``cfg.sources``; returns the policy and stats."""
    parts = [chunk_arrays(datasets[s], horizon) for s in cfg.sources]
    x = torch.from_numpy(np.concatenate([p["x"] for p in parts]))
    a = np.concatenate([p["actions"] for p in parts]).astype(np.float32)
    y = torch.from_numpy(np.asarray(normalizer.normalize(ACTION, a), dtype=np.float32))
    valid = torch.from_numpy(~np.concatenate([p["is_pad"] for p in parts]))[:, :, None].float()
    action_dim = a.shape[-1]
    config = PrivilegedConfig(state_dim=datasets[cfg.sources[0]].features[STATE]["shape"][0], action_dim=action_dim,
                              chunk_size=horizon, hidden=cfg.hidden, layers=cfg.layers, seed=cfg.seed)
    model = PrivilegedMLP(config)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, cfg.steps))  # cosine to 0, no warmup
    g = torch.Generator().manual_seed(cfg.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    lines = ProgressLines("privileged", cfg.steps, every=max(1, cfg.steps // 100), enabled=not progress)
    t0 = time.time()
    try:
        for _ in tqdm(range(cfg.steps), desc="privileged", disable=not progress, mininterval=2):
            idx = torch.randint(0, len(x), (cfg.batch_size,), generator=g)
            err = (model(x[idx]) - y[idx]) ** 2 * valid[idx]
            loss = err.sum() / (valid[idx].sum() * action_dim)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            lines.update(1, samples=cfg.batch_size, values=lambda loss=loss: {"loss": float(loss.detach())})
    finally:
        torch.set_num_threads(threads)
    lines.close(values=lambda: {"loss": float(loss.detach())})
    seconds = time.time() - t0
    stats = {"final_loss": float(loss.detach()), "frames": int(len(x)), "samples_seen": cfg.steps * cfg.batch_size,
             "seconds": seconds, "samples_per_s": cfg.steps * cfg.batch_size / max(seconds, 1e-9)}
    return PrivilegedPolicy(model, normalizer, cfg.binary_action_dims, InferenceSettings(cfg.replan_every)), stats
