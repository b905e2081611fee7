"""Scene question answering: understanding targets derived from the privileged scene description.

InternVLA-A1's understanding expert is a VLM that keeps its visual-question-answering skills
through co-training on image/text data. Our stand-in for that data: every frame stores the
privileged scene arrays the simulator knows (``scene.kind``, ``scene.color``, ``scene.pose``,
``scene.held``, ``scene.motion``), and from them we generate short question/answer pairs:

    "what colour is the parcel on the belt?"        -> "red"
    "what is the gripper holding?"                   -> "nothing" / "green bolt"
    "how many red objects are there?"                -> "two"
    "where is the blue bin?"                         -> "left" / "right" / "top" / "bottom" / "middle"
    "is the belt moving?"                            -> "yes" / "no"
    "which way is the turntable turning?"            -> "clockwise" / "anticlockwise" / "not turning"

Only questions whose answer is visible are asked: objects whose centre lies outside the table
square (parcels not yet on screen, ones that fell off the belt) are invisible and ignored; a
"where" question is skipped when the object sits near a diagonal or the border of the middle
region (the answer would be a coin flip for a human too). The two motion questions need two
frames (the policy sees frame t-delta and t); ``include_motion=False`` drops them for a
single-image setting.

The answers are 1-3 words. ``qa_pairs`` lists one pair per applicable question type (the subject
of each, e.g. which colour to count, is drawn with ``rng``); ``sample_qa`` picks one pair; both
are deterministic given the seed. ``qa_corpus`` enumerates every question and answer string that
can ever be produced (for the text tokenizer's vocabulary).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from a1lib.sim.tasks import ExpressSorting, IngredientPicking
from a1lib.sim.world import COLOR_NAMES, KIND_NAMES

NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
# Surfaces and marks, not objects one would count or pick up.
FIXTURE_KINDS = ("conveyor", "turntable", "stain")
MIDDLE = 0.12  # |x-0.5| and |y-0.5| both below this: "middle"
MARGIN = 0.04  # ambiguity margin around the middle border and the diagonals
MOTION_EPS = 1e-6

# Question templates (paraphrases); {kind}, {color}, {thing} are filled in.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "held": ("what is the gripper holding?", "what does the gripper hold?"),
    "holding_any": ("is the gripper holding something?", "is anything in the gripper?"),
    "color_of": ("what colour is the {kind}?", "what is the colour of the {kind}?"),
    "color_on_belt": ("what colour is the parcel on the belt?", "which colour is the parcel on the conveyor?"),
    "count_color": ("how many {color} objects are there?", "how many {color} things are on the table?"),
    "count_all": ("how many objects are there?", "how many things are on the table?"),
    "exists_kind": ("is there a {kind} on the table?", "can you see a {kind}?"),
    "where": ("where is the {thing}?", "in which part of the table is the {thing}?"),
    "belt_moving": ("is the belt moving?", "is the conveyor running?"),
    "turntable_direction": ("which way is the turntable turning?", "in which direction does the turntable rotate?"),
}


def _vocab(kind_names: Sequence[str] | None, color_names: Sequence[str] | None) -> tuple[list[str], list[str]]:
    if kind_names is None or color_names is None:
        kind_names = KIND_NAMES if kind_names is None else kind_names
        color_names = COLOR_NAMES if color_names is None else color_names
    return [k.replace("_", " ") for k in kind_names], list(color_names)


def _geometry() -> tuple[float, float]:
    """(half height of the conveyor band, turntable radius) from the sim's task definitions."""
    return (ExpressSorting.BAND[1] - ExpressSorting.BAND[0]) / 2, float(IngredientPicking.RADIUS)


def _get(scene: dict[str, Any], name: str) -> np.ndarray:
    for key in (f"scene.{name}", name):
        if key in scene:
            return np.asarray(scene[key])
    raise KeyError(f"scene has no {name!r} (nor 'scene.{name}'); has {sorted(scene)}")


