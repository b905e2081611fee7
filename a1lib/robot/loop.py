"""The control loop: observe, infer (in chunks), make safe, act, record; at a fixed rate.

One step, every ``1/fps`` seconds::

    robot.get_observation()                 # joints + cameras (robot units)
      -> FeatureMapping.observation()       # model image / state (unusable readings: a fault, hold)
      -> frame history                      # adds observation.image_past (frame t - delta)
      -> ChunkBroker.step()                 # one action from the current chunk (or None: hold)
      -> FeatureMapping.to_robot_action()   # model vector -> robot dict
      -> SafetyLayer.send()                 # limits, rate cap, NaN -> hold; the ONLY way to the robot
      -> EpisodeRecorder.add_frame()        # what was seen and what was actually sent

The policy is anything with ``infer(obs) -> {"actions": (H, A)}``: an in-process model, a
``RandomPolicy`` or a ``RemotePolicy`` talking to ``a1 serve``; the loop cannot tell them apart.

Sensor faults: a step whose readings are unusable (``ReadingError`` from the mapping, or a reading
the safety layer cannot trust) is held and counted; ``max_sensor_fault_steps`` such steps among the
last ``sensor_fault_window`` trigger the e-stop, so a sensor that fails now and then stops the
robot too, not only one that fails every step.

Stopping: every episode ends with the hold command (velocities 0, positions keep their last
target), so the next one starts from a standing robot. The e-stop (button, ``EStop.trigger``,
Ctrl-C, or too many sensor faults) pre-empts a step at once, even one waiting for the policy:
it sends the hold command, ends the episode (discarding its frames) and disconnects the robot;
no command follows a press (see ``EStop.sending``). Any other exception also sends the hold
command first, then propagates.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from a1lib.constants import IMAGE, IMAGE_PAST, TASK
from a1lib.policy_protocol import inference_settings
from a1lib.robot.broker import BrokerStats, ChunkBroker
from a1lib.robot.estop import EStop
from a1lib.robot.interface import ReadingError
from a1lib.robot.mapping import FeatureMapping
from a1lib.robot.recording import EpisodeRecorder
from a1lib.robot.safety import SafetyConfig, SafetyCounters, SafetyLayer
from a1lib.robot.timing import RateClock, TimingReport


@dataclass
class ControlConfig:
    fps: float = 10.0
    max_steps: int = 200
    # None: the policy's own inference settings (replan_every, delta: its policy.json or the server's
    # metadata); a value overrides them, and the override is printed
    replan_steps: int | None = None  # re-infer every this many steps (or when the chunk runs out)
    temporal_ensemble: float | None = None  # ACT coefficient m (e.g. 0.01); None: newest chunk only
    async_inference: bool = False  # compute the next chunk while the current one executes
    inference_deadline_s: float = 0.5  # watchdog: later than this -> hold
    delta: int | None = None  # observation.image_past is frame t - delta
    dry_run: bool = False  # compute and show actions, send nothing
    task: str | None = None  # instruction; None: the robot's own (SimRobot.instruction)
    stop_when_done: bool = True  # end the episode when robot.episode_done (SimRobot)
    disconnect_on_estop: bool = True
    # e-stop when this many of the last `sensor_fault_window` steps had a sensor fault (None: never);
    # a window, not a run of steps in a row, so a sensor that fails now and then stops the robot too
    max_sensor_fault_steps: int | None = 10
    sensor_fault_window: int = 20


@dataclass
class EpisodeResult:
    steps: int
    task: str
    timing: TimingReport
    latency_ms: dict[str, float]  # inference latency: mean, p50, p95, max
    broker: BrokerStats
    safety: SafetyCounters
    dry_run: bool
    estopped: bool = False
    estop_reason: str | None = None
    success: bool = False
    recorded_frames: int = 0
    actions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # (T, A) executed / planned
    requested: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # (T, A) policy's, NaN = hold

    def summary(self) -> str:
        t, b, s = self.timing, self.broker, self.safety
        lines = [
            f"{'DRY RUN ' if self.dry_run else ''}{self.steps} steps at {t.achieved_hz:.2f} Hz "
            f"(target {t.target_hz:g}); "
            f"overruns {t.overruns} (worst {t.worst_overrun_ms:.1f} ms); busy {t.mean_step_ms:.1f} ms/step",
            f"inference: {b.inferences} chunks, latency mean {self.latency_ms['mean']:.1f} ms, "
            f"p95 {self.latency_ms['p95']:.1f} ms; watchdog trips {b.watchdog_trips}, errors {b.errors}, "
            f"bad chunks {b.bad_chunks}, stale {b.stale_chunks}",
            f"safety: sent {s.sent}, held {s.held}, non-finite {s.nonfinite}, clipped {s.clipped}, "
            f"rate-limited {s.rate_limited}, workspace {s.workspace}, sensor faults {s.sensor_faults}",
        ]
        if self.estopped:
            lines.append(f"E-STOP ({self.estop_reason}): robot held and disconnected; episode not recorded")
        elif self.recorded_frames:
            lines.append(f"recorded {self.recorded_frames} frames")
        return "\n".join(lines)


def _latency_stats(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ms = 1e3 * np.asarray(latencies_s)
    return {"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)), "max": float(ms.max())}


def connect_and_check(robot: Any, mapping: FeatureMapping | None = None, **mapping_kw: Any) -> FeatureMapping:
    """Connect ``robot`` (if needed), build the identity mapping if none is given, validate it
    against the robot's features and one real observation. Returns the mapping."""
    if not robot.is_connected:
        robot.connect()
    mapping = mapping or FeatureMapping.from_robot(robot, **mapping_kw)
    mapping.validate(robot)
    mapping.observation(robot.get_observation())  # cameras really deliver what the features promise
    return mapping


