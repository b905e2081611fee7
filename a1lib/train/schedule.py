"""The learning-rate schedule every trainer uses: linear warmup, then a cosine down to a floor.

    lr(step) = peak * (step + 1) / warmup_steps                                 step < warmup_steps
             = peak * (floor + (1 - floor) * (1 + cos(pi * progress)) / 2)      otherwise,
    progress = (step - warmup_steps) / (total_steps - warmup_steps), clamped to [0, 1]

``floor`` is the end of the cosine as a fraction of the peak (``min_lr / lr``); ``floor=1`` holds
the peak after the warmup (a constant schedule). With ``peak=1`` it is a multiplier for
``torch.optim.lr_scheduler.LambdaLR``. The users:

    train/module.py        A1 pre-training / fine-tuning (TrainConfig: warmup_steps, min_lr, schedule)
    train/privileged.py    the privileged MLP (no warmup, cosine to 0)
    train/tokenizers.py    the image tokenizer (warmup over 5% of the steps, cosine to 10%)

The vision pre-training (``train/vision.py``) keeps torch's ``OneCycleLR``: it also cycles Adam's
beta1, and its state is in that stage's resumable checkpoints.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0, floor: float = 0.0, peak: float = 1.0) -> float:
    """The learning rate at ``step`` (0-based): see the module docstring. Past ``total_steps`` it stays at
    ``peak * floor``."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = min(max(step - warmup_steps, 0) / max(total_steps - warmup_steps, 1), 1.0)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
