"""The figures of ``a1 ablation report`` (a1lib.workflows.ablation) and its runs table.

Reads ``<dir>/<group>-<variant>/metrics.json`` (written by ``a1 ablation run``) and writes into ``--out``:

    ablation_<group>.png   per task group: success of every variant per task and pooled, and the
                           held-out action loss of every seed
    ablation_imagined.png  imagined vs true futures of a1_full, for a successful and a failed episode
    claims.md              the generated side-by-side table (a1lib.eval.claims)
    ablations.md           every run: success, seed spread, held-out action loss, futures vs copy, budget

Every number drawn comes from those files; the imagined-futures figure draws the episodes that
``a1lib.workflows.ablation.imagined_outcomes`` ran with the a1_full policy of the first seed on
evaluation seeds (nothing here loads a policy or runs an episode). ``a1 ablation sweep``
(a1lib.workflows.ablation_sweep) draws ``ablation_speed.png`` and writes ``speed_sweep.md`` with
``plot_speed_sweep`` / ``speed_sweep_table``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from a1lib.eval.claims import pooled_rate
from a1lib.eval.rollout import EpisodeResult
from a1lib.viz.figures import _save, draw_future_column, plt

COLORS = {"a1_full": "tab:red", "pi0_style": "tab:blue", "no_future_loss": "tab:purple", "no_pretrain": "tab:gray",
          "data_sim": "tab:olive", "data_sim_human": "tab:cyan", "data_sim_lab": "tab:orange",
          "no_understanding": "tab:brown", "expert": "black", "motion_blind_expert": "0.55"}


def load_results(directory: str | Path) -> dict[str, dict[str, Any]]:
    """Run name (``<group>-<variant>``) -> its metrics.json, for every run folder that has one."""
    directory = Path(directory)
    results = {}
    for f in sorted(directory.glob("*/metrics.json")):
        try:
            r = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{f}: malformed JSON: {e}") from e
        if not {"group", "variant", "per_task"} <= set(r):
            raise ValueError(f"{f}: not an ablation metrics file (no 'group' / 'variant' / 'per_task'); "
                             f"re-run `a1 ablation run --run {f.parent.name}`")
        results[f"{r['group']}-{r['variant']}"] = r
    if not results:
        raise FileNotFoundError(f"{directory}: no <group>-<variant>/metrics.json (run `a1 ablation run` first)")
    return results


def by_group(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """group -> variant -> metrics, variants in the order of COLORS (a1_full first)."""
    order = {name: i for i, name in enumerate(COLORS)}
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for r in sorted(results.values(), key=lambda r: order.get(r["variant"], len(order))):
        groups.setdefault(r["group"], {})[r["variant"]] = r
    return groups


def _rate(r: dict[str, Any], tasks: list[str]) -> tuple[float, float, float]:
    """Pooled success over ``tasks`` and its Wilson interval."""
    rate = pooled_rate(r, tuple(tasks))
    return (rate.rate, *rate.ci95)


def _bars(ax, runs: dict[str, dict[str, Any]], tasks: list[str]) -> None:
    """Success bars with 95% intervals: one cluster per task and one pooled, one bar per variant."""
    clusters = [(t, [t]) for t in tasks] + ([("pooled", tasks)] if len(tasks) > 1 else [])
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(clusters))
    for k, (name, r) in enumerate(runs.items()):
        vals = np.array([_rate(r, ts) for _, ts in clusters])  # (G, 3)
        ax.bar(x + (k - (len(runs) - 1) / 2) * width, vals[:, 0], width,
               yerr=[vals[:, 0] - vals[:, 1], vals[:, 2] - vals[:, 0]], capsize=2, color=COLORS.get(name), label=name)
    ax.set_xticks(x, [c for c, _ in clusters], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success (95% CI)")
    ax.legend(fontsize=7)


def _loss_panel(ax, runs: dict[str, dict[str, Any]]) -> None:
    """Held-out action loss after fine-tuning: one dot per seed, a bar at the mean."""
    for k, (name, r) in enumerate(runs.items()):
        per_seed = [v.get("val/action") for v in r.get("val_losses_per_seed", {}).values()]
        per_seed = [v for v in per_seed if v is not None]
        if per_seed:
            ax.bar(k, np.mean(per_seed), 0.6, color=COLORS.get(name), alpha=0.5)
            ax.plot([k] * len(per_seed), per_seed, "k.", ms=6)
    ax.set_xticks(range(len(runs)), list(runs), rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("held-out action loss (lower is better)")
    ax.set_title("open loop: held-out lab episodes", fontsize=9)


def plot_group(group: str, runs: dict[str, dict[str, Any]], out: str | Path) -> Path:
    """One task group: success bars and the held-out loss (the speed sweep: ``plot_speed_sweep``)."""
    tasks = list(next(iter(runs.values()))["tasks"])
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    _bars(axes[0], runs, tasks)
    seeds = sorted({len(r["budget"]["seeds"]) for r in runs.values()})
    axes[0].set_title(f"task group '{group}': training seeds per variant {'/'.join(map(str, seeds))}", fontsize=9)
    _loss_panel(axes[-1], runs)
    return _save(fig, out)


def plot_not_run(group: str, out: str | Path) -> Path:
    """The figure of a task group none of whose runs has results yet."""
    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, f"task group '{group}': not run yet\n(dvc repro ablation@{group}-<variant>)",
            ha="center", va="center", fontsize=10)
    return _save(fig, out)


def plot_imagined_outcomes(picked: dict[str, tuple[str, int, EpisodeResult]], delta: int, out: str | Path,
                           shown: str, tasks: list[str], episodes: int) -> Path:
    """Imagined vs true future frames in closed loop, two moments of each recorded episode in ``picked``
    ({"success" | "failure": (task, evaluation-seed index, result)}: the first successful and the first
    failed episode among ``episodes`` evaluation seeds per task of ``tasks``, as
    ``a1lib.workflows.ablation.imagined_outcomes`` finds them). Rows: now, imagined t+delta, true
    t+delta. ``shown`` names the policy in the title (run and training seed)."""
    cols = [picked[k] + (k,) for k in ("success", "failure") if k in picked]
    fig, axes = plt.subplots(3, 2 * len(cols), figsize=(4.4 * len(cols), 6.2), squeeze=False)
    d = delta
    for c, (task, i, res, kind) in enumerate(cols):
        frames = res.frames
        for j, frac in enumerate((0.25, 0.6)):
            t = min(int(frac * len(frames)), max(0, len(frames) - 1 - d))
            draw_future_column(axes, 2 * c + j, d, frames[t][0], frames[t][1], frames[min(t + d, len(frames) - 1)][0],
                               f"{kind}\n{task} ep{i}\nt={t}")  # three short lines: no overlap
    title = [shown, "closed loop, lab domain, evaluation seeds"]  # which policy: the figure alone says it
    if "success" not in picked:
        title.append(f"no successful episode among the first {episodes} seeds of\n{', '.join(tasks)}")
    fig.suptitle("\n".join(title), fontsize=9)
    return _save(fig, out)


def variants_table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| run | what changes | tasks | success (95% CI) | per seed | held-out action loss | "
             "imagined future vs copy | pretrain / finetune steps |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lo, hi = r["success_ci95"]
        seeds = ", ".join(f"{v:.0%}" for v in r["per_seed_success"].values())
        loss = "—" if r.get("val_action_loss") is None else f"{r['val_action_loss']:.3f}"
        futures = "; ".join(f"{t} {v['reduction_vs_copy']:+.0%}" for t, v in r.get("futures", {}).items()) or "—"
        b = r["budget"]
        lines.append(f"| {name} | {r['description']} | {', '.join(r['tasks'])} | "
                     f"{r['success']:.1%} [{lo:.1%}, {hi:.1%}] | "
                     f"{seeds} | {loss} | {futures} | {b['pretrain_steps']} / {b['finetune_steps']} |")
    lines += ["", "*Imagined future vs copy*: how much lower the generation expert's future-latent MSE is than "
              "\"the future equals now\" on held-out lab episodes of the group's dynamic tasks (validation seeds), "
              "mean over training seeds; negative means worse than copying."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The speed sweep (a1 ablation sweep)
# ---------------------------------------------------------------------------------------------
SPEED_UNITS = {"belt_speed": "table units / s", "turntable_speed": "rad / s"}


def _sweep_points(result: dict[str, Any], task: str, arm: str) -> list[dict[str, Any]]:
    return sorted((p for p in result["points"] if p["task"] == task and p["arm"] == arm), key=lambda p: p["speed"])


def _episodes(result: dict[str, Any], task: str, arms: list[str]) -> str:
    """Episodes per point of ``arms`` on ``task``: the trained arms pool their seeds, the experts run once."""
    counts = {p["episodes"] for p in result["points"] if p["task"] == task and p["arm"] in arms}
    return "/".join(map(str, sorted(counts)))


def plot_speed_sweep(result: dict[str, Any], out: str | Path) -> Path:
    """Success against conveyor / turntable speed, one panel per swept task: the trained variants with
    95% Wilson intervals (pooled over training seeds), the scripted expert and the motion-blind expert
    dashed, the training range shaded."""
    tasks = list(result["training_range"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.2 * len(tasks), 4.0), squeeze=False)
    arms = [a for a in result["arms"] if a not in result["references"]]
    for ax, task in zip(axes[0], tasks):
        rng = result["training_range"][task]
        ax.axvspan(*rng["range"], color="0.92", zorder=0, label="training range")
        speeds = sorted({p["speed"] for p in result["points"] if p["task"] == task})
        step = min(np.diff(speeds)) if len(speeds) > 1 else 0.2 * max(speeds[0], 0.1)
        for k, arm in enumerate(arms):  # arms side by side around each speed, so the bars do not overlap
            pts = _sweep_points(result, task, arm)
            v = np.array([p["speed"] for p in pts]) + (k - (len(arms) - 1) / 2) * 0.08 * step
            p = np.array([q["success_rate"] for q in pts])
            lo, hi = np.array([q["ci95"][0] for q in pts]), np.array([q["ci95"][1] for q in pts])
            ax.errorbar(v, p, yerr=[p - lo, hi - p], marker="o", capsize=3, color=COLORS.get(arm), label=arm)
        for arm, style in zip(result["references"], ("--", ":")):  # the expert, the motion-blind expert
            pts = _sweep_points(result, task, arm)
            ax.plot([q["speed"] for q in pts], [q["success_rate"] for q in pts], style, marker=".",
                    color=COLORS.get(arm, "black"), label=arm.replace("_", " "))
        ax.set_title(f"{task}: success vs speed\n(episodes per point: trained arms {_episodes(result, task, arms)}, "
                     f"experts {_episodes(result, task, result['references'])})", fontsize=9)
        ax.set_xlabel(f"{rng['speed_key'].replace('_', ' ')} ({SPEED_UNITS.get(rng['speed_key'], '')})")
        ax.set_ylabel("success (95% CI)")
        ax.set_ylim(-0.02, 1.05)
    handles, labels = axes[0][0].get_legend_handles_labels()  # the right panel's middle is empty: no line hidden
    axes[0][-1].legend(handles, labels, fontsize=7, loc="center right")
    return _save(fig, out)


def speed_sweep_table(result: dict[str, Any]) -> str:
    """The sweep as markdown: one row per task and speed, successes / episodes per arm."""
    arms = result["arms"]
    lines = ["| task | speed | " + " | ".join(a.replace("_", " ") for a in arms) + " |",
             "|---|---|" + "---|" * len(arms)]
    for task, rng in result["training_range"].items():
        lo, hi = rng["range"]
        for speed in sorted({p["speed"] for p in result["points"] if p["task"] == task}):
            cells = []
            for arm in arms:
                p = next((q for q in result["points"]
                          if q["task"] == task and q["arm"] == arm and q["speed"] == speed), None)
                cells.append("—" if p is None else f"{p['successes']}/{p['episodes']}")
            inside = "" if lo <= speed <= hi else " *"
            key = rng["speed_key"].replace("_", " ")
            lines.append(f"| {task} | {key} {speed:g}{inside} | " + " | ".join(cells) + " |")
    bounds = [r["range"] for r in result["training_range"].values()]
    ranges = ", turntable speed ".join(f"{a:g}-{b:g}" for a, b in bounds)
    seeds = "/".join(str(n) for n in sorted({len(s) for s in result["training_seeds"].values()}))
    episodes = result["episodes_per_speed_and_seed"]
    lines += ["", f"\\* outside the training range (belt speed {ranges}). Trained arms: {seeds} "
              f"training seeds x {episodes} episodes per speed, pooled; the experts run the same "
              f"{episodes} episodes (evaluation seeds) once."]
    return "\n".join(lines) + "\n"
