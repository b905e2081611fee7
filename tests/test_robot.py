"""The robot side: protocol, mapping validation, safety under fuzzed policies, watchdog, e-stop,
chunk broker, recording, and the real-time rate. Uses a tiny fake env (no dependency on the sim);
tests against the real sim are in test_robot_sim.py."""

import math
import signal
import threading
import time

import numpy as np
import pytest

from a1lib.constants import IMAGE, IMAGE_PAST, STATE
from a1lib.policy_protocol import RandomPolicy
from a1lib.robot import (
    ChunkBroker,
    ControlConfig,
    ControlLoop,
    EStop,
    FeatureMapping,
    Robot,
    RobotError,
    SafetyConfig,
    SafetyLayer,
    SimRobot,
    SimRobotConfig,
    make_lerobot_robot,
)

STATE_NAMES = ["x", "y", "yaw", "lift", "grip"]
ACTION_NAMES = ["vx", "vy", "vyaw", "lift", "grip"]
ACTION_KEYS = ["x.vel", "y.vel", "yaw.vel", "lift.vel", "grip.vel"]


class FakeEnv:
    """A point on a table: state integrates the velocity command; the image encodes the state."""

    def __init__(self, size=64, max_steps=10_000):
        self.size, self.max_steps = size, max_steps
        self.unwrapped = self
        self.instruction = "move the point"

    def _obs(self):
        img = np.zeros((self.size, self.size, 3), np.uint8)
        img[..., 0] = int(255 * np.clip(self.state[0], 0, 1))
        img[..., 1] = self.t % 256
        return {"image": img, "state": self.state.astype(np.float32)}

    def reset(self, seed=None):
        self.state, self.t = np.array([0.5, 0.5, 0.0, 0.0, 0.0]), 0
        return self._obs(), {}

    def step(self, action):
        assert action.shape == (5,) and np.all(np.abs(action) <= 1.0)
        self.state = self.state + 0.05 * action.astype(np.float64)
        self.t += 1
        return self._obs(), 0.0, False, self.t >= self.max_steps, {"success": False}

    def close(self):
        pass


def make_robot(realtime=False, fps=10.0, max_steps=10_000):
    cfg = SimRobotConfig(fps=fps, realtime=realtime)
    return SimRobot(cfg, env_factory=lambda c: FakeEnv(c.image_size, max_steps), state_names=STATE_NAMES,
                    action_names=ACTION_NAMES)


class Spy:
    """Wraps a robot and keeps every action that reaches send_action."""

    def __init__(self, robot):
        self.robot, self.sent = robot, []

    def __getattr__(self, name):
        return getattr(self.robot, name)

    @property
    def is_connected(self):
        return self.robot.is_connected

    def send_action(self, action):
        self.sent.append(dict(action))
        return self.robot.send_action(action)


# ------------------------------------------------------------------ interface and mapping
def test_lerobot_missing_gives_install_hint():
    with pytest.raises(ImportError, match="pip install lerobot"):
        make_lerobot_robot(object())


def test_simrobot_speaks_the_lerobot_api():
    robot = make_robot()
    assert isinstance(robot, Robot)
    assert list(robot.action_features) == ACTION_KEYS
    assert robot.observation_features["front"] == (64, 64, 3)
    assert robot.observation_features["x.pos"] is float
    robot.connect()
    obs = robot.get_observation()
    assert obs["front"].dtype == np.uint8 and obs["front"].shape == (64, 64, 3)
    assert obs["x.pos"] == pytest.approx(0.5)
    sent = robot.send_action({k: 5.0 for k in ACTION_KEYS})  # the drive clamps too
    assert all(v == 1.0 for v in sent.values())
    assert robot.get_observation()["x.pos"] == pytest.approx(0.55)
    robot.disconnect()
    assert not robot.is_connected
    with pytest.raises(RobotError, match="not connected"):
        robot.get_observation()


