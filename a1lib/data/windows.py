"""Training windows over a LeRobotDataset, and the state/action normaliser.

A sample is one frame t of one episode (sample i = global frame i), seen through a window:

    observation.image_past    frame t - delta  (clamped to the episode start; image_past_is_pad)
    observation.image         frame t
    observation.image_future  frame t + delta  (clamped to the episode end;   future_is_pad)
    observation.state         (S,)   state at t
    action                    (H, A) actions t .. t+H-1; past the episode end the last action is
    action_is_pad             (H,)   repeated and marked True here (the loss ignores those rows)
    task, source, scene.*     the instruction, the dataset name, the scene arrays at t
    index_past/index/index_future   global frame indices used, so a latent cache can be looked
                                    up instead of decoding images (pass decode_images=False)

This is LeRobot's ``delta_timestamps`` idea with fixed offsets {-delta, 0, +delta} for images and
{0..H-1} for actions. Human-video datasets have no state and no action: their samples carry
``has_action=False`` and no ``observation.state`` / ``action`` keys. Plain numpy, no torch, so a
``torch.utils.data.DataLoader`` can wrap it (its default collate stacks arrays and lists strings).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from a1lib.constants import ACTION, IMAGE, STATE
from a1lib.data.reader import LeRobotDataset


class WindowedDataset:
    """Map-style dataset of training windows over ``ds`` (see the module docstring)."""

    def __init__(
        self,
        ds: LeRobotDataset,
        delta: int,  # the history / future offset in frames: the training config's (the exported policy owns it)
        horizon: int = 10,
        source: str | None = None,
        image_key: str = IMAGE,
        decode_images: bool = True,
    ):
        if delta < 1 or horizon < 1:
            raise ValueError(f"delta and horizon must be >= 1, got delta={delta} horizon={horizon}")
        if image_key not in ds.camera_keys:
            raise ValueError(f"{ds.root}: no camera feature {image_key!r}; have {ds.camera_keys}")
        self.ds, self.delta, self.horizon = ds, int(delta), int(horizon)
        self.source = source or ds.root.name
        self.image_key = image_key
        self.decode_images = decode_images
        self.has_action = ACTION in ds.features and STATE in ds.features
        self.scene_keys = [k for k in ds.numeric_keys if k.startswith("scene.")]
        # Episode bounds of every frame: [start, end) -> (N,) each.
        starts = np.array([e["dataset_from_index"] for e in ds.episodes], dtype=np.int64)
        ends = np.array([e["dataset_to_index"] for e in ds.episodes], dtype=np.int64)
        self.start_of = starts[ds.episode_of]
        self.end_of = ends[ds.episode_of]

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range 0..{len(self) - 1}")
        lo, hi = int(self.start_of[i]), int(self.end_of[i])  # episode frames are lo .. hi-1
        past, future = max(i - self.delta, lo), min(i + self.delta, hi - 1)
        cols = self.ds.columns
        out: dict[str, Any] = {
            "index_past": np.int64(past),
            "index": np.int64(i),
            "index_future": np.int64(future),
            "image_past_is_pad": np.bool_(i - self.delta < lo),
            "future_is_pad": np.bool_(i + self.delta > hi - 1),
            "episode_index": np.int64(self.ds.episode_of[i]),
            "frame_index": np.int64(cols["frame_index"][i]),
            "task": self.ds.task_of(i),
            "source": self.source,
            "has_action": np.bool_(self.has_action),
        }
        if self.decode_images:
            frames = self.ds.get_frames(self.image_key, [past, i, future])  # (3, H, W, 3) uint8
            out[IMAGE + "_past"], out[IMAGE], out[IMAGE + "_future"] = frames
        if self.has_action:
            steps = i + np.arange(self.horizon)  # (H,)
            out[STATE] = cols[STATE][i].astype(np.float32)
            out[ACTION] = cols[ACTION][np.minimum(steps, hi - 1)].astype(np.float32)  # (H, A)
            out["action_is_pad"] = steps > hi - 1  # (H,) bool
        for key in self.scene_keys:
            out[key] = cols[key][i]
        return out


class Normalizer:
    """Normalise / un-normalise features (state, action) with dataset stats.

    Modes: ``mean_std`` (x - mean) / std; ``min_max`` maps [min, max] to [-1, 1]; ``quantile`` maps
    [q01, q99] to [-1, 1] (robust to outliers); ``identity``. Dimensions with (near) zero spread
    are left centred but unscaled. Works on numpy arrays and torch tensors of shape (..., D).
    ``to_dict`` / ``from_dict`` give a plain JSON-able dict to save next to a policy.
    """

    MODES = ("mean_std", "min_max", "quantile", "identity")

    def __init__(self, stats: dict[str, dict[str, Any]], keys: list[str] | tuple[str, ...], mode: str = "mean_std",
                 eps: float = 1e-6):
        if mode not in self.MODES:
            raise ValueError(f"Normalizer mode {mode!r} unknown; use one of {self.MODES}")
        self.mode, self.eps, self.keys = mode, float(eps), list(keys)
        self.params: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # key -> (shift, scale): x_n = (x - shift) / scale
        self.stats: dict[str, dict[str, list]] = {}
        for key in self.keys:
            if key not in stats:
                raise KeyError(f"Normalizer: no stats for {key!r}; have {sorted(stats)}")
            st = {k: np.asarray(v, dtype=np.float64) for k, v in stats[key].items()}
            self.stats[key] = {k: st[k].tolist() for k in ("mean", "std", "min", "max", "q01", "q99") if k in st}
            if mode == "mean_std":
                shift, scale = st["mean"], st["std"]
            elif mode == "min_max":
                shift, scale = (st["max"] + st["min"]) / 2, (st["max"] - st["min"]) / 2
            elif mode == "quantile":
                shift, scale = (st["q99"] + st["q01"]) / 2, (st["q99"] - st["q01"]) / 2
            else:
                shift, scale = np.zeros_like(st["mean"]), np.ones_like(st["mean"])
            scale = np.where(scale < self.eps, 1.0, scale)
            self.params[key] = (shift.astype(np.float32), scale.astype(np.float32))

    @staticmethod
    def _like(x: Any, p: np.ndarray) -> Any:
        if type(x).__module__.startswith("torch"):
            import torch  # lazy: x is a tensor, so torch is loaded already; a1lib.data never loads it itself

            return torch.as_tensor(p, dtype=x.dtype, device=x.device)
        return p.astype(np.asarray(x).dtype if np.asarray(x).dtype.kind == "f" else np.float32)

    def normalize(self, key: str, x: Any) -> Any:
        shift, scale = self.params[key]
        return (x - self._like(x, shift)) / self._like(x, scale)

    def unnormalize(self, key: str, x: Any) -> Any:
        shift, scale = self.params[key]
        return x * self._like(x, scale) + self._like(x, shift)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``batch`` with every key this normaliser knows normalised."""
        return {k: (self.normalize(k, v) if k in self.params else v) for k, v in batch.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "eps": self.eps, "keys": self.keys, "stats": self.stats}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normalizer":
        return cls(d["stats"], d["keys"], mode=d["mode"], eps=d.get("eps", 1e-6))
