"""Recording episodes: the scripted expert (for datasets) or any policy function.

``record_expert_episode`` runs the expert closed loop and keeps what a dataset needs:
``images[t]`` is what was seen at step t and ``actions[t]`` the command issued after seeing it
(the expert's command, i.e. before the lab's action noise and latency). The final observation
after the last action is not stored, so all arrays share the leading length T.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from a1lib.sim.env import SCENE_FEATURES, TabletopEnv


@dataclass
class EpisodeRecord:
    task: str
    domain: str
    seed: int
    instruction: str
    images: np.ndarray  # (T, H, W, 3) uint8
    states: np.ndarray  # (T, S) float32
    actions: np.ndarray  # (T, A) float32
    scene: dict  # name -> array with leading T (see SCENE_FEATURES)
    success: bool
    wrist_images: np.ndarray | None = None  # (T, H, W, 3) uint8 when wrist_camera=True

    def __len__(self) -> int:
        return int(self.images.shape[0])


def rollout_policy(env: TabletopEnv, policy_fn: Callable[[dict, TabletopEnv], np.ndarray], max_steps: int | None = None,
                   seed: int | None = None, perturb: Callable[[np.ndarray], np.ndarray] | None = None) -> EpisodeRecord:
    """Runs ``policy_fn(obs, env) -> action (5,)`` from ``env.reset(seed)`` until success or the limit.

    ``perturb(action) -> action`` changes what is executed, not what is recorded (DART)."""
    base = env.unwrapped
    obs, _ = env.reset(seed=seed)
    limit = base.step_limit if max_steps is None else int(max_steps)
    images, wrists, states, actions = [], [], [], []
    scenes = {k: [] for k in SCENE_FEATURES}
    success = False
    for _ in range(limit):
        a = np.asarray(policy_fn(obs, base), dtype=np.float32)
        images.append(obs["image"])
        if "wrist_image" in obs:
            wrists.append(obs["wrist_image"])
        states.append(obs["state"])
        actions.append(a)
        for k, v in base.scene().items():
            scenes[k].append(v)
        obs, _, terminated, truncated, info = env.step(a if perturb is None else perturb(a))
        success = bool(info["success"])
        if terminated or truncated:
            break
    return EpisodeRecord(
        task=base.task_name, domain=base.domain, seed=-1 if seed is None else int(seed),
        instruction=base.instruction, images=np.stack(images), states=np.stack(states),
        actions=np.stack(actions), scene={k: np.stack(v) for k, v in scenes.items()}, success=success,
        wrist_images=np.stack(wrists) if wrists else None)


def dart_perturbation(noise: float, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """DART (Laskey et al. 2017): Gaussian noise of std ``noise`` on the executed velocities (vx, vy,
    vyaw), clipped to the action box; lift and grip stay as commanded. The expert, re-evaluated
    every step, then demonstrates how to recover from the drift it causes."""
    rng = np.random.default_rng([int(seed), 0xDA27])

    def perturb(a: np.ndarray) -> np.ndarray:
        out = np.array(a, dtype=np.float32, copy=True)
        out[:3] = np.clip(out[:3] + rng.normal(0.0, noise, size=3), -1.0, 1.0)
        return out

    return perturb


def record_expert_episode(task: str, domain: str, seed: int, image_size: int = 64, wrist_camera: bool = False,
                          motion_blind: bool = False, dart_noise: float = 0.0, **env_kwargs) -> EpisodeRecord:
    """One expert episode of ``task`` in ``domain`` from ``seed`` (same arguments -> same bytes).

    ``dart_noise`` > 0 records DART demonstrations: the labels are the expert's clean commands, the
    executed actions carry noise (``dart_perturbation``)."""
    env = TabletopEnv(task=task, domain=domain, image_size=image_size, wrist_camera=wrist_camera, **env_kwargs)
    perturb = dart_perturbation(dart_noise, seed) if dart_noise > 0 else None
    return rollout_policy(env, lambda obs, e: e.expert_action(motion_blind=motion_blind), seed=int(seed),
                          perturb=perturb)
