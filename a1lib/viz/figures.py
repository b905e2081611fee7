"""The pipeline's figures: training curves, per-task success, an imagined-futures grid.

``a1 figures`` reads what the earlier stages wrote (Lightning CSV logs, the evaluation metrics
JSON) and writes PNGs into ``figures/`` plus a generated markdown results table. Nothing here
computes a number that is not in those files, loads a policy or runs an episode: the imagined-futures
grid draws the frames that ``a1lib.workflows.evaluation.imagined_grid`` had the policy imagine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are files here; notebooks use their own backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from a1lib.io import atomic_write  # noqa: E402
from a1lib.train.trainer import read_csv_log  # noqa: E402

ROW_COLORS = {"a1": "tab:red", "expert": "tab:green", "random": "tab:gray"}


def plot_training_curves(runs: dict[str, str | Path], out: str | Path) -> Path:
    """One panel per run: each loss term (train, all sources) against the optimizer step."""
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 3.8), squeeze=False)
    for ax, (name, run_dir) in zip(axes[0], runs.items()):
        log = read_csv_log(run_dir)
        step = log.get("step")
        totals = (k for k in log if k.startswith("train/") and k.count("/") == 1 and k != "train/samples_per_s")
        for key in sorted(totals):
            ok = ~np.isnan(log[key])
            if ok.any():
                ax.plot(step[ok], log[key][ok], label=key.removeprefix("train/"))
        for key in sorted(k for k in log if k.startswith("val/") and k.count("/") == 1):
            ok = ~np.isnan(log[key])
            if ok.any():
                ax.plot(step[ok], log[key][ok], "o--", ms=3, label=key)
        ax.set_yscale("log")
        ax.set_xlabel("optimizer step")
        ax.set_title(name)
        ax.legend(fontsize=7)
    return _save(fig, out)


def plot_success_bars(metrics: dict[str, Any], out: str | Path, static_tasks: list[str],
                      dynamic_tasks: list[str]) -> Path:
    """Per-task success with 95% Wilson intervals, one bar per row (policy), static then dynamic."""
    rows = metrics["rows"]
    tasks = [t for t in static_tasks + dynamic_tasks if t in metrics["tasks"]]
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(tasks) + 2), 4))
    x = np.arange(len(tasks))
    for k, (name, row) in enumerate(rows.items()):
        rate = np.array([row["per_task"][t]["success_rate"] for t in tasks])
        lo = np.array([row["per_task"][t]["ci95"][0] for t in tasks])
        hi = np.array([row["per_task"][t]["ci95"][1] for t in tasks])
        at = x + (k - (len(rows) - 1) / 2) * width
        bars = ax.bar(at, rate, width, yerr=[rate - lo, hi - rate], capsize=2,
                      color=ROW_COLORS.get(name), label=f"{name} ({row['overall']['success_rate']:.0%} overall)")
        color = bars.patches[0].get_facecolor()
        for xz, top in zip(at[rate == 0], hi[rate == 0]):  # a bar of height 0 is invisible: a stub and a "0"
            ax.plot([xz - width / 2, xz + width / 2], [0, 0], color=color, lw=3, solid_capstyle="butt", clip_on=False)
            ax.text(xz, top + 0.01, "0", ha="center", va="bottom", fontsize=7, color=color)
    n_static = sum(t in static_tasks for t in tasks)
    if 0 < n_static < len(tasks):
        ax.axvline(n_static - 0.5, color="k", lw=0.8, ls=":")
        ax.text(n_static - 0.4, 1.02, "dynamic →", fontsize=8)
    ax.set_xticks(x, tasks, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("success rate (95% CI)")
    ax.set_title(f"closed-loop success, {metrics['domain']} domain, {metrics['episodes_per_task']} episodes per task")
    # beside the axes, not over them: inside, it covered the first task's bars
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0)
    return _save(fig, out)


def plot_imagined_grid(columns: list[tuple[str, np.ndarray, np.ndarray | None, np.ndarray]], delta: int,
                       out: str | Path) -> Path:
    """One column per (title, frame t, the imagined frame t+delta or None, the true frame t+delta),
    e.g. ``a1lib.workflows.evaluation.imagined_grid``'s expert rollouts, one per task."""
    fig, axes = plt.subplots(3, len(columns), figsize=(1.9 * len(columns), 6), squeeze=False)
    for col, (title, now, imagined, future) in enumerate(columns):
        draw_future_column(axes, col, delta, now, imagined, future, title)
    return _save(fig, out)


def draw_future_column(axes, col: int, delta: int, now, imagined, true_future, title: str) -> None:
    """One column of a 3-row grid: frame t, the imagined frame t+delta (None: left blank), the true one."""
    for row, (image, label) in enumerate([(now, "now (t)"), (imagined, f"imagined t+{delta}"),
                                          (true_future, f"true t+{delta}")]):
        ax = axes[row, col]
        if image is not None:
            ax.imshow(image)
        ax.set_xticks([])
        ax.set_yticks([])
        if col == 0:
            ax.set_ylabel(label, fontsize=8)
    axes[0, col].set_title(title, fontsize=7)


