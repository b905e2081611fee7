"""TrainConfig: every knob of one training run (pretraining or fine-tuning), as a dataclass.

Loaded strictly from the ``pretrain`` / ``finetune`` section of params.yaml
(``a1lib.workflows.params.load_section``); the original's recipe is AdamW (0.9, 0.95), weight decay 0.01,
grad clip 1.0, bf16, cosine decay with warmup for fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from a1lib.policy_protocol import InferenceSettings
from a1lib.sim.tasks import TASKS

SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "32", "bf16")
STRATEGIES = ("auto", "ddp", "fsdp")


@dataclass
class TrainConfig:
    steps: int = 2000  # optimizer steps; a resumed run continues to the same count
    batch_size: int = 32  # per optimizer step over all processes; each of N processes draws batch_size / N
    lr: float = 5e-4  # peak learning rate
    warmup_steps: int = 100  # linear warmup from 0
    min_lr: float = 5e-5  # cosine decays to this
    schedule: str = "cosine"  # "cosine" | "constant" (after warmup)
    weight_decay: float = 0.01  # on matrices only (not biases, norms, embeddings' 1-d params)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    precision: str = "auto"  # "auto": bf16 autocast where supported (CUDA bf16), else fp32
    source_weights: dict[str, float] = field(default_factory=lambda: {"sim": 0.72, "lab": 0.20, "human": 0.08})
    tasks: tuple[str, ...] | None = None  # train on these tasks' episodes only (None: every task)
    delta: int = 5  # future / history offset in frames (the exported policy owns it: InferenceSettings)
    action_draws: int = 1  # flow-matching (noise, time) draws per sample; > 1 reruns only the action expert
    normalization: str = "mean_std"  # Normalizer mode for state / action
    binary_action_dims: tuple[int, ...] = ()  # on/off action entries the exported policy executes by sign
    noise_scale: float = 1.0  # the exported policy's flow starts from noise_scale * N(0, I) (0: the mean chunk)
    replan_every: int | None = None  # the exported policy's actions per chunk before it is asked again (None: all)
    init_vision: str | None = None  # a1 pretrain-vision output to start the vision path from (fresh models)
    freeze_vision: bool = False  # keep the conv trunk and grounding head fixed (they learned in pretrain-vision)
    val_episodes: int = 1  # episodes held out per source for the validation loss
    val_every: int = 200  # steps between validation passes
    val_batches: int = 4  # batches per validation pass
    log_every: int = 10  # steps between logged rows
    checkpoint_every: int = 100  # steps between last.ckpt saves (atomic)
    seed: int = 0
    devices: int = 0  # training processes per machine, one per device: 0 = torchrun's count, else 1
    strategy: str = "auto"  # "auto" (ddp when there are several processes) | "ddp" | "fsdp" (CUDA only)
    num_workers: int = 0  # DataLoader workers (0 = in the main process)
    csv_logger: bool = True
    tensorboard: bool = False

    def __post_init__(self) -> None:
        errors = []
        for name in ("steps", "batch_size", "val_every", "log_every", "checkpoint_every", "delta", "action_draws"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.schedule not in SCHEDULES:
            errors.append(f"schedule {self.schedule!r} not in {SCHEDULES}")
        if self.strategy not in STRATEGIES:
            errors.append(f"strategy {self.strategy!r} not in {STRATEGIES}")
        if self.devices < 0:
            errors.append(f"devices must be >= 0 (0: torchrun's process count, else 1), got {self.devices}")
        if str(self.precision) not in PRECISIONS:
            errors.append(f"precision {self.precision!r} not in {PRECISIONS}")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            errors.append(f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr} min_lr={self.min_lr}")
        if not self.noise_scale >= 0:
            errors.append(f"noise_scale must be >= 0, got {self.noise_scale}")
        if self.replan_every is not None and self.replan_every < 1:
            errors.append(f"replan_every must be >= 1 or null (the whole chunk), got {self.replan_every}")
        if self.warmup_steps < 0 or self.val_episodes < 0 or self.val_batches < 0 or self.num_workers < 0:
            errors.append("warmup_steps, val_episodes, val_batches, num_workers must be >= 0")
        unknown = sorted(set(self.source_weights) - {"sim", "lab", "human"})
        if unknown:
            errors.append(f"source_weights: unknown source(s) {unknown}; use sim, lab, human")
        if any(w < 0 for w in self.source_weights.values()) or sum(self.source_weights.values()) <= 0:
            errors.append(f"source_weights must be >= 0 with a positive sum, got {self.source_weights}")
        if self.tasks is not None:
            self.tasks = tuple(self.tasks)
            unknown = sorted(set(self.tasks) - set(TASKS))
            if not self.tasks or unknown:
                errors.append(f"tasks must be a non-empty list of task names, got {list(self.tasks)}; "
                              f"have {list(TASKS)}")
        if errors:
            raise ValueError("TrainConfig: " + "; ".join(errors))
        self.betas = tuple(float(b) for b in self.betas)
        self.source_weights = {k: float(v) for k, v in self.source_weights.items()}

    @property
    def inference_settings(self) -> InferenceSettings:
        """What the exported policy is run with (its policy.json)."""
        return InferenceSettings(replan_every=self.replan_every, delta=self.delta, noise_scale=self.noise_scale)

    @property
    def active_sources(self) -> list[str]:
        return [s for s in ("sim", "lab", "human") if self.source_weights.get(s, 0.0) > 0]