def _number(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def _where(x: float, y: float) -> str | None:
    """left / right / top / bottom / middle, or None when the answer would be ambiguous."""
    dx, dy = x - 0.5, y - 0.5
    m = max(abs(dx), abs(dy))
    if m < MIDDLE - MARGIN:
        return "middle"
    if m < MIDDLE + MARGIN or abs(abs(dx) - abs(dy)) < MARGIN:
        return None
    if abs(dx) > abs(dy):
        return "right" if dx > 0 else "left"
    return "bottom" if dy > 0 else "top"  # y points down


def qa_pairs(
    scene: dict[str, Any],
    rng: np.random.Generator | int | None = None,
    kind_names: Sequence[str] | None = None,
    color_names: Sequence[str] | None = None,
    include_motion: bool = True,
) -> list[tuple[str, str]]:
    """One (question, answer) pair per question type that applies to this scene."""
    return [(q, a) for _, q, a in typed_qa_pairs(scene, rng, kind_names, color_names, include_motion)]


def typed_qa_pairs(
    scene: dict[str, Any],
    rng: np.random.Generator | int | None = None,
    kind_names: Sequence[str] | None = None,
    color_names: Sequence[str] | None = None,
    include_motion: bool = True,
) -> list[tuple[str, str, str]]:
    """Like ``qa_pairs`` with the question type (a TEMPLATES key) first: (type, question, answer)."""
    rng = np.random.default_rng(rng)
    kinds_v, colors_v = _vocab(kind_names, color_names)
    band_half, table_radius = _geometry()
    kind, color, pose = (_get(scene, "kind").reshape(-1), _get(scene, "color").reshape(-1),
                         _get(scene, "pose").reshape(-1, 3))
    held = int(_get(scene, "held").reshape(-1)[0])
    try:
        motion = _get(scene, "motion").reshape(-1)
    except KeyError:
        motion = None

    # Visible objects: a real slot whose centre is on the table square.
    visible = [
        i for i in range(len(kind))
        if kind[i] >= 0 and 0.0 <= pose[i, 0] <= 1.0 and 0.0 <= pose[i, 1] <= 1.0
    ]
    kname = {i: kinds_v[kind[i]] for i in visible}
    cname = {i: colors_v[color[i]] if color[i] >= 0 else None for i in visible}
    things = [i for i in visible if kname[i] not in FIXTURE_KINDS]

    def phrase(template_key: str, **fill: str) -> tuple[str, str]:
        options = TEMPLATES[template_key]
        return template_key, options[int(rng.integers(len(options)))].format(**fill)

    def name(i: int) -> str:
        return f"{cname[i]} {kname[i]}" if cname[i] else kname[i]

    pairs: list[tuple[str, str, str]] = []

    # What is held (a held object is drawn over the gripper, so its colour shows).
    holding = held >= 0 and held in visible
    pairs.append((*phrase("held"), name(held) if holding else "nothing"))
    pairs.append((*phrase("holding_any"), "yes" if holding else "no"))

    # Colour of a kind that appears exactly once (with a colour).
    by_kind: dict[str, list[int]] = {}
    for i in visible:
        by_kind.setdefault(kname[i], []).append(i)
    unique_kinds = sorted(k for k, idx in by_kind.items() if len(idx) == 1 and cname[idx[0]] and k not in FIXTURE_KINDS)
    if unique_kinds:
        k = unique_kinds[int(rng.integers(len(unique_kinds)))]
        pairs.append((*phrase("color_of", kind=k), cname[by_kind[k][0]]))

    # Colour of the single parcel lying on the belt.
    conveyors = by_kind.get("conveyor", [])
    if conveyors:
        belt_y = pose[conveyors[0], 1]
        on_belt = [i for i in by_kind.get("parcel", [])
                   if i != held and abs(pose[i, 1] - belt_y) <= band_half and cname[i]]
        if len(on_belt) == 1:
            pairs.append((*phrase("color_on_belt"), cname[on_belt[0]]))

    # Counting: a colour drawn from all colours (absent ones answer "zero").
    c = colors_v[int(rng.integers(len(colors_v)))]
    if rng.random() < 0.7:  # mostly ask about a colour that is there
        present = sorted({cname[i] for i in things if cname[i]})
        if present:
            c = present[int(rng.integers(len(present)))]
    pairs.append((*phrase("count_color", color=c), _number(sum(cname[i] == c for i in things))))
    pairs.append((*phrase("count_all"), _number(len(things))))

    # Existence of a kind (present or absent).
    candidates = [k for k in kinds_v if k not in FIXTURE_KINDS]
    k = candidates[int(rng.integers(len(candidates)))]
    present_kinds = sorted({kname[i] for i in things})
    if present_kinds and rng.random() < 0.5:
        k = present_kinds[int(rng.integers(len(present_kinds)))]
    pairs.append((*phrase("exists_kind", kind=k), "yes" if k in present_kinds else "no"))

    # Where is a uniquely named thing (colour + kind), when the answer is not ambiguous.
    names = [name(i) for i in things]
    located = [(names[j], _where(pose[i, 0], pose[i, 1])) for j, i in enumerate(things) if names.count(names[j]) == 1]
    located = sorted((n, a) for n, a in located if a is not None)
    if located:
        n, a = located[int(rng.integers(len(located)))]
        pairs.append((*phrase("where", thing=n), a))

    # Motion (needs two frames to see): only when the moving surface is in view.
    if include_motion and motion is not None:
        if conveyors:
            pairs.append((*phrase("belt_moving"), "yes" if abs(motion[0]) > MOTION_EPS else "no"))
        if by_kind.get("turntable"):
            w = float(motion[1])  # positive = clockwise on screen (y points down)
            answer = "not turning" if abs(w) <= MOTION_EPS else ("clockwise" if w > 0 else "anticlockwise")
            pairs.append((*phrase("turntable_direction"), answer))
    return pairs


def sample_qa(
    scene: dict[str, Any],
    seed_or_rng: np.random.Generator | int | None = None,
    kind_names: Sequence[str] | None = None,
    color_names: Sequence[str] | None = None,
    include_motion: bool = True,
) -> tuple[str, str]:
    """One (question, answer) pair, uniformly over the applicable question types."""
    rng = np.random.default_rng(seed_or_rng)
    pairs = qa_pairs(scene, rng, kind_names, color_names, include_motion)
    return pairs[int(rng.integers(len(pairs)))]


def qa_corpus(kind_names: Sequence[str] | None = None, color_names: Sequence[str] | None = None) -> list[str]:
    """Every question and answer string ``qa_pairs`` can produce (for the text tokenizer)."""
    kinds_v, colors_v = _vocab(kind_names, color_names)
    things = list(kinds_v) + [f"{c} {k}" for c in colors_v for k in kinds_v]
    fills: dict[str, Iterable[dict[str, str]]] = {
        "color_of": [{"kind": k} for k in kinds_v],
        "count_color": [{"color": c} for c in colors_v],
        "exists_kind": [{"kind": k} for k in kinds_v],
        "where": [{"thing": t} for t in things],
    }
    lines = []
    for key, options in TEMPLATES.items():
        for template in options:
            for fill in fills.get(key, [{}]):
                lines.append(template.format(**fill))
    answers = ["nothing", "yes", "no", "left", "right", "top", "bottom", "middle", "clockwise",
               "anticlockwise", "not turning", *NUMBER_WORDS, *colors_v, *things]
    return lines + answers
