"""Pictures of frames and episodes: image grids, rollout animations, training windows."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation


def image_grid(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, cols: int = 10,
               scale: float = 1.4, row_labels: Sequence[str] | None = None):
    """A grid of uint8 (H, W, 3) images, ``cols`` per row. Returns the figure."""
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(scale * cols, scale * rows + 0.3), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k < n:
            ax.imshow(images[k], interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=7)
        else:
            ax.axis("off")
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout()
    return fig


def captioned_frames(images: Sequence[np.ndarray], captions: Sequence[str], cols: int = 2, scale: float = 2.0,
                     fontsize: float = 10):
    """uint8 (H, W, 3) images, each with a caption of a few lines beside it (e.g. scene questions and
    answers), ``cols`` per row. Few columns, so that the captions stay readable once the notebook
    scales the figure to its width. Returns the figure."""
    n = len(images)
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2.8 * scale * cols, 1.05 * scale * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.8] * cols})
    for ax in axes.flat:
        ax.axis("off")  # every second axes only reserves the room its neighbour's caption runs into
    for k in range(n):
        ax = axes[k // cols, 2 * (k % cols)]
        ax.imshow(images[k], interpolation="nearest")
        caption = ax.text(1.06, 0.5, captions[k], fontsize=fontsize, va="center", ha="left", transform=ax.transAxes)
        caption.set_in_layout(False)
    fig.tight_layout()
    return fig


def episode_animation(frames: np.ndarray, fps: int = 10, title: str = "", scale: float = 3.0):
    """A matplotlib animation of (T, H, W, 3) frames; show it with ``HTML(anim.to_jshtml())``."""
    fig, ax = plt.subplots(figsize=(scale, scale))
    ax.set_xticks([])
    ax.set_yticks([])
    im = ax.imshow(frames[0], interpolation="nearest")
    label = ax.set_title(f"{title} t=0", fontsize=8)

    def update(t):
        im.set_data(frames[t])
        label.set_text(f"{title} t={t}")
        return im, label

    anim = animation.FuncAnimation(fig, update, frames=len(frames), interval=1000 / fps, blit=True)
    plt.close(fig)
    return anim


def plot_window(sample: dict, action_names: Sequence[str], delta: int):
    """One training window: frames t-delta, t, t+delta and the action chunk that starts at t."""
    fig = plt.figure(figsize=(12, 3))
    grid = fig.add_gridspec(1, 4, width_ratios=[1, 1, 1, 2.2])
    for k, (key, label) in enumerate([("observation.image_past", f"t-{delta}"), ("observation.image", "t (now)"),
                                      ("observation.image_future", f"t+{delta} (to imagine)")]):
        ax = fig.add_subplot(grid[k])
        ax.imshow(sample[key], interpolation="nearest")
        pad = (key.endswith("past") and sample.get("image_past_is_pad")) or (
            key.endswith("future") and sample.get("future_is_pad"))
        ax.set_title(label + (" [pad]" if pad else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[3])
    if "action" in sample:
        chunk = np.asarray(sample["action"])  # (H, A)
        for a in range(chunk.shape[1]):
            ax.plot(chunk[:, a], marker=".", label=action_names[a] if a < len(action_names) else f"a{a}")
        pad = np.asarray(sample["action_is_pad"])
        if pad.any():
            ax.axvspan(np.argmax(pad) - 0.5, len(pad) - 0.5, color="gray", alpha=0.2, label="is_pad")
        ax.set_xlabel("step in chunk")
        ax.legend(fontsize=7, ncol=2)
        ax.set_title("action chunk", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no actions (human video)", ha="center", va="center")
        ax.axis("off")
    fig.suptitle(sample.get("task", ""), fontsize=9)
    fig.tight_layout()
    return fig