def results_table(metrics: dict[str, Any]) -> str:
    """A markdown table of success per task and row, generated from the metrics (never by hand)."""
    rows = metrics["rows"]
    head = "| task | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows) + "\n"
    lines = []
    for task in metrics["tasks"] + ["(all)"]:
        cells = []
        for row in rows.values():
            v = row["overall"] if task == "(all)" else row["per_task"][task]
            lo, hi = v["ci95"]
            cells.append(f"{v['success_rate']:.0%} [{lo:.0%}, {hi:.0%}] ({v['successes']}/{v['episodes']})")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def plot_perception(perception: dict[str, Any], out: str | Path) -> Path:
    """Left: where is everything? held-out localisation error per name vs predicting the mean position.
    Right: imagined futures vs "the future equals now" (latent MSE) on the dynamic tasks."""
    loc = perception["localisation"]["per_name"]
    fut = perception.get("futures", {})
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [3, 1]})
    names = list(loc)
    x = np.arange(len(names))
    a.bar(x - 0.2, [loc[n]["error_px"] for n in names], 0.4, label="model (mean)", color="tab:blue")
    a.bar(x + 0.2, [loc[n]["mean_baseline_px"] for n in names], 0.4, label="predict the mean", color="0.7")
    a.axhline(3, color="k", lw=0.8, ls=":", label="3 px")
    a.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    a.set_ylabel("error (px at the model's image size)")
    a.set_title(f"localisation on held-out {perception['domain']} frames", fontsize=9)
    a.legend(fontsize=7)
    tasks = list(fut)
    x = np.arange(len(tasks))
    b.bar(x - 0.2, [fut[t]["latent_mse"] for t in tasks], 0.4, label="imagined", color="tab:green")
    b.bar(x + 0.2, [fut[t]["latent_mse_copy"] for t in tasks], 0.4, label="future = now", color="0.7")
    b.set_xticks(x, tasks, rotation=30, ha="right", fontsize=7)
    b.set_ylabel("future-latent MSE")
    b.set_title("imagined futures vs copy", fontsize=9)
    b.legend(fontsize=7)
    return _save(fig, out)


def plot_replan_sweep(sweep: dict[str, Any], out: str | Path) -> Path:
    """Success on the validation seeds against the replan interval, one line per row; with a noise
    sweep in ``sweep``, a second panel: the A1 row against its sampling noise scale."""
    panels = [p for p in (
        ("replan_sweep", "actions executed per chunk (replan interval)", "choosing the replan interval"),
        ("noise_sweep", f"sampling noise scale (replan every {sweep.get('noise_replan_every')})",
         "choosing the sampling noise")) if p[0] in sweep]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.4), squeeze=False)
    for ax, (key, xlabel, title) in zip(axes[0], panels):
        xs = sorted(sweep[key], key=float)
        for name in sweep[key][xs[0]]:
            o = [sweep[key][x][name] for x in xs]
            rate = np.array([v["success_rate"] for v in o])
            lo, hi = np.array([v["ci95"][0] for v in o]), np.array([v["ci95"][1] for v in o])
            ax.errorbar([float(x) for x in xs], rate, yerr=[rate - lo, hi - rate], marker="o", capsize=3,
                        color=ROW_COLORS.get(name), label=name)
        if key == "replan_sweep":
            ax.set_xscale("log", base=2)
        ax.set_xticks([float(x) for x in xs], [f"{float(x):g}" for x in xs])
        ax.set_ylim(0, 1.05)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("success (validation seeds, 95% CI)")
        ax.set_title(f"{title} ({sweep['episodes_per_task']} episodes per task)", fontsize=9)
        ax.legend(fontsize=8)
    return _save(fig, out)


def perception_table(perception: dict[str, Any]) -> str:
    loc = perception["localisation"]["per_name"]
    lines = ["| name | error px (mean) | median | predict-the-mean px | frames |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {v['error_px']:.2f} | {v['median_px']:.2f} | {v['mean_baseline_px']:.2f} | {v['frames']} |"
              for n, v in loc.items()]
    fut = perception.get("futures", {})
    if fut:
        lines += ["",
                  "| dynamic task | future-latent MSE | future = now | reduction | object PSNR dB (imagined / now) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {t} | {v['latent_mse']:.4f} | {v['latent_mse_copy']:.4f} | {v['reduction_vs_copy']:+.0%} | "
                  f"{v['psnr_objects_db']:.1f} / {v['psnr_objects_copy_db']:.1f} |" for t, v in fut.items()]
    return "\n".join(lines) + "\n"


def sweep_table(sweep: dict[str, Any]) -> str:
    """The replan sweep (and the noise sweep, if there is one) as markdown tables."""
    tables = []
    for key, head in (("replan_sweep", "replan every"),
                      ("noise_sweep", f"noise scale (replan every {sweep.get('noise_replan_every')})")):
        if key not in sweep:
            continue
        xs = sorted(sweep[key], key=float)
        rows = list(sweep[key][xs[0]])
        lines = [f"| {head} | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
        for x in xs:
            cells = [f"{v['success_rate']:.0%} ({v['successes']}/{v['episodes']})"
                     for v in (sweep[key][x][n] for n in rows)]
            lines.append(f"| {float(x):g} | " + " | ".join(cells) + " |")
        tables.append("\n".join(lines) + "\n")
    return "\n".join(tables)


def _save(fig, out: str | Path) -> Path:
    fig.tight_layout()
    try:  # keep_suffix: matplotlib picks the format from the temp file's extension
        return atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=110), keep_suffix=True)
    finally:
        plt.close(fig)