def test_mapping_validation_names_every_problem():
    robot = make_robot()
    robot.connect()
    good = FeatureMapping.from_robot(robot)
    good.validate(robot)
    assert good.state_keys == tuple(f"{n}.pos" for n in STATE_NAMES) and good.action_keys == tuple(ACTION_KEYS)
    with pytest.raises(RobotError, match="'z.pos' missing"):
        FeatureMapping(state_keys=("x.pos", "z.pos"), action_keys=("x.vel",)).validate(robot)
    with pytest.raises(RobotError, match=r"gives \(64, 64, 3\) but the model expects \(96, 96, 3\)"):
        FeatureMapping(image_shape=(96, 96, 3), state_keys=("x.pos",), action_keys=("x.vel",)).validate(robot)
    with pytest.raises(RobotError, match="camera 'wrist'"):
        FeatureMapping(cameras={IMAGE: "wrist"}, state_keys=("x.pos",), action_keys=("x.vel",)).validate(robot)
    # the robot reports yaw in rad; a model trained in degrees needs the matching scale
    deg = FeatureMapping(state_keys=("yaw.pos",), action_keys=("x.vel",), model_units={"yaw.pos": "deg"})
    with pytest.raises(RobotError, match=r"unit mismatch.*rad.*deg.*57\.29"):
        deg.validate(robot)
    deg.scale["yaw.pos"] = 180 / math.pi
    deg.validate(robot)
    robot.disconnect()


def test_mapping_converts_units_and_resizes():
    m = FeatureMapping(image_shape=(32, 32, 3), resize=True, state_keys=("a.pos",), action_keys=("a.pos",),
                       scale={"a.pos": math.pi / 180}, model_units={"a.pos": "rad"})
    obs = m.observation({"a.pos": 90.0, "front": np.zeros((48, 64, 3), np.uint8)})
    assert obs[IMAGE].shape == (32, 32, 3) and obs[STATE][0] == pytest.approx(math.pi / 2)
    assert m.to_robot_action(np.array([math.pi]))["a.pos"] == pytest.approx(180.0)
    assert m.to_model_action({"a.pos": 180.0})[0] == pytest.approx(math.pi)


# ------------------------------------------------------------------ safety under fuzzing
class FuzzPolicy:
    """Every call returns a different kind of bad (or good) answer, seeded."""

    def __init__(self, seed, horizon=4, action_dim=5):
        self.rng, self.h, self.a = np.random.default_rng(seed), horizon, action_dim
        self.kinds = []

    def infer(self, obs):
        kind = self.rng.integers(9)
        self.kinds.append(int(kind))
        chunk = self.rng.normal(0, 3, (self.h, self.a))
        if kind == 0:
            chunk[self.rng.integers(self.h), self.rng.integers(self.a)] = np.nan
        elif kind == 1:
            chunk[:, self.rng.integers(self.a)] = self.rng.choice([np.inf, -np.inf])
        elif kind == 2:
            chunk *= 10.0 ** self.rng.integers(3, 300)
        elif kind == 3:
            chunk = self.rng.normal(size=(self.h, self.a + int(self.rng.integers(1, 3))))  # wrong width
        elif kind == 4:
            chunk = self.rng.normal(size=(self.a,))  # no horizon axis
        elif kind == 5:
            return {"not_actions": chunk}
        elif kind == 6:
            return {"actions": "garbage"}
        elif kind == 7:
            raise RuntimeError("policy crashed")
        return {"actions": chunk}  # 8: huge-ish normal values


def test_fuzzed_policy_outputs_never_leave_the_limits():
    limits = {"lift.vel": (-0.5, 0.5)}
    cap = 0.4
    safety = SafetyConfig(limits=limits, max_relative_target=cap, workspace={"x.pos": (0.3, 0.7)})
    spy = Spy(make_robot())
    policy = FuzzPolicy(seed=0)
    cfg = ControlConfig(fps=2000, max_steps=600, replan_steps=1, inference_deadline_s=1.0, stop_when_done=False)
    loop = ControlLoop(spy, policy, config=cfg, safety=safety)
    result = loop.run_episode()
    assert result.steps == 600 and len(spy.sent) == 601  # and the stop at the end
    assert all(v == 0.0 for v in spy.sent[-1].values()) and result.safety.stops == 1
    assert set(policy.kinds) == set(range(9))
    checked, prev = 0, {k: 0.0 for k in ACTION_KEYS}
    for action in spy.sent:
        assert set(action) == set(ACTION_KEYS)
        for k, v in action.items():
            low, high = limits.get(k, (-1.0, 1.0))
            assert math.isfinite(v) and low <= v <= high, (k, v)
            # a step changes each value by at most the cap; stopping (velocity 0) is never delayed
            assert v == 0.0 or abs(v - prev[k]) <= cap + 1e-9
            checked += 1
        prev = action
    assert checked == 601 * 5
    s, b = result.safety, result.broker
    assert s.nonfinite > 0 and s.clipped > 0 and s.rate_limited > 0 and s.held > 0
    assert b.bad_chunks > 0 and b.errors > 0
    print(f"\nfuzz: {len(policy.kinds)} policy answers, {len(spy.sent)} actions / {checked} values sent, "
          "all in limits; "
          f"held {s.held}, non-finite {s.nonfinite}, clipped {s.clipped}, rate-limited {s.rate_limited}, "
          f"bad chunks {b.bad_chunks}, errors {b.errors}")


