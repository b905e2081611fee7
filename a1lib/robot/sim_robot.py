"""``SimRobot``: our simulator dressed as a LeRobot robot, running in real time.

A real robot does not wait for the policy: the conveyor moves while the model thinks. So the
simulator runs in its own thread at ``fps``, stepping the gym env with the latest command. Like a
real velocity-controlled base (LeRobot's LeKiwi does the same), a command older than
``command_timeout_s`` is replaced by "stop". With ``realtime=False`` the env instead steps once
per ``send_action`` (deterministic, for tests and offline checks).

Features (from ``a1lib.sim.STATE_NAMES`` / ``ACTION_NAMES``):

* observation: ``"<joint>.pos"`` floats, one per state entry (``"gripper.x"`` -> ``"x.pos"``,
  ``"gripper.yaw_cos"`` -> ``"yaw_cos.pos"``, ...), plus the camera ``"front"`` (H, W, 3) uint8;
* action: ``"x.vel", "y.vel", "yaw.vel", "lift.vel", "grip.vel"`` for ``vx, vy, vyaw, lift,
  grip``: normalised rate commands in ``[-1, 1]``, the env's own action space (LeKiwi's base
  uses the same ``.vel`` convention).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium
import numpy as np

from a1lib.constants import ACTION_RANGE
from a1lib.robot.interface import RobotError
from a1lib.sim import ACTION_NAMES, STATE_NAMES  # importing a1lib.sim registers the a1lib/<Task>-v0 envs
from a1lib.sim.world import WORKSPACE


@dataclass
class SimRobotConfig:
    task: str = "SortParts"
    domain: str = "lab"  # the real-robot stand-in look
    image_size: int = 64
    fps: float = 10.0
    seed: int = 0
    camera: str = "front"
    command_timeout_s: float = 0.5  # no fresh command for this long -> stop
    realtime: bool = True  # False: one env step per send_action
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # more gymnasium.make kwargs


# The env's action entries as LeRobot-style keys: all five are rates (per-step commands).
ACTION_KEYS = {"vx": "x.vel", "vy": "y.vel", "vyaw": "yaw.vel", "lift": "lift.vel", "grip": "grip.vel"}


def joint_names(state_names: list[str]) -> list[str]:
    """``"gripper.x"`` -> ``"x"`` (the part after the last dot), unless that would collide."""
    short = [n.rsplit(".", 1)[-1] for n in state_names]
    return short if len(set(short)) == len(short) else [n.replace(".", "_") for n in state_names]


def _default_env(config: SimRobotConfig):
    return gymnasium.make(f"a1lib/{config.task}-v0", domain=config.domain, image_size=config.image_size,
                          render_mode="rgb_array", **config.env_kwargs)


class SimRobot:
    robot_type = "a1lib_sim"
    name = "a1lib_sim"

    def __init__(
        self,
        config: SimRobotConfig | None = None,
        env_factory: Callable[[SimRobotConfig], Any] | None = None,
        state_names: list[str] | None = None,
        action_names: list[str] | None = None,
    ) -> None:
        self.config = config or SimRobotConfig()
        self._env_factory = env_factory or _default_env
        if state_names is None or action_names is None:
            state_names = list(STATE_NAMES) if state_names is None else state_names
            action_names = list(ACTION_NAMES) if action_names is None else action_names
        self.state_names, self.action_names = list(state_names), list(action_names)
        self.joints = joint_names(self.state_names)
        self.action_keys = [ACTION_KEYS.get(n, f"{n}.vel") for n in self.action_names]
        self._env = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._obs: dict[str, np.ndarray] | None = None
        self._command = np.zeros(len(self.action_names), np.float32)
        self._command_time = 0.0
        self.steps = 0  # env steps this episode
        self.episode_done = False
        self.success = False
        self.info: dict[str, Any] = {}

    # ----------------------------------------------------------------- features
    @property
    def observation_features(self) -> dict[str, Any]:
        s = self.config.image_size
        return {**{f"{j}.pos": float for j in self.joints}, self.config.camera: (s, s, 3)}

    @property
    def action_features(self) -> dict[str, Any]:
        return {k: float for k in self.action_keys}

    @property
    def action_limits(self) -> dict[str, tuple[float, float]]:
        return {k: ACTION_RANGE for k in self.action_keys}

    @property
    def workspace(self) -> dict[str, tuple[float, float]]:
        """Where the gripper centre may go (the safety layer stops velocities pushing outside)."""
        return {k: WORKSPACE for k in ("x.pos", "y.pos") if k in self.observation_features}

    @property
    def feature_units(self) -> dict[str, str]:
        units = {f"{j}.pos": "rad" if j.endswith("yaw") else "unit" for j in self.joints}  # table units
        units.update({k: "unit" for k in self.action_keys})  # normalised commands
        return units

    @property
    def instruction(self) -> str:
        return str(getattr(self._env.unwrapped, "instruction", self.config.task)) if self._env else self.config.task

    @property
    def is_connected(self) -> bool:
        return self._env is not None

    # ----------------------------------------------------------------- lifecycle
    def connect(self, calibrate: bool = False) -> None:
        if self.is_connected:
            raise RobotError("SimRobot is already connected")
        self._env = self._env_factory(self.config)
        self.reset(self.config.seed)

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode (the physical equivalent: reset the scene by hand)."""
        self._require()
        self._stop_thread()
        obs, info = self._env.reset(seed=seed)
        self._check_obs(obs)
        with self._lock:
            self._obs, self.info = obs, dict(info)
            self._command[:] = 0
            self.steps, self.episode_done, self.success = 0, False, False
        if self.config.realtime:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="simrobot", daemon=True)
            self._thread.start()

    def disconnect(self) -> None:
        if not self.is_connected:
            raise RobotError("SimRobot is not connected")
        self._stop_thread()
        env, self._env = self._env, None
        env.close()

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _require(self) -> None:
        if not self.is_connected:
            raise RobotError("SimRobot is not connected: call connect() first")

    def _check_obs(self, obs: dict[str, Any]) -> None:
        if obs["state"].shape != (len(self.state_names),):
            raise RobotError(f"sim state has shape {obs['state'].shape}, STATE_NAMES has {len(self.state_names)}")

    # ----------------------------------------------------------------- physics
    def _step_env(self, command: np.ndarray) -> None:
        obs, _, terminated, truncated, info = self._env.step(command)
        with self._lock:
            self._obs, self.info = obs, dict(info)
            self.steps += 1
            self.success = bool(info.get("success", False))
            self.episode_done = bool(terminated or truncated)

    def _run(self) -> None:
        period = 1.0 / self.config.fps
        next_t = time.perf_counter() + period
        while not self._stop.is_set() and not self.episode_done:
            delay = next_t - time.perf_counter()
            if delay > 0 and self._stop.wait(delay):
                break
            with self._lock:
                fresh = time.perf_counter() - self._command_time <= self.config.command_timeout_s
                command = self._command.copy() if fresh else np.zeros_like(self._command)
            self._step_env(command)
            next_t = max(next_t + period, time.perf_counter())  # never try to catch up

    # ----------------------------------------------------------------- robot API
    def get_observation(self) -> dict[str, Any]:
        self._require()
        with self._lock:
            state, image = self._obs["state"], self._obs["image"]
        out: dict[str, Any] = {f"{j}.pos": float(v) for j, v in zip(self.joints, state)}
        out[self.config.camera] = np.array(image, copy=True)
        return out

    def send_action(self, action: dict[str, Any]) -> dict[str, float]:
        self._require()
        missing = [k for k in self.action_keys if k not in action]
        if missing:
            raise RobotError(f"SimRobot.send_action: missing keys {missing}")
        command = np.array([float(action[k]) for k in self.action_keys], np.float32)
        command = np.clip(np.nan_to_num(command, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)  # the drive's own clamp
        with self._lock:
            self._command, self._command_time = command, time.perf_counter()
        if not self.config.realtime and not self.episode_done:
            self._step_env(command)
        return {k: float(v) for k, v in zip(self.action_keys, command)}
