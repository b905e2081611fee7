"""Training plumbing: atomic checkpoints, samples/s, safe checkpoint inspection.

* ``AtomicCheckpointIO`` writes every Lightning checkpoint with ``a1lib.io.atomic_torch_save``: a
  temp file in the same directory, flushed to disk, then ``os.replace``d over the target. A run
  killed mid-save (or a full disk) leaves the previous ``last.ckpt`` intact, never a truncated one. Loading uses
  ``torch.load(weights_only=True)``: a checkpoint cannot run code.
* ``SamplesPerSecond`` shows training throughput in the progress bar and logs it.
* ``PlainProgress`` prints a plain progress line now and then (step/total, losses, samples/s, ETA)
  when the progress bar is off (``fit(progress=False)``, ``--no-progress`` under ``dvc repro``).
* ``RunTrace`` records, per process, which samples it trained on at each step and which checkpoint
  files it wrote (to check what DDP does).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from a1lib.io import atomic_torch_save
from a1lib.progress import ProgressLines


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        atomic_torch_save(checkpoint, path, fsync=True)

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


class PlainProgress(L.Callback):
    """``a1lib.progress.ProgressLines`` for a Lightning run: a line at the first multiple of
    ``every_n_steps``, then at a multiple at most every ``interval_s`` seconds, and at the end, with
    the losses shown in the progress bar (``loss``, ``act``, ``gen``), the latest validation loss and
    samples/s. Printing only: the metrics are read from ``trainer.callback_metrics`` when a line is
    due, nothing is logged or changed."""

    SHOWN = ("loss", "act", "gen", "val/loss")

    def __init__(self, every_n_steps: int = 10, interval_s: float = 30.0, desc: str = "train"):
        self.every_n_steps, self.interval_s, self.desc = every_n_steps, interval_s, desc
        self.lines: ProgressLines | None = None

    def _values(self, trainer) -> dict[str, float]:
        metrics = trainer.callback_metrics
        return {k: float(metrics[k]) for k in self.SHOWN if k in metrics}

    def on_train_start(self, trainer, pl_module) -> None:
        self.lines = ProgressLines(self.desc, trainer.max_steps if trainer.max_steps > 0 else None,
                                   every=self.every_n_steps, interval_s=self.interval_s,
                                   initial=trainer.global_step, enabled=trainer.is_global_zero)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.lines is not None:
            n = int(batch["image"].shape[0]) * trainer.world_size
            self.lines.update_to(trainer.global_step, samples=n, values=lambda: self._values(trainer))

    def on_train_end(self, trainer, pl_module) -> None:
        if self.lines is not None:
            self.lines.close(values=lambda: self._values(trainer))


class RunTrace(L.Callback):
    """``FOLDER/rank{r}.jsonl``, what process r did: a line ``{"step", "source_id", "index"}`` per
    training step (the batch's source ids and global frame indices) and a line ``{"step", "saved"}``
    per checkpoint file it wrote itself (not merely took part in)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _write(self, trainer, line: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"rank{trainer.global_rank}.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def setup(self, trainer, pl_module, stage: str) -> None:
        io = trainer.strategy.checkpoint_io
        save = io.save_checkpoint

        def traced(checkpoint, path, *args, **kwargs):
            save(checkpoint, path, *args, **kwargs)
            self._write(trainer, {"step": int(checkpoint.get("global_step", -1)), "saved": Path(path).name})

        io.save_checkpoint = traced

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._write(trainer, {"step": int(trainer.global_step), "source_id": batch["source_id"].tolist(),
                              "index": batch["index"].tolist()})
