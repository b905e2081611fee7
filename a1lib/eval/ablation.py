"""Ablations: the paper's claims as model variants, trained and evaluated on one shared budget.
This module holds the variants, the budget (``AblationConfig``) and the pooling of seeds; the runs
themselves are ``a1lib.workflows.ablation``:

    a1 ablation run   --variant pi0_style [--out experiments/ablations/pi0_style]
    a1 ablation train --variant pi0_style --seed 1 --out experiments/ablations/pi0_style/runs/seed1
    a1 ablation report [--dir experiments/ablations] [--out figures]

Every variant changes ONE thing against ``a1_full`` (see VARIANTS). Fairness: all variants get the
same pretraining and fine-tuning steps and batch (the ``ablation`` section of the preset; everything
else from its ``pretrain`` / ``finetune`` sections), the same training seeds, and the same
evaluation episodes (``eval_seed(task, i)``). ``no_pretrain`` spends no pretraining steps: that is
the ablation.

``run`` trains the seeds in parallel processes (one torch thread each: on a 2-core machine two
single-threaded runs do ~1.6x the samples/s of one two-threaded run), evaluates every seed's policy
in the lab domain, and, for the generation-expert variants, sweeps the conveyor and turntable speed
of the dynamic tasks. ``OUT/metrics.json`` holds per-seed and pooled success with 95% Wilson
intervals plus the held-out action loss of each fine-tuning run, so variants can be compared even
where closed-loop success is zero. A killed ``train`` resumes from its ``last.ckpt``; a finished
one drops its optimizer checkpoints (the exported ``policy/`` is what the evaluation needs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a1lib.eval.evaluate import numbers, wilson_interval
from a1lib.train.trainer import last_logged


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    model: dict[str, Any] = field(default_factory=dict)  # A1Config overrides
    pretrain_sources: tuple[str, ...] | None = None  # None: the preset's mix; (): no pretraining
    sweep: bool = False  # also run the speed sweep on the dynamic tasks


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("a1_full", "A1: three experts, sim+lab+human pretraining, understanding loss on", sweep=True),
    Variant("pi0_style", "no generation expert (two experts, no middle tokens), otherwise identical",
            model={"generation": "none"}, sweep=True),
    Variant("no_future_loss", "history latents kept, no future-prediction loss",
            model={"generation": "no_future_loss"}, sweep=True),
    Variant("no_pretrain", "no robot-data pretraining: fine-tuned on the same lab demos from the vision stage's weights only", pretrain_sources=()),
    Variant("data_sim", "pretrained on sim only", pretrain_sources=("sim",)),
    Variant("data_sim_human", "pretrained on sim + human video", pretrain_sources=("sim", "human")),
    Variant("data_sim_lab", "pretrained on sim + lab", pretrain_sources=("sim", "lab")),
    Variant("no_understanding", "understanding (scene QA) loss off", model={"lambda_und": 0.0}),
]}


@dataclass
class AblationConfig:
    """The ``ablation`` section of a preset in params.yaml."""

    seeds: tuple[int, ...] = (0, 1)  # training seeds (model init, data order)
    pretrain_steps: int = 600
    finetune_steps: int = 200
    episodes: int = 5  # per task and seed, on the fixed evaluation seeds
    tasks: tuple[str, ...] | None = None  # None = all ten
    belt_speeds: tuple[float, ...] = (0.0, 0.15, 0.3)  # ExpressSorting sweep (table units / s)
    turntable_speeds: tuple[float, ...] = (0.0, 0.7, 1.4)  # IngredientPicking sweep (rad / s)
    sweep_episodes: int = 5
    parallel: int = 2  # seeds trained at once (one torch thread each) and evaluation workers

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"ablation.seeds must be distinct and non-empty, got {self.seeds}")
        for name in ("pretrain_steps", "finetune_steps", "episodes", "sweep_episodes", "parallel"):
            if getattr(self, name) < 1:
                raise ValueError(f"ablation.{name} must be >= 1, got {getattr(self, name)}")
        self.seeds = tuple(int(s) for s in self.seeds)


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown ablation variant {name!r}; have {sorted(VARIANTS)}")
    return VARIANTS[name]


def final_val_losses(run_dir: Path) -> dict[str, float]:
    """The last logged validation losses of a training run (held-out episodes)."""
    return last_logged(run_dir, lambda key: key.startswith("val/"))


def pool_seeds(rows: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
    """Every seed's episodes of a task pooled into one rate with a Wilson interval (per task, overall)."""
    def rate(k: int, n: int) -> dict[str, Any]:
        return {"successes": k, "episodes": n, "success_rate": k / n if n else float("nan"),
                "ci95": list(wilson_interval(k, n))}

    per_task = {t: rate(sum(r["per_task"][t]["successes"] for r in rows.values()),
                        sum(r["per_task"][t]["episodes"] for r in rows.values())) for t in tasks}
    return {"per_task": per_task, "overall": rate(sum(v["successes"] for v in per_task.values()),
                                                  sum(v["episodes"] for v in per_task.values()))}


def ablation_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers to compare across variants and runs (``summary.json``, the DVC metrics file)
    from what ``a1 ablation run`` writes to ``metrics.json``: the pooled success rate and its 95% CI
    bounds, the mean held-out action loss, and the total seconds. The same keys for every variant,
    so ``dvc metrics show`` lines the variants up in five columns."""
    lo, hi = result["success_ci95"]
    return numbers({"success": result["success"], "ci_low": lo, "ci_high": hi,
                    "val_action_loss": result.get("val_action_loss"),
                    "seconds": result.get("seconds", {}).get("total")})
