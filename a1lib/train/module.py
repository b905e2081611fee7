"""A1LightningModule: A1Model's losses, the optimiser and the schedule, with per-source logging.

The model returns PER-SAMPLE losses (action, generation, understanding), each zero where it does
not apply, plus the weighted total averaged over the samples where each term exists:

    action          only where actions exist (has_action; never human video; padded rows ignored)
    generation      only where frame t+delta exists (has_future)
    understanding   only where a scene QA pair was drawn (has_qa)

Here we log each term overall and per source (``train/action/sim`` ...), stop on a non-finite
loss with a message naming the step and the sources, and optimise with AdamW + warmup + cosine.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from a1lib.constants import SOURCES
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.modeling_a1 import A1Model
from a1lib.train.config import TrainConfig

TERMS = {"action": "has_action", "generation": "has_future", "understanding": "has_qa", "grounding": "has_grounding"}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr at ``step``: linear warmup, then constant or cosine down to min_lr."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    floor = cfg.min_lr / cfg.lr
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class A1LightningModule(L.LightningModule):
    """``model_config`` / ``train_config`` are plain dicts (they go into the checkpoint as JSON-like
    hyper-parameters, loadable with ``torch.load(weights_only=True)``)."""

    def __init__(self, model_config: dict[str, Any], train_config: dict[str, Any], model: A1Model | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model_config = A1Config.from_dict(model_config)
        self.cfg = TrainConfig(**train_config)
        self.model = model if model is not None else A1Model(self.model_config)

    # -- losses -------------------------------------------------------------------------------------
    def _losses(self, batch: dict[str, torch.Tensor], stage: str, generator: torch.Generator | None = None):
        out = self.model(batch, generator=generator)
        B = batch["image"].shape[0]
        logs: dict[str, torch.Tensor] = {f"{stage}/loss": out["loss"].detach()}
        sid = batch["source_id"]
        for term, flag in TERMS.items():
            has = batch.get(flag)
            if has is None or not has.any():
                continue
            per = out[term].detach()
            logs[f"{stage}/{term}"] = per[has].mean()
            for k, name in enumerate(SOURCES):
                sel = has & (sid == k)
                if sel.any():
                    logs[f"{stage}/{term}/{name}"] = per[sel].mean()
        return out, logs, B

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out, logs, B = self._losses(batch, "train")
        if not torch.isfinite(out["loss"]):
            self._raise_non_finite(out, batch)
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=B)
        self.log("loss", out["loss"].detach(), prog_bar=True, on_step=True, logger=False, batch_size=B)
        for term, short in (("action", "act"), ("generation", "gen")):
            if f"train/{term}" in logs:
                self.log(short, logs[f"train/{term}"], prog_bar=True, on_step=True, logger=False, batch_size=B)
        self.log("lr", self.optimizers().param_groups[0]["lr"], on_step=True, batch_size=B)
        return out["loss"]

    def _raise_non_finite(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        bad = torch.zeros_like(batch["source_id"], dtype=torch.bool)
        terms = []
        for term in TERMS:
            nf = ~torch.isfinite(out[term])
            if nf.any():
                terms.append(term)
                bad |= nf
        if not bad.any():  # the total is bad but no term is: blame every sample
            bad[:] = True
        names = sorted({SOURCES[k] if 0 <= k < len(SOURCES) else f"source {k}" for k in batch["source_id"][bad].tolist()})
        raise NonFiniteLossError(
            f"non-finite loss at step {self.global_step} (term(s) {terms or ['total']}) from source(s) {names}; "
            f"training stopped, the last good checkpoint (last.ckpt) is kept")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        g = torch.Generator(device=batch["image"].device).manual_seed(10_000 + batch_idx)  # same draw every pass
        _, logs, B = self._losses(batch, "val", generator=g)
        self.log_dict(logs, on_step=False, on_epoch=True, batch_size=B)

    # -- optimiser ----------------------------------------------------------------------------------
    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)  # matrices decay; biases, norms do not
        cfg = self.cfg
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, cfg))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
