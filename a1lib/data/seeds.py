"""Seeds for training data and for evaluation episodes that can never collide.

An evaluation score is only honest if no evaluation scene was seen in training. Every episode is
generated from one integer seed, so we split the seed space in two disjoint halves:

    train seeds:  [0, 2**31)           train_seed(source, task, index, base_seed)
    eval seeds:   [2**31, 2**32)       eval_seed(task, index)
    validation:   [2**31, 2**32)       validation_seed(task, index): for choosing how to evaluate
                                       (e.g. the replan interval) without touching the eval seeds

Within a half, a stable hash (BLAKE2b, not Python's salted ``hash``) of the names picks a start
and ``index`` counts up from it, so consecutive indices of one (source, task, base_seed) give
distinct seeds, and the same arguments give the same seed on every machine and run. All seeds fit
in 32 bits, which every numpy / gymnasium seeding path accepts.
"""

from __future__ import annotations

import hashlib

HALF = 2**31
TRAIN_RANGE = range(0, HALF)
EVAL_RANGE = range(HALF, 2 * HALF)


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def train_seed(source: str, task: str, index: int, base_seed: int = 0) -> int:
    """Seed of training episode ``index`` of ``task`` in dataset ``source``; in [0, 2**31)."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return (_stable_hash(f"train/{source}/{task}/{base_seed}") + index) % HALF


def eval_seed(task: str, index: int) -> int:
    """Seed of evaluation episode ``index`` of ``task``; in [2**31, 2**32), disjoint from training."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return HALF + (_stable_hash(f"eval/{task}") + index) % HALF


def validation_seed(task: str, index: int) -> int:
    """Seed of validation episode ``index`` of ``task``: held out from training like the eval seeds,
    but a different block of them (a test checks the blocks do not meet), so that a choice made on
    validation episodes (the replan interval) is never made on the episodes it is reported on."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return HALF + (_stable_hash(f"validation/{task}") + index) % HALF
