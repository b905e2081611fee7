"""Rollout GIFs: what the robot saw, what it imagined, and what it planned, side by side.

Each GIF frame is two panels, upscaled for visibility:

    [ camera frame t, with the remaining action chunk drawn as a path ]  [ imagined frame t+delta ]

The path starts at the gripper (state ``gripper.x, gripper.y`` in table coordinates [0, 1]^2,
which the top-down camera maps to the whole image) and integrates the chunk's planar velocities
(``vx, vy`` times the sim's MAX_SPEED per step). Green dots: gripper closing; red: opening.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw

from a1lib.io import atomic_write
from a1lib.sim.world import planned_path


def panel(image: np.ndarray, scale: int) -> Image.Image:
    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def compose_frame(image: np.ndarray, imagined: np.ndarray | None, chunk: np.ndarray, state: np.ndarray,
                  scale: int = 3) -> np.ndarray:
    """uint8 (S*scale, 2*S*scale, 3): camera + action path | imagined future (grey if none)."""
    cam = panel(image, scale)
    size = cam.width
    draw = ImageDraw.Draw(cam)
    if len(chunk):
        pts = planned_path(state, chunk) * size
        draw.line([tuple(p) for p in pts], fill=(255, 255, 0), width=max(1, scale // 2))
        for p, a in zip(pts[1:], chunk):
            colour = (0, 255, 0) if a.shape[0] > 4 and a[4] > 0 else (255, 0, 0)
            draw.ellipse([p[0] - 1, p[1] - 1, p[0] + 1, p[1] + 1], fill=colour)
    if imagined is not None:
        fut = panel(imagined, scale)
        if fut.size != cam.size:
            fut = fut.resize(cam.size, Image.NEAREST)
    else:
        fut = Image.new("RGB", cam.size, (64, 64, 64))
        ImageDraw.Draw(fut).text((4, 4), "no imagined\nframe", fill=(200, 200, 200))
    out = Image.new("RGB", (2 * size, size))
    out.paste(cam, (0, 0))
    out.paste(fut, (size, 0))
    return np.asarray(out)


def write_gif(path: str | Path, frames: list, scale: int = 3, fps: int = 10) -> Path:
    """frames: [(image, imagined | None, chunk (K, A), state)] -> an animated GIF (atomic write)."""
    stack = np.stack([compose_frame(*f, scale=scale) for f in frames])
    # keep_suffix: imageio picks the format from the temp file's extension
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, stack, duration=int(1000 / fps), loop=0), keep_suffix=True)
