"""Sensor faults against the safety layer: NaN / inf / non-numeric / missing readings, stale readings
and readings that jump, on a simulated position-controlled arm whose true position we know.

"Uncapped" means a `.pos` target farther than `max_relative_target` from the joint's true position
when it was sent, or from the previous target: the jump the cap exists to prevent.
"""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
from test_robot import Spy

from a1lib.robot import ControlConfig, ControlLoop, SafetyConfig, SafetyLayer

CAP = 5.0
LIMITS = {"shoulder.pos": (-90.0, 90.0), "elbow.pos": (-120.0, 120.0), "gripper.pos": (0.0, 100.0)}
JOINTS = list(LIMITS)
FAULTS = ("nan", "inf", "garbage", "none", "missing", "stale", "jump")


class Arm:
    """Position-controlled joints: each step every joint moves a fraction (``alpha``) of the way to
    its goal; ``alpha = 1`` reaches a capped goal within one control period."""

    action_features = {j: float for j in JOINTS}
    observation_features = {j: float for j in JOINTS}

    def __init__(self, rng: np.random.Generator):
        self.q = {k: float(rng.uniform(lo + 10, hi - 10)) for k, (lo, hi) in LIMITS.items()}
        self.goal = dict(self.q)
        self.sent: list[dict[str, float]] = []

    def send_action(self, action):
        self.sent.append(dict(action))
        self.goal.update(action)
        return dict(action)

    def move(self, alpha: float) -> None:
        for k in JOINTS:
            self.q[k] += alpha * (self.goal[k] - self.q[k])


class FaultySensor:
    """Turns the true position into what a broken driver might report, and counts what it did."""

    def __init__(self, rng, rate, faults=FAULTS, max_stale=5):
        self.rng, self.rate, self.faults, self.max_stale = rng, rate, faults, max_stale
        self.previous: dict | None = None  # last step's reading
        self.frozen: dict | None = None
        self.stale_left = 0
        self.seen = {f: 0 for f in faults}

    def read(self, q: dict[str, float]) -> dict:
        reading: dict = dict(q)
        if self.rng.random() < self.rate:
            fault = self.faults[self.rng.integers(len(self.faults))]
            key = JOINTS[self.rng.integers(len(JOINTS))]
            if fault == "stale":
                if self.previous is not None and self.stale_left == 0:  # the driver keeps handing back
                    self.frozen, self.stale_left = self.previous, int(self.rng.integers(1, self.max_stale + 1))
            elif fault == "nan":
                reading[key] = float("nan")
            elif fault == "inf":
                reading[key] = float(self.rng.choice([np.inf, -np.inf]))
            elif fault == "garbage":
                reading[key] = "ERR"
            elif fault == "none":
                reading[key] = None
            elif fault == "missing":
                del reading[key]
            elif fault == "jump":  # a glitch: from 4 caps to half a turn off
                reading[key] = q[key] + float(self.rng.choice([-1, 1]) * self.rng.uniform(4 * CAP, 180.0))
            self.seen[fault] += fault != "stale"
        self.previous = reading
        if self.stale_left > 0:  # last step's frame, for 1..max_stale steps
            self.stale_left -= 1
            self.seen["stale"] += 1
            return dict(self.frozen)
        return reading


def fuzz(steps: int, seed: int, alpha=(1.0, 1.0), rate=0.25, faults=FAULTS, max_stale=5, bad_actions=0.1):
    """Run the layer for ``steps`` steps; returns (uncapped vs truth, uncapped vs previous target,
    worst distance to the truth, layer, sensor)."""
    rng = np.random.default_rng(seed)
    arm = Arm(rng)
    layer = SafetyLayer(arm, SafetyConfig(limits=LIMITS, max_relative_target=CAP))
    sensor = FaultySensor(rng, rate, faults, max_stale)
    vs_truth = vs_prev = 0
    worst = 0.0
    prev: dict[str, float] = {}
    for _ in range(steps):
        reading = sensor.read(arm.q)
        action = {k: float(rng.normal(arm.q[k], 60.0)) for k in JOINTS}  # mostly far beyond the cap
        if rng.random() < bad_actions:
            action[JOINTS[rng.integers(3)]] = float("nan")
        n_sent = len(arm.sent)
        sent = layer.send(action, reading)
        assert len(arm.sent) == n_sent + bool(sent)
        for k, v in sent.items():
            low, high = LIMITS[k]
            assert math.isfinite(v) and low <= v <= high, (k, v)
            err = abs(v - arm.q[k])
            worst = max(worst, err)
            vs_truth += err > CAP + 1e-9
            vs_prev += k in prev and abs(v - prev[k]) > CAP + 1e-9
        prev.update(sent)
        arm.move(float(rng.uniform(*alpha)))
    return vs_truth, vs_prev, worst, layer, sensor


