"""A fixed-rate clock for control loops, with honest overrun accounting.

Each step should start exactly ``1/hz`` after the previous one. ``wait()`` sleeps until the next
step is due. When a step took longer than its period (an *overrun*), the clock counts it, keeps
the worst one, and re-anchors to now instead of firing a burst of late steps to catch up (a robot
must not receive three commands at once). ``achieved_hz`` is measured from the step start times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class TimingReport:
    target_hz: float
    steps: int
    achieved_hz: float
    overruns: int
    worst_overrun_ms: float
    mean_step_ms: float  # busy time per step (without the sleep)


class RateClock:
    def __init__(self, hz: float) -> None:
        if not hz > 0:
            raise ValueError(f"rate must be > 0 Hz, got {hz}")
        self.hz, self.period = float(hz), 1.0 / float(hz)
        self.starts: list[float] = []
        self.busy: list[float] = []
        self.overruns, self.worst_overrun = 0, 0.0
        self._next: float | None = None

    def start_step(self) -> float:
        now = time.perf_counter()
        if self._next is None:
            self._next = now
        self.starts.append(now)
        return now

    def wait(self, sleep: Callable[[float], Any] = time.sleep) -> None:
        """End the current step: sleep until the next one is due (or count an overrun). ``sleep``
        may return early (``EStop.wait``: a press ends the sleep)."""
        now = time.perf_counter()
        if self.starts:
            self.busy.append(now - self.starts[-1])
        self._next = (self._next if self._next is not None else now) + self.period
        late = now - self._next
        if late > 0:
            self.overruns += 1
            self.worst_overrun = max(self.worst_overrun, late)
            self._next = now  # re-anchor: no catch-up burst
        else:
            sleep(-late)

    def report(self) -> TimingReport:
        n = len(self.starts)
        span = self.starts[-1] - self.starts[0] if n > 1 else 0.0
        return TimingReport(
            target_hz=self.hz, steps=n, achieved_hz=(n - 1) / span if span > 0 else 0.0,
            overruns=self.overruns, worst_overrun_ms=1e3 * self.worst_overrun,
            mean_step_ms=1e3 * sum(self.busy) / len(self.busy) if self.busy else 0.0,
        )
