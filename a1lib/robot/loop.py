"""The control loop: observe, infer (in chunks), make safe, act, record; at a fixed rate.

One step, every ``1/fps`` seconds::

    robot.get_observation()                 # joints + cameras (robot units)
      -> FeatureMapping.observation()       # model image / state
      -> frame history                      # adds observation.image_past (frame t - delta)
      -> ChunkBroker.step()                 # one action from the current chunk (or None: hold)
      -> FeatureMapping.to_robot_action()   # model vector -> robot dict
      -> SafetyLayer.send()                 # limits, rate cap, NaN -> hold; the ONLY way to the robot
      -> EpisodeRecorder.add_frame()        # what was seen and what was actually sent

The policy is anything with ``infer(obs) -> {"actions": (H, A)}``: an in-process model, a
``RandomPolicy`` or a ``RemotePolicy`` talking to ``a1 serve``; the loop cannot tell them apart.

Stopping: the e-stop (button, ``EStop.trigger``, Ctrl-C, or a sensor fault that lasts
``max_sensor_fault_steps``) sends the hold command, ends the episode (discarding its frames) and
disconnects the robot. Any other exception also sends the
hold command first, then propagates.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np

from a1lib.constants import IMAGE, IMAGE_PAST, STATE, TASK
from a1lib.robot.broker import BrokerStats, ChunkBroker
from a1lib.robot.estop import EStop
from a1lib.robot.mapping import FeatureMapping
from a1lib.robot.recording import EpisodeRecorder
from a1lib.robot.safety import SafetyConfig, SafetyCounters, SafetyLayer
from a1lib.robot.timing import RateClock, TimingReport


@dataclass
class ControlConfig:
    fps: float = 10.0
    max_steps: int = 200
    replan_steps: int = 5  # re-infer every this many steps (or when the chunk runs out)
    temporal_ensemble: float | None = None  # ACT coefficient m (e.g. 0.01); None: newest chunk only
    async_inference: bool = False  # compute the next chunk while the current one executes
    inference_deadline_s: float = 0.5  # watchdog: later than this -> hold
    delta: int = 5  # observation.image_past is frame t - delta
    dry_run: bool = False  # compute and show actions, send nothing
    task: str | None = None  # instruction; None: the robot's own (SimRobot.instruction)
    stop_when_done: bool = True  # end the episode when robot.episode_done (SimRobot)
    disconnect_on_estop: bool = True
    max_sensor_fault_steps: int | None = 10  # this many steps in a row with a sensor fault -> e-stop


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
            f"{'DRY RUN ' if self.dry_run else ''}{self.steps} steps at {t.achieved_hz:.2f} Hz (target {t.target_hz:g}); "
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

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("actions"), d.pop("requested")
        return d


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
        self.mapping = connect_and_check(robot, mapping)
        self._safety = SafetyLayer(robot, safety)  # private: the loop's only path to send_action
        self.estop = estop or EStop()
        self.recorder, self.on_step = recorder, on_step
        self.broker = ChunkBroker(
            policy, self.mapping.action_dim, replan_steps=self.config.replan_steps,
            temporal_ensemble=self.config.temporal_ensemble, async_inference=self.config.async_inference,
            deadline_s=self.config.inference_deadline_s,
        )
        self._thread: threading.Thread | None = None
        self._result: EpisodeResult | None = None
        self._error: BaseException | None = None

    @property
    def safety_counters(self) -> SafetyCounters:
        return self._safety.counters

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
        if not self.robot.is_connected:
            raise RuntimeError("robot is disconnected (after an e-stop: reconnect and build a new ControlLoop)")
        task = task or cfg.task or str(getattr(self.robot, "instruction", ""))
        max_steps = cfg.max_steps if max_steps is None else max_steps
        self.broker.reset()
        self.broker.stats = BrokerStats()
        self._safety.counters = SafetyCounters()
        self._safety.reset()  # targets and readings of the last episode say nothing about this one
        if hasattr(self.policy, "reset"):
            self.policy.reset()
        history: deque[np.ndarray] = deque(maxlen=cfg.delta + 1)  # frames t-delta .. t
        clock = RateClock(cfg.fps)
        executed, requested = [], []
        raw: dict[str, Any] | None = None
        recorded, recording = 0, False
        try:
            for t in range(max_steps):
                if self.estop.triggered:
                    break
                clock.start_step()
                raw = self.robot.get_observation()
                obs = self.mapping.observation(raw)  # image(s) + state for the policy
                history.append(obs[IMAGE])
                policy_obs = {**obs, IMAGE_PAST: history[0], TASK: task}  # history[0]: frame max(0, t-delta)
                action = self.broker.step(t, policy_obs)  # (A,) model units, or None: hold
                want = None if action is None else self.mapping.to_robot_action(action)
                if cfg.dry_run:
                    sent, _ = self._safety.filter(want, raw)  # what *would* be sent
                else:
                    sent = self._safety.send(want, raw)
                executed.append(self.mapping.to_model_action(sent))  # NaN: joint not commanded
                requested.append(np.full(self.mapping.action_dim, np.nan) if action is None else action)
                self._check_sensors(cfg)
                if record:
                    frame = dict(self.mapping.observation(raw, normalize=False))
                    frame["action"] = executed[-1]
                    # Before the first confirmed reading a joint is left uncommanded (NaN): the
                    # recording starts at the first complete frame (no gap in its timestamps).
                    recording |= bool(np.isfinite(frame["action"]).all() and np.isfinite(frame[STATE]).all())
                    if recording:
                        self.recorder.add_frame(frame)
                if self.on_step is not None:
                    self.on_step({"step": t, "action": executed[-1], "held": action is None, "observation": obs})
                if cfg.stop_when_done and getattr(self.robot, "episode_done", False):
                    break
                clock.wait()
        except KeyboardInterrupt:
            self.estop.trigger("KeyboardInterrupt")
        except BaseException:
            if not cfg.dry_run and self.robot.is_connected:
                self._safety.hold(raw)
            if record:
                self.recorder.discard_episode()
            raise
        if self.estop.triggered:
            self._emergency_stop(raw)
            if record:
                self.recorder.discard_episode()
        elif record:
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

    def _check_sensors(self, cfg: ControlConfig) -> None:
        """A sensor that stays broken is not a glitch: stop the robot and say which one."""
        n = self._safety.consecutive_faults
        if cfg.max_sensor_fault_steps and n >= cfg.max_sensor_fault_steps and not self.estop.triggered:
            self.estop.trigger(f"sensor fault for {n} steps: {self._safety.faults}")

    def _emergency_stop(self, raw: dict[str, Any] | None) -> None:
        if not self.robot.is_connected:
            return
        try:
            self._safety.hold(raw)  # also after a dry run: whatever the robot was doing, stop it
        finally:
            if self.config.disconnect_on_estop:
                self.robot.disconnect()

    # ------------------------------------------------------------------ background run (notebooks)
    def start(self, **kwargs: Any) -> "ControlLoop":
        """Run ``run_episode(**kwargs)`` in a background thread (the e-stop button stays live)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("an episode is already running")
        self._result, self._error = None, None

        def work() -> None:
            try:
                self._result = self.run_episode(**kwargs)
            except BaseException as e:  # noqa: BLE001 (handed to wait())
                self._error = e

        self._thread = threading.Thread(target=work, name="control-loop", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> EpisodeResult | None:
        """Join the background episode; Ctrl-C here triggers the e-stop. None if still running."""
        if self._thread is None:
            raise RuntimeError("nothing started: call start() first")
        try:
            self._thread.join(timeout)
        except KeyboardInterrupt:
            self.estop.trigger("KeyboardInterrupt")
            self._thread.join()
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        return self._result

    def close(self) -> None:
        """Finish: finalize the recording and disconnect the robot (safe to call twice)."""
        if self.running:
            self.estop.trigger("close")
            self._thread.join()
        if self.recorder is not None:
            self.recorder.finalize()
        if self.robot.is_connected:
            self.robot.disconnect()
