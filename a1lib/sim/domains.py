"""The three domains: how the same world looks and how the robot responds.

* ``sim``   synthetic data, randomised per episode: table colour and texture (plain, checker,
            stripes, blotches), lighting (brightness and a linear gradient, a slight tint),
            1-3 distractor shapes, and a camera jitter of up to ~2.5% of the table.
            Object colours are not changed, so labels and bins stay recognisable.
* ``lab``   stand-in for the real robot: one fixed look that differs from sim (blue-grey
            table with a fixed fine texture, vignette, warm colour shift), a 3x3 blur, sensor
            noise (a bank of fixed noise frames picked per step by the seeded rng), Gaussian
            action noise (std ``ACTION_NOISE``) and exactly one step of actuation latency.
* ``human`` egocentric-video stand-in: a skin-coloured hand replaces the gripper, on a wooden
            kitchen table with warm light. The env still takes actions (the expert drives the
            hand); the dataset writer drops actions and state for this domain.

``make_look(domain, rng, size)`` returns a ``Look``: the table image, the per-pixel gain (light
and colour), the distractors and the post-processing switches. All randomness comes from ``rng``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from a1lib.sim import portable_trig as trig

DOMAINS = ("sim", "lab", "human")
ACTION_NOISE = 0.05  # lab: std of the Gaussian noise added to each action entry
LAB_NOISE_STD = 6.0  # lab: sensor noise std in 8-bit units
NOISE_BANK = 16  # lab: number of precomputed noise frames


@dataclass
class Look:
    table: np.ndarray  # (H, W, 3) uint8, the empty table
    gain: np.ndarray | None  # (H, W, 3) uint16 light/colour gain x128, None = identity
    jitter: tuple[float, float] = (0.0, 0.0)  # camera shift in pixels (cols, rows)
    distractors: list = field(default_factory=list)  # (prims, x, y, yaw)
    blur: bool = False
    noise_bank: np.ndarray | None = None  # (NOISE_BANK, H, W, 3) int16: 4 x noise, in [-256, 256]
    hand: bool = False
    action_noise: float = 0.0
    latency: int = 0


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    v = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(v, v)  # xs, ys: (H, W)


def _gain(size: int, brightness: float, grad: tuple[float, float], tint: tuple, vignette: float = 0.0):
    xs, ys = _coords(size)
    g = brightness + grad[0] * (xs - 0.5) + grad[1] * (ys - 0.5)
    if vignette:
        g = g - vignette * ((xs - 0.5) ** 2 + (ys - 0.5) ** 2)
    out = g[:, :, None] * np.asarray(tint, dtype=np.float32)[None, None, :]
    return np.clip(np.round(out * 128), 0, 255).astype(np.uint16)


_SIM_TABLES = [(200, 185, 160), (175, 175, 170), (160, 175, 160), (205, 170, 130), (180, 165, 185), (150, 160, 175)]
_DISTRACTOR_COLORS = [(90, 120, 90), (150, 110, 150), (100, 100, 140), (160, 150, 110), (120, 90, 70)]


def _texture(rng: np.random.Generator, size: int, base: np.ndarray) -> np.ndarray:
    xs, ys = _coords(size)
    kind = int(rng.integers(4))
    amp = float(rng.uniform(6, 18))
    if kind == 0:
        pat = np.zeros_like(xs)
    elif kind == 1:  # checker
        k = float(rng.uniform(6, 14))
        pat = np.where((np.floor(xs * k) + np.floor(ys * k)) % 2 == 0, 1.0, -1.0)
    elif kind == 2:  # stripes at a random angle
        a = float(rng.uniform(0, np.pi))
        k = float(rng.uniform(10, 25))
        u = (trig.cos(a) * xs.astype(np.float64) + trig.sin(a) * ys.astype(np.float64)) * k
        pat = np.where(np.floor(u) % 2 == 0, 1.0, -1.0)  # the sign of sin(pi u), without a sine
        pat[u == np.floor(u)] = 0.0
    else:  # blotches: coarse noise, upsampled
        n = int(rng.integers(4, 9))
        coarse = rng.standard_normal((n, n))
        idx = np.minimum((np.arange(size) * n) // size, n - 1)
        pat = coarse[idx][:, idx] / 1.5
    img = base[None, None, :].astype(np.float32) + amp * pat[:, :, None]
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_look(domain: str, rng: np.random.Generator, size: int) -> Look:
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}; expected one of {DOMAINS}")
    if domain == "sim":
        base = np.array(_SIM_TABLES[int(rng.integers(len(_SIM_TABLES)))], dtype=np.float32)
        base = np.clip(base + rng.uniform(-15, 15, size=3), 0, 255)
        table = _texture(rng, size, base)
        gain = _gain(size, float(rng.uniform(0.8, 1.15)), tuple(rng.uniform(-0.25, 0.25, size=2)),
                     tuple(1.0 + rng.uniform(-0.06, 0.06, size=3)))
        jitter = tuple(float(v) for v in rng.uniform(-0.025, 0.025, size=2) * size)
        distractors = []
        for _ in range(int(rng.integers(1, 4))):
            c = _DISTRACTOR_COLORS[int(rng.integers(len(_DISTRACTOR_COLORS)))]
            if rng.random() < 0.5:
                prims = (("rect", 0.0, 0.0, float(rng.uniform(0.03, 0.06)), float(rng.uniform(0.02, 0.05)), c),)
            else:
                prims = (("circle", 0.0, 0.0, float(rng.uniform(0.015, 0.03)), c),)
            distractors.append((prims, float(rng.uniform(0.03, 0.97)), float(rng.uniform(0.03, 0.97)),
                                float(rng.uniform(-np.pi, np.pi))))
        return Look(table=table, gain=gain, jitter=jitter, distractors=distractors)
    if domain == "lab":
        return _lab_look(size)
    # human
    xs, ys = _coords(size)
    base = np.array([168, 122, 82], dtype=np.float32) + rng.uniform(-10, 10, size=3)
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    grain = trig.sin((ys + 0.05 * trig.sin(xs * 9.0 + float(rng.uniform(0, 6)))) * 60.0)
    table = np.clip(base[None, None, :] + 12.0 * grain[:, :, None], 0, 255).astype(np.uint8)
    gain = _gain(size, float(rng.uniform(0.9, 1.1)), (0.0, 0.15), (1.08, 1.0, 0.9))
    return Look(table=table, gain=gain, jitter=tuple(float(v) for v in rng.uniform(-0.015, 0.015, size=2) * size),
                hand=True)


@functools.lru_cache(maxsize=8)
def _lab_look(size: int) -> Look:
    """The lab's look is fixed (not per episode), so it is built once per image size."""
    fixed = np.random.default_rng(20240601)
    base = np.array([105, 112, 124], dtype=np.float32)
    grain = fixed.standard_normal((size, size)).astype(np.float32) * 5.0
    table = np.clip(base[None, None, :] + grain[:, :, None], 0, 255).astype(np.uint8)
    gain = _gain(size, 1.08, (0.1, -0.05), (1.1, 1.0, 0.85), vignette=0.9)
    noise = np.clip(np.round(fixed.standard_normal((NOISE_BANK, size, size, 3)) * LAB_NOISE_STD * 4), -256, 256)
    bank = noise.astype(np.int16)  # x4, see post_process
    return Look(table=table, gain=gain, blur=True, noise_bank=bank, action_noise=ACTION_NOISE, latency=1)


