"""``fit``: one training run with Lightning, resumable, exported as an A1Policy.

    out/
        checkpoints/last.ckpt   resume point, written atomically every ``checkpoint_every`` steps
        logs/version_N/metrics.csv   CSVLogger, one version per (re)start (per-source losses)
        tensorboard/            TensorBoard (optional)
        policy/                 the exported A1Policy (A1Policy.save_pretrained format)

A killed run started again with the same ``out`` resumes from ``last.ckpt`` and stops at the same
final step count. Several processes (``TrainConfig.devices``, or ``torchrun --nproc_per_node N``) train
with DDP: each draws ``batch_size / N`` of every step's batch, rank 0 alone writes the checkpoint,
the logs and the policy. Everything that can be checked before training is: the checkpoint is readable
and was made with the same model config; every dataset's features fit the model config; the
normaliser and tokenizer fit it too.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from a1lib.models.configuration_a1 import A1Config
from a1lib.models.modeling_a1 import A1Model
from a1lib.models.policy_a1 import A1Policy, CheckpointError
from a1lib.models.processor import A1Processor
from a1lib.train.callbacks import AtomicCheckpointIO, PlainProgress, SamplesPerSecond, read_checkpoint
from a1lib.train.config import TrainConfig
from a1lib.train.datamodule import A1DataModule
from a1lib.train.module import A1LightningModule
from a1lib.train.vision import freeze_vision, load_vision

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
POLICY_DIR = "policy"


def lightning_precision(precision: str) -> str:
    """"auto": bf16 autocast on hardware that supports it (CUDA bf16), fp32 everywhere else."""
    precision = str(precision)
    if precision == "auto":
        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    return {"32": "32-true", "bf16": "bf16-mixed"}[precision]


@dataclass
class Processes:
    """Where a run's processes come from: ``devices`` per machine on ``nodes`` machines."""

    devices: int
    nodes: int
    strategy: str  # a Lightning strategy name

    @property
    def world(self) -> int:
        return self.devices * self.nodes


def processes(cfg: TrainConfig) -> Processes:
    """The processes of a run: ``cfg.devices`` (0: torchrun's ``LOCAL_WORLD_SIZE``, else 1) per
    machine, as many machines as torchrun's ``WORLD_SIZE`` implies; DDP when there are several.
    Clear errors for what cannot work: a batch that does not split evenly, FSDP without CUDA (Lightning
    2.6 accepts FSDP on GPU accelerators only)."""
    devices = cfg.devices or int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    nodes = max(int(os.environ.get("WORLD_SIZE", devices)) // devices, 1)
    strategy = cfg.strategy
    if strategy == "auto":
        strategy = "ddp" if devices * nodes > 1 else "auto"
    if strategy == "fsdp" and not torch.cuda.is_available():
        raise ValueError("strategy 'fsdp': Lightning shards with FSDP on CUDA GPUs only; on CPU use strategy 'ddp'")
    if cfg.batch_size % (devices * nodes):
        raise ValueError(f"batch_size {cfg.batch_size} (per step, over all processes) does not split evenly "
                         f"over {devices * nodes} processes")
    return Processes(devices, nodes, strategy)


def lightning_strategy(name: str):
    """Our strategy name -> what Lightning's Trainer takes.

    * ddp: some sub-passes run only for the samples that need them (QA, future, human video), so one
      process can leave parameters unused that another uses: DDP must look for them each step.
    * fsdp: one FSDP unit, the whole model (the MoT layer reads each expert's weights itself instead
      of calling the decoder layers, so per-layer units would never be gathered); parameters,
      gradients and AdamW state are sharded between steps and gathered for the forward pass;
      ``use_orig_params`` keeps the parameter names the weight-decay groups are made from; the
      checkpoint holds the full state dict, so it resumes and exports as any other.
    """
    if name == "ddp":
        return "ddp_find_unused_parameters_true"
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        return FSDPStrategy(use_orig_params=True, state_dict_type="full")
    return name


def check_resume(last: Path, config: A1Config) -> int:
    """Global step of a resumable checkpoint made with ``config``; clear errors otherwise."""
    ck = read_checkpoint(last)
    hp = ck.get("hyper_parameters", {})
    saved = hp.get("model_config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{last}: not an A1 training checkpoint (no model_config hyper-parameter)")
    now = config.to_dict()
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diff:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now.get(k)!r}" for k in diff[:8])
        raise CheckpointError(f"{last}: made with a different model config ({detail}); "
                              f"use another --out or start over with --no-resume")
    return int(ck.get("global_step", 0))


