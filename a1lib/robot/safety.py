"""The safety layer: the only path from a policy to ``robot.send_action``.

A learned policy can output anything: NaN after a bad normalisation, 1e9 after a unit bug, a
jump across the table. The sensors can lie too: a reading can be NaN, missing, stale or glitch
by 100 degrees. The layer turns any requested action into one the robot can take:

1. **non-finite action -> hold.** A NaN/inf (or a missing / non-numeric key) anywhere in the
   action means the policy is broken for this step: the whole action becomes the hold command.
2. **limits.** Every key is clipped to its ``[low, high]`` (config, else ``robot.action_limits``;
   a key without a limit is an error at construction: no silent "unlimited").
3. **max_relative_target** (LeRobot's name): a ``.pos`` target moves at most ``cap`` away from
   the measured position *and* from the last target sent; any other key (velocities) changes at
   most ``cap`` from the last command. Stopping is never rate-limited: a hold or a workspace stop
   sets a velocity to 0 at once.
4. **workspace.** A velocity ``"<j>.vel"`` that would push ``"<j>.pos"`` further outside its
   workspace interval is zeroed.

**Sensor faults.** A reading the layer needs (the cap's reference, the workspace check) is
trusted only when it is a finite number (``interface.finite_number``: not a string, not an
array), present, inside its plausible range (the joint's limits or workspace, widened by their
own width on each side: 1e300 is a fault, not a far-away arm), and plausible over time: for a
capped ``.pos`` joint it must be within ``max_reading_jump`` (default ``2 * cap``) of the last
trusted or the previous reading, and within ``2 * cap`` of the last target (otherwise no target
is within ``cap`` of both). The first reading of an episode is trusted once a second one agrees
with it. Without a trusted reading the joint is held at the last target sent, or, if there is
none yet, left out of the command (the robot keeps its own goal); a velocity checked against the
workspace stops. Each such step counts in ``counters.sensor_faults`` (with the faults the caller
found itself, e.g. the loop's feature mapping), ``faults`` says which key and why, and the loop
stops a robot whose sensors keep failing. So no target is ever
sent that is more than ``cap`` from a trusted reading, and consecutive targets never differ by
more than ``cap``: a stale reading (indistinguishable from a joint at rest) cannot walk the arm
away, and the first command of an episode waits for a confirmed reading.

**Hold** means: ``.pos`` keys repeat the last safe target (left out before the first one: the
robot keeps its own goal), other keys (velocities) go to 0 (the value nearest 0 inside the
limits). Holding a velocity would keep moving, so it is not a hold. A hold reads no sensor.
``hold()`` sends it outside any step (the end of every episode, the e-stop, an error): it counts
in ``counters.stops``, not ``held``.

The control loop builds its ``SafetyLayer`` itself and never calls ``robot.send_action``
directly, so nothing it sends can skip these checks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from a1lib.robot.interface import RobotError, finite_number, joint_keys, reading_fault


@dataclass
class SafetyConfig:
    limits: dict[str, tuple[float, float]] = field(default_factory=dict)  # action key -> (low, high)
    max_relative_target: float | dict[str, float] | None = None  # per-step cap (robot units)
    # "<j>.pos" -> (low, high); else robot.workspace
    workspace: dict[str, tuple[float, float]] = field(default_factory=dict)
    # A "<j>.pos" reading that moves more than this in one step is a glitch (robot units);
    # default 2 * cap for capped position joints, no jump check for other readings.
    max_reading_jump: float | dict[str, float] | None = None


@dataclass
class SafetyCounters:
    sent: int = 0  # actions passed to robot.send_action
    held: int = 0  # of which hold commands in place of the requested action
    stops: int = 0  # of which hold commands at the end of an episode (normal, error or e-stop)
    nonfinite: int = 0  # requested actions with NaN / inf / missing / non-numeric values
    clipped: int = 0  # actions with at least one value clipped to the limits
    rate_limited: int = 0  # actions changed by max_relative_target
    workspace: int = 0  # actions with a velocity zeroed at the workspace edge
    sensor_faults: int = 0  # steps with a reading missing, not a finite number or implausible


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
        # readings the layer relies on: capped position targets, and positions the workspace guards
        self.read_keys = [k for k in self.keys if k.endswith(".pos") and self._cap(k) is not None]
        self.read_keys += [k[: -len(".vel")] + ".pos" for k in self.keys
                           if k.endswith(".vel") and k[: -len(".vel")] + ".pos" in self.workspace]
        # where a reading can be at all: the limits (or workspace) widened by their width each side
        boxes = {**{k: self.limits[k] for k in self.read_keys if k in self.limits},
                 **{k: self.workspace[k] for k in self.read_keys if k in self.workspace}}
        self.reading_range = {k: (lo - (hi - lo), hi + (hi - lo)) for k, (lo, hi) in boxes.items()}
        self.counters = SafetyCounters()
        self.last_sent: dict[str, float] = {}  # last safe target / command per key
        self.reset()

    def reset(self) -> None:
        """Forget position targets and readings (a new episode: the robot may have been moved by
        hand). Other commands (velocities) are kept: the drive still runs the last one it was sent,
        so the next episode is rate-limited from there."""
        self.last_sent = {k: v for k, v in self.last_sent.items() if not k.endswith(".pos")}
        self._trusted: dict[str, float] = {}  # last reading that passed the checks, per "<j>.pos"
        self._previous: dict[str, float] = {}  # last finite reading, trusted or not
        self.faults: dict[str, str] = {}  # this step's sensor faults: key -> what is wrong

    def _clip(self, key: str, v: float) -> float:
        low, high = self.limits[key]
        return min(max(v, low), high)

    @staticmethod
    def _per_key(value: float | dict[str, float] | None, key: str) -> float | None:
        if isinstance(value, dict):
            value = value.get(key)
        return None if value is None else abs(float(value))

    def _cap(self, key: str) -> float | None:
        return self._per_key(self.config.max_relative_target, key)

    def _jump_limit(self, key: str) -> float | None:
        jump = self._per_key(self.config.max_reading_jump, key)
        cap = self._cap(key) if key in self.limits else None
        return jump if jump is not None else (None if cap is None else 2.0 * cap)

    # ---------------------------------------------------------------- readings
    def _read(self, present: dict[str, Any] | None) -> dict[str, float]:
        """The trusted readings of ``read_keys`` this step; the others go to ``self.faults``."""
        self.faults = {}
        trusted: dict[str, float] = {}
        for key in self.read_keys:
            raw = present.get(key) if isinstance(present, dict) else None
            v = finite_number(raw)
            if v is None:
                self.faults[key] = reading_fault(raw)
                continue
            lo, hi = self.reading_range.get(key, (-math.inf, math.inf))
            if not lo <= v <= hi:  # not even a glitch to compare with: never a reference
                self.faults[key] = f"reads {v:g}, outside the plausible range [{lo:g}, {hi:g}]"
                continue
            why = self._implausible(key, v)
            self._previous[key] = v
            if why is None:
                self._trusted[key] = trusted[key] = v
            elif why:  # "" = the first reading: unconfirmed, but not a fault
                self.faults[key] = why
        return trusted

    def _implausible(self, key: str, v: float) -> str | None:
        """Why reading ``v`` of ``key`` cannot be trusted, "" if it is unconfirmed, None if fine."""
        jump = self._jump_limit(key)
        if jump is not None:
            refs = [r for r in (self._trusted.get(key), self._previous.get(key)) if r is not None]
            if not refs:
                return ""
            if all(abs(v - r) > jump for r in refs):
                return f"jumped to {v:g} from {refs[0]:g} (more than {jump:g} in one step)"
        cap, last = (self._cap(key), self.last_sent.get(key)) if key in self.limits else (None, None)
        if cap is not None and last is not None and abs(v - last) > 2.0 * cap:
            return f"reads {v:g}, more than 2 x {cap:g} from the last target {last:g}"
        return None

    # ---------------------------------------------------------------- actions
    def _position(self, key: str, target: float, readings: dict[str, float]) -> float | None:
        """A ``.pos`` target within ``cap`` of the trusted reading and of the last target;
        the last target if there is no trusted reading; None (do not command) if neither."""
        cap, last = self._cap(key), self.last_sent.get(key)
        if cap is None:
            return target
        reading = readings.get(key)
        if reading is None:
            return last
        lo, hi = reading - cap, reading + cap
        if last is not None:  # non-empty: _implausible checked |reading - last| <= 2 cap
            lo, hi = max(lo, last - cap), min(hi, last + cap)
        low, high = self.limits[key]
        if hi < low or lo > high:  # the arm sits beyond its limits: no safe target moves it
            return last
        return self._clip(key, min(max(target, lo), hi))

    def hold_action(self, present: dict[str, Any] | None = None) -> dict[str, float]:
        """Positions stay at the last safe target (left out if there is none yet: the robot keeps
        its own goal); velocities stop. Needs no reading, so a broken sensor cannot move a hold."""
        out = {}
        for key in self.keys:
            if not key.endswith(".pos"):
                out[key] = self._clip(key, 0.0)
            elif key in self.last_sent:
                out[key] = self.last_sent[key]
        return out

    def filter(self, action: dict[str, Any] | None, present: dict[str, Any] | None,
               faults: dict[str, str] | None = None) -> tuple[dict[str, float], bool]:
        """(safe action, is_hold). ``action=None`` asks for the hold command. A ``.pos`` key is
        missing from the safe action when the layer knows no safe target for it yet. ``faults``:
        readings the caller already found unusable (key -> why); they count like the layer's own."""
        readings = self._read(present)
        self.faults = {**(faults or {}), **self.faults}
        self.counters.sensor_faults += bool(self.faults)
        if action is None:
            return self.hold_action(), True
        values = {k: finite_number(action.get(k)) if isinstance(action, dict) else None for k in self.keys}
        if any(v is None for v in values.values()):
            self.counters.nonfinite += 1
            return self.hold_action(), True
        clipped = rate_limited = walled = False
        out: dict[str, float] = {}
        for key, v in values.items():
            c = self._clip(key, v)
            clipped |= c != v
            if key.endswith(".pos"):
                r = self._position(key, c, readings)
                if r is None:
                    continue  # no safe target known yet: do not command this joint
                rate_limited |= key in readings and r != c
                c = r
            elif (cap := self._cap(key)) is not None:
                ref = self.last_sent.get(key, self._clip(key, 0.0))
                r = self._clip(key, min(max(c, ref - cap), ref + cap))
                rate_limited |= r != c
                c = r
            if key.endswith(".vel"):
                pos_key = key[: -len(".vel")] + ".pos"
                box = self.workspace.get(pos_key)
                if box is not None:
                    pos = readings.get(pos_key)
                    # no trusted position: we cannot tell which way is out, so stop
                    if pos is None or (pos <= box[0] and c < 0) or (pos >= box[1] and c > 0):
                        walled |= c != self._clip(key, 0.0)
                        c = self._clip(key, 0.0)
            out[key] = c
        self.counters.clipped += clipped
        self.counters.rate_limited += rate_limited
        self.counters.workspace += walled
        return out, False

    def send(self, action: dict[str, Any] | None, present: dict[str, Any] | None,
             faults: dict[str, str] | None = None) -> dict[str, float]:
        """Filter ``action`` and send it; returns what the robot reports as sent (``{}``, and
        nothing sent, when no key has a safe value yet)."""
        safe, is_hold = self.filter(action, present, faults)
        sent = self._send(safe)
        self.counters.held += bool(safe) and is_hold
        return sent

    def hold(self) -> dict[str, float]:
        """Send the hold command now, outside a step (end of episode, e-stop, errors). Reads
        nothing, so it cannot count as a confirming reading."""
        safe = self.hold_action()
        sent = self._send(safe)
        self.counters.stops += bool(safe)
        return sent

    def _send(self, safe: dict[str, float]) -> dict[str, float]:
        if not safe:
            return {}
        sent = self.robot.send_action(safe)
        self.last_sent.update(safe)
        self.counters.sent += 1
        return sent if isinstance(sent, dict) else safe