def test_safety_layer_fuzzed_dicts_position_robot():
    """A position-controlled arm (LeRobot style): clip, cap relative to the measured position and the
    last target, hold. The arm reaches each goal (plus encoder noise); sensor faults: test_safety_fuzz.py."""

    class Arm:
        action_features = {"shoulder.pos": float, "gripper.pos": float}
        observation_features = {"shoulder.pos": float, "gripper.pos": float}

        def send_action(self, a):
            return a

    rng = np.random.default_rng(1)
    layer = SafetyLayer(Arm(), SafetyConfig(limits={"shoulder.pos": (-90, 90), "gripper.pos": (0, 100)},
                                            max_relative_target=5.0))
    bad = [np.nan, np.inf, -np.inf, "x", None, 1e300, -1e300]
    pos = {"shoulder.pos": 10.0, "gripper.pos": 50.0}
    n = 0
    for _ in range(1000):
        present = {k: v + float(rng.normal(0, 0.3)) for k, v in pos.items()}
        action = {k: float(rng.normal(0, 200)) for k in present}
        if rng.random() < 0.3:
            action[rng.choice(list(present))] = bad[rng.integers(len(bad))]
        if rng.random() < 0.05:
            action.pop("gripper.pos")
        held_before, last = layer.counters.held, dict(layer.last_sent)
        sent = layer.send(action, present)
        for k, v in sent.items():
            low, high = layer.limits[k]
            assert low <= v <= high
            if layer.counters.held == held_before:  # not a hold: within the cap of the reading and last target
                assert abs(v - present[k]) <= 5.0 + 1e-9 and abs(v - last.get(k, v)) <= 5.0 + 1e-9
            else:
                assert v == last[k]
        pos.update(sent)
        n += 1
    assert n == 1000 and layer.counters.nonfinite > 200 and layer.counters.rate_limited > 500
    assert layer.counters.sensor_faults == 0
    # hold keeps the last safe target, whatever the reading says
    before = dict(layer.last_sent)
    assert layer.send({"shoulder.pos": np.nan, "gripper.pos": 1.0}, None) == before


def test_safety_needs_a_limit_for_every_key():
    class NoLimits:
        action_features = {"elbow.pos": float}

    with pytest.raises(RobotError, match="no limit for action key 'elbow.pos'"):
        SafetyLayer(NoLimits())


# ------------------------------------------------------------------ watchdog, e-stop, dry run
def test_stalled_policy_trips_the_watchdog_and_holds():
    spy = Spy(make_robot())
    cfg = ControlConfig(fps=20, max_steps=8, inference_deadline_s=0.1, stop_when_done=False)
    loop = ControlLoop(spy, RandomPolicy(latency_s=5.0), config=cfg)
    t0 = time.perf_counter()
    result = loop.run_episode()
    assert time.perf_counter() - t0 < 2.0  # the loop did not wait for the 5 s inference
    assert result.broker.watchdog_trips == 1 and result.safety.held == 8
    assert all(v == 0.0 for a in spy.sent for v in a.values())  # velocities held at 0


def test_estop_from_button_holds_and_disconnects():
    spy = Spy(make_robot(realtime=True, fps=50))
    estop = EStop()
    button = estop.widget()
    assert button is not None and button.description == "E-STOP"
    cfg = ControlConfig(fps=50, max_steps=1000, stop_when_done=False)
    loop = ControlLoop(spy, RandomPolicy(), config=cfg, estop=estop)
    loop.start()
    time.sleep(0.2)
    assert loop.running
    button.click()  # what a click in the notebook does
    result = loop.wait(timeout=5)
    assert result is not None and result.estopped and result.estop_reason == "button"
    assert not spy.robot.is_connected
    assert all(v == 0.0 for v in spy.sent[-1].values())  # the last command was the hold
    assert result.steps < 1000


