"""Tiny synthetic datasets for tests and examples (no simulator needed).

Frame t of episode e shows a smooth pattern whose brightness encodes (e, t), so a test can check
that the right frame came back, even through a lossy video codec. State, action and scene arrays
are deterministic functions of (e, t) too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from a1lib.data.writer import LeRobotWriter

STATE_DIM, ACTION_DIM, MAX_OBJECTS = 4, 3, 5


def synthetic_features(image_size: int = 16, camera: str = "image", human: bool = False) -> dict:
    feats = {"observation.image": {"dtype": camera, "shape": [image_size, image_size, 3],
                                   "names": ["height", "width", "channels"]}}
    if not human:
        feats["observation.state"] = {"dtype": "float32", "shape": [STATE_DIM],
                                      "names": [f"s{i}" for i in range(STATE_DIM)]}
        feats["action"] = {"dtype": "float32", "shape": [ACTION_DIM], "names": [f"a{i}" for i in range(ACTION_DIM)]}
    feats["scene.kind"] = {"dtype": "int64", "shape": [MAX_OBJECTS], "names": None}
    feats["scene.pose"] = {"dtype": "float32", "shape": [MAX_OBJECTS, 3], "names": None}
    feats["scene.held"] = {"dtype": "int64", "shape": [1], "names": None}
    return feats


def synthetic_image(e: int, t: int, image_size: int = 16) -> np.ndarray:
    """uint8 (S, S, 3): a vertical gradient plus a brightness step per (episode, frame)."""
    level = (20 + 37 * e + 9 * t) % 200
    ramp = np.linspace(0, 40, image_size)[:, None]  # (S, 1)
    img = np.empty((image_size, image_size, 3), np.float64)
    img[..., 0] = level + ramp
    img[..., 1] = level
    img[..., 2] = 230 - level - ramp
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_frame(e: int, t: int, image_size: int = 16, human: bool = False) -> dict:
    frame = {"observation.image": synthetic_image(e, t, image_size)}
    if not human:
        frame["observation.state"] = np.array([e, t, np.sin(t), 0.5], np.float32)
        frame["action"] = np.array([t, -e, 100 * e + t], np.float32)
    frame["scene.kind"] = np.array([e % 3, 1, -1, -1, -1], np.int64)
    frame["scene.pose"] = np.full((MAX_OBJECTS, 3), 0.1 * t, np.float32)
    frame["scene.held"] = np.array([t % 2], np.int64)
    return frame


def write_synthetic_dataset(root: str | Path, lengths=(6, 9, 7), image_size: int = 16, camera: str = "image",
                            human: bool = False, durable: bool = False, fps: int = 10, **writer_kwargs) -> Path:
    """Write episodes of the given lengths (episode e has task ``f"task {e % 2}"``)."""
    w = LeRobotWriter(root, fps, synthetic_features(image_size, camera, human), robot_type="synthetic",
                      durable=durable, **writer_kwargs)
    for e, T in enumerate(lengths):
        for t in range(T):
            w.add_frame(synthetic_frame(e, t, image_size, human))
        w.save_episode(task=f"task {e % 2}")
    return w.finalize()
