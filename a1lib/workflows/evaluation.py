"""``a1 evaluate`` (closed-loop success), ``a1 perception`` (localisation and imagined-future error
on held-out episodes) and ``a1 figures`` (the README's figures and results table)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from a1lib.data.seeds import eval_seed
from a1lib.eval.evaluate import (
    REFERENCES,
    EvalConfig,
    ReplanSweepConfig,
    evaluation_headline,
    evaluation_summary,
    format_table,
    noise_sweep,
    replan_sweep,
    speed_sweep,
)
from a1lib.eval.evaluate import (
    evaluate as evaluate_policies,
)
from a1lib.eval.perception import (
    DOMAIN,
    format_report,
    future_errors,
    heldout_episodes,
    localisation_errors,
    perception_summary,
)
from a1lib.eval.rollout import imagine_along_expert
from a1lib.io import atomic_write_json, atomic_write_text
from a1lib.models.policy_a1 import A1Policy
from a1lib.sim import DYNAMIC_TASKS, STATIC_TASKS, TASKS
from a1lib.viz.figures import (
    perception_table,
    plot_imagined_grid,
    plot_perception,
    plot_replan_sweep,
    plot_success_bars,
    plot_training_curves,
    results_table,
    sweep_table,
)
from a1lib.workflows.cli import Command
from a1lib.workflows.params import load_section
from a1lib.workflows.quick_policy import torch_threads


# ---------------------------------------------------------------------------------------------
# a1 evaluate
# ---------------------------------------------------------------------------------------------
def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default=None, help="A1Policy directory to evaluate (omit for references only)")
    parser.add_argument("--name", default="a1", help="row name of --policy (default: a1)")
    parser.add_argument("--reference", default="expert,random",
                        help="reference rows: subset of expert,motion_blind_expert,random ('' for none)")
    parser.add_argument("--privileged", default=None,
                        help="PrivilegedPolicy directory (a1 privileged): adds the privileged-state reference row")
    parser.add_argument("--seed-set", default="eval", choices=("eval", "validation"),
                        help="evaluation seeds (default) or the disjoint validation seeds")
    parser.add_argument("--replan-sweep", default=None, nargs="?", const="params", metavar="N,N,...",
                        help="evaluate once per replan interval (use with --seed-set validation) and write the "
                             "sweep; without a value, the intervals and episodes of params `replan_sweep`")
    parser.add_argument("--noise-sweep", default=None, nargs="?", const="params", metavar="S,S,...",
                        help="evaluate the A1 row once per sampling noise scale (with --seed-set validation; "
                             "combinable with --replan-sweep); without a value, params `replan_sweep.noise_scales`")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks (default: all ten)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes per task (default: params eval.episodes or 10)")
    parser.add_argument("--replan-every", type=int, default=None,
                        help="override every row's actions executed per chunk "
                             "(default: each policy's own, policy.json)")
    parser.add_argument("--noise-scale", type=float, default=None,
                        help="override: sample A1 rows from noise_scale * N(0, I) "
                             "(0: the mean chunk; default: as exported)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: params or 2)")
    parser.add_argument("--gifs-per-task", type=int, default=None, help="rollout GIFs per task and row (default 1)")
    parser.add_argument("--belt-speed", default=None, help="comma-separated belt speeds: a speed sweep")
    parser.add_argument("--turntable-speed", default=None, help="comma-separated turntable speeds: a speed sweep")
    parser.add_argument("--image-size", type=int, default=64, help="env image size for reference-only runs")
    parser.add_argument("--params", default="params.yaml", help="params file; its `eval` section gives defaults")
    parser.add_argument("--preset", default=None, help="preset (default: the params file's `preset`)")
    parser.add_argument("--out", default="experiments/eval",
                        help="writes OUT/metrics.json, OUT/summary.json, OUT/headline.json and OUT/gifs/")
    parser.add_argument("--no-progress", action="store_true",
                        help="plain progress lines instead of a bar (the default when stderr is not a terminal)")


def run_evaluate(args: argparse.Namespace) -> int:
    d = load_section("eval", EvalConfig, path=args.params, preset=args.preset)
    tasks = [t.strip() for t in (args.tasks or ",".join(d.tasks or TASKS)).split(",") if t.strip()]
    episodes = args.episodes or d.episodes
    workers = args.workers or d.workers
    gifs = args.gifs_per_task if args.gifs_per_task is not None else d.gifs_per_task
    policies = {}
    if args.policy:
        policies[args.name] = args.policy
    for ref in [r.strip() for r in args.reference.split(",") if r.strip()]:
        if ref not in REFERENCES:
            raise ValueError(f"--reference: unknown {ref!r}; choose from {REFERENCES}")
        policies[ref] = ref
    if args.privileged:
        policies["privileged"] = args.privileged
    if not policies:
        raise ValueError("nothing to evaluate: give --policy and/or --reference")
    out = Path(args.out)
    given = (("replan_every", args.replan_every), ("noise_scale", args.noise_scale))
    override = {k: v for k, v in given if v is not None}
    common = dict(workers=workers, gifs_per_task=gifs, image_size=args.image_size, out=out, seed_set=args.seed_set,
                  override=override, progress=not args.no_progress and sys.stderr.isatty())
    if args.replan_sweep or args.noise_sweep:
        sweep = load_section("replan_sweep", ReplanSweepConfig, path=args.params, preset=args.preset)
        if "params" in (args.replan_sweep, args.noise_sweep):
            episodes = args.episodes or sweep.episodes
        metrics = {}
        if args.replan_sweep:
            intervals = (list(sweep.intervals) if args.replan_sweep == "params"
                         else [int(v) for v in args.replan_sweep.split(",")])
            metrics.update(replan_sweep(policies, tasks, intervals, episodes, **common))
            for r in intervals:
                print(f"replan every {r}: " + ", ".join(f"{n} {v['successes']}/{v['episodes']}"
                                                        for n, v in metrics["replan_sweep"][str(r)].items()))
        if args.noise_sweep:
            scales = (list(sweep.noise_scales) if args.noise_sweep == "params"
                      else [float(v) for v in args.noise_sweep.split(",")])
            if not scales:
                raise ValueError("--noise-sweep: no scales (params replan_sweep.noise_scales is empty; give S,S,...)")
            metrics.update(noise_sweep(policies, tasks, scales, episodes, **common))
            for x in scales:
                print(f"noise scale {x:g}: " + ", ".join(f"{n} {v['successes']}/{v['episodes']}"
                                                         for n, v in metrics["noise_sweep"][str(float(x))].items()))
    else:
        speeds = {k: [float(v) for v in s.split(",")] for k, s in (("belt_speed", args.belt_speed),
                                                                    ("turntable_speed", args.turntable_speed)) if s}
        if speeds:
            metrics = {"sweep": speed_sweep(policies, tasks, episodes, speeds, **common)}
            for b in metrics["sweep"]:
                print(b["env_kwargs"])
                print(format_table(b))
        else:
            metrics = evaluate_policies(policies, tasks, episodes, **common)
            print(format_table(metrics))
    atomic_write_json(out / "metrics.json", metrics)
    atomic_write_json(out / "summary.json", evaluation_summary(metrics))
    written = ["metrics.json", "summary.json"]
    if "rows" in metrics:  # a plain evaluation (not a sweep): the headline is the DVC metrics file
        atomic_write_json(out / "headline.json", evaluation_headline(metrics))
        written.append("headline.json")
    print(f"wrote {', '.join(str(out / f) for f in written)}")
    return 0


# ---------------------------------------------------------------------------------------------
# a1 perception
# ---------------------------------------------------------------------------------------------
def add_perception_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="A1Policy directory")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks for localisation (default: all ten)")
    parser.add_argument("--episodes", type=int, default=3, help="validation episodes per task (default 3)")
    parser.add_argument("--out", default="experiments/perception", help="writes OUT/metrics.json and OUT/summary.json")


def run_perception(args: argparse.Namespace) -> int:
    policy = A1Policy.from_pretrained(args.policy)
    tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else list(TASKS)
    records = heldout_episodes(tasks, args.episodes, policy.config.image_size)
    metrics = {"domain": DOMAIN, "seeds": "a1lib.data.seeds.validation_seed(task, i), i < episodes",
               "episodes_per_task": args.episodes,
               "localisation": localisation_errors(policy.model.vision, policy.processor, records),
               "futures": future_errors(policy, [r for r in records if r.task in DYNAMIC_TASKS])}
    atomic_write_json(Path(args.out) / "metrics.json", metrics)
    atomic_write_json(Path(args.out) / "summary.json", perception_summary(metrics))
    print(format_report(metrics))
    print(f"wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'summary.json'}")
    return 0


# ---------------------------------------------------------------------------------------------
# a1 figures
# ---------------------------------------------------------------------------------------------
def add_figures_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pretrain", default="artifacts/pretrain", help="pretraining run directory")
    parser.add_argument("--finetune", default="artifacts/finetune",
                        help="fine-tuning run directory (policy in policy/)")
    parser.add_argument("--eval", default="experiments/eval/metrics.json", help="evaluation metrics JSON")
    parser.add_argument("--perception", default="experiments/perception/metrics.json",
                        help="a1 perception metrics (skipped if missing)")
    parser.add_argument("--sweep", default="experiments/replan_sweep/metrics.json",
                        help="replan-interval sweep metrics (skipped if missing)")
    parser.add_argument("--out", default="figures", help="output folder")
    parser.add_argument("--grid-tasks", default="ExpressSorting,IngredientPicking,SortParts,PlaceFlower",
                        help="tasks of the imagined-futures grid")


def imagined_grid(policy_dir: str | Path, out: str | Path, tasks: list[str], step: int = 10,
                  seed_index: int = 0) -> Path:
    """``imagined_futures.png``: for each task the scripted expert drives a lab episode on an evaluation
    seed, and at frame ``step`` the policy imagines frame step + delta; viz draws frame t, the
    imagined and the true frame t+delta, one column per task."""
    with torch_threads(1):  # batch-1 inference: one thread is fastest on a small CPU
        policy = A1Policy.from_pretrained(policy_dir, imagine=True)
        columns = [(task, *imagine_along_expert(policy, task, step, eval_seed(task, seed_index), policy.delta,
                                                policy.config.image_size)) for task in tasks]
    return plot_imagined_grid(columns, policy.delta, out)


def run_figures(args: argparse.Namespace) -> int:
    out = Path(args.out)
    metrics = json.loads(Path(args.eval).read_text())
    written = [
        plot_training_curves({"pretraining": args.pretrain, "fine-tuning": args.finetune}, out / "training_curves.png"),
        plot_success_bars(metrics, out / "success_per_task.png", list(STATIC_TASKS), list(DYNAMIC_TASKS)),
        imagined_grid(Path(args.finetune) / "policy", out / "imagined_futures.png",
                      [t.strip() for t in args.grid_tasks.split(",") if t.strip()]),
    ]
    text = "## Closed-loop success\n\n" + results_table(metrics)
    if Path(args.perception).is_file():
        perception = json.loads(Path(args.perception).read_text())
        written.append(plot_perception(perception, out / "perception.png"))
        text += ("\n## Perception: localisation and imagined futures (held-out episodes)\n\n"
                 + perception_table(perception))
    if Path(args.sweep).is_file():
        sweep = json.loads(Path(args.sweep).read_text())
        written.append(plot_replan_sweep(sweep, out / "replan_sweep.png"))
        text += "\n## Replan interval and sampling noise (validation seeds)\n\n" + sweep_table(sweep)
    table = out / "results.md"
    atomic_write_text(table, text)
    for path in written + [table]:
        print(f"wrote {path}")
    return 0


evaluate = Command(add_evaluate_arguments, run_evaluate)
perception = Command(add_perception_arguments, run_perception)
figures = Command(add_figures_arguments, run_figures)