def test_sensor_fault_fuzz_never_sends_an_uncapped_target():
    steps = 2400
    vs_truth, vs_prev, worst, layer, sensor = fuzz(steps, seed=0)
    c = layer.counters
    print(f"\nsensor fuzz: {steps} steps, faults injected {sensor.seen}; sent {c.sent}, sensor-fault steps "
          f"{c.sensor_faults}, held {c.held}, rate-limited {c.rate_limited}; uncapped vs truth {vs_truth}, "
          f"vs previous target {vs_prev}; worst distance to the true position {worst:.3f} (cap {CAP})")
    assert all(n >= 30 for n in sensor.seen.values()), sensor.seen  # every kind of fault really happened
    assert c.sensor_faults > 300 and c.rate_limited > 1000 and c.sent > 0.9 * steps
    assert vs_truth == 0 and vs_prev == 0 and worst <= CAP + 1e-9


def test_lagging_arm_with_one_step_stale_readings_stays_within_the_cap():
    """An arm that covers only 30-100 % of the way per step: the target is within the cap of both
    the reading and the last target, so a reading one step old cannot open the gap either."""
    vs_truth, vs_prev, worst, layer, sensor = fuzz(2000, seed=1, alpha=(0.3, 1.0), max_stale=1)
    assert sensor.seen["stale"] > 30 and sensor.seen["jump"] > 30
    assert vs_truth == 0 and vs_prev == 0, worst


def test_long_stale_readings_on_a_lagging_arm_are_bounded():
    """A reading frozen for several steps looks like a joint at rest, which nothing can tell apart
    without timestamps; the last-target window still bounds the gap to 2 caps (not 117 degrees)."""
    vs_truth, vs_prev, worst, _, sensor = fuzz(2000, seed=2, alpha=(0.3, 1.0), faults=("stale",), rate=0.3)
    assert sensor.seen["stale"] > 300
    assert vs_prev == 0 and worst <= 2 * CAP + 1e-9
    print(f"\nfrozen readings (up to 5 steps) on a lagging arm: worst gap {worst:.2f} = {worst / CAP:.2f} caps, "
          f"{vs_truth} targets beyond 1 cap")


def test_the_old_hole_nan_reading_and_no_cap():
    """The adversarial report: 5 % NaN readings let 106 of 2,000 commands jump past the cap."""
    vs_truth, vs_prev, worst, layer, _ = fuzz(2000, seed=3, rate=0.05, faults=("nan",), bad_actions=0.0)
    assert vs_truth == 0 and vs_prev == 0 and layer.counters.sensor_faults > 50


def _layer(**kw):
    arm = Arm(np.random.default_rng(0))
    return arm, SafetyLayer(arm, SafetyConfig(limits=LIMITS, max_relative_target=CAP, **kw))


def test_first_hold_with_a_nan_reading_does_not_go_to_zero():
    arm, layer = _layer()
    reading = {**arm.q, "shoulder.pos": float("nan")}
    assert layer.send(None, reading) == {} and arm.sent == []  # nothing known to be safe: nothing sent
    assert layer.hold() == {}
    assert layer.faults == {"shoulder.pos": "not a finite number (nan)"} and layer.counters.sensor_faults == 1


def test_first_reading_must_be_confirmed_and_a_glitch_holds_the_joint():
    arm, layer = _layer()
    q = dict(arm.q)
    want = {k: v + 50.0 for k, v in q.items()}
    assert layer.send(want, dict(q)) == {}  # the first reading is not confirmed yet: nothing moves
    sent = layer.send(want, dict(q))  # confirmed by a second one
    assert sent == {k: pytest.approx(min(v + CAP, LIMITS[k][1])) for k, v in q.items()}
    glitch = {**sent, "elbow.pos": sent["elbow.pos"] + 117.0}  # the arm got there; elbow's encoder glitches
    again = layer.send(want, glitch)
    assert again["elbow.pos"] == sent["elbow.pos"]  # held at its last target
    assert again["shoulder.pos"] == pytest.approx(min(sent["shoulder.pos"] + CAP, 90.0))  # the others move on
    assert "elbow.pos" in layer.faults and "jumped" in layer.faults["elbow.pos"]
    missing = {k: v for k, v in again.items() if k != "gripper.pos"}
    assert layer.send(want, missing)["gripper.pos"] == again["gripper.pos"]
    assert layer.faults == {"gripper.pos": "missing"} and layer.counters.sensor_faults == 2


