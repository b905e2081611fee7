"""The statistics of closed-loop success, in one place: a success rate with its Wilson interval, the
Newcombe interval of a difference, the difference an experiment can detect, and the filter that
keeps a DVC metrics file to numbers.

Every success rate the workbench reports (an evaluation row, a task, seeds pooled, a sweep point) is
a ``Rate``: successes k of n episodes, written as ``{"successes", "episodes", "success_rate",
"ci95"}`` in every metrics.json.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

Z95 = 1.959964


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (0, 1 for n = 0): honest at small n and at
    0% / 100%, unlike the normal approximation."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """k successes in n episodes."""

    successes: int
    episodes: int

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    @classmethod
    def of(cls, outcomes: Iterable[bool]) -> "Rate":
        outcomes = [bool(o) for o in outcomes]
        return cls(sum(outcomes), len(outcomes))

    @classmethod
    def pooled(cls, rates: Iterable["Rate"]) -> "Rate":
        rates = list(rates)
        return cls(sum(r.successes for r in rates), sum(r.episodes for r in rates))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Rate":
        return cls(int(d["successes"]), int(d["episodes"]))

    def to_dict(self) -> dict[str, Any]:
        return {"successes": self.successes, "episodes": self.episodes, "success_rate": self.rate,
                "ci95": list(self.ci95)}


def difference_interval(better: Rate, worse: Rate) -> tuple[float, float, float]:
    """p1 - p2 and its 95% Newcombe (hybrid Wilson score) interval."""
    p1, p2 = better.rate, worse.rate
    (l1, u1), (l2, u2) = better.ci95, worse.ci95
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def min_detectable_difference(p_worse: float, n_better: int, n_worse: int, z_alpha: float = Z95,
                              z_power: float = 0.841621) -> float:
    """The smallest d for which a two-sided 5% test of p_worse + d vs p_worse with these episode counts
    has 80% power (normal approximation, unpooled variances)."""
    def needed(d: float) -> float:
        p1 = min(p_worse + d, 1.0)
        return (z_alpha + z_power) * math.sqrt(p1 * (1 - p1) / n_better + p_worse * (1 - p_worse) / n_worse)

    lo, hi = 0.0, 1.0 - p_worse
    if needed(hi) > hi:
        return float("nan")  # not detectable at all with these counts
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if needed(mid) <= mid else (mid, hi)
    return hi


def numbers(tree: Any) -> Any:
    """``tree`` with every entry that is not a finite int / float dropped (None, NaN, strings,
    booleans), and empty dicts after that: what a DVC metrics file should hold."""
    if isinstance(tree, dict):
        kept = {k: numbers(v) for k, v in tree.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {}}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool) and math.isfinite(tree):
        return tree
    return None
