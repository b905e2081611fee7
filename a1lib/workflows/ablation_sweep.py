"""``a1 ablation sweep``: the dynamic claim in depth, success against conveyor / turntable speed.

    a1 ablation sweep [--dir experiments/ablations] [--out experiments/speed_sweep] [--figures figures]

No training here: it evaluates the policies that the ``ablation@<group>-<variant>`` stages trained,
for every variant that imagines or is compared with imagining (``Variant.sweep``: a1_full,
pi0_style, no_future_loss), on ExpressSorting at each belt speed and IngredientPicking at each
turntable speed, including speeds outside the training range. Beside them, on the same episodes
(``eval_seed(task, i)``) and speeds, two references that read the simulator's state: the scripted
expert (is this speed solvable at all?) and the motion-blind expert, which aims at where an object
is now rather than where it will be (what foresight is worth to an agent that sees perfectly).

Writes ``<out>/metrics.json`` (every point: successes, episodes, Wilson interval, per-seed rates),
``<figures>/speed_sweep.md`` (the table) and ``<figures>/ablation_speed.png`` (the figure).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from a1lib.eval.ablation import DEFAULT_DIR, EVAL_SECONDS_PER_EPISODE, SWEPT_TASKS, VARIANTS, RunLayout, pool_seeds
from a1lib.eval.evaluate import evaluate
from a1lib.eval.stats import Rate
from a1lib.io import atomic_write_json, atomic_write_text
from a1lib.viz.ablation_figures import plot_speed_sweep, speed_sweep_table
from a1lib.workflows.cli import Command
from a1lib.workflows.params import load_section

REFERENCE_ARMS = ("expert", "motion_blind_expert")  # a1lib.eval.evaluate.load_policy specs


@dataclass
class SpeedSweepConfig:
    """The ``speed_sweep`` section of a preset in params.yaml."""

    group: str = "dynamic"  # the ablation task group whose trained policies are swept
    belt_speeds: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25)  # ExpressSorting, table units / s
    turntable_speeds: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5)  # IngredientPicking, rad / s
    episodes: int = 20  # per speed and training seed (the experts: per speed, the same episodes)
    workers: int = 2

    def __post_init__(self) -> None:
        self.belt_speeds = tuple(float(v) for v in self.belt_speeds)
        self.turntable_speeds = tuple(float(v) for v in self.turntable_speeds)
        for name in ("belt_speeds", "turntable_speeds"):
            values = getattr(self, name)
            if not values or min(values) < 0:
                raise ValueError(f"speed_sweep.{name} must be a non-empty list of speeds >= 0, got {list(values)}")
        for name in ("episodes", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"speed_sweep.{name} must be >= 1, got {getattr(self, name)}")

    def speeds(self, key: str) -> tuple[float, ...]:
        return {"belt_speed": self.belt_speeds, "turntable_speed": self.turntable_speeds}[key]


def swept_policies(directory: str | Path, group: str) -> dict[str, dict[str, str]]:
    """variant -> {"seed<k>": policy dir} for every swept variant's run in ``directory``; a run that
    has not finished is an error that names the stage to run."""
    out = {}
    for name in (v.name for v in VARIANTS.values() if v.sweep):
        layout = RunLayout.of(directory, f"{group}-{name}")
        if not layout.metrics.exists():
            raise FileNotFoundError(f"{layout.metrics}: not found; train the variant first "
                                    f"(`dvc repro ablation@{group}-{name}`)")
        seeds = json.loads(layout.metrics.read_text())["budget"]["seeds"]
        out[name] = {f"seed{s}": str(layout.policy(s)) for s in seeds}
        missing = [p for p in out[name].values() if not Path(p).is_dir()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: policy not found "
                                    f"(`dvc pull` or `dvc repro ablation@{group}-{name}`)")
    return out


def run_sweep(directory: str | Path, cfg: SpeedSweepConfig, progress: bool = True) -> dict[str, Any]:
    """Every swept arm (each policy with its own inference settings) and the references at every speed."""
    t0 = time.time()
    policies = swept_policies(directory, cfg.group)
    speeds = sum(len(cfg.speeds(key)) for key, _ in SWEPT_TASKS.values())
    episodes = speeds * cfg.episodes * sum(len(rows) for rows in policies.values())
    print(f"[sweep] {', '.join(policies)} at {speeds} speeds: {episodes} episodes, expected "
          f"~{episodes * EVAL_SECONDS_PER_EPISODE / cfg.workers / 60:.0f} min on {cfg.workers} workers", flush=True)
    points = []
    for task, (key, _) in SWEPT_TASKS.items():
        for speed in cfg.speeds(key):
            where = {"task": task, "speed_key": key, "speed": speed}
            for arm, rows in policies.items():
                print(f"[sweep] {arm} on {task} at {key} {speed}", flush=True)
                block = evaluate(rows, [task], cfg.episodes, env_kwargs={key: speed}, workers=cfg.workers,
                                 gifs_per_task=0, progress=progress)
                per_seed = {name: row["overall"]["success_rate"] for name, row in block["rows"].items()}
                points.append({"arm": arm, **where, **pool_seeds(block["rows"], [task])["overall"],
                               "per_seed_success": per_seed})
            print(f"[sweep] {', '.join(REFERENCE_ARMS)} on {task} at {key} {speed}", flush=True)
            block = evaluate({arm: arm for arm in REFERENCE_ARMS}, [task], cfg.episodes, env_kwargs={key: speed},
                             workers=cfg.workers, gifs_per_task=0, progress=progress)
            for arm, row in block["rows"].items():
                points.append({"arm": arm, **where, **Rate.from_dict(row["overall"]).to_dict()})
    return {"group": cfg.group, "arms": list(policies) + list(REFERENCE_ARMS), "references": list(REFERENCE_ARMS),
            "training_seeds": {arm: sorted(rows) for arm, rows in policies.items()},
            "episodes_per_speed_and_seed": cfg.episodes,
            "training_range": {task: {"speed_key": key, "range": list(r)} for task, (key, r) in SWEPT_TASKS.items()},
            "points": points, "seconds": time.time() - t0}


# ---------------------------------------------------------------------------------------------
# a1 ablation sweep
# ---------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=DEFAULT_DIR, help="folder of the <group>-<variant> runs")
    parser.add_argument("--out", default="experiments/speed_sweep", help="where metrics.json goes")
    parser.add_argument("--figures", default="figures", help="where ablation_speed.png and speed_sweep.md go")
    parser.add_argument("--params", default="params.yaml", help="its speed_sweep section")
    parser.add_argument("--preset", default=None, help="preset (default: the params file's `preset`)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def run(args: argparse.Namespace) -> int:
    cfg = load_section("speed_sweep", SpeedSweepConfig, path=args.params, preset=args.preset)
    result = run_sweep(args.dir, cfg, progress=not args.no_progress)
    out, figures = Path(args.out), Path(args.figures)
    atomic_write_json(out / "metrics.json", result)
    table = speed_sweep_table(result)
    atomic_write_text(figures / "speed_sweep.md", table)
    plot_speed_sweep(result, figures / "ablation_speed.png")
    print(table)
    print(f"wrote {out / 'metrics.json'}, {figures / 'speed_sweep.md'}, {figures / 'ablation_speed.png'} "
          f"({result['seconds']:.0f} s)")
    return 0


sweep = Command(add_arguments, run)
