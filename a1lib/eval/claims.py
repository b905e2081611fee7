"""The paper's claims, set beside our ablation results, with a verdict computed from the intervals.

Each claim compares two runs of one task group (the same tasks and budget; params.yaml's
``ablations``), on the group's tasks or a subset. The paper's numbers are REFERENCE.md §1 (the
InternVLA-A1 ablations); ours are pooled over training seeds and evaluation episodes. The verdict
comes from a 95% interval on our difference of success rates (Newcombe's hybrid score interval,
built from the two Wilson intervals):

    reproduced       the interval lies above 0: the effect is there, in the paper's direction
    contradicted     the interval lies below 0: the effect is there, the other way round
    inconclusive     the interval includes 0
    no signal        both arms succeed in under 5% of episodes: the experiment cannot tell

Each row also gives the minimum detectable difference at its episode counts (80% power, two-sided
5%, around the worse arm's rate), so a reader knows what the experiment could have seen, and the
per-seed success of both arms beside the pooled rates.

Never hand-written: ``claims_table`` is generated from the metrics files by ``a1 ablation report``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from a1lib.eval.stats import Rate, difference_interval, min_detectable_difference


@dataclass(frozen=True)
class Claim:
    text: str
    group: str  # the task group both variants were trained and evaluated on (params: ablation.groups)
    better: str  # the variant the paper says wins
    worse: str
    tasks: tuple[str, ...] | None  # None: every task of the group
    paper_better: float | None  # paper's success % for `better` / `worse` on these tasks (None: not reported)
    paper_worse: float | None
    source: str  # where in the paper (REFERENCE.md §1)


CLAIMS = (
    Claim("foresight beats a pi0-style policy on dynamic tasks", "dynamic", "a1_full", "pi0_style", None,
          (80.0 + 93.3) / 2, (46.7 + 40.0) / 2,
          "ablation w/o generation expert: Express Sorting 80->46.7, Ingredient Picking 93.3->40.0"),
    Claim("removing the generation expert costs ~19 points", "all", "a1_full", "pi0_style", None,
          77.0, 57.6, "12-task ablation average"),
    Claim("imagining the future, not just seeing the past frame, helps on dynamic tasks", "dynamic", "a1_full",
          "no_future_loss", None, None, None, "not in the paper (our extra ablation)"),
    Claim("without pretraining performance collapses", "dynamic", "a1_full", "no_pretrain", None, 77.0, 25.4,
          "12-task ablation average (ours: on the dynamic tasks)"),
    Claim("sim + real + human pretraining beats sim alone", "static", "a1_full", "data_sim",
          ("PlaceFlower", "SortParts"),
          (60.0 + 53.3) / 2, (53.3 + 33.3) / 2, "pretraining-data ablation, Place Flower and Sort Parts"),
    Claim("adding human video to sim pretraining helps", "static", "data_sim_human", "data_sim", ("SortParts",),
          40.0, 33.3, "pretraining-data ablation, Sort Parts"),
    Claim("the understanding (scene QA) loss helps acting", "static", "a1_full", "no_understanding", None, None, None,
          "not in the paper (our extra ablation; ours: on Place Flower and Sort Parts)"),
)


def pooled_rate(result: dict[str, Any], tasks: tuple[str, ...] | None) -> Rate:
    """One variant's metrics.json pooled over ``tasks`` (None: all)."""
    names = tasks or tuple(result["per_task"])
    missing = [t for t in names if t not in result["per_task"]]
    if missing:
        raise KeyError(f"variant {result['variant']}: no results for task(s) {missing}")
    return Rate.pooled(Rate.from_dict(result["per_task"][t]) for t in names)


def per_seed_rates(result: dict[str, Any], tasks: tuple[str, ...] | None) -> list[float]:
    """Success rate of each training seed over ``tasks`` (the spread behind the pooled rate)."""
    rates = []
    for row in result.get("per_seed", {}).values():
        names = tasks or tuple(row["per_task"])
        rates.append(Rate.pooled(Rate.from_dict(row["per_task"][t]) for t in names if t in row["per_task"]).rate)
    return rates


NO_SIGNAL = 0.05  # both arms below this success rate: no verdict


def verdict(lo: float, hi: float, p_better: float, p_worse: float) -> str:
    if p_better < NO_SIGNAL and p_worse < NO_SIGNAL:
        return "no signal"
    if lo > 0:
        return "reproduced"
    if hi < 0:
        return "contradicted"
    return "inconclusive"


