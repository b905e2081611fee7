"""Closed-loop rollouts: a Policy drives a lab-domain env, one action chunk at a time.

At every replanning point the policy sees frame t (and frame t - delta, from the episode's own
history, clamped to the first frame as in training), returns a chunk of H actions, and the first
``replan_every`` of them are executed open loop before it is asked again. Both numbers are the
policy's own (``a1lib.policy_protocol.InferenceSettings``). The original executes whole chunks;
replanning earlier reacts faster to moving objects at more compute per step.

Reference policies run through the very same loop. Policies that need privileged access to the
simulator (the scripted expert) implement ``attach(env)``; the runner calls it after each reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

import a1lib.sim  # noqa: F401  (registers the envs)
from a1lib.constants import IMAGE, IMAGE_PAST, STATE, TASK
from a1lib.data.seeds import eval_seed
from a1lib.policy_protocol import inference_settings


class ExpertPolicy:
    """The scripted expert as a Policy: a chunk of one action, read from the env it is attached to."""

    metadata = {"policy": "expert", "horizon": 1}

    def __init__(self, motion_blind: bool = False):
        self.motion_blind = motion_blind
        self.env = None

    def attach(self, env: Any) -> None:
        self.env = env.unwrapped

    def infer(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.env is None:
            raise RuntimeError("ExpertPolicy needs privileged env access: call attach(env) first")
        return {"actions": np.asarray(self.env.expert_action(self.motion_blind), dtype=np.float32)[None]}

    def reset(self) -> None:
        pass


@dataclass
class EpisodeResult:
    task: str
    seed: int
    success: bool
    steps: int
    instruction: str
    frames: list = field(default_factory=list)  # per step: (image, imagined or None, chunk left, state)


def run_episode(env: Any, policy: Any, seed: int, record: bool = False) -> EpisodeResult:
    """One episode on ``seed``, run with the policy's inference settings; returns success, steps and
    (``record``) the frames for a GIF."""
    policy.reset()
    obs, info = env.reset(seed=int(seed))
    if hasattr(policy, "attach"):
        policy.attach(env)
    instruction = env.unwrapped.instruction
    settings = inference_settings(policy)
    delta, replan_every = settings.delta, settings.replan_every
    low, high = env.action_space.low, env.action_space.high
    history = [obs["image"]]
    frames, success, steps = [], bool(info.get("success", False)), 0
    done = success
    while not done:
        past = history[max(len(history) - 1 - delta, 0)]
        out = policy.infer({IMAGE: obs["image"], IMAGE_PAST: past, STATE: obs["state"], TASK: instruction})
        chunk = np.asarray(out["actions"], dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[1] != low.shape[0] or not len(chunk):
            raise ValueError(f"policy returned actions of shape {chunk.shape}, expected (H, {low.shape[0]})")
        if not np.isfinite(chunk).all():
            raise ValueError(f"policy returned non-finite actions at step {steps} of {env.unwrapped.task_name} "
                             f"seed {seed}")
        n = len(chunk) if replan_every is None else max(1, min(int(replan_every), len(chunk)))
        imagined = out.get("imagined")
        for k in range(n):
            if record:
                frames.append((obs["image"], imagined, chunk[k:n].copy(), np.asarray(obs["state"]).copy()))
            obs, _, terminated, truncated, info = env.step(np.clip(chunk[k], low, high))
            history.append(obs["image"])
            steps += 1
            success = bool(info.get("success", terminated))
            if terminated or truncated:
                done = True
                break
    if record:
        frames.append((obs["image"], None, np.zeros((0, low.shape[0]), np.float32), np.asarray(obs["state"]).copy()))
    return EpisodeResult(env.unwrapped.task_name, int(seed), success, steps, instruction, frames)


def first_outcomes(policy: Any, tasks: list[str], episodes: int,
                   image_size: int = 64) -> dict[str, tuple[str, int, EpisodeResult]]:
    """The first successful and the first failed recorded episode ({"success" | "failure": (task,
    evaluation-seed index, result)}) among ``episodes`` evaluation seeds per task, lab domain."""
    picked: dict[str, tuple[str, int, EpisodeResult]] = {}
    for task in tasks:
        for i in range(episodes):
            env = gym.make(f"a1lib/{task}-v0", domain="lab", image_size=image_size)
            res = run_episode(env, policy, eval_seed(task, i), record=True)
            env.close()
            picked.setdefault("success" if res.success else "failure", (task, i, res))
            if len(picked) == 2:
                return picked
    return picked


def imagine_along_expert(policy: Any, task: str, step: int, seed: int, delta: int,
                         image_size: int = 64) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The scripted expert drives a lab episode; at frame ``step`` the policy imagines frame
    step + delta. Returns (frame t, imagined t+delta or None, true frame t+delta)."""
    env = gym.make(f"a1lib/{task}-v0", domain="lab", image_size=image_size)
    obs, _ = env.reset(seed=seed)
    frames, states = [obs["image"]], [obs["state"]]
    for _ in range(step + delta):
        obs, _, terminated, truncated, _ = env.step(env.unwrapped.expert_action())
        frames.append(obs["image"])
        states.append(obs["state"])
        if terminated or truncated:
            break
    t = max(0, min(step, len(frames) - 1 - delta))
    answer = policy.infer({IMAGE: frames[t], IMAGE_PAST: frames[max(0, t - delta)], STATE: states[t],
                           TASK: env.unwrapped.instruction})
    env.close()
    return frames[t], answer.get("imagined"), frames[min(t + delta, len(frames) - 1)]
