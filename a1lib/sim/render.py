"""A small numpy rasteriser for the top-down tabletop, anti-aliased and sub-pixel exact.

Speed matters (the data generator renders hundreds of thousands of frames on a laptop), so
nothing is rasterised per step from scratch:

* Every object is a list of *primitives* (rectangles, circles, rings, ...) in its own frame,
  in table units. ``build_stamp`` rasterises such a list once for a given yaw (quantised to
  ``YAW_BINS`` steps), sub-pixel phase and image size into a *stamp*: per pixel, the summed
  colour of the covered sub-samples and their count (``SUPERSAMPLE``^2 sub-samples per pixel).
  Stamps are cached in module-level dicts (they depend on nothing random), and so are the
  rotated sample grids and the per-primitive coverage masks they are made of.
* **Why anti-aliased, sub-pixel stamps.** At 64 px one pixel is 0.016 table units, larger than
  some decisions the experts make. A stamp is built for the object's position inside its pixel
  (``SUBPIXEL`` phases per axis) and blended by coverage, so moving an object by a quarter of a
  pixel changes the edge pixels: a camera (and a policy) can see motion below one pixel.
* A stamp is pasted as a ``SparseStamp``: the flat offsets of the bytes it touches with their
  premultiplied colour and remaining background weight, so a paste is a gather, a multiply-add
  and a scatter. Lit versions (``lit_stamp``) are cached by (prims, yaw bin, size, scale, phase,
  light) for the whole process, so they survive new episodes.
* Each episode gets a background (table + texture + distractors + fixed objects such as bins),
  drawn once at reset. A step copies it, pastes the stamps of the moving things, lets the task
  draw its overlay (conveyor stripes, a stain, a seam) and applies the domain's post-processing
  (blur, sensor noise).

Pixel ``(row, col)`` covers the table square ``[col, col + 1) / S x [row, row + 1) / S``, shifted
by the per-episode camera offset: table point (x, y) is at continuous pixel coordinates
``(x * S + jx, y * S + jy)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from a1lib.sim import portable_trig as trig
from a1lib.sim.domains import post_process
from a1lib.sim.world import KIND_NAMES

YAW_BINS = 64
SUBPIXEL = 4  # stamp phases per pixel and axis: positions are drawn to a quarter pixel
SUPERSAMPLE = 4  # coverage sub-samples per pixel and axis (16 per pixel)
_SS2 = SUPERSAMPLE * SUPERSAMPLE
_SHIFT = 4  # log2(_SS2): blending divides by the sub-sample count with a shift

# RGB of the colour vocabulary (a1lib.sim.world.COLOR_NAMES order).
PALETTE = np.array([
    (215, 40, 40),  # red
    (40, 165, 60),  # green
    (40, 80, 215),  # blue
    (240, 205, 40),  # yellow
    (245, 135, 30),  # orange
    (135, 60, 185),  # purple
    (240, 240, 240),  # white
    (30, 30, 30),  # black
    (120, 120, 125),  # grey
    (135, 85, 45),  # brown
    (240, 130, 180),  # pink
    (40, 195, 205),  # cyan
    (190, 195, 200),  # silver
], dtype=np.uint8)


def rgb(color: int | tuple) -> tuple[int, int, int]:
    if isinstance(color, tuple):
        return color
    return tuple(int(v) for v in PALETTE[color])


def shade(c: tuple, f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, round(v * f)))) for v in c)


# --- primitives -------------------------------------------------------------------------------
# ("rect", cx, cy, w, h, rgb) ("circle", cx, cy, r, rgb) ("ellipse", cx, cy, a, b, rgb)
# ("ring", cx, cy, r_in, r_out, rgb) ("gear", cx, cy, r, teeth, rgb) ("taper", cx, cy, w, h, rgb)
# Coordinates are in the object's frame (x along its yaw), in table units.

def _reach(p: tuple) -> float:
    kind = p[0]
    if kind in ("rect", "taper"):
        return math.hypot(abs(p[1]) + p[3] / 2, abs(p[2]) + p[4] / 2)
    if kind == "ellipse":
        return math.hypot(p[1], p[2]) + max(p[3], p[4])
    if kind == "ring":
        return math.hypot(p[1], p[2]) + p[4]
    if kind == "gear":
        return math.hypot(p[1], p[2]) + p[3] * 1.25
    return math.hypot(p[1], p[2]) + p[3]  # circle


def _prim_mask(p: tuple, lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    kind, cx, cy = p[0], p[1], p[2]
    dx, dy = lx - cx, ly - cy
    if kind == "rect":
        return (np.abs(dx) <= p[3] / 2) & (np.abs(dy) <= p[4] / 2)
    if kind == "circle":
        return dx * dx + dy * dy <= p[3] * p[3]
    if kind == "ellipse":
        return (dx / p[3]) ** 2 + (dy / p[4]) ** 2 <= 1.0
    if kind == "ring":
        d2 = dx * dx + dy * dy
        return (d2 >= p[3] * p[3]) & (d2 <= p[4] * p[4])
    if kind == "gear":
        r = np.sqrt(dx * dx + dy * dy)
        # a tooth where cos(teeth * angle) > 0, i.e. Re((dx + i dy)^teeth) > 0: products only, because
        # sample points lie exactly on tooth edges, where any trig kernel's last bit picks the side
        re_, im_ = dx, dy
        for _ in range(int(p[4]) - 1):
            re_, im_ = re_ * dx - im_ * dy, re_ * dy + im_ * dx
        return (r <= p[3]) | ((r <= p[3] * 1.25) & (re_ > 0))
    if kind == "taper":  # triangle: base of height h at cx - w/2, tip at cx + w/2
        frac = (dx + p[3] / 2) / p[3]
        return (frac >= 0) & (frac <= 1) & (np.abs(dy) <= (1 - frac) * p[4] / 2)
    raise ValueError(f"unknown primitive {kind!r}")


def pixel_phase(u: float) -> tuple[int, int]:
    """Continuous pixel coordinate -> (pixel index, sub-pixel phase in 0..SUBPIXEL-1)."""
    i = math.floor(u)
    return i, min(SUBPIXEL - 1, int((u - i) * SUBPIXEL))


def yaw_bin(yaw: float) -> int:
    return int(math.floor(yaw * (YAW_BINS / (2 * math.pi)) + 0.5)) % YAW_BINS


_STAMPS: dict = {}
_GRIDS: dict = {}
_MASKS: dict = {}  # (primitive without colour, yaw bin, half, ppu, phase) -> (n*SS, n*SS) bool


def _rotated_grid(b: int, half: int, ppu: float, phase: tuple[int, int]):
    """Sub-sample offsets of a (2 half + 1)^2 pixel patch, rotated into an object frame of yaw bin
    ``b``, for an object whose centre lies at sub-pixel ``phase`` (x, y) of the centre pixel.

    Cached: the gripper's grip levels and its shadow share one grid per (yaw, size, lift, phase).
    """
    key = (b, half, ppu, phase)
    hit = _GRIDS.get(key)
    if hit is not None:
        return hit
    if len(_GRIDS) > 50_000:
        _GRIDS.clear()
    n = 2 * half + 1
    sub = (np.arange(n * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - half - 0.5  # sample - centre pixel's centre, px
    ox = (sub - ((phase[0] + 0.5) / SUBPIXEL - 0.5)) / ppu  # minus the object's offset in its pixel
    oy = (sub - ((phase[1] + 0.5) / SUBPIXEL - 0.5)) / ppu
    ox, oy = np.meshgrid(ox, oy)  # (n*SS, n*SS): x offset (cols), y offset (rows)
    a = b * 2 * math.pi / YAW_BINS
    c, s = trig.cos(a), trig.sin(a)
    lx = c * ox + s * oy  # table offset rotated into the object's frame
    ly = -s * ox + c * oy
    _GRIDS[key] = (lx, ly)
    return lx, ly


def build_stamp(prims: tuple, yaw: float, size: int, scale: float = 1.0, phase: tuple[int, int] = (0, 0)):
    """Rasterises ``prims`` rotated by ``yaw`` for an image of ``size`` pixels per table unit, with
    the object's centre at sub-pixel ``phase`` (x, y) of the centre pixel.

    Returns ``(colour_sum (n, n, 3) uint16, count (n, n, 1) uint16, half)``: per pixel the summed
    colour of its covered sub-samples and how many of the ``SUPERSAMPLE``^2 are covered (later
    primitives paint over earlier ones). The stamp's centre pixel is ``[half, half]``. Cached by
    (prims, yaw bin, size, scale, phase).
    """
    b = yaw_bin(yaw)
    key = (prims, b, size, scale, phase)
    hit = _STAMPS.get(key)
    if hit is not None:
        return hit
    if len(_STAMPS) > 200_000:  # safety valve for very long sessions
        _STAMPS.clear()
    ppu = size * scale
    reach = max(_reach(p) for p in prims)
    half = int(math.ceil(reach * ppu)) + 2
    lx, ly = _rotated_grid(b, half, ppu, phase)
    top = np.full(lx.shape, -1, dtype=np.int16)  # index of the top-most primitive per sub-sample
    for k, p in enumerate(prims):
        # a primitive's coverage does not depend on its colour: the shadow reuses the gripper's,
        # and the grip levels share the palm
        mkey = (p[:-1], b, half, ppu, phase)
        m = _MASKS.get(mkey)
        if m is None:
            if len(_MASKS) > 200_000:
                _MASKS.clear()
            m = _MASKS[mkey] = _prim_mask(p, lx, ly)
        top[m] = k
    colours = np.array([p[-1] for p in prims] + [(0, 0, 0)], dtype=np.uint16)  # index -1: nothing
    n = 2 * half + 1
    per_sample = colours[top].reshape(n, SUPERSAMPLE, n, SUPERSAMPLE, 3)
    colour_sum = per_sample.sum((1, 3), dtype=np.uint16)
    count = (top >= 0).reshape(n, SUPERSAMPLE, n, SUPERSAMPLE).sum((1, 3), dtype=np.uint16)[:, :, None]
    out = (colour_sum, count, half)
    _STAMPS[key] = out
    return out


class SparseStamp:
    """A stamp as the list of the bytes it touches: a paste is one gather, multiply-add, scatter.

    ``rows, cols, chans`` (K,) locate each touched byte in the (n, n, 3) patch, ``vals`` (K,) is its
    premultiplied colour (sum over covered sub-samples), ``keep`` (K,) the background's weight
    (uncovered sub-samples), ``rel`` (K,) its flat offset in an image of width ``size`` from the
    patch's top-left pixel: ``pixel = (pixel * keep + vals) >> log2(SUPERSAMPLE^2)``.
    """

    __slots__ = ("half", "n", "rows", "cols", "chans", "vals", "keep", "count", "rel", "size")

    def __init__(self, half, n, rows, cols, chans, vals, keep, count, rel, size):
        self.half, self.n, self.rows, self.cols, self.chans = half, n, rows, cols, chans
        self.vals, self.keep, self.count, self.rel, self.size = vals, keep, count, rel, size

    @classmethod
    def from_stamp(cls, stamp, size: int) -> "SparseStamp":
        colour_sum, count, half = stamp
        rows, cols = np.nonzero(count[:, :, 0])  # (P,) touched pixels -> (3P,) bytes, row-major
        rows, cols = np.repeat(rows, 3), np.repeat(cols, 3)
        chans = np.arange(len(rows)) % 3
        cnt = count[rows, cols, 0]
        return cls(half, colour_sum.shape[0], rows, cols, chans, colour_sum[rows, cols, chans],
                   (_SS2 - cnt).astype(np.uint16), cnt, (rows * size + cols) * 3 + chans, size)

    def lit(self, gain: tuple) -> "SparseStamp":
        """The same stamp under a light/colour ``gain`` (3 ints, x128), each sub-sample clipped at 255."""
        g = np.asarray(gain, dtype=np.uint32)[self.chans]
        vals = np.minimum((self.vals.astype(np.uint32) * g) >> 7, 255 * self.count.astype(np.uint32))
        return SparseStamp(self.half, self.n, self.rows, self.cols, self.chans, vals.astype(np.uint16), self.keep,
                           self.count, self.rel, self.size)

    def paste(self, img: np.ndarray, row: int, col: int) -> None:
        """Blends the stamp centred at pixel (row, col) into the contiguous ``img`` (size, size, 3)."""
        s = self.size
        r0, c0 = row - self.half, col - self.half
        flat = img.reshape(-1)  # a view: img is contiguous
        if r0 >= 0 and c0 >= 0 and r0 + self.n <= s and c0 + self.n <= s:  # fully inside: the common case
            idx = self.rel + (r0 * s + c0) * 3
            flat[idx] = (flat[idx] * self.keep + self.vals) >> _SHIFT
            return
        if r0 + self.n <= 0 or c0 + self.n <= 0 or r0 >= s or c0 >= s:
            return
        rows, cols = self.rows + r0, self.cols + c0
        ok = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
        idx = ((rows * s + cols) * 3 + self.chans)[ok]
        flat[idx] = (flat[idx] * self.keep[ok] + self.vals[ok]) >> _SHIFT


_SPARSE: dict = {}  # (prims, yaw bin, size, scale, phase) -> unlit SparseStamp
_LIT: dict = {}  # (prims, yaw bin, size, scale, phase, gain) -> lit SparseStamp, shared by all renderers


def lit_stamp(prims: tuple, b: int, size: int, scale: float, phase: tuple[int, int], gain: tuple | None) -> SparseStamp:
    """The stamp of ``prims`` at yaw bin ``b`` and sub-pixel ``phase`` under ``gain`` (3 ints x128,
    or None). Cached across episodes (the lab's light never changes); the unlit stamp is cached too,
    as the same gripper pose shows up in every light cell and every sim episode."""
    key = (prims, b, size, scale, phase, gain)
    hit = _LIT.get(key)
    if hit is not None:
        return hit
    if len(_LIT) > 100_000:  # sim lights are random per episode: drop stale ones now and then
        _LIT.clear()
    base = _SPARSE.get(key[:5])
    if base is None:
        if len(_SPARSE) > 100_000:
            _SPARSE.clear()
        stamp = build_stamp(prims, b * (2 * math.pi / YAW_BINS), size, scale, phase)
        base = _SPARSE[key[:5]] = SparseStamp.from_stamp(stamp, size)
    out = _LIT[key] = base if gain is None else base.lit(gain)
    return out


def paste(img: np.ndarray, stamp, row: int, col: int) -> None:
    """Blends ``stamp`` (build_stamp's) centred at pixel (row, col) into ``img``, clipped at the borders."""
    colour_sum, count, half = stamp
    h, w = img.shape[0], img.shape[1]
    n = colour_sum.shape[0]
    r0, c0 = row - half, col - half
    r1, c1 = r0 + n, c0 + n
    if r1 <= 0 or c1 <= 0 or r0 >= h or c0 >= w:
        return
    sr0, sc0 = max(0, -r0), max(0, -c0)
    sr1, sc1 = n - max(0, r1 - h), n - max(0, c1 - w)
    dst = img[max(r0, 0):min(r1, h), max(c0, 0):min(c1, w)]
    keep = _SS2 - count[sr0:sr1, sc0:sc1]
    dst[:] = ((dst * keep + colour_sum[sr0:sr1, sc0:sc1]) >> _SHIFT).astype(np.uint8)


# --- object looks -----------------------------------------------------------------------------

def object_prims(kind: str, color: int, size: tuple[float, float] = (0.0, 0.0)) -> tuple:
    """The primitives that draw one object of a kind (see a1lib.sim.world.KIND_NAMES).

    Sized for a 64 px camera: every object a task needs is about 4 px or more across in its
    smallest dimension as drawn (graspable things are drawn at ``OBJECT_DRAW_SCALE``), and its
    centre (the grasp point) lies on a drawn part of it."""
    c = rgb(color)
    w, h = size
    dark, light = shade(c, 0.55), shade(c, 1.25)
    if kind == "bolt":
        return (("rect", 0.012, 0.0, 0.05, 0.04, c), ("rect", -0.024, 0.0, 0.02, 0.056, dark))
    if kind == "nut":
        return (("circle", 0.0, 0.0, 0.027, c), ("circle", 0.0, 0.0, 0.01, dark))
    if kind == "gear":
        return (("gear", 0.0, 0.0, 0.024, 8, c), ("circle", 0.0, 0.0, 0.008, dark))
    if kind in ("bin", "dustpan", "plate_region"):
        return (("rect", 0.0, 0.0, w, h, dark), ("rect", 0.0, 0.0, w - 0.03, h - 0.03, light))
    if kind == "bag":
        return (("rect", 0.0, 0.0, w, h, c), ("rect", 0.0, -h * 0.3, w - 0.02, 0.012, shade(c, 0.8)))
    if kind == "zipper":
        return (("rect", 0.0, 0.0, 0.048, 0.05, (40, 40, 45)), ("rect", 0.0, 0.013, 0.026, 0.016, (200, 200, 205)))
    if kind == "bottle":
        return (("circle", 0.0, 0.0, 0.06, c), ("ring", 0.0, 0.0, 0.05, 0.06, dark))
    if kind == "cap":  # the white mark shows its rotation
        return (("circle", 0.0, 0.0, 0.034, c), ("ring", 0.0, 0.0, 0.027, 0.034, dark),
                ("rect", 0.015, 0.0, 0.03, 0.012, (250, 250, 250)))
    if kind == "flower":  # the head is the grasp point
        return (("rect", -0.03, 0.0, 0.05, 0.016, (40, 130, 40)),
                ("ellipse", -0.034, 0.014, 0.014, 0.008, (60, 160, 60)),
                ("circle", 0.016, 0.0, 0.028, c), ("circle", 0.016, 0.0, 0.01, (250, 220, 60)))
    if kind == "vase":
        return (("circle", 0.0, 0.0, 0.05, c), ("circle", 0.0, 0.0, 0.032, (25, 25, 30)))
    if kind == "sponge":
        return (("rect", 0.0, 0.0, 0.07, 0.05, c), ("rect", 0.0, 0.0, 0.07, 0.016, (40, 140, 60)))
    if kind == "can":
        return (("circle", 0.0, 0.0, 0.027, (190, 195, 200)), ("ring", 0.0, 0.0, 0.018, 0.027, c))
    if kind == "plastic_bottle":
        return (("rect", 0.0, 0.0, 0.066, 0.048, (170, 215, 235)), ("rect", 0.042, 0.0, 0.016, 0.026, c))
    if kind == "paper":
        return (("rect", 0.0, 0.0, 0.056, 0.048, (245, 245, 240)), ("rect", 0.0, -0.01, 0.04, 0.006, (150, 150, 160)),
                ("rect", 0.0, 0.008, 0.04, 0.006, (150, 150, 160)))
    if kind == "banana_peel":
        return (("ellipse", 0.0, 0.0, 0.042, 0.025, (235, 205, 60)), ("circle", 0.036, 0.0, 0.008, (100, 70, 30)),
                ("circle", -0.036, 0.0, 0.008, (100, 70, 30)))
    if kind == "chip_bag":
        return (("rect", 0.0, 0.0, 0.06, 0.048, c), ("circle", 0.0, 0.0, 0.013, (250, 230, 60)))
    if kind == "tissue":
        return (("circle", 0.0, 0.0, 0.027, (250, 250, 250)), ("circle", 0.009, 0.007, 0.011, (215, 215, 225)))
    if kind == "brush":  # bristle bar across the pushing direction (+x), handle behind; drawn unscaled
        return (("rect", -0.045, 0.0, 0.05, 0.026, (110, 70, 35)), ("rect", 0.0, 0.0, 0.034, 0.104, c),
                ("rect", 0.019, 0.0, 0.01, 0.104, (40, 30, 20)))
    if kind == "debris":
        return (("circle", 0.0, 0.0, 0.024, c),)
    if kind == "markpen":  # body, dark tip at +x
        return (("rect", 0.0, 0.0, 0.13, 0.044, c), ("rect", 0.073, 0.0, 0.016, 0.028, (20, 20, 20)),
                ("rect", -0.058, 0.0, 0.014, 0.048, shade(c, 0.6)))
    if kind == "pen_holder":  # slot, the red dot marks where the tip goes
        return (("rect", 0.0, 0.0, 0.2, 0.07, shade(c, 0.6)), ("rect", 0.0, 0.0, 0.176, 0.054, (45, 45, 50)),
                ("circle", 0.112, 0.0, 0.016, (230, 40, 40)))
    if kind == "parcel":  # cardboard box, coloured label = sorting class
        return (("rect", 0.0, 0.0, 0.06, 0.06, (190, 145, 95)), ("rect", 0.0, 0.0, 0.034, 0.034, c),
                ("rect", 0.0, 0.0, 0.06, 0.006, (150, 110, 70)))
    if kind == "tomato":
        return (("circle", 0.0, 0.0, 0.027, c), ("circle", 0.0, 0.0, 0.008, (40, 140, 40)))
    if kind == "lemon":
        return (("ellipse", 0.0, 0.0, 0.032, 0.024, c), ("circle", 0.03, 0.0, 0.006, (150, 170, 40)))
    if kind == "broccoli":
        return (("rect", -0.022, 0.0, 0.03, 0.014, (150, 200, 110)), ("circle", 0.006, -0.011, 0.015, c),
                ("circle", 0.006, 0.011, 0.015, c), ("circle", 0.018, 0.0, 0.015, shade(c, 0.85)))
    if kind == "carrot":
        return (("taper", 0.006, 0.0, 0.074, 0.052, c), ("rect", -0.038, 0.0, 0.014, 0.02, (50, 150, 50)))
    if kind == "plate":
        return (("circle", 0.0, 0.0, 0.075, c), ("ring", 0.0, 0.0, 0.055, 0.065, shade(c, 0.85)))
    if kind == "turntable":
        r = w
        return (("circle", 0.0, 0.0, r, (95, 95, 105)), ("ring", 0.0, 0.0, r - 0.012, r, (60, 60, 70)),
                ("rect", 0.0, 0.0, 2 * r - 0.03, 0.008, (130, 130, 140)),
                ("rect", 0.0, 0.0, 0.008, 2 * r - 0.03, (130, 130, 140)),
                ("circle", r - 0.03, 0.0, 0.01, (230, 230, 230)), ("circle", 0.0, 0.0, 0.015, (60, 60, 70)))
    if kind == "distractor":
        return (("rect", 0.0, 0.0, w, h, c),) if size[1] > 0 else (("circle", 0.0, 0.0, w, c),)
    raise ValueError(f"no look for object kind {kind!r}")


OBJECT_DRAW_SCALE = 1.3
LIGHT_CELLS = 4
GRIPPER_DRAW_SCALE = 1.2
GRIP_LEVELS = 5
LIFT_LEVELS = 4


@functools.lru_cache(maxsize=None)
def gripper_prims(grip_level: int, hand: bool) -> tuple:
    """The robot gripper (palm + two fingers pointing along +x) or a human hand."""
    g = grip_level / (GRIP_LEVELS - 1)
    if not hand:  # fingers ~1 px thick as drawn; the orange mark is the grasp point
        spread = 0.036 - 0.022 * g
        return (("rect", -0.018, 0.0, 0.02, 0.096, (55, 55, 65)),
                ("rect", 0.012, spread, 0.044, 0.016, (165, 165, 175)),
                ("rect", 0.012, -spread, 0.044, 0.016, (165, 165, 175)),
                ("rect", -0.036, 0.0, 0.022, 0.03, (55, 55, 65)),
                ("circle", 0.0, 0.0, 0.01, (255, 140, 0)))
    skin, dark = (225, 172, 140), (190, 135, 105)
    fl = 0.042 - 0.024 * g  # fingers curl (look shorter) when the hand closes
    sp = 1.0 - 0.35 * g
    prims = [("ellipse", -0.028, 0.0, 0.03, 0.03, skin)]
    for k, fy in enumerate((-0.021, -0.007, 0.007, 0.021)):
        prims.append(("rect", -0.005 + fl / 2, fy * sp, fl, 0.011, skin if k % 2 else dark))
    prims.append(("rect", -0.02, -0.036 * sp - 0.004, 0.03, 0.012, dark))  # thumb
    prims.append(("rect", -0.06, 0.0, 0.03, 0.04, (70, 90, 150)))  # sleeve
    return tuple(prims)


def gripper_levels(grip: float, lift: float) -> tuple[int, int]:
    return int(grip * (GRIP_LEVELS - 1) + 0.5), int(lift * (LIFT_LEVELS - 1) + 0.5)


@functools.lru_cache(maxsize=None)
def shadow_prims(grip_level: int, hand: bool) -> tuple:
    """The gripper's silhouette in a dark grey: its shadow on the table."""
    return tuple(p[:-1] + ((50, 50, 55),) for p in gripper_prims(grip_level, hand))


@functools.lru_cache(maxsize=8)
def _light_cells(size: int) -> tuple[int, list]:
    """Cell width and the (S, S) light-cell code of each pixel, as nested lists (fast to index)."""
    cell = max(1, -(-size // LIGHT_CELLS))
    code = (np.arange(size) // cell)[:, None] * LIGHT_CELLS + (np.arange(size) // cell)[None, :]
    return cell, code.tolist()


# --- the per-episode scene renderer -------------------------------------------------------------

class SceneRenderer:
    """Draws one episode: a background made at reset, then per step the moving things.

    The task tells which object slots are fixed (drawn into the background once) and which move
    (``task.moving_slots``), and may draw extra layers (``task.draw_background`` /
    ``task.draw_overlay``: conveyor stripes, a turntable, a stain, a seam).

    Lighting (the domain's per-pixel gain) is applied to the background once, and to a pasted
    stamp with the gain at its centre pixel (lit stamps are cached per episode), so a step does
    no full-frame arithmetic except the lab's blur and noise. Lit stamps are shared across
    renderers (``lit_stamp``), so a new episode in the same light starts with warm caches.
    """

    def __init__(self, size: int, look, world, task, wrist_camera: bool = False):
        self._post = post_process
        self.size = size
        self.look = look
        self.jx, self.jy = look.jitter
        # moving things are lit with the gain at the centre of the LIGHT_CELLS x LIGHT_CELLS cell
        # they are in (lighting varies slowly), so lit stamps can be cached per cell
        if look.gain is not None:
            self.gain = look.gain.astype(np.int32)  # (S, S, 3), x128
            cell, self.gain_code = _light_cells(size)
            centres = np.minimum(np.arange(0, size, cell) + cell // 2, size - 1)
            self.code_gain = {}  # light cell -> gain at its centre, (3,) ints: key of the shared lit stamps
            for i, r in enumerate(centres):
                for j, c in enumerate(centres):
                    self.code_gain[i * LIGHT_CELLS + j] = tuple(int(v) for v in self.gain[r, c])
        else:
            self.gain = None
        self._lit: dict = {}  # (id(prims), yaw bin, scale, light cell) -> SparseStamp, this episode's
        self._alive: list = []
        self.prims = [None] * world.n
        for i in range(world.n):
            custom = task.prims(i, world)  # None: default look; (): the task draws it itself
            self.prims[i] = custom if custom is not None else object_prims(
                KIND_NAMES[world.kind[i]], int(world.color[i]), tuple(float(v) for v in world.size[i]))
        # small movable things are drawn a bit larger than their physical size so that they stay
        # legible at 64x64 (the brush is not: its bar length is part of the pushing physics)
        self.draw_scale = [OBJECT_DRAW_SCALE if (world.graspable[i] or KIND_NAMES[world.kind[i]] == "debris")
                           and KIND_NAMES[world.kind[i]] != "brush" else 1.0 for i in range(world.n)]
        bg = look.table.copy()
        for prims, x, y, yaw in look.distractors:
            self._paste_unlit(bg, prims, x, y, yaw)
        task.draw_background(self, bg, world)
        for i in task.static_slots:
            self._paste_unlit(bg, self.prims[i], world.pose[i, 0], world.pose[i, 1], world.pose[i, 2])
        if self.gain is not None:
            bg = np.minimum((bg.astype(np.int32) * self.gain) >> 7, 255).astype(np.uint8)
        self.bg = bg
        self.buf = (np.empty((size, size, 3), dtype=np.int16), np.empty((size, size, 3), dtype=np.int16)) \
            if look.blur or look.noise_bank is not None else None
        self.wrist_camera = wrist_camera
        self.hand = look.hand

    def px(self, x: float, y: float) -> tuple[int, int]:
        """Table point -> (row, col) pixel (camera jitter included)."""
        return int(math.floor(y * self.size + self.jy)), int(math.floor(x * self.size + self.jx))

    def _paste_unlit(self, img, prims, x, y, yaw, scale: float = 1.0) -> None:
        row, py = pixel_phase(y * self.size + self.jy)
        col, px = pixel_phase(x * self.size + self.jx)
        paste(img, build_stamp(prims, yaw, self.size, scale, (px, py)), row, col)

    def paste(self, img, prims, x, y, yaw, scale: float = 1.0) -> None:
        """Blends a lit stamp of ``prims`` at table pose (x, y, yaw), to a quarter pixel."""
        u, v = x * self.size + self.jx, y * self.size + self.jy
        col, row = math.floor(u), math.floor(v)  # = pixel_phase, inlined: hot path
        phase = (min(SUBPIXEL - 1, int((u - col) * SUBPIXEL)), min(SUBPIXEL - 1, int((v - row) * SUBPIXEL)))
        b = int(math.floor(yaw * (YAW_BINS / (2 * math.pi)) + 0.5)) % YAW_BINS
        if self.gain is None:
            code = 0
        else:
            s1 = self.size - 1
            r, c = (row if row < s1 else s1), (col if col < s1 else s1)
            code = self.gain_code[r if r > 0 else 0][c if c > 0 else 0]
        key = (id(prims), b, scale, phase, code)  # id(): hashing the prims tuple each step is slow
        st = self._lit.get(key)
        if st is None:
            gain = None if self.gain is None else self.code_gain[code]
            st = self._lit[key] = lit_stamp(prims, b, self.size, scale, phase, gain)
            self._alive.append(prims)  # keeps id(prims) unique while the key exists
        st.paste(img, row, col)

    def render(self, w, task, noise_index: int = 0):
        """Returns ``(image (S, S, 3) uint8, wrist (S, S, 3) uint8 or None)``."""
        img = self.bg.copy()
        task.draw_overlay(self, img, w)
        pose = w.pose
        held = w.held
        for i in task.moving_slots:
            if i != held and w.on_table[i]:
                self.paste(img, self.prims[i], pose[i, 0], pose[i, 1], pose[i, 2], self.draw_scale[i] * task.scale(i))
        gl, ll = gripper_levels(w.grip, w.lift)
        scale = GRIPPER_DRAW_SCALE * (1.0 + 0.4 * ll / (LIFT_LEVELS - 1))  # closer to the camera when lifted
        off = (0.5 + 0.7 * ll) / 64  # the shadow falls further away when lifted
        self.paste(img, shadow_prims(gl, self.hand), w.x + off, w.y + off, w.yaw, scale)
        self.paste(img, gripper_prims(gl, self.hand), w.x, w.y, w.yaw, scale)
        if held >= 0:  # drawn over the fingers and the grasp mark: what is held (its colour) stays visible
            self.paste(img, self.prims[held], pose[held, 0], pose[held, 1], pose[held, 2],
                       self.draw_scale[held] * task.scale(held))
        if self.buf is not None:
            self._post(img, self.look, self.buf, noise_index)
        wrist = self.wrist(img, *self.px(w.x, w.y)) if self.wrist_camera else None
        return img, wrist

    def wrist(self, img, row: int, col: int):
        """Second camera: the half-size window around the gripper, upsampled to full size."""
        s = self.size
        win = max(2, s // 2)
        r0 = min(max(row - win // 2, 0), s - win)
        c0 = min(max(col - win // 2, 0), s - win)
        idx = (np.arange(s) * win) // s
        return img[(r0 + idx)[:, None], (c0 + idx)[None, :]]