def test_ctrl_c_is_an_estop():
    spy = Spy(make_robot())

    def on_step(info):
        if info["step"] == 3:
            raise KeyboardInterrupt

    loop = ControlLoop(spy, RandomPolicy(), config=ControlConfig(fps=100, max_steps=50), on_step=on_step)
    result = loop.run_episode()
    assert result.estopped and result.estop_reason == "KeyboardInterrupt" and result.steps == 4
    assert not spy.robot.is_connected and all(v == 0.0 for v in spy.sent[-1].values())


def test_dry_run_sends_nothing():
    spy = Spy(make_robot())
    loop = ControlLoop(spy, RandomPolicy(), config=ControlConfig(fps=200, max_steps=10, dry_run=True))
    result = loop.run_episode()
    assert spy.sent == [] and result.actions.shape == (10, 5) and np.abs(result.actions).max() > 0
    assert result.safety.sent == 0


# ------------------------------------------------------------------ broker
class StepPolicy:
    """Chunk value = the step it was asked at + the index inside the chunk (so = the target step)."""

    def __init__(self, horizon=6, latency_s=0.0):
        self.h, self.latency_s, self.calls, self.obs = horizon, latency_s, 0, []

    def infer(self, obs):
        time.sleep(self.latency_s)
        self.obs.append(obs)
        step = float(obs["step"])
        self.calls += 1
        return {"actions": (step + np.arange(self.h))[:, None] * np.ones((1, 2))}


def test_broker_replans_and_indexes_chunks_by_their_start():
    p = StepPolicy()
    b = ChunkBroker(p, action_dim=2, replan_steps=3)
    got = [b.step(t, {"step": t})[0] for t in range(9)]
    assert got == list(range(9)) and p.calls == 3


def test_broker_temporal_ensemble_weights_older_predictions():
    class Biased:  # chunk from step s predicts s + i + s (so overlapping chunks disagree)
        def infer(self, obs):
            s = obs["step"]
            return {"actions": (2.0 * s + np.arange(4))[:, None]}

    m = 0.5
    b = ChunkBroker(Biased(), action_dim=1, replan_steps=1, temporal_ensemble=m)
    out = [b.step(t, {"step": t})[0] for t in range(3)]
    # step 2 is covered by chunks from steps 0, 1, 2 predicting 2, 3, 4 (oldest first)
    w = np.exp(-m * np.arange(3))
    assert out[2] == pytest.approx((w * np.array([2.0, 3.0, 4.0])).sum() / w.sum())


def test_async_inference_keeps_acting_while_the_next_chunk_is_computed():
    def run(async_inference):
        p = StepPolicy(horizon=10, latency_s=0.12)
        b = ChunkBroker(p, action_dim=2, replan_steps=4, async_inference=async_inference, deadline_s=1.0)
        held, t0 = 0, time.perf_counter()
        for t in range(16):
            a = b.step(t, {"step": t})
            held += a is None
            if a is not None:
                assert a[0] == t  # chunks are indexed by their observation step, even when late
            time.sleep(0.05)
        return held, time.perf_counter() - t0

    held_sync, dur_sync = run(False)
    held_async, dur_async = run(True)
    assert held_async == 0 and held_sync == 0
    assert dur_async < dur_sync - 0.2  # sync blocked ~0.12 s at each of the 4 replans


def test_image_past_is_frame_t_minus_delta():
    seen = []

    class Peek:
        def infer(self, obs):
            seen.append((obs[IMAGE][0, 0, 1], obs[IMAGE_PAST][0, 0, 1]))
            return {"actions": np.zeros((1, 5), np.float32)}

        def reset(self):
            pass

    loop = ControlLoop(make_robot(), Peek(), config=ControlConfig(fps=500, max_steps=9, replan_steps=1, delta=3))
    loop.run_episode()
    # the fake env writes its step counter into the green channel: the frame at step t shows t
    assert seen == [(t, max(0, t - 3)) for t in range(9)]


