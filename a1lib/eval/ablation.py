"""Ablations: the paper's claims as model variants, each trained and evaluated on a task group.
This module holds the variants, the task groups and their budgets (``AblationConfig``), the
expected wall time and the pooling of seeds; the runs themselves are ``a1lib.workflows.ablation``:

    a1 ablation run   --run dynamic-pi0_style [--out experiments/ablations/dynamic-pi0_style]
    a1 ablation train --run dynamic-pi0_style --seed 1 --out experiments/ablations/dynamic-pi0_style/runs/seed1
    a1 ablation report [--dir experiments/ablations] [--out figures]

A run is ``<task group>-<variant>``. Every variant changes ONE thing against ``a1_full`` (see
VARIANTS). A task group restricts training (pretraining and fine-tuning) and evaluation to the tasks
a claim is about, so that the claim is tested where A1 has signal at a 2-core budget. Fairness
within a group: all its variants get the same pretraining and fine-tuning steps and batch (the
group's budget; everything else from the preset's ``pretrain`` / ``finetune`` sections), the same
training seeds, and the same evaluation episodes (``eval_seed(task, i)``). ``no_pretrain`` spends
no pretraining steps: that is the ablation.

``run`` trains the seeds in parallel processes (one torch thread each: on a 2-core machine two
single-threaded runs do ~1.25x the samples/s of one two-threaded run) and evaluates every seed's
policy in the lab domain (the speed sweep of the swept variants is its own stage, ``a1 ablation
sweep``). ``RunLayout`` is where a run keeps its files. ``OUT/metrics.json`` holds per-seed and pooled success
with 95% Wilson intervals, the held-out action loss of each fine-tuning run, and for models that imagine, the
future-latent error against "the future equals now". A killed ``train`` resumes from its
``last.ckpt``; a finished one drops its optimizer checkpoints (the exported ``policy/`` is what the
evaluation needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from a1lib.configs import from_dict
from a1lib.eval.stats import Rate, numbers
from a1lib.sim.tasks import BELT_SPEED_RANGE, SPEED_KEYS, TASKS, TURNTABLE_SPEED_RANGE
from a1lib.train.trainer import last_logged


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    model: dict[str, Any] = field(default_factory=dict)  # A1Config overrides
    pretrain_sources: tuple[str, ...] | None = None  # None: the preset's mix; (): no pretraining
    sweep: bool = False  # swept over conveyor / turntable speed by `a1 ablation sweep`


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("a1_full", "A1: three experts, sim+lab+human pretraining, understanding loss on", sweep=True),
    Variant("pi0_style", "no generation expert (two experts, no middle tokens), otherwise identical",
            model={"generation": "none"}, sweep=True),
    Variant("no_future_loss", "history latents kept, no future-prediction loss",
            model={"generation": "no_future_loss"}, sweep=True),
    Variant("no_pretrain", "no robot-data pretraining: fine-tuned on the same lab demos "
            "from the vision stage's weights only", pretrain_sources=()),
    Variant("data_sim", "pretrained on sim only", pretrain_sources=("sim",)),
    Variant("data_sim_human", "pretrained on sim + human video", pretrain_sources=("sim", "human")),
    Variant("data_sim_lab", "pretrained on sim + lab", pretrain_sources=("sim", "lab")),
    Variant("no_understanding", "understanding (scene QA) loss off", model={"lambda_und": 0.0}),
]}


@dataclass
class TaskGroup:
    """Tasks that some variants are trained and evaluated on, and the budget every one of them gets."""

    tasks: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1)  # training seeds (model init, data order)
    pretrain_steps: int = 600
    finetune_steps: int = 200
    episodes: int = 5  # per task and seed, on the fixed evaluation seeds

    def __post_init__(self) -> None:
        self.tasks, self.seeds = tuple(self.tasks), tuple(int(s) for s in self.seeds)
        unknown = [t for t in self.tasks if t not in TASKS]
        if not self.tasks or unknown:
            raise ValueError(f"tasks must be a non-empty list of task names, got {list(self.tasks)}; "
                             f"have {list(TASKS)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {list(self.seeds)}")
        for name in ("pretrain_steps", "finetune_steps", "episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class AblationConfig:
    """The ``ablation`` section of a preset in params.yaml: the task groups and how many seeds run at once."""

    groups: dict[str, TaskGroup] = field(default_factory=dict)
    parallel: int = 2  # seeds trained at once (one torch thread each) and evaluation workers

    def __post_init__(self) -> None:
        if not self.groups:
            raise ValueError("ablation.groups must name at least one task group")
        groups = {}
        for name, group in self.groups.items():
            if not name.isidentifier():
                raise ValueError(f"ablation.groups: group name {name!r} must be a plain identifier (no '-')")
            try:
                groups[name] = group if isinstance(group, TaskGroup) else from_dict(TaskGroup, group)
            except (TypeError, ValueError) as e:
                raise ValueError(f"ablation.groups.{name}: {e}") from e
        self.groups = groups
        if self.parallel < 1:
            raise ValueError(f"ablation.parallel must be >= 1, got {self.parallel}")

    def group(self, name: str) -> TaskGroup:
        if name not in self.groups:
            raise ValueError(f"no ablation task group {name!r}; the preset has {sorted(self.groups)}")
        return self.groups[name]



DEFAULT_DIR = "experiments/ablations"  # one folder per run: RunLayout.of(DEFAULT_DIR, "<group>-<variant>")


@dataclass(frozen=True)
class RunLayout:
    """Where one ablation run (``<group>-<variant>``) keeps its files: the one place that spells it."""

    root: Path  # e.g. experiments/ablations/dynamic-a1_full

    @classmethod
    def of(cls, directory: str | Path, run: str) -> "RunLayout":
        return cls(Path(directory) / run)

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def seed_dir(self, seed: int) -> Path:
        return self.root / "runs" / f"seed{seed}"

    def stage_dir(self, seed: int, stage: str) -> Path:
        """One training run of a seed: ``stage`` is "pretrain" or "finetune"."""
        return self.seed_dir(seed) / stage

    def policy(self, seed: int, stage: str = "finetune") -> Path:
        return self.stage_dir(seed, stage) / "policy"


# The dynamic tasks whose speed is swept: the env keyword that sets it, and its training range.
SWEPT_TASKS = {task: (key, {"belt_speed": BELT_SPEED_RANGE, "turntable_speed": TURNTABLE_SPEED_RANGE}[key])
               for task, key in SPEED_KEYS.items()}


# Rates measured on a 2-core machine (cpu preset): samples/s of one single-threaded A1 training
# process with a second one beside it (64-70; a pi0-style variant, with no generation tokens, runs at
# 96-106, so its estimate is pessimistic), and seconds of one closed-loop evaluation episode per worker.
TRAIN_SAMPLES_PER_S = 67.0
EVAL_SECONDS_PER_EPISODE = 2.0


def expected_seconds(group: TaskGroup, variant: Variant, batch_sizes: tuple[int, int], parallel: int) -> float:
    """A run's expected wall time: its seeds' training samples over ``parallel`` processes at the
    measured rate, plus its evaluation episodes over ``parallel`` workers."""
    pretrain = 0 if variant.pretrain_sources == () else group.pretrain_steps * batch_sizes[0]
    per_seed = pretrain + group.finetune_steps * batch_sizes[1]
    rounds = math.ceil(len(group.seeds) / parallel)  # seeds train `parallel` at a time, one thread each
    episodes = len(group.seeds) * group.episodes * len(group.tasks)
    return rounds * per_seed / TRAIN_SAMPLES_PER_S + episodes * EVAL_SECONDS_PER_EPISODE / parallel


def get_variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise ValueError(f"unknown ablation variant {name!r}; have {sorted(VARIANTS)}")
    return VARIANTS[name]


def parse_run(name: str) -> tuple[str, Variant]:
    """``"<group>-<variant>"`` (an entry of params.yaml's ``ablations``) -> (group name, variant)."""
    group, sep, variant = name.partition("-")
    if not sep or not group:
        raise ValueError(f"ablation run {name!r} is not '<group>-<variant>', e.g. 'dynamic-a1_full'")
    return group, get_variant(variant)


def final_val_losses(run_dir: Path) -> dict[str, float]:
    """The last logged validation losses of a training run (held-out episodes)."""
    return last_logged(run_dir, lambda key: key.startswith("val/"))


def pool_seeds(rows: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
    """Every seed's episodes of a task pooled into one ``Rate`` (per task, overall), as dicts."""
    per_task = {t: Rate.pooled(Rate.from_dict(r["per_task"][t]) for r in rows.values()) for t in tasks}
    return {"per_task": {t: r.to_dict() for t, r in per_task.items()},
            "overall": Rate.pooled(per_task.values()).to_dict()}


def ablation_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers to compare across variants and runs (``summary.json``, the DVC metrics file)
    from what ``a1 ablation run`` writes to ``metrics.json``: the pooled success rate and its 95% CI
    bounds, the mean held-out action loss, and the total seconds. The same keys for every variant,
    so ``dvc metrics show`` lines the variants up in five columns."""
    lo, hi = result["success_ci95"]
    return numbers({"success": result["success"], "ci_low": lo, "ci_high": hi,
                    "val_action_loss": result.get("val_action_loss"),
                    "seconds": result.get("seconds", {}).get("total")})
