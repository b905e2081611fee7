"""The ten tasks: scene setup, task rules, success, instructions, step limits.

Each task is an honest top-down abstraction of the real one:

* ``SortParts``     3 parts (bolt / nut / gear) of two colours; put each in the bin of its colour.
* ``ZipBag``        grasp the zipper (low) and drag it along the seam to the end. The zipper only
                    slides along the seam, at most ``ZIP_SPEED`` per step; pulling too far from it
                    or lifting makes the fingers slip off.
* ``UnscrewCap``    grasp the cap (low) and turn it counter-clockwise on screen (negative yaw) by
                    ``UNSCREW_TURNS`` full turns *while holding it*, then lift it off. Before that,
                    lifting or moving away slips off the cap. The cap's white mark shows its
                    rotation; it rises (drawn larger) as it loosens.
* ``PlaceFlower``   put the flower into the vase (released within ``VASE_TOL`` of its opening).
* ``WipeStain``     hold the sponge low over the stain: each step under the sponge removes
                    ``WIPE_RATE`` of the dirt there (it fades); done when < 3% of the dirt is left.
* ``SortRubbish``   recyclables (can, plastic bottle, paper) in the blue recycling bin, the rest
                    (banana peel, chip bag, tissue) in the grey bin.
* ``SweepTrash``    hold the brush low and push the 3 debris bits into the dustpan (the bristle
                    bar pushes what is in front of it along the brush's +x).
* ``PlaceMarkpen``  put the pen into the holder slot with its tip at the red-dot end
                    (position within ``PEN_POS_TOL``, yaw within ``PEN_YAW_TOL`` rad).
* ``ExpressSorting``  (dynamic) 2 parcels ride a conveyor (+x, speed per episode); grab each and
                    put it in the bin matching its label colour. Parcels that reach the end fall off.
* ``IngredientPicking`` (dynamic) 3 ingredients ride a turntable (angular speed per episode);
                    pick the named one and put it on the plate.

``TASKS`` maps the name to a ``TaskSpec``; ``spec.factory()`` makes a fresh ``Task`` per episode.
Tasks keep their own episode state (progress, dirt, ...) which the scripted experts read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from a1lib.sim import portable_trig as trig
from a1lib.sim.render import PALETTE, object_prims
from a1lib.sim.world import COLOR, COLOR_NAMES, KIND, KIND_NAMES, World, wrap_angle

UNSCREW_TURNS = 2.0
ZIP_SPEED = 0.025  # table units per step
WIPE_RATE = 0.5  # dirt removed per step under the sponge
WIPE_RADIUS = 0.04
VASE_TOL = 0.03  # 1.9 px at 64 px; the expert releases within 0.025 (1.6 px)
PEN_POS_TOL = 0.035  # 2.2 px; the expert releases within 0.025
PEN_YAW_TOL = 0.35  # the tip moves 2.3 px at 64 px; the expert releases within 0.25 (1.6 px)
BELT_SPEED_RANGE = (0.08, 0.2)  # table units per second
TURNTABLE_SPEED_RANGE = (0.4, 1.0)  # rad per second
# the dynamic tasks' speed: the env keyword that sets it (per episode: drawn from the range above)
SPEED_KEYS = {"ExpressSorting": "belt_speed", "IngredientPicking": "turntable_speed"}


@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str
    dynamic: bool
    step_limit: int
    templates: tuple[str, ...]
    factory: Callable[[], "Task"]


def _sample_points(rng, n, lo, hi, min_dist, avoid=(), tries=500):
    """n points uniform in the box [lo, hi] (2-vectors), pairwise >= min_dist, clear of ``avoid``
    ((x, y, r) discs)."""
    pts = []
    for _ in range(tries):
        p = rng.uniform(lo, hi)
        if all(math.dist(p, q) >= min_dist for q in pts) and all(math.dist(p, a[:2]) >= a[2] for a in avoid):
            pts.append(p)
            if len(pts) == n:
                return [(float(p[0]), float(p[1])) for p in pts]
    raise RuntimeError("could not place the objects; the layout constraints are too tight")


def inside(w: World, i: int, j: int, margin: float = 0.0) -> bool:
    """Is object i's centre inside the (axis-aligned) region object j?"""
    return (abs(w.pose[i, 0] - w.pose[j, 0]) <= w.size[j, 0] / 2 - margin
            and abs(w.pose[i, 1] - w.pose[j, 1]) <= w.size[j, 1] / 2 - margin)


