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
