"""Scene question answering on hand-built scenes: correctness and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from a1lib.data.scene_qa import TEMPLATES, qa_corpus, qa_pairs, sample_qa, typed_qa_pairs
from a1lib.sim.world import COLOR, KIND, MAX_OBJECTS


def make_scene(objects, held=-1, motion=(0.0, 0.0), prefix="scene."):
    """objects: list of (kind name, colour name, x, y); padded to MAX_OBJECTS with -1."""
    kind = np.full(MAX_OBJECTS, -1, np.int64)
    color = np.full(MAX_OBJECTS, -1, np.int64)
    pose = np.full((MAX_OBJECTS, 3), -1, np.float32)
    for i, (k, c, x, y) in enumerate(objects):
        kind[i], color[i], pose[i] = KIND[k], COLOR[c], (x, y, 0.0)
    return {
        f"{prefix}kind": kind,
        f"{prefix}color": color,
        f"{prefix}pose": pose,
        f"{prefix}held": np.array([held], np.int64),
        f"{prefix}motion": np.array(motion, np.float32),
    }


def answers(scene, seed=0, **kw):
    """question template key -> answer, over all pairs (paraphrases mapped back to their key)."""
    out = {}
    for key, q, a in typed_qa_pairs(scene, np.random.default_rng(seed), **kw):
        assert key in TEMPLATES and key not in out
        out[key] = (q, a)
    assert [(q, a) for q, a in out.values()] == qa_pairs(scene, np.random.default_rng(seed), **kw)
    return out


SORT_PARTS = [
    ("bin", "red", 0.2, 0.85), ("bin", "blue", 0.8, 0.85),
    ("bolt", "red", 0.15, 0.3), ("nut", "blue", 0.85, 0.45), ("gear", "red", 0.5, 0.2),
]
EXPRESS = [
    ("conveyor", "black", 0.5, 0.2), ("bin", "red", 0.17, 0.8), ("bin", "green", 0.5, 0.8), ("bin", "blue", 0.83, 0.8),
    ("parcel", "green", 0.4, 0.21), ("parcel", "red", -0.2, 0.19),  # the red one is not on screen yet
]
PICKING = [
    ("turntable", "grey", 0.5, 0.36), ("plate", "white", 0.5, 0.83),
    ("tomato", "red", 0.6, 0.3), ("lemon", "yellow", 0.4, 0.4), ("carrot", "orange", 0.5, 0.5),
]


def test_held_and_counts_on_sort_parts():
    a = answers(make_scene(SORT_PARTS))
    assert a["held"][1] == "nothing" and a["holding_any"][1] == "no"
    assert a["count_all"][1] == "five"
    q, ans = a["count_color"]
    colour = q.split()[2]
    assert ans == {"red": "three", "blue": "two"}.get(colour, "zero"), q
    a = answers(make_scene(SORT_PARTS, held=3))
    assert a["held"][1] == "blue nut" and a["holding_any"][1] == "yes"


def test_colour_of_unique_kind_only():
    for seed in range(20):
        q, ans = answers(make_scene(SORT_PARTS), seed)["color_of"]
        kind = q.replace("what colour is the ", "").replace("what is the colour of the ", "").rstrip("?")
        assert kind in ("bolt", "nut", "gear") and ans == {"bolt": "red", "nut": "blue", "gear": "red"}[kind]


def test_where_answers_and_skips_ambiguous():
    seen = {}
    for seed in range(40):
        a = answers(make_scene(SORT_PARTS), seed)
        q, ans = a["where"]
        seen[q.split("the ", 1)[1].rstrip("?")] = ans
    assert seen.get("red bolt", "left") == "left"  # x 0.15: far left
    assert seen.get("blue nut", "right") == "right"
    assert seen.get("red gear", "top") == "top"  # y 0.2 with y pointing down
    assert seen.get("red bin", "bottom") == "bottom"  # (0.2, 0.85): |dy| 0.35 beats |dx| 0.3
    assert len(seen) >= 4  # the subject really varies with the seed
    near_diagonal = make_scene([("gear", "red", 0.8, 0.79)])
    assert all("where" not in answers(near_diagonal, s) for s in range(10))
    centre = make_scene([("gear", "red", 0.52, 0.47)])
    assert answers(centre)["where"][1] == "middle"


def test_belt_questions_and_invisible_objects():
    a = answers(make_scene(EXPRESS, motion=(0.15, 0.0)))
    assert a["color_on_belt"][1] == "green"  # the off-screen red parcel is not on the belt in view
    assert a["belt_moving"][1] == "yes"
    assert "turntable_direction" not in a
    assert a["count_all"][1] == "four"  # 3 bins + 1 visible parcel; the conveyor is a surface
    assert answers(make_scene(EXPRESS, motion=(0.0, 0.0)))["belt_moving"][1] == "no"
    a = answers(make_scene(EXPRESS, held=4, motion=(0.1, 0.0)))
    assert a["held"][1] == "green parcel" and "color_on_belt" not in a  # held parcel is off the belt
    assert "belt_moving" not in answers(make_scene(SORT_PARTS, motion=(0.3, 0.0)))  # no belt in view


def test_turntable_direction():
    assert answers(make_scene(PICKING, motion=(0.0, 0.7)))["turntable_direction"][1] == "clockwise"
    assert answers(make_scene(PICKING, motion=(0.0, -0.5)))["turntable_direction"][1] == "anticlockwise"
    assert answers(make_scene(PICKING))["turntable_direction"][1] == "not turning"
    assert all("turntable" not in q for q, _ in qa_pairs(make_scene(PICKING, motion=(0, 1)), 0, include_motion=False))


def test_answers_short_and_in_corpus():
    corpus = set(qa_corpus())
    for objects in (SORT_PARTS, EXPRESS, PICKING):
        for seed in range(15):
            for q, a in qa_pairs(make_scene(objects, held=2, motion=(0.1, 0.5)), seed):
                assert 1 <= len(a.split()) <= 3, (q, a)
                assert q in corpus and a in corpus, (q, a)


def test_determinism_and_unprefixed_keys():
    scene = make_scene(PICKING, held=3, motion=(0.0, 0.4))
    assert qa_pairs(scene, 7) == qa_pairs(scene, 7)
    assert [sample_qa(scene, s) for s in range(30)] == [sample_qa(scene, s) for s in range(30)]
    assert len({sample_qa(scene, s) for s in range(30)}) > 3
    assert qa_pairs(make_scene(PICKING, held=3, motion=(0.0, 0.4), prefix=""), 7) == qa_pairs(scene, 7)
    q, a = sample_qa(scene, np.random.default_rng(1))  # a Generator works as well as a seed
    assert isinstance(q, str) and q.endswith("?") and a
    with pytest.raises(KeyError, match="kind"):
        qa_pairs({"scene.color": np.zeros(3)}, 0)