def post_process(img: np.ndarray, look: Look, bufs: tuple, noise_index: int) -> None:
    """Lab camera: 2x2 box blur and sensor noise on ``img`` (H, W, 3) uint8, in place.

    (Light and colour gain are applied by the renderer.) ``bufs`` are two preallocated (H, W, 3)
    int16 scratch buffers. The blur sums 4 neighbours (0..1020), the noise frame is stored x4
    (-256..256); then clip to 0..1023 and divide by 4. Few, allocation-free numpy calls: this
    runs every lab step.
    """
    buf, buf2 = bufs
    if not img.flags.c_contiguous:  # the flat views below would be copies, and the result lost
        raise ValueError("post_process needs a C-contiguous image")
    if look.blur:  # sums of 2x2 neighbourhoods, written without overlapping (no hidden copies)
        # on flat views: contiguous 1-D adds are ~3x faster than the same adds on strided 3-D views
        row = img.shape[1] * 3
        f, b, b2 = img.reshape(-1), buf.reshape(-1), buf2.reshape(-1)
        np.add(f[:-row], f[row:], out=b[row:], dtype=np.int16)  # buf[r] = img[r-1] + img[r]
        np.multiply(f[:row], 2, out=b[:row], dtype=np.int16)  # top row: no row above, counts twice
        np.add(b[:-3], b[3:], out=b2[3:])  # buf2[r, c] = buf[r, c-1] + buf[r, c]; col 0 wraps, so:
        np.add(buf[:, 0], buf[:, 0], out=buf2[:, 0])  # left column: counts twice
        buf, buf2 = buf2, buf
    else:
        np.left_shift(img, 2, out=buf, dtype=np.int16)
    if look.noise_bank is not None:
        np.add(buf, look.noise_bank[noise_index], out=buf)
    _clip(buf, _ZERO, _TOP, out=buf)  # the ufunc itself: np.clip's wrapper costs more than the work
    np.right_shift(buf, _TWO, out=img, casting="unsafe")  # 0..255 after the clip, so the cast is exact


_clip = np.core.umath.clip
_ZERO, _TOP, _TWO = np.int16(0), np.int16(1023), np.int16(2)
