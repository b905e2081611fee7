"""The one small interface between the task side (sim, robot, server) and the method side (models).

Everything that acts, a trained A1 model, a random baseline, a remote openpi server, implements
``Policy``: it maps one observation dict to an action chunk. Envs, the evaluation loop, the robot
control loop and the policy server only ever talk to this interface.

Observation keys (numpy values, no batch dimension):

* ``observation.image``       uint8 (H, W, 3), the current camera frame (frame t)
* ``observation.image_past``  uint8 (H, W, 3), frame t - delta (optional; defaults to the current
                              frame, the same convention the training windows use at episode start)
* ``observation.state``       float32 (S,), proprioceptive state in real units
* ``task``                    str, the language instruction

The answer is ``{"actions": float32 (H, A)}`` in real units (un-normalised), optionally with more
keys (e.g. ``"imagined"`` for the decoded future frame).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

IMAGE = "observation.image"
IMAGE_PAST = "observation.image_past"
STATE = "observation.state"
TASK = "task"


@runtime_checkable
class Policy(Protocol):
    """Maps an observation dict to ``{"actions": (H, A) float32, ...}``."""

    def infer(self, obs: dict[str, Any]) -> dict[str, np.ndarray]: ...

    def reset(self) -> None: ...


class RandomPolicy:
    """A seeded baseline: uniform random action chunks in ``[low, high]``.

    Useful to exercise the robot loop and the server before any model is trained. ``latency_s``
    simulates inference time (the watchdog tests use it to stall on purpose).
    """

    def __init__(
        self,
        action_dim: int = 5,
        horizon: int = 10,
        seed: int = 0,
        low: float = -1.0,
        high: float = 1.0,
        latency_s: float = 0.0,
    ) -> None:
        if action_dim < 1 or horizon < 1:
            raise ValueError(f"RandomPolicy: action_dim and horizon must be >= 1, got {action_dim}, {horizon}")
        self.action_dim, self.horizon, self.seed = action_dim, horizon, seed
        self.low, self.high, self.latency_s = low, high, latency_s
        self.rng = np.random.default_rng(seed)
        self.metadata = {"policy": "random", "action_dim": action_dim, "horizon": horizon}

    def infer(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.latency_s > 0:
            import time

            time.sleep(self.latency_s)
        actions = self.rng.uniform(self.low, self.high, size=(self.horizon, self.action_dim))  # (H, A)
        return {"actions": actions.astype(np.float32)}

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)