class _DropMessage(logging.Filter):
    def __init__(self, *texts: str):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(t in record.getMessage() for t in self.texts)


@contextlib.contextmanager
def without_lightning_noise() -> Iterator[None]:
    """Drops the messages Lightning 2.6 prints on every run, that no Trainer argument avoids and that
    say nothing about the run (in a notebook each is a pink stderr box); every other warning and log
    line is kept:

    * the "Tip: ... try installing [litlogger]" advert, logged (INFO, logger
      ``lightning.pytorch.utilities.rank_zero``) by ``Trainer.__init__`` whenever no LitLogger is used;
    * on a machine without CUDA, its "GPU / TPU / HPU available: False" lines (same logger): a CPU run
      is all there is;
    * torch's FutureWarning "`isinstance(treespec, LeafSpec)` is deprecated", raised inside Lightning
      itself (``lightning/pytorch/utilities/_pytree.py`` builds a ``LeafSpec()`` when its
      CombinedLoader flattens our DataLoader): only a newer Lightning can fix it.

    Only while the Trainer is built and runs (``fit``).
    """
    tip = _DropMessage("try installing [litlogger]",
                       *(() if torch.cuda.is_available() else ("GPU available:", "TPU available:", "HPU available:")))
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    rank_zero.addFilter(tip)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                                    category=FutureWarning)
            yield
    finally:
        rank_zero.removeFilter(tip)


@dataclass
class FitResult:
    policy_dir: Path
    last_checkpoint: Path
    global_step: int
    resumed_from: int | None
    samples_per_s: float | None
    seconds: float
    rank: int = 0  # of this process; only rank 0 wrote the checkpoint, the logs and the policy
    world_size: int = 1


