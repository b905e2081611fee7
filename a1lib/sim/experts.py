"""Scripted experts: closed-loop controllers on the privileged world state.

Every expert is a deterministic function of the current world (plus, for dynamic tasks, a
motion model it is allowed to know: belt speed, turntable speed), re-evaluated every step, so it
recovers from the lab domain's action noise and latency. Commands are proportional control
saturated to [-1, 1] (``_move``, ``_turn``); the "phase" (approach, descend, close, carry,
release) is read off the state (what is held, lift, distances), never stored.

Every decision is legible to the 64 px camera: a threshold on a distance is at least
``MIN_TOL`` (1.5 px at 64 px), and what to do next is a function of what is visible (which item
comes next in a sorting task is the leftmost one, not the first in the scene's slot order).

The one exception is the *motion-blind* variant used to show that the dynamic tasks really need
motion understanding: it latches the object's position when it starts an approach and aims there
(no prediction, no tracking, no velocity feed-forward) until the grasp attempt is over.
"""

from __future__ import annotations

import math

import numpy as np

from a1lib.sim import portable_trig as trig
from a1lib.sim import tasks as T
from a1lib.sim.world import GRASP_MAX_LIFT, MAX_SPEED, MAX_YAW_RATE, World, wrap_angle

GAIN = 0.6  # fraction of the position error corrected per step
YAW_GAIN = 0.7
MIN_TOL = 1.5 / 64  # table units: the smallest distance threshold a decision may use (1.5 px at 64 px)
GRASP_TRIGGER = 0.025  # close the fingers when this near the object (1.6 px)
PLACE_TOL = 0.025  # release when this near the drop point (1.6 px)
PLACE_YAW_TOL = 0.25  # ... and, for oriented placing, within this many radians


def _clip(v: float) -> float:
    return -1.0 if v < -1.0 else (1.0 if v > 1.0 else v)


def _move(w: World, tx: float, ty: float, ff=(0.0, 0.0), gain: float = GAIN, vmax: float = 1.0):
    """Velocity command towards (tx, ty) + feed-forward velocity ff (per step), norm <= vmax."""
    vx = (gain * (tx - w.x) + ff[0]) / MAX_SPEED
    vy = (gain * (ty - w.y) + ff[1]) / MAX_SPEED
    n = math.hypot(vx, vy)
    if n > vmax:
        vx, vy = vx * vmax / n, vy * vmax / n
    return vx, vy


def _turn(w: World, target_yaw: float) -> float:
    return _clip(YAW_GAIN * wrap_angle(target_yaw - w.yaw) / MAX_YAW_RATE)


def _action(vx=0.0, vy=0.0, vyaw=0.0, lift=0.0, grip=0.0) -> np.ndarray:
    return np.array([_clip(vx), _clip(vy), _clip(vyaw), _clip(lift), _clip(grip)], dtype=np.float32)


def predict(w: World, i: int, steps: float) -> tuple[float, float]:
    """Where free object i will be after ``steps`` steps on the moving surfaces."""
    x, y = float(w.pose[i, 0]), float(w.pose[i, 1])
    if w.on_belt(i):
        return x + w.belt_speed * steps, y
    if w.on_turntable(i):
        cx, cy = w.table_center
        a = w.table_speed * steps
        c, s = trig.cos(a), trig.sin(a)
        return cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy)
    return x, y


def pick(w: World, i: int, mem: dict | None = None, blind: bool = False) -> np.ndarray:
    """Approach object i (intercepting it if it moves), descend, close the fingers."""
    ox, oy = float(w.pose[i, 0]), float(w.pose[i, 1])
    if blind:  # aim where the object was when this approach started
        latch = mem.get("latch")
        if latch is None or latch[0] != i:
            latch = mem["latch"] = (i, ox, oy)
        tx, ty, ff = latch[1], latch[2], (0.0, 0.0)
        if w.grip >= 0.99:  # the grasp attempt missed: start a new approach next step
            mem.pop("latch", None)
    else:
        ff = w.object_velocity(i)
        tx, ty = ox, oy
        if ff != (0.0, 0.0):  # intercept: aim where it will be when we get there
            steps = 0.0
            for _ in range(3):
                tx, ty = predict(w, i, steps)
                steps = math.hypot(tx - w.x, ty - w.y) / MAX_SPEED
    d = math.hypot(tx - w.x, ty - w.y)
    vx, vy = _move(w, tx, ty, ff)
    lift = -1.0 if d < 0.1 else 1.0
    closing = w.grip > 0.2 and d < 0.035
    if w.grip >= 0.99:
        grip = -1.0  # closed on nothing: open and try again
    elif w.lift <= GRASP_MAX_LIFT and (d < GRASP_TRIGGER or closing):
        grip = 1.0
    else:
        grip = -1.0
    return _action(vx, vy, 0.0, lift, grip)


