"""A1LightningModule: A1Model's losses, the optimiser and the schedule, with per-source logging.

The model returns PER-SAMPLE losses (the four ``TERMS``: action, generation, understanding,
grounding), each zero where it does not apply, plus the weighted total averaged over the samples
where each term exists:

    action          only where actions exist (has_action; never human video; padded rows ignored)
    generation      only where frame t+delta exists (has_future)
    understanding   only where a scene QA pair was drawn (has_qa)
    grounding       only where a grounding name is in the image (has_grounding; A1Config.grounding)

Here we log each term overall and per source (``train/action/sim`` ...), stop on a non-finite
loss with a message naming the step and the sources, and optimise with AdamW + warmup + cosine.
Under DDP each process sees part of the batch: the per-term, per-source sums and counts are summed
over the processes before any mean is taken, so every process logs the same keys and values, those
of the whole batch (rank 0 writes them).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from a1lib.constants import SOURCES
from a1lib.models.configuration_a1 import A1Config
from a1lib.models.modeling_a1 import A1Model
from a1lib.train.config import TrainConfig
from a1lib.train.schedule import warmup_cosine

TERMS = {"action": "has_action", "generation": "has_future", "understanding": "has_qa", "grounding": "has_grounding"}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the last good checkpoint is kept."""


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr at ``step``: linear warmup, then constant or cosine down to min_lr."""
    floor = 1.0 if cfg.schedule == "constant" else cfg.min_lr / cfg.lr  # floor 1: the cosine is flat
    return warmup_cosine(step, cfg.steps, cfg.warmup_steps, floor=floor)


class A1LightningModule(L.LightningModule):
    """``model_config`` / ``train_config`` are plain dicts (they go into the checkpoint as JSON-like
    hyper-parameters, loadable with ``torch.load(weights_only=True)``)."""

    def __init__(self, model_config: dict[str, Any], train_config: dict[str, Any], model: A1Model | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model_config = A1Config.from_dict(model_config)
        self.cfg = TrainConfig(**train_config)
        self.model = model if model is not None else A1Model(self.model_config)
        self.logged_train_keys: set[str] = set()  # the same on every process: they come from reduced counts

    # -- losses -------------------------------------------------------------------------------------
    def _losses(self, batch: dict[str, torch.Tensor], stage: str, generator: torch.Generator | None = None):
        out = self.model(batch, generator=generator, draws=self.cfg.action_draws if stage == "train" else 1)
        B = batch["image"].shape[0]
        sid = batch["source_id"]
        # (T, S + 1) sums and counts of each term's per-sample loss, per source and (last column) overall
        sums = torch.zeros(len(TERMS), len(SOURCES) + 1, device=sid.device)
        counts = torch.zeros_like(sums)
        for i, (term, flag) in enumerate(TERMS.items()):
            has = batch.get(flag)
            if has is None:
                continue
            per = out[term].detach().float()
            for k in range(len(SOURCES)):
                sel = has & (sid == k)
                sums[i, k], counts[i, k] = per[sel].sum(), sel.sum()
            sums[i, -1], counts[i, -1] = per[has].sum(), has.sum()
        loss = out["loss"].detach().float().reshape(1)
        if self.trainer.world_size > 1:  # the whole batch's numbers on every process
            loss, sums, counts = (self.trainer.strategy.reduce(t, reduce_op="sum") for t in (loss, sums, counts))
            loss = loss / self.trainer.world_size
        # Once a key has been logged in training it is logged at every step, NaN where this batch had
        # no such sample: a key left out would show its last value again in the CSV. (Validation
        # averages over the pass, so there a missing key is simply left out.)
        means = sums / counts  # NaN where the count is 0
        logs: dict[str, torch.Tensor] = {f"{stage}/loss": loss[0]}
        for i, term in enumerate(TERMS):
            for k, name in enumerate([*SOURCES, None]):
                key = f"{stage}/{term}" + (f"/{name}" if name else "")
                if counts[i, k] > 0 and stage == "train":
                    self.logged_train_keys.add(key)
                if counts[i, k] > 0 or key in self.logged_train_keys:
                    logs[key] = means[i, k]
        return out, logs, B * self.trainer.world_size

    def on_train_start(self) -> None:
        if self.trainer.world_size > 1:  # one seed everywhere would draw the same noise on every process
            torch.manual_seed(self.cfg.seed * 1_000_003 + 7_919 * self.trainer.global_rank + self.trainer.global_step)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        out, logs, B = self._losses(batch, "train")
        if not torch.isfinite(out["loss"]):
            self._raise_non_finite(out, batch)
        self.log_dict(logs, on_step=True, on_epoch=False, batch_size=B)
        self.log("loss", logs["train/loss"], prog_bar=True, on_step=True, logger=False, batch_size=B)
        for term, short in (("action", "act"), ("generation", "gen")):
            if torch.isfinite(logs.get(f"train/{term}", torch.tensor(float("nan")))):
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
        names = sorted({SOURCES[k] if 0 <= k < len(SOURCES) else f"source {k}"
                        for k in batch["source_id"][bad].tolist()})
        raise NonFiniteLossError(
            f"non-finite loss at step {self.global_step} (term(s) {terms or ['total']}) from source(s) {names}; "
            f"training stopped, the last good checkpoint (last.ckpt) is kept")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        g = torch.Generator(device=batch["image"].device).manual_seed(10_000 + batch_idx)  # same draw every pass
        _, logs, B = self._losses(batch, "val", generator=g)
        # already the whole batch's numbers on every process; sync_dist only averages equal values
        self.log_dict(logs, on_step=False, on_epoch=True, batch_size=B, sync_dist=self.trainer.world_size > 1)

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
