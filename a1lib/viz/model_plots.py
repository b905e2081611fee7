"""Pictures of the model's inner workings: the attention mask, flow trajectories, the KV schedule."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from a1lib.models.token_layout import mask_for_plot

SEGMENT_COLORS = {"image": "tab:blue", "text": "tab:cyan", "middle": "tab:orange", "state": "tab:green",
                  "actions": "tab:red"}


def plot_attention_mask(config, lang_len: int | None = None, num_real_text: int | None = None, ax=None):
    """The action-pass mask of one sample: row = query token, column = key token, dark = may attend."""
    mask, segments, _ = mask_for_plot(config, lang_len, num_real_text)
    ax = ax or plt.subplots(figsize=(6, 6))[1]
    ax.imshow(~mask, cmap="gray", interpolation="nearest")
    for name, sl in segments.items():
        if sl.stop > sl.start:
            ax.axhline(sl.start - 0.5, color=SEGMENT_COLORS[name], lw=1)
            ax.axvline(sl.start - 0.5, color=SEGMENT_COLORS[name], lw=1)
            mid = (sl.start + sl.stop - 1) / 2
            ax.text(mid, -1.5, name, ha="center", va="bottom", fontsize=8, color=SEGMENT_COLORS[name], rotation=45)
            ax.text(-1.5, mid, name, ha="right", va="center", fontsize=8, color=SEGMENT_COLORS[name])
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    return ax


def plot_flow_trajectories(paths: np.ndarray, data: np.ndarray | None = None, max_lines: int = 200, ax=None):
    """paths (steps + 1, n, 2), noise first. Grey lines: Euler paths; blue: noise; red: samples."""
    ax = ax or plt.subplots(figsize=(5, 5))[1]
    if data is not None:
        ax.scatter(data[:, 0], data[:, 1], s=2, c="lightgray", label="data")
    for i in range(min(max_lines, paths.shape[1])):
        ax.plot(paths[:, i, 0], paths[:, i, 1], color="gray", lw=0.4, alpha=0.6)
    ax.scatter(paths[0, :, 0], paths[0, :, 1], s=3, c="tab:blue", label="t=1 (noise)")
    ax.scatter(paths[-1, :, 0], paths[-1, :, 1], s=3, c="tab:red", label="t=0 (samples)")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_action_chunks(true_chunk: np.ndarray, sampled: np.ndarray, names: list[str], ax=None):
    """true_chunk (H, A) and sampled (S, H, A): one panel per action dimension."""
    H, A = true_chunk.shape
    axes = ax if ax is not None else plt.subplots(1, A, figsize=(2.6 * A, 2.4), sharey=True)[1]
    for a in range(A):
        for s in sampled:
            axes[a].plot(s[:, a], color="tab:orange", alpha=0.4, lw=1)
        axes[a].plot(true_chunk[:, a], color="k", lw=2, label="demonstration")
        axes[a].set_title(names[a] if a < len(names) else f"a{a}", fontsize=9)
        axes[a].set_xlabel("step in chunk")
    axes[0].legend(fontsize=7)
    return axes


def plot_kv_schedule(config, num_steps: int, ax=None):
    """Which tokens each forward pass of cached inference computes: prefix once, middle once,
    then the suffix alone for every Euler step (reading the cached keys/values of the rest)."""
    n_pre = config.num_image_tokens + config.max_text_len
    n_mid = config.num_gen_tokens
    n_suf = 1 + config.chunk_size
    ax = ax or plt.subplots(figsize=(7, 2.8))[1]
    rows = [("prefix pass", 0, n_pre, "tab:blue"), ("middle pass", n_pre, n_mid, "tab:orange")]
    rows += [(f"Euler step {i + 1}", n_pre + n_mid, n_suf, "tab:red") for i in range(num_steps)]
    for y, (label, start, width, color) in enumerate(rows):
        if width:
            ax.broken_barh([(start, width)], (y - 0.4, 0.8), color=color)
        if start:
            ax.broken_barh([(0, start)], (y - 0.4, 0.8), color="lightgray")  # read from the cache
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("token position (grey: read from the KV cache, colour: computed)")
    return ax