def fit(config: A1Config, cfg: TrainConfig, datasets: dict[str, Any], processor: A1Processor, out: str | Path,
        init_model: A1Model | None = None, resume: bool = True, progress: bool = True,
        extra_callbacks: list | None = None) -> FitResult:
    out = Path(out)
    ckpt_dir = out / CHECKPOINT_DIR
    last = ckpt_dir / LAST
    processor.check_normalizer()
    if processor.config.to_dict() != config.to_dict():
        raise ValueError("fit: the processor was built for a different A1Config")
    if init_model is not None and init_model.config.to_dict() != config.to_dict():
        raise CheckpointError("fit: the initial model's config differs from the training config")
    if cfg.freeze_vision and init_model is None and not cfg.init_vision:
        raise ValueError("freeze_vision with a fresh model and no init_vision would train around a random, frozen "
                         "vision path: set init_vision (a1 pretrain-vision's output) or freeze_vision: false")
    procs = processes(cfg)
    datamodule = A1DataModule(datasets, processor, cfg)  # checks every dataset against the config
    rank = rank_zero_only.rank  # from the launcher's environment, before any process group exists
    resumed_from = None
    if resume and last.exists():
        resumed_from = check_resume(last, config)
        if rank == 0:
            print(f"resuming from {last} (step {resumed_from} of {cfg.steps})")
    elif last.exists() and rank == 0:
        last.unlink()
    if procs.world > 1 and not torch.cuda.is_available():  # CPU processes share the cores
        torch.set_num_threads(min(torch.get_num_threads(), max(1, (os.cpu_count() or 1) // procs.devices)))

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = init_model if init_model is not None else A1Model(config)
    if cfg.init_vision and init_model is None:
        load_vision(model, cfg.init_vision)
    if cfg.freeze_vision:
        freeze_vision(model)
    module = A1LightningModule(config.to_dict(), dataclasses.asdict(cfg), model=model)
    loggers: list = []
    if cfg.csv_logger:
        loggers.append(CSVLogger(out, name="logs"))  # logs/version_N/metrics.csv, one per (re)start
    if cfg.tensorboard:
        loggers.append(TensorBoardLogger(out, name="tensorboard"))
    rate = SamplesPerSecond()
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:07d}", auto_insert_metric_name=False,
                                 every_n_train_steps=cfg.checkpoint_every, save_last=True, save_top_k=1)
    callbacks = [checkpoint, rate, *(extra_callbacks or [])]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=max(1, min(cfg.log_every, 10))))
    else:  # logs (dvc repro): a plain line every log_every steps, at most one per 30 s
        callbacks.append(PlainProgress(every_n_steps=cfg.log_every, desc=out.name or "train"))
    with without_lightning_noise():
        trainer = L.Trainer(
            accelerator="auto", devices=procs.devices, num_nodes=procs.nodes,
            strategy=lightning_strategy(procs.strategy),
            use_distributed_sampler=False,  # A1DataModule gives each process its part of every batch
            max_steps=cfg.steps, precision=lightning_precision(cfg.precision),
            gradient_clip_val=cfg.grad_clip, gradient_clip_algorithm="norm",
            val_check_interval=min(cfg.val_every, cfg.steps), check_val_every_n_epoch=None,
            limit_val_batches=cfg.val_batches, num_sanity_val_steps=0,
            log_every_n_steps=cfg.log_every, logger=loggers or False, callbacks=callbacks,
            plugins=[AtomicCheckpointIO()], enable_progress_bar=progress, enable_model_summary=False,
            default_root_dir=out,
        )
        t0 = time.time()
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resumed_from is not None else None,
                    weights_only=True)
    trainer.save_checkpoint(last, weights_only=False)  # the final state, whatever the checkpoint interval
    policy_dir = out / POLICY_DIR
    if trainer.is_global_zero:
        # the weights of the resume point, whole: under FSDP the live parameters are only shards
        model = A1Model(config)
        model.load_state_dict({k.removeprefix("model."): v for k, v in read_checkpoint(last)["state_dict"].items()})
        model = model.float().eval()
        A1Policy(model, processor, cfg.inference_settings,
                 binary_action_dims=cfg.binary_action_dims).save_pretrained(policy_dir)
    return FitResult(policy_dir, last, int(trainer.global_step), resumed_from, rate.rate, time.time() - t0,
                     int(trainer.global_rank), trainer.world_size)


def read_csv_log(run_dir: str | Path) -> dict[str, np.ndarray]:
    """Every Lightning CSVLogger file under ``run_dir/logs`` as {column: values}, NaN where empty.

    A resumed run writes a new ``version_N``; all the versions are read and their rows concatenated
    in version order (``version_0`` first), so the curve covers the whole run.
    """
    files = sorted(Path(run_dir).glob("logs/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not files:
        raise FileNotFoundError(f"{run_dir}: no logs/version_*/metrics.csv (did the training stage run?)")
    rows: list[dict[str, str]] = []
    for f in files:
        with open(f, newline="") as fh:
            rows += list(csv.DictReader(fh))
    columns = sorted({k for r in rows for k in r})
    return {c: np.array([float(r[c]) if r.get(c) not in (None, "") else np.nan for r in rows]) for c in columns}


def last_logged(run_dir: str | Path, keep: Callable[[str], bool]) -> dict[str, float]:
    """The last logged (non-empty) value of every column ``keep`` accepts, e.g. the final losses."""
    return {k: float(v[~np.isnan(v)][-1]) for k, v in read_csv_log(run_dir).items() if keep(k) and (~np.isnan(v)).any()}