# ------------------------------------------------------------------ rate
def test_simrobot_runs_at_its_configured_rate():
    robot = make_robot(realtime=True, fps=10)
    loop = ControlLoop(robot, RandomPolicy(), config=ControlConfig(fps=10, max_steps=16, stop_when_done=False))
    result = loop.run_episode()
    loop.close()
    print(f"\nlocal RandomPolicy: {result.timing.achieved_hz:.2f} Hz, overruns {result.timing.overruns}, "
          f"inference p95 {result.latency_ms['p95']:.2f} ms; sim stepped {robot.steps} times")
    assert result.timing.achieved_hz == pytest.approx(10, rel=0.1)
    assert robot.steps == pytest.approx(16, abs=3)  # the world advanced in real time too


# ------------------------------------------------------------------ recording
def test_interrupted_recording_leaves_a_readable_dataset(tmp_path):
    from a1lib.data import LeRobotDataset
    from a1lib.robot import EpisodeRecorder

    robot = make_robot()
    robot.connect()
    mapping = FeatureMapping.from_robot(robot)
    recorder = EpisodeRecorder(tmp_path / "lab", mapping, fps=10, robot_type=robot.robot_type)
    crash_at = {"episode": 2, "step": 4}
    episode = {"i": 0}

    def on_step(info):
        if episode["i"] == crash_at["episode"] and info["step"] == crash_at["step"]:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the third episode

    loop = ControlLoop(robot, RandomPolicy(seed=3), mapping, ControlConfig(fps=500, max_steps=7),
                       recorder=recorder, on_step=on_step)
    results = []
    for i in range(3):
        episode["i"] = i
        results.append(loop.run_episode(record=True, task="move the point"))
    assert [r.recorded_frames for r in results] == [7, 7, 0] and results[2].estopped
    assert not robot.is_connected
    # no finalize(): the process could have died here; the two finished episodes are on disk
    ds = LeRobotDataset(tmp_path / "lab")
    assert ds.num_episodes == 2 and len(ds) == 14
    frame = ds[8]
    assert frame["observation.image"].shape == (64, 64, 3)
    assert np.allclose(frame["action"], results[1].actions[1], atol=1e-6)  # what was actually sent
    assert ds.task_of(0) == "move the point"


# ------------------------------------------------------------------ e-stop timing, re-arming, episode ends
class TimedSpy(Spy):
    """A Spy that also keeps when (time.time(), as EStop.time) each action was sent."""

    def __init__(self, robot):
        super().__init__(robot)
        self.times = []

    def send_action(self, action):
        self.times.append(time.time())
        return super().send_action(action)

    def after(self, t):
        return [a for a, ts in zip(self.sent, self.times) if ts >= t], [ts for ts in self.times if ts >= t]


class SlowAfterFirst:
    """Answers the first call at once, then takes ``latency_s`` (a policy server that stalls)."""

    def __init__(self, latency_s, value=0.5):
        self.latency_s, self.value, self.calls = latency_s, value, 0
        self.stalled = threading.Event()

    def infer(self, obs):
        self.calls += 1
        if self.calls > 1:
            self.stalled.set()
            time.sleep(self.latency_s)
        return {"actions": np.full((4, 5), self.value)}


def test_estop_preempts_a_step_waiting_for_the_policy():
    """The adversarial report: with a 5 s deadline a capped motion command went out 1.9 s after the
    press. Now the hold follows within one control period, and nothing else does."""
    spy = TimedSpy(make_robot())
    policy = SlowAfterFirst(latency_s=3.0)
    cfg = ControlConfig(fps=20, max_steps=100, replan_steps=2, inference_deadline_s=5.0, stop_when_done=False)
    loop = ControlLoop(spy, policy, config=cfg, safety=SafetyConfig(max_relative_target=0.2))
    press = threading.Thread(target=lambda: policy.stalled.wait(5) and (time.sleep(0.1), loop.estop.trigger("button")))
    press.start()
    t0 = time.perf_counter()
    result = loop.run_episode()
    press.join()
    assert result.estopped and time.perf_counter() - t0 < 1.0
    assert any(v != 0 for a in spy.sent for v in a.values())  # it was moving before the press
    after, times = spy.after(loop.estop.time)
    assert after == [dict.fromkeys(ACTION_KEYS, 0.0)]  # the hold, and nothing else
    assert times[0] - loop.estop.time < 1 / cfg.fps