def test_a_reading_far_from_the_last_target_is_not_trusted():
    arm, layer = _layer(max_reading_jump=1000.0)  # jump check off: the last-target check alone
    q = dict(arm.q)
    layer.send(q, q)
    first = layer.send(q, q)
    moved = {**q, "shoulder.pos": q["shoulder.pos"] + 3 * CAP}
    out = layer.send({**q, "shoulder.pos": moved["shoulder.pos"]}, moved)
    assert out["shoulder.pos"] == first["shoulder.pos"] and "last target" in layer.faults["shoulder.pos"]


def test_velocity_robot_stops_a_joint_whose_position_reading_is_broken():
    class Base:
        action_features = {"x.vel": float}
        observation_features = {"x.pos": float}
        action_limits = {"x.vel": (-1.0, 1.0)}
        workspace = {"x.pos": (0.0, 1.0)}

        def send_action(self, a):
            return a

    layer = SafetyLayer(Base())
    assert layer.send({"x.vel": 0.5}, {"x.pos": 0.5}) == {"x.vel": 0.5}
    assert layer.send({"x.vel": 0.5}, {"x.pos": float("nan")}) == {"x.vel": 0.0}
    assert layer.send({"x.vel": 0.5}, {}) == {"x.vel": 0.0} and layer.counters.sensor_faults == 2


def test_control_loop_estops_when_a_sensor_stays_broken():
    from test_robot import Spy, make_robot

    from a1lib.policy_protocol import RandomPolicy

    class BrokenX(Spy):
        def get_observation(self):
            obs = self.robot.get_observation()
            if len(self.sent) >= 3:
                obs["x.pos"] = float("nan")
            return obs

    spy = BrokenX(make_robot())
    loop = ControlLoop(spy, RandomPolicy(), config=ControlConfig(fps=500, max_steps=50, stop_when_done=False,
                                                                max_sensor_fault_steps=5))
    result = loop.run_episode()
    assert result.estopped and "sensor faults in 5 of the last 8 steps" in result.estop_reason
    assert "x.pos" in result.estop_reason
    assert result.steps == 8 and result.safety.sensor_faults == 5
    assert all(a["x.vel"] == 0.0 for a in spy.sent[3:])  # no trusted x: x stops at once
    assert not spy.robot.is_connected


def test_position_robot_in_the_loop_waits_for_a_confirmed_reading(tmp_path):
    """Step 0 commands no joint (its reading is not confirmed yet); the recording starts at the first
    complete frame, and every later target is within the cap."""
    from a1lib.data import LeRobotDataset
    from a1lib.policy_protocol import RandomPolicy
    from a1lib.robot import EpisodeRecorder, FeatureMapping

    class PosRobot:
        observation_features = {"a.pos": float, "b.pos": float, "front": (64, 64, 3)}
        action_features = {"a.pos": float, "b.pos": float}
        action_limits = {"a.pos": (-1.0, 1.0), "b.pos": (-1.0, 1.0)}
        is_connected = True

        def __init__(self):
            self.q, self.sent = {"a.pos": 0.0, "b.pos": 0.5}, []

        def get_observation(self):
            return {**self.q, "front": np.zeros((64, 64, 3), np.uint8)}

        def send_action(self, action):
            self.sent.append(dict(action))
            self.q.update(action)
            return dict(action)

    robot = PosRobot()
    mapping = FeatureMapping.from_robot(robot)
    recorder = EpisodeRecorder(tmp_path / "rec", mapping, fps=10, robot_type="pos")
    loop = ControlLoop(robot, RandomPolicy(action_dim=2, seed=4), mapping, recorder=recorder,
                       config=ControlConfig(fps=1000, max_steps=12, replan_steps=1, stop_when_done=False),
                       safety=SafetyConfig(max_relative_target=0.1))
    result = loop.run_episode(record=True, task="move")
    assert np.isnan(result.actions[0]).all() and np.isfinite(result.actions[1:]).all()
    assert len(robot.sent) == 12 and result.recorded_frames == 11
    assert robot.sent[-1] == robot.sent[-2]  # the stop at the end: keep the last target
    assert np.abs(np.diff(result.actions[1:], axis=0)).max() <= 0.1 + 1e-6
    recorder.finalize()
    assert len(LeRobotDataset(tmp_path / "rec")) == 11


# ------------------------------------------------------------------ through the control loop
READING_FAULTS = ("none", "nan", "inf", "absurd", "string", "number-string", "array", "missing", "camera-none",
                  "camera-shape")


