"""The tabletop world: state and (very simple) physics, no drawing.

The table is the unit square ``[0, 1]^2`` seen from above, x to the right, y down (image
convention), yaw in radians (positive yaw turns clockwise on screen because y points down).

A gripper moves over the table. It has a planar pose ``(x, y, yaw)``, a lift height
``lift in [0, 1]`` (0 = touching the table) and a closure ``grip in [0, 1]`` (0 = open). The
policy drives it with a continuous action (float32, shape (5,), every entry in [-1, 1]):

    [vx, vy, vyaw, lift, grip]

* ``vx, vy`` are table-frame velocities, scaled by ``MAX_SPEED`` (table units per step);
* ``vyaw`` is the yaw rate, scaled by ``MAX_YAW_RATE`` (rad per step);
* ``lift > 0`` raises and ``lift < 0`` lowers, at most ``LIFT_RATE`` per step;
* ``grip > 0`` closes and ``grip < 0`` opens, at most ``GRIP_RATE`` per step.

Grasping is an abstraction of a real gripper: when the fingers *become* closed (``grip``
crosses 0.5) while the gripper is low (``lift <= GRASP_MAX_LIFT``), the nearest graspable object
within ``GRASP_RADIUS`` is held. A held object follows the gripper (keeping its yaw offset); the
fingers then stop at ``HELD_GRIP`` (the object is between them), so ``grip`` tells whether
something is held, as a real gripper's width does. Opening (``grip < 0.5``) drops it where it is.

Objects live in fixed-size arrays of ``MAX_OBJECTS`` slots (padding: kind -1). Tasks add their
own rules (a cap that is screwed on, a zipper that only slides along a seam, a brush that
pushes debris) through hooks in ``a1lib.sim.tasks``. Moving surfaces: a conveyor belt (a
horizontal band that carries objects along +x) and a turntable (a disc that rotates objects
about its centre).
"""

from __future__ import annotations

import math

import numpy as np

from a1lib.sim import portable_trig as trig

FPS = 10
DT = 1.0 / FPS
MAX_OBJECTS = 8

MAX_SPEED = 0.06  # table units per step (0.6 units/s)
MAX_YAW_RATE = 0.4  # rad per step (4 rad/s)
LIFT_RATE = 0.35  # lift units per step (fully up or down in 3 steps)
GRIP_RATE = 0.5  # grip units per step (closed in 2 steps)
GRASP_RADIUS = 0.045  # an object's centre must be this close to the gripper to be grasped
GRASP_MAX_LIFT = 0.25  # the gripper must be this low to grasp
HELD_GRIP = 0.6  # finger closure while an object is between the fingers
WORKSPACE = (0.02, 0.98)  # the gripper centre stays inside this square

ACTION_NAMES = ["vx", "vy", "vyaw", "lift", "grip"]
ACTION_DIM = len(ACTION_NAMES)
STATE_NAMES = ["gripper.x", "gripper.y", "gripper.yaw_cos", "gripper.yaw_sin", "gripper.lift", "gripper.grip"]
STATE_DIM = len(STATE_NAMES)
STATE_LOW = np.array([0.0, 0.0, -1.0, -1.0, 0.0, 0.0], dtype=np.float32)
STATE_HIGH = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=np.float32)

# Vocabularies for the privileged scene description (indices into these lists).
KIND_NAMES = [
    "bolt", "nut", "gear", "bin",  # Sort Parts (+ bins, shared)
    "bag", "zipper",  # Zip Bag
    "bottle", "cap",  # Unscrew Cap
    "flower", "vase",  # Place Flower
    "sponge", "stain",  # Wipe Stain
    "can", "plastic_bottle", "paper", "banana_peel", "chip_bag", "tissue",  # Sort Rubbish
    "brush", "debris", "dustpan",  # Sweep Trash
    "markpen", "pen_holder",  # Place Markpen
    "parcel", "conveyor",  # Express Sorting
    "tomato", "lemon", "broccoli", "carrot", "plate", "turntable",  # Ingredient Picking
]
KIND = {name: i for i, name in enumerate(KIND_NAMES)}
COLOR_NAMES = [
    "red", "green", "blue", "yellow", "orange", "purple", "white", "black", "grey", "brown",
    "pink", "cyan", "silver",
]
COLOR = {name: i for i, name in enumerate(COLOR_NAMES)}