class Task:
    name = ""

    def __init__(self) -> None:
        self.static_slots: list[int] = []
        self.moving_slots: list[int] = []

    # hooks -----------------------------------------------------------------------------------
    def setup(self, w: World, rng: np.random.Generator, motion: dict) -> dict:
        """Builds the scene in ``w``; returns the fields for the instruction templates."""
        raise NotImplementedError

    def before_step(self, w: World) -> None:
        pass

    def update(self, w: World) -> None:
        """Task rules, after the gripper moved and the held object followed."""

    def success(self, w: World) -> bool:
        raise NotImplementedError

    def completion(self, w: World) -> float:
        """How far the task has got, in [0, 1] (privileged: ``scene.progress``); 1 on success."""
        return 1.0 if self.success(w) else 0.0

    def prims(self, i: int, w: World):
        return None  # default look from render.object_prims

    def scale(self, i: int) -> float:
        return 1.0

    def draw_background(self, r, img, w: World) -> None:
        pass

    def draw_overlay(self, r, img, w: World) -> None:
        pass

    # helpers -----------------------------------------------------------------------------------
    def _gripper_start(self, w: World, rng, avoid=()) -> None:
        for _ in range(200):
            x, y = rng.uniform(0.35, 0.65, size=2)
            if all(math.dist((x, y), a[:2]) >= a[2] for a in avoid):
                break
        w.x, w.y = float(x), float(y)
        w.yaw = float(rng.uniform(-0.5, 0.5))
        w.lift, w.grip = 1.0, 0.0

    def _split(self, w: World) -> None:
        self.moving_slots = [i for i in range(w.n) if w.graspable[i] or KIND_NAMES[w.kind[i]] == "debris"]
        self.static_slots = [i for i in range(w.n) if i not in self.moving_slots and self.prims(i, w) != ()]


# --- sorting into bins ----------------------------------------------------------------------------

