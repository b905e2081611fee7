"""Tests of a1lib.sim: Gymnasium conformance, determinism, experts, task rules, domains, scene."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import a1lib.sim as sim
from a1lib.sim import DYNAMIC_TASKS, SCENE_FEATURES, STATIC_TASKS, TASKS, make_env
from a1lib.sim.record import record_expert_episode
from a1lib.sim.tasks import UNSCREW_TURNS

DOMAINS = ("sim", "lab", "human")


def test_registry_and_vocab():
    assert len(TASKS) == 10 and len(STATIC_TASKS) == 8 and len(DYNAMIC_TASKS) == 2
    assert set(DYNAMIC_TASKS) == {"ExpressSorting", "IngredientPicking"}
    assert sim.ACTION_DIM == len(sim.ACTION_NAMES) == 5
    assert sim.STATE_DIM == len(sim.STATE_NAMES)
    for name in TASKS:
        assert f"a1lib/{name}-v0" in gym.registry
        assert len(TASKS[name].templates) >= 3


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("domain", DOMAINS)
def test_check_env(task, domain):
    env = gym.make(f"a1lib/{task}-v0", domain=domain, image_size=32)
    check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=0)
    assert obs["image"].shape == (32, 32, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (sim.STATE_DIM,) and obs["state"].dtype == np.float32
    assert info["success"] is False
    assert env.render().shape == (32, 32, 3)
    env.close()


def _frames(task, domain, seed, n=15, **kw):
    env = make_env(task, domain, **kw)
    obs, _ = env.reset(seed=seed)
    imgs, states = [obs["image"]], [obs["state"]]
    for _ in range(n):
        obs, *_ = env.step(env.expert_action())
        imgs.append(obs["image"])
        states.append(obs["state"])
    return np.stack(imgs), np.stack(states), env.unwrapped.instruction


@pytest.mark.parametrize("domain", DOMAINS)
def test_determinism(domain):
    a = _frames("ExpressSorting", domain, 7)
    b = _frames("ExpressSorting", domain, 7)
    c = _frames("ExpressSorting", domain, 8)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes() and a[2] == b[2]
    assert a[0].tobytes() != c[0].tobytes()
    # a reused env gives the same bytes as a fresh one
    env = make_env("ExpressSorting", domain)
    env.reset(seed=3)
    for _ in range(5):
        env.step(env.action_space.sample())
    obs, _ = env.reset(seed=7)
    assert obs["image"].tobytes() == a[0][0].tobytes()


@pytest.mark.parametrize("task", list(TASKS))
def test_expert_succeeds(task):
    for domain in ("sim", "lab"):
        ok = [record_expert_episode(task, domain, s).success for s in range(8)]
        assert all(ok), (task, domain, ok)


def test_record_episode_contract():
    r = record_expert_episode("PlaceFlower", "lab", 3, image_size=48, wrist_camera=True)
    T = len(r)
    assert r.success and 5 < T <= TASKS["PlaceFlower"].step_limit
    assert r.images.shape == (T, 48, 48, 3) and r.images.dtype == np.uint8
    assert r.wrist_images.shape == (T, 48, 48, 3)
    assert r.states.shape == (T, sim.STATE_DIM) and r.states.dtype == np.float32
    assert r.actions.shape == (T, sim.ACTION_DIM) and r.actions.dtype == np.float32
    assert np.all(np.abs(r.actions) <= 1.0)
    for name, f in SCENE_FEATURES.items():
        assert r.scene[name].shape == (T, *f["shape"]) and str(r.scene[name].dtype) == f["dtype"]
    assert r.instruction and "flower" in r.instruction
    # the recorded action is the expert's command before lab noise: replaying the env reproduces it
    env = make_env("PlaceFlower", "lab", image_size=48)
    env.reset(seed=3)
    assert np.array_equal(env.expert_action(), r.actions[0])


def test_scene_matches_features():
    for task in TASKS:
        env = make_env(task, "sim")
        env.reset(seed=1)
        sc = env.scene()
        assert set(sc) == set(SCENE_FEATURES)
        for name, f in SCENE_FEATURES.items():
            assert sc[name].shape == tuple(f["shape"]) and str(sc[name].dtype) == f["dtype"], name
        n = int((sc["scene.kind"] >= 0).sum())
        assert 2 <= n <= sim.MAX_OBJECTS
        assert np.all(sc["scene.kind"][n:] == -1) and np.all(sc["scene.pose"][n:] == -1)
        assert np.all(sc["scene.color"][:n] < len(sim.COLOR_NAMES))
        assert np.all(sc["scene.kind"][:n] < len(sim.KIND_NAMES))
    env = make_env("ExpressSorting", "sim", belt_speed=0.15)
    env.reset(seed=0)
    assert np.isclose(env.scene()["scene.motion"][0], 0.15)
    env = make_env("IngredientPicking", "sim", turntable_speed=0.7)
    env.reset(seed=0)
    assert np.isclose(env.scene()["scene.motion"][1], 0.7)


def test_instruction_names_the_objects():
    texts = set()
    for seed in range(6):
        env = make_env("SortParts", "sim")
        env.reset(seed=seed)
        sc = env.scene()
        bins = [sim.COLOR_NAMES[c] for k, c in zip(sc["scene.kind"], sc["scene.color"])
                if k == sim.KIND_NAMES.index("bin")]
        assert len(bins) == 2 and all(b in env.instruction for b in bins), (env.instruction, bins)
        texts.add(env.instruction.replace(bins[0], "C").replace(bins[1], "C"))
        env = make_env("IngredientPicking", "sim")
        env.reset(seed=seed)
        assert sim.KIND_NAMES[env.world.kind[env.task.target]] in env.instruction
    assert len(texts) >= 2  # paraphrases are drawn per episode


def _grasp_cap(env):
    for _ in range(30):
        env.step(env.expert_action())
        if env.world.held == env.task.cap:
            return
    raise AssertionError("expert did not grasp the cap")


def test_unscrew_needs_turning_while_holding():
    # holding without turning, then lifting: the cap slips, never succeeds
    env = make_env("UnscrewCap", "sim")
    env.reset(seed=2)
    _grasp_cap(env)
    for _ in range(20):
        _, _, term, trunc, info = env.step(np.array([0, 0, 0, 1, 1], np.float32))
    assert not info["success"] and env.world.held == -1 and env.task.turned == 0.0
    # turning without holding (fingers open, low): nothing unscrews
    env.reset(seed=2)
    _grasp_cap(env)
    env.step(np.array([0, 0, 0, -1, -1], np.float32))  # open: release
    for _ in range(40):
        _, _, term, trunc, info = env.step(np.array([0, 0, -1, -1, -1], np.float32))
    assert env.task.turned == 0.0 and not info["success"]
    # turning less than the needed turns, then lifting: fails
    env.reset(seed=2)
    _grasp_cap(env)
    steps = int(0.8 * UNSCREW_TURNS * 2 * math.pi / 0.4)
    for _ in range(steps):
        env.step(np.array([0, 0, -1, -1, 1], np.float32))
    assert 0 < env.task.turned < UNSCREW_TURNS * 2 * math.pi
    for _ in range(5):
        _, _, term, trunc, info = env.step(np.array([0, 0, 0, 1, 1], np.float32))
    assert not info["success"]
    # the expert (turn >= 2 full turns while holding, then lift) succeeds
    env.reset(seed=2)
    for _ in range(TASKS["UnscrewCap"].step_limit):
        _, _, term, trunc, info = env.step(env.expert_action())
        if term or trunc:
            break
    assert info["success"] and env.task.turned >= UNSCREW_TURNS * 2 * math.pi


def test_lab_latency_one_step():
    env = make_env("PlaceFlower", "lab")
    env.reset(seed=0)
    x0 = env.world.x
    env.step(np.array([1, 0, 0, 0, 0], np.float32))
    x1 = env.world.x
    env.step(np.zeros(5, np.float32))
    x2 = env.world.x
    assert abs(x1 - x0) < 0.01  # only action noise moved it
    assert x2 - x1 > 0.04  # the first action took effect one step late
    env = make_env("PlaceFlower", "sim")
    env.reset(seed=0)
    x0 = env.world.x
    env.step(np.array([1, 0, 0, 0, 0], np.float32))
    assert env.world.x - x0 > 0.05


def test_human_domain_draws_a_hand():
    robot = make_env("SortParts", "sim")
    human = make_env("SortParts", "human")
    a, _ = robot.reset(seed=5)
    b, _ = human.reset(seed=5)
    assert a["image"].tobytes() != b["image"].tobytes()
    skin = np.array([225, 172, 140], dtype=np.int32)
    # the hand's skin colour appears near the gripper in the human domain
    r, c = human.renderer.px(human.world.x, human.world.y)
    patch = b["image"][max(r - 5, 0):r + 6, max(c - 5, 0):c + 6].astype(np.int32)
    assert (np.abs(patch - skin).sum(-1) < 90).sum() >= 3


def test_gripper_drawing_shows_lift_and_grip():
    env = make_env("PlaceFlower", "sim", image_size=64)
    env.reset(seed=0)
    up = env.renderer.render(env.world, env.task)[0]
    env.world.lift = 0.0
    down = env.renderer.render(env.world, env.task)[0]
    env.world.grip = 1.0
    closed = env.renderer.render(env.world, env.task)[0]
    assert up.tobytes() != down.tobytes() and down.tobytes() != closed.tobytes()


def test_motion_blind_expert_is_worse():
    # Measured on 40 seeds (sim): ExpressSorting 100% vs 30% blind, IngredientPicking 100% vs 72.5%. Since
    # the legible tolerances (grasps trigger at 1.6 px, not 1.3) a blind grab on the turntable succeeds
    # more often than before (it was <= 70% on 10 seeds): motion still matters there, by less.
    for task in DYNAMIC_TASKS:
        full = [record_expert_episode(task, "sim", s).success for s in range(20)]
        blind = [record_expert_episode(task, "sim", s, motion_blind=True).success for s in range(20)]
        assert np.mean(full) >= 0.9 and np.mean(blind) <= np.mean(full) - 0.25, (task, full, blind)


def test_belt_speed_varies_and_override():
    speeds = set()
    for s in range(5):
        env = make_env("ExpressSorting", "sim")
        env.reset(seed=s)
        speeds.add(round(float(env.scene()["scene.motion"][0]), 4))
    assert len(speeds) == 5
    env = make_env("ExpressSorting", "sim", belt_speed=0.0)
    env.reset(seed=0)
    p0 = env.scene()["scene.pose"].copy()
    env.step(np.zeros(5, np.float32))
    assert np.allclose(env.scene()["scene.pose"], p0)


def test_image_size_configurable_and_bad_input():
    env = make_env("WipeStain", "sim", image_size=96, wrist_camera=True)
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (96, 96, 3) and obs["wrist_image"].shape == (96, 96, 3)
    with pytest.raises(ValueError, match="domain"):
        make_env("WipeStain", "mars")
    with pytest.raises(ValueError, match="task"):
        make_env("MakeCoffee", "sim")
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(4, np.float32))


def test_wipe_stain_fades_where_wiped():
    env = make_env("WipeStain", "sim")
    env.reset(seed=1)
    before = env.task.remaining()
    for _ in range(30):
        env.step(env.expert_action())
    assert env.task.remaining() < before


def test_every_episode_stores_its_task():
    """The task is stored with each frame (scene.task, an index into TASKS), so training on some tasks
    (TrainConfig.tasks) never parses it back from the instruction, which has many phrasings."""
    from a1lib.sim.tasks import TASK_IDS

    assert sorted(TASK_IDS.values()) == list(range(len(TASKS)))
    for task in TASKS:
        env = make_env(task, "lab")
        env.reset(seed=0)
        assert list(env.scene()["scene.task"]) == [TASK_IDS[task]]


@pytest.mark.parametrize("task,key", [("ExpressSorting", "belt_speed"), ("IngredientPicking", "turntable_speed")])
def test_a_speed_override_changes_the_speed_and_nothing_else(task, key):
    """The explorer's "what if": the same seed at another speed is the same scene (objects, bins, the
    gripper, the instruction), moving at that speed."""
    scenes = []
    for speed in (None, 0.05, 0.25):
        env = make_env(task, "lab", **({} if speed is None else {key: speed}))
        env.reset(seed=3)
        scenes.append((env.scene(), env.instruction, env.unwrapped.world.state()))
    (base, text, state), *others = scenes
    for (scene, other_text, other_state), speed in zip(others, (0.05, 0.25)):
        assert other_text == text and np.array_equal(other_state, state)
        for k in ("scene.kind", "scene.color", "scene.pose"):
            np.testing.assert_array_equal(scene[k], base[k])
        assert scene["scene.motion"][0 if key == "belt_speed" else 1] == pytest.approx(speed)