def wrap_angle(a: float) -> float:
    """Wraps an angle to [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


class World:
    """Gripper + objects + moving surfaces. Plain attributes, updated in place by ``step``."""

    def __init__(self) -> None:
        # gripper
        self.x = 0.5
        self.y = 0.5
        self.yaw = 0.0
        self.lift = 1.0
        self.grip = 0.0
        self.held = -1
        self.held_yaw_offset = 0.0
        # objects, (K,) / (K, 3) / (K, 2)
        self.n = 0
        self.kind = np.full(MAX_OBJECTS, -1, dtype=np.int64)
        self.color = np.full(MAX_OBJECTS, -1, dtype=np.int64)
        self.pose = np.zeros((MAX_OBJECTS, 3), dtype=np.float64)  # x, y, yaw
        self.size = np.zeros((MAX_OBJECTS, 2), dtype=np.float64)  # extent for regions (w, h)
        self.graspable = np.zeros(MAX_OBJECTS, dtype=bool)
        self.on_table = np.zeros(MAX_OBJECTS, dtype=bool)  # False once fallen off / collected away
        # moving surfaces (per-step units; scene() reports per-second units)
        self.belt_band: tuple[float, float] | None = None  # (y_top, y_bottom) of the conveyor
        self.belt_speed = 0.0  # table units per step along +x
        self.table_center: tuple[float, float] | None = None  # turntable centre
        self.table_radius = 0.0
        self.table_speed = 0.0  # rad per step
        self.table_angle = 0.0  # accumulated turntable rotation (drawing)
        self.belt_offset = 0.0  # accumulated belt travel (drawing)
        self.t = 0
        self.just_grasped = -1  # object grasped on the last step (-1 if none)
        self.just_released = -1  # object released on the last step (-1 if none)

    # --- building a scene ---------------------------------------------------------------------
    def add(self, kind: str, color: str, x: float, y: float, yaw: float = 0.0,
            size: tuple[float, float] = (0.0, 0.0), graspable: bool = False) -> int:
        """Adds an object and returns its slot index."""
        if self.n >= MAX_OBJECTS:
            raise ValueError(f"a scene holds at most MAX_OBJECTS={MAX_OBJECTS} objects")
        i = self.n
        self.kind[i] = KIND[kind]
        self.color[i] = COLOR[color]
        self.pose[i] = (x, y, yaw)
        self.size[i] = size
        self.graspable[i] = graspable
        self.on_table[i] = True
        self.n += 1
        return i

    # --- reading ------------------------------------------------------------------------------
    def state(self, out: np.ndarray | None = None) -> np.ndarray:
        """Proprioceptive state, float32 (STATE_DIM,), see STATE_NAMES."""
        s = np.empty(STATE_DIM, dtype=np.float32) if out is None else out
        s[0] = self.x
        s[1] = self.y
        s[2] = trig.cos(self.yaw)
        s[3] = trig.sin(self.yaw)
        s[4] = self.lift
        s[5] = self.grip
        return s

    @property
    def closed(self) -> bool:
        return self.grip > 0.5

    def on_belt(self, i: int) -> bool:
        if self.belt_band is None:
            return False
        return self.belt_band[0] <= self.pose[i, 1] <= self.belt_band[1] and -0.5 < self.pose[i, 0] < 1.05

    def on_turntable(self, i: int) -> bool:
        if self.table_center is None:
            return False
        dx = self.pose[i, 0] - self.table_center[0]
        dy = self.pose[i, 1] - self.table_center[1]
        return dx * dx + dy * dy <= self.table_radius * self.table_radius

    def object_velocity(self, i: int) -> tuple[float, float]:
        """Velocity (per step) a free object at slot i gets from the moving surfaces."""
        if self.kind[i] in (KIND["conveyor"], KIND["turntable"]):
            return 0.0, 0.0
        if self.on_belt(i):
            return self.belt_speed, 0.0
        if self.on_turntable(i):
            dx = self.pose[i, 0] - self.table_center[0]
            dy = self.pose[i, 1] - self.table_center[1]
            return -self.table_speed * dy, self.table_speed * dx
        return 0.0, 0.0

    def nearest_graspable(self) -> int:
        best, best_d2 = -1, GRASP_RADIUS * GRASP_RADIUS
        for i in range(self.n):
            if not (self.graspable[i] and self.on_table[i]):
                continue
            dx = self.pose[i, 0] - self.x
            dy = self.pose[i, 1] - self.y
            d2 = dx * dx + dy * dy
            if d2 <= best_d2:
                best, best_d2 = i, d2
        return best

    # --- physics ------------------------------------------------------------------------------
    def apply_action(self, a: np.ndarray) -> None:
        """Integrates the gripper for one step and handles grasp / release. ``a`` is clipped."""
        vx = min(1.0, max(-1.0, float(a[0])))
        vy = min(1.0, max(-1.0, float(a[1])))
        vyaw = min(1.0, max(-1.0, float(a[2])))
        vl = min(1.0, max(-1.0, float(a[3])))
        vg = min(1.0, max(-1.0, float(a[4])))
        lo, hi = WORKSPACE
        self.x = min(hi, max(lo, self.x + vx * MAX_SPEED))
        self.y = min(hi, max(lo, self.y + vy * MAX_SPEED))
        self.yaw = self.yaw + vyaw * MAX_YAW_RATE  # unwrapped: tasks may count turns
        self.lift = min(1.0, max(0.0, self.lift + vl * LIFT_RATE))
        was_closed = self.closed
        self.grip = min(1.0, max(0.0, self.grip + vg * GRIP_RATE))
        self.just_grasped = -1
        self.just_released = -1
        if self.held >= 0:
            if not self.closed:
                self.release()
            else:
                self.grip = min(self.grip, HELD_GRIP)
        elif self.closed and not was_closed and self.lift <= GRASP_MAX_LIFT:
            i = self.nearest_graspable()
            if i >= 0:
                self.held = i
                self.held_yaw_offset = self.pose[i, 2] - self.yaw
                self.grip = min(self.grip, HELD_GRIP)
                self.just_grasped = i

    def release(self) -> None:
        self.just_released = self.held
        self.held = -1

    def follow_gripper(self) -> None:
        """The held object moves with the gripper."""
        if self.held >= 0:
            p = self.pose[self.held]
            p[0] = self.x
            p[1] = self.y
            p[2] = self.yaw + self.held_yaw_offset

    def move_surfaces(self) -> None:
        """Conveyor and turntable carry the free objects lying on them."""
        if self.belt_band is not None:
            self.belt_offset += self.belt_speed
            for i in range(self.n):
                if i != self.held and self.graspable[i] and self.on_table[i] and self.on_belt(i):
                    self.pose[i, 0] += self.belt_speed
                    if self.pose[i, 0] > 1.02:  # fell off the end of the belt
                        self.on_table[i] = False
        if self.table_center is not None:
            w = self.table_speed
            self.table_angle += w
            c, s = trig.cos(w), trig.sin(w)
            cx, cy = self.table_center
            for i in range(self.n):
                if i != self.held and self.graspable[i] and self.on_table[i] and self.on_turntable(i):
                    dx = self.pose[i, 0] - cx
                    dy = self.pose[i, 1] - cy
                    self.pose[i, 0] = cx + c * dx - s * dy
                    self.pose[i, 1] = cy + s * dx + c * dy
                    self.pose[i, 2] += w


def planned_path(state: np.ndarray, actions: np.ndarray, max_speed: float = MAX_SPEED,
                 workspace: tuple[float, float] = WORKSPACE) -> np.ndarray:
    """Gripper positions (H+1, 2) in table units: the start from ``state[:2]`` (gripper.x, gripper.y),
    then one step per chunk row, as ``World.apply_action`` integrates vx, vy (clipped to [-1, 1],
    scaled by ``max_speed`` per step, the centre kept inside ``workspace``)."""
    lo, hi = workspace
    xy = np.asarray(state, np.float64)[:2].copy()  # (2,)
    path = [xy.copy()]
    for v in np.clip(np.asarray(actions, np.float64)[:, :2], -1.0, 1.0):  # (H, 2) -> H steps
        xy = np.clip(xy + v * max_speed, lo, hi)
        path.append(xy.copy())
    return np.stack(path)  # (H+1, 2)