class _BinSorting(Task):
    """Shared by SortParts, SortRubbish and ExpressSorting: items, bins, item -> bin map."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[int] = []
        self.goal_bin: dict[int, int] = {}

    def slot_in_bin(self, w: World, i: int) -> tuple[float, float]:
        """Where the expert drops item i: spread along the bin so items do not pile up."""
        b = self.goal_bin[i]
        k = self.items.index(i)
        return float(w.pose[b, 0] + (k - (len(self.items) - 1) / 2) * 0.05), float(w.pose[b, 1])

    def sorted_ok(self, w: World, i: int) -> bool:
        return w.held != i and w.on_table[i] and inside(w, i, self.goal_bin[i], 0.01)

    def success(self, w: World) -> bool:
        return all(self.sorted_ok(w, i) for i in self.items)

    def completion(self, w: World) -> float:
        return sum(self.sorted_ok(w, i) for i in self.items) / len(self.items)


class SortParts(_BinSorting):
    name = "SortParts"

    def setup(self, w, rng, motion):
        colors = [str(c) for c in rng.choice(["red", "green", "blue", "yellow", "purple"], size=2, replace=False)]
        xs = [0.26, 0.74] if rng.random() < 0.5 else [0.74, 0.26]
        bins = [w.add("bin", c, x, 0.8, 0.0, size=(0.3, 0.22)) for c, x in zip(colors, xs)]
        item_colors = [colors[0], colors[1], colors[int(rng.integers(2))]]
        rng.shuffle(item_colors)
        pts = _sample_points(rng, 3, (0.1, 0.12), (0.9, 0.58), 0.12)
        for (x, y), c in zip(pts, item_colors):
            kind = ["bolt", "nut", "gear"][int(rng.integers(3))]
            i = w.add(kind, c, x, y, float(rng.uniform(-math.pi, math.pi)), graspable=True)
            self.items.append(i)
            self.goal_bin[i] = bins[colors.index(c)]
        self._gripper_start(w, rng)
        self._split(w)
        return {"c1": colors[0], "c2": colors[1]}


class SortRubbish(_BinSorting):
    name = "SortRubbish"
    RECYCLABLE = ("can", "plastic_bottle", "paper")
    GENERAL = ("banana_peel", "chip_bag", "tissue")
    LOOK = {"can": ["red", "green"], "plastic_bottle": ["cyan"], "paper": ["white"], "banana_peel": ["yellow"],
            "chip_bag": ["orange", "purple", "pink"], "tissue": ["white"]}

    def setup(self, w, rng, motion):
        xs = [0.26, 0.74] if rng.random() < 0.5 else [0.74, 0.26]
        recycle = w.add("bin", "blue", xs[0], 0.8, 0.0, size=(0.3, 0.22))
        general = w.add("bin", "grey", xs[1], 0.8, 0.0, size=(0.3, 0.22))
        kinds = [self.RECYCLABLE[int(rng.integers(3))], self.GENERAL[int(rng.integers(3))]]
        allk = self.RECYCLABLE + self.GENERAL
        kinds.append(allk[int(rng.integers(len(allk)))])
        rng.shuffle(kinds)
        pts = _sample_points(rng, 3, (0.1, 0.12), (0.9, 0.58), 0.12)
        for (x, y), k in zip(pts, kinds):
            c = self.LOOK[k][int(rng.integers(len(self.LOOK[k])))]
            i = w.add(k, c, x, y, float(rng.uniform(-math.pi, math.pi)), graspable=True)
            self.items.append(i)
            self.goal_bin[i] = recycle if k in self.RECYCLABLE else general
        self._gripper_start(w, rng)
        self._split(w)
        return {"side": "left" if xs[0] < 0.5 else "right"}


class ExpressSorting(_BinSorting):
    name = "ExpressSorting"
    BAND = (0.1, 0.3)

    def setup(self, w, rng, motion):
        drawn = float(rng.uniform(*BELT_SPEED_RANGE))  # drawn even when given: a speed override changes nothing else
        speed = drawn if motion.get("belt_speed") is None else float(motion["belt_speed"])
        w.belt_band = self.BAND
        w.belt_speed = speed / 10.0
        self.belt = w.add("conveyor", "black", 0.5, 0.2, 0.0, size=(1.0, 0.2))
        colors = ["red", "green", "blue"]
        order = [colors[k] for k in rng.permutation(3)]
        bins = {c: w.add("bin", c, x, 0.8, 0.0, size=(0.27, 0.22)) for c, x in zip(order, (0.17, 0.5, 0.83))}
        labels = [colors[k] for k in rng.choice(3, size=2, replace=False)]
        x1 = float(rng.uniform(0.12, 0.28))
        xs = [x1, x1 - float(rng.uniform(0.3, 0.4))]
        for x, c in zip(xs, labels):
            i = w.add("parcel", c, x, 0.2 + float(rng.uniform(-0.03, 0.03)), float(rng.uniform(-0.2, 0.2)),
                      graspable=True)
            self.items.append(i)
            self.goal_bin[i] = bins[c]
        self._gripper_start(w, rng)
        w.y = float(rng.uniform(0.45, 0.6))
        self._split(w)
        return {"c1": labels[0], "c2": labels[1]}

    def slot_in_bin(self, w, i):
        b = self.goal_bin[i]
        return float(w.pose[b, 0]), float(w.pose[b, 1])

    def prims(self, i, w):
        return () if i == getattr(self, "belt", -1) else None

    def draw_background(self, r, img, w):
        y0, y1 = self.BAND
        r0, _ = r.px(0.0, y0)
        r1, _ = r.px(0.0, y1)
        r0, r1 = max(r0, 0), min(r1, r.size)
        img[r0:r1] = (70, 70, 78)
        img[r0:min(r0 + 1, r1)] = (40, 40, 45)
        img[max(r1 - 1, r0):r1] = (40, 40, 45)
        self._rows = (r0 + 1, r1 - 1)
        self._cols = np.arange(r.size)
        self._period = max(4, r.size // 8)

    def draw_overlay(self, r, img, w):
        # moving stripes show the belt's speed and direction
        off = w.belt_offset * r.size + r.jx
        stripe = ((self._cols - off) % self._period) < max(1, self._period // 4)
        img[self._rows[0]:self._rows[1], stripe] = (95, 95, 105)


# --- the other static tasks -----------------------------------------------------------------------

class ZipBag(Task):
    name = "ZipBag"

    def setup(self, w, rng, motion):
        cx, cy = rng.uniform(0.38, 0.62, size=2)
        yaw = float(rng.uniform(-math.pi, math.pi))
        color = ["blue", "green", "purple", "pink", "cyan"][int(rng.integers(5))]
        self.bag = w.add("bag", color, float(cx), float(cy), yaw, size=(0.38, 0.24))
        u = np.array([trig.cos(yaw), trig.sin(yaw)])
        n = np.array([-trig.sin(yaw), trig.cos(yaw)])
        mid = np.array([cx, cy]) - n * 0.07  # the seam runs along the bag, near its top edge
        self.length = 0.3
        self.a = mid - u * self.length / 2
        self.u = u
        self.progress = 0.0
        self.zipper = w.add("zipper", "black", float(self.a[0]), float(self.a[1]), yaw, graspable=True)
        self._gripper_start(w, rng, avoid=[(self.a[0], self.a[1], 0.12)])
        self._split(w)
        return {"color": color}

    def point(self, t: float) -> np.ndarray:
        return self.a + self.u * self.length * t

    def update(self, w):
        if w.held != self.zipper:
            return
        g = np.array([w.x, w.y])
        t_want = min(1.0, max(0.0, float((g - self.a) @ self.u) / self.length))
        step = ZIP_SPEED / self.length
        self.progress += min(step, max(-step, t_want - self.progress))
        p = self.point(self.progress)
        w.pose[self.zipper] = (p[0], p[1], w.pose[self.bag, 2])
        if w.lift > 0.35 or math.dist((w.x, w.y), p) > 0.045:
            w.release()  # the fingers slip off the zipper

    def success(self, w):
        return self.progress >= 0.98

    def completion(self, w):
        return min(1.0, self.progress / 0.98)

    def draw_background(self, r, img, w):
        n = 2 * int(self.length * r.size) + 2
        ts = np.linspace(0.0, 1.0, n)
        pts = self.a[None, :] + self.u[None, :] * self.length * ts[:, None]
        rows = np.floor(pts[:, 1] * r.size + r.jy).astype(np.int64)
        cols = np.floor(pts[:, 0] * r.size + r.jx).astype(np.int64)
        ok = (rows >= 0) & (rows < r.size) & (cols >= 0) & (cols < r.size)
        self._seam = (ts[ok], rows[ok], cols[ok])

    def draw_overlay(self, r, img, w):
        ts, rows, cols = self._seam
        closed = ts <= self.progress
        img[rows[closed], cols[closed]] = (45, 45, 50)  # zipped: teeth meshed
        img[rows[~closed], cols[~closed]] = (235, 235, 225)  # open: a pale gap


class UnscrewCap(Task):
    name = "UnscrewCap"

    def setup(self, w, rng, motion):
        bx, by = (float(v) for v in rng.uniform(0.3, 0.7, size=2))
        bottle_color = ["green", "blue", "cyan", "purple"][int(rng.integers(4))]
        cap_color = ["red", "white", "yellow", "orange"][int(rng.integers(4))]
        self.bottle = w.add("bottle", bottle_color, bx, by, 0.0)
        self.cap = w.add("cap", cap_color, bx, by, float(rng.uniform(-math.pi, math.pi)), graspable=True)
        self.turned = 0.0  # radians turned in the unscrewing direction while held
        self.last_cap_yaw = float(w.pose[self.cap, 2])
        self._gripper_start(w, rng, avoid=[(bx, by, 0.15)])
        self._split(w)
        return {"color": cap_color, "bottle": bottle_color}

    @property
    def loose(self) -> bool:
        return self.turned >= UNSCREW_TURNS * 2 * math.pi

    def update(self, w):
        cap = self.cap
        if w.held == cap and not self.loose:
            self.turned = max(0.0, self.turned - (w.pose[cap, 2] - self.last_cap_yaw))  # ccw on screen = -yaw
            w.pose[cap, 0], w.pose[cap, 1] = w.pose[self.bottle, 0], w.pose[self.bottle, 1]
            if w.lift > 0.3 or math.dist((w.x, w.y), w.pose[self.bottle, :2]) > 0.035:
                w.release()  # still screwed on: the fingers slip off
        self.last_cap_yaw = float(w.pose[cap, 2])

    def success(self, w):
        return self.loose and w.held == self.cap and w.lift >= 0.9

    def completion(self, w):
        return 1.0 if self.success(w) else 0.9 * min(1.0, self.turned / (UNSCREW_TURNS * 2 * math.pi))

    def scale(self, i):
        if i != self.cap:
            return 1.0
        if self.loose:  # off the thread: drawn clearly larger (it rises towards the camera)
            return 1.45
        return 1.0 + 0.08 * min(3, int(4 * self.turned / (UNSCREW_TURNS * 2 * math.pi)))  # rises as it loosens


class PlaceFlower(Task):
    name = "PlaceFlower"

    def setup(self, w, rng, motion):
        vx, vy = (float(v) for v in rng.uniform((0.2, 0.25), (0.8, 0.75)))
        fl = _sample_points(rng, 1, (0.12, 0.12), (0.88, 0.88), 0.0, avoid=[(vx, vy, 0.28)])[0]
        color = ["red", "yellow", "pink", "purple", "orange", "white"][int(rng.integers(6))]
        vase_color = ["blue", "grey", "cyan", "white"][int(rng.integers(4))]
        self.vase = w.add("vase", vase_color, vx, vy)
        self.flower = w.add("flower", color, fl[0], fl[1], float(rng.uniform(-math.pi, math.pi)), graspable=True)
        self._gripper_start(w, rng)
        self._split(w)
        return {"color": color, "vase": vase_color}

    def update(self, w):
        if w.just_released == self.flower and math.dist(w.pose[self.flower, :2], w.pose[self.vase, :2]) < VASE_TOL:
            w.pose[self.flower, :2] = w.pose[self.vase, :2]  # it drops into the opening

    def success(self, w):
        return w.held != self.flower and math.dist(w.pose[self.flower, :2], w.pose[self.vase, :2]) < VASE_TOL

    def completion(self, w):
        return 1.0 if self.success(w) else (0.5 if w.held == self.flower else 0.0)


class WipeStain(Task):
    name = "WipeStain"
    GRID = 12

    def setup(self, w, rng, motion):
        cx, cy = (float(v) for v in rng.uniform(0.3, 0.7, size=2))
        self.radius = float(rng.uniform(0.06, 0.09))
        color = ["brown", "red", "purple"][int(rng.integers(3))]
        self.stain = w.add("stain", color, cx, cy, 0.0, size=(2 * self.radius, 2 * self.radius))
        sp = _sample_points(rng, 1, (0.12, 0.12), (0.88, 0.88), 0.0, avoid=[(cx, cy, 0.25)])[0]
        self.sponge = w.add("sponge", "yellow", sp[0], sp[1], float(rng.uniform(-math.pi, math.pi)), graspable=True)
        g = self.GRID
        cell = 2 * self.radius / g
        c = (np.arange(g) + 0.5) * cell - self.radius
        self.cell_x = cx + c[None, :] + np.zeros((g, 1))  # (G, G) cell centres
        self.cell_y = cy + c[:, None] + np.zeros((1, g))
        ax, ay = rng.uniform(0.75, 1.05, size=2)
        blob = (c[None, :] / (ax * self.radius)) ** 2 + (c[:, None] / (ay * self.radius)) ** 2 <= 1.0
        self.dirt = blob.astype(np.float64)  # (G, G) in [0, 1]
        self.initial = float(self.dirt.sum())
        self._gripper_start(w, rng)
        self._split(w)
        return {"color": color}

    def prims(self, i, w):
        return () if i == getattr(self, "stain", -1) else None

    def update(self, w):
        if w.held == self.sponge and w.lift <= 0.3:
            near = (self.cell_x - w.x) ** 2 + (self.cell_y - w.y) ** 2 <= WIPE_RADIUS ** 2
            self.dirt[near] = np.maximum(0.0, self.dirt[near] - WIPE_RATE)

    def remaining(self) -> float:
        return float(self.dirt.sum()) / self.initial

    def success(self, w):
        return self.remaining() < 0.03

    def completion(self, w):
        return min(1.0, (1.0 - self.remaining()) / 0.97)

    def draw_background(self, r, img, w):
        cx, cy = w.pose[self.stain, :2]
        s = r.size
        r0, c0 = r.px(cx - self.radius, cy - self.radius)
        r1, c1 = r.px(cx + self.radius, cy + self.radius)
        r0, c0, r1, c1 = max(r0, 0), max(c0, 0), min(r1 + 1, s), min(c1 + 1, s)
        ys = (np.arange(r0, r1) + 0.5 - r.jy) / s
        xs = (np.arange(c0, c1) + 0.5 - r.jx) / s
        g = self.GRID
        iy = np.clip(((ys - (cy - self.radius)) / (2 * self.radius) * g).astype(np.int64), 0, g - 1)
        ix = np.clip(((xs - (cx - self.radius)) / (2 * self.radius) * g).astype(np.int64), 0, g - 1)
        self._box = (r0, r1, c0, c1)
        self._flat = (iy[:, None] * g + ix[None, :])  # (h, w) cell index per pixel
        self._color = PALETTE[int(w.color[self.stain])].astype(np.float32) * 0.8

    def draw_overlay(self, r, img, w):
        r0, r1, c0, c1 = self._box
        if r1 <= r0 or c1 <= c0:
            return
        a = (self.dirt.ravel()[self._flat] * 0.85)[:, :, None]  # (h, w, 1) stain opacity
        sub = img[r0:r1, c0:c1]
        sub[:] = (sub * (1.0 - a) + self._color * a).astype(np.uint8)


class SweepTrash(Task):
    name = "SweepTrash"
    BAR_HALF = 0.052  # half length of the bristle bar
    FRONT = 0.048  # debris is pushed to this distance in front of the brush centre (just ahead of the bar)

    def setup(self, w, rng, motion):
        side = int(rng.integers(3))
        pan_pose = [((0.5, 0.87), (0.24, 0.16)), ((0.12, 0.5), (0.16, 0.24)), ((0.88, 0.5), (0.16, 0.24))][side]
        self.pan = w.add("dustpan", "grey", *pan_pose[0], 0.0, size=pan_pose[1])
        pts = _sample_points(rng, 3, (0.3, 0.25), (0.7, 0.7), 0.08)
        self.debris = [w.add("debris", "brown", x, y, 0.0) for x, y in pts]
        bp = _sample_points(rng, 1, (0.15, 0.12), (0.85, 0.7), 0.0,
                            avoid=[(x, y, 0.14) for x, y in pts] + [(*pan_pose[0], 0.2)])[0]
        self.brush = w.add("brush", "red", bp[0], bp[1], float(rng.uniform(-math.pi, math.pi)), graspable=True)
        self.collected = [False] * 3
        self._gripper_start(w, rng)
        self._split(w)
        return {"side": ["bottom", "left", "right"][side]}

    def before_step(self, w):
        b = w.pose[self.brush]
        self._prev = (float(b[0]), float(b[1]), float(b[2]))

    def update(self, w):
        if w.held != self.brush or w.lift > 0.3:
            self._check(w)
            return
        bx, by, byaw = w.pose[self.brush]
        c, s = trig.cos(byaw), trig.sin(byaw)
        px, py, pyaw = self._prev
        pc, ps = trig.cos(pyaw), trig.sin(pyaw)
        for k, d in enumerate(self.debris):
            if self.collected[k]:
                continue
            dx, dy = w.pose[d, 0] - bx, w.pose[d, 1] - by
            lx, ly = c * dx + s * dy, -s * dx + c * dy
            lx0 = pc * (w.pose[d, 0] - px) + ps * (w.pose[d, 1] - py)
            if abs(ly) < self.BAR_HALF and lx < self.FRONT and lx0 >= -0.004:
                lx = self.FRONT  # the bar pushes it ahead
                w.pose[d, 0] = bx + c * lx - s * ly
                w.pose[d, 1] = by + s * lx + c * ly
        self._check(w)

    def _check(self, w):
        for k, d in enumerate(self.debris):
            if not self.collected[k] and inside(w, d, self.pan, 0.012):
                self.collected[k] = True

    def success(self, w):
        return all(self.collected)

    def completion(self, w):
        return sum(self.collected) / len(self.collected)


class PlaceMarkpen(Task):
    name = "PlaceMarkpen"

    def setup(self, w, rng, motion):
        hx, hy = (float(v) for v in rng.uniform((0.25, 0.25), (0.75, 0.6)))
        pen = _sample_points(rng, 1, (0.12, 0.12), (0.88, 0.88), 0.0, avoid=[(hx, hy, 0.24)])[0]
        color = ["red", "blue", "green", "black", "purple"][int(rng.integers(5))]
        self.holder = w.add("pen_holder", "grey", hx, hy, float(rng.uniform(-math.pi, math.pi)))
        self.pen = w.add("markpen", color, pen[0], pen[1], float(rng.uniform(-math.pi, math.pi)), graspable=True)
        self._gripper_start(w, rng)
        self._split(w)
        return {"color": color}

    def placed(self, w) -> bool:
        return (math.dist(w.pose[self.pen, :2], w.pose[self.holder, :2]) < PEN_POS_TOL
                and abs(wrap_angle(w.pose[self.pen, 2] - w.pose[self.holder, 2])) < PEN_YAW_TOL)

    def update(self, w):
        if w.just_released == self.pen and self.placed(w):
            w.pose[self.pen] = w.pose[self.holder]  # it slides into the slot

    def success(self, w):
        return w.held != self.pen and self.placed(w)

    def completion(self, w):
        return 1.0 if self.success(w) else (0.5 if w.held == self.pen else 0.0)


class IngredientPicking(Task):
    name = "IngredientPicking"
    ITEMS = {"tomato": "red", "lemon": "yellow", "broccoli": "green", "carrot": "orange"}
    CENTER = (0.5, 0.36)
    RADIUS = 0.25

    def setup(self, w, rng, motion):
        drawn = float(rng.uniform(*TURNTABLE_SPEED_RANGE))  # drawn even when given: the same scene at another speed
        speed = drawn if motion.get("turntable_speed") is None else float(motion["turntable_speed"])
        w.table_center, w.table_radius, w.table_speed = self.CENTER, self.RADIUS, speed / 10.0
        self.table = w.add("turntable", "grey", *self.CENTER, 0.0, size=(self.RADIUS, self.RADIUS))
        px = float(rng.uniform(0.22, 0.78))
        self.plate = w.add("plate", "white", px, 0.83, 0.0, size=(0.15, 0.15))
        names = list(self.ITEMS)
        kinds = [names[k] for k in rng.choice(len(names), size=3, replace=False)]
        a0 = float(rng.uniform(-math.pi, math.pi))
        self.items = []
        for k, kind in enumerate(kinds):
            a = a0 + k * 2 * math.pi / 3 + float(rng.uniform(-0.3, 0.3))
            rad = float(rng.uniform(0.1, 0.18))
            i = w.add(kind, self.ITEMS[kind], self.CENTER[0] + rad * trig.cos(a), self.CENTER[1] + rad * trig.sin(a),
                      float(rng.uniform(-math.pi, math.pi)), graspable=True)
            self.items.append(i)
        self.target = self.items[int(rng.integers(3))]
        self._gripper_start(w, rng)
        w.y = float(rng.uniform(0.6, 0.7))
        self._split(w)
        return {"item": KIND_NAMES[w.kind[self.target]].replace("_", " ")}

    def prims(self, i, w):
        return () if i == getattr(self, "table", -1) else None

    def draw_background(self, r, img, w):
        self._disc = object_prims("turntable", COLOR["grey"], (self.RADIUS, self.RADIUS))

    def draw_overlay(self, r, img, w):
        r.paste(img, self._disc, self.CENTER[0], self.CENTER[1], w.table_angle)

    def success(self, w):
        t = self.target
        return w.held != t and w.on_table[t] and math.dist(w.pose[t, :2], w.pose[self.plate, :2]) < 0.06

    def completion(self, w):
        return 1.0 if self.success(w) else (0.5 if w.held == self.target else 0.0)


# --- the registry ----------------------------------------------------------------------------------

def _spec(cls, title, dynamic, step_limit, templates):
    return TaskSpec(cls.name, title, dynamic, step_limit, tuple(templates), cls)


TASKS: dict[str, TaskSpec] = {s.name: s for s in [
    _spec(SortParts, "Sort Parts", False, 160, [
        "put the {c1} parts in the {c1} bin and the {c2} parts in the {c2} bin",
        "sort the parts by colour: {c1} ones into the {c1} bin, {c2} ones into the {c2} bin",
        "place every part in the bin that matches its colour ({c1} and {c2})",
        "sort the {c1} and {c2} parts into their matching bins",
    ]),
    _spec(ZipBag, "Zip Bag", False, 50, [
        "zip the {color} bag closed",
        "pull the zipper along the seam to close the {color} bag",
        "grab the zipper of the {color} bag and drag it to the end of the seam",
        "close the zip on the {color} bag",
    ]),
    _spec(UnscrewCap, "Unscrew Cap", False, 80, [
        "unscrew the {color} cap from the {bottle} bottle",
        "twist the {color} cap off the bottle",
        "open the {bottle} bottle by unscrewing its {color} cap",
        "turn the {color} cap counter-clockwise until it comes off, then lift it",
    ]),
    _spec(PlaceFlower, "Place Flower", False, 55, [
        "put the {color} flower in the {vase} vase",
        "place the {color} flower into the vase",
        "pick up the {color} flower and put it in the {vase} vase",
        "arrange the {color} flower in the vase",
    ]),
    _spec(WipeStain, "Wipe Stain", False, 85, [
        "wipe the {color} stain off the table with the sponge",
        "clean up the {color} stain using the sponge",
        "use the sponge to scrub away the {color} stain",
        "take the sponge and wipe the table until the {color} stain is gone",
    ]),
    _spec(SortRubbish, "Sort Rubbish", False, 160, [
        "put the recyclables in the blue bin and the rest in the grey bin",
        "sort the rubbish: recyclable items into the blue bin, general waste into the grey bin",
        "throw the rubbish away, recycling in the blue bin on the {side}",
        "separate the recyclable rubbish from the non-recyclable rubbish into the two bins",
    ]),
    _spec(SweepTrash, "Sweep Trash", False, 180, [
        "sweep the trash into the dustpan",
        "use the brush to push all the debris into the dustpan on the {side}",
        "take the brush and sweep the crumbs into the dustpan",
        "brush the dirt on the table into the dustpan",
    ]),
    _spec(PlaceMarkpen, "Place Markpen", False, 60, [
        "put the {color} marker into the holder with its tip at the red dot",
        "place the {color} pen in the pen holder, tip first towards the red mark",
        "insert the {color} markpen into the holder the right way round",
        "store the {color} marker in its holder with the tip pointing to the red dot",
    ]),
    _spec(ExpressSorting, "Express Sorting", True, 110, [
        "put the {c1} parcel in the {c1} bin and the {c2} parcel in the {c2} bin",
        "sort the parcels from the conveyor into the bins matching their labels",
        "grab the {c1} and {c2} parcels off the moving belt and sort them by label colour",
        "take each parcel off the conveyor and drop it in the bin with the same colour as its label",
    ]),
    _spec(IngredientPicking, "Ingredient Picking", True, 50, [
        "pick the {item} off the turntable and put it on the plate",
        "grab the {item} from the rotating table and place it on the plate",
        "put the {item} on the plate",
        "take the {item} from the spinning turntable and set it on the plate",
    ]),
]}
STATIC_TASKS = [n for n, s in TASKS.items() if not s.dynamic]
DYNAMIC_TASKS = [n for n, s in TASKS.items() if s.dynamic]

TASK_IDS = {name: i for i, name in enumerate(TASKS)}  # task name -> the index stored as scene.task


assert all(k in KIND for k in ("bin", "parcel")) and len(COLOR_NAMES) == 13