class FaultyReadings(Spy):
    """Wraps a robot: with probability ``rate`` a step's observation carries one broken reading (the
    kinds a driver can hand back), and counts the steps it broke. Every action sent is kept (``Spy``)."""

    def __init__(self, robot, rng, rate=0.0, camera="front"):
        super().__init__(robot)
        self.rng, self.rate, self.camera = rng, rate, camera
        self.broken_steps, self.seen = 0, {f: 0 for f in READING_FAULTS}

    def get_observation(self):
        obs = self.robot.get_observation()
        if self.rng.random() >= self.rate:
            return obs
        fault = READING_FAULTS[self.rng.integers(len(READING_FAULTS))]
        keys = [k for k in obs if k != self.camera]
        key = keys[self.rng.integers(len(keys))]
        bad = {"none": None, "nan": float("nan"), "inf": float("-inf"), "absurd": 1e300, "string": "ERR",
               "number-string": str(obs[key]), "array": np.array([obs[key]])}
        if fault in bad:
            obs[key] = bad[fault]
        elif fault == "missing":
            del obs[key]
        elif fault == "camera-none":
            obs[self.camera] = None
        else:
            obs[self.camera] = obs[self.camera][:-1]
        self.seen[fault] += 1
        self.broken_steps += 1
        return obs


class CameraArm(Arm):
    """The position-controlled arm, reaching each target at once, with a camera."""

    observation_features = {**{j: float for j in JOINTS}, "front": (16, 16, 3)}
    is_connected = True

    def __init__(self, rng):
        super().__init__(rng)
        self.before: list[dict[str, float]] = []  # the true position when each action was sent

    def get_observation(self):
        return {**self.q, "front": np.zeros((16, 16, 3), np.uint8)}

    def send_action(self, action):
        self.before.append(dict(self.q))
        out = super().send_action(action)
        self.move(1.0)
        return out

    def disconnect(self):
        self.is_connected = False

    def connect(self):
        self.is_connected = True


class Wander:
    """A policy that asks for big moves: targets (or velocities) far beyond the cap, some NaN."""

    def __init__(self, rng, action_dim, scale):
        self.rng, self.action_dim, self.scale = rng, action_dim, scale

    def infer(self, obs):
        base = obs["observation.state"][: self.action_dim] if self.scale > 1 else 0.0
        chunk = base + self.rng.normal(0, self.scale, (4, self.action_dim))
        if self.rng.random() < 0.1:
            chunk[self.rng.integers(4), self.rng.integers(self.action_dim)] = np.nan
        return {"actions": chunk}


def make_loop_robot(kind, rng):
    """(robot wrapped in FaultyReadings, SafetyConfig, cap, policy) for a velocity or position robot."""
    if kind == "velocity":
        from test_robot import make_robot

        robot, cap, scale = make_robot(), 0.2, 1.5
        config = SafetyConfig(max_relative_target=cap)
    else:
        robot, cap, scale = CameraArm(rng), CAP, 60.0
        config = SafetyConfig(limits=LIMITS, max_relative_target=CAP)
    faulty = FaultyReadings(robot, np.random.default_rng(rng.integers(1 << 30)))
    return faulty, config, cap, Wander(np.random.default_rng(rng.integers(1 << 30)), len(robot.action_features), scale)


@pytest.mark.parametrize("kind", ["velocity", "position"])
def test_loop_fuzz_across_episodes_with_reading_faults(kind):
    """Reading faults injected into what the robot returns, through ControlLoop, over 8 episodes;
    in two of them the sensor fails about 9 steps in 10, 1 in 8 in the others. Every
    broken step is counted and held, never raised; the failing episodes trip the e-stop, are
    re-armed, and the run goes on. 0 commands over the cap, episode boundaries included (before
    the fix: a TypeError from the first None, and jumps on every episode's first command)."""
    rng = np.random.default_rng(5)
    robot, safety, cap, policy = make_loop_robot(kind, rng)
    loop = ControlLoop(robot, policy, safety=safety, config=ControlConfig(
        fps=1000, max_steps=100, replan_steps=2, stop_when_done=False, inference_deadline_s=1.0))
    results, faults = [], 0
    for episode in range(8):
        if kind == "position":  # the arm was moved by hand between episodes
            robot.robot.q = {k: v + float(rng.normal(0, 3)) for k, v in robot.robot.q.items()}
        robot.rate = 0.9 if episode in (2, 5) else 0.12
        before = robot.broken_steps
        results.append(loop.run_episode())
        faults += robot.broken_steps - before
        assert results[-1].safety.sensor_faults == robot.broken_steps - before  # every broken step counted
        if results[-1].estopped:
            assert "sensor faults in 10 of the last" in results[-1].estop_reason
            robot.rate = 0.0  # rearm() checks one observation, as on connect
            loop.rearm()
    assert [r.estopped for r in results] == [e in (2, 5) for e in range(8)]
    assert all(n >= 3 for n in robot.seen.values()), robot.seen
    # a velocity changes by at most the cap (stopping is never rate-limited); a position target is
    # at most the cap from where the joint really is (the arm may be moved by hand between episodes)
    refs = robot.robot.before if kind == "position" else [{}] + robot.sent[:-1]
    over = sum(k in ref and not (kind == "velocity" and v == 0.0) and abs(v - ref[k]) > cap + 1e-9
               for ref, a in zip(refs, robot.sent) for k, v in a.items())
    print(f"\nloop fuzz ({kind}): {len(robot.sent)} commands over 8 episodes, {faults} broken steps "
          f"{robot.seen}; e-stops {sum(r.estopped for r in results)}; over the cap: {over}")
    assert over == 0 and len(robot.sent) > 300