def test_kernel_interrupt_while_waiting_is_a_clean_estop():
    """Notebook 10: an interrupted Thread.join() marks the running worker as finished, so wait()
    returned None (AttributeError: 'NoneType' has no attribute 'summary'). wait() now waits on an
    event the worker sets, and returns the e-stopped episode."""
    spy = Spy(make_robot())
    loop = ControlLoop(spy, RandomPolicy(), config=ControlConfig(fps=50, max_steps=500, stop_when_done=False))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    interrupt = threading.Timer(0.3, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT))
    try:
        loop.start()
        interrupt.start()
        result = loop.wait()
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped loop.wait()")
    finally:
        interrupt.join()
        signal.signal(signal.SIGINT, previous)
    assert result is not None and result.estopped and result.estop_reason == "KeyboardInterrupt"
    assert "E-STOP (KeyboardInterrupt)" in result.summary() and not loop.running
    assert not spy.robot.is_connected and all(v == 0.0 for v in spy.sent[-1].values())


def test_latched_estop_says_how_to_rearm():
    robot, estop = make_robot(), EStop()
    loop = ControlLoop(robot, RandomPolicy(), config=ControlConfig(fps=500, max_steps=5), estop=estop,
                       on_step=lambda info: info["step"] == 2 and estop.trigger("button"))
    assert loop.run_episode().estopped and not robot.is_connected
    loop.on_step = None
    with pytest.raises(RuntimeError, match=r"e-stop is latched \(button\).*loop\.rearm\(\)"):
        loop.run_episode()
    assert loop.rearm() == "button" and robot.is_connected and not loop.estop.triggered
    result = loop.run_episode()
    assert result.steps == 5 and not result.estopped
    assert loop.rearm() is None  # nothing latched: nothing to do


def test_every_episode_ends_with_a_stop_and_the_next_is_rate_limited_from_it():
    """The adversarial report: a velocity robot at -1.0 at the end of episode 1 got +0.2 as the first
    command of episode 2 (a jump of 1.2 against a cap of 0.2), and nothing stopped it in between."""

    class Constant:
        def __init__(self):
            self.value = -1.0

        def infer(self, obs):
            return {"actions": np.full((4, 5), self.value)}

    spy, policy = Spy(make_robot()), Constant()
    loop = ControlLoop(spy, policy, config=ControlConfig(fps=500, max_steps=8, stop_when_done=False),
                       safety=SafetyConfig(max_relative_target=0.2))
    loop.run_episode()
    assert spy.sent[-2]["x.vel"] == pytest.approx(-1.0) and spy.sent[-1]["x.vel"] == 0.0  # reached, then stopped
    policy.value = 1.0
    loop.run_episode()
    assert spy.sent[9]["x.vel"] == pytest.approx(0.2)  # from the stop, not from -1.0
    for prev, a in zip(spy.sent, spy.sent[1:]):
        assert all(v == 0.0 or abs(v - prev[k]) <= 0.2 + 1e-9 for k, v in a.items())


def test_readings_must_be_real_numbers():
    """Decided: a joint reading is an int, a float or a NumPy scalar. A string ("5.0"), a bool or an
    array (even of one element) is a driver bug: a fault of that step, never parsed or unwrapped."""
    from a1lib.robot.interface import ReadingError, finite_number

    assert [finite_number(v) for v in (5, 5.0, np.float32(5), np.int64(5))] == [5.0] * 4
    assert all(finite_number(v) is None for v in ("5.0", np.array([5.0]), np.array(5.0), True, None, np.nan,
                                                   -np.inf, 10 ** 400, [5.0]))
    m = FeatureMapping(image_shape=(8, 8, 3), state_keys=("a.pos", "b.pos", "c.pos"), action_keys=("a.pos",))
    good = {"a.pos": 1.0, "b.pos": np.float32(2.0), "c.pos": 3, "front": np.zeros((8, 8, 3), np.uint8)}
    assert m.observation(good)[STATE].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ReadingError) as err:
        m.observation({**good, "a.pos": "5.0", "b.pos": np.array([2.0]), "c.pos": 1e300, "front": None})
    assert set(err.value.faults) == {"a.pos", "b.pos", "c.pos", "front"}
    assert "'5.0'" in err.value.faults["a.pos"] and "float32" in err.value.faults["c.pos"]
    assert isinstance(err.value, RobotError)
