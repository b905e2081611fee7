"""The privileged-state policy: an MLP that reads the simulator's scene description instead of pixels.

It is the top rung of the diagnosis ladder (``bench/bench_learnability.py``) and a reference row of
``a1 evaluate``: trained on the same demonstrations as A1, it shows how well the tasks can be
imitated at all when perception is perfect. If it fails, no vision model can succeed; if it succeeds
and A1 does not, the gap is perception (or the budget).

Input, per frame (``scene_features``): the proprioceptive state, and for each of the ``MAX_OBJECTS``
scene slots whether it is used, its kind and colour (one-hot), its pose (x, y, cos yaw, sin yaw),
its offset from the gripper and whether it is held; the moving surfaces' speeds and the task's
completion; and the expert's current plan (``scene.target``: which object it acts on, ``scene.goal``:
where that object is to go), as offsets from the gripper. With the plan given, what is left to
imitate is the motor behaviour under the lab's latency and noise with chunked execution: this is
the ceiling of imitation when perception *and* the choice of what to do next are perfect (A1 gets
the plan only as a training target for its grounding head, never as an input). Output: an action
chunk (H, A), regressed (MSE on normalised actions). Saved as safetensors + JSON, like A1Policy.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from a1lib.configs import from_dict
from a1lib.constants import ACTION_RANGE, STATE
from a1lib.data import Normalizer
from a1lib.io import atomic_directory
from a1lib.policy_protocol import InferenceSettings, binarize_actions
from a1lib.sim.world import COLOR_NAMES, KIND_NAMES, MAX_OBJECTS

FORMAT = "a1lib.PrivilegedPolicy/1"
SLOT_FEATURES = 1 + len(KIND_NAMES) + len(COLOR_NAMES) + 4 + 2 + 1  # used, kind, colour, pose, offset, held


PLAN_FEATURES = (MAX_OBJECTS + 1) + 2 + 1 + 2  # target slot one-hot (+ none), its offset, goal valid, goal offset


def feature_dim(state_dim: int) -> int:
    return state_dim + MAX_OBJECTS * SLOT_FEATURES + 2 + 1 + PLAN_FEATURES


def scene_features(state: np.ndarray, scene: dict[str, np.ndarray]) -> np.ndarray:
    """(..., S) state and scene arrays with the same leading dims -> (..., feature_dim(S)) float32."""
    state = np.asarray(state, dtype=np.float32)
    lead = state.shape[:-1]
    get = lambda k: np.asarray(scene[k] if k in scene else scene[k.removeprefix("scene.")])  # noqa: E731
    kind, color = get("scene.kind").astype(np.int64), get("scene.color").astype(np.int64)  # (..., K)
    pose = get("scene.pose").astype(np.float32)  # (..., K, 3)
    held = get("scene.held").astype(np.int64)[..., 0]  # (...,)
    used = kind >= 0
    kind_1h = np.eye(len(KIND_NAMES), dtype=np.float32)[np.where(used, kind, 0)] * used[..., None]
    color_1h = np.eye(len(COLOR_NAMES), dtype=np.float32)[np.clip(color, 0, None)] * (color >= 0)[..., None]
    xy = pose[..., :2]
    yaw = pose[..., 2:3]
    offset = xy - state[..., None, :2]  # the gripper's x, y are the state's first two entries
    is_held = (np.arange(MAX_OBJECTS) == held[..., None]).astype(np.float32)
    slots = np.concatenate([used[..., None].astype(np.float32), kind_1h, color_1h, xy, np.cos(yaw), np.sin(yaw),
                            offset, is_held[..., None]], -1) * used[..., None]  # (..., K, SLOT_FEATURES)
    motion = get("scene.motion").astype(np.float32)
    progress = get("scene.progress").astype(np.float32)
    target = get("scene.target").astype(np.int64)[..., 0]  # (...,) slot or -1
    has_target = target >= 0
    target_1h = np.eye(MAX_OBJECTS + 1, dtype=np.float32)[np.where(has_target, target + 1, 0)]
    t_xy = np.take_along_axis(xy, np.clip(target, 0, None)[..., None, None].repeat(2, -1), -2)[..., 0, :]
    t_off = (t_xy - state[..., :2]) * has_target[..., None]
    goal = get("scene.goal").astype(np.float32)
    has_goal = (goal >= 0).all(-1, keepdims=True)
    g_off = (goal - state[..., :2]) * has_goal
    return np.concatenate([state, slots.reshape(*lead, -1), motion, progress, target_1h, t_off,
                           has_goal.astype(np.float32), g_off], -1).astype(np.float32)


@dataclass
class PrivilegedConfig:
    state_dim: int = 6
    action_dim: int = 5
    chunk_size: int = 10
    hidden: int = 512
    layers: int = 3
    seed: int = 0


class PrivilegedMLP(nn.Module):
    """scene features (B, F) -> normalised action chunk (B, H, A)."""

    def __init__(self, config: PrivilegedConfig):
        super().__init__()
        self.config = c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            dims = [feature_dim(c.state_dim)] + [c.hidden] * c.layers
            layers: list[nn.Module] = []
            for a, b in zip(dims[:-1], dims[1:]):
                layers += [nn.Linear(a, b), nn.LayerNorm(b), nn.GELU()]
            layers.append(nn.Linear(dims[-1], c.chunk_size * c.action_dim))
            self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1, self.config.chunk_size, self.config.action_dim)


class PrivilegedPolicy:
    """The MLP as a ``Policy``. It reads the scene from the env it is attached to (``attach``), as
    the scripted expert does, so it runs in ``a1 evaluate`` but not on a real robot."""

    def __init__(self, model: PrivilegedMLP, normalizer: Any, binary_action_dims: tuple[int, ...] = (),
                 settings: InferenceSettings = InferenceSettings()):
        self.settings = settings.checked(model.config.chunk_size)  # it reads one frame: only replan_every matters
        self.model = model.eval()
        self.normalizer = normalizer
        self.binary_action_dims = tuple(int(d) for d in binary_action_dims)
        self.env = None
        c = model.config
        self.metadata = {"policy": "privileged", "action_dim": c.action_dim, "horizon": c.chunk_size,
                         "state_dim": c.state_dim, "action_range": list(ACTION_RANGE),
                         "binary_action_dims": list(self.binary_action_dims)}

    def attach(self, env: Any) -> None:
        self.env = env.unwrapped

    def reset(self) -> None:
        pass

    @torch.inference_mode()
    def infer(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.env is None:
            raise RuntimeError("PrivilegedPolicy reads the simulator's scene: call attach(env) first")
        x = scene_features(np.asarray(obs[STATE], np.float32), self.env.scene())
        a = self.model(torch.from_numpy(x)[None])[0].numpy()  # (H, A) normalised
        a = np.clip(self.normalizer.unnormalize("action", a), *ACTION_RANGE).astype(np.float32)
        return {"actions": binarize_actions(a, self.binary_action_dims)}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_directory(directory) as tmp:
            save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            (tmp / "config.json").write_text(json.dumps(asdict(self.model.config), indent=2) + "\n")
            (tmp / "normalizer.json").write_text(json.dumps(self.normalizer.to_dict(), indent=1) + "\n")
            (tmp / "policy.json").write_text(json.dumps({"format": FORMAT,
                                                         "binary_action_dims": list(self.binary_action_dims),
                                                         "replan_every": self.settings.replan_every}, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike,
                        override: dict[str, Any] | None = None) -> "PrivilegedPolicy":
        """The policy with the replan interval it was exported with, but for ``override`` (printed)."""
        directory = Path(directory)
        meta = json.loads((directory / "policy.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{directory / 'policy.json'}: format {meta.get('format')!r}, expected {FORMAT!r}")
        config = from_dict(PrivilegedConfig, json.loads((directory / "config.json").read_text()),
                           where=str(directory / "config.json"))
        model = PrivilegedMLP(config)
        model.load_state_dict(load_file(str(directory / "model.safetensors")), strict=True)
        normalizer = Normalizer.from_dict(json.loads((directory / "normalizer.json").read_text()))
        replan = meta.get("replan_every")
        settings = InferenceSettings(replan_every=None if replan is None else int(replan))
        if override:
            settings = settings.overridden(str(directory), **override)
        return cls(model, normalizer, tuple(meta.get("binary_action_dims", ())), settings)


def is_privileged_policy(directory: str | os.PathLike) -> bool:
    p = Path(directory) / "policy.json"
    return p.is_file() and json.loads(p.read_text()).get("format") == FORMAT