def carry(w: World, tx: float, ty: float, goal_yaw: float | None = None, tol: float = PLACE_TOL,
          yaw_tol: float = PLACE_YAW_TOL) -> np.ndarray:
    """Carry the held object (raised) to (tx, ty), optionally turning it to goal_yaw; drop it."""
    vx, vy = _move(w, tx, ty)
    ok = math.hypot(tx - w.x, ty - w.y) < tol
    vyaw = 0.0
    if goal_yaw is not None:
        want = goal_yaw - w.held_yaw_offset  # gripper yaw that gives the object goal_yaw
        vyaw = _turn(w, want)
        ok = ok and abs(wrap_angle(want - w.yaw)) < yaw_tol
    return _action(vx, vy, vyaw, 1.0, -1.0 if ok else 1.0)


def idle(w: World) -> np.ndarray:
    return _action(lift=1.0, grip=-1.0)


def _plan(mem: dict, target: int, goal=None) -> None:
    """Records what the expert is doing now: the object slot it acts on (-1: none) and where that
    object is to go (table x, y; None: nowhere in particular). Read by ``expert_plan``."""
    mem["plan"] = (int(target), None if goal is None else (float(goal[0]), float(goal[1])))


# --- per task -------------------------------------------------------------------------------------

def _bin_sorting(task: T._BinSorting, w: World, mem: dict, blind: bool) -> np.ndarray:
    if w.held in task.items:
        _plan(mem, w.held, task.slot_in_bin(w, w.held))
        return carry(w, *task.slot_in_bin(w, w.held))
    _plan(mem, -1)
    if w.held >= 0:
        return _action(lift=1.0, grip=-1.0)
    todo = [i for i in task.items if w.on_table[i] and not task.sorted_ok(w, i)]
    todo.sort(key=lambda i: w.pose[i, 0])  # the leftmost first: a choice the camera can see
    if isinstance(task, T.ExpressSorting):
        todo = [i for i in todo if w.pose[i, 0] > 0.04]  # visible on the belt
        if not todo:
            vx, vy = _move(w, 0.25, 0.4)
            return _action(vx, vy, 0.0, 1.0, -1.0)
        todo.sort(key=lambda i: -w.pose[i, 0])  # the one closest to the end of the belt first
    if not todo:
        return idle(w)
    _plan(mem, todo[0], task.slot_in_bin(w, todo[0]))
    return pick(w, todo[0], mem, blind)


def _zip_bag(task: T.ZipBag, w: World, mem: dict, blind: bool) -> np.ndarray:
    _plan(mem, task.zipper, task.point(1.0))
    if w.held != task.zipper:
        return pick(w, task.zipper, mem, blind)
    p = task.point(task.progress)
    tx, ty = p + task.u * 0.02  # a carrot just ahead of the zipper, along the seam
    vx, vy = _move(w, float(tx), float(ty), gain=1.0, vmax=T.ZIP_SPEED / MAX_SPEED)
    return _action(vx, vy, 0.0, -1.0, 1.0)


def _unscrew_cap(task: T.UnscrewCap, w: World, mem: dict, blind: bool) -> np.ndarray:
    _plan(mem, task.cap, w.pose[task.bottle, :2])
    if w.held != task.cap:
        return pick(w, task.cap, mem, blind)
    if not task.loose:
        remaining = T.UNSCREW_TURNS * 2 * math.pi + 0.3 - task.turned
        bx, by = w.pose[task.bottle, :2]
        vx, vy = _move(w, float(bx), float(by))
        return _action(vx, vy, -_clip(remaining / MAX_YAW_RATE), -1.0, 1.0)
    return _action(lift=1.0, grip=1.0)


def _place_flower(task: T.PlaceFlower, w: World, mem: dict, blind: bool) -> np.ndarray:
    _plan(mem, task.flower, w.pose[task.vase, :2])
    if w.held != task.flower:
        return pick(w, task.flower, mem, blind)
    return carry(w, *(float(v) for v in w.pose[task.vase, :2]))


def _wipe_stain(task: T.WipeStain, w: World, mem: dict, blind: bool) -> np.ndarray:
    dirty = task.dirt > 0
    # the first dirty cell in a serpentine raster order: progress is monotone, so the target
    # never flips between two equally near cells (which, with lab latency, could oscillate)
    k = int(np.argmin(np.where(dirty, _SERPENTINE[task.GRID], np.inf)))
    _plan(mem, task.sponge, (task.cell_x.flat[k], task.cell_y.flat[k]) if dirty.any() else None)
    if w.held != task.sponge:
        return pick(w, task.sponge, mem, blind)
    if not dirty.any():
        return _action(lift=1.0, grip=1.0)
    vx, vy = _move(w, float(task.cell_x.flat[k]), float(task.cell_y.flat[k]))
    return _action(vx, vy, 0.0, -1.0, 1.0)


