"""From robot features to model inputs and back: one declarative, validated mapping.

A robot speaks in named scalars (``"shoulder_pan.pos"`` in degrees) and named cameras
(``"front"``, 480x640). A model speaks in vectors: ``observation.state`` (S,) and
``actions`` (H, A) in the units and the order it was trained with, and images of one fixed
shape. ``FeatureMapping`` says, once, how one becomes the other:

* ``cameras``: model image key -> robot camera name (e.g. ``{"observation.image": "front"}``);
* ``state_keys`` / ``action_keys``: the robot keys, in the model's vector order;
* ``scale`` / ``offset``: per robot key, ``model = robot * scale + offset`` (units);
* ``model_units``: the unit the model was trained in, per key; checked against the units the
  robot declares (``robot.feature_units``), so degrees never silently reach a radian model;
* optional normalisation ``(x - mean) / std`` on top (most policies normalise themselves).

``validate(robot)`` runs on connect and lists every problem at once: a missing key, a camera
of the wrong shape, a unit mismatch without the matching scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from a1lib.constants import IMAGE, STATE
from a1lib.robot.interface import ReadingError, RobotError, camera_keys, finite_number, joint_keys, reading_fault

# (robot unit, model unit) -> the factor ``scale`` must equal
UNIT_FACTORS = {
    ("deg", "rad"): math.pi / 180.0,
    ("rad", "deg"): 180.0 / math.pi,
    ("m", "mm"): 1000.0,
    ("mm", "m"): 1e-3,
    ("m", "cm"): 100.0,
    ("cm", "m"): 1e-2,
    ("percent", "unit"): 1e-2,  # LeRobot's gripper 0..100 -> 0..1
    ("unit", "percent"): 100.0,
}


@dataclass
class FeatureMapping:
    cameras: dict[str, str] = field(default_factory=lambda: {IMAGE: "front"})
    image_shape: tuple[int, int, int] | None = (64, 64, 3)  # every model image; None: take as is
    resize: bool = False  # resize camera frames to image_shape (a real 480x640 camera) instead of failing
    state_keys: tuple[str, ...] = ()
    action_keys: tuple[str, ...] = ()
    scale: dict[str, float] = field(default_factory=dict)  # robot key -> factor (default 1)
    offset: dict[str, float] = field(default_factory=dict)  # robot key -> offset (default 0)
    model_units: dict[str, str] = field(default_factory=dict)  # robot key -> unit the model expects
    state_mean: tuple[float, ...] | None = None
    state_std: tuple[float, ...] | None = None
    action_mean: tuple[float, ...] | None = None
    action_std: tuple[float, ...] | None = None

    @classmethod
    def from_robot(cls, robot: Any, image_shape: tuple[int, int, int] | None = None, **kw: Any) -> "FeatureMapping":
        """The identity mapping: every scalar observation is state, every action key is action,
        the first camera is ``observation.image``."""
        cams = camera_keys(robot)
        if not cams:
            raise RobotError(f"{type(robot).__name__} has no camera in observation_features")
        shape = image_shape or tuple(robot.observation_features[cams[0]])
        return cls(
            cameras={IMAGE: cams[0]}, image_shape=shape,
            state_keys=tuple(joint_keys(robot.observation_features)),
            action_keys=tuple(joint_keys(robot.action_features)), **kw,
        )

    @property
    def state_dim(self) -> int:
        return len(self.state_keys)

    @property
    def action_dim(self) -> int:
        return len(self.action_keys)

    # ---------------------------------------------------------------- validation
    def validate(self, robot: Any) -> None:
        """Raise ``RobotError`` naming every mismatch between this mapping and ``robot``."""
        problems: list[str] = []
        obs_f, act_f = dict(robot.observation_features), dict(robot.action_features)
        if not self.state_keys:
            problems.append("state_keys is empty")
        if not self.action_keys:
            problems.append("action_keys is empty")
        for key in self.state_keys:
            if key not in obs_f:
                problems.append(f"state key {key!r} missing from robot.observation_features (have {sorted(obs_f)})")
            elif isinstance(obs_f[key], tuple):
                problems.append(f"state key {key!r} is a camera {obs_f[key]}, not a scalar")
        for key in self.action_keys:
            if key not in act_f:
                problems.append(f"action key {key!r} missing from robot.action_features (have {sorted(act_f)})")
        for model_key, cam in self.cameras.items():
            if cam not in obs_f:
                problems.append(f"camera {cam!r} (for {model_key}) missing from robot.observation_features")
                continue
            shape = obs_f[cam]
            if not isinstance(shape, tuple) or len(shape) != 3 or shape[2] != 3:
                problems.append(f"camera {cam!r} has shape {shape}, expected (H, W, 3)")
            elif self.image_shape is not None and tuple(shape) != tuple(self.image_shape) and not self.resize:
                problems.append(
                    f"camera {cam!r} gives {tuple(shape)} but the model expects {tuple(self.image_shape)} "
                    "(set resize=True or configure the camera)"
                )
        problems += self._unit_problems(getattr(robot, "feature_units", {}) or {})
        for name, vec, n in (
            ("state_mean", self.state_mean, self.state_dim), ("state_std", self.state_std, self.state_dim),
            ("action_mean", self.action_mean, self.action_dim), ("action_std", self.action_std, self.action_dim),
        ):
            if vec is not None and len(vec) != n:
                problems.append(f"{name} has {len(vec)} entries, expected {n}")
        for name, vec in (("state_std", self.state_std), ("action_std", self.action_std)):
            if vec is not None and any(not (s > 0) for s in vec):
                problems.append(f"{name} must be > 0 everywhere, got {vec}")
        for key, s in self.scale.items():
            if not (math.isfinite(s) and s != 0):
                problems.append(f"scale[{key!r}] must be finite and non-zero, got {s}")
        if problems:
            raise RobotError(f"feature mapping does not match {type(robot).__name__}:\n  - " + "\n  - ".join(problems))

    def _unit_problems(self, robot_units: dict[str, str]) -> list[str]:
        problems = []
        for key, model_unit in self.model_units.items():
            robot_unit = robot_units.get(key)
            if robot_unit is None:
                continue  # the robot does not declare units: nothing to check against
            s = self.scale.get(key, 1.0)
            if robot_unit == model_unit:
                if s != 1.0:
                    problems.append(f"{key!r}: robot and model both use {model_unit} but scale is {s}")
                continue
            factor = UNIT_FACTORS.get((robot_unit, model_unit))
            if factor is None:
                problems.append(f"{key!r}: unit mismatch, robot reports {robot_unit}, model expects {model_unit}, "
                                "and no known conversion")
            elif not math.isclose(s, factor, rel_tol=1e-6):
                problems.append(f"{key!r}: unit mismatch, robot reports {robot_unit}, model expects {model_unit}; "
                                f"set scale[{key!r}] = {factor:.6g} (got {s})")
        return problems

    # ---------------------------------------------------------------- conversion
    def _scale(self, keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        s = np.array([self.scale.get(k, 1.0) for k in keys], np.float64)
        o = np.array([self.offset.get(k, 0.0) for k in keys], np.float64)
        return s, o

    def image(self, frame: Any, camera: str) -> np.ndarray:
        """A camera frame as the model's uint8 (H, W, 3), checked (and resized if allowed)."""
        img = np.asarray(frame)
        if img.ndim != 3 or img.shape[2] != 3:
            raise RobotError(f"camera {camera!r} returned shape {img.shape}, expected (H, W, 3)")
        if img.dtype != np.uint8:
            raise RobotError(f"camera {camera!r} returned dtype {img.dtype}, expected uint8")
        if self.image_shape is not None and img.shape != tuple(self.image_shape):
            if not self.resize:
                raise RobotError(f"camera {camera!r} returned {img.shape}, expected {tuple(self.image_shape)}")
            h, w = self.image_shape[:2]
            img = np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))
        return img

    def observation(self, robot_obs: dict[str, Any], normalize: bool = True) -> dict[str, np.ndarray]:
        """Robot observation dict -> ``{"observation.image": (H,W,3) uint8, "observation.state": (S,)}``.

        ``normalize=False`` gives the state in model units without the mean/std step (for recording).
        Raises ``ReadingError`` naming every unusable reading: a state value that is missing or not a
        finite number (see ``finite_number``), or too large for the model's float32 state; a camera
        frame that is missing or of the wrong shape / dtype."""
        robot_obs = robot_obs if isinstance(robot_obs, dict) else {}
        faults: dict[str, str] = {}
        out = {}
        for key, cam in self.cameras.items():
            if cam not in robot_obs:
                faults[cam] = "missing"
                continue
            try:
                out[key] = self.image(robot_obs[cam], cam)
            except RobotError as e:
                faults[cam] = str(e)
        values = [finite_number(robot_obs.get(k)) for k in self.state_keys]
        faults.update({k: reading_fault(robot_obs.get(k)) for k, v in zip(self.state_keys, values) if v is None})
        raw = np.array([np.nan if v is None else v for v in values], np.float64)  # (S,)
        s, o = self._scale(self.state_keys)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported as a fault below
            state = raw * s + o
            if normalize and self.state_mean is not None:
                state = (state - np.asarray(self.state_mean)) / np.asarray(self.state_std)
            state = state.astype(np.float32)
        faults.update({k: f"reads {v:g}, beyond the model's float32 state"
                       for k, v, x in zip(self.state_keys, raw, state)
                       if np.isfinite(v) and not np.isfinite(x)})
        if faults:
            raise ReadingError("unusable readings: " + "; ".join(f"{k}: {why}" for k, why in faults.items()), faults)
        out[STATE] = state
        return out

    def to_robot_action(self, action: np.ndarray) -> dict[str, float]:
        """One model action (A,) -> robot action dict (un-normalised, robot units)."""
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape[0] != self.action_dim:
            raise RobotError(f"action has {a.shape[0]} entries, mapping expects {self.action_dim} {self.action_keys}")
        if self.action_mean is not None:
            a = a * np.asarray(self.action_std) + np.asarray(self.action_mean)
        s, o = self._scale(self.action_keys)
        robot = (a - o) / s
        return {k: float(v) for k, v in zip(self.action_keys, robot)}

    def to_model_action(self, robot_action: dict[str, Any]) -> np.ndarray:
        """Robot action dict -> model action (A,) float32 in model units (not normalised), e.g. to
        record what was executed. A key the robot was not sent (the safety layer had no safe
        target for it yet) becomes NaN."""
        raw = np.array([float(robot_action.get(k, np.nan)) for k in self.action_keys], np.float64)
        s, o = self._scale(self.action_keys)
        return (raw * s + o).astype(np.float32)
