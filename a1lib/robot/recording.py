"""Record executed episodes as a LeRobotDataset v3.0 (via ``a1lib.data.LeRobotWriter``).

What is recorded is what happened: the camera frame and state the policy saw (model units, not
normalised) and the action that was actually sent (after the safety layer), so a recorded lab
episode is training data with the same features as ``data/lab``.

Frames are buffered in memory and handed to the writer only when the episode ends normally; an
e-stopped or crashed episode is discarded. The writer is ``durable``: every saved episode is on
disk and readable as soon as ``save_episode`` returns, so an interruption loses at most the
episode in progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from a1lib.constants import STATE
from a1lib.data import LeRobotWriter
from a1lib.robot.mapping import FeatureMapping


def dataset_features(mapping: FeatureMapping) -> dict[str, dict[str, Any]]:
    if mapping.image_shape is None:
        raise ValueError("recording needs a fixed FeatureMapping.image_shape")
    h, w, c = mapping.image_shape
    features: dict[str, dict[str, Any]] = {
        key: {"dtype": "image", "shape": [h, w, c], "names": ["height", "width", "channels"]}
        for key in mapping.cameras
    }
    features[STATE] = {"dtype": "float32", "shape": [mapping.state_dim], "names": list(mapping.state_keys)}
    features["action"] = {"dtype": "float32", "shape": [mapping.action_dim], "names": list(mapping.action_keys)}
    return features


class EpisodeRecorder:
    def __init__(self, root: str | Path, mapping: FeatureMapping, fps: float, robot_type: str) -> None:
        self.root = Path(root)
        self.features = dataset_features(mapping)
        self.writer = LeRobotWriter(self.root, fps=int(round(fps)), features=self.features,
                                    robot_type=robot_type, durable=True)
        self.frames: list[dict[str, np.ndarray]] = []
        self.episodes_saved = 0
        self.finalized = False

    def add_frame(self, frame: dict[str, np.ndarray]) -> None:
        missing = sorted(set(self.features) - set(frame))
        if missing:
            raise KeyError(f"EpisodeRecorder.add_frame: frame lacks {missing}")
        self.frames.append({k: np.array(frame[k], copy=True) for k in self.features})

    def save_episode(self, task: str) -> int:
        """Write the buffered frames as one episode (on disk when this returns); its length."""
        n = len(self.frames)
        if n == 0:
            return 0
        for frame in self.frames:
            self.writer.add_frame(frame)
        self.writer.save_episode(task)
        self.frames = []
        self.episodes_saved += 1
        return n

    def discard_episode(self) -> int:
        n, self.frames = len(self.frames), []
        return n

    def finalize(self) -> None:
        if not self.finalized:
            self.frames = []
            if self.episodes_saved:  # nothing recorded: leave no half dataset behind
                self.writer.finalize()
            self.finalized = True
