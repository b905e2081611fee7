"""The training data: three sources mixed by weight, windows turned into batches by A1Processor.

    sim  (randomised synthetic demos)   --\
    lab  (real-robot stand-in demos)    ---> ConcatDataset --weighted draws--> DataLoader
    human (egocentric video, no action) --/

A source's weight is spread evenly over its frames, so a batch draws ``weight_s`` of its samples
from source s whatever the sources' sizes (the original pretrains on a weighted mix the same way).
Under DDP every process makes the same draws (same seed) and takes its own part of each step's batch:
step k of N processes sees exactly the samples of step k of one process, split N ways (the sharding
is done here, not by Lightning's sampler wrapper, so that this holds by construction). A few whole
episodes per source are held out for the validation loss (windows never cross episodes, so nothing
leaks); N processes split them too.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from a1lib.constants import ACTION, IMAGE, STATE
from a1lib.data import Normalizer, WindowedDataset
from a1lib.data.stats import aggregate_stats
from a1lib.models.processor import A1Processor
from a1lib.sim.tasks import TASK_IDS
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


def task_episodes(ds: Any, tasks: tuple[str, ...] | None) -> list[int]:
    """The episodes of ``ds`` that are one of ``tasks`` (None: all), by the task stored with each
    episode (``scene.task``), never by parsing the instruction (one task has many phrasings)."""
    if tasks is None:
        return list(range(ds.num_episodes))
    if "scene.task" not in ds.features:
        raise ValueError(f"{ds.root}: no scene.task feature, so its episodes' tasks are unknown; train on all "
                         f"of them (tasks: null) or regenerate the data with `a1 data generate`")
    wanted = {TASK_IDS[t] for t in tasks}
    task_of = dict(zip(ds.episode_of.tolist(), ds.columns["scene.task"][:, 0].tolist()))  # episode -> its task id
    return [e for e in range(ds.num_episodes) if task_of[e] in wanted]


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
            episodes = task_episodes(ds, cfg.tasks)
            if not episodes:
                raise ValueError(f"{ds.root}: no episodes of the task(s) {list(cfg.tasks)} for source {s!r}")
            train_idx, val_idx = split_episodes(len(episodes), cfg.val_episodes)
            train_eps, val_eps = [episodes[i] for i in train_idx], [episodes[i] for i in val_idx]
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
        start = int(self.trainer.global_step) if self._trainer_attached() else 0
        rank, world = self._process()
        # Seeded by the step we start at: a resumed run draws fresh (but reproducible) samples. The
        # draws are WeightedRandomSampler's (torch.multinomial with replacement), made on every process.
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + start)
        remaining = max(self.cfg.steps - start, 1)
        b = self.per_process_batch()
        draws = torch.multinomial(self.sample_weights(), remaining * self.cfg.batch_size, replacement=True, generator=g)
        mine = draws.view(remaining, world, b)[:, rank].reshape(-1).tolist()  # (steps, processes, b): my column
        return DataLoader(self.train_set, batch_size=b, sampler=mine,
                          collate_fn=A1Processor.collate, num_workers=self.cfg.num_workers,
                          persistent_workers=self.cfg.num_workers > 0, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_parts or self.cfg.val_batches == 0:
            return []
        rank, world = self._process()
        val = ConcatDataset(self.val_parts)
        n = len(val) // world * world  # every process the same number of batches (they reduce together)
        return DataLoader(Subset(val, range(rank, n, world)), batch_size=self.per_process_batch(),
                          shuffle=False, collate_fn=A1Processor.collate, num_workers=0)

    def per_process_batch(self) -> int:
        """``batch_size`` is per step over all processes; each of the trainer's N draws 1/N of it."""
        world = self._process()[1]
        if self.cfg.batch_size % world:
            raise ValueError(f"batch_size {self.cfg.batch_size} does not split evenly over {world} processes")
        return self.cfg.batch_size // world

    def _trainer_attached(self) -> bool:
        return getattr(self, "trainer", None) is not None

    def _process(self) -> tuple[int, int]:
        """(rank, number of processes) of the run this datamodule feeds: (0, 1) outside a trainer."""
        if not self._trainer_attached():
            return 0, 1
        return int(self.trainer.global_rank), int(self.trainer.world_size)
