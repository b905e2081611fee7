"""The training data: three sources mixed by weight, windows turned into batches by A1Processor.

    sim  (randomised synthetic demos)   --\
    lab  (real-robot stand-in demos)    ---> ConcatDataset --WeightedRandomSampler--> DataLoader
    human (egocentric video, no action) --/

A source's weight is spread evenly over its frames, so a batch draws ``weight_s`` of its samples
from source s whatever the sources' sizes (the original pretrains on a weighted mix the same way).
Lightning wraps the sampler for DDP (each rank draws its own share). A few whole episodes per source
are held out for the validation loss (windows never cross episodes, so nothing leaks).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, WeightedRandomSampler

from a1lib.constants import ACTION, IMAGE, STATE
from a1lib.data import Normalizer, WindowedDataset
from a1lib.data.stats import aggregate_stats
from a1lib.models.processor import A1Processor
from a1lib.train.config import TrainConfig


def build_normalizer(datasets: dict[str, Any], mode: str = "mean_std") -> Normalizer:
    """State / action stats pooled over the sources that have them (sim, lab; never human)."""
    per_key: dict[str, list[dict[str, np.ndarray]]] = {STATE: [], ACTION: []}
    for source, ds in datasets.items():
        for key in per_key:
            if key in ds.features:
                if key not in ds.stats:
                    raise ValueError(f"{ds.root}/meta/stats.json: no stats for {key!r} (source {source})")
                per_key[key].append({k: np.asarray(v) for k, v in ds.stats[key].items()})
    missing = [k for k, v in per_key.items() if not v]
    if missing:
        raise ValueError(f"no dataset among {sorted(datasets)} has {missing}: cannot normalise")
    stats = {k: aggregate_stats(v) for k, v in per_key.items()}
    return Normalizer(stats, [STATE, ACTION], mode=mode)


def split_episodes(num_episodes: int, val_episodes: int) -> tuple[list[int], list[int]]:
    """Evenly spaced held-out episodes (so they span the tasks), the rest for training."""
    k = min(val_episodes, max(num_episodes - 1, 0))
    val = sorted(set(np.linspace(num_episodes - 1, 0, num=k).round().astype(int).tolist())) if k else []
    train = [e for e in range(num_episodes) if e not in val]
    return train, val


class SourceWindows(Dataset):
    """Processed training samples of one source over the frames of some episodes."""

    def __init__(self, ds: Any, source: str, processor: A1Processor, episodes: list[int], delta: int,
                 frames: np.ndarray | None = None):
        self.windows = WindowedDataset(ds, delta=delta, horizon=processor.config.chunk_size, source=source,
                                       decode_images=False)
        self.ds, self.source, self.processor = ds, source, processor
        if frames is None:
            frames = np.concatenate([np.arange(ds.episode_frames(e).start, ds.episode_frames(e).stop)
                                     for e in episodes]) if episodes else np.zeros(0, np.int64)
        self.frames = np.asarray(frames, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, j: int) -> dict[str, torch.Tensor]:
        i = int(self.frames[j])
        s = self.windows[i]
        s[IMAGE] = self.ds.get_frames(IMAGE, [i])[0]  # only frame t: history/future come as latents
        return self.processor.process_sample(s)


class A1DataModule(L.LightningDataModule):
    """``datasets``: source -> LeRobotDataset; sources with weight 0 in ``cfg`` are left out."""

    def __init__(self, datasets: dict[str, Any], processor: A1Processor, cfg: TrainConfig):
        super().__init__()
        self.datasets, self.processor, self.cfg = datasets, processor, cfg
        missing = [s for s in cfg.active_sources if s not in datasets]
        if missing:
            raise ValueError(f"source_weights give weight to {missing}, but no dataset was given for them "
                             f"(have {sorted(datasets)})")
        self.sources = cfg.active_sources
        for s in self.sources:  # fail before training, naming the file and the feature
            processor.check_dataset(datasets[s], s)
        self.train_parts: list[SourceWindows] = []
        self.val_parts: list[SourceWindows] = []
        for s in self.sources:
            ds = datasets[s]
            train_eps, val_eps = split_episodes(ds.num_episodes, cfg.val_episodes)
            self.train_parts.append(SourceWindows(ds, s, processor, train_eps, cfg.delta))
            val = SourceWindows(ds, s, processor, val_eps, cfg.delta)
            n_val = min(len(val), max(1, cfg.val_batches * cfg.batch_size // len(self.sources)))
            if len(val):  # a fixed, evenly spaced subset of the held-out frames
                val.frames = val.frames[np.linspace(0, len(val) - 1, num=n_val).round().astype(int)]
                self.val_parts.append(val)
            if not len(self.train_parts[-1]):
                raise ValueError(f"{ds.root}: no training frames for source {s!r}")
        self.train_set = ConcatDataset(self.train_parts)

    def sample_weights(self) -> torch.Tensor:
        """(N,) sampling weight per training sample: source weight / source size (sums to 1)."""
        total = sum(self.cfg.source_weights[s] for s in self.sources)
        parts = [torch.full((len(p),), self.cfg.source_weights[s] / total / len(p), dtype=torch.float64)
                 for s, p in zip(self.sources, self.train_parts)]
        return torch.cat(parts)

    def train_dataloader(self) -> DataLoader:
        trainer = getattr(self, "trainer", None)
        start = int(trainer.global_step) if trainer is not None else 0
        world = int(trainer.world_size) if trainer is not None else 1
        # Seeded by the step we start at: a resumed run draws fresh (but reproducible) samples.
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + start)
        remaining = max(self.cfg.steps - start, 1)
        sampler = WeightedRandomSampler(self.sample_weights(), num_samples=remaining * self.cfg.batch_size * world,
                                        replacement=True, generator=g)
        return DataLoader(self.train_set, batch_size=self.cfg.batch_size, sampler=sampler,
                          collate_fn=A1Processor.collate, num_workers=self.cfg.num_workers,
                          persistent_workers=self.cfg.num_workers > 0, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_parts or self.cfg.val_batches == 0:
            return []
        return DataLoader(ConcatDataset(self.val_parts), batch_size=self.cfg.batch_size, shuffle=False,
                          collate_fn=A1Processor.collate, num_workers=0)
