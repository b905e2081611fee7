"""The safety layer: the only path from a policy to ``robot.send_action``.

A learned policy can output anything: NaN after a bad normalisation, 1e9 after a unit bug, a
jump across the table. The layer turns any requested action into one the robot can take:

1. **non-finite -> hold.** A NaN/inf (or a missing / non-numeric key) anywhere means the policy is
   broken for this step: the whole action becomes the hold command.
2. **limits.** Every key is clipped to its ``[low, high]`` (config, else ``robot.action_limits``;
   a key without a limit is an error at construction: no silent "unlimited").
3. **max_relative_target** (LeRobot's name): a ``.pos`` goal moves at most ``cap`` away from the
   measured position; any other key (velocities) changes at most ``cap`` from the last command.
   Stopping is never rate-limited: a hold or a workspace stop sets a velocity to 0 at once.
4. **workspace.** A velocity ``"<j>.vel"`` that would push ``"<j>.pos"`` further outside its
   workspace interval is zeroed.

**Hold** means: ``.pos`` keys repeat the last safe target (or the measured position before any
command), other keys (velocities) go to 0 (the value nearest 0 inside the limits). Holding a
velocity would keep moving, so it is not a hold.

The control loop builds its ``SafetyLayer`` itself and never calls ``robot.send_action``
directly, so nothing it sends can skip these checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from a1lib.robot.interface import RobotError, joint_keys


@dataclass
class SafetyConfig:
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)  # action key -> (low, high)
    max_relative_target: float | dict[str, float] | None = None  # per-step cap (robot units)
    workspace: dict[str, tuple[float, float]] = field(default_factory=dict)  # "<j>.pos" -> (low, high); else robot.workspace


@dataclass
class SafetyCounters:
    sent: int = 0  # actions passed to robot.send_action
    held: int = 0  # of which hold commands
    nonfinite: int = 0  # requested actions with NaN / inf / missing / non-numeric values
    clipped: int = 0  # actions with at least one value clipped to the limits
    rate_limited: int = 0  # actions changed by max_relative_target
    workspace: int = 0  # actions with a velocity zeroed at the workspace edge


def _finite_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


class SafetyLayer:
    """Wraps a connected robot; ``send(action, present)`` filters, then sends."""

    def __init__(self, robot: Any, config: SafetyConfig | None = None) -> None:
        self.robot = robot
        self.config = config or SafetyConfig()
        self.keys = joint_keys(robot.action_features)
        robot_limits = dict(getattr(robot, "action_limits", {}) or {})
        self.limits: dict[str, tuple[float, float]] = {}
        for key in self.keys:
            lim = self.config.limits.get(key, robot_limits.get(key))
            if lim is None:
                raise RobotError(f"no limit for action key {key!r}: set SafetyConfig.limits[{key!r}] = (low, high)")
            low, high = float(lim[0]), float(lim[1])
            if not (math.isfinite(low) and math.isfinite(high) and low <= high):
                raise RobotError(f"limit for {key!r} must be finite with low <= high, got {lim}")
            self.limits[key] = (low, high)
        unknown = sorted(set(self.config.limits) - set(self.keys))
        if unknown:
            raise RobotError(f"SafetyConfig.limits names keys the robot does not accept: {unknown}")
        # the workspace box: config first, else what the robot declares (SimRobot: the table)
        self.workspace = {**dict(getattr(robot, "workspace", {}) or {}), **self.config.workspace}
        self.last_sent: dict[str, float] | None = None
        self.counters = SafetyCounters()

    def _clip(self, key: str, v: float) -> float:
        low, high = self.limits[key]
        return min(max(v, low), high)

    def _cap(self, key: str) -> float | None:
        cap = self.config.max_relative_target
        if isinstance(cap, dict):
            cap = cap.get(key)
        return None if cap is None else abs(float(cap))

    def hold_action(self, present: dict[str, Any] | None) -> dict[str, float]:
        """Positions stay at the last safe target (else the measured position); velocities stop."""
        out = {}
        for key in self.keys:
            if key.endswith(".pos"):
                v = self.last_sent.get(key) if self.last_sent else None
                if v is None and present is not None:
                    v = _finite_float(present.get(key))
                out[key] = self._clip(key, v if v is not None else 0.0)
            else:
                out[key] = self._clip(key, 0.0)
        return out

    def filter(self, action: dict[str, Any] | None, present: dict[str, Any] | None) -> tuple[dict[str, float], bool]:
        """(safe action, is_hold). ``action=None`` asks for the hold command."""
        if action is None:
            return self.hold_action(present), True
        values = {k: _finite_float(action.get(k)) if isinstance(action, dict) else None for k in self.keys}
        if any(v is None for v in values.values()):
            self.counters.nonfinite += 1
            return self.hold_action(present), True
        clipped = rate_limited = walled = False
        out: dict[str, float] = {}
        for key, v in values.items():
            c = self._clip(key, v)
            clipped |= c != v
            cap = self._cap(key)
            if cap is not None:
                ref = None
                if key.endswith(".pos") and present is not None:
                    ref = _finite_float(present.get(key))
                elif self.last_sent is not None:
                    ref = self.last_sent.get(key)
                elif not key.endswith(".pos"):
                    ref = self._clip(key, 0.0)
                if ref is not None:
                    r = min(max(c, ref - cap), ref + cap)
                    rate_limited |= r != c
                    c = self._clip(key, r)
            if key.endswith(".vel") and present is not None:
                pos_key = key[: -len(".vel")] + ".pos"
                box = self.workspace.get(pos_key)
                pos = _finite_float(present.get(pos_key))
                if box is not None and pos is not None and ((pos <= box[0] and c < 0) or (pos >= box[1] and c > 0)):
                    c, walled = self._clip(key, 0.0), True
            out[key] = c
        self.counters.clipped += clipped
        self.counters.rate_limited += rate_limited
        self.counters.workspace += walled
        return out, False

    def send(self, action: dict[str, Any] | None, present: dict[str, Any] | None) -> dict[str, float]:
        """Filter ``action`` and send it; returns what the robot reports as sent."""
        safe, is_hold = self.filter(action, present)
        sent = self.robot.send_action(safe)
        self.last_sent = dict(safe)
        self.counters.sent += 1
        self.counters.held += is_hold
        return sent if isinstance(sent, dict) else safe

    def hold(self, present: dict[str, Any] | None) -> dict[str, float]:
        return self.send(None, present)