def test_a_sensor_that_fails_9_steps_in_10_trips_the_estop():
    """Only faults in a row used to count, so a sensor failing 9 steps in 10 ran forever."""
    from test_robot import make_robot

    from a1lib.policy_protocol import RandomPolicy

    class NineInTen(FaultyReadings):  # once switched on (rate), every step but each tenth is broken
        def __init__(self, robot):
            super().__init__(robot, None)
            self.steps = 0

        def get_observation(self):
            obs = self.robot.get_observation()
            if self.rate:
                self.steps += 1
                if self.steps % 10:
                    obs["x.pos"] = float("nan")
            return obs

    robot = NineInTen(make_robot())
    loop = ControlLoop(robot, RandomPolicy(), config=ControlConfig(fps=1000, max_steps=200, stop_when_done=False))
    robot.rate = 1.0
    result = loop.run_episode()
    assert result.estopped and result.steps == 11 and result.safety.sensor_faults == 10
    assert "sensor faults in 10 of the last 11 steps" in result.estop_reason


def test_an_absurd_but_finite_reading_is_a_counted_fault():
    """1e300 every step was refused but counted as 0 faults, so nobody was told."""
    arm, layer = _layer()
    for _ in range(3):
        assert layer.send(arm.q, {**arm.q, "elbow.pos": 1e300}).get("elbow.pos") is None
    assert layer.counters.sensor_faults == 3 and "outside the plausible range" in layer.faults["elbow.pos"]
    from test_robot import make_robot

    from a1lib.policy_protocol import RandomPolicy

    class Absurd(FaultyReadings):
        def get_observation(self):
            return {**self.robot.get_observation(), **({"x.pos": 1e300} if self.rate else {})}

    robot = Absurd(make_robot(), None)
    loop = ControlLoop(robot, RandomPolicy(), config=ControlConfig(fps=1000, max_steps=50))
    robot.rate = 1.0
    result = loop.run_episode()
    assert result.estopped and result.steps == 10 and result.safety.sensor_faults == 10
    assert "x.pos" in result.estop_reason


def test_estop_latency_is_within_one_control_period():
    """Presses at random moments (waiting for a slow policy, sleeping until the next step, acting):
    the hold is sent within one control period of every press (p100), and no other command after it."""
    from test_robot import ACTION_KEYS, TimedSpy, make_robot

    class Sluggish:  # 0-200 ms per chunk: some steps wait for it, some do not
        def __init__(self, rng):
            self.rng = rng

        def infer(self, obs):
            time.sleep(float(self.rng.uniform(0, 0.2)))
            return {"actions": self.rng.uniform(-1, 1, (4, 5))}

    rng = np.random.default_rng(0)
    fps, latencies = 20.0, []
    for trial in range(12):
        spy = TimedSpy(make_robot())
        loop = ControlLoop(spy, Sluggish(rng), config=ControlConfig(
            fps=fps, max_steps=1000, replan_steps=2, inference_deadline_s=0.5, async_inference=trial % 2 == 1))
        press = threading.Timer(float(rng.uniform(0.05, 0.35)), loop.estop.trigger, ("button",))
        press.start()
        assert loop.run_episode().estopped
        press.join()
        after, times = spy.after(loop.estop.time)
        assert after == [dict.fromkeys(ACTION_KEYS, 0.0)]  # the hold, nothing else
        latencies.append(times[0] - loop.estop.time)
    print(f"\ne-stop latency over {len(latencies)} presses: p50 {1e3 * np.median(latencies):.1f} ms, "
          f"max {1e3 * max(latencies):.1f} ms (control period {1e3 / fps:.0f} ms)")
    assert max(latencies) < 1 / fps
