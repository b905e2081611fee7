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

import dataclasses
import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from a1lib.constants import ACTION_RANGE


def binarize_actions(actions: np.ndarray, dims: tuple[int, ...] | list[int]) -> np.ndarray:
    """On/off commands executed as decisions: entries ``dims`` of the last axis become +1 where
    positive, else -1. A regressed or sampled command near 0 (the average of open and close) would
    otherwise do neither; many VLA deployments binarise the gripper the same way (e.g. OpenVLA)."""
    if not len(dims):
        return actions
    out = np.array(actions, dtype=np.float32, copy=True)
    idx = list(dims)
    out[..., idx] = np.where(out[..., idx] > 0, 1.0, -1.0)
    return out


@dataclass(frozen=True)
class InferenceSettings:
    """How a policy is run, decided once, by the policy package (an A1Policy's ``policy.json``): every
    loop that drives a policy (evaluation and its sweeps, the explorer, the notebooks, ``a1 serve``,
    the robot loop) reads these from the policy. An override is explicit (``overridden``) and printed."""

    # actions executed per chunk before asking again (LeRobot's n_action_steps); None: all
    replan_every: int | None = None
    delta: int = 0  # observation.image_past is frame t - delta (0: the policy reads one frame)
    noise_scale: float = 1.0  # the flow starts from noise_scale * N(0, I); 0: the mean chunk

    def checked(self, horizon: int) -> "InferenceSettings":
        """Self, after checking the values against a chunk of ``horizon`` actions."""
        if self.replan_every is not None and not 1 <= self.replan_every <= horizon:
            raise ValueError(f"replan_every must be in 1..{horizon} (the chunk size) or None, got {self.replan_every}")
        if self.delta < 0 or not self.noise_scale >= 0:
            raise ValueError(f"delta and noise_scale must be >= 0, got {self.delta}, {self.noise_scale}")
        return self

    def overridden(self, who: str, **changes: Any) -> "InferenceSettings":
        """These settings with ``changes`` applied; each real change is printed (to stderr), naming ``who``."""
        new = dataclasses.replace(self, **changes)
        said = [f"{k} {getattr(self, k)} -> {getattr(new, k)}" for k in changes if getattr(new, k) != getattr(self, k)]
        if said:
            print(f"{who}: inference settings overridden: {', '.join(said)}", file=sys.stderr)
        return new


def inference_settings(policy: Any) -> InferenceSettings:
    """The settings a policy owns (the defaults for one without: the expert, the random baseline)."""
    return getattr(policy, "settings", None) or InferenceSettings()


@runtime_checkable
class Policy(Protocol):
    """Maps an observation dict to ``{"actions": (H, A) float32, ...}``."""

    def infer(self, obs: dict[str, Any]) -> dict[str, np.ndarray]: ...

    def reset(self) -> None: ...


class RandomPolicy:
    """A seeded baseline: uniform random action chunks in ``[low, high]`` (default ``ACTION_RANGE``,
    declared in ``metadata["action_range"]``).

    Useful to exercise the robot loop and the server before any model is trained. ``latency_s``
    simulates inference time (the watchdog tests use it to stall on purpose).
    """

    def __init__(
        self,
        action_dim: int = 5,
        horizon: int = 10,
        seed: int = 0,
        low: float = ACTION_RANGE[0],
        high: float = ACTION_RANGE[1],
        latency_s: float = 0.0,
    ) -> None:
        if action_dim < 1 or horizon < 1:
            raise ValueError(f"RandomPolicy: action_dim and horizon must be >= 1, got {action_dim}, {horizon}")
        if not (np.isfinite(low) and np.isfinite(high) and low <= high):
            raise ValueError(f"RandomPolicy: need finite low <= high, got [{low}, {high}]")
        self.action_dim, self.horizon, self.seed = action_dim, horizon, seed
        self.low, self.high, self.latency_s = float(low), float(high), latency_s
        self.rng = np.random.default_rng(seed)
        self.metadata = {"policy": "random", "action_dim": action_dim, "horizon": horizon,
                         "action_range": [self.low, self.high]}

    def infer(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.latency_s > 0:
            time.sleep(self.latency_s)
        actions = self.rng.uniform(self.low, self.high, size=(self.horizon, self.action_dim))  # (H, A)
        return {"actions": actions.astype(np.float32)}

    def reset(self) -> None:
        self.rng = np.random.default_rng(self.seed)
