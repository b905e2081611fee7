"""Can a 64-px camera see what the expert decides? Every expert threshold and success tolerance in pixels.

A policy imitates decisions it can see. The scripted experts used to release, grasp and align on
distances below one pixel at the default 64-px camera (PlaceFlower released within 0.77 px of the
vase), so no image could tell "release now" from "not yet". The thresholds are now >= 1.5 px
(``a1lib.sim.experts.MIN_TOL``) and every success tolerance accepts what the expert does; the same
change applies to the expert, the data and the evaluation. ``tolerance_table()`` lists them, with the
values before the change for comparison (notebook 01; tests/test_legibility.py checks the rules).
"""

from __future__ import annotations

from a1lib.sim import experts as E
from a1lib.sim import tasks as T
from a1lib.sim.render import OBJECT_DRAW_SCALE, object_prims
from a1lib.sim.world import COLOR

# (decision, where it applies, value before, value now, unit). Distances are in table units (the
# table is 1 x 1, the image spans it); angles in radians, shown as px of motion at the tip of the pen as
# drawn now (objects were also enlarged).
_ROWS = (
    ("expert: close the fingers", "all grasps", 0.02, E.GRASP_TRIGGER, "dist"),
    ("expert: release at the drop point", "carry (default)", 0.015, E.PLACE_TOL, "dist"),
    ("expert: release at the vase", "PlaceFlower", 0.012, E.PLACE_TOL, "dist"),
    ("expert: release at the holder", "PlaceMarkpen", 0.01, E.PLACE_TOL, "dist"),
    ("expert: pen aligned", "PlaceMarkpen", 0.08, E.PLACE_YAW_TOL, "yaw"),
    ("expert: release at the plate", "IngredientPicking", 0.02, E.PLACE_TOL, "dist"),
    ("success: flower in the vase", "PlaceFlower", 0.03, T.VASE_TOL, "dist"),
    ("success: pen in the holder", "PlaceMarkpen", 0.022, T.PEN_POS_TOL, "dist"),
    ("success: pen aligned", "PlaceMarkpen", 0.2, T.PEN_YAW_TOL, "yaw"),
    ("sweep: debris pushed ahead of the bar", "SweepTrash", 0.018, T.SweepTrash.FRONT, "dist"),
)


def pen_half_length() -> float:
    """The markpen's half-length as drawn, in table units: a yaw error moves its tip this much per rad."""

    prims = object_prims("markpen", COLOR["red"])
    return max(p[1] + p[3] / 2 for p in prims if p[0] == "rect") * OBJECT_DRAW_SCALE


def to_pixels(value: float, unit: str, image_size: int = 64) -> float:
    """A distance (table units) or a yaw (rad, as motion of the pen's tip) in pixels."""
    return value * (pen_half_length() if unit == "yaw" else 1.0) * image_size


def tolerance_table(image_size: int = 64) -> list[dict]:
    """One row per decision: before / now, in table units (or rad) and in pixels."""
    return [{"decision": d, "applies to": where, "before": old, "now": new,
             "before px": round(to_pixels(old, unit, image_size), 2),
             "now px": round(to_pixels(new, unit, image_size), 2)}
            for d, where, old, new, unit in _ROWS]


def format_tolerance_table(image_size: int = 64) -> str:
    rows = tolerance_table(image_size)
    lines = [f"{'decision':38s} {'applies to':18s} {'before':>7s} {'now':>7s} {'before px':>9s} {'now px':>7s}"]
    lines += [f"{r['decision']:38s} {r['applies to']:18s} {r['before']:7.3f} {r['now']:7.3f} {r['before px']:9.2f} "
              f"{r['now px']:7.2f}" for r in rows]
    return "\n".join(lines)