def evaluate_claims(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per claim; ``results`` maps a run name (``<group>-<variant>``) to its metrics.json. A claim
    whose two runs are not both there gets the verdict "not run"."""
    rows = []
    for c in CLAIMS:
        better, worse = f"{c.group}-{c.better}", f"{c.group}-{c.worse}"
        row = {"claim": c.text, "group": c.group, "better": c.better, "worse": c.worse,
               "paper_better": c.paper_better, "paper_worse": c.paper_worse,
               "paper_delta": None if c.paper_better is None else c.paper_better - c.paper_worse, "source": c.source}
        missing = [r for r in (better, worse) if r not in results]
        if missing:
            rows.append(dict(row, tasks=list(c.tasks) if c.tasks else c.group, verdict="not run", missing=missing))
            continue
        tasks = c.tasks or tuple(results[better]["tasks"])
        b, w = pooled_rate(results[better], tasks), pooled_rate(results[worse], tasks)
        d, lo, hi = difference_interval(b, w)
        rows.append(dict(
            row, tasks=list(tasks),
            ours_better=100 * b.rate, ours_worse=100 * w.rate, episodes=[b.episodes, w.episodes],
            ours_delta=100 * d, ours_delta_ci95=[100 * lo, 100 * hi],
            verdict=verdict(lo, hi, b.rate, w.rate),
            min_detectable_delta=100 * min_detectable_difference(w.rate, b.episodes, w.episodes),
            per_seed=[per_seed_rates(results[better], tasks), per_seed_rates(results[worse], tasks)],
            val_action_loss=[results[better].get("val_action_loss"), results[worse].get("val_action_loss")],
        ))
    return rows


def claims_table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side markdown table (generated, never hand-written)."""
    def pct(x: float | None) -> str:
        return "—" if x is None else f"{x:.1f}"

    out = ["| claim | comparison | tasks | paper | ours (95% CI of the difference) | per seed | detectable | "
           "held-out action loss | verdict |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tasks = r["tasks"] if isinstance(r["tasks"], str) else ", ".join(r["tasks"])
        paper = ("not reported" if r["paper_better"] is None
                 else f"{pct(r['paper_better'])} vs {pct(r['paper_worse'])} ({r['paper_delta']:+.1f})")
        if r["verdict"] == "not run":
            out.append(f"| {r['claim']} | {r['better']} vs {r['worse']} | {tasks} | {paper} | no run "
                       f"{' / '.join(r['missing'])} | — | — | — | **not run** |")
            continue
        lo, hi = r["ours_delta_ci95"]
        ours = f"{r['ours_better']:.1f} vs {r['ours_worse']:.1f} ({r['ours_delta']:+.1f} [{lo:+.1f}, {hi:+.1f}])"
        lb, lw = r["val_action_loss"]
        loss = "—" if lb is None or lw is None else f"{lb:.3f} vs {lw:.3f}"
        seeds = " vs ".join("/".join(f"{100 * v:.0f}" for v in arm) or "—" for arm in r["per_seed"])
        mdd = r["min_detectable_delta"]
        detectable = "—" if math.isnan(mdd) else f"{mdd:.0f} (n={r['episodes'][0]}/{r['episodes'][1]})"
        out.append(f"| {r['claim']} | {r['better']} vs {r['worse']} | {tasks} | {paper} | {ours} | {seeds} | "
                   f"{detectable} | {loss} | **{r['verdict']}** |")
    out.append("")
    out.append("Success in %, pooled over training seeds and evaluation episodes (lab domain); *per seed*: each "
               "training seed's rate, better arm vs worse arm. Verdict from the 95% Newcombe interval of our "
               "difference: *reproduced* if it lies above 0, *contradicted* if below 0, *inconclusive* if it includes "
               "0, *no signal* if both arms succeed in under 5% of episodes. *Detectable*: the smallest difference "
               "(points) these episode counts detect with 80% power at a two-sided 5% level. The held-out action loss "
               "(flow-matching loss on held-out lab episodes after fine-tuning, mean over seeds, lower is better) is "
               "shown for context; it does not enter the verdict. *Not run*: no results of that run yet (`dvc repro "
               "ablation@<group>-<variant>`; the group `all`, every task, is not in the budget).")
    return "\n".join(out) + "\n"
