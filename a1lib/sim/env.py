"""``TabletopEnv``: one Gymnasium env class for all tasks and domains.

    env = gymnasium.make("a1lib/SortParts-v0", domain="sim", image_size=64)
    obs, info = env.reset(seed=0)       # obs = {"image": uint8 (S,S,3), "state": float32 (6,)}
    obs, reward, terminated, truncated, info = env.step(env.unwrapped.expert_action())

Randomness: ``reset(seed)`` seeds ``self.np_random`` (Gymnasium's convention); from it come
independent ``np.random.default_rng`` streams for the layout, the look, the instruction, the
sensor noise and the action noise. Same seed -> same bytes.

One step (10 fps): the moving surfaces carry the free objects, then the (lab: previous,
noisy) action moves the gripper and grasps/releases, the held object follows, the task applies
its rules, and the frame is rendered. Reward is 1.0 on the step that succeeds, else 0.0.
``terminated`` on success, ``truncated`` at the task's step limit.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from a1lib.sim.domains import DOMAINS, NOISE_BANK, make_look
from a1lib.sim.experts import expert_action, expert_plan
from a1lib.sim.render import SceneRenderer
from a1lib.sim.tasks import TASK_IDS, TASKS
from a1lib.sim.world import (
    ACTION_DIM,
    COLOR_NAMES,
    KIND_NAMES,
    MAX_OBJECTS,
    STATE_DIM,
    STATE_HIGH,
    STATE_LOW,
    STATE_NAMES,
    World,
)

SCENE_FEATURES = {
    "scene.kind": {"dtype": "int64", "shape": [MAX_OBJECTS], "names": [f"object_{k}" for k in range(MAX_OBJECTS)]},
    "scene.color": {"dtype": "int64", "shape": [MAX_OBJECTS], "names": [f"object_{k}" for k in range(MAX_OBJECTS)]},
    "scene.pose": {"dtype": "float32", "shape": [MAX_OBJECTS, 3], "names": ["object", "x_y_yaw"]},
    "scene.held": {"dtype": "int64", "shape": [1], "names": ["held_object"]},
    "scene.motion": {"dtype": "float32", "shape": [2], "names": ["belt_speed", "turntable_speed"]},
    "scene.progress": {"dtype": "float32", "shape": [1], "names": ["task_completion"]},
    "scene.camera": {"dtype": "float32", "shape": [2], "names": ["offset_x", "offset_y"]},
    "scene.target": {"dtype": "int64", "shape": [1], "names": ["target_object"]},
    "scene.goal": {"dtype": "float32", "shape": [2], "names": ["goal_x", "goal_y"]},
    # which task the episode is (an index into a1lib.sim.TASKS): stored, never parsed back from the instruction
    "scene.task": {"dtype": "int64", "shape": [1], "names": ["task"]},
}


class TabletopEnv(gym.Env):
    """A planar tabletop task seen from above (see the module docstring and a1lib.sim)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, task: str = "SortParts", domain: str = "sim", image_size: int = 64,
                 wrist_camera: bool = False, render_mode: str | None = "rgb_array",
                 belt_speed: float | None = None, turntable_speed: float | None = None):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
        if domain not in DOMAINS:
            raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
        if not (isinstance(image_size, (int, np.integer)) and 16 <= image_size <= 1024):
            raise ValueError(f"image_size must be an int in [16, 1024], got {image_size!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        for name, v in (("belt_speed", belt_speed), ("turntable_speed", turntable_speed)):
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (per second), got {v!r}")
        self.spec_task = TASKS[task]
        self.task_name = task
        self.domain = domain
        self.image_size = int(image_size)
        self.wrist_camera = bool(wrist_camera)
        self.render_mode = render_mode
        self.motion_override = {"belt_speed": belt_speed, "turntable_speed": turntable_speed}
        self.step_limit = self.spec_task.step_limit
        img = spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8)
        obs = {"image": img, "state": spaces.Box(STATE_LOW, STATE_HIGH, dtype=np.float32)}
        if self.wrist_camera:
            obs["wrist_image"] = spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8)
        self.observation_space = spaces.Dict(obs)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), dtype=np.float32)
        self.world: World | None = None
        self.task = None
        self.instruction = ""
        self._obs = None
        self._expert_mem: dict = {}

    # --- gym API -----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        s = self.np_random.integers(0, 2**63 - 1, size=5)
        rng_layout, rng_look, rng_text = (np.random.default_rng(int(v)) for v in s[:3])
        self._rng_noise = np.random.default_rng(int(s[3]))
        self._rng_action = np.random.default_rng(int(s[4]))
        self.world = World()
        self.task = self.spec_task.factory()
        fields = self.task.setup(self.world, rng_layout, self.motion_override)
        templates = self.spec_task.templates
        self.instruction = templates[int(rng_text.integers(len(templates)))].format(**fields)
        self.look = make_look(self.domain, rng_look, self.image_size)
        self.renderer = SceneRenderer(self.image_size, self.look, self.world, self.task, self.wrist_camera)
        self._pending = np.zeros(ACTION_DIM, dtype=np.float32)  # lab latency buffer
        # per-step random draws made up front (Generator calls are slow one by one)
        n = self.step_limit + 1
        self._noise_index = self._rng_noise.integers(NOISE_BANK, size=n)
        self._action_noise = self._rng_action.normal(0.0, self.look.action_noise or 1.0, size=(n, ACTION_DIM)
                                                     ).astype(np.float32)
        self._expert_mem = {}
        self.steps = 0
        self._success = False
        self._obs = self._observe()
        return self._obs, self._info()

    def step(self, action):
        if self.world is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape != (ACTION_DIM,):
            raise ValueError(f"action must have shape ({ACTION_DIM},), got {np.shape(action)}")
        if not np.isfinite(a).all():
            raise ValueError(f"action contains non-finite values: {a}")
        look = self.look
        if look.latency:  # the action given now takes effect at the next step
            a, self._pending = self._pending, a.copy()
        if look.action_noise:
            a = a + self._action_noise[self.steps % len(self._action_noise)]
        w = self.world
        self.task.before_step(w)
        w.move_surfaces()
        w.apply_action(a)
        w.follow_gripper()
        self.task.update(w)
        w.t += 1
        self.steps += 1
        success = bool(self.task.success(w))
        self._success = success
        self._obs = self._observe()
        truncated = (not success) and self.steps >= self.step_limit
        return self._obs, float(success), success, truncated, self._info()

    def render(self):
        if self.render_mode != "rgb_array" or self._obs is None:
            return None
        return self._obs["image"].copy()

    # --- privileged access ------------------------------------------------------------------------
    def expert_action(self, motion_blind: bool = False) -> np.ndarray:
        """The scripted expert's command for the current state, float32 (5,)."""
        if self.world is None:
            raise RuntimeError("call reset() before expert_action()")
        return expert_action(self.task, self.world, self._expert_mem, motion_blind)

    def scene(self) -> dict[str, np.ndarray]:
        """Privileged scene arrays (see SCENE_FEATURES); padding slots are -1."""
        w = self.world
        if w is None:
            raise RuntimeError("call reset() before scene()")
        target, goal = expert_plan(self.task, w)
        pose = np.full((MAX_OBJECTS, 3), -1.0, dtype=np.float32)
        pose[:w.n] = w.pose[:w.n]
        pose[:w.n, 2] = (w.pose[:w.n, 2] + math.pi) % (2 * math.pi) - math.pi
        return {
            "scene.kind": w.kind.copy(),
            "scene.color": w.color.copy(),
            "scene.pose": pose,
            "scene.held": np.array([w.held], dtype=np.int64),
            "scene.motion": np.array([w.belt_speed * 10.0, w.table_speed * 10.0], dtype=np.float32),
            "scene.progress": np.array([self.task.completion(w)], dtype=np.float32),
            "scene.camera": np.array(self.look.jitter, dtype=np.float32) / self.image_size,
            "scene.target": np.array([target], dtype=np.int64),
            "scene.goal": np.array(goal if goal is not None else (-1.0, -1.0), dtype=np.float32),
            "scene.task": np.array([TASK_IDS[self.task_name]], dtype=np.int64),
        }

    @property
    def success(self) -> bool:
        return self._success

    # --- internals ---------------------------------------------------------------------------------
    def _observe(self) -> dict[str, np.ndarray]:
        k = int(self._noise_index[self.steps % len(self._noise_index)])
        img, wrist = self.renderer.render(self.world, self.task, k)
        obs = {"image": img, "state": self.world.state()}
        if self.wrist_camera:
            obs["wrist_image"] = wrist
        return obs

    def _info(self) -> dict[str, Any]:
        return {"success": self._success, "task": self.task_name, "domain": self.domain, "steps": self.steps}


def make_env(task: str, domain: str = "sim", **kwargs) -> TabletopEnv:
    """Makes the env directly (no Gymnasium wrappers); same kwargs as gymnasium.make."""
    return TabletopEnv(task=task, domain=domain, **kwargs)


def register_envs() -> None:
    for name in TASKS:
        env_id = f"a1lib/{name}-v0"
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="a1lib.sim.env:TabletopEnv", kwargs={"task": name})


__all__ = ["TabletopEnv", "make_env", "register_envs", "SCENE_FEATURES", "STATE_NAMES", "STATE_DIM",
           "KIND_NAMES", "COLOR_NAMES"]
