"""Where does the model think each object is? The grounding heat-maps of the understanding expert's
conv trunk (``a1lib.models.vision``), drawn over the frame, with the soft-argmax keypoint (the point
the policy's state token receives) and the true position from the scene."""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from a1lib.models.processor import grounding_targets, image_to_tensor
from a1lib.models.vision import keypoints


@torch.inference_mode()
def plot_grounding(vision: Any, processor: Any, frames: list[np.ndarray], instructions: list[str],
                   scenes: list[dict] | None = None, states: list[np.ndarray] | None = None,
                   names: tuple[str, ...] = ("gripper", "target", "goal")):
    """One row per frame: the frame, then one heat-map per name (softmax over pixels) with the
    predicted keypoint (x) and, given ``scenes``/``states``, the true position (o). Returns the figure."""
    config = processor.config
    index = [config.grounding.index(n) for n in names]
    fig, axes = plt.subplots(len(frames), len(names) + 1, figsize=(2.2 * (len(names) + 1), 2.7 * len(frames)),
                             squeeze=False)
    size = config.image_size
    for r, (frame, text) in enumerate(zip(frames, instructions)):
        tokens, mask = processor.tokenize(text)
        _, logits = vision(image_to_tensor(frame, size)[None], tokens[None], mask[None])
        kp, _ = keypoints(logits)  # (1, G, 2) in [0, 1]
        h, w = logits.shape[-2:]
        truth = None
        if scenes is not None:
            truth = grounding_targets(config.grounding, scenes[r], None if states is None else states[r])
        axes[r, 0].imshow(frame)
        axes[r, 0].set_title(textwrap.fill(text, 32), fontsize=8)  # all of it: the target depends on it
        for c, (g, name) in enumerate(zip(index, names), start=1):
            ax = axes[r, c]
            heat = logits[0, g].flatten().softmax(-1).reshape(h, w).numpy()
            ax.imshow(frame, alpha=0.45)
            ax.imshow(heat, cmap="magma", alpha=0.6, extent=(-0.5, size - 0.5, size - 0.5, -0.5))
            x, y = kp[0, g].numpy() * size - 0.5
            ax.plot(x, y, "x", color="cyan", ms=7, mew=2)
            if truth is not None:
                points, valid = truth
                for p in points[g][valid[g]]:
                    ax.plot(p[0] * size - 0.5, p[1] * size - 0.5, "o", mfc="none", mec="lime", ms=8, mew=1.5)
            ax.set_title(name, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig
