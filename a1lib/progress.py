"""Plain progress lines, for runs whose output goes to a log (``dvc repro``, ``--no-progress``).

A tqdm bar in a log file is noise: carriage returns, or nothing at all until the end. When the
bars are off, the long loops (training, vision pretraining, the privileged reference, the latent
cache, data generation) print instead one ordinary line now and then::

    vision: step 120/2000 (6%) | loss 0.412 | 812 samples/s | 0:02:10 elapsed, ETA 0:38:31

When a line is printed: at the first multiple of ``every`` units, then at a multiple of ``every``
once at least ``interval_s`` seconds have passed since the previous line, and at the end (``close``
or reaching ``total``). So a 30-step run prints two or three lines and a 7,000-step run one line
about every 30 s, never a line per step. Lines go to stdout, flushed, so they interleave correctly
with the rest of the log. Only printing: nothing here touches what is being computed.

This is a shared bottom-floor module: it imports nothing from a1lib and no heavy library.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

Values = Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (``--:--:--`` when unknown)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "--:--:--"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ProgressLines:
    """``update(n, samples=..., values=...)`` after each unit of work; prints a line when one is due.

    ``values`` (a dict, or a zero-argument callable returning one, called only when a line is
    printed, so reading e.g. a GPU loss costs nothing in between) adds ``name value`` pairs such as
    the losses. ``samples`` counts what the throughput is reported in (``sample_unit``/s: samples,
    frames); without it the rate is in ``unit``/s. ``initial`` is where a resumed run starts: the
    rate and ETA count only the work done by this process.
    """

    def __init__(self, desc: str, total: int | None, unit: str = "step", every: int = 1, interval_s: float = 30.0,
                 initial: int = 0, sample_unit: str = "samples", enabled: bool = True, file: TextIO | None = None):
        self.desc, self.total, self.unit = desc, total, unit
        self.every, self.interval_s = max(1, int(every)), float(interval_s)
        self.sample_unit, self.enabled, self.file = sample_unit, enabled, file
        self.position = self.initial = int(initial)
        self.samples = 0
        self.t0 = time.perf_counter()
        self._last_time: float | None = None  # when the previous line was printed
        self._last_position: int | None = None

    def due(self, position: int) -> bool:
        """Would a line be printed at ``position`` (the rule of the module docstring)?"""
        if not self.enabled or position == self._last_position:
            return False
        if self.total is not None and position >= self.total:
            return True
        crossed = position // self.every > (self._last_position if self._last_position is not None
                                            else self.initial) // self.every
        if not crossed:
            return False
        return self._last_time is None or time.perf_counter() - self._last_time >= self.interval_s

    def update(self, n: int = 1, samples: int = 0, values: Values = None) -> bool:
        """Advance by ``n`` units (``samples`` samples); print a line if due. Returns whether it did."""
        return self.update_to(self.position + n, samples, values)

    def update_to(self, position: int, samples: int = 0, values: Values = None) -> bool:
        self.position = int(position)
        self.samples += int(samples)
        if not self.due(self.position):
            return False
        self.print_line(values)
        return True

    def close(self, values: Values = None) -> None:
        """The final line, unless the last position was already printed."""
        if self.enabled and self._last_position != self.position:
            self.print_line(values)

    def line(self, values: Values = None) -> str:
        elapsed = time.perf_counter() - self.t0
        done = self.position - self.initial
        parts = [f"{self.desc}: {self.unit} {self.position}"]
        if self.total:
            parts[0] += f"/{self.total} ({100.0 * self.position / self.total:.0f}%)"
        vals = values() if callable(values) else values
        if vals:
            parts.append(" ".join(f"{k} {format_value(v)}" for k, v in vals.items()))
        if elapsed > 0 and done > 0:
            if self.samples:
                parts.append(f"{self.samples / elapsed:.0f} {self.sample_unit}/s")
            else:
                parts.append(f"{done / elapsed:.3g} {self.unit}/s")
        timing = f"{format_duration(elapsed)} elapsed"
        if self.total and self.position < self.total:
            eta = (self.total - self.position) * elapsed / done if done > 0 else float("nan")
            timing += f", ETA {format_duration(eta)}"
        parts.append(timing)
        return " | ".join(parts)

    def print_line(self, values: Values = None) -> None:
        print(self.line(values), file=self.file or sys.stdout, flush=True)
        self._last_time, self._last_position = time.perf_counter(), self.position