_SERPENTINE = {g: np.array([[r * g + (c if r % 2 == 0 else g - 1 - c) for c in range(g)] for r in range(g)],
                           dtype=np.float64) for g in (8, 10, 12, 16)}


def _sweep_trash(task: T.SweepTrash, w: World, mem: dict, blind: bool) -> np.ndarray:
    todo = [d for k, d in enumerate(task.debris) if not task.collected[k]]
    px, py = w.pose[task.pan, :2]
    todo.sort(key=lambda d: math.hypot(w.pose[d, 0] - px, w.pose[d, 1] - py))  # the nearest to the pan first
    if w.held != task.brush:  # first the brush, to go behind the first bit of debris
        _plan(mem, task.brush, w.pose[todo[0], :2] if todo else None)
        return pick(w, task.brush, mem, blind)
    if not todo:
        _plan(mem, -1)
        return idle(w)
    d = todo[0]
    _plan(mem, d, (px, py))  # then each bit of debris, into the pan
    dx, dy = float(w.pose[d, 0]), float(w.pose[d, 1])
    ux, uy = px - dx, py - dy
    n = math.hypot(ux, uy)
    ux, uy = ux / n, uy / n
    push_yaw = trig.atan2(uy, ux)
    byaw = w.yaw + w.held_yaw_offset
    vyaw = _turn(w, push_yaw - w.held_yaw_offset)
    c, s = trig.cos(byaw), trig.sin(byaw)
    lx = c * (dx - w.x) + s * (dy - w.y)
    ly = -s * (dx - w.x) + c * (dy - w.y)
    aligned = abs(wrap_angle(push_yaw - byaw)) < 0.35 and -0.005 < lx < 0.09 and abs(ly) < 0.035
    if aligned and w.lift <= 0.3:  # push: a carrot just beyond the debris, towards the pan
        vx, vy = _move(w, dx + ux * 0.03, dy + uy * 0.03, vmax=0.6)
        return _action(vx, vy, vyaw, -1.0, 1.0)
    if aligned:  # behind it: lower the brush in place
        return _action(0.0, 0.0, vyaw, -1.0, 1.0)
    if w.lift < 0.65:  # lift before moving so the brush does not push things the wrong way
        return _action(0.0, 0.0, vyaw, 1.0, 1.0)
    vx, vy = _move(w, dx - ux * 0.06, dy - uy * 0.06)
    return _action(vx, vy, vyaw, 1.0, 1.0)


def _place_markpen(task: T.PlaceMarkpen, w: World, mem: dict, blind: bool) -> np.ndarray:
    _plan(mem, task.pen, w.pose[task.holder, :2])
    if w.held != task.pen:
        return pick(w, task.pen, mem, blind)
    hx, hy, hyaw = (float(v) for v in w.pose[task.holder])
    return carry(w, hx, hy, goal_yaw=hyaw)


def _ingredient_picking(task: T.IngredientPicking, w: World, mem: dict, blind: bool) -> np.ndarray:
    _plan(mem, task.target, w.pose[task.plate, :2])
    if w.held == task.target:
        return carry(w, *(float(v) for v in w.pose[task.plate, :2]))
    if w.held >= 0:
        return _action(lift=1.0, grip=-1.0)
    return pick(w, task.target, mem, blind)


EXPERTS = {
    "SortParts": _bin_sorting, "SortRubbish": _bin_sorting, "ExpressSorting": _bin_sorting,
    "ZipBag": _zip_bag, "UnscrewCap": _unscrew_cap, "PlaceFlower": _place_flower, "WipeStain": _wipe_stain,
    "SweepTrash": _sweep_trash, "PlaceMarkpen": _place_markpen, "IngredientPicking": _ingredient_picking,
}


def expert_action(task: T.Task, w: World, mem: dict, motion_blind: bool = False) -> np.ndarray:
    """The scripted expert's command, float32 (5,) in [-1, 1]."""
    return EXPERTS[task.name](task, w, mem, motion_blind)  # every entry is already in [-1, 1]


def expert_plan(task: T.Task, w: World) -> tuple[int, tuple[float, float] | None]:
    """(object slot the expert acts on now or -1, where it is to go or None), for the current
    state; no side effects (the non-blind expert keeps no memory)."""
    mem: dict = {}
    EXPERTS[task.name](task, w, mem, False)
    return mem.get("plan", (-1, None))
