"""The figures of ``a1 ablation report`` (a1lib.workflows.ablation) and its variants table.

Reads ``<dir>/<variant>/metrics.json`` (written by ``a1 ablation run``) and writes into ``--out``:

    ablation_static.png        per static task: a1_full vs pi0_style
    ablation_dynamic.png       dynamic tasks: a1_full vs pi0_style vs no_future_loss, and the speed sweep
    ablation_pretraining.png   a1_full vs no_pretrain
    ablation_data.png          pretraining mixes: sim, sim+human, sim+lab, sim+lab+human
    ablation_generation.png    full / no_future_loss / pi0_style / no_understanding
    ablation_imagined.png      imagined vs true futures of a1_full, for a successful and a failed episode
    claims.md                  the generated side-by-side table (a1lib.eval.claims)
    ablations.md               every variant: success, seed spread, held-out action loss, budget

Every number drawn comes from those files, except the imagined-futures figure, which re-runs the
a1_full policy of the first seed on evaluation seeds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from a1lib.eval.claims import pooled_rate
from a1lib.eval.evaluate import wilson_interval
from a1lib.eval.rollout import first_outcomes
from a1lib.models.policy_a1 import A1Policy
from a1lib.viz.figures import _save, draw_future_column, plt

COLORS = {"a1_full": "tab:red", "pi0_style": "tab:blue", "no_future_loss": "tab:purple", "no_pretrain": "tab:gray",
          "data_sim": "tab:olive", "data_sim_human": "tab:cyan", "data_sim_lab": "tab:orange",
          "no_understanding": "tab:brown"}
DATA_LABELS = {"data_sim": "sim", "data_sim_human": "sim+human", "data_sim_lab": "sim+lab", "a1_full": "sim+lab+human"}


def load_results(directory: str | Path) -> dict[str, dict[str, Any]]:
    """variant -> its metrics.json, for every variant folder that has one."""
    directory = Path(directory)
    results = {}
    for f in sorted(directory.glob("*/metrics.json")):
        try:
            r = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: malformed JSON: {e}") from e
        if "variant" not in r or "per_task" not in r:
            raise ValueError(f"{f}: not an ablation metrics file (no 'variant' / 'per_task')")
        results[r["variant"]] = r
    if not results:
        raise FileNotFoundError(f"{directory}: no <variant>/metrics.json (run `a1 ablation run` first)")
    return results


def _rate(r: dict[str, Any], tasks: list[str] | None = None) -> tuple[float, float, float]:
    """Pooled success over ``tasks`` (None: overall) and its Wilson interval."""
    k, n = pooled_rate(r, tuple(tasks) if tasks else None)
    lo, hi = wilson_interval(k, n)
    return k / n, lo, hi


def _bars(ax, results: dict[str, dict[str, Any]], names: list[str], groups: list[tuple[str, list[str] | None]],
          labels: dict[str, str] | None = None) -> None:
    """Grouped success bars with 95% intervals: one group per (label, tasks), one bar per variant."""
    names = [n for n in names if n in results]
    width = 0.8 / max(1, len(names))
    x = np.arange(len(groups))
    for k, name in enumerate(names):
        vals = np.array([_rate(results[name], tasks) for _, tasks in groups])  # (G, 3)
        ax.bar(x + (k - (len(names) - 1) / 2) * width, vals[:, 0], width,
               yerr=[vals[:, 0] - vals[:, 1], vals[:, 2] - vals[:, 0]], capsize=2,
               color=COLORS.get(name), label=(labels or {}).get(name, name))
    ax.set_xticks(x, [g for g, _ in groups], rotation=25, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success (95% CI)")
    ax.legend(fontsize=7)


def _loss_panel(ax, results: dict[str, dict[str, Any]], names: list[str], labels: dict[str, str] | None = None) -> None:
    """Held-out action loss after fine-tuning: one dot per seed, a bar at the mean."""
    names = [n for n in names if n in results]
    for k, name in enumerate(names):
        per_seed = [v.get("val/action") for v in results[name].get("val_losses_per_seed", {}).values()]
        per_seed = [v for v in per_seed if v is not None]
        if per_seed:
            ax.bar(k, np.mean(per_seed), 0.6, color=COLORS.get(name), alpha=0.5)
            ax.plot([k] * len(per_seed), per_seed, "k.", ms=6)
    ax.set_xticks(range(len(names)), [(labels or {}).get(n, n) for n in names], rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("held-out action loss (lower is better)")


def _two_panel(results, names, groups, title, out, labels=None) -> Path:
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    _bars(a, results, names, groups, labels)
    a.set_title(title, fontsize=9)
    _loss_panel(b, results, names, labels)
    b.set_title("open loop: held-out lab episodes", fontsize=9)
    return _save(fig, out)


def plot_static(results, out, static_tasks) -> Path:
    return _two_panel(results, ["a1_full", "pi0_style"], [(t, [t]) for t in static_tasks] + [("static (all)", static_tasks)],
                      "static tasks: A1 vs pi0-style", out)


ALL_TASKS = [("all tasks", None)]


def plot_pretraining(results, out, tasks) -> Path:
    return _two_panel(results, ["a1_full", "no_pretrain"], ALL_TASKS + [(t, [t]) for t in tasks],
                      "pretraining ablation", out)


def plot_data(results, out, tasks) -> Path:
    """The paper reports the data ablation on Place Flower and Sort Parts: those, then all tasks."""
    groups = [(t, [t]) for t in ("PlaceFlower", "SortParts") if t in tasks] + ALL_TASKS
    return _two_panel(results, list(DATA_LABELS), groups, "pretraining data ablation", out, labels=DATA_LABELS)


def plot_generation(results, out, static_tasks, dynamic_tasks) -> Path:
    groups = ALL_TASKS + [(name, list(ts)) for name, ts in (("dynamic", dynamic_tasks), ("static", static_tasks)) if ts]
    return _two_panel(results, ["a1_full", "no_future_loss", "pi0_style", "no_understanding"], groups,
                      "generation expert and understanding loss", out)


def plot_dynamic(results, out, dynamic_tasks) -> Path:
    """Success on the dynamic tasks, then success against conveyor / turntable speed."""
    names = [n for n in ("a1_full", "pi0_style", "no_future_loss") if n in results]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    _bars(axes[0], results, names, [(t, [t]) for t in dynamic_tasks] + [("dynamic (all)", list(dynamic_tasks))])
    axes[0].set_title("dynamic tasks (randomised speeds)", fontsize=9)
    for ax, task in zip(axes[1:], dynamic_tasks):
        for name in names:
            pts = [s for s in results[name].get("sweep", []) if s["task"] == task]
            if not pts:
                continue
            v = np.array([s["speed"] for s in pts])
            p = np.array([s["success_rate"] for s in pts])
            lo = np.array([s["ci95"][0] for s in pts])
            hi = np.array([s["ci95"][1] for s in pts])
            ax.errorbar(v, p, yerr=[p - lo, hi - p], marker="o", capsize=3, color=COLORS.get(name), label=name)
            ax.set_xlabel(pts[0]["speed_key"].replace("_", " "))
        ax.set_ylim(-0.02, 1.05)
        ax.set_title(f"{task}: success vs speed", fontsize=9)
        ax.legend(fontsize=7)
    axes[1].set_ylabel("success (95% CI)")
    return _save(fig, out)


def plot_imagined_outcomes(policy_dir: str | Path, out: str | Path, tasks: list[str], episodes: int = 3,
                           replan_every: int | None = 5) -> Path:
    """Imagined vs true future frames in closed loop: the first successful and the first failed episode
    found among ``episodes`` evaluation seeds per task (rows: now, imagined t+delta, true t+delta)."""
    torch.set_num_threads(1)
    policy = A1Policy.from_pretrained(policy_dir, imagine=True)
    picked = first_outcomes(policy, tasks, episodes, replan_every, policy.config.image_size)
    cols = [picked[k] + (k,) for k in ("success", "failure") if k in picked]
    fig, axes = plt.subplots(3, 2 * len(cols), figsize=(4.4 * len(cols), 5.8), squeeze=False)
    d = policy.delta
    for c, (task, i, res, kind) in enumerate(cols):
        frames = res.frames
        for j, frac in enumerate((0.25, 0.6)):
            t = min(int(frac * len(frames)), max(0, len(frames) - 1 - d))
            draw_future_column(axes, 2 * c + j, d, frames[t][0], frames[t][1], frames[min(t + d, len(frames) - 1)][0],
                               f"{kind}\n{task} ep{i}\nt={t}")  # three short lines: no overlap
    if "success" not in picked:
        fig.suptitle(f"no successful episode among the first {episodes} seeds of\n{', '.join(tasks)}", fontsize=8)
    return _save(fig, out)


def variants_table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| variant | what changes | success (95% CI) | per seed | held-out action loss | pretrain / finetune steps |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        lo, hi = r["success_ci95"]
        seeds = ", ".join(f"{v:.0%}" for v in r["per_seed_success"].values())
        loss = "—" if r.get("val_action_loss") is None else f"{r['val_action_loss']:.3f}"
        b = r["budget"]
        lines.append(f"| {name} | {r['description']} | {r['success']:.1%} [{lo:.1%}, {hi:.1%}] | {seeds} | {loss} | "
                     f"{b['pretrain_steps']} / {b['finetune_steps']} |")
    return "\n".join(lines) + "\n"
