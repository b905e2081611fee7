"""Training plumbing: atomic checkpoints, samples/s, safe checkpoint inspection.

* ``AtomicCheckpointIO`` writes every Lightning checkpoint to a temp file in the same directory,
  flushes it to disk, then ``os.replace``s it over the target. A run killed mid-save (or a full
  disk) leaves the previous ``last.ckpt`` intact, never a truncated one. Loading uses
  ``torch.load(weights_only=True)``: a checkpoint cannot run code.
* ``SamplesPerSecond`` shows training throughput in the progress bar and logs it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if tmp.exists():
                tmp.unlink()
            raise

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint as a dict, safely (weights_only), with a clear error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holds non-tensor objects
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e


class SamplesPerSecond(L.Callback):
    """Throughput over training steps, wall clock from one batch start to the next, so data loading
    counts (the first ``skip`` steps, with warm-up costs, excluded)."""

    def __init__(self, skip: int = 2):
        self.skip = skip
        self.samples = 0
        self.seconds = 0.0
        self._last = None
        self._seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last is not None:
            dt = now - self._last
            n = int(batch["image"].shape[0]) * trainer.world_size
            self._seen += 1
            if self._seen > self.skip:
                self.samples += n
                self.seconds += dt
            pl_module.log("samples_per_s", n / max(dt, 1e-9), prog_bar=True, on_step=True, logger=True, batch_size=n)
        self._last = now

    @property
    def rate(self) -> float | None:
        return self.samples / self.seconds if self.seconds > 0 else None
