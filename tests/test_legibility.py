"""A world a 64 px camera can read: every decision the experts make, every success predicate and
every object a task needs is legible at the default resolution (issue "A policy that acts")."""

import math

import numpy as np
import pytest

from a1lib.sim import TASKS, make_env
from a1lib.sim import experts as E
from a1lib.sim import tasks as T
from a1lib.sim.render import OBJECT_DRAW_SCALE, build_stamp, object_prims
from a1lib.sim.world import COLOR, GRASP_RADIUS, KIND_NAMES

PX = 1 / 64  # one pixel at the default 64 px, in table units
NOT_GRASPABLE = ("bin", "bag", "bottle", "vase", "stain", "dustpan", "pen_holder", "conveyor", "plate", "turntable")


def test_expert_distance_thresholds_are_at_least_one_and_a_half_pixels():
    assert E.MIN_TOL == pytest.approx(1.5 * PX)
    for name in ("GRASP_TRIGGER", "PLACE_TOL"):
        assert getattr(E, name) >= E.MIN_TOL, name
    assert E.GRASP_TRIGGER < GRASP_RADIUS  # closing inside the trigger always catches the object


def test_success_predicates_accept_what_the_experts_do():
    assert T.VASE_TOL > E.PLACE_TOL and T.PEN_POS_TOL > E.PLACE_TOL
    assert T.PEN_YAW_TOL > E.PLACE_YAW_TOL
    # a yaw tolerance, seen at the tip of the pen as drawn, is at least 1.5 px too
    from a1lib.viz.legibility import pen_half_length

    assert E.PLACE_YAW_TOL * pen_half_length() >= E.MIN_TOL


@pytest.mark.parametrize("kind", [k for k in KIND_NAMES if k not in NOT_GRASPABLE])
def test_objects_are_about_four_pixels_and_grasped_where_drawn(kind):
    scale = 1.0 if kind == "brush" else OBJECT_DRAW_SCALE
    prims = object_prims(kind, COLOR["red"])
    for yaw in (0.0, math.pi / 4):
        for phase in ((0, 0), (3, 3)):
            colour_sum, count, half = build_stamp(prims, yaw, 64, scale, phase)
            covered = count[:, :, 0] >= count.max() / 2
            rows, cols = np.nonzero(covered)
            extent = min(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1)
            assert extent >= 4, f"{kind} at yaw {yaw:.2f}: only {extent} px across"
            assert count[half, half, 0] > 0, f"{kind}: the grasp point (its centre) is not on the drawing"


def _flower_frame(shift_px: float) -> np.ndarray:
    env = make_env("PlaceFlower", domain="sim")
    env.reset(seed=3)
    env.world.pose[env.task.flower, 0] += shift_px * PX
    return env._observe()["image"].astype(int)


def test_a_quarter_pixel_of_motion_changes_pixels():
    base = _flower_frame(0.0)
    moved = _flower_frame(0.25)
    assert np.abs(moved - base).sum() > 0


def test_sorting_experts_take_the_leftmost_item_first():
    env = make_env("SortParts", domain="sim")
    for seed in range(5):
        env.reset(seed=seed)
        target, goal = E.expert_plan(env.task, env.world)
        xs = [env.world.pose[i, 0] for i in env.task.items]
        assert env.world.pose[target, 0] == min(xs) and goal is not None


@pytest.mark.parametrize("task", sorted(TASKS))
def test_scene_reports_the_plan_and_progress(task):
    env = make_env(task, domain="lab")
    env.reset(seed=1)
    scene = env.scene()
    assert scene["scene.progress"].shape == (1,) and 0.0 <= scene["scene.progress"][0] <= 1.0
    assert scene["scene.target"].shape == (1,) and scene["scene.goal"].shape == (2,)
    assert np.all(scene["scene.camera"] == 0.0)  # the lab camera is fixed


def test_the_tolerance_table_in_pixels():
    from a1lib.viz.legibility import tolerance_table

    rows = tolerance_table()
    assert all(r["now px"] >= 1.5 for r in rows), [r for r in rows if r["now px"] < 1.5]
    assert any(r["before px"] < 1.0 for r in rows)  # what the change fixed
