"""Action chunks -> one action per control step.

A chunked policy answers one observation with ``H`` future actions. The broker decides when to
ask again and which action to execute now:

* **replan**: a new chunk is requested every ``replan_steps`` steps (and whenever no chunk covers
  the present step). A chunk computed from the observation at step ``s`` holds the actions for
  steps ``s, s+1, ..., s+H-1``; the broker indexes it by that start step, so a chunk that arrives
  late simply skips its stale first actions.
* **temporal ensembling** (ACT): when several chunks cover step ``t``, execute their weighted mean
  with weights ``exp(-m * i)``, ``i = 0`` for the oldest prediction (ACT's convention: older
  predictions weigh more, which smooths the seams between chunks).
* **synchronous** inference blocks the step that needs a new chunk (up to the deadline);
  **asynchronous** inference keeps executing the current chunk while the next one is computed in a
  background thread, so a moving conveyor does not see the robot freeze at every replan.
* **watchdog**: an inference still running ``deadline_s`` after it was requested counts as a trip;
  the step gets no action (``None``), which the safety layer turns into the hold command.
* **interrupt** (the e-stop): once it is triggered, no step waits for the policy any more (the
  wait is checked every ``WAIT_SLICE_S``).

Inference always runs in a daemon thread, so even a policy that never returns cannot block the
loop (or the interpreter's exit).
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WAIT_SLICE_S = 0.002  # a step waiting for its chunk looks at the interrupt this often


@dataclass
class _Request:
    step: int  # the control step whose observation was sent
    t_submit: float
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: str | None = None
    latency_s: float = 0.0
    tripped: bool = False


@dataclass
class BrokerStats:
    inferences: int = 0  # chunks received and accepted
    bad_chunks: int = 0  # answers without a valid (H, A) "actions" array
    errors: int = 0  # policy.infer raised
    watchdog_trips: int = 0  # inferences past their deadline
    stale_chunks: int = 0  # chunks that arrived after all their steps had passed
    latencies_s: list[float] = field(default_factory=list)
    last_error: str | None = None


class ChunkBroker:
    def __init__(
        self,
        policy: Any,
        action_dim: int,
        replan_steps: int | None,
        temporal_ensemble: float | None = None,
        async_inference: bool = False,
        deadline_s: float = 0.5,
        interrupt: Any = None,
    ) -> None:
        if replan_steps is not None and replan_steps < 1:
            raise ValueError(f"replan_steps must be >= 1 or None (when the chunk runs out), got {replan_steps}")
        self.policy, self.action_dim = policy, action_dim
        self.replan_steps, self.temporal_ensemble = replan_steps, temporal_ensemble
        self.async_inference, self.deadline_s = async_inference, deadline_s
        self.interrupt = interrupt  # anything with ``.triggered`` (the EStop); None: never interrupted
        self.stats = BrokerStats()
        self.reset()

    def reset(self) -> None:
        self.chunks: list[tuple[int, np.ndarray]] = []  # (start step, (H, A) float64), oldest first
        self.pending: _Request | None = None
        self.last_request_step: int | None = None

    # ------------------------------------------------------------------ inference thread
    def _submit(self, step: int, obs: dict[str, Any]) -> None:
        req = _Request(step=step, t_submit=time.perf_counter())

        def work() -> None:
            try:
                req.result = self.policy.infer(obs)
            except BaseException:  # noqa: BLE001 (report any failure to the loop, never crash it)
                req.error = traceback.format_exc(limit=3)
            req.latency_s = time.perf_counter() - req.t_submit
            req.done.set()

        self.pending, self.last_request_step = req, step
        threading.Thread(target=work, name=f"infer-step{step}", daemon=True).start()

    def _valid_chunk(self, result: Any) -> np.ndarray | None:
        try:
            actions = np.asarray(result["actions"], dtype=np.float64)  # (H, A)
        except Exception:  # noqa: BLE001 (not a dict, no key, not numeric)
            return None
        if actions.ndim != 2 or actions.shape[0] < 1 or actions.shape[1] != self.action_dim:
            return None
        return actions  # may still hold NaN/inf: the safety layer holds on those steps

    def _collect(self, step: int) -> None:
        req = self.pending
        if req is None or not req.done.is_set():
            return
        self.pending = None
        if req.error is not None:
            self.stats.errors += 1
            self.stats.last_error = req.error
            return
        self.stats.latencies_s.append(req.latency_s)
        chunk = self._valid_chunk(req.result)
        if chunk is None:
            self.stats.bad_chunks += 1
            shape = getattr(req.result.get("actions"), "shape", None) if isinstance(req.result, dict) else None
            self.stats.last_error = f"bad chunk: expected actions (H, {self.action_dim}), got {shape}"
            return
        if step - req.step >= len(chunk):
            self.stats.stale_chunks += 1
            return
        self.stats.inferences += 1
        self.chunks.append((req.step, chunk))

    def _check_deadline(self) -> None:
        req = self.pending
        if req is not None and not req.tripped and time.perf_counter() - req.t_submit > self.deadline_s:
            req.tripped = True
            self.stats.watchdog_trips += 1

    def _wait(self, req: _Request) -> None:
        """Wait for ``req`` until its deadline, or until the interrupt is triggered."""
        while not req.done.is_set() and not (self.interrupt is not None and self.interrupt.triggered):
            remaining = req.t_submit + self.deadline_s - time.perf_counter()
            if remaining <= 0:
                return
            req.done.wait(min(remaining, WAIT_SLICE_S))

    # ------------------------------------------------------------------ one control step
    def action_at(self, step: int) -> np.ndarray | None:
        self.chunks = [(s, c) for s, c in self.chunks if step - s < len(c)]
        covering = [c[step - s] for s, c in self.chunks if 0 <= step - s]
        if not covering:
            return None
        if self.temporal_ensemble is None:
            return covering[-1]
        w = np.array([math.exp(-self.temporal_ensemble * i) for i in range(len(covering))])
        return (w[:, None] * np.stack(covering)).sum(0) / w.sum()

    def step(self, step: int, obs: dict[str, Any]) -> np.ndarray | None:
        """The model action (A,) to execute at ``step``, or None to hold."""
        self._collect(step)
        due = self.last_request_step is None or (self.replan_steps is not None
                                                 and step - self.last_request_step >= self.replan_steps)
        if self.pending is None and (due or self.action_at(step) is None):
            self._submit(step, obs)
        if self.pending is not None:
            # synchronous: the step that requested waits for its chunk; asynchronous: wait only
            # when nothing is left to execute
            if not self.async_inference or self.action_at(step) is None:
                self._wait(self.pending)
                self._collect(step)
            self._check_deadline()
            if self.pending is not None and not self.async_inference:
                return None  # synchronous and still waiting: hold
        return self.action_at(step)