class ControlLoop:
    def __init__(
        self,
        robot: Any,
        policy: Any,
        mapping: FeatureMapping | None = None,
        config: ControlConfig | None = None,
        safety: SafetyConfig | None = None,
        estop: EStop | None = None,
        recorder: EpisodeRecorder | None = None,
        on_step: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.robot, self.policy = robot, policy
        self.config = config or ControlConfig()
        k, n = self.config.max_sensor_fault_steps, self.config.sensor_fault_window
        if k and not 1 <= k <= n:
            raise ValueError(f"max_sensor_fault_steps ({k}) must be between 1 and sensor_fault_window ({n})")
        self.mapping = connect_and_check(robot, mapping)
        self._safety = SafetyLayer(robot, safety)  # private: the loop's only path to send_action
        self.estop = estop or EStop()
        self.recorder, self.on_step = recorder, on_step
        own = inference_settings(policy)
        changes = {k: v for k, v in (("replan_every", self.config.replan_steps), ("delta", self.config.delta))
                   if v is not None}
        self.settings = own.overridden("ControlLoop", **changes) if changes else own
        self.broker = ChunkBroker(
            policy, self.mapping.action_dim, replan_steps=self.settings.replan_every,
            temporal_ensemble=self.config.temporal_ensemble, async_inference=self.config.async_inference,
            deadline_s=self.config.inference_deadline_s, interrupt=self.estop,
        )
        self._done: threading.Event | None = None  # set by the background episode when it ends
        self._result: EpisodeResult | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ one episode
    def run_episode(self, max_steps: int | None = None, task: str | None = None, record: bool = False,
                    dry_run: bool | None = None) -> EpisodeResult:
        """Run one episode (``max_steps``, or until the robot reports it done / the e-stop).
        ``dry_run`` overrides ``config.dry_run`` for this episode."""
        cfg = self.config if dry_run is None else replace(self.config, dry_run=dry_run)
        if record and self.recorder is None:
            raise ValueError("record=True needs an EpisodeRecorder (ControlLoop(..., recorder=...))")
        if record and cfg.dry_run:
            raise ValueError("a dry run sends nothing, so there is nothing to record")
        if self.estop.triggered:
            raise RuntimeError(f"the e-stop is latched ({self.estop.reason}): once the robot is safe, "
                               "call loop.rearm() (reconnects the robot and re-arms the e-stop)")
        if not self.robot.is_connected:
            raise RuntimeError("robot is disconnected: connect it, or call loop.rearm() after an e-stop")
        task = task or cfg.task or str(getattr(self.robot, "instruction", ""))
        max_steps = cfg.max_steps if max_steps is None else max_steps
        self.broker.reset()
        self.broker.stats = BrokerStats()
        self._safety.counters = SafetyCounters()
        self._safety.reset()  # targets and readings of the last episode say nothing about this one
        if hasattr(self.policy, "reset"):
            self.policy.reset()
        history: deque[np.ndarray] = deque(maxlen=self.settings.delta + 1)  # frames t-delta .. t
        fault_steps: deque[bool] = deque(maxlen=cfg.sensor_fault_window)  # had a sensor fault, per step
        clock = RateClock(cfg.fps)
        executed, requested = [], []
        recorded, recording = 0, False
        try:
            for t in range(max_steps):
                if self.estop.triggered:
                    break
                clock.start_step()
                raw = self.robot.get_observation()
                try:
                    obs, faults = self.mapping.observation(raw), {}  # image(s) + state for the policy
                except ReadingError as e:
                    obs, faults = None, e.faults  # nothing to show the policy: hold, count the fault
                action = None
                if obs is not None:
                    history.append(obs[IMAGE])
                    policy_obs = {**obs, IMAGE_PAST: history[0], TASK: task}  # history[0]: frame max(0, t-delta)
                    action = self.broker.step(t, policy_obs)  # (A,) model units, or None: hold
                want = None if action is None else self.mapping.to_robot_action(action)
                if cfg.dry_run:
                    sent, _ = self._safety.filter(want, raw, faults)  # what *would* be sent
                else:
                    with self.estop.sending() as armed:  # a press now waits for this send: none after it
                        if not armed:
                            break
                        sent = self._safety.send(want, raw, faults)
                executed.append(self.mapping.to_model_action(sent))  # NaN: joint not commanded
                requested.append(np.full(self.mapping.action_dim, np.nan) if action is None else action)
                fault_steps.append(bool(self._safety.faults))
                self._check_sensors(cfg, fault_steps)
                if record and obs is not None:  # a step without usable readings is not recorded
                    frame = dict(self.mapping.observation(raw, normalize=False))
                    frame["action"] = executed[-1]
                    # Before the first confirmed reading a joint is left uncommanded (NaN): the
                    # recording starts at the first complete frame (no gap in its timestamps).
                    recording |= bool(np.isfinite(frame["action"]).all())
                    if recording:
                        self.recorder.add_frame(frame)
                if self.on_step is not None:  # observation None: the readings were unusable
                    self.on_step({"step": t, "action": executed[-1], "held": action is None, "observation": obs})
                if cfg.stop_when_done and getattr(self.robot, "episode_done", False):
                    break
                clock.wait(self.estop.wait)  # a press ends the sleep
        except KeyboardInterrupt:
            self.estop.trigger("KeyboardInterrupt")
        except BaseException:
            if not cfg.dry_run:
                self._stop()
            if record:
                self.recorder.discard_episode()
            raise
        if self.estop.triggered:
            self._emergency_stop()
            if record:
                self.recorder.discard_episode()
        else:
            if not cfg.dry_run:
                self._stop()
            if record:
                recorded = self.recorder.save_episode(task)
        b = self.broker.stats
        return EpisodeResult(
            steps=len(executed), task=task, timing=clock.report(), latency_ms=_latency_stats(b.latencies_s),
            broker=b, safety=self._safety.counters, dry_run=cfg.dry_run, estopped=self.estop.triggered,
            estop_reason=self.estop.reason, success=bool(getattr(self.robot, "success", False)),
            recorded_frames=recorded,
            actions=np.asarray(executed, np.float32).reshape(-1, self.mapping.action_dim),
            requested=np.asarray(requested, np.float64).reshape(-1, self.mapping.action_dim),
        )

    def _check_sensors(self, cfg: ControlConfig, fault_steps: deque[bool]) -> None:
        """Sensors that keep failing, in a row or now and then, are not a glitch: stop the robot
        and say which one."""
        k, n = cfg.max_sensor_fault_steps, sum(fault_steps)
        if k and n >= k and not self.estop.triggered:
            self.estop.trigger(f"sensor faults in {n} of the last {len(fault_steps)} steps: {self._safety.faults}")

    def _stop(self) -> None:
        """The end of every episode: velocities 0, positions keep their last target."""
        if self.robot.is_connected:
            self._safety.hold()

    def _emergency_stop(self) -> None:
        try:
            self._stop()  # also after a dry run: whatever the robot was doing, stop it
        finally:
            if self.config.disconnect_on_estop and self.robot.is_connected:
                self.robot.disconnect()

    def rearm(self) -> str | None:
        """After an e-stop, once the robot and its surroundings are safe: reconnect the robot (and
        check it again) and re-arm the e-stop. Returns why the e-stop was latched (None if it was
        not). The loop never re-arms itself: this is the operator's decision."""
        if self.running:
            raise RuntimeError("an episode is running")
        reason = self.estop.reason if self.estop.triggered else None
        if not self.robot.is_connected:
            connect_and_check(self.robot, self.mapping)
        self.estop.reset()
        return reason

    # ------------------------------------------------------------------ background run (notebooks)
    def start(self, **kwargs: Any) -> "ControlLoop":
        """Run ``run_episode(**kwargs)`` in a background thread (the e-stop button stays live)."""
        if self.running:
            raise RuntimeError("an episode is already running")
        self._result, self._error = None, None
        done = self._done = threading.Event()

        def work() -> None:
            try:
                self._result = self.run_episode(**kwargs)
            except BaseException as e:  # noqa: BLE001 (handed to wait())
                self._error = e
            finally:
                done.set()

        threading.Thread(target=work, name="control-loop", daemon=True).start()
        return self

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.is_set()

    def wait(self, timeout: float | None = None) -> EpisodeResult | None:
        """Wait for the background episode; Ctrl-C (a kernel interrupt) here triggers the e-stop and
        waits for the episode to end (within one control period). None if still running.

        Waits on an event the worker sets, not ``Thread.join``: an interrupted join can mark a
        thread that is still running as finished."""
        if self._done is None:
            raise RuntimeError("nothing started: call start() first")
        end = None if timeout is None else time.monotonic() + timeout
        while not self._done.is_set():
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                self._done.wait(left)
            except KeyboardInterrupt:
                self.estop.trigger("KeyboardInterrupt")
                end = None  # the episode ends now: wait for it
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        """Finish: finalize the recording and disconnect the robot (safe to call twice)."""
        if self.running:
            self.estop.trigger("close")
            self._done.wait()
        if self.recorder is not None:
            self.recorder.finalize()
        if self.robot.is_connected:
            self.robot.disconnect()
