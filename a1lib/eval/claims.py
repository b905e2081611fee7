"""The paper's claims, set beside our ablation results, with a verdict computed from the intervals.

Each claim compares two variants on some tasks. The paper's numbers are REFERENCE.md §1 (the
InternVLA-A1 ablations); ours are pooled over training seeds and evaluation episodes. The verdict
comes from a 95% interval on our difference of success rates (Newcombe's hybrid score interval,
built from the two Wilson intervals):

    reproduced       the interval lies above 0: the effect is there, in the paper's direction
    partly           our difference points the paper's way, but the interval includes 0
    not reproduced   our difference is 0 or points the other way

Never hand-written: ``claims_table`` is generated from the metrics files by ``a1 ablation report``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from a1lib.eval.evaluate import wilson_interval

DYNAMIC = ("ExpressSorting", "IngredientPicking")


@dataclass(frozen=True)
class Claim:
    text: str
    better: str  # the variant the paper says wins
    worse: str
    tasks: tuple[str, ...] | None  # None: every evaluated task
    paper_better: float | None  # paper's success % for `better` / `worse` on these tasks (None: not reported)
    paper_worse: float | None
    source: str  # where in the paper (REFERENCE.md §1)


CLAIMS = (
    Claim("foresight beats a pi0-style policy on dynamic tasks", "a1_full", "pi0_style", DYNAMIC,
          (80.0 + 93.3) / 2, (46.7 + 40.0) / 2, "ablation w/o generation expert: Express Sorting 80->46.7, Ingredient Picking 93.3->40.0"),
    Claim("removing the generation expert costs ~19 points", "a1_full", "pi0_style", None,
          77.0, 57.6, "12-task ablation average"),
    Claim("imagining the future, not just seeing the past frame, helps on dynamic tasks", "a1_full", "no_future_loss",
          DYNAMIC, None, None, "not in the paper (our extra ablation)"),
    Claim("without pretraining performance collapses", "a1_full", "no_pretrain", None, 77.0, 25.4,
          "12-task ablation average"),
    Claim("sim + real + human pretraining beats sim alone", "a1_full", "data_sim", ("PlaceFlower", "SortParts"),
          (60.0 + 53.3) / 2, (53.3 + 33.3) / 2, "pretraining-data ablation, Place Flower and Sort Parts"),
    Claim("adding human video to sim pretraining helps", "data_sim_human", "data_sim", ("SortParts",),
          40.0, 33.3, "pretraining-data ablation, Sort Parts"),
    Claim("the understanding (scene QA) loss helps acting", "a1_full", "no_understanding", None, None, None,
          "not in the paper (our extra ablation)"),
)


def pooled_rate(result: dict[str, Any], tasks: tuple[str, ...] | None) -> tuple[int, int]:
    """(successes, episodes) of one variant's metrics.json over ``tasks`` (None: all)."""
    names = tasks or tuple(result["per_task"])
    missing = [t for t in names if t not in result["per_task"]]
    if missing:
        raise KeyError(f"variant {result['variant']}: no results for task(s) {missing}")
    return (sum(result["per_task"][t]["successes"] for t in names),
            sum(result["per_task"][t]["episodes"] for t in names))


def difference_interval(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """p1 - p2 and its 95% Newcombe (hybrid Wilson score) interval."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def verdict(lo: float, d: float) -> str:
    if lo > 0:
        return "reproduced"
    if d > 0:
        return "partly"
    return "not reproduced"


def evaluate_claims(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per claim whose two variants both have results."""
    rows = []
    for c in CLAIMS:
        if c.better not in results or c.worse not in results:
            continue
        kb, nb = pooled_rate(results[c.better], c.tasks)
        kw, nw = pooled_rate(results[c.worse], c.tasks)
        d, lo, hi = difference_interval(kb, nb, kw, nw)
        lb, lw = results[c.better].get("val_action_loss"), results[c.worse].get("val_action_loss")
        rows.append({
            "claim": c.text, "better": c.better, "worse": c.worse, "tasks": list(c.tasks) if c.tasks else "all",
            "paper_better": c.paper_better, "paper_worse": c.paper_worse,
            "paper_delta": None if c.paper_better is None else c.paper_better - c.paper_worse,
            "ours_better": 100 * kb / nb, "ours_worse": 100 * kw / nw, "episodes": [nb, nw],
            "ours_delta": 100 * d, "ours_delta_ci95": [100 * lo, 100 * hi], "verdict": verdict(lo, d),
            "val_action_loss": [lb, lw], "source": c.source,
        })
    return rows


def claims_table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side markdown table (generated, never hand-written)."""
    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x:.1f}"

    out = ["| claim | comparison | tasks | paper | ours (95% CI of the difference) | held-out action loss | verdict |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        tasks = "all" if r["tasks"] == "all" else ", ".join(r["tasks"])
        paper = ("not reported" if r["paper_better"] is None
                 else f"{pct(r['paper_better'])} vs {pct(r['paper_worse'])} ({r['paper_delta']:+.1f})")
        lo, hi = r["ours_delta_ci95"]
        ours = f"{r['ours_better']:.1f} vs {r['ours_worse']:.1f} ({r['ours_delta']:+.1f} [{lo:+.1f}, {hi:+.1f}])"
        lb, lw = r["val_action_loss"]
        loss = "—" if lb is None or lw is None else f"{lb:.3f} vs {lw:.3f}"
        out.append(f"| {r['claim']} | {r['better']} vs {r['worse']} | {tasks} | {paper} | {ours} | {loss} | **{r['verdict']}** |")
    out.append("")
    out.append("Success in %, pooled over training seeds and evaluation episodes (lab domain). Verdict from the 95% "
               "Newcombe interval of our difference: *reproduced* if it lies above 0, *partly* if the difference points "
               "the paper's way but the interval includes 0, *not reproduced* otherwise. The held-out action loss "
               "(flow-matching loss on held-out lab episodes after fine-tuning, mean over seeds, lower is better) is "
               "shown for context; it does not enter the verdict.")
    return "\n".join(out) + "\n"
