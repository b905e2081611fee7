"""``a1 evaluate``: closed-loop success rates in the lab-domain envs, with confidence intervals.

    a1 evaluate --policy experiments/finetune/policy [--tasks SortParts,ExpressSorting]
                [--episodes 20] [--replan-every 5] [--reference expert,random] [--workers 2]
                [--belt-speed 0.5,1.0,1.5] [--out experiments/eval]

Every (task, episode i) runs on ``a1lib.data.seeds.eval_seed(task, i)``: fixed, the same for every
policy, and disjoint from every training seed. Episodes run in ``workers`` processes; results are
collected in (task, episode) order, so the metrics do not depend on scheduling.

Rows: the evaluated policy plus reference rows (the scripted expert, which reads the simulator's
privileged state through ``attach(env)``, and a seeded uniform random policy), all through the
same loop. Per task: successes k of n episodes, the rate and its 95% Wilson score interval
(honest at small n and at 0% / 100%, unlike the normal approximation). ``metrics.json`` holds it
all; ``gifs/`` a few rollouts (camera + planned path | imagined future).

Speed sweeps (dynamic tasks): ``--belt-speed`` / ``--turntable-speed`` take comma-separated values;
each value is a separate block of rows, keyed by the env kwargs.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

REFERENCES = ("expert", "random")
DOMAIN = "lab"


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (0, 1 for n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------------------------------------
# Workers: each process loads each policy once
# ---------------------------------------------------------------------------------------------
_POLICIES: dict[str, Any] = {}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one thread per worker process: the workers are the parallelism


def load_policy(spec: str, seed: int = 0, imagine: bool = True) -> Any:
    """"expert" | "random" | a directory holding an A1Policy."""
    if spec == "expert":
        from a1lib.eval.rollout import ExpertPolicy

        return ExpertPolicy()
    if spec == "random":
        from a1lib.policy import RandomPolicy

        return RandomPolicy(seed=seed)
    from a1lib.models.privileged import PrivilegedPolicy, is_privileged_policy

    if is_privileged_policy(spec):
        return PrivilegedPolicy.from_pretrained(spec)
    from a1lib.models.policy_a1 import A1Policy

    return A1Policy.from_pretrained(spec, imagine=imagine, seed=seed)


def policy_image_size(spec: str, default: int) -> int:
    from a1lib.models.privileged import is_privileged_policy

    if spec in REFERENCES or is_privileged_policy(spec):
        return default
    cfg = json.loads((Path(spec) / "config.json").read_text())
    return int(cfg["image_size"])


def _run_job(job: dict[str, Any]) -> dict[str, Any]:
    import gymnasium as gym

    import a1lib.sim  # noqa: F401  (registers the envs)
    from a1lib.data.seeds import eval_seed, validation_seed
    from a1lib.eval.gif import write_gif
    from a1lib.eval.rollout import run_episode

    spec, task, i = job["policy"], job["task"], job["episode"]
    seed = (validation_seed if job.get("seed_set") == "validation" else eval_seed)(task, i)
    if spec == "random":
        policy = load_policy("random", seed=seed % 2**31)  # a fresh stream per episode
    else:
        if spec not in _POLICIES:
            _POLICIES[spec] = load_policy(spec)
        policy = _POLICIES[spec]
        if hasattr(policy, "imagine"):
            policy.imagine = bool(job.get("gif"))  # decoding the future costs time: only for GIFs
    env = gym.make(f"a1lib/{task}-v0", domain=DOMAIN, image_size=job["image_size"], **job["env_kwargs"])
    t0 = time.time()
    try:
        res = run_episode(env, policy, seed, replan_every=job["replan_every"], record=bool(job.get("gif")))
    finally:
        env.close()
    if job.get("gif"):
        write_gif(job["gif"], res.frames)
    return {"task": task, "episode": i, "seed": seed, "success": res.success, "steps": res.steps,
            "instruction": res.instruction, "seconds": time.time() - t0, "gif": job.get("gif")}


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------
def summarise(results: list[dict[str, Any]], tasks: list[str]) -> dict[str, Any]:
    per_task = {}
    for task in tasks:
        rs = [r for r in results if r["task"] == task]
        k, n = sum(r["success"] for r in rs), len(rs)
        lo, hi = wilson_interval(k, n)
        per_task[task] = {"successes": k, "episodes": n, "success_rate": k / n if n else float("nan"),
                          "ci95": [lo, hi], "mean_steps": float(np.mean([r["steps"] for r in rs])) if rs else None,
                          "seeds": [r["seed"] for r in rs], "success_per_episode": [bool(r["success"]) for r in rs]}
    k = sum(r["success"] for r in results)
    n = len(results)
    lo, hi = wilson_interval(k, n)
    return {"per_task": per_task,
            "overall": {"successes": k, "episodes": n, "success_rate": k / n if n else float("nan"), "ci95": [lo, hi],
                        "mean_of_task_rates": float(np.mean([v["success_rate"] for v in per_task.values()]))}}


def evaluate(policies: dict[str, str], tasks: list[str], episodes: int, out: str | Path | None = None,
             replan_every: int | None = None, workers: int = 2, env_kwargs: dict[str, Any] | None = None,
             gifs_per_task: int = 1, image_size: int = 64, progress: bool = True,
             seed_set: str = "eval") -> dict[str, Any]:
    """Rows ``name -> policy spec`` ("expert", "random", an A1Policy or a PrivilegedPolicy dir) on
    ``tasks`` x ``episodes``. ``seed_set="validation"`` runs on the validation seeds instead of the
    evaluation seeds (for choosing how to evaluate, e.g. the replan interval)."""
    if seed_set not in ("eval", "validation"):
        raise ValueError(f"seed_set must be 'eval' or 'validation', got {seed_set!r}")
    from a1lib.sim import TASKS

    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; have {sorted(TASKS)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env_kwargs = dict(env_kwargs or {})
    out = Path(out) if out is not None else None
    tag = "".join(f"_{k}{v}" for k, v in sorted(env_kwargs.items()))
    jobs = []
    for name, spec in policies.items():
        if spec not in REFERENCES and not Path(spec).is_dir():
            raise FileNotFoundError(f"{spec}: policy directory not found (row {name!r})")
        size = policy_image_size(spec, image_size)
        for task in tasks:
            for i in range(episodes):
                gif = out / "gifs" / f"{name}_{task}{tag}_ep{i}.gif" if out is not None and i < gifs_per_task else None
                jobs.append({"name": name, "policy": spec, "task": task, "episode": i, "image_size": size,
                             "env_kwargs": env_kwargs, "replan_every": replan_every, "gif": str(gif) if gif else None,
                             "seed_set": seed_set})
    t0 = time.time()
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_init_worker) as pool:
            results = list(tqdm(pool.imap(_run_job, jobs), total=len(jobs), desc="evaluate", unit="ep", disable=not progress))
    else:  # one thread, as in a worker process: the same floats, so the same outcomes, whatever `workers`
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            results = [_run_job(j) for j in tqdm(jobs, desc="evaluate", unit="ep", disable=not progress)]
        finally:
            torch.set_num_threads(threads)
    for job, r in zip(jobs, results):
        r["name"] = job["name"]
    metrics = {
        "domain": DOMAIN, "tasks": list(tasks), "episodes_per_task": episodes, "replan_every": replan_every,
        "env_kwargs": env_kwargs, "seeds": f"a1lib.data.seeds.{seed_set}_seed(task, i), i < episodes_per_task",
        "ci": "95% Wilson score interval", "seconds": time.time() - t0,
        "rows": {name: {"policy": spec, **summarise([r for r in results if r["name"] == name], tasks)}
                 for name, spec in policies.items()},
        "gifs": [r["gif"] for r in results if r["gif"]],
    }
    return metrics


def speed_sweep(policies: dict[str, str], tasks: list[str], episodes: int, speeds: dict[str, list[float]],
                **kwargs: Any) -> list[dict[str, Any]]:
    """One ``evaluate`` per value of each speed kwarg (belt_speed / turntable_speed)."""
    blocks = []
    for key, values in speeds.items():
        for v in values:
            blocks.append(evaluate(policies, tasks, episodes, env_kwargs={key: float(v)}, **kwargs))
    return blocks


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def format_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'row':<10}{'task':<20}{'success':>9}{'95% CI':>16}"]
    for name, row in metrics["rows"].items():
        for task, v in [*row["per_task"].items(), ("(all)", row["overall"])]:
            lo, hi = v["ci95"]
            lines.append(f"{name:<10}{task:<20}{v['successes']:>4}/{v['episodes']:<4}  [{lo:5.2f}, {hi:5.2f}]")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default=None, help="A1Policy directory to evaluate (omit for references only)")
    parser.add_argument("--name", default="a1", help="row name of --policy (default: a1)")
    parser.add_argument("--reference", default="expert,random", help="reference rows: subset of expert,random ('' for none)")
    parser.add_argument("--privileged", default=None,
                        help="PrivilegedPolicy directory (a1 privileged): adds the privileged-state reference row")
    parser.add_argument("--seed-set", default="eval", choices=("eval", "validation"),
                        help="evaluation seeds (default) or the disjoint validation seeds")
    parser.add_argument("--replan-sweep", default=None, nargs="?", const="params", metavar="N,N,...",
                        help="evaluate once per replan interval (use with --seed-set validation) and write the "
                             "sweep; without a value, the intervals and episodes of params `replan_sweep`")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks (default: all ten)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes per task (default: params eval.episodes or 10)")
    parser.add_argument("--replan-every", type=int, default=None, help="actions executed per chunk (default: params or the whole chunk)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: params or 2)")
    parser.add_argument("--gifs-per-task", type=int, default=None, help="rollout GIFs per task and row (default 1)")
    parser.add_argument("--belt-speed", default=None, help="comma-separated belt speeds: a speed sweep")
    parser.add_argument("--turntable-speed", default=None, help="comma-separated turntable speeds: a speed sweep")
    parser.add_argument("--image-size", type=int, default=64, help="env image size for reference-only runs")
    parser.add_argument("--params", default="params.yaml", help="params file; its `eval` section gives defaults")
    parser.add_argument("--preset", default=None, help="preset (default: the params file's `preset`)")
    parser.add_argument("--out", default="experiments/eval", help="writes OUT/metrics.json and OUT/gifs/")


@dataclass
class EvalConfig:
    """The ``eval`` section of params.yaml (command-line flags override it)."""

    episodes: int = 10  # per task, on fixed evaluation seeds (a1lib.data.seeds.eval_seed)
    workers: int = 2
    replan_every: int | None = None  # actions executed per chunk; None = the whole chunk
    gifs_per_task: int = 1
    tasks: tuple[str, ...] | None = None  # None = all ten


@dataclass
class ReplanSweepConfig:
    """The ``replan_sweep`` section of params.yaml: how eval.replan_every was chosen."""

    intervals: tuple[int, ...] = (1, 2, 5, 10)
    episodes: int = 10  # per task and interval, on the validation seeds


def _eval_defaults(args: argparse.Namespace) -> EvalConfig:
    from a1lib.params import load_section

    return load_section("eval", EvalConfig, path=args.params, preset=args.preset)


def run(args: argparse.Namespace) -> int:
    from a1lib.sim import TASKS

    d = _eval_defaults(args)
    tasks = [t.strip() for t in (args.tasks or ",".join(d.tasks or TASKS)).split(",") if t.strip()]
    episodes = args.episodes or d.episodes
    replan = args.replan_every if args.replan_every is not None else d.replan_every
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
    common = dict(replan_every=replan, workers=workers, gifs_per_task=gifs, image_size=args.image_size, out=out,
                  seed_set=args.seed_set)
    if args.replan_sweep:
        if args.replan_sweep == "params":
            from a1lib.params import load_section

            sweep = load_section("replan_sweep", ReplanSweepConfig, path=args.params, preset=args.preset)
            intervals, episodes = list(sweep.intervals), args.episodes or sweep.episodes
        else:
            intervals = [int(v) for v in args.replan_sweep.split(",")]
        blocks = [evaluate(policies, tasks, episodes, **{**common, "replan_every": r, "gifs_per_task": 0})
                  for r in intervals]
        metrics = {"replan_sweep": {str(r): {name: row["overall"] for name, row in b["rows"].items()}
                                    for r, b in zip(intervals, blocks)},
                   "per_task": {str(r): {name: {t: v["successes"] for t, v in row["per_task"].items()}
                                         for name, row in b["rows"].items()} for r, b in zip(intervals, blocks)},
                   "seeds": blocks[0]["seeds"], "episodes_per_task": episodes}
        for r, b in zip(intervals, blocks):
            print(f"replan every {r}: " + ", ".join(f"{n} {v['overall']['successes']}/{v['overall']['episodes']}"
                                                    for n, v in b["rows"].items()))
        write_json_atomic(out / "metrics.json", metrics)
        print(f"wrote {out / 'metrics.json'}")
        return 0
    speeds = {k: [float(v) for v in s.split(",")] for k, s in (("belt_speed", args.belt_speed),
                                                                ("turntable_speed", args.turntable_speed)) if s}
    if speeds:
        blocks = speed_sweep(policies, tasks, episodes, speeds, **common)
        metrics = {"sweep": blocks}
        for b in blocks:
            print(b["env_kwargs"])
            print(format_table(b))
    else:
        metrics = evaluate(policies, tasks, episodes, **common)
        print(format_table(metrics))
    write_json_atomic(out / "metrics.json", metrics)
    print(f"wrote {out / 'metrics.json'}")
    return 0
